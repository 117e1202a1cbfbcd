"""Edges of the format and of the read API, over every byte source.

* ``out=``: any writable array of the right shape and dtype is filled exactly
  (strided, reversed, Fortran-ordered, byte-swapped, unaligned), and every
  other one is refused with the same message whatever the byte source;
* a framed file with whole headers and no whole frame opens with zero frames
  and grows with :meth:`~dcimg.DCIMGFile.refresh`; a file cut inside its
  headers is refused naming the field and the values;
* a last frame whose pixels are whole but whose trailer is cut is returned,
  with its counter and time stamp marked missing;
* a fallback stored-pixel row is used only where the frames show the
  camera's ``0, max, 0, max`` pattern;
* the per-frame data of files of many frames cost at most 24 bytes a frame.

Each property is drawn by hypothesis over the synthetic writer.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import load_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

from dcimg import DCIMGFile, DCIMGFormatError, DCIMGSeries, DCIMGWarning
from dcimg.metadata import MISSING_FRAMESTAMP
from dcimg.testing import example_stack, write_dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "500"))
SETTINGS = settings(
    max_examples=max(10, EXAMPLES // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FRAMED_S = 0x70  # where the writer puts a framed file's session header
DATA = Path(__file__).parent / "data"
# The project's shared golden files, when this checkout sits beside them
# (optional: the copies in tests/data are always there).
SHARED = next(
    (
        folder / "shared" / "fixtures"
        for folder in Path(__file__).resolve().parents
        if (folder / "shared" / "fixtures" / "manifest.json").is_file()
    ),
    Path("/nonexistent"),
)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="dcimg-edges-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def http():
    """An HTTP Range server on 127.0.0.1 (module-wide: hypothesis reuses it)."""
    from servers import serving_http

    with serving_http() as server:
        yield server


# Byte sources of a single file; "series" reads two copies joined in time.
FILE_SOURCES = ["map", "pread", "pread-direct", "bytesio", "fileobj", "memory", "http"]
SOURCES = [*FILE_SOURCES, "series"]


def open_as(path: Path, source: str, http=None, **kwargs):
    """Open ``path`` through one byte source (a DCIMGFile, or a series)."""
    if source == "map":
        return DCIMGFile(path, **kwargs)
    if source in ("pread", "pread-direct"):
        f = DCIMGFile(path, mmap=False, **kwargs)
        if source == "pread-direct":
            f._source.direct_frame_bytes = 0  # whole frames straight into out
        return f
    if source == "bytesio":
        return DCIMGFile(io.BytesIO(path.read_bytes()), **kwargs)
    if source == "fileobj":
        return DCIMGFile(open(path, "rb"), **kwargs)  # noqa: SIM115 - closed by f
    if source == "memory":
        fsspec = pytest.importorskip("fsspec")
        url = f"memory://dcimg-edges/{path.parent.name}/{path.name}"
        with fsspec.open(url, "wb") as out:
            out.write(path.read_bytes())
        return DCIMGFile(url, **kwargs)
    if source == "http":
        name = f"{path.parent.name}-{path.name}"
        http.files[f"/{name}"] = path.read_bytes()
        return DCIMGFile(http.url(name), **kwargs)
    assert source == "series"
    twin = path.with_name(f"{path.stem}-twin_001.dcimg")
    first = path.with_name(f"{path.stem}-twin_000.dcimg")
    shutil.copyfile(path, first)
    shutil.copyfile(path, twin)
    return DCIMGSeries([first, twin], concat=True, **kwargs)


def close(reader) -> None:
    file_object = getattr(reader, "file_object", None)
    reader.close()
    if file_object is not None:
        file_object.close()


def quietly(path: Path, source: str, http=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        return open_as(path, source, http, **kwargs)


# --------------------------------------------------------------------------
# out=


@st.composite
def small_files(draw, folder: Path):
    version = draw(st.sampled_from([0x7, 0x1000000, 0x2000000]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(8, 12)))
    truth = example_stack(*shape, dtype=dtype, seed=draw(st.integers(0, 99)))
    row = draw(st.none() | st.integers(0, shape[1] - 1))
    kwargs = {"version": version, "stored_pixels_row": row}
    if version != 0x7:
        kwargs["trailer_size"] = 16 if row is None else 32
    path = folder / f"out{draw(st.integers(0, 10**9))}.dcimg"
    write_dcimg(path, truth, **kwargs)
    return path, truth


# How out is laid out in memory; each gives an array of `shape` and `dtype`.
LAYOUTS = ["c", "fortran", "strided", "reversed", "byteswapped", "unaligned"]


def make_out(layout: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if layout == "c":
        return np.zeros(shape, dtype)
    if layout == "fortran":
        return np.zeros(shape, dtype, order="F")
    if not shape and layout in ("strided", "reversed"):
        return np.zeros((), dtype)  # big[()] would be a scalar, not an array
    if layout == "strided":
        big = np.zeros(tuple(2 * n for n in shape), dtype)
        return big[tuple(slice(None, None, 2) for _ in shape)]
    if layout == "reversed":
        return np.zeros(shape, dtype)[tuple(slice(None, None, -1) for _ in shape)]
    if layout == "byteswapped":
        return np.zeros(shape, dtype.newbyteorder())
    assert layout == "unaligned"
    count = int(np.prod(shape))
    raw = bytearray(count * dtype.itemsize + 1)
    return np.frombuffer(raw, dtype, count, offset=1).reshape(shape)


OUT_DTYPES = [None, "uint16", "uint8", "int32", "float32", "float64", "float16"]


@SETTINGS
@given(data=st.data())
def test_out_is_filled_exactly_in_any_layout(folder, http, data):
    path, truth = data.draw(small_files(folder))
    source = data.draw(st.sampled_from(SOURCES))
    want_all = np.concatenate([truth, truth]) if source == "series" else truth
    key = data.draw(basic_indices(want_all.shape, allow_newaxis=True))
    want = want_all[key]
    layout = data.draw(st.sampled_from(LAYOUTS))
    name = data.draw(st.sampled_from(OUT_DTYPES))
    dtype = np.dtype(name or truth.dtype)
    out = make_out(layout, np.shape(want), dtype)
    reader = open_as(path, source, http)
    try:
        result = reader.read(key, out=out)
    finally:
        close(reader)
    assert result is out
    np.testing.assert_array_equal(out, np.asarray(want).astype(dtype))


# Each wrong out, and the words its message must hold.
BAD_OUTS = {
    "read-only": "read-only",
    "wrong shape": "shape",
    "extra axis": "shape",
    "dtype differs": "differs",
    "text dtype": "numeric",
    "object dtype": "numeric",
}


def make_bad_out(case: str, shape: tuple, dtype: np.dtype):
    if case == "read-only":
        out = np.zeros(shape, dtype)
        out.flags.writeable = False
        return out, None
    if case == "wrong shape":
        return np.zeros((*shape[:-1], shape[-1] + 1) if shape else (1,), dtype), None
    if case == "extra axis":
        return np.zeros((1, *shape), dtype), None
    if case == "dtype differs":
        return np.zeros(shape, dtype), "int64" if dtype != np.int64 else "int32"
    if case == "text dtype":
        return np.zeros(shape, "U4"), None
    assert case == "object dtype"
    return np.zeros(shape, object), None


@SETTINGS
@given(data=st.data())
def test_bad_out_refused_alike_by_every_source(folder, http, data):
    path, truth = data.draw(small_files(folder))
    key = data.draw(basic_indices(truth.shape, allow_newaxis=True))
    case = data.draw(st.sampled_from(sorted(BAD_OUTS)))
    layout = data.draw(st.sampled_from(["c", "strided", "fortran"]))
    shape = np.shape(truth[key])
    good = make_out(layout, shape, truth.dtype)
    out, dtype = make_bad_out(case, shape, truth.dtype)
    if case == "read-only" and layout != "c":
        out = good
        out.flags.writeable = False
    messages = set()
    for source in FILE_SOURCES:
        reader = open_as(path, source, http)
        try:
            with pytest.raises(ValueError, match=BAD_OUTS[case]) as caught:
                reader.read(key, dtype=dtype, out=out)
        finally:
            close(reader)
        messages.add(str(caught.value))
    assert len(messages) == 1, messages  # one check, one message
    # A series runs the same check on its own (longer) shape.
    series = open_as(path, "series")
    try:
        twice = (2 * truth.shape[0], *truth.shape[1:])
        key = data.draw(basic_indices(twice, allow_newaxis=True))
        shape = np.shape(np.empty(twice, np.uint8)[key])
        out, dtype = make_bad_out(case, shape, truth.dtype)
        with pytest.raises(ValueError, match=BAD_OUTS[case]):
            series.read(key, dtype=dtype, out=out)
    finally:
        series.close()


def test_out_not_an_array_is_a_type_error(folder):
    path = write_dcimg(folder / "t.dcimg", example_stack(2, 4, 8))
    for source in ("map", "pread", "bytesio"):
        reader = open_as(path, source)
        with pytest.raises(TypeError, match="numpy.ndarray, not list"):
            reader.read(out=[[0] * 8] * 4)
        close(reader)


def test_strided_out_on_pread_is_filled(folder):
    """The report: a strided out stayed all zeros on mmap=False."""
    truth = example_stack(4, 32, 16)
    path = write_dcimg(folder / "strided.dcimg", truth)
    for source in SOURCES:
        if source == "http":
            continue
        reader = open_as(path, source)
        frames = 8 if source == "series" else 4
        out = np.zeros((frames, 32, 32), np.uint16)[:, :, ::2]
        assert reader.read(..., out=out) is out
        close(reader)
        want = np.concatenate([truth, truth]) if source == "series" else truth
        np.testing.assert_array_equal(out, want, err_msg=source)


# --------------------------------------------------------------------------
# Headers whole, no whole frame yet


@st.composite
def framed_files(draw, folder: Path, stored: bool | None = None):
    """A framed file: (path, truth, geometry dict); frames of at least 1 KiB."""
    version = draw(st.sampled_from([0x1000000, 0x2000000]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    frames = draw(st.integers(1, 4))
    height = draw(st.integers(8, 40))
    width = draw(st.integers(128, 200))
    truth = example_stack(frames, height, width, dtype=dtype, seed=frames)
    with_stored = draw(st.booleans()) if stored is None else stored
    row = draw(st.integers(0, height - 1)) if with_stored else None
    trailer = draw(st.sampled_from([32, 512])) if with_stored else 16
    path = folder / f"framed{draw(st.integers(0, 10**9))}.dcimg"
    write_dcimg(
        path,
        truth,
        version=version,
        trailer_size=trailer,
        stored_pixels_row=row,
        framestamps=np.arange(frames) + 5,
    )
    raw = path.read_bytes()
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    bpi = struct.unpack_from("<I", raw, FRAMED_S + 0x54)[0]
    geometry = {"data": data, "bpi": bpi, "stride": bpi + trailer, "row": row}
    return path, truth, geometry


@SETTINGS
@given(data=st.data())
def test_whole_headers_without_a_frame_open_empty(folder, http, data):
    path, truth, g = data.draw(framed_files(folder))
    cut = data.draw(st.integers(g["data"], g["data"] + g["bpi"] - 1))
    part = path.with_name("part-" + path.name)
    part.write_bytes(path.read_bytes()[:cut])
    _, height, width = truth.shape
    for source in FILE_SOURCES:
        with pytest.warns(DCIMGWarning, match="0 complete frames"):
            f = open_as(part, source, http)
        try:
            assert f.shape == (0, height, width)
            assert len(f) == 0
            assert f[...].shape == (0, height, width)
            assert f[:, 1:3].shape == (0, 2, width)
            out = np.empty((0, height, width), f.dtype)
            assert f.read(slice(0, 0), out=out) is out
            assert f.timestamps.size == 0 and f.framestamps.size == 0
            assert f.metadata.frames == 0 and f.metadata.truncated
            assert f.metadata.declared_frames == len(truth)
        finally:
            close(f)


@SETTINGS
@given(data=st.data())
def test_file_cut_inside_its_headers_is_refused_naming_the_field(folder, data):
    path, _, g = data.draw(framed_files(folder))
    cut = data.draw(st.integers(1, g["data"] - 1))
    part = path.with_name("head-" + path.name)
    part.write_bytes(path.read_bytes()[:cut])
    for source in ("map", "pread", "bytesio"):
        with pytest.raises(DCIMGFormatError) as caught:
            open_as(part, source)
        assert caught.value.field
        assert str(cut) in str(caught.value)  # the values: the file's size


def _grow(path: Path, full: bytes, size: int) -> None:
    """Append to ``path`` until it is ``size`` bytes (the camera writing on)."""
    now = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(full[now:size])


@pytest.mark.parametrize("source", ["map", "pread", "fileobj"])
def test_empty_file_grows_with_refresh(tmp_path, source):
    truth = example_stack(3, 16, 128)
    full = write_dcimg(tmp_path / "full.dcimg", truth, trailer_size=16).read_bytes()
    data = FRAMED_S + struct.unpack_from("<Q", full, FRAMED_S + 0x60)[0]
    stride = 16 * 128 * 2 + 16
    path = tmp_path / "growing.dcimg"
    path.write_bytes(full[: data + 100])
    with pytest.warns(DCIMGWarning, match="0 complete frames"):
        f = open_as(path, source)
    try:
        assert f.shape == (0, 16, 128)
        for frames in (1, 2, 3):
            _grow(path, full, data + frames * stride)
            assert f.refresh() == frames
            assert f.shape == (frames, 16, 128)
            np.testing.assert_array_equal(f[...], truth[:frames])
            np.testing.assert_array_equal(f.framestamps, np.arange(frames))
    finally:
        close(f)


# --------------------------------------------------------------------------
# A last frame whose pixels are whole but whose trailer is cut


@SETTINGS
@given(data=st.data())
def test_cut_trailer_keeps_the_last_frame(folder, http, data):
    path, truth, g = data.draw(framed_files(folder))
    n = len(truth)
    last = g["data"] + (n - 1) * g["stride"] + g["bpi"]  # end of its pixels
    # Anywhere in the counter, seconds or microseconds of the last trailer.
    cut = last + data.draw(st.integers(0, 11))
    part = path.with_name("cut-" + path.name)
    part.write_bytes(path.read_bytes()[:cut])
    stored = g["row"] is not None
    source = data.draw(st.sampled_from(FILE_SOURCES))
    # Without stored pixels the last frame's pixels are exact; with them,
    # its overwritten pixels are returned as stored (their values are cut).
    kwargs = {"first_4px_correction_enabled": None} if stored else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = open_as(part, source, http, **kwargs)
    try:
        messages = " ".join(str(w.message) for w in caught)
        assert f.shape == truth.shape
        if stored:
            assert f.metadata.stored_pixels.missing_frames == 1
            # Read as stored (every frame): the stored values themselves are
            # checked in test_cut_inside_the_stored_values_keeps_the_last_frame.
            np.testing.assert_array_equal(f[...], as_stored(path, truth))
        else:
            np.testing.assert_array_equal(f[...], truth)
            assert f.metadata.stored_pixels is None
        counters = np.arange(n) + 5
        assert "trailer of the last one is cut" in messages
        assert f.metadata.missing_stamps == 1
        assert f.framestamps[-1] == MISSING_FRAMESTAMP
        np.testing.assert_array_equal(f.framestamps[:-1], counters[:-1])
        assert np.isnat(f.timestamps[-1]) and np.isnat(f.ts(-1))
        assert not np.isnat(f.timestamps[:-1]).any()
        # The missing stamp is no dropped frame and no last time stamp.
        assert f.metadata.dropped_frame_count == 0
        if n > 1:
            assert f.metadata.last_timestamp == str(f.timestamps[-2]) + "Z"
        else:
            assert f.metadata.last_timestamp is None
    finally:
        close(f)


def as_stored(path: Path, truth: np.ndarray) -> np.ndarray:
    """The frames of a framed file as its bytes hold them (no correction)."""
    raw = path.read_bytes()
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    stride = struct.unpack_from("<I", raw, FRAMED_S + 0x74)[0]
    row_bytes = struct.unpack_from("<I", raw, FRAMED_S + 0x50)[0]
    frames, height, width = truth.shape
    dtype = np.dtype(truth.dtype).newbyteorder("<")
    image = np.empty_like(truth)
    for i in range(frames):
        start = data + i * stride
        rows = np.frombuffer(raw, np.uint8, height * row_bytes, start)
        image[i] = rows.reshape(height, row_bytes)[:, : width * dtype.itemsize].view(
            dtype
        )
    return image


@SETTINGS
@given(data=st.data())
def test_cut_inside_the_stored_values_keeps_the_last_frame(folder, http, data):
    """A framed file cut inside the last trailer, before its stored values end.

    The last frame is returned: its overwritten pixels as stored (their true
    values are cut off), or 0 when asked for zeros; every other frame is
    corrected as usual.
    """
    path, truth, g = data.draw(framed_files(folder, stored=True))
    n = len(truth)
    last = g["data"] + (n - 1) * g["stride"] + g["bpi"]  # end of its pixels
    # Counter, time stamp (12 bytes) and stored values (8 bytes) follow.
    cut = last + data.draw(st.integers(0, 12 + 8 - 1))
    part = path.with_name(f"cut{cut}-" + path.name)
    part.write_bytes(path.read_bytes()[:cut])
    mode = data.draw(st.sampled_from([True, False, None]))
    source = data.draw(st.sampled_from(FILE_SOURCES))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = open_as(part, source, http, first_4px_correction_enabled=mode)
    try:
        messages = " ".join(str(w.message) for w in caught)
        assert "stored values of its" in messages and "as stored" in messages
        info = f.metadata.stored_pixels
        assert info.available and info.missing_frames == 1
        assert f.metadata.missing_stamps == (1 if cut < last + 12 else 0)
        raw = as_stored(path, truth)
        where = (slice(None), info.row, slice(info.column, info.column + info.count))
        if mode is None:
            want = raw
        elif mode:
            want = truth.copy()
            want[-1] = raw[-1]
        else:
            want = truth.copy()
            want[where] = 0
        assert f.shape == truth.shape
        for _ in range(3):
            key = data.draw(basic_indices(truth.shape, allow_newaxis=True))
            np.testing.assert_array_equal(f[key], want[key])
        np.testing.assert_array_equal(f[::-1], want[::-1])
        out = np.empty(truth.shape, "float64")
        np.testing.assert_array_equal(f.read(slice(None), out=out), want)
    finally:
        close(f)


# --------------------------------------------------------------------------
# Fallback stored-pixel rows only where the pattern is


@st.composite
def fallback_files(draw, folder: Path):
    """A framed file without a kind-4 block: (path, truth, as stored, kind)."""
    version = draw(st.sampled_from([0x1000000, 0x2000000]))
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.uint16])))
    frames = draw(st.integers(1, 20))
    height = draw(st.integers(1, 10))
    width = draw(st.integers(8, 24))
    trailer = draw(st.sampled_from([32, 512]))
    # Sensor row 1023 lands on this frame row (version 0x1000000); row 0
    # for version 0x2000000.
    rule = draw(st.integers(0, height - 1)) if version == 0x1000000 else 0
    kind = draw(
        st.sampled_from(["pattern at the rule's row", "no pattern", "other row"])
    )
    if kind == "other row" and height == 1:
        kind = "no pattern"
    truth = example_stack(frames, height, width, dtype=dtype, seed=frames + height)
    kwargs = dict(
        version=version,
        trailer_size=trailer,
        kind4_block=False,
        sub_array=(0, 1023 - rule, width, height),
    )
    if kind == "pattern at the rule's row":
        row = rule
    else:
        kwargs["follow_fallback_rule"] = False
        row = None if kind == "no pattern" else (rule + 1) % height
    path = folder / f"fallback{draw(st.integers(0, 10**9))}.dcimg"
    write_dcimg(path, truth, stored_pixels_row=row, **kwargs)
    stored = truth.copy()
    if row is not None:
        npx = 8 // dtype.itemsize
        stored[:, row, :npx] = [0, np.iinfo(dtype).max] * (npx // 2)
    return path, truth, stored, kind, rule


@SETTINGS
@given(data=st.data())
def test_fallback_row_used_only_where_the_pattern_is(folder, http, data):
    path, truth, stored, kind, rule = data.draw(fallback_files(folder))
    source = data.draw(st.sampled_from(FILE_SOURCES))
    mode = data.draw(st.sampled_from([True, False, None]))
    applied = kind == "pattern at the rule's row"
    f = open_as(path, source, http, first_4px_correction_enabled=mode)
    try:
        info = f.metadata.stored_pixels
        assert info is not None and info.row == rule and info.column == 0
        assert info.source.startswith("fallback")
        assert info.available == applied
        if applied:
            assert f.compute_target_line() == rule
            want = {True: truth, None: stored}.get(mode)
            if mode is False:
                want = truth.copy()
                want[:, rule, : info.count] = 0
        else:
            assert "not applied" in info.source and "pattern" in info.source
            assert f.compute_target_line() is None
            want = stored  # every mode: nothing is known to be overwritten
        key = data.draw(basic_indices(truth.shape))
        np.testing.assert_array_equal(f[key], want[key])
    finally:
        close(f)


def test_fallback_refused_when_one_frame_lacks_the_pattern(tmp_path):
    """Checked in every frame of a small file: one frame without it is enough."""
    truth = example_stack(5, 6, 16)
    path = write_dcimg(
        tmp_path / "v2.dcimg", truth, version=0x2000000, kind4_block=False
    )
    with DCIMGFile(path) as f:
        assert f.metadata.stored_pixels.available
        np.testing.assert_array_equal(f[...], truth)
    raw = bytearray(path.read_bytes())
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    stride = struct.unpack_from("<I", raw, FRAMED_S + 0x74)[0]
    raw[data + 3 * stride : data + 3 * stride + 2] = b"\x07\x00"  # frame 3, pixel 0
    path.write_bytes(raw)
    with DCIMGFile(path) as f:
        info = f.metadata.stored_pixels
        assert not info.available
        assert "in 4 of the 5 frames checked" in info.source
        stored = np.frombuffer(raw, "<u2", 6 * 16, data + 3 * stride).reshape(6, 16)
        np.testing.assert_array_equal(f[3], stored)


def _fixture_dirs() -> list[Path]:
    return [d for d in (DATA, SHARED) if (d / "manifest.json").is_file()]


@pytest.mark.parametrize("fixtures", _fixture_dirs(), ids=lambda d: d.parent.name)
def test_golden_fallback_row_file_still_corrected(fixtures):
    """The independent writer's version-0x2000000 file shows the pattern."""
    if not (fixtures / "framed_v2_row0.dcimg").is_file():
        pytest.skip("no framed_v2_row0 fixture")
    truth = np.load(fixtures / "framed_v2_row0.npz")
    with DCIMGFile(fixtures / "framed_v2_row0.dcimg") as f:
        np.testing.assert_array_equal(f[...], truth["data"])
        assert f.metadata.stored_pixels.available
        assert f.compute_target_line() == 0


@pytest.mark.parametrize("fixtures", _fixture_dirs(), ids=lambda d: d.parent.name)
def test_golden_truncated_file_cut_trailer(fixtures, tmp_path):
    """Golden files cut inside their last trailer keep the last frame's pixels."""
    for name in ("framed_usb", "framed_truncated"):
        if not (fixtures / f"{name}.dcimg").is_file():
            continue
        raw = (fixtures / f"{name}.dcimg").read_bytes()
        truth = np.load(fixtures / f"{name}.npz")
        s = struct.unpack_from("<I", raw, 0x28)[0]
        data = s + struct.unpack_from("<Q", raw, s + 0x60)[0]
        bpi = struct.unpack_from("<I", raw, s + 0x54)[0]
        stride = struct.unpack_from("<I", raw, s + 0x74)[0]
        trailer = struct.unpack_from("<I", raw, s + 0x7C)[0]
        n = len(truth["data"])
        path = tmp_path / f"{name}.dcimg"
        path.write_bytes(raw[: data + (n - 1) * stride + bpi + 6])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DCIMGWarning)
            f = DCIMGFile(path)
        with f:
            info = f.metadata.stored_pixels
            stored = trailer != 16 and info is not None and info.available
            want = truth["data"].copy()
            if stored:
                # The last frame's overwritten pixels, as stored: their true
                # values were cut off with its trailer.
                assert info.missing_frames == 1
                dtype = np.dtype(want.dtype).newbyteorder("<")
                row_bytes = struct.unpack_from("<I", raw, s + 0x50)[0]
                at = data + (n - 1) * stride + info.row * row_bytes
                at += info.column * dtype.itemsize
                want[-1, info.row, info.column : info.column + info.count] = (
                    np.frombuffer(raw, dtype, info.count, at)
                )
            np.testing.assert_array_equal(f[...], want)
            np.testing.assert_array_equal(
                f.framestamps[: n - 1], truth["framestamps"][: n - 1]
            )
            assert f.framestamps[-1] == MISSING_FRAMESTAMP
            assert f.metadata.missing_stamps == 1
            if stored:
                f.first_4px_correction_enabled = False
                want[:, info.row, info.column : info.column + info.count] = 0
                np.testing.assert_array_equal(f[...], want)


# --------------------------------------------------------------------------
# Memory of the per-frame data


@pytest.mark.parametrize("mmap", [True, False], ids=["map", "pread"])
def test_per_frame_data_cost_at_most_24_bytes_a_frame(tmp_path, mmap):
    # The measurement of tools/writer_memory.py --metadata-frames (--pread).
    writer_memory = load_tool("writer_memory")
    frames = 200_000
    path = writer_memory.write_one_row_frames(tmp_path / "rows.dcimg", frames)
    with DCIMGFile(path, mmap=mmap) as f:
        # A range reader also holds one request's bytes at a time (fields
        # read as spans), whatever the number of frames.
        span = 0 if mmap else f._require_state().source.reader.max_request
        metadata, _, peak = writer_memory.traced_per_frame_data(f)
        assert metadata.frames == frames
        assert peak - span <= 24 * frames, f"{peak / frames:.1f} bytes per frame"
        with DCIMGFile(path) as mapped:
            np.testing.assert_array_equal(f.timestamps, mapped.timestamps)
            np.testing.assert_array_equal(f.framestamps, mapped.framestamps)


@pytest.mark.parametrize("fixtures", _fixture_dirs(), ids=lambda d: d.parent.name)
def test_golden_files_edges(fixtures, tmp_path):
    """Every golden file: out= in Fortran order and strided, on three sources;
    framed ones cut right after their headers open with zero frames."""
    import json

    manifest = json.loads((fixtures / "manifest.json").read_text())
    for name in sorted(manifest):
        path = fixtures / f"{name}.dcimg"
        truth = np.load(fixtures / f"{name}.npz")["data"]
        for source in ("map", "pread", "bytesio"):
            for layout in ("fortran", "strided", "reversed"):
                out = make_out(layout, truth.shape, truth.dtype)
                f = quietly(path, source)
                try:
                    assert f.read(..., out=out) is out
                finally:
                    close(f)
                np.testing.assert_array_equal(out, truth, err_msg=f"{name} {source}")
        raw = path.read_bytes()
        if struct.unpack_from("<I", raw, 8)[0] == 0x7:
            continue
        s = struct.unpack_from("<I", raw, 0x28)[0]
        data = s + struct.unpack_from("<Q", raw, s + 0x60)[0]
        empty = tmp_path / f"{name}-empty.dcimg"
        empty.write_bytes(raw[:data])
        with pytest.warns(DCIMGWarning, match="0 complete frames"):
            f = DCIMGFile(empty)
        with f:
            assert f.shape == (0, *truth.shape[1:])
            assert f.timestamps.size == 0


def test_info_says_the_last_frames_stored_values_are_lost(tmp_path, capsys):
    from dcimg.cli import main

    truth = example_stack(3, 12, 128, seed=3)
    path = tmp_path / "cut.dcimg"
    write_dcimg(path, truth, version=0x2000000, trailer_size=32, stored_pixels_row=4)
    raw = path.read_bytes()
    data = FRAMED_S + struct.unpack_from("<Q", raw, FRAMED_S + 0x60)[0]
    bpi = struct.unpack_from("<I", raw, FRAMED_S + 0x54)[0]
    path.write_bytes(raw[: data + 2 * (bpi + 32) + bpi + 14])  # inside its values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "values of the last 1 frame(s) lost" in out, out
