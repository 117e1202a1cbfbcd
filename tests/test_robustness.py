"""Damaged and hostile files.

* Interrupted acquisitions: every cut of small packed and framed files opens
  (with a :class:`DCIMGWarning` naming the complete and declared frame counts)
  or is refused with :class:`DCIMGFormatError`, and every complete frame comes
  back exactly as written.
* Corrupt headers: each field is refused with an error naming it and its value.
* A short fuzz campaign (``tools/fuzz.py``): every case is a clean read or a
  clean refusal; no other exception, crash or hang.
* Read-only mappings, unchanged files, no leaked descriptors or mappings, and
  concurrent reads from several threads.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import pathlib
import stat
import struct
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from helpers import run_tool

import dcimg
from dcimg import DCIMGFile, DCIMGFormatError, DCIMGWarning
from dcimg.metadata import MISSING_FRAMESTAMP
from dcimg.testing import example_stack, write_dcimg

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TOOLS = ROOT / "tools"

PACKED_S = 0x78  # session header offset of the writer's packed files
FRAMED_S = 0x70  # ... and of its framed files


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(
        f"_dcimg_tool_{name}", TOOLS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_tool("fuzz")


def _open_quietly(path) -> DCIMGFile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        return DCIMGFile(path)


def _as_stored(truth: np.ndarray, row: int | None) -> np.ndarray:
    """The pixels as the camera stored them: 8 bytes of ``row`` overwritten."""
    stored = truth.copy()
    if row is not None:
        n = 8 // truth.dtype.itemsize
        pattern = np.zeros(n, truth.dtype)
        pattern[1::2] = np.iinfo(truth.dtype).max
        stored[:, row, :n] = pattern
    return stored


def _sha(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# Interrupted acquisitions: every truncation point


TRUNCATION_CASES = {
    "packed": dict(version=0x7, stored_pixels_row=2),
    "framed32": dict(version=0x1000000, trailer_size=32, stored_pixels_row=2),
    "framed16": dict(version=0x1000000, trailer_size=16),
}


def _framed_complete(cut: int, data: int, bpi: int, stride: int, extra: int) -> int:
    # A frame is complete when its pixels, counter, time stamp and stored
    # pixels (``extra`` bytes of trailer in all) lie in the file.
    need = bpi + extra
    return 0 if cut - data < need else (cut - data - need) // stride + 1


@pytest.mark.parametrize("variant", sorted(TRUNCATION_CASES))
def test_every_truncation_point(tmp_path, variant):
    kwargs = TRUNCATION_CASES[variant]
    truth = example_stack(3, 6, 8, seed=3)
    counters = np.array([7, 8, 10])  # one frame dropped between 8 and 10
    stamps = 1_700_000_000_000_000 + np.array([0, 100_000, 300_000])
    full = write_dcimg(
        tmp_path / "full.dcimg",
        truth,
        framestamps=counters,
        timestamps_us=stamps,
        **kwargs,
    ).read_bytes()
    packed = kwargs["version"] == 0x7
    row = kwargs.get("stored_pixels_row")
    s = PACKED_S if packed else FRAMED_S
    bpi = 6 * 8 * 2
    if packed:
        data = s + struct.unpack_from("<I", full, s + 0x44)[0]
        footer = s + struct.unpack_from("<Q", full, s + 0x48)[0]
        tables = footer + 272 + 12 * 3  # end of the counter and time tables
    else:
        data = s + struct.unpack_from("<Q", full, s + 0x60)[0]
        trailer = kwargs["trailer_size"]
        # A frame is returned once its pixels are in; its stamps once 12
        # trailer bytes are, its stored values once 12 + 8 are (the last
        # frame's overwritten pixels are returned as stored until then).
        extra = 12 + 8 if row is not None else 0
    path = tmp_path / "cut.dcimg"
    opened = 0
    for cut in range(1, len(full) + 1):
        path.write_bytes(full[:cut])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                f = DCIMGFile(path)
            except DCIMGFormatError:
                # Refusing is only allowed while not even the header is whole.
                assert cut < data, f"cut {cut}: refused a file with frame data"
                continue
        opened += 1
        with f:
            if packed:
                expect = min(3, (cut - data) // bpi)
                stamped = expect
            else:
                stride = bpi + trailer
                expect = min(3, _framed_complete(cut, data, bpi, stride, 0))
                stamped = min(expect, _framed_complete(cut, data, bpi, stride, 12))
                valued = min(expect, _framed_complete(cut, data, bpi, stride, extra))
            assert f.shape == (expect, 6, 8), cut
            assert f.metadata.declared_frames == 3
            assert f.metadata.frames == expect
            messages = [str(w.message) for w in caught]
            assert all(issubclass(w.category, DCIMGWarning) for w in caught)
            if cut < len(full):
                assert f.metadata.truncated
            if expect < 3:
                assert messages, f"cut {cut}: no warning"
                assert any(f"{expect} " in m and "3" in m for m in messages), messages
            # Pixels: exact; packed files cut inside the footer lost the
            # stored values, so there the pixels come back as stored.
            stored_lost = packed and row is not None and cut < len(full)
            want = (_as_stored(truth, row) if stored_lost else truth)[:expect].copy()
            if not packed:
                want[valued:] = _as_stored(truth, row)[valued:expect]
                missing = (
                    f.metadata.stored_pixels.missing_frames if row is not None else 0
                )
                assert missing == expect - valued, cut
            np.testing.assert_array_equal(f[...], want, err_msg=str(cut))
            if stored_lost and expect:
                assert f.metadata.stored_pixels.available is False
                assert any("stored" in m for m in messages)
            # Counters and time stamps of complete frames, when present.
            has_data = f.metadata.frame_data_available
            if packed:
                assert has_data == (cut >= tables), cut
            else:
                assert has_data == (expect > 0), cut
            if has_data:
                # A last frame whose trailer is cut: counter and stamp missing.
                missing = expect - stamped
                want_counters = [*counters[:stamped], *[MISSING_FRAMESTAMP] * missing]
                np.testing.assert_array_equal(f.framestamps, want_counters)
                want_stamps = stamps[:expect].astype("datetime64[us]")
                want_stamps[stamped:] = np.datetime64("NaT")
                np.testing.assert_array_equal(f.timestamps, want_stamps)
                assert f.metadata.missing_stamps == missing
                if missing:
                    assert any("trailer of the last one is cut" in m for m in messages)
            else:
                assert f.framestamps.size == 0 and f.timestamps.size == 0
    assert opened == len(full) - data + 1  # every cut from the first frame on


def test_interrupted_acquisition_declared_count(tmp_path):
    truth = example_stack(5, 8, 10, seed=1)
    path = write_dcimg(tmp_path / "a.dcimg", truth, declared_frames=9, trailer_size=32)
    raw = path.read_bytes()
    # Keep 5 whole frames (pixels and trailers) of the 9 declared.
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    stride = struct.unpack_from("<I", raw, FRAMED_S + 0x74)[0]
    path.write_bytes(raw[: data + 5 * stride + 3])
    with pytest.warns(DCIMGWarning, match=r"5 complete frames of the 9"):
        f = DCIMGFile(path)
    with f:
        assert f.shape == (5, 8, 10)
        assert len(f) == 5
        assert f.metadata.declared_frames == 9
        assert f.metadata.truncated
        np.testing.assert_array_equal(f[...], truth)
        np.testing.assert_array_equal(f.framestamps, np.arange(5))


def test_interrupted_packed_keeps_pixels(tmp_path):
    truth = example_stack(4, 6, 8, seed=2)
    path = write_dcimg(
        tmp_path / "p.dcimg", truth, version=0x7, declared_frames=7, stored_pixels_row=1
    )
    raw = path.read_bytes()
    data = PACKED_S + 0x70
    path.write_bytes(raw[: data + 4 * 96 + 50])
    with pytest.warns(
        DCIMGWarning, match=r"4 complete frames of the 7.*returned as stored"
    ):
        f = DCIMGFile(path)
    with f:
        assert f.shape == (4, 6, 8)
        assert f.metadata.declared_frames == 7
        assert f.metadata.frame_data_available is False
        assert f.metadata.stored_pixels.available is False
        np.testing.assert_array_equal(f[...], _as_stored(truth, 1))
        assert f.framestamps.size == 0


def test_golden_truncated_file():
    truth = np.load(DATA / "framed_truncated.npz")
    with pytest.warns(DCIMGWarning, match="complete frames"):
        f = DCIMGFile(DATA / "framed_truncated.dcimg")
    with f:
        assert f.shape == truth["data"].shape
        assert f.metadata.declared_frames > f.shape[0]
        np.testing.assert_array_equal(f[...], truth["data"])
        np.testing.assert_array_equal(f.framestamps, truth["framestamps"])


def test_zero_complete_frames(tmp_path):
    truth = example_stack(2, 4, 8)
    path = write_dcimg(
        tmp_path / "z.dcimg", truth, trailer_size=32, stored_pixels_row=1
    )
    raw = path.read_bytes()
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    path.write_bytes(raw[: data + 63])  # frame 0's pixels but one byte
    with pytest.warns(DCIMGWarning, match="0 complete frames of the 2"):
        f = DCIMGFile(path)
    with f:
        assert f.shape == (0, 4, 8)
        assert f[...].shape == (0, 4, 8)
        assert f.framestamps.size == 0
        assert f.timestamps.size == 0
        assert f.metadata.declared_frames == 2


# --------------------------------------------------------------------------
# Corrupt headers: each field is named


def _small(tmp_path, name: str, **layout) -> pathlib.Path:
    """Three 6 x 8 frames with stored pixels in row 2, named ``name``."""
    path = tmp_path / f"{name}.dcimg"
    return write_dcimg(path, example_stack(3, 6, 8), stored_pixels_row=2, **layout)


def _packed(tmp_path) -> pathlib.Path:
    return _small(tmp_path, "packed", version=0x7)


def _framed(tmp_path) -> pathlib.Path:
    return _small(tmp_path, "framed", trailer_size=32)


def _patch(path: pathlib.Path, offset, fmt: str, value: int) -> None:
    raw = bytearray(path.read_bytes())
    if callable(offset):
        offset = offset(raw)
    struct.pack_into("<" + fmt, raw, offset, value)
    path.write_bytes(raw)


def _footer(raw) -> int:
    return PACKED_S + struct.unpack_from("<Q", raw, PACKED_S + 0x48)[0]


def _footer2(raw) -> int:
    f = _footer(raw)
    return f + struct.unpack_from("<Q", raw, f + 0x08)[0]


def _in_footer2(offset: int):
    return lambda raw: _footer2(raw) + offset


def _block_entry(kind: int):
    def find(raw) -> int:
        pos = FRAMED_S + 0xF0
        while struct.unpack_from("<I", raw, pos)[0] != kind:
            pos += 16
        return pos

    return find


def _kind4(raw) -> int:
    entry = _block_entry(4)(raw)
    return FRAMED_S + 0xA0 + struct.unpack_from("<Q", raw, entry + 8)[0]


CORRUPT = [
    # (file, offset, format, value, field named by the error)
    ("packed", 0x08, "I", 0x3, "format_version"),
    ("framed", 0x08, "I", 0x1000001, "format_version"),
    ("packed", 0x20, "I", 0, "nsess"),
    ("framed", 0x20, "I", 0xFFFFFFFF, "nsess"),
    ("packed", 0x28, "I", 0x10, "header_size"),
    ("packed", 0x28, "I", 0xFFFFFF00, "session header"),
    ("framed", 0x30, "Q", 0xFFFFFFFFFFFFFFFF, "file_size"),
    ("packed", PACKED_S + 0x00, "Q", 0x8000000000000000, "session_size"),
    ("packed", PACKED_S + 0x24, "I", 3, "byte_depth"),
    ("framed", FRAMED_S + 0x40, "I", 0, "byte_depth"),
    ("packed", PACKED_S + 0x2C, "I", 0, "xsize/ysize"),
    ("framed", FRAMED_S + 0x4C, "I", 0, "xsize/ysize"),
    ("packed", PACKED_S + 0x30, "I", 15, "bytes_per_row"),
    ("framed", FRAMED_S + 0x50, "I", 4, "bytes_per_row"),
    ("framed", FRAMED_S + 0x50, "I", 0xFFFFFFFF, "bytes_per_img"),
    ("packed", PACKED_S + 0x38, "I", 97, "bytes_per_img"),
    ("framed", FRAMED_S + 0x54, "I", 0, "bytes_per_img"),
    ("packed", PACKED_S + 0x44, "I", 0xFFFFFF, "offset_to_data"),
    ("packed", PACKED_S + 0x44, "I", 0x10, "offset_to_data"),
    ("framed", FRAMED_S + 0x60, "Q", 0xFFFFFFFFFFFFFFFF, "offset_to_data"),
    ("packed", PACKED_S + 0x48, "Q", 8, "session_data_size"),
    ("framed", FRAMED_S + 0x74, "I", 95, "frame_stride"),
    ("framed", FRAMED_S + 0x7C, "I", 8, "frame_footer_size"),
    ("packed", _footer, "I", 8, "footer marker"),
    ("packed", lambda raw: _footer(raw) + 8, "Q", 1 << 40, "footer2_offset"),
    ("packed", _in_footer2(0x30), "Q", 1 << 40, "framestamp_table_offset"),
    ("packed", _in_footer2(0x40), "Q", 1 << 40, "timestamp_table_offset"),
    ("packed", _in_footer2(0x58), "Q", 1 << 40, "stored_pixels_table_offset"),
    ("packed", _in_footer2(0x68), "Q", 3, "stored_pixels_size"),
    ("packed", _in_footer2(0x64), "I", 6 * 16, "stored_pixels_offset"),
    ("framed", lambda raw: _block_entry(3)(raw) + 8, "Q", 1 << 40, "block offset"),
    ("framed", lambda raw: _block_entry(3)(raw) + 4, "I", 0xFFFF, "block table"),
    ("framed", lambda raw: _kind4(raw) + 12, "I", 24, "stored_pixels_size"),
    ("framed", lambda raw: _kind4(raw) + 16, "I", 6 * 16 - 4, "stored_pixels_offset"),
]


@pytest.mark.parametrize(
    ("kind", "offset", "fmt", "value", "field"),
    CORRUPT,
    ids=[f"{c[0]}-{c[4]}-{c[3]:#x}" for c in CORRUPT],
)
def test_corrupt_field_is_named(tmp_path, kind, offset, fmt, value, field):
    path = _packed(tmp_path) if kind == "packed" else _framed(tmp_path)
    _patch(path, offset, fmt, value)
    with pytest.raises(DCIMGFormatError) as info:
        DCIMGFile(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field
    message = str(err)
    # The file first (batch loops must tell which one), then the field.
    assert message.startswith(f"{path}: {field}"), message
    assert err.path == str(path)
    assert str(value) in message or f"{value:#x}" in message, message


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"D",
        b"DCIMG\0\0",
        b"DCIMG\0\0\0",
        b"DCIMG\0\0\0" + b"\0" * 0x40,
        b"\0" * 4096,
    ],
    ids=["empty", "1byte", "7bytes", "magic-only", "short-header", "zeros"],
)
def test_tiny_and_foreign_files(tmp_path, raw):
    path = tmp_path / "x.dcimg"
    path.write_bytes(raw)
    with pytest.raises(DCIMGFormatError):
        DCIMGFile(path)


def test_unreadable_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        DCIMGFile(tmp_path / "missing.dcimg")
    with pytest.raises((IsADirectoryError, DCIMGFormatError, OSError)):
        DCIMGFile(tmp_path)


def test_no_allocation_beyond_the_file(tmp_path):
    # Headers that declare 2**32 - 1 frames must not make the reader allocate
    # for them: only what lies in the file is mapped or copied.
    path = _framed(tmp_path)
    _patch(path, FRAMED_S + 0x3C, "I", 0xFFFFFFFF)
    _patch(path, 0x24, "I", 0xFFFFFFFF)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            with DCIMGFile(path) as f:
                assert f.shape == (3, 6, 8)
                assert f.metadata.declared_frames == 0xFFFFFFFF
                assert f[...].shape == (3, 6, 8)
                assert f.framestamps.size == f.timestamps.size == 3
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000 + 16 * size


# --------------------------------------------------------------------------
# Fuzzing


def test_fuzz_campaign_short():
    # Every truncation of three small files, then a few thousand mutations.
    with_truncations = 3316 + 2500
    report = fuzz.run_campaign(with_truncations, jobs=2, timeout=30.0, seed=5)
    assert report.cases == with_truncations
    assert report.ok, report.summary()
    assert report.counts["read"] > 1000 and report.counts["refused"] > 1000


def test_fuzz_cases_are_reproducible(tmp_path):
    seeds = fuzz.make_seeds(tmp_path)
    a = fuzz.make_case(5000, seeds, 3)
    b = fuzz.make_case(5000, seeds, 3)
    assert a == b
    assert fuzz.make_case(5001, seeds, 3) != a
    # Every seed is a valid file that reads cleanly.
    import random

    for name, seed in seeds.items():
        path = tmp_path / f"{name}.check.dcimg"
        outcome, detail = fuzz.run_case(str(path), seed.data, random.Random(0), 0)
        assert outcome == "read", (name, detail)


def test_fuzz_worker_crash_and_hang_are_caught(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(
        "import json, os, signal, sys, time\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    i = int(line)\n"
        "    if i == 1:\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    if i == 2:\n"
        "        time.sleep(60)\n"
        "    print(json.dumps([i, 'read', 'w', 'd']), flush=True)\n"
    )
    worker = fuzz._Worker([sys.executable, str(script)], str(tmp_path / "log"))
    try:
        outcomes = [worker.run(i, 2.0)[0] for i in range(4)]
    finally:
        worker.stop()
    assert outcomes == ["read", "crash", "hang", "read"]


def test_memcheck_driver_without_valgrind(tmp_path):
    # The driver that tools/memcheck.py runs under valgrind, run natively on a
    # small corpus: it must get through every file.
    result = run_tool(
        "memcheck.py", "--no-valgrind", "--cases", "60", timeout=300, cwd=tmp_path
    )
    assert "files" in result.stdout


# --------------------------------------------------------------------------
# Read-only mappings; the file on disk never changes


def test_mapping_is_read_only_and_file_unchanged(tmp_path):
    path = _framed(tmp_path)
    before = _sha(path)
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        with DCIMGFile(path) as f:
            for mode in (True, False, None):
                f.first_4px_correction_enabled = mode
                f[...]
                f[::-1, 2, ::2]
            assert f.framestamps.size == 3
            assert f.metadata.frames == 3
            assert not f.mma.flags.writeable
            assert not f.mm.flags.writeable
            with pytest.raises(ValueError):
                f.mma[0, 0, 0] = 1
            with pytest.raises(ValueError):
                f.mm[0] = 1
            view = f.read(0, copy=False)
            if view.base is not None and not view.flags.owndata:
                assert not view.flags.writeable
            maps = _mappings_of(path)
            assert maps, "the file is not mapped"
            assert all("w" not in perms for perms in maps), maps
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert _sha(path) == before


# --------------------------------------------------------------------------
# Lifecycle: no leaked descriptors or mappings


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _mappings_of(path) -> list[str]:
    target = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        return [
            line.split()[1]
            for line in maps
            if line.rstrip().endswith(target) and len(line.split()) >= 6
        ]


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)"
)


@needs_proc
def test_no_descriptor_or_mapping_leaks(tmp_path):
    good = _framed(tmp_path)
    raw = good.read_bytes()
    cut = tmp_path / "cut.dcimg"
    cut.write_bytes(raw[: len(raw) - 200])
    bad = tmp_path / "bad.dcimg"
    bad.write_bytes(raw[:8] + b"\x09" + raw[9:])  # unknown format version
    gc.collect()
    fds = _fd_count()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        for i in range(1500):
            f = DCIMGFile(good)
            f[i % 3]
            f.close()
            f.close()  # closing twice is harmless
            with DCIMGFile(cut) as g:
                assert g[...].shape == g.shape
                assert g.framestamps.size == g.shape[0]
            with pytest.raises(DCIMGFormatError):
                DCIMGFile(bad)
            h = DCIMGFile(good)  # never closed: the garbage collector does it
            assert h.metadata.frames == 3
            del h
    gc.collect()
    assert _fd_count() <= fds
    for p in (good, cut, bad):
        assert _mappings_of(p) == []


@needs_proc
def test_close_releases_the_mapping(tmp_path):
    path = _framed(tmp_path)
    f = DCIMGFile(path)
    assert _mappings_of(path)
    f.close()
    assert f.closed
    gc.collect()
    assert _mappings_of(path) == []
    with pytest.raises(ValueError):
        f[0]
    with pytest.raises(ValueError):
        _ = f.shape
    # Reopening works after a close.
    f.open()
    assert f.shape == (3, 6, 8)
    f.close()


@needs_proc
def test_views_outlive_close(tmp_path):
    truth = example_stack(3, 6, 8)
    path = write_dcimg(tmp_path / "v.dcimg", truth, trailer_size=16)
    f = DCIMGFile(path)
    view = f.read(1, copy=False)
    f.close()
    np.testing.assert_array_equal(view, truth[1])  # still valid
    del view
    gc.collect()
    assert _mappings_of(path) == []


# --------------------------------------------------------------------------
# Threads


def test_concurrent_reads_from_threads(tmp_path):
    truth = example_stack(24, 32, 40, seed=4)
    path = write_dcimg(
        tmp_path / "t.dcimg", truth, trailer_size=32, stored_pixels_row=7
    )
    errors: list[BaseException] = []
    nthreads = 8
    barrier = threading.Barrier(nthreads)

    with DCIMGFile(path) as f:

        def reader(k: int) -> None:
            try:
                barrier.wait()
                for rep in range(40):
                    i = (k + rep * nthreads) % len(truth)
                    np.testing.assert_array_equal(f[i], truth[i])
                    np.testing.assert_array_equal(f[i, 7], truth[i, 7])
                    np.testing.assert_array_equal(
                        f[i::-3, 5:9, ::-1], truth[i::-3, 5:9, ::-1]
                    )
                    np.testing.assert_array_equal(
                        f.read(slice(k, None, 5), dtype=np.float32),
                        truth[k::5].astype(np.float32),
                    )
                    np.testing.assert_array_equal(f.framestamps, np.arange(len(truth)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


@pytest.mark.slow
def test_concurrent_large_reads(tmp_path):
    # Big enough (> 32 MiB) that each read is split across the reader's own
    # threads, while three threads read at once.
    truth = np.random.default_rng(0).integers(0, 4096, (52, 512, 640), np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", truth, version=0x7, stored_pixels_row=3)
    results: dict[int, bool] = {}

    with DCIMGFile(path) as f:

        def reader(k: int) -> None:
            results[k] = bool(np.array_equal(f[...], truth))

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {0: True, 1: True, 2: True}


def test_package_exports_error_types():
    assert issubclass(dcimg.DCIMGFormatError, dcimg.DCIMGError)
    assert issubclass(dcimg.DCIMGFormatError, ValueError)
    assert issubclass(dcimg.DCIMGWarning, UserWarning)
