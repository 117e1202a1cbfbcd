"""DCIMGFile: golden files, the public surface, errors and lifecycle."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import dcimg
from dcimg import DCIMGFile, DCIMGFormatError, DCIMGWarning, _kernels
from dcimg.testing import example_stack, write_dcimg, write_example

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
FIXTURES = sorted(MANIFEST)


def open_fixture(name: str, **kwargs) -> DCIMGFile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        return DCIMGFile(DATA / f"{name}.dcimg", **kwargs)


# ----------------------------------------------------------------------
# Golden files


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_pixels_counters_and_time_stamps(name):
    expected = np.load(DATA / f"{name}.npz")
    with open_fixture(name) as f:
        assert f.shape == tuple(MANIFEST[name]["shape"])
        assert f.dtype == np.dtype(MANIFEST[name]["dtype"])
        np.testing.assert_array_equal(f[...], expected["data"])
        np.testing.assert_array_equal(f.whole(), expected["data"])
        np.testing.assert_array_equal(f.framestamps, expected["framestamps"])
        assert f.framestamps.dtype == np.uint32
        assert f.timestamps.dtype == np.dtype("datetime64[us]")
        np.testing.assert_array_equal(
            f.timestamps.astype(np.int64), expected["timestamps_us"]
        )
        for i in range(f.nfrms):
            np.testing.assert_array_equal(f.frame(i), expected["data"][i])
            np.testing.assert_array_equal(f.frame(i - f.nfrms), expected["data"][i])


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_metadata(name):
    spec = MANIFEST[name]
    with open_fixture(name) as f:
        meta = f.metadata
        assert f"{meta.format_version:#x}" == spec["format_version"]
        assert meta.file_size == spec["file_size"] == f.file_size
        assert meta.shape == tuple(spec["shape"])
        row = spec["stored_pixels_row"]
        assert f.compute_target_line() == row
        if row is None:
            assert meta.stored_pixels is None
        else:
            assert meta.stored_pixels.row == row
            assert meta.stored_pixels.column == 0
            assert meta.stored_pixels.count == 8 // f.byte_depth
        if "camera_model" in spec:
            assert meta.camera.model == spec["camera_model"]
            assert meta.camera.serial == spec["camera_serial"]
        if "sub_array" in spec:
            sub = meta.sub_array
            assert (sub.x0, sub.y0, sub.width, sub.height) == tuple(
                spec["sub_array"][k] for k in ("x0", "y0", "width", "height")
            )
            assert sub.source == "block table"
            assert meta.binning == spec["binning"]
        if "trailer_bytes" in spec:
            assert meta.trailer_size == spec["trailer_bytes"]
        if "dropped_frames_after_index" in spec:
            assert meta.dropped_frames == (spec["dropped_frames_after_index"],)
            assert meta.dropped_frame_count == 1
        else:
            assert meta.dropped_frames == ()
        if "declared_frames" in spec:
            assert meta.declared_frames == spec["declared_frames"]
            assert meta.frames == spec["complete_frames"]
            assert meta.truncated
        # The plain form is JSON-serialisable.
        json.dumps(meta.to_dict())


def test_truncated_fixture_warns_with_counts():
    with pytest.warns(DCIMGWarning, match="4 complete frames of the 6"):
        DCIMGFile(DATA / "framed_truncated.dcimg").close()


@pytest.mark.parametrize("mode", [True, False, None])
def test_fixture_correction_modes(mode):
    expected = np.load(DATA / "framed_camlink_crop.npz")["data"]
    with open_fixture("framed_camlink_crop", first_4px_correction_enabled=mode) as f:
        got = f[...]
        row = f.compute_target_line()
        others = np.ones(got.shape, bool)
        others[:, row, :4] = False
        np.testing.assert_array_equal(got[others], expected[others])
        if mode is True:
            np.testing.assert_array_equal(got[:, row, :4], expected[:, row, :4])
        elif mode is False:
            assert not got[:, row, :4].any()
        else:
            np.testing.assert_array_equal(got[:, row, :4], [[0, 65535, 0, 65535]] * 3)
            np.testing.assert_array_equal(got, f.mma)


# ----------------------------------------------------------------------
# The public surface


def test_members_and_types(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    with DCIMGFile(path) as f:
        assert isinstance(f.shape, tuple)
        assert all(type(n) is int for n in f.shape)
        assert f.shape == (f.zsize, f.ysize, f.xsize) == (f.nfrms, 64, 80)
        assert isinstance(f.dtype, np.dtype)
        assert f.byte_depth == 2
        assert f.bytes_per_row == 160
        assert f.bytes_per_img == 160 * 64
        assert f.deep_copy_enabled is True
        assert f.first_4px_correction_enabled is True
        assert isinstance(f.mm, np.memmap)
        assert not f.mm.flags.writeable
        assert f.mm.size == f.file_size == path.stat().st_size
        assert bytes(f.mm[:5]) == b"DCIMG"
        assert not f.mma.flags.writeable
        assert f.mma.shape == f.shape
        assert f.FMT_OLD == 1 and f.FMT_NEW == 2
        assert f.fmt_version == f.FMT_NEW
        for name in (
            "FILE_HDR_DTYPE",
            "SESS_HDR_DTYPE",
            "NEW_SESSION_HEADER_DTYPE",
            "SESSION_FOOTER2_DTYPE",
            "NEW_CROP_INFO",
        ):
            np.dtype(getattr(DCIMGFile, name))  # a valid structured dtype
        assert np.dtype(DCIMGFile.FILE_HDR_DTYPE).itemsize == 0x48
        assert np.dtype(DCIMGFile.SESS_HDR_DTYPE).itemsize == 0x50
        assert np.dtype(DCIMGFile.NEW_SESSION_HEADER_DTYPE).itemsize == 0x80
        assert np.dtype(DCIMGFile.SESSION_FOOTER2_DTYPE).itemsize == 0x70
        assert np.dtype(DCIMGFile.NEW_CROP_INFO).itemsize == 8
        header = f.mm[:0x48].view(DCIMGFile.FILE_HDR_DTYPE)[0]
        assert header["format_version"] == 0x1000000
        assert header["file_size"] == f.file_size
        info = path.stat()
        assert f.identity == (os.path.abspath(path), info.st_size, info.st_mtime_ns)
        assert "shape=20x64x80" in repr(f) and "uint16" in repr(f)
        assert str(path) in repr(f)
        # Time stamps: datetime64[us], from ts() too (as the seed documents).
        ts = f.timestamps
        assert ts.shape == (f.nfrms,) and ts.dtype == np.dtype("datetime64[us]")
        assert isinstance(f.ts(0), np.datetime64) and f.ts(0) == ts[0]
        assert f.ts(0).dtype == np.dtype("datetime64[us]")
        assert f.ts(-1) == ts[-1]
        np.testing.assert_array_equal(f.ts(), ts)
        meta = f.metadata
        assert meta.dropped_frames == (11,)
        assert meta.frame_rate_hz == pytest.approx(30.0, rel=1e-3)
        with pytest.raises(dataclass_frozen_error()):
            meta.frames = 3


def dataclass_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_numpy_scalars_and_indices(tmp_path):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=2)
    with DCIMGFile(path) as f:
        assert f[1, 2, 3] == truth[1, 2, 3]
        assert type(f[1, 2, 3]) is type(truth[1, 2, 3])
        assert f[np.int64(1), np.uint8(2), np.int32(-1)] == truth[1, 2, -1]
        np.testing.assert_array_equal(
            f[np.newaxis, 1, ..., None], truth[None, 1, ..., None]
        )
        np.testing.assert_array_equal(np.asarray(f), truth)
        assert len(f) == 3


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ((3, 0, 0), IndexError),
        ((0, -7), IndexError),
        ((0, 0, 0, 0), IndexError),
        ((..., ...), IndexError),
        (([0, 1],), IndexError),
        ((np.array([0, 1]),), IndexError),
        ((True,), IndexError),
        ((1.5,), IndexError),
        (("a",), IndexError),
    ],
)
def test_bad_indices_raise_like_numpy(tmp_path, key, error):
    path = write_dcimg(
        tmp_path / "a.dcimg", example_stack(nframes=3, height=6, width=10)
    )
    with DCIMGFile(path) as f, pytest.raises(error):
        f[key]


def test_slice_step_zero(tmp_path):
    path = write_dcimg(
        tmp_path / "a.dcimg", example_stack(nframes=3, height=6, width=10)
    )
    with DCIMGFile(path) as f, pytest.raises(ValueError, match="step"):
        f[::0]


def test_out_argument(tmp_path):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=0)
    with DCIMGFile(path) as f:
        out = np.empty((3, 6, 10), np.float32)
        assert f.whole(out=out) is out
        np.testing.assert_array_equal(out, truth.astype(np.float32))
        frame = np.empty((6, 10), np.uint16)
        assert f.frame(-1, out=frame) is frame
        np.testing.assert_array_equal(frame, truth[-1])
        with pytest.raises(ValueError, match="shape"):
            f.whole(out=np.empty((3, 6, 9), np.uint16))
        # Any writable layout is filled exactly (see tests/test_edges.py).
        strided = np.zeros((3, 6, 20), np.uint16)[..., ::2]
        assert f.whole(out=strided) is strided
        np.testing.assert_array_equal(strided, truth)
        with pytest.raises(ValueError, match="dtype int32 differs"):
            f.whole(dtype=np.int32, out=np.empty((3, 6, 10), np.uint16))


def test_dtype_conversions_exact(tmp_path):
    truth = example_stack(nframes=2, height=5, width=9)
    truth[0, 0, 0] = 65535
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=0)
    with DCIMGFile(path) as f:
        for dtype in (
            np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int64,
            np.uint64, np.float32, np.float64, np.float16, np.complex64, ">u2",
        ):  # fmt: skip
            got = f.whole(dtype=dtype)
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got, truth.astype(dtype))


def test_copy_false_views_and_deep_copy(tmp_path):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=2)
    with DCIMGFile(path) as f:
        # Frames whose overwritten pixels need correcting come as a copy.
        corrected = f.zslice(0, 2, copy=False)
        np.testing.assert_array_equal(corrected, truth[:2])
        assert corrected.flags.owndata
        f.first_4px_correction_enabled = None
        stored = f.zslice(0, 2, copy=False)  # as stored: a view of the map
        assert not stored.flags.owndata and not stored.flags.writeable
        f.first_4px_correction_enabled = False
        assert not f.read(np.s_[1, 2], copy=False)[:4].any()
        f.first_4px_correction_enabled = True
        untouched = f.read(np.s_[:, 3:, :], copy=False)
        assert not untouched.flags.owndata and not untouched.flags.writeable
        np.testing.assert_array_equal(untouched, truth[:, 3:, :])
        f.deep_copy_enabled = False
        np.testing.assert_array_equal(f[:, 2], truth[:, 2])
        assert not f[:, 4].flags.writeable


def test_correction_attribute_validated(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    with DCIMGFile(path) as f:
        for bad in ("False", 2, -1, 0.0, [True]):
            with pytest.raises(TypeError):
                f.first_4px_correction_enabled = bad
        # The historical module took 1 and 0 (and NumPy booleans) as well.
        for given, taken in (
            (1, True),
            (0, False),
            (np.True_, True),
            (np.int8(0), False),
        ):
            f.first_4px_correction_enabled = given
            assert f.first_4px_correction_enabled is taken
        f.first_4px_correction_enabled = None
        assert f.first_4px_correction_enabled is None


def test_gil_released_during_conversion(tmp_path):
    """The copy kernel runs without the GIL, so other threads go on."""
    # 28 MB of float32 per call: under the 32 MiB from which copies are
    # split across threads.
    truth = np.zeros((28, 512, 512), np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", truth, stored_pixels_row=3)
    with DCIMGFile(path) as f:
        f.whole(dtype=np.float32)
        # The kernel notes, from inside the copy, whether its thread holds
        # the GIL there: exact, whatever the load on the machine.  (A timing
        # check from another thread was tried first; on a busy 2-core
        # machine it could not tell the two apart reliably.)  Checked by
        # hand to fail when broken: with ``with nogil:`` taken out of
        # StridedImage.take, this assertion fails (True is not False).
        assert _kernels.last_copy_held_gil() is False


def test_two_threads_convert_concurrently(tmp_path):
    truth = example_stack(nframes=8, height=64, width=80)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=5)
    with DCIMGFile(path) as f:
        results = [None, None]

        def run(slot):
            results[slot] = [f.whole(dtype=np.float32) for _ in range(20)][-1]

        threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for result in results:
            np.testing.assert_array_equal(result, truth.astype(np.float32))


def test_large_copy_split_across_threads(tmp_path):
    """Copies above the parallel threshold run on several threads, exactly."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 65535, (6, 1024, 1100), dtype=np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", truth, stored_pixels_row=1000)
    with DCIMGFile(path) as f:
        np.testing.assert_array_equal(f.whole(dtype=np.float64), truth)
        if (os.cpu_count() or 1) > 1 and not (
            sys.platform == "darwin" and not _kernels.OPENMP
        ):
            # Fails on a build without OpenMP (one thread) -- except on
            # macOS, where the compiler may have none.
            assert _kernels.OPENMP
            assert _kernels.last_copy_threads() >= 2
        np.testing.assert_array_equal(f[::-1, ::3, ::-2], truth[::-1, ::3, ::-2])


def test_threads_bounds_the_copy_kernel(tmp_path):
    """``read(threads=1)`` copies on the calling thread, exactly; 0 is refused."""
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 65535, (6, 1024, 1100), dtype=np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", truth, stored_pixels_row=1000)
    with DCIMGFile(path) as f:
        got = f.read(..., dtype=np.float64, threads=1)
        assert _kernels.last_copy_threads() == 1
        np.testing.assert_array_equal(got, truth)
        if _kernels.OPENMP and (os.cpu_count() or 1) > 1:
            # The record is per thread: a split copy on another thread
            # leaves this thread's as it was.
            seen = []

            def other() -> None:
                f.read(..., dtype=np.float64)
                seen.append(_kernels.last_copy_threads())

            worker = threading.Thread(target=other)
            worker.start()
            worker.join()
            assert seen[0] >= 2
            assert _kernels.last_copy_threads() == 1
            # The same read without the bound is split: the check above
            # fails when ``threads`` is ignored.
            f.read(..., dtype=np.float64)
            assert _kernels.last_copy_threads() >= 2
            f.read(..., dtype=np.float64, threads=2)
            assert _kernels.last_copy_threads() == 2
        for bad in (0, -1):
            with pytest.raises(ValueError, match="threads"):
                f.read(0, threads=bad)
        with pytest.raises(TypeError):
            f.read(0, threads=1.5)


# ----------------------------------------------------------------------
# Lifecycle


def test_closed_file_raises_value_error(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    f = DCIMGFile(path)
    f.close()
    f.close()  # idempotent
    assert f.closed
    assert "closed" in repr(f)
    for use in (
        lambda: f[0],
        lambda: f.shape,
        lambda: f.whole(),
        lambda: f.frame(0),
        lambda: f.timestamps,
        lambda: f.metadata,
        lambda: f.mm,
    ):
        with pytest.raises(ValueError, match="closed"):
            use()
    f.open()
    assert f.shape[0] == 20
    f.close()


def test_views_survive_close(tmp_path):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth)
    f = DCIMGFile(path)
    view = f.read(..., copy=False)
    f.close()
    np.testing.assert_array_equal(view, truth)


def test_pickle_reopens_from_path(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    with DCIMGFile(path, first_4px_correction_enabled=False) as f:
        payload = pickle.dumps(f)
        assert len(payload) < 1000  # the path, never the mapping
        g = pickle.loads(payload)
        assert g.first_4px_correction_enabled is False
        np.testing.assert_array_equal(g[...], f[...])
        g.close()
    closed = pickle.loads(pickle.dumps(f))
    assert closed.closed


def test_file_never_modified(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for mode in (True, False, None):
        with DCIMGFile(path, first_4px_correction_enabled=mode) as f:
            f[...]
            f.whole(dtype=np.float32)
            f[:, ::-1, ::-2]
            f.read(..., copy=False)
            f.zslice(1, 3, copy=False)
            with pytest.raises(ValueError):
                f.mma[0, 0, 0] = 1
            with pytest.raises((ValueError, TypeError)):
                f.mm[0] = 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_imread(tmp_path):
    path = write_example(tmp_path / "x.dcimg")
    with DCIMGFile(path) as f:
        np.testing.assert_array_equal(dcimg.imread(path), f[...])
        np.testing.assert_array_equal(dcimg.imread(path, np.s_[3, ::2]), f[3, ::2])
        assert dcimg.imread(path, dtype=np.float32).dtype == np.float32


# ----------------------------------------------------------------------
# Corrupt headers


def corrupt(tmp_path, offset, fmt, value, **kwargs):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "c.dcimg", truth, **kwargs)
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        DCIMGFile("/no/such/file.dcimg")


def test_not_dcimg(tmp_path):
    path = tmp_path / "x.dcimg"
    path.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(DCIMGFormatError, match="magic"):
        DCIMGFile(path)
    path.write_bytes(b"")
    with pytest.raises(DCIMGFormatError, match="empty"):
        DCIMGFile(path)


def test_error_is_value_error(tmp_path):
    path = corrupt(tmp_path, 0x08, "<I", 0x3000000)
    with pytest.raises(ValueError, match=r"0x3000000"):
        DCIMGFile(path)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "kwargs", "field"),
    [
        (0x08, "<I", 0x5, {}, "format_version"),
        (0x28, "<I", 0x10, {}, "header_size"),
        (0x28, "<I", 0xFFFFFF, {}, "session header"),
        (0x70 + 0x40, "<I", 3, {}, "byte_depth"),
        (0x70 + 0x48, "<I", 0, {}, "xsize"),
        (0x70 + 0x50, "<I", 4, {}, "bytes_per_row"),
        (0x70 + 0x54, "<I", 999, {}, "bytes_per_img"),
        (0x70 + 0x60, "<Q", 1 << 40, {}, "offset_to_data"),
        (0x70 + 0x74, "<I", 7, {}, "frame_stride"),
        (0x70 + 0x7C, "<I", 4, {}, "frame_footer_size"),
        (0x78 + 0x24, "<I", 0, {"version": 7}, "byte_depth"),
        (0x78 + 0x34, "<I", 0, {"version": 7}, "xsize/ysize"),
        (0x78 + 0x38, "<I", 12345, {"version": 7}, "bytes_per_img"),
        (0x78 + 0x44, "<I", 0xFFFFFFF, {"version": 7}, "offset_to_data"),
        (0x78 + 0x48, "<Q", 5, {"version": 7}, "session_data_size"),
    ],
)
def test_corrupt_header_names_field(tmp_path, offset, fmt, value, kwargs, field):
    path = corrupt(tmp_path, offset, fmt, value, **kwargs)
    with pytest.raises(DCIMGFormatError) as info:
        DCIMGFile(path)
    assert field in str(info.value)
    assert info.value.field is not None


def test_multiple_sessions_warn(tmp_path):
    path = write_dcimg(
        tmp_path / "s.dcimg", example_stack(nframes=2, height=4, width=8), nsessions=2
    )
    with pytest.warns(DCIMGWarning, match="2 sessions"):
        DCIMGFile(path).close()
