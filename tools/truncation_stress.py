"""Truncate or overwrite DCIMG files while they are being read.

Every read that goes through the package's own copy paths must end with the
pixels or with a clean exception (:class:`dcimg.DCIMGChangedError`, or
another :class:`dcimg.DCIMGError` for a file reopened after the change),
never with a dead process.  Each case runs in a child process, so a ``SIGBUS``
shows as a negative exit status and is counted.

Usage::

    python tools/truncation_stress.py --runs 200          # every read, twice
    python tools/truncation_stress.py --child whole truncate DIR --moments 12

The parent prints one line per read and way of changing the file: runs,
crashes, and what the children saw (reads completed before the change,
clean errors by type).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

READS = (
    "index",
    "read",
    "frame",
    "zslice",
    "zslice_idx",
    "whole",
    "whole_float_threads",
    "timestamps",
    "framestamps",
    "metadata",
    "imageio",
    "dask",
)
HOWS = ("truncate", "overwrite")


def _make_files(folder: Path) -> tuple[Path, bytes]:
    import numpy as np

    from dcimg.testing import write_dcimg

    rng = np.random.default_rng(0)
    big = rng.integers(0, 4096, (24, 512, 512), dtype=np.uint16)
    path = write_dcimg(folder / "model.dcimg", big, stored_pixels_row=7)
    short = write_dcimg(folder / "short.dcimg", big[:3, :100, :100])
    return path, short.read_bytes()


def _operation(name: str, path: Path):  # noqa: ANN202 - small dispatcher
    import numpy as np

    import dcimg

    if name == "imageio":
        import imageio.v3 as iio

        return None, lambda: iio.imread(path)
    f = dcimg.DCIMGFile(path)
    ops = {
        "index": lambda: f[-1, :, 3:],
        "read": lambda: f.read(slice(None, None, -2), dtype=np.float32),
        "frame": lambda: [f.frame(i) for i in range(f.nfrms)],
        "zslice": lambda: f.zslice(0, f.nfrms, 3),
        "zslice_idx": lambda: [f.zslice_idx(i, 5) for i in range(5)],
        "whole": f.whole,
        "whole_float_threads": lambda: f.whole(dtype=np.float64),
        "timestamps": lambda: (f.__dict__.pop("_timestamps_us", None), f.timestamps),
        "framestamps": lambda: (f.__dict__.pop("framestamps", None), f.framestamps),
        "metadata": lambda: (
            [f.__dict__.pop(k, None) for k in ("metadata", "_timestamps_us")],
            f.metadata,
        ),
        "dask": lambda: (
            f.as_dask_array(chunks=2).sum().compute(scheduler="threads", num_workers=4)
        ),
    }
    return f, ops[name]


def child(read: str, how: str, folder: Path, moments: int, seed: int) -> int:
    """Run one read against ``moments`` changes of the file; return 0."""
    import dcimg

    warnings.simplefilter("ignore")
    model, short = _make_files(folder)
    data = model.read_bytes()
    rng = random.Random(seed)
    seen: collections.Counter[str] = collections.Counter()
    path = folder / "live.dcimg"
    for _ in range(moments):
        path.write_bytes(data)
        f, op = _operation(read, path)
        start = time.perf_counter()
        op()  # one undisturbed run, to time it
        took = time.perf_counter() - start
        delay = rng.uniform(0, took * 1.5)

        def change(delay: float = delay) -> None:
            time.sleep(delay)
            if how == "truncate":
                os.truncate(path, rng.randrange(0, len(data)))
            else:  # the export re-run in place: truncate, then a shorter file
                with open(path, "r+b") as out:
                    out.truncate(0)
                    out.write(short)

        changer = threading.Thread(target=change)
        changer.start()
        try:
            for _ in range(50):
                op()
            seen["complete"] += 1
        except dcimg.DCIMGChangedError:
            seen["changed"] += 1
        except dcimg.DCIMGError as exc:
            seen[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - imageio wraps others
            seen[f"other:{type(exc).__name__}"] += 1
        changer.join()
        if f is not None:
            f.close()
    print(" ".join(f"{k}={v}" for k, v in sorted(seen.items())), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("READ", "HOW", "DIR"))
    parser.add_argument("--moments", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20, help="children per case")
    parser.add_argument("--reads", nargs="*", default=list(READS))
    args = parser.parse_args(argv)
    if args.child:
        read, how, folder = args.child
        return child(read, how, Path(folder), args.moments, os.getpid())
    failures = 0
    for read in args.reads:
        for how in HOWS:
            crashes = 0
            seen: collections.Counter[str] = collections.Counter()
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as folder:
                    result = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            read,
                            how,
                            folder,
                            "--moments",
                            str(args.moments),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=600,
                    )
                if result.returncode != 0:
                    crashes += 1
                    print(result.stderr[-2000:], file=sys.stderr)
                for item in result.stdout.split():
                    key, _, value = item.partition("=")
                    seen[key] += int(value or 0)
            failures += crashes
            print(
                f"{read:20s} {how:9s} runs={args.runs} crashes={crashes} "
                + " ".join(f"{k}={v}" for k, v in sorted(seen.items())),
                flush=True,
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
