"""Benchmark: a region-of-interest trace through sub-frame Dask chunks.

The trace is the mean of a 64 x 64 region of every frame (rows and columns
1024:1088), over all the frames of a 2048 x 2048 ``uint16`` file. Measured in
one run, on a sparse synthetic file (:func:`dcimg.testing.write_sparse_dcimg`:
the full-size file, a few megabytes of disk):

1. **Local, warm**: the trace through ``f.as_dask_array(chunks=(1000, 64,
   64))[:, 1024:1088, 1024:1088].mean(axis=(1, 2)).compute()`` against the
   direct read ``f[:, 1024:1088, 1024:1088].mean(axis=(1, 2))``, after one
   untimed run of each (the pages are then cached). Target: at most 2x.
   Also reported: the same for the two reads alone (no mean).
2. **From a URL**: the same Dask trace from the file served by the HTTP
   server of the tests on 127.0.0.1 (``Range`` requests, from a memory map
   of the sparse file), counting the body bytes the server sent during the
   trace against the bytes of the rows the region covers (``frames x 64 x
   bytes_per_row``), and against the region's own pixels. Target: at most
   1.1x the rows' bytes.

Statistic: the best of ``--repeat`` runs decides PASS/FAIL (the machine is
shared and noisy); medians are reported too. No timing is asserted in tests.

Usage::

    python tools/bench_trace.py                    # 10,000 frames (84 GB sparse)
    python tools/bench_trace.py --frames 2000 --url-frames 1000
    python tools/bench_trace.py --json out.json --markdown out.md

The URL measurement fetches every covered row (4 KiB each here) through a
Python HTTP server, so it reads ``--url-frames`` frames (default: all).
"""

from __future__ import annotations

import argparse
import json
import mmap
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import dcimg
from dcimg.testing import write_sparse_dcimg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import RangeHTTPServer  # noqa: E402

SIDE = 2048
ROI = (slice(None), slice(1024, 1088), slice(1024, 1088))
CHUNKS = (1000, 64, 64)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of ``repeat`` calls of ``fn`` (after one untimed warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_local(path: Path, repeat: int) -> list[dict[str, object]]:
    with dcimg.DCIMGFile(path) as f:
        lazy = f.as_dask_array(chunks=CHUNKS)
        frames = f.nfrms

        def direct_trace() -> np.ndarray:
            return np.asarray(f[ROI].mean(axis=(1, 2)))

        def dask_trace() -> np.ndarray:
            return np.asarray(lazy[ROI].mean(axis=(1, 2)).compute())

        def direct_read() -> np.ndarray:
            return f[ROI]

        def dask_read() -> np.ndarray:
            return np.asarray(lazy[ROI].compute())

        np.testing.assert_array_equal(dask_trace(), direct_trace())
        np.testing.assert_array_equal(dask_read(), direct_read())
        rows = []
        for name, candidate, baseline in (
            ("trace (mean of the region per frame)", dask_trace, direct_trace),
            ("read of the region", dask_read, direct_read),
        ):
            # Interleaved, so that both see the same load of the machine.
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(repeat):
                ours += timed(candidate, 1)
                theirs += timed(baseline, 1)
            best = min(ours) / min(theirs)
            rows.append(
                {
                    "name": f"local, warm: {name}, {frames} frames of "
                    f"{SIDE}x{SIDE}: chunks={CHUNKS} / f[:, 1024:1088, 1024:1088]",
                    "ratio_best": round(best, 2),
                    "ratio_median": round(
                        statistics.median(ours) / statistics.median(theirs), 2
                    ),
                    "dask_s": round(min(ours), 3),
                    "direct_s": round(min(theirs), 3),
                    "target": "<= 2",
                    "passed": best <= 2,
                }
            )
    return rows


def bench_url(path: Path, frames: int) -> dict[str, object]:
    key = f"/{path.name}"
    with (
        open(path, "rb") as fh,
        mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m,
    ):
        server = RangeHTTPServer({key: m}).start()
        try:
            with dcimg.DCIMGFile(server.url(key)) as f:
                lazy = f.as_dask_array(chunks=CHUNKS)
                bytes_per_row = f.bytes_per_row
                server.wait_idle()
                before = sum(r.sent for r in server.requests_for(key))
                requests_before = len(server.requests_for(key))
                start = time.perf_counter()
                region = lazy[:frames, 1024:1088, 1024:1088]
                trace = np.asarray(region.mean(axis=(1, 2)).compute())
                seconds = time.perf_counter() - start
                server.wait_idle()
                sent = sum(r.sent for r in server.requests_for(key)) - before
                requests = len(server.requests_for(key)) - requests_before
                expected = np.asarray(
                    f[:frames, 1024:1088, 1024:1088].mean(axis=(1, 2))
                )
        finally:
            server.stop()
    np.testing.assert_array_equal(trace, expected)
    rows_bytes = frames * 64 * bytes_per_row
    pixel_bytes = frames * 64 * 64 * 2
    ratio = sent / rows_bytes
    return {
        "name": f"URL (127.0.0.1 HTTP): trace over {frames} frames through "
        f"chunks={CHUNKS}: bytes fetched / bytes of the rows covered",
        "ratio_best": round(ratio, 4),
        "bytes_fetched": sent,
        "rows_bytes": rows_bytes,
        "region_pixel_bytes": pixel_bytes,
        "fetched_over_region_pixels": round(sent / pixel_bytes, 2),
        "requests": requests,
        "seconds": round(seconds, 2),
        "target": "<= 1.1",
        "passed": ratio <= 1.1,
    }


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| measurement | ratio (best) | median | detail | target | pass |"]
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        detail = ", ".join(
            f"{k} {v}"
            for k, v in row.items()
            if k not in {"name", "ratio_best", "ratio_median", "target", "passed"}
        )
        lines.append(
            f"| {row['name']} | {row['ratio_best']} | {row.get('ratio_median', '')}"
            f" | {detail} | {row['target']} | {'PASS' if row['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument(
        "--url-frames", type=int, help="frames of the URL trace (default: all)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tmpdir", help="where to write the file")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--markdown", metavar="PATH")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as folder:
        path = write_sparse_dcimg(
            Path(folder) / "trace.dcimg", args.frames, SIDE, SIDE, stored_pixels_row=5
        )
        print(f"{path.stat().st_size / 1e9:.1f} GB file, sparse", flush=True)
        rows = bench_local(path, args.repeat)
        rows.append(bench_url(path, args.url_frames or args.frames))
    table = markdown(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "dcimg": dcimg.__version__,
                    "frames": args.frames,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
