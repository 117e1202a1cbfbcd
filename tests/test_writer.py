"""Tests of the synthetic DCIMG writer in :mod:`dcimg.testing`.

These tests use nothing from :mod:`dcimg` but ``dcimg.testing``; when the
package itself cannot be imported (the compiled reader is not built), the
module file is loaded on its own. Written files are checked two ways: against
the golden files of an independent writer in ``tests/data`` (byte for byte) and
with the small reader below, which follows the format notes and nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
MODULE_FILE = ROOT / "dcimg" / "testing.py"


def _load_standalone():
    """Load dcimg/testing.py without importing the dcimg package."""
    name = "dcimg_testing_standalone"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


try:
    import dcimg.testing as dt
except Exception:  # noqa: BLE001 - a half-built package may fail in any way
    dt = _load_standalone()


# --------------------------------------------------------------------------
# A minimal reader, written from the format notes, for checking written files.
# --------------------------------------------------------------------------


def _u32(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<I", raw, offset)[0]


def _u64(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<Q", raw, offset)[0]


def _read(path: pathlib.Path) -> dict:
    """Parse a complete (untruncated) file written by the writer."""
    raw = path.read_bytes()
    assert raw[:8] == b"DCIMG\0\0\0"
    info = {
        "raw": raw,
        "version": _u32(raw, 0x08),
        "nsess": _u32(raw, 0x20),
        "file_nframes": _u32(raw, 0x24),
        "S": _u32(raw, 0x28),
        "file_size": _u64(raw, 0x30),
        "file_size2": _u64(raw, 0x40),
    }
    s = info["S"]
    if info["version"] == 0x7:
        n, depth = _u32(raw, s + 0x20), _u32(raw, s + 0x24)
        width, bpr, height = (_u32(raw, s + o) for o in (0x2C, 0x30, 0x34))
        bpi, data_offset = _u32(raw, s + 0x38), _u32(raw, s + 0x44)
        stride = bpi
        f = s + _u64(raw, s + 0x48)
        assert _u32(raw, f) == 7
        f2 = f + _u64(raw, f + 0x08)
        info["footer"] = f
        info["footer_size"] = _u32(raw, f + 0x28)
        counters_at = f + _u64(raw, f2 + 0x30)
        stamps_at = f + _u64(raw, f2 + 0x40)
        stored_size = _u64(raw, f2 + 0x68)
        stored_offset = _u32(raw, f2 + 0x64) if stored_size else None
        counters = np.frombuffer(raw, "<u4", n, counters_at)
        stamps = np.frombuffer(raw, "<u4", 2 * n, stamps_at).reshape(n, 2)
        stored = None
        if stored_size:
            at = f + _u64(raw, f2 + 0x58)
            stored = np.frombuffer(raw, np.uint8, 8 * n, at).reshape(n, 8)
    else:
        n, depth = _u32(raw, s + 0x3C), _u32(raw, s + 0x40)
        width, height, bpr = (_u32(raw, s + o) for o in (0x48, 0x4C, 0x50))
        bpi, data_offset = _u32(raw, s + 0x54), _u64(raw, s + 0x60)
        stride, trailer = _u32(raw, s + 0x74), _u32(raw, s + 0x7C)
        assert stride == bpi + trailer
        info["trailer"] = trailer
        # Block table: entries until an all-zero one or the first block.
        blocks = {}
        entry, first_block = s + 0xF0, None
        while first_block is None or entry < first_block:
            kind, size, offset = struct.unpack_from("<IIQ", raw, entry)
            if kind == 0:
                break
            blocks[kind] = (size, s + 0xA0 + offset)
            first_block = min(s + 0xA0 + offset, first_block or 1 << 62)
            entry += 16
        info["blocks"] = blocks
        camera = blocks.get(3, (0xF8, s + 0x200))[1]
        info["camera"] = camera
        x0, sub_w, y0, sub_h = struct.unpack_from("<4H", raw, camera + 0xC8)
        info["sub_array"] = (x0, y0, sub_w, sub_h)
        info["model"] = raw[camera + 0x40 : camera + 0x80].rstrip(b"\0").decode()
        info["serial"] = raw[camera + 0x90 : camera + 0xC8].rstrip(b"\0").decode()
        binning = sub_w // width
        tr = np.frombuffer(raw, np.uint8, n * stride, s + data_offset).reshape(
            n, stride
        )[:, bpi:]
        counters = tr[:, 0:4].copy().view("<u4")[:, 0]
        stamps = tr[:, 4:12].copy().view("<u4")
        stored = stored_offset = None
        if trailer > 16:
            if 4 in blocks:
                stored_offset = _u32(raw, blocks[4][1] + 16)
            else:
                row = dt.fallback_stored_pixels_row(
                    info["version"], y0, height, binning
                )
                stored_offset = None if row is None else row * bpr
            if stored_offset is not None:
                stored = tr[:, 12:20]
    frames = np.frombuffer(raw, np.uint8, n * stride, s + data_offset)
    frames = frames.reshape(n, stride)[:, :bpi].copy()
    info["stored_bytes_in_frame"] = None
    if stored is not None:
        span = slice(stored_offset, stored_offset + 8)
        info["stored_bytes_in_frame"] = frames[:, span].copy()
        frames[:, span] = stored
    pixels = frames.reshape(n, height, bpr)[:, :, : width * depth]
    dtype = np.dtype("<u2") if depth == 2 else np.dtype(np.uint8)
    info.update(
        n=n,
        depth=depth,
        width=width,
        height=height,
        bytes_per_row=bpr,
        bytes_per_image=bpi,
        data_offset=data_offset,
        stride=stride,
        padding=frames.reshape(n, height, bpr)[:, :, width * depth :],
        data=pixels.copy().view(dtype).reshape(n, height, width),
        framestamps=counters.astype(np.int64),
        timestamps_us=stamps[:, 0].astype(np.int64) * 1_000_000 + stamps[:, 1],
        stored_offset=stored_offset,
    )
    return info


def _assert_round_trip(path, data, **expected):
    info = _read(path)
    np.testing.assert_array_equal(info["data"], data)
    for key, value in expected.items():
        np.testing.assert_array_equal(info[key], value, err_msg=key)
    assert info["file_size"] == info["file_size2"] == len(info["raw"])
    return info


def _round_trip(tmp_path, data, options, **expected):
    """Write ``data`` with the writer's ``options``, then check as above."""
    path = dt.write_dcimg(tmp_path / "x.dcimg", data, **options)
    return _assert_round_trip(path, data, **expected)


def _stack(n=3, h=8, w=16, dtype=np.uint16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(1, np.iinfo(dtype).max - 1, (n, h, w), dtype=dtype)


# --------------------------------------------------------------------------
# Golden files of the independent writer.
# --------------------------------------------------------------------------

MANIFEST = json.loads((DATA / "manifest.json").read_text())

# Writer options the manifest does not record, read off the files' headers.
EXTRA_OPTIONS = {
    "packed_u16_row5_padded": {"bytes_per_row": 32},
}
# The golden framed files fill only the first camera version string.
GOLDEN_CAMERA_VERSIONS = ("4.11.523", "", "")


def _golden_options(name: str) -> dict:
    meta = MANIFEST[name]
    options = {
        "version": int(meta["format_version"], 16),
        "stored_pixels_row": meta["stored_pixels_row"],
    }
    if options["version"] != 0x7:
        sub = meta["sub_array"] if "sub_array" in meta else None
        if sub is not None:
            options["sub_array"] = (sub["x0"], sub["y0"], sub["width"], sub["height"])
            options["binning"] = meta["binning"]
        options["trailer_size"] = meta.get("trailer_bytes", 32)
        options["camera_versions"] = GOLDEN_CAMERA_VERSIONS
        options["camera_model"] = meta.get("camera_model", "C11440-22C")
        options["camera_serial"] = meta.get("camera_serial", "301234")
    if "declared_frames" in meta:
        options["declared_frames"] = meta["declared_frames"]
        options["truncate_to"] = meta["file_size"]
    options.update(EXTRA_OPTIONS.get(name, {}))
    return options


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reproduces_golden_file(tmp_path, name):
    golden = (DATA / f"{name}.dcimg").read_bytes()
    truth = np.load(DATA / f"{name}.npz")
    data = truth["data"]
    assert list(data.shape) == MANIFEST[name]["shape"]
    assert str(data.dtype) == MANIFEST[name]["dtype"]
    options = _golden_options(name)
    path = dt.write_dcimg(
        tmp_path / "out.dcimg",
        data,
        framestamps=truth["framestamps"],
        timestamps_us=truth["timestamps_us"],
        **options,
    )
    assert path == tmp_path / "out.dcimg"
    written = np.frombuffer(path.read_bytes(), np.uint8)
    expected = np.frombuffer(golden, np.uint8)
    assert written.size == expected.size == MANIFEST[name]["file_size"]

    compare = np.ones(written.size, dtype=bool)
    declared = options.get("declared_frames", len(data))
    if declared > len(data):
        # The pixels of frames the acquisition never finished are random
        # filler in both files (the .npz does not hold them), so they cannot
        # match. Everything else, including the headers that declare those
        # frames and the trailers of the complete frames, must.
        s = struct.unpack_from("<I", golden, 0x28)[0]
        first = s + struct.unpack_from("<Q", golden, s + 0x60)[0]
        stride = struct.unpack_from("<I", golden, s + 0x74)[0]
        bpi = struct.unpack_from("<I", golden, s + 0x54)[0]
        for k in range(len(data), declared):
            compare[first + k * stride : first + k * stride + bpi] = False
        assert (~compare).sum() == 100  # the part of frame 4 in the file
    differ = np.flatnonzero((written != expected) & compare)
    assert differ.size == 0, (
        f"{differ.size} bytes differ, first at {[hex(i) for i in differ[:8]]}"
    )


def test_golden_options_cover_every_kind_of_file():
    versions = {MANIFEST[n]["format_version"] for n in MANIFEST}
    assert versions == {"0x7", "0x1000000", "0x2000000"}
    trailers = {MANIFEST[n].get("trailer_bytes") for n in MANIFEST}
    assert {16, 32} <= trailers


@pytest.mark.parametrize(
    "name", sorted(n for n in MANIFEST if "declared_frames" not in MANIFEST[n])
)
def test_golden_file_matches_own_reader(name):
    # The test reader agrees with the independent writer's truth on every
    # complete golden file, so it can be trusted on the writer's other output.
    truth = np.load(DATA / f"{name}.npz")
    _assert_round_trip(
        DATA / f"{name}.dcimg",
        truth["data"],
        framestamps=truth["framestamps"],
        timestamps_us=truth["timestamps_us"],
    )


def test_standalone_module_writes_same_bytes(tmp_path):
    standalone = _load_standalone()
    data = _stack()
    a = dt.write_dcimg(tmp_path / "a.dcimg", data, stored_pixels_row=2)
    b = standalone.write_dcimg(tmp_path / "b.dcimg", data, stored_pixels_row=2)
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------
# Options.
# --------------------------------------------------------------------------

ALL_VERSIONS = [0x7, 0x1000000, 0x2000000]


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("row", [None, 0, 5])
def test_round_trip(tmp_path, version, dtype, row):
    data = _stack(4, 7, 12, dtype)
    # Version 0x2000000 files lacking a kind-4 block have stored pixels in
    # row 0 by rule, so a file without stored pixels needs 16-byte trailers.
    trailer = 16 if version == 0x2000000 and row is None else 32
    info = _round_trip(
        tmp_path,
        data,
        dict(version=version, stored_pixels_row=row, trailer_size=trailer),
        framestamps=np.arange(4),
        timestamps_us=dt.DEFAULT_T0_US + np.round(np.arange(4) * 33333.33),
        nsess=1,
        file_nframes=4,
    )
    assert info["S"] == (0x78 if version == 0x7 else 0x70)
    if row is None:
        assert info["stored_offset"] is None
    else:
        assert info["stored_offset"] == row * 12 * np.dtype(dtype).itemsize


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_default_counters_and_timestamps(tmp_path, version):
    data = _stack(5)
    expected = [
        1725555197250000,
        1725555197283333,
        1725555197316667,
        1725555197350000,
        1725555197383333,
    ]
    _round_trip(
        tmp_path,
        data,
        dict(version=version, stored_pixels_row=0),
        framestamps=range(5),
        timestamps_us=expected,
    )


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    ("frames", "dtype", "pattern", "offset", "words"),
    [
        pytest.param(
            3, np.uint8, dict(stored_pixels_row=2), 2 * 16, [0, 255] * 4, id="8bit"
        ),
        pytest.param(
            2,
            np.uint16,
            dict(stored_pixels_row=4, stored_pixels_column=12, kind4_block=True),
            4 * 32 + 12 * 2,
            [0, 65535, 0, 65535],
            id="16bit-and-column",
        ),
    ],
)
def test_pattern(tmp_path, version, frames, dtype, pattern, offset, words):
    """The stored pixels' bytes in every frame, at their offset in the frame."""
    data = _stack(frames, 6, 16, dtype)
    info = _round_trip(tmp_path, data, dict(version=version, **pattern))
    little_endian = np.dtype(dtype).newbyteorder("<")
    stored = info["stored_bytes_in_frame"].copy().view(little_endian)
    assert stored.tolist() == [words] * frames
    assert info["stored_offset"] == offset


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_row_padding(tmp_path, version):
    data = _stack(3, 5, 10, np.uint16)
    info = _round_trip(
        tmp_path,
        data,
        dict(
            version=version,
            bytes_per_row=27,
            stored_pixels_row=3,
            stored_pixels_column=6,
        ),
        bytes_per_row=27,
        bytes_per_image=135,
    )
    assert info["stored_offset"] == 3 * 27 + 12
    assert info["padding"].shape == (3, 5, 7)
    assert np.all(info["padding"] == 0xA5)


def test_trailer_512(tmp_path):
    data = _stack(3, 4, 8)
    info = _round_trip(
        tmp_path,
        data,
        dict(trailer_size=516, stored_pixels_row=1, framestamps=[7, 8, 10]),
        framestamps=[7, 8, 10],
        trailer=516,
    )
    raw, bpi = info["raw"], info["bytes_per_image"]
    assert info["stride"] == bpi + 516
    for k in range(3):
        start = info["S"] + info["data_offset"] + k * info["stride"] + bpi
        trailer = raw[start : start + 516]
        assert trailer[12:20] == data[k, 1, :4].astype("<u2").tobytes()
        assert trailer[20:] == bytes(516 - 20)


def test_block_layout_default(tmp_path):
    data = _stack(2, 4, 8)
    path = dt.write_dcimg(tmp_path / "x.dcimg", data, stored_pixels_row=3)
    info = _read(path)
    s, raw = info["S"], info["raw"]
    assert info["blocks"] == {
        1: (16, s + 0x120),
        4: (56, s + 0x130),
        3: (248, s + 0x200),
    }
    assert _u32(raw, s + 0x130 + 12) == 8
    assert _u32(raw, s + 0x130 + 16) == 3 * 16
    assert info["data_offset"] == 0x300
    camera = s + 0x200
    assert raw[camera : camera + 9] == b"4.11.523\0"
    assert raw[camera + 0x20 : camera + 0x24] == b"1.0\0"
    assert raw[camera + 0x80 : camera + 0x84] == b"2.0\0"
    assert info["model"] == "C11440-22C"
    assert info["serial"] == "S/N: 301234"
    # Older readers look at header_size + 712 for the sub-array.
    assert struct.unpack_from("<4H", raw, s + 712) == (0, 8, 0, 4)


def test_no_kind4_block_without_stored_pixels(tmp_path):
    path = dt.write_dcimg(tmp_path / "x.dcimg", _stack(), trailer_size=16)
    assert set(_read(path)["blocks"]) == {1, 3}


def test_camera_block_elsewhere_with_table(tmp_path):
    data = _stack(2, 4, 8)
    info = _round_trip(
        tmp_path,
        data,
        dict(
            camera_block_offset=0x300,
            sub_array=(100, 1000, 8, 4),
            stored_pixels_row=2,
            camera_model="C13440-20CU",
            camera_serial="000042",
        ),
        sub_array=(100, 1000, 8, 4),
    )
    s, raw = info["S"], info["raw"]
    assert _u64(raw, s + 0xF0 + 2 * 16 + 8) == 0x300 - 0xA0
    assert info["camera"] == s + 0x300
    assert info["data_offset"] == 0x400
    assert info["model"] == "C13440-20CU"
    assert info["serial"] == "S/N: 000042"
    # The fixed-offset location holds nothing: readers must use the table.
    assert raw[s + 0x200 : s + 0x300] == bytes(0x100)


def test_camera_block_without_table(tmp_path):
    # Version 0x1000000 without a table: the reader's rule puts the stored
    # pixels at sensor row 1023, here frame row 1023 - 1020 = 3.
    data = _stack(2, 6, 8)
    info = _round_trip(
        tmp_path,
        data,
        dict(block_table=False, sub_array=(16, 1020, 8, 6), stored_pixels_row=3),
        sub_array=(16, 1020, 8, 6),
    )
    s, raw = info["S"], info["raw"]
    assert info["blocks"] == {}
    assert raw[s + 0xF0 : s + 0x200] == bytes(0x110)
    assert info["camera"] == s + 0x200
    assert struct.unpack_from("<4H", raw, s + 712) == (16, 8, 1020, 6)
    assert info["stored_offset"] == 3 * 16


def test_no_table_version2_row0(tmp_path):
    data = _stack(2, 6, 8)
    _round_trip(
        tmp_path,
        data,
        dict(version=0x2000000, block_table=False, stored_pixels_row=0),
        stored_offset=0,
    )


def test_kind4_block_omitted(tmp_path):
    data = _stack(2, 40, 8)
    sub = (0, 1000, 16, 80)
    # Stored pixels where the fallback rule looks: row (1023 - 1000) // 2 = 11.
    info = _round_trip(
        tmp_path,
        data,
        dict(kind4_block=False, sub_array=sub, binning=2, stored_pixels_row=11),
        sub_array=sub,
        stored_offset=11 * 16,
    )
    assert set(info["blocks"]) == {1, 3}


@pytest.mark.parametrize(
    ("options", "row"),
    [
        ({"kind4_block": False}, 2),  # rule row is 1023 - 1020 = 3
        ({"kind4_block": False}, None),  # the reader would "restore" zeros
        ({"block_table": False}, 0),
        ({"block_table": False, "version": 0x2000000}, 1),
        ({"version": 0x2000000}, None),  # no stored pixels: no kind-4 block
        ({}, None),  # sensor row 1023 lies in the frame, no stored pixels
    ],
)
def test_missing_kind4_block_must_match_fallback_row(tmp_path, options, row):
    options = {"sub_array": (0, 1020, 8, 6), **options}
    with pytest.raises(ValueError, match="stored pixels at row"):
        dt.write_dcimg(
            tmp_path / "x.dcimg",
            _stack(2, 6, 8),
            stored_pixels_row=row,
            trailer_size=32,
            **options,
        )
    # 16-byte trailers hold no stored pixels, so no rule applies to them, and
    # the default trailer size picks them for a file without stored pixels.
    if row is None:
        path = dt.write_dcimg(
            tmp_path / "y.dcimg", _stack(2, 6, 8), stored_pixels_row=None, **options
        )
        assert _read(path)["trailer"] == 16


@pytest.mark.parametrize("row", [None, 3])
def test_files_that_break_the_fallback_rule(tmp_path, row):
    """follow_fallback_rule=False: no kind-4 block and no pattern at row 0."""
    data = _stack(3, 6, 8)
    path = dt.write_dcimg(
        tmp_path / "x.dcimg",
        data,
        version=0x2000000,  # the rule's row is 0
        trailer_size=32,
        kind4_block=False,
        stored_pixels_row=row,
        follow_fallback_rule=False,
    )
    raw = path.read_bytes()
    s = _u32(raw, 0x28)
    start = s + _u64(raw, s + 0x60)
    stride = _u32(raw, s + 0x74)
    assert stride == 6 * 8 * 2 + 32
    kinds = [_u32(raw, s + 0xF0 + 16 * i) for i in range(4)]
    assert 4 not in kinds and 3 in kinds  # a block table, without kind 4
    pattern = np.array([0, 65535, 0, 65535], np.uint16)
    for k in range(3):
        frame = np.frombuffer(raw, "<u2", 48, start + k * stride).reshape(6, 8)
        want = data[k].copy()
        if row is not None:
            want[row, :4] = pattern
            kept = raw[start + k * stride + 96 + 12 : start + k * stride + 96 + 20]
            assert kept == data[k, row, :4].astype("<u2").tobytes()
        np.testing.assert_array_equal(frame, want)
        assert not np.array_equal(frame[0, :4], pattern)  # nothing at row 0


def test_fallback_column_must_be_zero(tmp_path):
    with pytest.raises(ValueError, match="column 2"):
        dt.write_dcimg(
            tmp_path / "x.dcimg",
            _stack(2, 6, 8),
            version=0x2000000,
            kind4_block=False,
            stored_pixels_row=0,
            stored_pixels_column=2,
        )


def test_fallback_row_rule():
    assert dt.fallback_stored_pixels_row(0x1000000, 940, 168) == 83
    assert dt.fallback_stored_pixels_row(0x1000000, 0, 1024) == 1023
    assert dt.fallback_stored_pixels_row(0x1000000, 0, 1023) is None
    assert dt.fallback_stored_pixels_row(0x1000000, 1024, 10) is None
    assert dt.fallback_stored_pixels_row(0x1000000, 1001, 12, 2) == 11
    assert dt.fallback_stored_pixels_row(0x2000000, 940, 168) == 0


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_truncate_to(tmp_path, version):
    data = _stack(3, 4, 8)
    options = dict(version=version, declared_frames=5, stored_pixels_row=1)
    full = dt.write_dcimg(tmp_path / "full.dcimg", data, **options)
    complete = _read(full)
    assert complete["n"] == complete["file_nframes"] == 5
    np.testing.assert_array_equal(complete["data"][:3], data)
    np.testing.assert_array_equal(complete["framestamps"], np.arange(5))
    size = len(complete["raw"])
    cut = dt.write_dcimg(
        tmp_path / "cut.dcimg", data, truncate_to=size - 100, **options
    )
    raw = cut.read_bytes()
    assert len(raw) == size - 100
    assert raw == complete["raw"][: size - 100]
    assert _u64(raw, 0x30) == _u64(raw, 0x40) == size


@pytest.mark.parametrize("table_offset", [272, 400, 1000])
@pytest.mark.parametrize("row", [None, 2])
def test_footer_table_offset(tmp_path, table_offset, row):
    data = _stack(3, 4, 8)
    stamps = dict(
        framestamps=[5, 6, 9], timestamps_us=[0, 1_999_999, 4_000_000_000_000_001]
    )
    options = dict(
        version=0x7, footer_table_offset=table_offset, stored_pixels_row=row, **stamps
    )
    info = _round_trip(tmp_path, data, options, **stamps)
    raw, f = info["raw"], info["footer"]
    f2 = f + 0xA0
    assert _u64(raw, f2 + 0x30) == table_offset
    assert _u64(raw, f2 + 0x40) == table_offset + 12
    stored_size = 0 if row is None else 8
    assert _u64(raw, f2 + 0x58) == (0 if row is None else table_offset + 36)
    assert _u64(raw, f2 + 0x68) == stored_size
    assert info["footer_size"] == table_offset + 3 * (12 + stored_size)
    assert f + info["footer_size"] == len(raw)
    assert _u64(raw, info["S"]) == len(raw) - info["S"]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_header_size_and_sessions(tmp_path, version):
    data = _stack(2, 4, 8)
    info = _round_trip(
        tmp_path,
        data,
        dict(version=version, header_size=0x100, nsessions=3, stored_pixels_row=0),
        S=0x100,
        nsess=3,
    )
    assert _u64(info["raw"], 0x100) == len(info["raw"]) - 0x100


def test_framed_tail_and_session_size(tmp_path):
    data = _stack(2, 4, 8)
    info = _read(dt.write_dcimg(tmp_path / "x.dcimg", data))
    raw, s = info["raw"], info["S"]
    end_of_frames = s + info["data_offset"] + 2 * info["stride"]
    assert len(raw) == end_of_frames + 64
    assert raw[end_of_frames:] == bytes(64)
    assert _u64(raw, s) == len(raw) - s


def test_accepts_big_endian_and_non_contiguous(tmp_path):
    data = _stack(3, 6, 10)
    view = data.astype(">u2")[:, ::-1, :][:, ::-1, :]
    a = dt.write_dcimg(tmp_path / "a.dcimg", data, stored_pixels_row=1)
    b = dt.write_dcimg(tmp_path / "b.dcimg", view, stored_pixels_row=1)
    assert a.read_bytes() == b.read_bytes()


def test_path_as_str(tmp_path):
    out = dt.write_dcimg(str(tmp_path / "s.dcimg"), _stack())
    assert isinstance(out, pathlib.Path)
    assert out.exists()


# --------------------------------------------------------------------------
# Argument validation.
# --------------------------------------------------------------------------

BAD_ARGUMENTS = [
    ({"data": np.zeros((2, 4, 4), np.int16)}, "uint8 or uint16"),
    ({"data": np.zeros((2, 4, 4), np.float32)}, "uint8 or uint16"),
    ({"data": np.zeros((4, 4), np.uint16)}, "3 dimensions"),
    ({"data": np.zeros((0, 4, 4), np.uint16)}, "empty"),
    ({"version": 0x3}, "0x3"),
    ({"version": 0x1000001}, "0x1000001"),
    ({"bytes_per_row": 15}, "bytes_per_row"),
    ({"bytes_per_row": 1.5}, "bytes_per_row must be an integer"),
    ({"trailer_size": 24}, "trailer_size"),
    ({"trailer_size": 256}, "trailer_size"),
    ({"trailer_size": 514}, "trailer_size"),
    ({"trailer_size": 16, "stored_pixels_row": 0}, "16-byte trailers"),
    ({"stored_pixels_row": 4}, "outside the frame"),
    ({"stored_pixels_row": -1}, "outside the frame"),
    ({"stored_pixels_row": 0, "stored_pixels_column": 5}, "must fit in a row"),
    ({"stored_pixels_row": 0, "stored_pixels_column": -1}, "must fit in a row"),
    ({"framestamps": [0, 1]}, "framestamps"),
    ({"framestamps": [0.0, 1.0, 2.0]}, "integers"),
    ({"framestamps": [0, 1, -1]}, "uint32"),
    ({"framestamps": [0, 1, 2**32]}, "uint32"),
    ({"timestamps_us": [1, 2]}, "timestamps_us"),
    ({"timestamps_us": [1.0, 2.0, 3.0]}, "integers"),
    ({"timestamps_us": [-1, 0, 1]}, "1970"),
    ({"declared_frames": 2}, "declared_frames"),
    ({"truncate_to": 0}, "truncate_to"),
    ({"truncate_to": 10**9}, "truncate_to"),
    ({"nsessions": 0}, "nsessions"),
    ({"binning": 0}, "binning"),
    ({"sub_array": (0, 0, 8)}, "sub_array"),
    ({"sub_array": (0, 0, 16, 4)}, "binning"),
    ({"sub_array": (0, 0, 8, 4), "binning": 2}, "binning"),
    ({"sub_array": (70000, 0, 8, 4)}, "uint16"),
    ({"header_size": 0x40}, "header_size"),
    ({"header_size": 0x74}, "header_size"),
    ({"camera_block_offset": 0x100}, "camera_block_offset"),
    ({"camera_block_offset": 0x204}, "camera_block_offset"),
    ({"block_table": False, "camera_block_offset": 0x300}, "fixed offset"),
    ({"camera_model": "x" * 64}, "camera_model"),
    ({"camera_model": "caméra"}, "ASCII"),
    ({"camera_serial": "1" * 60}, "camera_serial"),
    ({"camera_versions": ("1", "2")}, "3 strings"),
    ({"camera_versions": ("1", "2", "x" * 16)}, "camera_versions"),
    ({"version": 0x7, "footer_table_offset": 200}, "footer_table_offset"),
    ({"version": 0x7, "footer_table_offset": 274}, "footer_table_offset"),
]


@pytest.mark.parametrize(("options", "message"), BAD_ARGUMENTS)
def test_invalid_arguments(tmp_path, options, message):
    options = dict(options)
    data = options.pop("data", np.zeros((3, 4, 8), np.uint16))
    path = tmp_path / "x.dcimg"
    with pytest.raises(ValueError, match=message):
        dt.write_dcimg(path, data, **options)
    assert not path.exists()


def test_camera_block_offset_after_kind4_block(tmp_path):
    data = _stack(2, 4, 8)
    # Without stored pixels the blocks before the camera block end at 0x120.
    dt.write_dcimg(tmp_path / "a.dcimg", data, camera_block_offset=0x120)
    with pytest.raises(ValueError, match="camera_block_offset"):
        dt.write_dcimg(
            tmp_path / "b.dcimg",
            data,
            camera_block_offset=0x160,
            stored_pixels_row=0,
        )
    info = _read(
        dt.write_dcimg(
            tmp_path / "c.dcimg", data, camera_block_offset=0x168, stored_pixels_row=0
        )
    )
    assert info["camera"] == info["S"] + 0x168
    assert info["data_offset"] == 0x300


# --------------------------------------------------------------------------
# Example data.
# --------------------------------------------------------------------------


def test_example_stack_reproducible():
    a = dt.example_stack(nframes=5, height=20, width=30, seed=3)
    b = dt.example_stack(nframes=5, height=20, width=30, seed=3)
    c = dt.example_stack(nframes=5, height=20, width=30, seed=4)
    assert a.shape == (5, 20, 30)
    assert a.dtype == np.uint16
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() > 0
    assert a.max() < 65535
    # Not flat: spots and gradient make a useful test image.
    assert a.std() > 100
    assert not np.array_equal(a[0], a[1])


def test_example_stack_8bit():
    a = dt.example_stack(nframes=3, height=10, width=12, dtype=np.uint8)
    assert a.dtype == np.uint8
    assert a.shape == (3, 10, 12)
    assert 0 < a.std()


@pytest.mark.parametrize(
    "options", [{"dtype": np.int32}, {"nframes": 0}, {"width": -1}]
)
def test_example_stack_invalid(options):
    with pytest.raises(ValueError):
        dt.example_stack(**options)


def test_write_example(tmp_path):
    path = dt.write_example(tmp_path / "example.dcimg")
    assert path == tmp_path / "example.dcimg"
    info = _read(path)
    assert info["version"] == 0x1000000
    assert info["trailer"] == 32
    assert info["n"] == 20
    assert (info["height"], info["width"], info["depth"]) == (64, 80, 2)
    x0, y0, width, height = info["sub_array"]
    assert (width, height) == (80, 64)
    assert (x0, y0) != (0, 0)
    assert info["stored_offset"] == (1023 - y0) * 160
    np.testing.assert_array_equal(info["data"], dt.example_stack(20, 64, 80))
    steps = np.diff(info["framestamps"])
    assert sorted(steps.tolist()) == [1] * 18 + [2]
    assert np.all(np.diff(info["timestamps_us"]) > 0)


# --------------------------------------------------------------------------
# Defaults chosen from the format's rules.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_defaults_full_frame(tmp_path, version, dtype):
    # A full 2048 x 2048 ORCA-Flash frame with nothing but defaults: the
    # camera's pattern sits where a reader looks without a kind-4 block.
    data = _stack(2, 2048, 2048, dtype, seed=version)
    path = dt.write_dcimg(tmp_path / "x.dcimg", data, version=version)
    info = _assert_round_trip(path, data, framestamps=[0, 1])
    row = 0 if version == 0x2000000 else 1023
    assert info["stored_offset"] == row * 2048 * np.dtype(dtype).itemsize
    top = np.iinfo(dtype).max
    assert info["stored_bytes_in_frame"].copy().view(dtype).tolist() == (
        [[0, top] * (4 // np.dtype(dtype).itemsize)] * 2
    )
    if version != 0x7:
        assert info["trailer"] == 32
        assert 4 in info["blocks"]
    dcimg = pytest.importorskip("dcimg")
    with dcimg.DCIMGFile(path) as f:
        assert f.shape == data.shape
        assert f.dtype == dtype
        assert f.metadata.stored_pixels.row == row
        np.testing.assert_array_equal(f[:], data)


@pytest.mark.parametrize(
    ("version", "height", "row", "trailer"),
    [
        (0x7, 8, None, None),  # no sensor row 1023 in the frame
        (0x7, 1100, 1023, None),
        (0x1000000, 8, None, 32),  # the fallback rule finds no row either
        (0x1000000, 1024, 1023, 32),
        (0x2000000, 8, 0, 32),  # the rule for 0x2000000 is row 0
    ],
)
def test_default_stored_row_follows_rules(tmp_path, version, height, row, trailer):
    data = _stack(2, height, 8)
    info = _assert_round_trip(
        dt.write_dcimg(tmp_path / "x.dcimg", data, version=version), data
    )
    assert info["stored_offset"] == (None if row is None else row * 16)
    assert info.get("trailer") == trailer


def test_default_stored_row_moves_with_sub_array(tmp_path):
    data = _stack(2, 40, 8)
    sub = (0, 1000, 16, 80)
    info = _assert_round_trip(
        dt.write_dcimg(tmp_path / "x.dcimg", data, sub_array=sub, binning=2),
        data,
    )
    assert info["stored_offset"] == (1023 - 1000) // 2 * 16


@pytest.mark.parametrize("version", [0x1000000, 0x2000000])
def test_default_without_room_for_stored_pixels(tmp_path, version):
    # 3 pixels of 16 bit cannot hold the 8 stored bytes, and a frame without
    # stored pixels gets 16-byte trailers where the rule would find a row.
    data = _stack(2, 1030, 3)
    info = _assert_round_trip(
        dt.write_dcimg(tmp_path / "x.dcimg", data, version=version), data
    )
    assert info["stored_offset"] is None
    assert info["trailer"] == 16


def test_default_trailer_for_explicit_no_stored_pixels(tmp_path):
    data = _stack(2, 1024, 8)
    info = _assert_round_trip(
        dt.write_dcimg(tmp_path / "x.dcimg", data, stored_pixels_row=None), data
    )
    assert info["stored_offset"] is None
    assert info["trailer"] == 16
    # Asked for explicitly, 32-byte trailers contradict the fallback rule.
    with pytest.raises(ValueError, match="stored pixels at row 1023"):
        dt.write_dcimg(
            tmp_path / "y.dcimg", data, stored_pixels_row=None, trailer_size=32
        )


def test_default_16_byte_trailers_hold_no_stored_pixels(tmp_path):
    data = _stack(2, 1024, 8)
    info = _read(dt.write_dcimg(tmp_path / "x.dcimg", data, trailer_size=16))
    assert info["stored_offset"] is None


def test_bad_stored_row_string(tmp_path):
    with pytest.raises(ValueError, match="stored_pixels_row"):
        dt.write_dcimg(tmp_path / "x.dcimg", _stack(), stored_pixels_row="centre")
    assert list(tmp_path.iterdir()) == []


def test_sparse_defaults_full_frame(tmp_path):
    # No stored pixels by default; 16-byte trailers keep the file consistent.
    info = _read(dt.write_sparse_dcimg(tmp_path / "s.dcimg", 2, 2048, 2048))
    assert info["trailer"] == 16
    assert info["stored_offset"] is None
    assert not info["data"].any()


# --------------------------------------------------------------------------
# Streaming from sources larger than memory.
# --------------------------------------------------------------------------


class FrameSource:
    """Frames one at a time: ``shape``, ``dtype`` and ``[k]`` for an int k."""

    def __init__(self, data, fail_at=None):
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.fail_at = fail_at
        self.calls = []

    def __getitem__(self, k):
        if not isinstance(k, int):
            raise TypeError(f"frames only, got {k!r}")
        self.calls.append(k)
        if k == self.fail_at:
            raise RuntimeError(f"camera lost at frame {k}")
        return self.data[k].copy()


# Small blocks, so a few frames already span several of them.
@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(dt, "_BLOCK_BYTES", 700)


STREAM_OPTIONS = [
    {"version": 0x7, "stored_pixels_row": 3},
    {"version": 0x1000000, "stored_pixels_row": 2, "bytes_per_row": 37},
    {"version": 0x2000000, "trailer_size": 516},
    {"version": 0x1000000, "stored_pixels_row": None, "trailer_size": 16},
]


@pytest.mark.parametrize("options", STREAM_OPTIONS)
def test_blocks_write_same_bytes(tmp_path, monkeypatch, options):
    data = _stack(9, 6, 16)
    whole = dt.write_dcimg(tmp_path / "a.dcimg", data, **options).read_bytes()
    monkeypatch.setattr(dt, "_BLOCK_BYTES", 1)  # one frame a block
    one = dt.write_dcimg(tmp_path / "b.dcimg", data, **options).read_bytes()
    monkeypatch.setattr(dt, "_BLOCK_BYTES", 4 * 6 * 40)  # blocks of 3 or 4
    some = dt.write_dcimg(tmp_path / "c.dcimg", data, **options).read_bytes()
    assert one == whole
    assert some == whole


@pytest.mark.parametrize("options", STREAM_OPTIONS)
def test_stream_from_frame_source(tmp_path, small_blocks, options):
    data = _stack(7, 6, 16)
    expected = dt.write_dcimg(tmp_path / "a.dcimg", data, **options).read_bytes()
    source = FrameSource(data)
    path = dt.write_dcimg(tmp_path / "b.dcimg", source, **options)
    assert path.read_bytes() == expected
    assert source.calls == list(range(7))  # each frame read once, in order


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_stream_from_memmap(tmp_path, small_blocks, mode):
    data = _stack(7, 6, 16)
    expected = dt.write_dcimg(tmp_path / "a.dcimg", data[::-1]).read_bytes()
    raw = tmp_path / "stack.raw"
    data.tofile(raw)
    mapped = np.memmap(raw, np.uint16, mode, shape=data.shape)
    if mode != "r":
        # Changes not yet on disk: the pages the writer gives back must keep
        # them (a shared map's pages live on in the page cache; a
        # copy-on-write map's pages must not be given back at all).
        mapped[1, 2, 3] = data[1, 2, 3] = 12345
        expected = dt.write_dcimg(tmp_path / "a.dcimg", data[::-1]).read_bytes()
    path = dt.write_dcimg(tmp_path / "b.dcimg", mapped[::-1])
    assert path.read_bytes() == expected
    np.testing.assert_array_equal(mapped, data)
    del mapped


def test_stream_from_dask(tmp_path, small_blocks):
    da = pytest.importorskip("dask.array")
    data = _stack(9, 6, 16)
    lazy = da.from_array(data, chunks=(2, 6, 16))
    expected = dt.write_dcimg(tmp_path / "a.dcimg", data).read_bytes()
    assert dt.write_dcimg(tmp_path / "b.dcimg", lazy).read_bytes() == expected


class _CountingArray:
    """An array for ``dask.array.from_array`` that records every read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, 3
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key[0] if isinstance(key, tuple) else key)
        return self.data[key]


@pytest.mark.parametrize(
    ("chunk_limit", "expected"),
    [
        # Chunks of 3 frames, computed once each though the writer's blocks
        # take 2 frames at a time.
        (10**6, [(0, 3), (3, 6), (6, 9), (9, 10)]),
        # Chunks too big to keep: read block by block, never across a chunk.
        (1, [(0, 2), (2, 3), (3, 4), (4, 6), (6, 8), (8, 9), (9, 10)]),
    ],
)
def test_dask_chunks_read_once(tmp_path, monkeypatch, chunk_limit, expected):
    da = pytest.importorskip("dask.array")
    data = _stack(10, 6, 16)
    expected_bytes = dt.write_dcimg(tmp_path / "a.dcimg", data).read_bytes()
    monkeypatch.setattr(dt, "_BLOCK_BYTES", 2 * (6 * 16 * 2 + 32))  # 2 frames
    monkeypatch.setattr(dt, "_CHUNK_BYTES", chunk_limit)
    source = _CountingArray(data)
    lazy = da.from_array(source, chunks=(3, 6, 16), asarray=True)
    source.reads.clear()  # Dask reads an empty slice for its metadata
    path = dt.write_dcimg(tmp_path / "b.dcimg", lazy)
    assert path.read_bytes() == expected_bytes
    reads = [(k.start or 0, k.stop) for k in source.reads if isinstance(k, slice)]
    assert len(reads) == len(source.reads)
    assert reads == expected


def test_stream_declared_frames_beyond_source(tmp_path, small_blocks):
    data = _stack(3, 6, 16)
    path = dt.write_dcimg(
        tmp_path / "x.dcimg", FrameSource(data), declared_frames=8, stored_pixels_row=1
    )
    info = _read(path)
    assert info["n"] == 8
    np.testing.assert_array_equal(info["data"][:3], data)
    np.testing.assert_array_equal(info["framestamps"], np.arange(8))
    assert info["data"][3:].std() > 1000  # pseudo-random filler


def test_accepts_nested_lists(tmp_path):
    data = _stack(2, 3, 8)
    expected = dt.write_dcimg(tmp_path / "a.dcimg", data).read_bytes()
    lists = [[[int(v) for v in row] for row in frame] for frame in data]
    with pytest.raises(ValueError, match="uint8 or uint16"):
        dt.write_dcimg(tmp_path / "b.dcimg", lists)  # int64 once converted
    converted = np.asarray(lists, dtype=np.uint16)
    assert dt.write_dcimg(tmp_path / "b.dcimg", converted).read_bytes() == expected


class _Declared:
    """A source whose frames do not match what it declares."""

    def __init__(self, frame, shape=(4, 6, 16), dtype=np.uint16):
        self.shape, self.dtype, self.frame = shape, np.dtype(dtype), frame

    def __getitem__(self, k):
        return self.frame if k == 2 else np.zeros(self.shape[1:], self.dtype)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (_Declared(np.zeros((6, 15), np.uint16)), r"frame 2 has shape \(6, 15\)"),
        (_Declared(np.zeros((6, 16), np.uint8)), "frame 2 has dtype uint8"),
        (_Declared(np.zeros((6, 16), np.int16)), "frame 2 has dtype int16"),
        (_Declared(None, shape=(4, float("nan"), 16)), "known shape"),
    ],
)
def test_source_that_breaks_its_promise(tmp_path, small_blocks, source, message):
    with pytest.raises(ValueError, match=message):
        dt.write_dcimg(tmp_path / "x.dcimg", source)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# Atomic writes.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_failure_mid_way_leaves_nothing(tmp_path, small_blocks, version):
    source = FrameSource(_stack(8, 6, 16), fail_at=5)
    with pytest.raises(RuntimeError, match="frame 5"):
        dt.write_dcimg(tmp_path / "x.dcimg", source, version=version)
    assert source.calls[-1] == 5  # frames 0-4 had reached the disk
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_file(tmp_path, small_blocks):
    path = dt.write_dcimg(tmp_path / "x.dcimg", _stack(2, 6, 16))
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        dt.write_dcimg(path, FrameSource(_stack(8, 6, 16), fail_at=6))
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_replaces_existing_file(tmp_path):
    path = tmp_path / "x.dcimg"
    path.write_bytes(b"old" * 100_000)
    data = _stack(2, 6, 16)
    dt.write_dcimg(path, data)
    _assert_round_trip(path, data)
    assert list(tmp_path.iterdir()) == [path]


def test_sparse_writer_is_atomic(tmp_path):
    with pytest.raises(ValueError, match="stored_pixels_row"):
        dt.write_sparse_dcimg(tmp_path / "s.dcimg", 3, 4, 8, stored_pixels_row=9)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# Memory: a large file is written with a bounded amount of memory.
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("source", "gigabytes"), [("memmap", 1.0), ("lazy", 0.5)])
def test_memory_bounded(tmp_path, source, gigabytes):
    pytest.importorskip("dcimg.core")  # the tool imports dcimg.testing
    pytest.importorskip("resource")  # the tool's peak memory: not on Windows
    # The output, and the memory map's raw file (sparse, but some file
    # systems fill it in): a full disk is no finding about the writer.
    free = shutil.disk_usage(tmp_path).free
    if free < 3 * gigabytes * 1e9:
        needed = f"{3 * gigabytes:g} GB"
        pytest.skip(f"needs {needed} free in {tmp_path}, has {free / 1e9:.1f} GB")
    tool = ROOT / "tools" / "writer_memory.py"
    command = [sys.executable, str(tool), "--gigabytes", str(gigabytes)]
    command += ["--source", source, "--folder", str(tmp_path), "--limit-mb", "256"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr  # 2: the write failed
    report = json.loads(done.stdout)
    assert report["bytes"] > gigabytes * 0.99e9
    # The writer's buffers are 32 MB; the limit leaves room for the frames
    # the source makes and for NumPy's temporaries, not for a copy.
    assert report["peak_rss_growth_mb"] < 256, report
    if report["rss_anon_before_mb"] is not None:  # Linux
        assert report["peak_rss_anon_mb"] - report["rss_anon_before_mb"] < 256
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# The examples in the docstrings run as written.
# --------------------------------------------------------------------------


def test_docstring_examples_run():
    pytest.importorskip("dcimg.core")  # one example reads back with DCIMGFile
    import doctest

    result = doctest.testmod(dt, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 20
    assert result.failed == 0
