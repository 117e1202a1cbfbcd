"""Benchmark: a 2,000-file series opening as one napari layer.

Writes a series of numbered files (default 2,000 files of 2 frames of
256 x 256 uint16, with time stamps), warms the page cache, then times, each
``--repeat`` times after a warm-up, with a fresh series every time:

- ``ViewerModel().open(folder, plugin="dcimg")``: napari's own ``open`` (the
  window's, without the window), which reads the folder with this plugin and
  adds the layer (napari then reads the frame it shows); target < 2 s;
- the plugin's reader alone (``napari_get_reader(folder)(folder)``), in the
  default mode (lazy: more than 100 files) and with
  ``DCIMG_NAPARI_LOAD=memory``;
- where the time goes: ``DCIMGSeries(folder)``, its metadata, time stamps
  and frame counters (every file's), the contrast limits (five frames), the
  Dask array;
- the baseline, measured in the same run: opening every file, reading its
  first 4 KiB and closing it (``os.open``/``os.read``/``os.close``), the
  least any reader that looks at every file's header costs.

Statistic: the minimum of the runs decides PASS/FAIL; medians are reported
too.  Usage::

    python tools/bench_napari.py                 # 2,000 files
    python tools/bench_napari.py --size tiny     # smoke test: seconds
    python tools/bench_napari.py --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

# The timing helpers of the series benchmark, beside this script.
from bench_series import fmt_time, timed  # noqa: E402

import dcimg
from dcimg import DCIMGSeries, _napari
from dcimg.testing import write_dcimg

SIZES: dict[str, dict[str, int]] = {
    "full": {"files": 2000, "frames": 2, "height": 256, "width": 256},
    "tiny": {"files": 150, "frames": 2, "height": 16, "width": 16},
}
TARGET_OPEN_S = 2.0


def runs(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Time ``fn`` ``repeat`` times after one warm-up run."""
    fn()
    return [timed(fn) for _ in range(repeat)]


def write_folder(folder: str, files: int, frames: int, height: int, width: int) -> None:
    """Write the series.

    File k holds the value k in every pixel; frames 10 ms apart, files 1 s.
    """
    os.makedirs(folder)
    t0 = 1_700_000_000_000_000
    for k in range(files):
        data = np.full((frames, height, width), k % 65536, np.uint16)
        write_dcimg(
            os.path.join(folder, f"cell_{k:04d}.dcimg"),
            data,
            timestamps_us=t0 + k * 1_000_000 + np.arange(frames) * 10_000,
            stored_pixels_row=None,
        )


def header_baseline(paths: list[str]) -> Callable[[], int]:
    def read_headers() -> int:
        total = 0
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                total += len(os.read(fd, 4096))
            finally:
                os.close(fd)
        return total

    return read_headers


def register_plugin() -> None:
    """Make sure npe2 knows the plugin.

    An editable install hides its manifest from npe2 (see
    tests/test_napari.py): register it from the source tree then.
    """
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    if "dcimg" not in manager._manifests:
        source = os.path.join(os.path.dirname(__file__), "..", "dcimg", "napari.yaml")
        manager.register(npe2.PluginManifest.from_file(os.path.abspath(source)))


def run(size: str, repeat: int, tmpdir: str | None) -> dict[str, Any]:
    from napari.components import ViewerModel

    register_plugin()

    shape = SIZES[size]
    work = tempfile.mkdtemp(prefix="dcimg-bench-napari-", dir=tmpdir)
    folder = os.path.join(work, "acq")
    rows: list[dict[str, Any]] = []
    try:
        start = time.perf_counter()
        write_folder(folder, **shape)
        written = time.perf_counter() - start
        paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
        for path in paths:  # warm the page cache
            with open(path, "rb") as handle:
                while handle.read(1 << 20):
                    pass

        baseline = runs(header_baseline(paths), repeat)

        def viewer_open() -> Any:
            viewer = ViewerModel()
            (layer,) = viewer.open(folder, plugin="dcimg")
            assert layer.data.shape[0] == shape["files"]
            assert layer.metadata["timestamps"].shape == (
                shape["files"],
                shape["frames"],
            )
            return layer

        def reader(mode: str) -> Callable[[], Any]:
            def read() -> Any:
                os.environ[_napari.LOAD_ENV] = mode
                try:
                    ((data, _, _),) = _napari.napari_get_reader(folder)(folder)
                finally:
                    del os.environ[_napari.LOAD_ENV]
                return data

            return read

        def add(
            operation: str, ours: list[float], target: float | None, text: str
        ) -> None:
            best = min(ours)
            entry: dict[str, Any] = {
                "operation": operation,
                "ours_min_s": best,
                "ours_median_s": statistics.median(ours),
                "baseline_min_s": min(baseline),
                "ratio_min": best / min(baseline),
                "target": text,
                "result": "info"
                if target is None
                else ("PASS" if best < target else "FAIL"),
            }
            rows.append(entry)

        n = shape["files"]
        add(
            f'`ViewerModel().open(folder, plugin="dcimg")`, {n:,} files: one layer',
            runs(viewer_open, repeat),
            TARGET_OPEN_S,
            f"< {TARGET_OPEN_S:g} s",
        )
        lazy = reader("auto")()
        add(
            f"reader alone, default mode ({type(lazy).__name__})",
            runs(reader("auto"), repeat),
            None,
            "info",
        )
        eager = reader("memory")()
        add(
            f"reader alone, `DCIMG_NAPARI_LOAD=memory` ({type(eager).__name__})",
            runs(reader("memory"), repeat),
            None,
            "info",
        )
        del lazy, eager

        add(
            "`DCIMGSeries(folder)`",
            runs(lambda: DCIMGSeries(folder), repeat),
            None,
            "info",
        )

        def metadata(series_of: Callable[[], Any]) -> Callable[[], Any]:
            def gather() -> Any:
                series = series_of()
                try:
                    return _napari._layer_metadata(series)
                finally:
                    series.close()

            return gather

        add(
            "layer metadata: series metadata, time stamps, counters (every file), "
            "as the reader opens the series",
            runs(metadata(lambda: _napari._open_series(folder)), repeat),
            None,
            "info",
        )
        add(
            "the same with `DCIMGSeries(folder)` (its default cache of "
            f"{dcimg.series.DEFAULT_CACHE_SIZE} open files)",
            runs(metadata(lambda: DCIMGSeries(folder)), repeat),
            None,
            "info",
        )

        def limits() -> Any:
            series = DCIMGSeries(folder)
            return _napari._contrast_limits(series)

        add(
            "contrast limits (5 frames) incl. opening",
            runs(limits, repeat),
            None,
            "info",
        )
        add(
            "`as_dask_array()` incl. opening",
            runs(lambda: DCIMGSeries(folder).as_dask_array(), repeat),
            None,
            "info",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
        ),
        "versions": (
            f"python {platform.python_version()}, numpy {np.__version__}, "
            f"dcimg {getattr(dcimg, '__version__', '?')}"
        ),
        "data": (
            f"{shape['files']:,} files of {shape['frames']} frames of "
            f"{shape['height']} x {shape['width']} uint16, written in "
            f"{written:.1f} s; page cache warm"
        ),
        "repeat": repeat,
        "load": os.getloadavg(),
        "baseline": (
            f"open + read 4 KiB + close of each file: {fmt_time(min(baseline))} "
            f"(median {fmt_time(statistics.median(baseline))})"
        ),
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## dcimg napari series benchmark — {report['date']}",
        "",
        f"- machine: {report['machine']}",
        f"- versions: {report['versions']}",
        f"- data: {report['data']}",
        f"- method: {report['repeat']} runs after a warm-up, fresh series each "
        f"time; PASS/FAIL on the minimum; load average at end "
        f"{' '.join(f'{x:.2f}' for x in report['load'])}",
        f"- baseline: {report['baseline']}",
        "",
        "| operation | min (median) | / baseline (min) | target | result |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['operation']} | {fmt_time(row['ours_min_s'])} "
            f"({fmt_time(row['ours_median_s'])}) | {row['ratio_min']:.1f}x | "
            f"{row['target']} | {row['result']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        report = run(args.size, args.repeat, args.tmpdir)
    text = markdown(report)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0 if all(r["result"] != "FAIL" for r in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
