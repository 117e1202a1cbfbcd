"""Tests of the Dask and xarray integration (dcimg._dask)."""

from __future__ import annotations

import io
import mmap
import os
import pathlib
import pickle
import sys
import warnings

import numpy as np
import pytest
from helpers import local_cluster, run_tool

import dcimg
import dcimg._dask as dd
from dcimg.core import DCIMGFile
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# name -> write_dcimg options; every file has 23 frames so chunks of 8 leave
# a short last chunk.
LAYOUTS = {
    "packed_u16_row5": dict(version=0x7, stored_pixels_row=5),
    "packed_u8_padded": dict(
        version=0x7, stored_pixels_row=3, bytes_per_row=40, dtype=np.uint8
    ),
    "framed_u16_row7_col4": dict(
        version=0x1000000, stored_pixels_row=7, stored_pixels_column=4
    ),
    "framed_v2_u8_row0": dict(
        version=0x2000000, stored_pixels_row=0, trailer_size=512, dtype=np.uint8
    ),
    "framed_usb_plain": dict(version=0x1000000, trailer_size=16),
}
SHAPE = (23, 18, 26)
CORRECTIONS = [True, False, None]
DTYPES = [None, np.float32, np.int32, np.uint8]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("dask")
    out = {}
    for seed, (name, options) in enumerate(LAYOUTS.items()):
        options = dict(options)
        dtype = options.pop("dtype", np.uint16)
        stack = example_stack(*SHAPE, dtype=dtype, seed=seed)
        out[name] = write_dcimg(root / f"{name}.dcimg", stack, **options)
    return out


@pytest.fixture(scope="module")
def client():
    with local_cluster() as c:
        yield c


def _open(path: os.PathLike[str], correction: bool | None = True) -> DCIMGFile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dcimg.DCIMGWarning)
        return DCIMGFile(path, first_4px_correction_enabled=correction)


def _expected(f: DCIMGFile, dtype) -> np.ndarray:
    return f.read(..., dtype=dtype)


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("correction", CORRECTIONS, ids=str)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_compute_equals_in_memory(files, layout, correction, dtype):
    with _open(files[layout], correction) as f:
        ref = _expected(f, dtype)
        arr = f.as_dask_array(chunks=8, dtype=dtype)
    # The file object may be closed: the graph does not depend on it.
    assert arr.shape == SHAPE
    assert arr.dtype == ref.dtype
    assert arr.chunks == ((8, 8, 7), (SHAPE[1],), (SHAPE[2],))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(arr.compute(), ref)
        np.testing.assert_array_equal(arr[5].compute(), ref[5])
        np.testing.assert_array_equal(
            arr[3:20:4, 2:9, ::3].compute(), ref[3:20:4, 2:9, ::3]
        )
        np.testing.assert_array_equal(arr[::-2, ::-1].compute(), ref[::-2, ::-1])
        np.testing.assert_array_equal(arr[-1, -1, -1].compute(), ref[-1, -1, -1])
        np.testing.assert_array_equal(arr[[1, 9, 17]].compute(), ref[[1, 9, 17]])
        np.testing.assert_allclose(arr.sum(axis=0).compute(), ref.sum(axis=0))
        np.testing.assert_allclose(
            arr.mean(axis=(1, 2)).compute(), ref.mean(axis=(1, 2)), rtol=1e-6
        )
        assert arr.max().compute() == ref.max()


@pytest.mark.parametrize("correction", CORRECTIONS, ids=str)
def test_correction_modes_differ(files, correction):
    # The three modes give different pixels at the stored position, and the
    # Dask array follows the file's mode.
    path = files["framed_u16_row7_col4"]
    with _open(path, correction) as f:
        arr = f.as_dask_array()
    with _open(path, True) as f:
        truth = f[...]
    got = arr[:, 7, 4:8].compute(scheduler="sync")
    if correction is True:
        np.testing.assert_array_equal(got, truth[:, 7, 4:8])
    elif correction is False:
        assert not got.any()
    else:
        np.testing.assert_array_equal(got[:, 1::2], np.iinfo(np.uint16).max)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.dcimg")), ids=lambda p: p.stem)
def test_golden_files(path):
    with _open(path) as f:
        ref = f[...]
        arr = f.as_dask_array(chunks=2)
    np.testing.assert_array_equal(arr.compute(scheduler="sync"), ref)


@pytest.mark.parametrize(
    "chunks",
    [(5, 7, 9), (5, (10, 8), -1), {0: 4, 2: 13}, ((23,), (6, 6, 6), (26,))],
    ids=str,
)
@pytest.mark.parametrize("correction", CORRECTIONS, ids=str)
def test_row_and_column_chunks_are_exact(files, chunks, correction):
    for path in (files["packed_u16_row5"], files["framed_u16_row7_col4"]):
        with _open(path, correction) as f:
            ref = f.read(..., dtype=np.float64)
            arr = f.as_dask_array(chunks=chunks, dtype=np.float64)
        np.testing.assert_array_equal(arr.compute(scheduler="sync"), ref)


@settings(max_examples=60, deadline=None)
@given(
    index=hnp.basic_indices(SHAPE, allow_newaxis=True),
    frames=st.integers(1, 23),
    rows=st.integers(1, 18),
    correction=st.sampled_from(CORRECTIONS),
)
def test_any_basic_slice(files, index, frames, rows, correction):
    path = files["packed_u16_row5"]
    with _open(path, correction) as f:
        ref = f[...]
        arr = f.as_dask_array(chunks=(frames, rows, -1))
    np.testing.assert_array_equal(arr[index].compute(scheduler="sync"), ref[index])


def test_imread_dask(files):
    path = files["framed_v2_u8_row0"]
    arr = dcimg.imread(path, dask=True, chunks=4, dtype=np.int16)
    assert isinstance(arr, da.Array)
    with _open(path) as f:
        np.testing.assert_array_equal(arr.compute(), f.read(..., dtype=np.int16))


def test_source_fancy_keys_match_numpy(files):
    with _open(files["framed_u16_row7_col4"]) as f:
        ref = f[...]
        source = dd.StackSource(dd.FileReader.of(f), f.shape, f.dtype, f.token)
    keys = [
        ([1, 5, 2],),
        (3, slice(None), [1, 2]),  # NumPy moves the fancy axis first
        (slice(2, 9), [7, -1], [4, 5]),
        (np.arange(SHAPE[0]) % 3 == 0, 7),
        (..., [0, 25]),
        (None, [4], 7, slice(4, 8)),
        ([],),
    ]
    for key in keys:
        np.testing.assert_array_equal(source[key], ref[key], err_msg=str(key))
    with pytest.raises(IndexError):
        source[[0, 23]]


# --------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------


def test_auto_chunks_are_whole_frames_of_at_most_16_mib(tmp_path, monkeypatch):
    path = write_sparse_dcimg(tmp_path / "big_frames.dcimg", 23, 1024, 1024)
    # Dask's own setting does not decide "auto" (see AUTO_CHUNK_BYTES).
    with _open(path) as f, dask.config.set({"array.chunk-size": "1 GiB"}):
        arr = f.as_dask_array()
        wide = f.as_dask_array(dtype=np.float64)  # 4x the bytes per frame
        assert arr.chunks == ((8, 8, 7), (1024,), (1024,))
        assert wide.chunks[0] == (2,) * 11 + (1,)
        monkeypatch.setattr(dd, "AUTO_CHUNK_BYTES", 1)
        assert f.as_dask_array().chunks[0] == (1,) * 23  # at least one frame


def test_chunk_reads_copy_on_their_task_thread(tmp_path):
    """Dask runs chunks in parallel; a chunk's copy must not start a team."""
    from dcimg import _kernels

    truth = np.random.default_rng(3).integers(0, 65535, (6, 1024, 1100), np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", truth, stored_pixels_row=1000)
    with _open(path) as f:
        arr = f.as_dask_array(chunks=-1, dtype=np.float64)  # 54 MB: one chunk
        got = arr.compute(scheduler="sync")
        np.testing.assert_array_equal(got, truth)
        assert _kernels.last_copy_threads() == 1
        if _kernels.OPENMP and (os.cpu_count() or 1) > 1:
            f.read(..., dtype=np.float64)  # the same copy outside Dask is split
            assert _kernels.last_copy_threads() >= 2


def test_chunk_arguments(files):
    with _open(files["packed_u16_row5"]) as f:
        assert f.as_dask_array(chunks=-1).chunks[0] == (23,)
        assert f.as_dask_array(chunks=10).chunks[0] == (10, 10, 3)
        assert f.as_dask_array(chunks=np.int64(30)).chunks[0] == (23,)
        frame_bytes = SHAPE[1] * SHAPE[2] * 2
        by_size = f.as_dask_array(chunks=f"{6 * frame_bytes} B")
        assert by_size.chunks == ((6, 6, 6, 5), (18,), (26,))
        for bad in (0, -2, "lots", (1, 2), (1, 2, 3, 4)):
            with pytest.raises(ValueError):
                f.as_dask_array(chunks=bad)
        with pytest.raises(TypeError):
            f.as_dask_array(chunks=True)
        with pytest.raises(TypeError):
            f.as_dask_array(dtype="U4")


def test_closed_file_is_refused(files):
    f = _open(files["packed_u16_row5"])
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.as_dask_array()


# --------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------


class _Recorder(pickle.Pickler):
    """A pickler that notes the type of every object it serialises."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.types: set[type] = set()

    def reducer_override(self, obj):
        self.types.add(type(obj))
        return NotImplemented


def test_graph_is_small_and_holds_no_data(files):
    with _open(files["framed_u16_row7_col4"]) as f:
        arr = f.as_dask_array(chunks=4)
    graph = dict(arr.__dask_graph__())
    assert len(graph) == arr.npartitions == 6
    raw = pickle.dumps(graph)
    assert len(raw) < 10_000
    cloudpickle = pytest.importorskip("cloudpickle")
    assert len(cloudpickle.dumps(arr)) < 10_000
    recorder = _Recorder(io.BytesIO())
    recorder.dump(graph)
    forbidden = (np.ndarray, mmap.mmap, memoryview, DCIMGFile, bytes, bytearray)
    found = [t for t in recorder.types if issubclass(t, forbidden)]
    assert not found, found
    assert {dd.StackSource, dd.FileReader} <= recorder.types


def test_names_are_deterministic(files, tmp_path):
    path = files["packed_u16_row5"]

    def name(correction=True, **kw):
        with _open(path, correction) as f:
            return f.as_dask_array(**kw).name

    first = name(chunks=8)
    assert first.startswith("dcimg-")
    assert name(chunks=8) == first
    assert name(chunks=(8, -1, -1)) == first
    assert name(chunks=4) != first
    assert name(chunks=8, dtype=np.float32) != first
    assert name(False, chunks=8) != first
    assert name(None, chunks=8) != first
    # Same contents, another path.
    copy = tmp_path / "copy.dcimg"
    copy.write_bytes(path.read_bytes())
    os.utime(copy, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns))
    with _open(copy) as f:
        assert f.as_dask_array(chunks=8).name != first


def test_modified_file_is_detected(tmp_path):
    path = write_dcimg(tmp_path / "a.dcimg", example_stack(6, 8, 8))
    with _open(path) as f:
        arr = f.as_dask_array(chunks=2)
    info = os.stat(path)
    write_dcimg(path, example_stack(6, 8, 8, seed=1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    with pytest.raises(dcimg.DCIMGError, match="changed since"):
        arr.compute(scheduler="sync")
    with _open(path) as f:
        fresh = f.as_dask_array(chunks=2)
    assert fresh.name != arr.name
    np.testing.assert_array_equal(fresh.compute(), example_stack(6, 8, 8, seed=1))


@pytest.mark.parametrize("nframes", [10, 1_000, 100_000])
def test_graph_size_is_one_task_per_chunk(tmp_path, nframes):
    # Packed sparse files of small frames: a few kilobytes on disk.
    path = write_sparse_dcimg(tmp_path / "s.dcimg", nframes, 4, 8, version=0x7)
    with _open(path) as f:
        arr = f.as_dask_array(chunks=64)
    expected = -(-nframes // 64)
    graph = arr.__dask_graph__()
    assert len(graph.layers) == 1
    assert arr.npartitions == expected
    assert len(dict(graph)) == expected
    # Reading one frame touches one chunk only.
    sub = arr[nframes - 1]
    assert len(sub.__dask_optimize__(sub.__dask_graph__(), sub.__dask_keys__())) <= 2


def test_slices_are_pushed_into_the_read(files, monkeypatch):
    path = files["framed_u16_row7_col4"]
    with _open(path) as f:
        ref = f[...]
        arr = f.as_dask_array(chunks=8)
    dd.clear_cache()
    read = DCIMGFile.read
    pixels: list[int] = []

    def spy(self, key=Ellipsis, **kwargs):
        out = read(self, key, **kwargs)
        pixels.append(np.size(out))
        return out

    monkeypatch.setattr(DCIMGFile, "read", spy)
    frame = SHAPE[1] * SHAPE[2]
    cases = [
        (np.s_[5], frame),
        (np.s_[5, 2:6, ::2], 4 * 13),
        (np.s_[:, 7, 4], 23),
        (np.s_[10:12, 3], 2 * SHAPE[2]),
    ]
    for key, expected in cases:
        pixels.clear()
        np.testing.assert_array_equal(arr[key].compute(scheduler="sync"), ref[key])
        assert sum(pixels) == expected, key
    pixels.clear()
    assert arr[9].sum().compute(scheduler="sync") == ref[9].sum()
    assert sum(pixels) == frame


def test_tasks_share_one_open_file(files):
    dd.clear_cache()
    with _open(files["packed_u8_padded"]) as f:
        arr = f.as_dask_array(chunks=2)
    arr.sum().compute(scheduler="threads")
    assert len(dd._CACHE) == 1
    dd.clear_cache()
    assert not dd._CACHE


# --------------------------------------------------------------------------
# dask.distributed, worker processes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [None, np.float32], ids=str)
@pytest.mark.parametrize("correction", CORRECTIONS, ids=str)
@pytest.mark.parametrize("layout", ["packed_u16_row5", "framed_v2_u8_row0"])
def test_distributed(client, files, layout, correction, dtype):
    with _open(files[layout], correction) as f:
        ref = f.read(..., dtype=dtype)
        arr = f.as_dask_array(chunks=5, dtype=dtype)
    full, total, frame, part = client.compute(
        [arr, arr.sum(axis=0), arr[7], arr[4:19:3, 1:-1, ::5]], sync=True
    )
    np.testing.assert_array_equal(full, ref)
    np.testing.assert_allclose(total, ref.sum(axis=0))
    np.testing.assert_array_equal(frame, ref[7])
    np.testing.assert_array_equal(part, ref[4:19:3, 1:-1, ::5])


def test_distributed_workers_open_their_own_files(client, files):
    with _open(files["framed_u16_row7_col4"]) as f:
        ref = f[...]
        arr = f.as_dask_array(chunks=3)
    np.testing.assert_array_equal(client.compute(arr, sync=True), ref)
    opened = client.run(lambda: [key[0] for key in dd._CACHE])
    assert len(opened) == 2
    assert any(str(files["framed_u16_row7_col4"]) in paths for paths in opened.values())
    assert os.getpid() not in client.run(os.getpid).values()


def test_distributed_xarray(client, files):
    pytest.importorskip("xarray")
    with _open(files["framed_u16_row7_col4"]) as f:
        ref = f[...]
        frames = f.to_xarray(chunks=4, dtype=np.float32)
    mean = frames.mean("t").compute()
    np.testing.assert_allclose(mean.values, ref.mean(axis=0), rtol=1e-6)


# --------------------------------------------------------------------------
# xarray
# --------------------------------------------------------------------------


def test_to_xarray_lazy(files):
    xr = pytest.importorskip("xarray")
    path = files["framed_u16_row7_col4"]
    with _open(path) as f:
        frames = f.to_xarray(chunks=8)
        ref, stamps, counters = f[...], f.timestamps, f.framestamps
        meta = f.metadata
    assert isinstance(frames, xr.DataArray)
    assert isinstance(frames.data, da.Array)
    assert frames.dims == ("t", "y", "x")
    assert frames.name == "framed_u16_row7_col4"
    assert frames.sizes == {"t": 23, "y": 18, "x": 26}
    np.testing.assert_array_equal(frames["t"].values, stamps.astype(frames["t"].dtype))
    assert frames["t"].dtype.kind == "M"
    np.testing.assert_array_equal(frames["framestamp"].values, counters)
    np.testing.assert_array_equal(frames.values, ref)
    np.testing.assert_array_equal(frames.isel(t=4).values, ref[4])
    attrs = frames.attrs
    assert attrs["camera_model"] == meta.camera.model
    assert attrs["stored_pixels_row"] == 7
    assert attrs["format_version"] == 0x1000000
    assert attrs["format_version_hex"] == "0x1000000"
    assert attrs["shape"] == [23, 18, 26]
    assert attrs["truncated"] == 0
    assert attrs["first_4px_correction_enabled"] == "True"
    for value in attrs.values():
        assert isinstance(value, (str, int, float, list)), value
        if isinstance(value, list):
            assert all(isinstance(v, (int, float)) for v in value)


def test_to_xarray_attrs_write_to_netcdf(files, tmp_path):
    pytest.importorskip("xarray")
    pytest.importorskip("scipy")
    with _open(files["packed_u16_row5"]) as f:
        frames = f.to_xarray(dask=False, dtype=np.int32)
    out = tmp_path / "frames.nc"
    frames.to_netcdf(out, engine="scipy")
    import xarray as xr

    with xr.open_dataarray(out, engine="scipy") as back:
        np.testing.assert_array_equal(back.values, frames.values)
        assert back.attrs["camera_model"] == frames.attrs["camera_model"]


def test_to_xarray_in_memory_and_options(files):
    pytest.importorskip("xarray")
    with _open(files["framed_v2_u8_row0"], None) as f:
        frames = f.to_xarray(dask=False, dtype=np.float64, name="cells")
        ref = f.read(..., dtype=np.float64)
        with pytest.raises(ValueError, match="dask=True"):
            f.to_xarray(dask=False, chunks=4)
        with pytest.raises(TypeError):
            f.to_xarray(bogus=1)
    assert isinstance(frames.data, np.ndarray)
    assert frames.name == "cells"
    assert frames.attrs["first_4px_correction_enabled"] == "None"
    np.testing.assert_array_equal(frames.values, ref)


def test_to_xarray_without_time_stamps(tmp_path):
    pytest.importorskip("xarray")
    stack = example_stack(6, 16, 20)
    path = write_dcimg(tmp_path / "cut.dcimg", stack, version=0x7)
    # Cut inside the footer: the frames survive, the time stamps do not.
    path.write_bytes(path.read_bytes()[:-50])
    with _open(path) as f:
        assert f.timestamps.size == 0
        frames = f.to_xarray()
    np.testing.assert_array_equal(frames["t"].values, np.arange(6))
    assert "framestamp" not in frames.coords
    assert frames.attrs["frame_data_available"] == 0
    np.testing.assert_array_equal(frames.values, stack)


def test_missing_optional_dependencies(files, monkeypatch):
    with _open(files["packed_u16_row5"]) as f:
        monkeypatch.setitem(sys.modules, "xarray", None)
        with pytest.raises(ImportError, match=r'pip install "dcimg\[xarray\]"'):
            f.to_xarray()
        monkeypatch.setitem(sys.modules, "dask.array", None)
        with pytest.raises(ImportError, match=r'pip install "dcimg\[dask\]"'):
            f.as_dask_array()


# --------------------------------------------------------------------------
# Sparse files and the scale script
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        dict(version=0x7, stored_pixels_row=3),
        dict(version=0x7, dtype=np.uint8),
        dict(version=0x1000000, stored_pixels_row=5, stored_pixels_column=2),
        dict(version=0x2000000, stored_pixels_row=0, trailer_size=512),
        dict(version=0x1000000, trailer_size=16, bytes_per_row=64),
    ],
    ids=str,
)
def test_sparse_writer_matches_write_dcimg(tmp_path, options):
    dtype = options.pop("dtype", np.uint16)
    zeros = np.zeros((7, 20, 24), dtype)
    sparse = write_sparse_dcimg(tmp_path / "s.dcimg", 7, 20, 24, dtype=dtype, **options)
    dense = tmp_path / "d.dcimg"
    if "bytes_per_row" in options:
        # Row padding: holes (zero) here, 0xa5 in write_dcimg.
        with _open(sparse, None) as f:
            np.testing.assert_array_equal(f[...], zeros)
            assert f.bytes_per_row == 64
        return
    write_dcimg(dense, zeros, **options)
    assert sparse.read_bytes() == dense.read_bytes()


def test_sparse_writer_large_file_takes_little_space(tmp_path):
    nframes, height, width = 600, 256, 512  # 157 MB of pixels
    path = write_sparse_dcimg(
        tmp_path / "big.dcimg", nframes, height, width, stored_pixels_row=100
    )
    info = os.stat(path)
    assert info.st_size > nframes * height * width * 2
    if hasattr(info, "st_blocks") and info.st_blocks * 512 > info.st_size // 4:
        pytest.skip("this file system does not keep sparse files")
    with _open(path) as f:
        assert f.shape == (nframes, height, width)
        assert not f[-1].any()
        np.testing.assert_array_equal(f.framestamps, np.arange(nframes))
    with _open(path, None) as f:
        assert f[0, 100, 1] == 0xFFFF


def test_scale_script_quick(tmp_path):
    result = run_tool("scale.py", "--quick", "--dir", tmp_path, timeout=300)
    assert "RssAnon" in result.stdout
    assert "build dask array" in result.stdout
    assert not any(tmp_path.iterdir()), "scale.py left files behind"


def test_to_xarray_physical_coordinates(tmp_path):
    pytest.importorskip("xarray")
    from dcimg.testing import write_example

    path = write_example(tmp_path / "x.dcimg")
    with DCIMGFile(path) as f:
        plain = f.to_xarray(dask=False)
        sized = f.to_xarray(dask=False, pixel_size=(0.5, 0.65))
        np.testing.assert_allclose(sized.x.values, np.arange(80) * 0.65)
        np.testing.assert_allclose(sized.y.values, np.arange(64) * 0.5)
        assert sized.x.attrs["units"] == "µm"
        assert sized.dims == ("t", "y", "x") and "x" not in plain.coords
        stack = f.to_xarray(dask=False, pixel_size=0.65, z_step=2.0)
        assert stack.dims == ("z", "y", "x")
        np.testing.assert_allclose(stack.z.values, np.arange(20) * 2.0)
        np.testing.assert_array_equal(stack.time.values, f.timestamps)
        np.testing.assert_array_equal(stack.values, plain.values)
        with pytest.raises(ValueError, match="positive"):
            f.to_xarray(pixel_size=-1)
