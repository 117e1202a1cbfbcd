"""Benchmark: dcimg read speed against plain NumPy baselines.

Writes one synthetic file per layout (packed 0x7 and framed 0x1000000 with
32-byte trailers, both with stored pixels), a raw file of the same pixels, and
a 100,000-frame file per layout for the open/time-stamp rows; warms the page
cache; then times every dcimg operation interleaved with its baseline and
prints ONE Markdown table of ratios with PASS/FAIL against the targets.

Statistic: the minimum of ``--repeat`` runs (interleaved candidate/baseline,
order alternating per repetition) decides PASS/FAIL; medians are reported too.

Usage::

    python tools/bench.py                 # 100 x 2048 x 2048 uint16 (800 MiB)
    python tools/bench.py --size tiny     # CI smoke: seconds, numbers meaningless
    python tools/bench.py --json out.json --markdown out.md

No timing is asserted anywhere: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import mmap
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import dcimg
from dcimg.testing import write_dcimg

PACKED = 0x7
FRAMED = 0x1000000

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "frames": 100,
        "height": 2048,
        "width": 2048,
        "repeat": 5,
        "reads": 20_000,
        "ts_frames": 100_000,
        "ts_side": 64,
        "ts_repeat": 21,
    },
    "tiny": {
        "frames": 4,
        "height": 64,
        "width": 64,
        "repeat": 3,
        "reads": 2_000,
        "ts_frames": 1_000,
        "ts_side": 16,
        "ts_repeat": 5,
    },
}

TARGET_WHOLE = 1.05
TARGET_FLOAT = 1.15
TARGET_FRAME = 1.15
TARGET_SMALL = 2.0
TARGET_DASK = 1.5
TARGET_OPEN_S = 5e-3
# First time stamps of a many-frame file, against reading it once.
TARGET_TIMESTAMPS = 1.0
# What confirming every read costs: the same read with the check
# on, against the check off, in the same run.
TARGET_CHECK = 1.05


# ----------------------------------------------------------------------
# Machine and versions


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "node": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": mem_gib,
        "os": platform.platform(),
    }


def versions() -> dict[str, str]:
    try:
        import dask

        dask_version = dask.__version__
    except ImportError:
        dask_version = "not installed"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dcimg": getattr(dcimg, "__version__", "?"),
        "dask": dask_version,
        "dcimg_source": source_id(),
    }


def source_id() -> str:
    """Identify the dcimg source measured: git commit, dirty flag, file hash.

    Other developers edit the package while benchmarks run; the hash of its
    ``.py``/``.pyx`` files tells two runs of different code apart.
    """
    pkg = os.path.dirname(os.path.abspath(dcimg.__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(pkg)):
        if name.endswith((".py", ".pyx", ".pxd")):
            digest.update(name.encode())
            with open(os.path.join(pkg, name), "rb") as fh:
                digest.update(fh.read())
    text = f"sources sha256 {digest.hexdigest()[:12]}"
    try:
        head = subprocess.run(
            ["git", "-C", pkg, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        status = subprocess.run(
            ["git", "-C", pkg, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return text
    if head.returncode == 0:
        dirty = "+uncommitted changes" if status.stdout.strip() else ""
        text = f"git {head.stdout.strip()}{dirty}, {text}"
    return text


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------
# Timing


def _time_once(fn: Callable[[], Any], cpu: list[float]) -> float:
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    t1 = time.perf_counter()
    cpu.append(time.process_time() - c0)
    # Freed outside the timed region, for candidate and baseline alike.
    del result
    return t1 - t0


@dataclass
class Timings:
    """Wall-clock times (what is judged) and process CPU times (for context)."""

    cand: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    cand_cpu: list[float] = field(default_factory=list)
    base_cpu: list[float] = field(default_factory=list)


def interleaved(
    candidate: Callable[[], Any], baseline: Callable[[], Any], repeat: int
) -> Timings:
    """Time both ``repeat`` times, alternating which goes first (one warm-up)."""
    candidate()
    baseline()
    t = Timings()
    for k in range(repeat):
        if k % 2:
            t.base.append(_time_once(baseline, t.base_cpu))
            t.cand.append(_time_once(candidate, t.cand_cpu))
        else:
            t.cand.append(_time_once(candidate, t.cand_cpu))
            t.base.append(_time_once(baseline, t.base_cpu))
    return t


@dataclass
class Row:
    """One line of the table: a dcimg operation, its baseline and its target."""

    operation: str
    layout: str
    target: str
    cand: list[float] = field(default_factory=list)
    base: list[float] | None = None
    limit: float | None = None  # ratio limit, or absolute seconds when base is None
    note: str = ""
    cand_cpu: list[float] | None = None
    base_cpu: list[float] | None = None

    def record(self, t: Timings) -> None:
        """Store the timings of :func:`interleaved`."""
        self.cand, self.base = t.cand, t.base
        self.cand_cpu, self.base_cpu = t.cand_cpu, t.base_cpu

    @property
    def skipped(self) -> bool:
        """True when the operation could not be run (e.g. no dask array)."""
        return not self.cand

    def ratio(self, stat: Callable[[list[float]], float]) -> float | None:
        """Candidate over baseline, each reduced with ``stat``; None if absolute."""
        if self.skipped or self.base is None:
            return None
        return stat(self.cand) / stat(self.base)

    @property
    def verdict(self) -> str:
        """PASS/FAIL against the target, judged on the minimum; SKIP."""
        if self.skipped:
            return "SKIP"
        if self.limit is None:
            return "info"
        if self.base is None:
            value = min(self.cand)
        else:
            value = self.ratio(min)
        return "PASS" if value <= self.limit else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """All timings and results, for ``--json``."""
        return {
            "operation": self.operation,
            "layout": self.layout,
            "target": self.target,
            "limit": self.limit,
            "candidate_s": self.cand,
            "baseline_s": self.base,
            "candidate_cpu_s": self.cand_cpu,
            "baseline_cpu_s": self.base_cpu,
            "ratio_min": self.ratio(min),
            "ratio_median": self.ratio(_median),
            "result": self.verdict,
            "note": self.note,
        }


def _median(values: list[float]) -> float:
    return float(np.median(values))


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


# ----------------------------------------------------------------------
# Files


@dataclass
class Files:
    """Paths of the files written for one run."""

    tmpdir: str
    raw: str
    main: dict[str, str]
    many: dict[str, str]
    stored_row: int


LAYOUTS = {"packed": {"version": PACKED}, "framed-32": {"version": FRAMED}}


def stored_row_for(height: int) -> int:
    # 1023 is where a full-frame ORCA camera puts them; the middle otherwise.
    return 1023 if height > 1023 else height // 2


def write_files(
    tmpdir: str, frames: int, height: int, width: int, ts_frames: int, ts_side: int
) -> Files:
    rng = np.random.default_rng(6)
    data = rng.integers(0, 1 << 16, (frames, height, width), dtype=np.uint16)
    raw = os.path.join(tmpdir, "pixels.raw")
    data.tofile(raw)
    row = stored_row_for(height)
    main = {}
    for name, opts in LAYOUTS.items():
        path = os.path.join(tmpdir, f"main-{name}.dcimg")
        write_dcimg(path, data, trailer_size=32, stored_pixels_row=row, **opts)
        main[name] = path
    del data
    gc.collect()
    small = np.zeros((ts_frames, ts_side, ts_side), np.uint16)
    many = {}
    for name, opts in LAYOUTS.items():
        path = os.path.join(tmpdir, f"many-{name}.dcimg")
        write_dcimg(
            path,
            small,
            trailer_size=32,
            stored_pixels_row=stored_row_for(ts_side),
            **opts,
        )
        many[name] = path
    del small
    gc.collect()
    # Flush dirty pages now, so write-back does not run during the timings.
    os.sync()
    return Files(tmpdir, raw, main, many, row)


def warm(path: str) -> None:
    """Read a file once so that it sits in the page cache."""
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(16 << 20)
        while fh.readinto(buf):
            pass


def plain_view(path: str, layout: Any) -> tuple[mmap.mmap, np.ndarray]:
    """Map a DCIMG file; return a plain strided ndarray of its frames (no dcimg)."""
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.ndarray(
        (layout.frames, layout.height, layout.width),
        dtype="<u2",
        buffer=mapping,
        offset=layout.data_offset,
        strides=(layout.frame_stride, layout.bytes_per_row, 2),
    )
    return mapping, view


# ----------------------------------------------------------------------
# The benchmark


def _time_preallocated(f: Any, raw: np.ndarray, repeat: int) -> Timings:
    """Time ``whole(out=)`` against ``np.copyto`` into buffers made once."""
    buf_dcimg = np.zeros(raw.shape, raw.dtype)
    buf_numpy = np.zeros(raw.shape, raw.dtype)
    return interleaved(
        lambda: f.whole(out=buf_dcimg), lambda: np.copyto(buf_numpy, raw), repeat
    )


def bench_layout(
    name: str, path: str, raw: np.ndarray, files: Files, args: argparse.Namespace
) -> list[Row]:
    rows: list[Row] = []
    repeat = args.repeat
    f = dcimg.DCIMGFile(path)
    n, h, w = f.shape
    # Sanity: the instrument must measure correct reads.
    if not np.array_equal(f.whole(), raw):
        raise SystemExit(f"{path}: whole() differs from the pixels written")
    mapping, view = plain_view(path, f.layout)
    view.sum()  # fault the pages of this mapping in, as dcimg's are by now

    def memcpy_whole() -> np.ndarray:
        out = np.empty(raw.shape, raw.dtype)
        np.copyto(out, raw)
        return out

    row = Row("`whole()`", name, f"<= {TARGET_WHOLE}x memcpy", limit=TARGET_WHOLE)
    row.record(interleaved(f.whole, memcpy_whole, repeat))
    rows.append(row)

    # Not a target: the copy alone, without allocating 800 MB per run.  On
    # this VM a fresh large allocation sometimes costs several times the copy
    # (kernel time in page faults), which the row above includes.
    row = Row(
        "`whole(out=buf)` (preallocated; no target)",
        name,
        "info: vs `np.copyto(buf, raw)`",
    )
    row.record(_time_preallocated(f, raw, repeat))
    rows.append(row)

    row = Row(
        "`whole(dtype=np.float32)`",
        name,
        f"<= {TARGET_FLOAT}x `astype(float32)`",
        limit=TARGET_FLOAT,
    )
    row.record(
        interleaved(
            lambda: f.whole(dtype=np.float32), lambda: raw.astype(np.float32), repeat
        )
    )
    rows.append(row)

    def frames_dcimg() -> None:
        for i in range(n):
            f.frame(i)

    def frames_memcpy() -> None:
        for i in range(n):
            out = np.empty((h, w), raw.dtype)
            np.copyto(out, raw[i])

    row = Row(
        f"`frame(i)` for all {n} frames",
        name,
        f"<= {TARGET_FRAME}x memcpy",
        limit=TARGET_FRAME,
    )
    row.record(interleaved(frames_dcimg, frames_memcpy, repeat))
    rows.append(row)

    # Small windows that all cross the stored-pixel row (so every read has
    # to put the overwritten pixels back), cycling over the frames.
    srow = files.stored_row
    ys = [min(max(srow - k, 0), h - 10) for k in range(10)]
    pairs = [(k % n, ys[k % len(ys)]) for k in range(args.reads)]

    def small_dcimg() -> None:
        for i, y in pairs:
            f[i, y : y + 10, 0:10]

    def small_numpy() -> None:
        for i, y in pairs:
            np.array(view[i, y : y + 10, 0:10])

    row = Row(
        f"{args.reads:,} reads `f[i, y:y+10, 0:10]` across the stored row",
        name,
        f"<= {TARGET_SMALL}x `np.array(view[...])`",
        limit=TARGET_SMALL,
    )
    row.record(interleaved(small_dcimg, small_numpy, repeat))
    rows.append(row)

    row = Row(
        "`as_dask_array().sum().compute()`",
        name,
        f"<= {TARGET_DASK}x `whole()`",
        limit=TARGET_DASK,
    )
    try:
        f.as_dask_array().sum().compute()
    except (NotImplementedError, ImportError, AttributeError) as exc:
        row.note = f"n/a: dask array not available ({type(exc).__name__})"
    else:
        row.record(
            interleaved(lambda: f.as_dask_array().sum().compute(), f.whole, repeat)
        )
    rows.append(row)
    if not row.skipped:
        # The same with zero-copy chunks (unguarded views of the map).
        views = Row(
            "`as_dask_array(copy=False).sum().compute()`",
            name,
            f"<= {TARGET_DASK}x `whole()`",
            limit=TARGET_DASK,
        )
        views.record(
            interleaved(
                lambda: f.as_dask_array(copy=False).sum().compute(), f.whole, repeat
            )
        )
        rows.append(views)

    if not row.skipped:
        # The floor: Dask's own sum of the same pixels already in memory (no
        # file, no copy): what NumPy's reduction alone costs against whole().
        import dask.array as da

        in_memory = da.from_array(f.whole(), chunks=f.as_dask_array().chunksize)
        floor = Row(
            "Dask `sum()` of the same array already in memory (the floor)",
            name,
            "reference for the row above",
        )
        floor.record(interleaved(lambda: in_memory.sum().compute(), f.whole, repeat))
        rows.append(floor)
        in_memory = None

    rows += bench_check_cost(f, name, pairs, args)
    view = None  # release the buffer before closing the mapping
    mapping.close()
    f.close()
    return rows


def _confirming(on: bool) -> None:
    """Switch the check after every copy on or off for files opened next."""
    from dcimg import _dask, _source

    _source.CONFIRM = on
    _dask.clear_cache()  # the Dask tasks' files are opened again


def bench_check_cost(
    f: Any, name: str, pairs: list[tuple[int, int]], args: argparse.Namespace
) -> list[Row]:
    """Time reads with the check after each copy against the same without it.

    The check (see ``dcimg._source``): after every copy from the map the
    kernel reads one byte of the page after the bytes copied, under the
    fault guard, and reads that reach the file's last page look at the
    file's size (``stat``).  Both sides run the same code on the same file
    opened twice, once with the check and once without (``CONFIRM``, read
    when a file is opened), so the ratio is the check's cost alone,
    whatever the machine's load.
    """
    from dcimg import _source

    n = f.nfrms
    switch = _confirming
    if not hasattr(_source, "CONFIRM"):  # dcimg before the check existed

        def switch(on: bool) -> None:
            raise AttributeError("no check to switch off")

    try:
        switch(False)
        plain = type(f)(f.file_path)
    except AttributeError:
        plain = f
    finally:
        if hasattr(_source, "CONFIRM"):
            switch(True)

    def frames(f: Any) -> None:
        for i in range(n):
            f.frame(i)

    def small(f: Any) -> None:
        for i, y in pairs:
            f[i, y : y + 10, 0:10]

    def stamps(f: Any) -> Any:
        f._require_state().cache.clear()
        return f.timestamps

    cases: list[tuple[str, Callable[[Any], Any]]] = [
        ("`whole()`", lambda f: f.whole()),
        ("`whole(dtype=np.float32)`", lambda f: f.whole(dtype=np.float32)),
        (f"`frame(i)` for all {n} frames", frames),
        (f"{args.reads:,} reads `f[i, y:y+10, 0:10]`", small),
        ("`.timestamps` (read again)", stamps),
        (
            "`as_dask_array().sum().compute()`",
            lambda f: f.as_dask_array().sum().compute(),
        ),
    ]
    rows = []
    for label, read in cases:

        def checked(read: Callable[[Any], Any] = read) -> Any:
            switch(True)
            return read(f)

        def unchecked(read: Callable[[Any], Any] = read) -> Any:
            switch(False)
            return read(plain)

        row = Row(
            f"check cost: {label}",
            name,
            f"<= {TARGET_CHECK}x without the check",
            limit=TARGET_CHECK,
        )
        try:
            row.record(interleaved(checked, unchecked, args.repeat))
            switch(True)
        except (ImportError, AttributeError) as exc:  # dask missing, old dcimg
            row.cand = []
            row.note = f"n/a ({type(exc).__name__})"
        rows.append(row)
    if plain is not f:
        plain.close()
    return rows


def bench_open(name: str, path: str, args: argparse.Namespace) -> list[Row]:
    """Open and ``timestamps`` of a many-frame file, a fresh object each time."""
    t_open: list[float] = []
    t_ts: list[float] = []
    t_whole: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(args.ts_repeat + 1):
            gc.collect()
            t0 = time.perf_counter()
            f = dcimg.DCIMGFile(path)
            t1 = time.perf_counter()
            stamps = f.timestamps
            t2 = time.perf_counter()
            if len(stamps) != f.nfrms:
                raise SystemExit(f"{path}: {len(stamps)} time stamps, {f.nfrms} frames")
            f.close()
            del f, stamps
            # The baseline of the next row: the whole file read once through a
            # fresh map, as the time stamps were (page cache warm for both).
            gc.collect()
            f = dcimg.DCIMGFile(path)
            t3 = time.perf_counter()
            pixels = f.whole()
            t4 = time.perf_counter()
            f.close()
            del f, pixels
            if k:  # the first run is a warm-up
                t_open.append(t1 - t0)
                t_ts.append(t2 - t1)
                t_whole.append(t4 - t3)
    n = args.ts_frames
    target = f"<= {TARGET_OPEN_S * 1e3:g} ms"
    return [
        Row(f"open `DCIMGFile(path)`, {n:,} frames", name, target, t_open, None,
            TARGET_OPEN_S),
        Row(f"`.timestamps`, {n:,} frames", name, target, t_ts, None, TARGET_OPEN_S),
        Row(f"first time stamps vs first full read, {n:,} frames", name,
            f"<= {TARGET_TIMESTAMPS}x", t_ts, t_whole, TARGET_TIMESTAMPS),
    ]  # fmt: skip


# ----------------------------------------------------------------------
# Output


def markdown(rows: list[Row], info: dict[str, Any]) -> str:
    m, v = info["machine"], info["versions"]
    lines = [
        f"## dcimg benchmark — {info['date']}",
        "",
        f"- machine: {m['node']}, {m['cpu']}, {m['cores']} cores "
        f"({m['cores_usable']} usable), {m['memory_gib']} GiB memory, {m['os']}",
        f"- versions: python {v['python']}, numpy {v['numpy']}, "
        f"dcimg {v['dcimg']} ({v['dcimg_source']}), dask {v['dask']}",
        f"- data: {info['shape'][0]} x {info['shape'][1]} x {info['shape'][2]} "
        f"uint16 ({info['mib']:.1f} MiB) per layout, stored pixels at row "
        f"{info['stored_row']}; open/timestamps file: {info['ts_frames']:,} frames "
        f"of {info['ts_side']}x{info['ts_side']}",
        f"- method: page cache warm; candidate and baseline interleaved, "
        f"{info['repeat']} runs each after a warm-up (open/timestamps: "
        f"{info['ts_repeat']} runs, fresh object each); **PASS/FAIL on the minimum**"
        f", medians in brackets; load average {info['load_start']} at start, "
        f"{info['load_end']} at end",
    ]
    busy = max(info["load_start_1min"], info["load_end_1min"])
    if busy > m["cores_usable"]:
        lines.append(
            f"- **machine busy**: load average {busy:.1f} on {m['cores_usable']} "
            "cores; other processes took CPU time, so expect noise (ratios of "
            "interleaved runs are steadier than the absolute times)"
        )
    lines += [
        "",
        "| operation | layout | dcimg min (median) | baseline min (median) "
        "| ratio min (median) | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.skipped:
            cells = [r.note or "n/a", "—", "—"]
        else:
            cand = f"{fmt_time(min(r.cand))} ({fmt_time(_median(r.cand))})"
            if r.base is None:
                base = ratio = "— (absolute)"
            else:
                base = f"{fmt_time(min(r.base))} ({fmt_time(_median(r.base))})"
                ratio = f"{r.ratio(min):.2f}x ({r.ratio(_median):.2f}x)"
            cells = [cand, base, ratio]
        lines.append(
            f"| {r.operation} | {r.layout} | "
            + " | ".join(cells)
            + f" | {r.target} | {r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--frames", type=int, help="frames of the main files")
    p.add_argument("--height", type=int, help="frame height of the main files")
    p.add_argument("--width", type=int, help="frame width of the main files")
    p.add_argument("--repeat", type=int, help="timed runs per measurement")
    p.add_argument("--reads", type=int, help="number of small reads")
    p.add_argument("--ts-frames", type=int, help="frames of the open/ts file")
    p.add_argument("--ts-side", type=int, help="frame side of the open/ts file")
    p.add_argument("--ts-repeat", type=int, help="runs of open/timestamps")
    p.add_argument("--tmpdir", help="where to write the files (default: system)")
    p.add_argument("--keep", action="store_true", help="keep the files written")
    p.add_argument("--json", metavar="PATH", help="save all timings as JSON")
    p.add_argument("--markdown", metavar="PATH", help="save the table as Markdown")
    args = p.parse_args(argv)
    for key, value in SIZES[args.size].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.height < 10 or args.width < 10:
        p.error("frames must be at least 10x10 (the small reads are 10x10)")
    if args.ts_side < 4:
        p.error("--ts-side must be at least 4 (8 stored bytes per row)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmpdir = tempfile.mkdtemp(prefix="dcimg-bench-", dir=args.tmpdir)
    load_start = loadavg()
    try:
        t0 = time.perf_counter()
        files = write_files(
            tmpdir, args.frames, args.height, args.width, args.ts_frames, args.ts_side
        )
        for path in [files.raw, *files.main.values(), *files.many.values()]:
            warm(path)
        print(
            f"# files written and cached in {time.perf_counter() - t0:.1f} s "
            f"({tmpdir})",
            file=sys.stderr,
        )
        shape = (args.frames, args.height, args.width)
        raw_map = np.memmap(files.raw, dtype=np.uint16, mode="r", shape=shape)
        raw = np.asarray(raw_map)  # a plain ndarray over the map
        raw.sum()  # fault the raw map's pages in
        rows: list[Row] = []
        for name, path in files.main.items():
            rows += bench_layout(name, path, raw, files, args)
        for name, path in files.many.items():
            rows += bench_open(name, path, args)
        del raw, raw_map
    finally:
        if args.keep:
            print(f"# files kept in {tmpdir}", file=sys.stderr)
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)

    load_end = loadavg()
    # One row order: operation by operation, both layouts together.
    order = {op: k for k, op in enumerate(dict.fromkeys(r.operation for r in rows))}
    rows.sort(key=lambda r: order[r.operation])
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": machine_info(),
        "versions": versions(),
        "size": args.size,
        "shape": list(shape),
        "mib": float(np.prod(shape)) * 2 / 2**20,
        "stored_row": files.stored_row,
        "ts_frames": args.ts_frames,
        "ts_side": args.ts_side,
        "repeat": args.repeat,
        "ts_repeat": args.ts_repeat,
        "reads": args.reads,
        "statistic": "min decides PASS/FAIL; median also reported",
        "load_start": " ".join(f"{x:.2f}" for x in load_start),
        "load_end": " ".join(f"{x:.2f}" for x in load_end),
        "load_start_1min": load_start[0],
        "load_end_1min": load_end[0],
    }
    text = markdown(rows, info)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({**info, "rows": [r.as_dict() for r in rows]}, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
