"""Where the time of ``as_dask_array().sum().compute()`` goes, per chunk size.

For each chunk size, times Dask's sum over the file's chunks and over the
same pixels already in memory with the same chunks (the floor: no file, no
copy), both against ``whole()``. Minimum of ``--repeat`` runs after a warm-up.

Usage: ``python tools/bench_dask_chunks.py [--path P] [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import dask.array as da
import numpy as np

from dcimg import DCIMGFile
from dcimg.testing import write_dcimg

SIZES = ("4MiB", "8MiB", "16MiB", "32MiB", "64MiB", "128MiB")


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Return the fastest of ``repeat`` calls of ``fn`` after one warm-up, in ms."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", help="file to write (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.path or os.path.join(folder, "b800.dcimg")
        pixels = np.random.default_rng(0).integers(
            0, 4000, (100, 2048, 2048), dtype=np.uint16
        )
        write_dcimg(path, pixels)
        del pixels
        with DCIMGFile(path) as f:
            whole = best_ms(f.whole, args.repeat)
            print(f"whole(): {whole:.1f} ms")
            print("| chunks | frames per chunk | sum | ratio | floor | ratio |")
            print("|---|---|---|---|---|---|")
            for size in SIZES:
                lazy = f.as_dask_array(chunks=size)
                in_memory = da.from_array(f.whole(), chunks=lazy.chunksize)
                total = best_ms(lazy.sum().compute, args.repeat)
                floor = best_ms(in_memory.sum().compute, args.repeat)
                print(
                    f"| {size} | {lazy.chunksize[0]} | {total:.1f} ms | "
                    f"{total / whole:.2f}x | {floor:.1f} ms | {floor / whole:.2f}x |"
                )


if __name__ == "__main__":
    main()
