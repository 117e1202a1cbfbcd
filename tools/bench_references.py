"""Benchmark: kerchunk reference files of DCIMG files (docs/zarr.rst).

Measures, in one run, the targets of issue 25:

1. **Reference size per frame** of a 100,000-frame file of small frames
   (16 x 16 uint16, framed and packed-with-stored-pixels), with the default
   chunks and with one frame per chunk (one reference per frame, the worst
   case). Target: at most 200 bytes per frame.
2. **Writing the references** of those files (open, read the time stamps,
   write the JSON). Target: less than 1 s.
3. **Whole-file read over HTTP** (the test server of ``tests/servers.py`` on
   127.0.0.1): ``zarr.open_group("reference://...")["0"][...]`` against
   ``DCIMGFile(url).whole()`` of the same file, interleaved, in the same run.
   Targets: time ratio at most 1.3 (medians) and at most 2x the requests.

Usage::

    python tools/bench_references.py                # 256 MiB file over HTTP
    python tools/bench_references.py --size tiny    # smoke run, no meaning
    python tools/bench_references.py --markdown out.md

No timing is asserted anywhere: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import dcimg
from dcimg.testing import write_dcimg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import RangeHTTPServer  # noqa: E402

HTTP_OPTIONS = {"remote_protocol": "http", "remote_options": {"asynchronous": True}}


class Ramp:
    """Frames made on demand (never all in memory)."""

    def __init__(self, frames: int, height: int, width: int) -> None:
        self.shape = (frames, height, width)
        self.dtype = np.dtype(np.uint16)

    def __getitem__(self, k: int) -> np.ndarray:
        base = np.arange(self.shape[1] * self.shape[2], dtype=np.uint16)
        return (base + np.uint16(k % 65536)).reshape(self.shape[1:])


def reference_rows(folder: Path, frames: int) -> list[dict[str, Any]]:
    rows = []
    for version, label in ((0x1000000, "framed 0x1000000"), (0x7, "packed 0x7")):
        path = write_dcimg(
            folder / f"many-{version}.dcimg",
            Ramp(frames, 16, 16),
            version=version,
            stored_pixels_row=3,
        )
        for chunks in ("auto", 1):
            out = folder / f"many-{version}-{chunks}.json"
            times = []
            for _ in range(3):
                start = time.perf_counter()
                dcimg.write_references(path, out, chunks=chunks)
                times.append(time.perf_counter() - start)
            size = out.stat().st_size
            rows.append(
                {
                    "file": f"{label}, {frames} frames of 16x16",
                    "chunks": chunks,
                    "bytes": size,
                    "bytes_per_frame": size / frames,
                    "write_s": min(times),
                }
            )
    return rows


def http_rows(folder: Path, frames: int, repeat: int) -> dict[str, Any]:
    import zarr

    stack = Ramp(frames, 512, 512)
    path = write_dcimg(folder / "big.dcimg", stack, version=0x1000000)
    data = path.read_bytes()
    server = RangeHTTPServer({"/big.dcimg": data}).start()
    try:
        url = server.url("/big.dcimg")
        refs = dcimg.write_references(url, folder / "big.json")

        def through_references() -> np.ndarray:
            group = zarr.open_group(
                "reference://",
                mode="r",
                storage_options={"fo": str(refs), **HTTP_OPTIONS},
            )
            return np.asarray(group["0"][...])

        def through_reader() -> np.ndarray:
            with dcimg.DCIMGFile(url) as f:
                return f.whole()

        want = through_reader()
        assert (through_references() == want).all()
        timings: dict[str, list[float]] = {"references": [], "reader": []}
        requests: dict[str, int] = {}
        for i in range(repeat):
            order = [("references", through_references), ("reader", through_reader)]
            for name, run in order if i % 2 == 0 else order[::-1]:
                server.wait_idle()
                before = len(server.requests_for("/big.dcimg"))
                start = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - start)
                server.wait_idle()
                requests[name] = len(server.requests_for("/big.dcimg")) - before
    finally:
        server.stop()
    ref_t = statistics.median(timings["references"])
    base_t = statistics.median(timings["reader"])
    return {
        "file_bytes": len(data),
        "frames": frames,
        "references_s": ref_t,
        "reader_s": base_t,
        "time_ratio": ref_t / base_t,
        "references_requests": requests["references"],
        "reader_requests": requests["reader"],
        "request_ratio": requests["references"] / max(1, requests["reader"]),
        "repeat": repeat,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| file | chunks | reference file | bytes/frame (<= 200) | write (< 1 s) |",
        "|---|---|---|---|---|",
    ]
    for row in result["references"]:
        lines.append(
            f"| {row['file']} | {row['chunks']} | {row['bytes']:,} B | "
            f"{row['bytes_per_frame']:.1f} | {row['write_s']:.3f} s |"
        )
    h = result["http"]
    lines += [
        "",
        f"Whole-file read over HTTP (127.0.0.1), {h['file_bytes'] / 2**20:.0f} MiB, "
        f"{h['frames']} frames of 512x512 uint16, medians of {h['repeat']}:",
        "",
        "| read | time | requests |",
        "|---|---|---|",
        f"| references (zarr, reference://) | {h['references_s']:.3f} s | "
        f"{h['references_requests']} |",
        f"| `DCIMGFile(url).whole()` | {h['reader_s']:.3f} s | "
        f"{h['reader_requests']} |",
        f"| ratio (targets <= 1.3, <= 2) | {h['time_ratio']:.2f} | "
        f"{h['request_ratio']:.2f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    frames, big_frames = (100_000, 512) if args.size == "full" else (1000, 8)
    warnings.simplefilter("ignore", dcimg.DCIMGWarning)
    with tempfile.TemporaryDirectory(prefix="bench-references-") as name:
        folder = Path(name)
        result = {
            "references": reference_rows(folder, frames),
            "http": http_rows(folder, big_frames, args.repeat),
        }
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
