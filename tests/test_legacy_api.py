"""The historical ``dcimg`` API (0.6.0.post1), as its users call it.

This package replaces the pure-Python ``dcimg`` module (last release
0.6.0.post1), so scripts and tools written for it must keep working
unchanged.  The expected API is written out here by hand, from that module's
documentation and signatures -- it is not imported -- and every test reads
synthetic files against the true arrays:

- signatures: every public method keeps its positional parameters (names,
  order, defaults); new parameters are keyword-only;
- names: every public attribute, property and class constant still exists;
- the calls of its known clients: suite2p (``suite2p/io/dcam.py``),
  ZetaStitcher (``InputFile``, which tries ``DCIMGFile`` among other readers
  and moves on when it raises ``ValueError``), MATLAB (``py.dcimg``) and
  published scripts.
"""

from __future__ import annotations

import inspect
import numbers
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dcimg
from dcimg import DCIMGFile
from dcimg.testing import example_stack, write_dcimg

REQUIRED = inspect.Parameter.empty

# name -> the historical positional parameters after ``self``: (name, default),
# REQUIRED for parameters without a default.
HISTORICAL_SIGNATURES: dict[str, list[tuple[str, object]]] = {
    "__init__": [("file_path", None)],
    "open": [("file_path", None)],
    "close": [],
    "compute_target_line": [],
    "ts": [("frame", REQUIRED)],
    "zslice": [
        ("arg1", REQUIRED),
        ("arg2", None),
        ("step", None),
        ("dtype", None),
        ("copy", True),
    ],
    "zslice_idx": [
        ("index", REQUIRED),
        ("frames_per_slice", 1),
        ("dtype", None),
        ("copy", True),
    ],
    "whole": [("dtype", None), ("copy", True)],
    "frame": [("index", REQUIRED), ("dtype", None), ("copy", True)],
}

# Properties and attributes of an open file.
HISTORICAL_ATTRIBUTES = (
    "mm",
    "mma",
    "file_path",
    "fmt_version",
    "x0",
    "y0",
    "binning",
    "first_4px_correction_enabled",
    "deep_copy_enabled",
    "file_size",
    "nfrms",
    "byte_depth",
    "dtype",
    "xsize",
    "ysize",
    "zsize",
    "bytes_per_row",
    "bytes_per_img",
    "shape",
    "framestamps",
    "timestamps",
)

# Class constants: structured dtypes of the headers (with the field names
# and offsets code may read them by) and the two layout codes.
HISTORICAL_DTYPE_FIELDS: dict[str, tuple[int, dict[str, int]]] = {
    "FILE_HDR_DTYPE": (
        0x48,
        {"file_format": 0, "format_version": 8, "nfrms": 0x24, "file_size": 0x30},
    ),
    "SESS_HDR_DTYPE": (
        0x50,
        {"nfrms": 0x20, "byte_depth": 0x24, "xsize": 0x2C, "ysize": 0x34},
    ),
    "SESSION_FOOTER_DTYPE": (
        0xA0,
        {"offset_to_2nd_struct": 0x08, "footer_size": 0x28},
    ),
    "SESSION_FOOTER2_DTYPE": (
        0x70,
        {
            "offset_to_frame_counts": 0x30,
            "offset_to_timestamps": 0x40,
            "offset_to_4px": 0x58,
            "4px_offset_in_frame": 0x64,
            "4px_size": 0x68,
        },
    ),
    "NEW_SESSION_HEADER_DTYPE": (
        None,
        {"nfrms": 0x3C, "xsize": 0x48, "ysize": 0x4C, "offset_to_data": 0x60},
    ),
    "NEW_FRAME_FOOTER_DTYPE": (
        0x20,
        {"progressive_number": 0, "timestamp": 4, "timestamp_frac": 8, "4px": 12},
    ),
    "NEW_CROP_INFO": (8, {"x0": 0, "xsize": 2, "y0": 4, "ysize": 6}),
}

STORED_ROW = 5  # the row whose first pixels the camera overwrites

LAYOUTS = {
    "packed-u16": dict(version=0x7, dtype=np.uint16),
    "framed-u16": dict(version=0x1000000, dtype=np.uint16),
    "framed-u8": dict(version=0x1000000, dtype=np.uint8),
    "framed2-u16": dict(version=0x2000000, dtype=np.uint16),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def recording(request, tmp_path_factory):
    """A synthetic file with overwritten pixels, and its true image."""
    spec = LAYOUTS[request.param]
    data = example_stack(12, 24, 20, dtype=spec["dtype"], seed=3)
    path = tmp_path_factory.mktemp("legacy") / f"{request.param}.dcimg"
    framestamps = np.arange(100, 112, dtype=np.uint32)
    write_dcimg(
        path,
        data,
        version=spec["version"],
        stored_pixels_row=STORED_ROW,
        framestamps=framestamps,
    )
    return path, data, framestamps


# ----------------------------------------------------------------------
# Names and signatures


@pytest.mark.parametrize("name", sorted(HISTORICAL_SIGNATURES))
def test_historical_signature(name):
    """Positional parameters unchanged; anything new is keyword-only."""
    parameters = list(inspect.signature(getattr(DCIMGFile, name)).parameters.values())
    assert parameters[0].name == "self"
    positional = [
        p
        for p in parameters[1:]
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    expected = HISTORICAL_SIGNATURES[name]
    assert [p.name for p in positional] == [n for n, _ in expected], name
    for parameter, (_, default) in zip(positional, expected, strict=True):
        # A required parameter may have become optional, never the reverse,
        # and a default keeps its value.
        if default is not REQUIRED:
            assert parameter.default == default, (name, parameter)
    for parameter in parameters[1 + len(positional) :]:
        assert parameter.kind is parameter.KEYWORD_ONLY, (name, parameter)
        assert parameter.default is not REQUIRED, (name, parameter)


def test_historical_names(recording):
    path, _, _ = recording
    assert callable(dcimg.DCIMGFile)
    assert isinstance(dcimg.__version__, str)
    for name in HISTORICAL_SIGNATURES:
        assert callable(getattr(DCIMGFile, name)), name
    for name in ("__getitem__", "__enter__", "__exit__", "__del__", "__repr__"):
        assert callable(getattr(DCIMGFile, name)), name
    with DCIMGFile(path) as f:
        for name in HISTORICAL_ATTRIBUTES:
            getattr(f, name)
        assert isinstance(f.mm, np.memmap)
        assert f.mma.shape == f.shape
        assert f.FMT_OLD == 1 and f.FMT_NEW == 2
        assert f.fmt_version in (f.FMT_OLD, f.FMT_NEW)
        assert (f.x0, f.y0, f.binning) == (0, 0, 1)


@pytest.mark.parametrize("name", sorted(HISTORICAL_DTYPE_FIELDS))
def test_historical_header_dtypes(name):
    size, fields = HISTORICAL_DTYPE_FIELDS[name]
    dtype = np.dtype(getattr(DCIMGFile, name))
    if size is not None:
        assert dtype.itemsize == size
    for field, offset in fields.items():
        assert dtype.fields[field][1] == offset, (name, field)


def test_header_dtypes_decode_a_file(recording):
    """Decoding the headers by hand, as some scripts do, still works."""
    path, data, _ = recording
    with DCIMGFile(path) as f:
        header = np.ndarray((1,), DCIMGFile.FILE_HDR_DTYPE, f.mm)
        assert header["file_format"][0] == b"DCIMG"
        assert header["file_size"][0] == path.stat().st_size
        session_dtype = (
            DCIMGFile.SESS_HDR_DTYPE
            if f.fmt_version == f.FMT_OLD
            else DCIMGFile.NEW_SESSION_HEADER_DTYPE
        )
        session = np.ndarray((1,), session_dtype, f.mm, int(header["header_size"][0]))
        assert session["nfrms"][0] == data.shape[0]
        assert (session["ysize"][0], session["xsize"][0]) == data.shape[1:]


# ----------------------------------------------------------------------
# Reading, the way the known clients call it


def test_suite2p(recording):
    """suite2p/io/dcam.py: ``shape[0]``, ``f[a:b, :, :]`` in blocks, close()."""
    path, data, _ = recording
    dcimg_file = dcimg.DCIMGFile(str(path))
    nframes = dcimg_file.shape[0]
    assert nframes == data.shape[0]
    blocks = list(range(0, nframes, 5)) + [nframes]
    for start, stop in zip(blocks[:-1], blocks[1:], strict=True):
        np.testing.assert_array_equal(dcimg_file[start:stop, :, :], data[start:stop])
    dcimg_file.close()


def zetastitcher_open(path):
    """ZetaStitcher's InputFile: try each reader, move on on ValueError."""
    try:
        return dcimg.DCIMGFile(path)
    except (NameError, ValueError, IsADirectoryError):
        return None


def test_zetastitcher_moves_on_from_other_files(tmp_path):
    others = {
        "stack.tif": b"II*\x00\x08\x00\x00\x00" + bytes(200),
        "big.tif": b"MM\x00+" + bytes(200),
        "notes.txt": b"not an image\n" * 20,
        "empty.dcimg": b"",
        "short.dcimg": b"DCIMG\x00",
        "other-version.dcimg": b"DCIMG\x00\x00\x00" + (5).to_bytes(4, "little"),
    }
    for name, content in others.items():
        (tmp_path / name).write_bytes(content)
    with zipfile.ZipFile(tmp_path / "tiles.zip", "w") as archive:
        archive.writestr("tile.tif", b"II*\x00")
    for path in sorted(tmp_path.iterdir()):
        with pytest.raises(ValueError):
            dcimg.DCIMGFile(path)
        assert zetastitcher_open(path) is None
    with pytest.raises(FileNotFoundError):
        dcimg.DCIMGFile(tmp_path / "missing.dcimg")


def test_zetastitcher_input_file(recording):
    """The attributes InputFile copies and the calls it makes, positionally."""
    path, data, _ = recording
    wrapper = zetastitcher_open(Path(path))
    assert wrapper is not None
    # InputFile._setattrs copies these (and skips what raises AttributeError).
    copied = {}
    for name in ("nfrms", "xsize", "ysize", "nchannels", "dtype", "close"):
        try:
            copied[name] = getattr(wrapper, name)
        except AttributeError:
            pass
    copied["__getitem__"] = wrapper.__getitem__
    assert "nchannels" not in copied  # one channel: InputFile's default
    assert (copied["nfrms"], copied["ysize"], copied["xsize"]) == data.shape
    assert copied["dtype"] == data.dtype
    np.testing.assert_array_equal(copied["__getitem__"](np.index_exp[2:4]), data[2:4])
    # InputFile.zslice(arg1, arg2, step, dtype, copy): slice() then positional.
    for arg1, arg2, step in [(3, None, None), (2, 9, None), (1, 11, 3), (None, 5, 1)]:
        alone = arg2 is None and step is None
        wanted = slice(arg1) if alone else slice(arg1, arg2, step)
        start, stop, every = wanted.start, wanted.stop, wanted.step
        for copy in (True, False):
            got = wrapper.zslice(start, stop, every, data.dtype, copy)
            np.testing.assert_array_equal(got, data[wanted])
            got = wrapper.zslice(arg1, arg2, step, np.float32, copy)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, data[wanted].astype(np.float32))
    # zslice_idx(index, frames_per_slice, dtype, copy) and whole(dtype, copy).
    np.testing.assert_array_equal(wrapper.zslice_idx(2, 3, None, True), data[6:9])
    np.testing.assert_array_equal(wrapper.zslice_idx(4), data[4:5])
    np.testing.assert_array_equal(wrapper.whole(None, False), data)
    np.testing.assert_array_equal(wrapper.whole(np.float64, True), data.astype(float))
    for index in range(data.shape[0]):
        frame = wrapper.frame(index, dtype=None, copy=True)
        np.testing.assert_array_equal(frame, data[index])
    np.testing.assert_array_equal(wrapper.frame(1, np.int32, False), data[1])
    copied["close"]()
    assert wrapper.closed


def test_matlab_zsize(recording):
    """MATLAB: ``py.dcimg.DCIMGFile(path).zsize`` (converted with int64)."""
    path, data, _ = recording
    f = dcimg.DCIMGFile(str(path))
    for value in (f.zsize, f.nfrms, f.xsize, f.ysize, f.byte_depth):
        assert isinstance(value, numbers.Integral)
    assert int(f.zsize) == data.shape[0]
    f.close()


def test_published_scripts(recording, tmp_path):
    """Idioms of scripts that use the historical module."""
    path, data, framestamps = recording
    np.testing.assert_array_equal(np.array(dcimg.DCIMGFile(path)[:]), data)
    np.testing.assert_array_equal(np.array(dcimg.DCIMGFile(path)[:, :, :]), data)
    with dcimg.DCIMGFile(path) as dc:
        assert dc.nfrms == data.shape[0]
        n_frames, y_pixels, x_pixels = (int(n) for n in dc.shape)
        assert (n_frames, y_pixels, x_pixels) == data.shape
        for i, img in enumerate(dc[:]):
            np.testing.assert_array_equal(img, data[i])
        loaded = np.zeros(dc.shape, dtype=np.uint16)
        for i in range(loaded.shape[0]):
            loaded[i] = dc[i]
        np.testing.assert_array_equal(loaded, data)
        np.testing.assert_array_equal(dc[-3, :5, :5], data[-3, :5, :5])
        np.testing.assert_array_equal(dc[800 % n_frames, ...], data[800 % n_frames])
        # Time stamps as numpy.datetime64, counters as uint32.
        stamps = dc.timestamps
        assert stamps.dtype.kind == "M" and stamps.shape == (n_frames,)
        for i in (0, n_frames - 1):
            assert isinstance(dc.ts(i), np.datetime64)
            assert dc.ts(i) == stamps[i] == dc.ts(frame=i)
        assert dc.framestamps.dtype == np.uint32
        np.testing.assert_array_equal(dc.framestamps, framestamps)


def test_open_later(recording):
    """``DCIMGFile()`` then ``open(path)``, or ``file_path`` then ``open()``."""
    path, data, _ = recording
    f = DCIMGFile()
    f.open(path)
    np.testing.assert_array_equal(f.whole(), data)
    f.close()
    f = DCIMGFile()
    f.file_path = Path(path)
    f.open()
    np.testing.assert_array_equal(f[...], data)
    f.close()
    f.open()  # reopens the same file
    assert f.shape == data.shape
    f.close()


def test_own_attributes(recording):
    """Old scripts set their own flags on the file object; they stay set."""
    path, data, _ = recording
    f = DCIMGFile()
    f.tile_name = "x000_y000"  # before opening
    f.open(path)
    f.retrieve_first_4_pixels = False  # a flag of an older reader, ignored
    f.my_index = 7
    assert (f.tile_name, f.retrieve_first_4_pixels, f.my_index) == (
        "x000_y000",
        False,
        7,
    )
    np.testing.assert_array_equal(f[...], data)
    f.close()
    assert f.tile_name == "x000_y000"


def test_overwritten_pixel_switch(recording):
    """``first_4px_correction_enabled``: True restores, False zeroes, None raw."""
    path, data, _ = recording
    with DCIMGFile(path) as f:
        assert f.first_4px_correction_enabled is True
        assert f.deep_copy_enabled is True
        row = f.compute_target_line()
        assert row == STORED_ROW
        raw = np.array(f.mma)
        overwritten = np.zeros(data.shape, bool)
        overwritten[:, row, : 8 // f.byte_depth] = True
        np.testing.assert_array_equal(raw[~overwritten], data[~overwritten])
        np.testing.assert_array_equal(f[...], data)
        f.first_4px_correction_enabled = False
        np.testing.assert_array_equal(f[...], np.where(overwritten, 0, data))
        np.testing.assert_array_equal(f.frame(2), np.where(overwritten, 0, data)[2])
        f.first_4px_correction_enabled = None
        np.testing.assert_array_equal(f[...], raw)
        np.testing.assert_array_equal(f.zslice(0, 3), raw[:3])
        f.first_4px_correction_enabled = True
        f.deep_copy_enabled = False  # views where no correction is needed
        np.testing.assert_array_equal(f[:, row + 1 :], data[:, row + 1 :])
        np.testing.assert_array_equal(f[...], data)


def test_sub_array_and_binning(tmp_path):
    """``x0``, ``y0`` and ``binning`` describe the sensor region."""
    data = example_stack(2, 16, 24)
    path = write_dcimg(
        tmp_path / "sub.dcimg", data, sub_array=(64, 32, 48, 32), binning=2
    )
    with DCIMGFile(path) as f:
        assert (f.x0, f.y0, f.binning) == (64, 32, 2)
        np.testing.assert_array_equal(f[...], data)


def test_module_logger_kept():
    # The historical module exposed ``dcimg.logger`` with a NullHandler.
    import logging

    assert isinstance(dcimg.logger, logging.Logger)
    assert dcimg.logger.name == "dcimg"
    assert any(isinstance(h, logging.NullHandler) for h in dcimg.logger.handlers)
