"""Benchmark: reading DCIMG bytes without a memory map.

Starts an S3-compatible server (moto's server mode) and an HTTP server that
honours Range requests, both on 127.0.0.1, stores synthetic DCIMG files on
them, and measures in one run:

1. **S3 throughput**: the whole object read through the range reader
   (:class:`dcimg._remote.FsspecReader`, default limits: concurrent requests
   of at most 64 MiB) against ``fs.cat_file`` of the same object (one
   request). Target: at least 0.8x the throughput of ``cat_file``.
2. **S3 time stamps of small frames**: the trailers of a 10,000-frame framed
   object of 64x64 frames. Target: at most 20 requests.
3. **HTTP time stamps of large frames**: the trailers of a 2,000-frame
   object of 256x256 frames. Target: less than 5 % of the object's bytes.
   (On HTTP because moto reads the whole object for every range it serves:
   2,000 ranges of a 260 MB object would take it many minutes. The HTTP
   server serves ranges from a memory map of a sparse file.)
4. **Local files without a map**: a whole file read through
   :class:`dcimg._ranges.PreadReader` into a buffer against a copy out of a
   memory map of it, warm page cache. Target: at least 0.8x.

Statistic: the best of ``--repeat`` runs (candidate and baseline interleaved,
order alternating) decides PASS/FAIL; medians are reported too. The
``DCIMGFile`` rows (``whole()`` through URLs and ``mmap=False``) are to be
added once the reader uses these classes.

Usage::

    python tools/bench_remote.py               # 500 MB object
    python tools/bench_remote.py --size tiny   # smoke run: seconds, no meaning
    python tools/bench_remote.py --json out.json --markdown out.md

No timing is asserted anywhere: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import mmap
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import dcimg
from dcimg.testing import write_dcimg, write_sparse_dcimg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import trailer_ranges  # noqa: E402
from servers import RangeHTTPServer, S3Server  # noqa: E402

SIZES: dict[str, dict[str, Any]] = {
    # 120 frames of 2048 x 1024 uint16: 503 MB.
    "full": {
        "frames": 120,
        "height": 1024,
        "width": 2048,
        "repeat": 3,
        "small_frames": 10_000,
        "large_frames": 2_000,
    },
    "tiny": {
        "frames": 8,
        "height": 256,
        "width": 256,
        "repeat": 1,
        "small_frames": 500,
        "large_frames": 100,
    },
}


@dataclass
class Row:
    """One line of the report."""

    name: str
    measured: str
    target: str
    passed: bool
    detail: str = ""


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    candidate: Callable[[], Any], baseline: Callable[[], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Time `candidate` and `baseline` `repeat` times, alternating who goes first."""
    ours, theirs = [], []
    for i in range(repeat):
        if i % 2:
            theirs.append(timed(baseline))
            ours.append(timed(candidate))
        else:
            ours.append(timed(candidate))
            theirs.append(timed(baseline))
    return ours, theirs


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[mmap.mmap]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        yield m


def bench_s3_throughput(s3: S3Server, big: Path, repeat: int) -> list[Row]:
    size = big.stat().st_size
    url = s3.put("big.dcimg", big.read_bytes())
    fs = s3.filesystem()
    remote = dcimg.DCIMGFile(url, storage_options=s3.storage_options)
    reader = remote._source.reader

    def through_reader() -> None:
        remote.whole()

    def cat_file() -> None:
        data = fs.cat_file(url)
        assert len(data) == size

    with dcimg.DCIMGFile(big) as local:
        same = np.array_equal(remote.whole(), local.whole())
    assert same, "DCIMGFile(url).whole() differs from the local file"
    ours, theirs = interleaved(through_reader, cat_file, repeat)
    ratio = min(theirs) / min(ours)  # throughput ratio
    mb = size / 1e6
    return [
        Row(
            f"S3: `DCIMGFile(url).whole()` of a {mb:.0f} MB object vs `fs.cat_file`",
            f"{ratio:.2f}x ({mb / min(ours):.0f} vs {mb / min(theirs):.0f} MB/s)",
            ">= 0.8x",
            ratio >= 0.8,
            f"reader {reader.requests // (repeat + 1)} requests of <= "
            f"{reader.max_request >> 20} MiB, {reader.max_concurrency} in flight; "
            f"median {mb / statistics.median(ours):.0f} vs "
            f"{mb / statistics.median(theirs):.0f} MB/s",
        )
    ]


def bench_s3_small_trailers(s3: S3Server, path: Path) -> list[Row]:
    size = path.stat().st_size
    url = s3.put("small.dcimg", path.read_bytes())
    trailers = trailer_ranges(path)
    f = dcimg.DCIMGFile(url, storage_options=s3.storage_options)
    reader = f._source.reader  # counts the header's requests too
    seconds = timed(lambda: f.timestamps)
    return [
        Row(
            f"S3: `DCIMGFile(url).timestamps`, {len(trailers):,} frames of 64x64",
            f"{reader.requests} requests",
            "<= 20 requests",
            reader.requests <= 20,
            f"{reader.bytes_read / size:.0%} of {size / 1e6:.0f} MB in {seconds:.2f} s",
        )
    ]


def bench_http_trailers(
    http: RangeHTTPServer, path: Path, side: int, target: str
) -> list[Row]:
    size = path.stat().st_size
    key = f"/{path.name}"
    with mapped(path) as m:
        http.files[key] = m
        try:
            trailers = trailer_ranges(path)
            with dcimg.DCIMGFile(http.url(key)) as f:
                reader = f._source.reader  # counts the header's requests too
                seconds = timed(lambda: f.timestamps)
            # Handlers may still hold a view of the map: wait for them before
            # reading the log and closing the map.
            http.wait_idle()
            sent = sum(r.sent for r in http.requests_for(key))
        finally:
            del http.files[key]
    assert sent == reader.bytes_read
    share = reader.bytes_read / size
    if target == "requests":
        measured, wanted, passed = (
            f"{reader.requests} requests",
            "<= 20 requests",
            reader.requests <= 20,
        )
        detail = f"{share:.0%} of {size / 1e6:.0f} MB in {seconds:.2f} s"
    else:
        measured, wanted, passed = f"{share:.2%} of the bytes", "< 5 %", share < 0.05
        detail = (
            f"{reader.requests} requests, {reader.bytes_read:,} of {size:,} bytes "
            f"in {seconds:.2f} s"
        )
    return [
        Row(
            f"HTTP: `DCIMGFile(url).timestamps`, {len(trailers):,} frames of "
            f"{side}x{side}",
            measured,
            wanted,
            passed,
            detail,
        )
    ]


def bench_local(big: Path, repeat: int) -> list[Row]:
    size = big.stat().st_size
    pread = dcimg.DCIMGFile(big, mmap=False)
    mapped_file = dcimg.DCIMGFile(big)
    reader = pread._source.reader

    def through_pread() -> None:
        pread.whole()

    def from_map() -> None:
        mapped_file.whole()

    assert np.array_equal(pread.whole(), mapped_file.whole())  # warms the cache
    ours, theirs = interleaved(through_pread, from_map, repeat)
    pread.close()
    mapped_file.close()
    ratio = min(theirs) / min(ours)
    mb = size / 1e6
    return [
        Row(
            f"local {mb:.0f} MB file: `DCIMGFile(path, mmap=False).whole()` vs "
            "the mapped `whole()` (warm)",
            f"{ratio:.2f}x ({mb / min(ours):.0f} vs {mb / min(theirs):.0f} MB/s)",
            ">= 0.8x",
            ratio >= 0.8,
            f"{reader.max_concurrency} threads, requests of "
            f"{reader.max_request >> 20} MiB",
        )
    ]


def write_big(path: Path, frames: int, height: int, width: int) -> Path:
    """Write a framed DCIMG file of noisy frames (real data, not holes)."""
    rng = np.random.default_rng(14)
    stack = rng.integers(100, 4000, (frames, height, width), dtype=np.uint16)
    return write_dcimg(path, stack, stored_pixels_row=height // 2)


def markdown(rows: list[Row]) -> str:
    lines = [
        "| measurement | result | target | pass | detail |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"| {r.name} | {r.measured} | {r.target} | {verdict} | {r.detail} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--repeat", type=int, help="timed runs per measurement")
    p.add_argument("--tmpdir", help="where to write the files (default: system)")
    p.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    p.add_argument("--markdown", metavar="PATH", help="save the table as Markdown")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = dict(SIZES[args.size])
    if args.repeat:
        config["repeat"] = args.repeat
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="dcimg-remote-") as tmp:
        folder = Path(tmp)
        print("writing files ...", file=sys.stderr, flush=True)
        big = write_big(
            folder / "big.dcimg", config["frames"], config["height"], config["width"]
        )
        small = write_sparse_dcimg(
            folder / "small.dcimg", config["small_frames"], 64, 64
        )
        large = write_sparse_dcimg(
            folder / "large.dcimg", config["large_frames"], 256, 256
        )
        print("local reads ...", file=sys.stderr, flush=True)
        rows += bench_local(big, config["repeat"])
        print("HTTP server ...", file=sys.stderr, flush=True)
        http = RangeHTTPServer().start()
        try:
            rows += bench_http_trailers(http, small, 64, "requests")
            rows += bench_http_trailers(http, large, 256, "bytes")
        finally:
            http.stop()
        print("S3 server ...", file=sys.stderr, flush=True)
        s3 = S3Server().start()
        try:
            rows += bench_s3_small_trailers(s3, small)
            rows += bench_s3_throughput(s3, big, config["repeat"])
        finally:
            s3.stop()

    table = markdown(rows)
    header = (
        f"dcimg remote benchmark ({args.size}): Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, best of {config['repeat']}"
    )
    print(header)
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "size": args.size,
                    "config": config,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
