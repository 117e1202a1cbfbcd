"""Check that dcimg scales to files of hundreds of gigabytes.

The script writes sparse DCIMG files (headers, trailers and footers only;
the pixels are holes that take no disk space, see
:func:`dcimg.testing.write_sparse_dcimg`) and measures:

1. a >= 100 GiB framed file: time to open it, and to read its first,
   middle and last frame (the times should not depend on the position);
2. a 100,000-frame packed file (~210 GB): time to build its Dask array with
   the default chunks, and the number of tasks;
3. a >= 20 GiB framed file: a chunked reduction over every pixel (with a
   float32 conversion), while a background thread samples the process's
   anonymous resident memory (``RssAnon`` in ``/proc/self/status``).

It prints a table of figures and removes the files.  The exit status is 1
when a target is missed (never with ``--quick``, which runs the same steps
on tiny files, for the smoke test).

Usage::

    python tools/scale.py [--dir DIR] [--quick] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import dcimg
from dcimg import _dask
from dcimg.testing import write_sparse_dcimg

GIB = 1 << 30


@dataclass
class Sizes:
    """Geometry of the three files."""

    big: tuple[int, int, int]
    many: tuple[int, int, int]
    reduce: tuple[int, int, int]


FULL = Sizes(
    big=(12_800, 2048, 2048),  # 100 GiB of uint16 pixels, framed 0x1000000
    many=(100_000, 1024, 1024),  # 195 GiB, packed 0x7
    reduce=(2_600, 2048, 2048),  # 20.3 GiB (21.8 GB), framed 0x2000000
)
QUICK = Sizes(big=(64, 64, 80), many=(2_000, 16, 16), reduce=(40, 64, 64))


@dataclass
class Row:
    """One line of the result table."""

    what: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Report:
    """The rows measured so far."""

    rows: list[Row] = field(default_factory=list)

    def add(
        self, what: str, value: str, target: str = "", ok: bool | None = None
    ) -> None:
        """Append a row and echo it."""
        self.rows.append(Row(what, value, target, ok))
        print(f"  {what}: {value}", flush=True)

    def table(self) -> str:
        """Return the rows as a Markdown table."""
        lines = ["| measurement | value | target | ok |", "|---|---|---|---|"]
        for row in self.rows:
            mark = "" if row.ok is None else ("yes" if row.ok else "NO")
            lines.append(f"| {row.what} | {row.value} | {row.target} | {mark} |")
        return "\n".join(lines)

    @property
    def failed(self) -> list[Row]:
        """Rows whose target was missed."""
        return [row for row in self.rows if row.ok is False]


class MemorySampler(threading.Thread):
    """Sample ``RssAnon`` and ``RssFile`` of this process in the background.

    Parameters
    ----------
    interval : float
        Seconds between samples.
    """

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop` is called."""
        while not self._stop_event.is_set():
            anon, file = rss()
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_file = max(self.peak_file, file)
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


def rss() -> tuple[int, int]:
    """Return ``(RssAnon, RssFile)`` of this process in bytes (0 if unknown)."""
    values = {"RssAnon:": 0, "RssFile:": 0}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                parts = line.split()
                if parts and parts[0] in values:
                    values[parts[0]] = int(parts[1]) * 1024
    except OSError:
        pass
    return values["RssAnon:"], values["RssFile:"]


def fmt_bytes(n: float) -> str:
    """Format a byte count with a binary unit."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_time(seconds: float) -> str:
    """Format a duration in a readable unit."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``func`` once; return (seconds, result)."""
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def allocated(path: pathlib.Path) -> int:
    """Bytes the file occupies on disk."""
    info = os.stat(path)
    blocks = getattr(info, "st_blocks", None)
    return info.st_size if blocks is None else blocks * 512


def check_sparse_support(directory: pathlib.Path) -> None:
    """Exit when ``directory`` cannot hold sparse files."""
    probe = directory / "sparse-probe.bin"
    try:
        with open(probe, "wb") as fh:
            fh.truncate(GIB)
            fh.write(b"x")
        used = allocated(probe)
    finally:
        probe.unlink(missing_ok=True)
    if used > GIB // 16:
        sys.exit(
            f"{directory} does not keep sparse files (a 1 GiB hole takes "
            f"{fmt_bytes(used)}); use --dir on ext4, XFS, Btrfs or tmpfs"
        )


def open_file(path: pathlib.Path) -> dcimg.DCIMGFile:
    """Open a file (no warnings are expected from these files)."""
    return dcimg.DCIMGFile(path)


def write(report: Report, label: str, path: pathlib.Path, **kwargs: Any) -> None:
    """Write a sparse file and report its size on disk."""
    seconds, _ = timed(lambda: write_sparse_dcimg(path, **kwargs))
    size = os.path.getsize(path)
    used = allocated(path)
    report.add(
        f"{label}: apparent size / on disk (written in {fmt_time(seconds)})",
        f"{size / 1e9:.1f} GB ({fmt_bytes(size)}) / {fmt_bytes(used)}",
    )


def step_big(report: Report, path: pathlib.Path, shape: tuple[int, ...]) -> None:
    """Open a huge framed file and time frame reads at its start, middle, end."""
    nframes, height, width = shape
    write(
        report,
        "big file",
        path,
        nframes=nframes,
        height=height,
        width=width,
        version=0x1000000,
        trailer_size=32,
        stored_pixels_row=height // 2 - 1,
    )
    first_open, f = timed(lambda: open_file(path))
    f.close()
    opens = [timed(lambda: open_file(path).close())[0] for _ in range(20)]
    report.add(
        "big file: open DCIMGFile (first / median of 20)",
        f"{fmt_time(first_open)} / {fmt_time(statistics.median(opens))}",
        "milliseconds",
        first_open < 0.05,
    )
    with open_file(path) as f:
        times = {}
        for label, index in (("first", 0), ("middle", nframes // 2), ("last", -1)):
            seconds, frame = timed(lambda index=index: f.frame(index))
            assert not frame.any()
            times[label] = seconds
        frame_bytes = height * width * f.byte_depth
        spread = max(times.values()) / max(min(times.values()), 1e-9)
        report.add(
            f"big file: read one {fmt_bytes(frame_bytes)} frame (first/middle/last)",
            " / ".join(fmt_time(t) for t in times.values()),
            "O(1): same at any position",
            None,
        )
        report.add("big file: slowest / fastest frame read", f"{spread:.2f}x")


def step_many(report: Report, path: pathlib.Path, shape: tuple[int, ...]) -> None:
    """Build the Dask array of a file with many frames."""
    nframes, height, width = shape
    write(
        report,
        f"{nframes:,}-frame file",
        path,
        nframes=nframes,
        height=height,
        width=width,
        version=0x7,
    )
    # Import Dask (and its array optimisations) first: the build does not
    # include that one-off cost, reported on its own.
    seconds, _ = timed(lambda: __import__("dask.array.optimization"))
    report.add("import dask.array (once per process)", fmt_time(seconds))
    with open_file(path) as f:
        first, arr = timed(f.as_dask_array)
        builds = [timed(f.as_dask_array)[0] for _ in range(20)]
    tasks = len(dict(arr.__dask_graph__()))
    report.add(
        f"{nframes:,}-frame file: build dask array (first / median of 20)",
        f"{fmt_time(first)} / {fmt_time(statistics.median(builds))}",
        "< 100 ms",
        first < 0.1,
    )
    report.add(
        f"{nframes:,}-frame file: tasks in the graph (chunks "
        f"{arr.chunksize[0]} frames, {fmt_bytes(arr.nbytes / arr.npartitions)})",
        f"{tasks:,}",
        "<= 2,000",
        tasks <= 2000,
    )
    report.add(
        f"{nframes:,}-frame file: pickled graph",
        fmt_bytes(len(pickle.dumps(dict(arr.__dask_graph__())))),
    )
    pick = arr[nframes // 2, 1, 1]
    first, value = timed(lambda: pick.compute(scheduler="sync"))
    again, value = timed(lambda: pick.compute(scheduler="sync"))
    assert value == 0
    report.add(
        f"{nframes:,}-frame file: arr[{nframes // 2}, 1, 1].compute() (first / again)",
        f"{fmt_time(first)} / {fmt_time(again)}",
    )


def step_reduce(
    report: Report, path: pathlib.Path, shape: tuple[int, ...], workers: int
) -> None:
    """Reduce a large file chunk by chunk while sampling anonymous memory."""
    nframes, height, width = shape
    write(
        report,
        "reduction file",
        path,
        nframes=nframes,
        height=height,
        width=width,
        version=0x2000000,
        trailer_size=32,
        stored_pixels_row=0,
    )
    import dask

    base_anon, _ = rss()
    sampler = MemorySampler()
    sampler.start()
    try:
        with open_file(path) as f:
            arr = f.as_dask_array(dtype=np.float32)
            total = arr.sum(dtype=np.float64)
            peak = arr.max(axis=0)
            seconds, (value, image) = timed(
                lambda: dask.compute(
                    total, peak, scheduler="threads", num_workers=workers
                )
            )
    finally:
        sampler.stop()
    assert value == 0 and not image.any(), "sparse pixels must read as zero"
    report.add(
        f"reduction: sum + max over t of {arr.nbytes / 2 / 1e9:.1f} GB "
        f"(as float32, {arr.npartitions} chunks, {workers} threads)",
        f"{fmt_time(seconds)} ({arr.nbytes / 2 / seconds / 1e9:.2f} GB/s of file)",
    )
    report.add(
        f"reduction: peak RssAnon ({sampler.samples} samples; before: "
        f"{fmt_bytes(base_anon)})",
        fmt_bytes(sampler.peak_anon),
        "< 2 GiB",
        sampler.peak_anon < 2 * GIB if sampler.samples else None,
    )
    report.add(
        "reduction: peak RssFile (page cache, mapped)", fmt_bytes(sampler.peak_file)
    )
    _dask.clear_cache()


def main(argv: list[str] | None = None) -> int:
    """Run the measurements; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir",
        type=pathlib.Path,
        default=pathlib.Path(tempfile.gettempdir()),
        help="where to write the sparse files (default: the temp directory)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny files only")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="reduction threads"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.quick:
        import dask

        # Several chunks even for the tiny files.
        dask.config.set({"array.chunk-size": "64 KiB"})

    args.dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.dir).free
    print(f"writing sparse files in {args.dir} ({fmt_bytes(free)} free)")
    if free < (256 << 20):
        sys.exit(f"not enough free disk space in {args.dir}: {fmt_bytes(free)}")
    check_sparse_support(args.dir)

    report = Report()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dcimg-scale-", dir=args.dir))
    try:
        print("1. a huge framed file")
        step_big(report, work / "big.dcimg", sizes.big)
        (work / "big.dcimg").unlink()
        print("2. a file of many frames")
        step_many(report, work / "many.dcimg", sizes.many)
        (work / "many.dcimg").unlink()
        print("3. a chunked reduction")
        step_reduce(report, work / "reduce.dcimg", sizes.reduce, args.workers)
    finally:
        _dask.clear_cache()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(report.table())
    if args.quick:
        return 0
    if report.failed:
        print("\nmissed: " + "; ".join(row.what for row in report.failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
