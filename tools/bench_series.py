"""Benchmark: DCIMGSeries against plain-Python baselines.

Writes a series of one-frame files (default 2,000 files of 200 x 2048 uint16,
stored pixels on), warms the page cache, then times, interleaved with their
baselines measured in the same run:

- opening: ``DCIMGSeries(folder)`` (list, parse the names, open and check
  every header) against "open, read the first 4 KiB, close" of every file
  (``os.open``/``os.read``/``os.close``); target <= 1.5x;
- reading: ``np.asarray(series)`` against allocating the stack with
  ``np.empty`` and filling it file by file with ``np.fromfile`` of the pixel
  bytes; target speed >= 0.8x, i.e. time ratio <= 1.25x;
- the Dask graph of a 10,000-file series (tiny files): ``as_dask_array()``
  builds in < 0.1 s.

Statistic: the minimum of ``--repeat`` runs (candidate and baseline
interleaved, order alternating) decides PASS/FAIL; medians are reported too.
Info rows (no target) show where the time goes, e.g. opening every file with
:class:`dcimg.DCIMGFile` alone.

Usage::

    python tools/bench_series.py                  # the full sizes
    python tools/bench_series.py --size tiny      # smoke test: seconds
    python tools/bench_series.py --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import dcimg
from dcimg import DCIMGFile, DCIMGSeries
from dcimg.testing import write_series

SIZES: dict[str, dict[str, Any]] = {
    "full": {"files": 2000, "height": 200, "width": 2048, "graph_files": 10_000},
    "tiny": {"files": 40, "height": 16, "width": 64, "graph_files": 300},
}
TARGET_OPEN = 1.5
TARGET_READ = 1 / 0.8
TARGET_GRAPH_S = 0.1


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def interleaved(
    candidate: Callable[[], Any], baseline: Callable[[], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Time both ``repeat`` times after a warm-up, alternating which goes first."""
    candidate()
    baseline()
    ours, theirs = [], []
    for i in range(repeat):
        if i % 2:
            theirs.append(timed(baseline))
            ours.append(timed(candidate))
        else:
            ours.append(timed(candidate))
            theirs.append(timed(baseline))
    return ours, theirs


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def row(
    operation: str,
    ours: list[float],
    theirs: list[float] | None,
    target: float | None,
    target_text: str,
) -> dict[str, Any]:
    best = min(ours)
    entry: dict[str, Any] = {
        "operation": operation,
        "ours_min_s": best,
        "ours_median_s": statistics.median(ours),
        "target": target_text,
    }
    if theirs is None:
        entry["result"] = (
            "info" if target is None else ("PASS" if best < target else "FAIL")
        )
        return entry
    ratio = best / min(theirs)
    entry.update(
        baseline_min_s=min(theirs),
        baseline_median_s=statistics.median(theirs),
        ratio_min=ratio,
        ratio_median=statistics.median(ours) / statistics.median(theirs),
    )
    entry["result"] = (
        "info" if target is None else ("PASS" if ratio <= target else "FAIL")
    )
    return entry


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(size: str, repeat: int, tmpdir: str | None) -> dict[str, Any]:
    spec = SIZES[size]
    nfiles, height, width = spec["files"], spec["height"], spec["width"]
    root = tempfile.mkdtemp(prefix="dcimg-bench-series-", dir=tmpdir)
    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    try:
        folder = os.path.join(root, "series")
        os.mkdir(folder)
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 4096, (height, width), dtype=np.uint16)
        # The same frame in every file: the pixels do not matter here, and a
        # broadcast view keeps the writer's memory small.
        write_series(
            folder,
            np.broadcast_to(frame, (nfiles, 1, height, width)),
            name="bench",
            digits=5,
            stored_pixels_row=height // 2,
        )
        paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
        with DCIMGFile(paths[0]) as f:
            offset = f.layout.data_offset
            contiguous = f.bytes_per_row == width * 2
        assert contiguous, "the baseline reads rows without padding"
        for path in paths:  # warm the page cache
            with open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass

        # -- opening
        def open_series() -> None:
            DCIMGSeries(folder).close()

        def open_read_close() -> None:
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                os.read(fd, 4096)
                os.close(fd)

        def open_files() -> None:
            for path in paths:
                DCIMGFile(path).close()

        ours, theirs = interleaved(open_series, open_read_close, repeat)
        rows.append(
            row(
                f"open `DCIMGSeries(folder)`, {nfiles:,} files",
                ours,
                theirs,
                TARGET_OPEN,
                f"<= {TARGET_OPEN}x open + read 4 KiB + close",
            )
        )
        ours, theirs = interleaved(open_files, open_read_close, repeat)
        rows.append(
            row(
                f"`DCIMGFile(path).close()` for each of {nfiles:,} files",
                ours,
                theirs,
                None,
                "info: vs open + read 4 KiB + close",
            )
        )

        # -- reading every pixel
        series = DCIMGSeries(folder)
        pixels = height * width

        def as_array() -> np.ndarray:
            return np.asarray(series)

        def from_files() -> np.ndarray:
            stack = np.empty((nfiles, 1, height, width), np.uint16)
            for i, path in enumerate(paths):
                stack[i, 0] = np.fromfile(
                    path, np.uint16, count=pixels, offset=offset
                ).reshape(height, width)
            return stack

        check = as_array()
        truth = from_files()
        # The baseline does not restore the overwritten pixels; the series
        # does (they hold the camera's 0, max pattern in the file).
        row_mid = height // 2
        assert np.array_equal(check[..., :row_mid, :], truth[..., :row_mid, :])
        assert np.array_equal(
            check[..., 0, row_mid, :], np.broadcast_to(frame[row_mid], (nfiles, width))
        )
        del check, truth
        ours, theirs = interleaved(as_array, from_files, repeat)
        rows.append(
            row(
                f"`np.asarray(series)`, {nfiles:,} x 1 x {height} x {width} uint16",
                ours,
                theirs,
                TARGET_READ,
                "speed >= 0.8x `np.fromfile` into `np.empty` stack "
                f"(time <= {TARGET_READ:.2f}x)",
            )
        )
        buffers = {
            "ours": np.empty(series.shape, series.dtype),
            "theirs": np.empty(series.shape, series.dtype),
        }

        def read_into() -> np.ndarray:
            return series.read(out=buffers["ours"])

        def fromfile_into() -> np.ndarray:
            stack = buffers["theirs"]
            for i, path in enumerate(paths):
                stack[i, 0] = np.fromfile(
                    path, np.uint16, count=pixels, offset=offset
                ).reshape(height, width)
            return stack

        ours, theirs = interleaved(read_into, fromfile_into, repeat)
        rows.append(
            row(
                "`series.read(out=buf)` (preallocated, pages already touched)",
                ours,
                theirs,
                None,
                "info: vs `np.fromfile` into the same kind of buffer",
            )
        )
        series.close()
        buffers.clear()
        shutil.rmtree(folder)

        # -- the Dask graph of a large series
        ngraph = spec["graph_files"]
        many = os.path.join(root, "many")
        os.mkdir(many)
        write_series(many, np.zeros((ngraph, 1, 4, 4), np.uint16), digits=5)
        import dask.array  # noqa: F401  (the import is not part of the build)

        times, opens = [], []
        for _ in range(repeat):
            # A new series each time: nothing about the graph is cached.
            start = time.perf_counter()
            big = DCIMGSeries(many)
            opens.append(time.perf_counter() - start)
            times.append(timed(lambda big=big: big.as_dask_array(chunks=1)))
            arr = big.as_dask_array(chunks=1)
            assert arr.numblocks[0] == ngraph
            big.close()
        rows.append(
            row(
                f"`as_dask_array(chunks=1)` of {ngraph:,} files (graph build)",
                times,
                None,
                TARGET_GRAPH_S,
                f"< {TARGET_GRAPH_S} s",
            )
        )
        rows.append(
            row(
                f"`DCIMGSeries(folder)` of those {ngraph:,} files (no target)",
                opens,
                None,
                None,
                "info",
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    try:
        import dask

        dask_version = dask.__version__
    except ImportError:  # pragma: no cover
        dask_version = "absent"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "os": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dcimg": dcimg.__version__,
            "dask": dask_version,
            "git": git_revision(),
        },
        "size": size,
        "files": nfiles,
        "frame": [height, width],
        "repeat": repeat,
        "statistic": "min decides PASS/FAIL; median also reported",
        "load_start": " ".join(f"{x:.2f}" for x in load_start),
        "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rows": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    v = results["versions"]
    lines = [
        f"## dcimg series benchmark — {results['date']}",
        "",
        f"- machine: {results['machine']['cpu']}, "
        f"{results['machine']['cores_usable']} usable cores, "
        f"{results['machine']['os']}",
        f"- versions: python {v['python']}, numpy {v['numpy']}, dcimg "
        f"{v['dcimg']} (git {v['git']}), dask {v['dask']}",
        f"- data: {results['files']:,} one-frame files of "
        f"{results['frame'][0]} x {results['frame'][1]} uint16 (stored pixels "
        "on); page cache warm",
        f"- method: candidate and baseline interleaved, {results['repeat']} runs "
        "each after a warm-up; **PASS/FAIL on the minimum**, medians in "
        f"brackets; load average {results['load_start']} at start, "
        f"{results['load_end']} at end",
        "",
        "| operation | dcimg min (median) | baseline min (median) | "
        "ratio min (median) | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ours = f"{fmt_time(r['ours_min_s'])} ({fmt_time(r['ours_median_s'])})"
        if "baseline_min_s" in r:
            base = (
                f"{fmt_time(r['baseline_min_s'])} ({fmt_time(r['baseline_median_s'])})"
            )
            ratio = f"{r['ratio_min']:.2f}x ({r['ratio_median']:.2f}x)"
        else:
            base = ratio = "— (absolute)"
        lines.append(
            f"| {r['operation']} | {ours} | {base} | {ratio} | {r['target']} | "
            f"{r['result']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--tmpdir", default=None, help="where to write the files")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--markdown", default=None, help="write the table here")
    args = parser.parse_args(argv)
    repeat = args.repeat or (7 if args.size == "full" else 3)
    results = run(args.size, repeat, args.tmpdir)
    table = markdown(results)
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
            fh.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
