"""Property-based tests: every read equals NumPy indexing of the true image.

Hypothesis draws a file variant (format version, byte depth, row padding,
trailer size, stored-pixel position, shape), writes it with the synthetic
writer, then draws basic indexes and compares the reader with NumPy indexing
of the true stack, in all three correction modes and with dtype conversion.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

from dcimg import DCIMGFile
from dcimg.testing import fallback_stored_pixels_row, write_dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "500"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = [None, "uint8", "uint16", "int16", "int32", "float32", "float64", "int64"]


@dataclass
class Variant:
    """One synthetic file and what a correct reader must return."""

    path: Path
    truth: np.ndarray  # the true image (correction True)
    stored: np.ndarray  # the bytes as stored in the file (correction None)
    zeroed: np.ndarray  # overwritten pixels set to 0 (correction False)
    kwargs: dict


@st.composite
def variants(draw: st.DrawFn, folder: Path) -> Variant:
    version = draw(st.sampled_from([0x7, 0x1000000, 0x2000000]))
    dtype = np.dtype(draw(st.sampled_from(["uint8", "uint16"])))
    depth = dtype.itemsize
    npx = 8 // depth
    frames = draw(st.integers(1, 5))
    height = draw(st.integers(1, 12))
    width = draw(st.integers(1, 20))
    padding = draw(st.integers(0, 6)) * depth
    kwargs: dict = {"version": version}
    if padding:
        kwargs["bytes_per_row"] = width * depth + padding
    stored_row = None
    if width >= npx and draw(st.booleans()):
        stored_row = draw(st.integers(0, height - 1))
        kwargs["stored_pixels_column"] = draw(st.integers(0, width - npx))
    if version != 0x7:
        if stored_row is None:
            trailer = draw(st.sampled_from([16, 16, 32, 512]))
            if trailer != 16:
                # No kind-4 block and no pattern at the fallback row: the
                # reader must not "restore" anything there.
                kwargs["kind4_block"] = False
                kwargs["follow_fallback_rule"] = False
        else:
            trailer = draw(st.sampled_from([32, 512, 516]))
        kwargs["trailer_size"] = trailer
        if stored_row is not None and kwargs["stored_pixels_column"] == 0:
            # Sometimes leave the position to the historical fallback rules.
            if draw(st.booleans()):
                y0 = 1023 - stored_row if version == 0x1000000 else 0
                if version == 0x1000000 or stored_row == 0:
                    assert fallback_stored_pixels_row(version, y0, height) == (
                        stored_row
                    )
                    kwargs["kind4_block"] = False
                    kwargs["sub_array"] = (0, y0, width, height)
    kwargs["stored_pixels_row"] = stored_row
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(dtype)
    truth = rng.integers(
        0, info.max, (frames, height, width), dtype=dtype, endpoint=True
    )
    path = folder / f"v{draw(st.integers(0, 10**9))}.dcimg"
    write_dcimg(path, truth, **kwargs)
    stored = truth.copy()
    zeroed = truth.copy()
    if stored_row is not None:
        col = kwargs["stored_pixels_column"]
        pattern = np.array([0, info.max] * (npx // 2), dtype=dtype)
        stored[:, stored_row, col : col + npx] = pattern
        zeroed[:, stored_row, col : col + npx] = 0
    return Variant(path, truth, stored, zeroed, kwargs)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="dcimg-hyp-") as name:
        yield Path(name)


# Where the bytes come from: the memory map, or the range reader over pread,
# a file object or fsspec's in-memory file system.
SOURCES = ["map", "pread", "pread-direct", "fileobj", "memory"]


def open_as(variant: Variant, source: str, **kwargs) -> DCIMGFile:
    """Open the variant's file through one byte source."""
    if source == "map":
        return DCIMGFile(variant.path, **kwargs)
    if source == "pread":
        return DCIMGFile(variant.path, mmap=False, **kwargs)
    if source == "pread-direct":
        # Whole frames straight into the result, however small the frames.
        f = DCIMGFile(variant.path, mmap=False, **kwargs)
        f._source.direct_frame_bytes = 0
        return f
    if source == "fileobj":
        return DCIMGFile(io.BytesIO(variant.path.read_bytes()), **kwargs)
    fsspec = pytest.importorskip("fsspec")
    url = f"memory://dcimg-hyp/{variant.path.name}"
    with fsspec.open(url, "wb") as out:
        out.write(variant.path.read_bytes())
    return DCIMGFile(url, **kwargs)


def expected(variant: Variant, mode: bool | None) -> np.ndarray:
    return {True: variant.truth, False: variant.zeroed, None: variant.stored}[mode]


def assert_same(got, want) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(data=st.data())
def test_every_basic_index_matches_numpy(folder, data):
    variant = data.draw(variants(folder))
    shape = variant.truth.shape
    keys = data.draw(
        st.lists(
            basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True),
            min_size=1,
            max_size=8,
        )
    )
    source = data.draw(st.sampled_from(SOURCES))
    for mode in (True, False, None):
        with open_as(variant, source, first_4px_correction_enabled=mode) as f:
            assert f.shape == shape
            want_stack = expected(variant, mode)
            for key in keys:
                assert_same(f[key], want_stack[key])


@SETTINGS
@given(data=st.data())
def test_dtype_conversion_and_views_match_numpy(folder, data):
    variant = data.draw(variants(folder))
    shape = variant.truth.shape
    key = data.draw(basic_indices(shape, min_dims=0, allow_newaxis=True))
    dtype = data.draw(st.sampled_from(DTYPES))
    mode = data.draw(st.sampled_from([True, False, None]))
    source = data.draw(st.sampled_from(SOURCES))
    want = np.asarray(expected(variant, mode)[key])
    with open_as(variant, source, first_4px_correction_enabled=mode) as f:
        got = f.read(key, dtype=dtype)
        assert_same(got, want if dtype is None else want.astype(dtype))
        # copy=False may return a view, never uncorrected pixels.
        assert_same(f.read(key, copy=False), want)
        # out= fills the given array and returns it.
        out = np.full(want.shape, 7, dtype=dtype or want.dtype)
        assert f.read(key, out=out) is out
        assert_same(out, want.astype(out.dtype))


@SETTINGS
@given(data=st.data())
def test_frame_access_methods_match_numpy(folder, data):
    variant = data.draw(variants(folder))
    frames = variant.truth.shape[0]
    index = data.draw(st.integers(-frames, frames - 1))
    start = data.draw(st.none() | st.integers(-frames - 2, frames + 2))
    stop = data.draw(st.none() | st.integers(-frames - 2, frames + 2))
    step = data.draw(st.none() | st.integers(-3, 3).filter(bool))
    per_slice = data.draw(st.integers(1, frames))
    block = data.draw(st.integers(0, -(-frames // per_slice) - 1))
    truth = variant.truth
    source = data.draw(st.sampled_from(SOURCES))
    with open_as(variant, source) as f:
        assert_same(f.frame(index), truth[index])
        np.testing.assert_array_equal(
            f.framestamps, DCIMGFile(variant.path).framestamps
        )
        assert_same(f.whole(), truth)
        # Like range(): a lone first argument is the stop.
        frames_slice = (
            slice(start) if stop is None and step is None else slice(start, stop, step)
        )
        assert_same(f.zslice(start, stop, step), truth[frames_slice])
        assert_same(f.zslice(stop), truth[:stop])
        assert_same(
            f.zslice_idx(block, per_slice),
            truth[block * per_slice : (block + 1) * per_slice],
        )
        assert_same(
            f.zslice_idx(block - -(-frames // per_slice), per_slice),
            truth[block * per_slice : (block + 1) * per_slice],
        )


def test_fallback_rows_are_exercised(folder):
    """The strategy above really produces files without a kind-4 block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        truth = np.arange(2 * 1024 * 8, dtype=np.uint16).reshape(2, 1024, 8)
        path = write_dcimg(
            folder / "fallback.dcimg", truth, stored_pixels_row=1023, kind4_block=False
        )
        with DCIMGFile(path) as f:
            assert f.metadata.stored_pixels.source.startswith("fallback")
            assert f.compute_target_line() == 1023
            assert_same(f[:, 1020:, :], truth[:, 1020:, :])
