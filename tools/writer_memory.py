"""Measure the memory and speed of ``dcimg.testing.write_dcimg`` on big files.

The writer streams frames to disk a bounded block at a time, so writing a
file of any size should cost a bounded amount of memory. This script writes
one file of the requested size in a fresh Python process and reports its
peak resident memory before and during the write, and the write speed::

    python tools/writer_memory.py --gigabytes 20 --source lazy
    python tools/writer_memory.py --gigabytes 20 --source memmap
    python tools/writer_memory.py --gigabytes 20 --source dask --version 0x7

Sources: ``lazy`` is an object that makes each 2048 x 2048 uint16 frame on
demand (``shape``, ``dtype`` and ``[k]`` only); ``memmap`` is a
``numpy.memmap`` of a sparse raw file of the same size (holes: no disk
space); ``dask`` is a ``dask.array`` of frames made chunk by chunk
(``--dask-chunk-frames``, default 4 frames = 32 MB). Dask itself needs two
to three times a chunk's size to compute one (about 140 MB for a 64 MB
chunk of this array, measured alone), so its chunks set the peak too.

The peak is the child's ``ru_maxrss``; the growth is that peak minus the
peak reached before the write starts (interpreter, NumPy, the source).
Pages of a memory-mapped source that the write has read are counted in the
resident size as well, though they are page cache that the kernel drops
when it needs the memory: the report also gives the peak of the process's
anonymous memory (``RssAnon`` of ``/proc/self/status``, sampled every 20
ms, Linux only), which is the memory the writer itself allocates.

With ``--metadata-frames N`` the script measures the reader instead: it
writes a framed file of ``N`` one-row frames (1 x 4 pixels, 16-byte
trailers) and reports the bytes per frame that
``DCIMGFile(path).metadata``, ``.timestamps`` and ``.framestamps`` cost,
measured with :mod:`tracemalloc` (the peak while they are computed, and what
stays allocated while the three are held; with ``--pread``, also through a
range reader, whose one request's buffer is reported apart, as
``span_bytes``); exit status 1 when the peak reaches
``--limit-bytes-per-frame`` (default 24)::

    python tools/writer_memory.py --metadata-frames 2000000

The reader then checks the file's shape and last frame. The output (and
the memory map's raw file) go to a temporary folder under
``--folder`` (default: the system's) and are deleted afterwards. Exit
status 1 when the growth reaches ``--limit-mb`` (default 256), 2 when the
write itself fails (its error is printed).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HEIGHT = WIDTH = 2048
FRAME_BYTES = HEIGHT * WIDTH * 2


def _peak_rss() -> int:
    """Return the peak resident set size of this process so far, in bytes."""
    import resource  # not on Windows, where the tests import this tool too

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss_anon() -> int | None:
    """Return the anonymous resident memory in bytes (Linux), else None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _Sampler(threading.Thread):
    """Record the largest ``RssAnon`` seen while running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_anon() or 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            now = _rss_anon()
            if now is not None:
                self.peak = max(self.peak, now)


class LazyFrames:
    """Frames made on demand: only ``shape``, ``dtype`` and ``[k]``."""

    def __init__(self, nframes: int) -> None:
        import numpy as np

        self.np = np
        self.shape = (nframes, HEIGHT, WIDTH)
        self.dtype = np.dtype(np.uint16)

    def __getitem__(self, k: int) -> Any:
        return self.np.full(self.shape[1:], k % 4096, dtype=self.dtype)


def _source(
    kind: str, nframes: int, folder: pathlib.Path, chunk_frames: int = 4
) -> Any:
    """Return the stack to write, without reading any of it."""
    import numpy as np

    if kind == "lazy":
        return LazyFrames(nframes)
    if kind == "memmap":
        raw = folder / "source.raw"
        with open(raw, "wb") as fh:
            fh.truncate(nframes * FRAME_BYTES)  # a hole: zeros, no disk space
        return np.memmap(raw, np.uint16, "r", shape=(nframes, HEIGHT, WIDTH))
    if kind == "dask":
        import dask.array as da

        shape, chunks = (nframes, HEIGHT, WIDTH), (chunk_frames, -1, -1)
        return da.zeros(shape, dtype=np.uint16, chunks=chunks) + np.uint16(7)
    raise ValueError(f"unknown source {kind!r}")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Write the file in this process and return the measurements."""
    from dcimg.testing import write_dcimg

    folder = pathlib.Path(args.folder)
    nframes = max(1, round(args.gigabytes * 1e9 / FRAME_BYTES))
    data = _source(args.source, nframes, folder, args.dask_chunk_frames)
    out = folder / "out.dcimg"
    before = _peak_rss()
    anon_before = _rss_anon()
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    write_dcimg(out, data, version=int(args.version, 0))
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    size = out.stat().st_size
    peak = _peak_rss()
    # The file must also be right: the reader sees the source's shape and
    # its last frame (read after the measurement, so it does not count).
    import numpy as np

    from dcimg import DCIMGFile

    with DCIMGFile(out) as f:
        if f.shape != tuple(data.shape):
            raise SystemExit(f"the reader sees shape {f.shape}, not {data.shape}")
        if not np.array_equal(f[nframes - 1], np.asarray(data[nframes - 1])):
            raise SystemExit("the last frame read back differs from the source")
    return {
        "source": args.source,
        "version": args.version,
        "dask_chunk_frames": args.dask_chunk_frames if args.source == "dask" else None,
        "frames": nframes,
        "bytes": size,
        "seconds": round(seconds, 2),
        "bytes_per_second": round(size / seconds),
        "peak_rss_before_mb": round(before / 2**20, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "peak_rss_growth_mb": round((peak - before) / 2**20, 1),
        "rss_anon_before_mb": None
        if anon_before is None
        else round(anon_before / 2**20, 1),
        "peak_rss_anon_mb": None
        if anon_before is None
        else round(sampler.peak / 2**20, 1),
    }


def traced_per_frame_data(f: Any) -> tuple[Any, int, int]:
    """Compute an open file's metadata, time stamps and frame counters, traced.

    Parameters
    ----------
    f : dcimg.DCIMGFile
        The file, whose per-frame data has not been computed yet.

    Returns
    -------
    metadata : dcimg.DCIMGMetadata
        ``f.metadata``.
    held : int
        Bytes that :mod:`tracemalloc` sees allocated while the three are held.
    peak : int
        The largest number of bytes allocated while they are computed.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        held = (f.metadata, f.timestamps, f.framestamps)
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held[0], now, peak


def metadata_memory(path: pathlib.Path, sources: tuple[str, ...] = ("map",)) -> dict:
    """Bytes per frame of a file's metadata, time stamps and frame counters.

    Parameters
    ----------
    path : pathlib.Path
        The file (any DCIMG file; one-row frames make the per-frame data
        dominate).
    sources : tuple of str
        ``"map"`` (the memory map) and/or ``"pread"`` (``mmap=False``).

    Returns
    -------
    dict
        Per source: ``peak`` and ``held`` bytes per frame (tracemalloc).
    """
    from dcimg import DCIMGFile

    report: dict[str, Any] = {}
    for source in sources:
        with DCIMGFile(path, mmap=source == "map") as f:
            frames = f.nfrms
            # A range reader holds one request's bytes at a time on top (the
            # fields are read as spans): a constant, not a cost per frame.
            reader = getattr(f._require_state().source, "reader", None)
            span = 0 if reader is None else reader.max_request
            _, now, peak = traced_per_frame_data(f)
        report[source] = {
            "frames": frames,
            "peak_bytes_per_frame": round((peak - span) / frames, 2),
            "held_bytes_per_frame": round(now / frames, 2),
            "span_bytes": span,
        }
    return report


def write_one_row_frames(path: pathlib.Path, frames: int) -> pathlib.Path:
    """Write ``frames`` frames of 1 x 4 uint16 pixels (16-byte trailers)."""
    import numpy as np

    from dcimg.testing import write_dcimg

    data = np.lib.stride_tricks.as_strided(
        np.arange(4, dtype=np.uint16), (frames, 1, 4), (0, 0, 2)
    )
    return write_dcimg(path, data, trailer_size=16)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement in a child process and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=20.0)
    parser.add_argument("--source", choices=["lazy", "memmap", "dask"], default="lazy")
    parser.add_argument("--version", default="0x1000000")
    parser.add_argument("--folder", default=None, help="where to write (temporary)")
    parser.add_argument("--limit-mb", type=float, default=256.0)
    parser.add_argument(
        "--dask-chunk-frames", type=int, default=4, help="frames per Dask chunk"
    )
    parser.add_argument(
        "--metadata-frames",
        type=int,
        default=0,
        help="measure the reader's per-frame data on a file of this many frames",
    )
    parser.add_argument("--limit-bytes-per-frame", type=float, default=24.0)
    parser.add_argument(
        "--pread", action="store_true", help="also measure with mmap=False"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.metadata_frames:
        with tempfile.TemporaryDirectory(dir=args.folder, prefix="dcimg-mem-") as tmp:
            path = write_one_row_frames(
                pathlib.Path(tmp) / "rows.dcimg", args.metadata_frames
            )
            sources = ("map", "pread") if args.pread else ("map",)
            report = metadata_memory(path, sources)
        print(json.dumps(report, indent=2))
        worst = max(r["peak_bytes_per_frame"] for r in report.values())
        return 0 if worst <= args.limit_bytes_per_frame else 1
    if args.child:
        print(json.dumps(child(args)))
        return 0
    with tempfile.TemporaryDirectory(dir=args.folder, prefix="dcimg-mem-") as tmp:
        command = [sys.executable, __file__, "--child", "--folder", tmp]
        command += ["--gigabytes", str(args.gigabytes), "--source", args.source]
        command += ["--version", args.version]
        command += ["--dask-chunk-frames", str(args.dask_chunk_frames)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            # Not a measurement (the write itself failed: a full disk, say):
            # status 2, so that it is never taken for "over the limit".
            sys.stderr.write(done.stderr)
            return 2
    report = json.loads(done.stdout)
    print(json.dumps(report, indent=2))
    return 0 if report["peak_rss_growth_mb"] < args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
