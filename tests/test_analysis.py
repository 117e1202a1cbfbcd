"""Analysis-ready reading (issue 24): familiar names, the per-frame table,
series left incomplete (``missing="fill"``) and series that grow
(``DCIMGSeries.refresh()``).

Every read is compared with NumPy indexing of the true pixels; filled places
are compared with the truth where those places hold ``fill_value``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import STACK_KINDS, basic_indexing_keys, opened_stacks
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dcimg
from dcimg import series as series_module
from dcimg.testing import write_dcimg, write_series

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))
KINDS = STACK_KINDS


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    with opened_stacks(tmp_path_factory.mktemp("stacks"), seed=1) as made:
        yield made


# ----------------------------------------------------------------------
# Familiar names: each equals what it aliases


@pytest.mark.parametrize("kind", KINDS)
def test_sizes_are_the_xarray_dimensions(stacks, kind):
    stack, truth, _ = stacks[kind]
    assert isinstance(stack, dcimg.Stack)
    sizes = stack.sizes
    assert tuple(sizes.values()) == stack.shape == truth.shape
    arr = stack.to_xarray(dask=False)
    assert dict(arr.sizes) == sizes
    assert tuple(sizes) == arr.dims
    assert tuple(sizes)[-3:] == ("t", "y", "x")


@pytest.mark.parametrize("kind", KINDS)
def test_asarray_is_read(stacks, kind):
    stack, truth, _ = stacks[kind]
    whole = stack.asarray()
    assert type(whole) is np.ndarray
    np.testing.assert_array_equal(whole, stack.read())
    np.testing.assert_array_equal(whole, truth)
    key = (..., slice(1, None, 2), 3)
    np.testing.assert_array_equal(stack.asarray(key), truth[key])
    as_float = stack.asarray(key, dtype="float32", threads=1)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, truth[key].astype(np.float32))
    out = np.zeros(truth[key].shape, np.int32)
    assert stack.asarray(key, out=out) is out
    np.testing.assert_array_equal(out, truth[key])
    # One pixel: a 0-d array (read gives a NumPy scalar).
    pixel = (0,) * stack.ndim
    assert stack.asarray(pixel).shape == ()
    assert stack.asarray(pixel) == stack.read(pixel) == truth[pixel]


@pytest.mark.parametrize("kind", KINDS)
def test_to_dask_is_as_dask_array(stacks, kind):
    stack, truth, _ = stacks[kind]
    lazy = stack.to_dask(dtype="float32")
    same = stack.as_dask_array(dtype="float32")
    assert lazy.name == same.name
    assert lazy.chunks == same.chunks
    np.testing.assert_array_equal(lazy.compute(), truth.astype(np.float32))
    assert stack.to_dask(chunks=1).chunks == stack.as_dask_array(chunks=1).chunks


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dask", [False, True])
def test_imread_xarray_is_to_xarray(stacks, kind, dask):
    stack, truth, source = stacks[kind]
    arr = dcimg.imread(source, xarray=True, dask=dask, concat=kind == "concat series")
    want = stack.to_xarray(dask=False)
    assert arr.dims == want.dims
    assert arr.name == want.name
    assert set(arr.coords) == set(want.coords)
    for name in want.coords:
        np.testing.assert_array_equal(arr[name].values, want[name].values)
    assert arr.attrs == want.attrs
    assert (arr.chunks is not None) == dask
    np.testing.assert_array_equal(arr.values, truth)
    # An index selects by position, like DataArray[index].
    key = (..., 1, slice(None, None, -3))
    part = dcimg.imread(
        source, key, xarray=True, dask=dask, concat=kind == "concat series"
    )
    assert part.dims == want[key].dims
    assert (part.chunks is not None) == dask
    np.testing.assert_array_equal(part.values, truth[key])
    np.testing.assert_array_equal(part[part.dims[0]].values, want[key][part.dims[0]])


def test_imread_xarray_of_a_file_object(stacks):
    _, truth, path = stacks["file"]
    with open(path, "rb") as fh:
        arr = dcimg.imread(fh, 2, xarray=True)
    assert arr.dims == ("y", "x")
    np.testing.assert_array_equal(arr.values, truth[2])


def test_imread_xarray_refuses_series_options_for_one_file(stacks):
    _, _, path = stacks["file"]
    with pytest.raises(ValueError, match="one file"):
        dcimg.imread(path, xarray=True, axes="Z")


def test_the_names_are_public_and_in_the_protocol():
    for name in ("sizes", "asarray", "to_dask", "frame_table"):
        assert hasattr(dcimg.Stack, name)
        assert hasattr(dcimg.DCIMGFile, name)
        assert hasattr(dcimg.DCIMGSeries, name)


# ----------------------------------------------------------------------
# The per-frame table


def test_frame_table_of_a_file_with_dropped_frames(tmp_path):
    counters = np.array([5, 6, 7, 10, 11, 15], dtype=np.int64)
    micro = 1_700_000_000_000_000 + np.array([0, 100, 250, 400, 999, 1_000_001])
    truth = np.zeros((6, 4, 4), np.uint16)
    path = write_dcimg(
        tmp_path / "drops.dcimg", truth, framestamps=counters, timestamps_us=micro
    )
    with dcimg.DCIMGFile(path) as f:
        table = f.frame_table()
        assert table.dtype.names == (
            "frame",
            "framestamp",
            "timestamp",
            "interval",
            "dropped",
        )
        np.testing.assert_array_equal(table["frame"], np.arange(6))
        np.testing.assert_array_equal(table["framestamp"], counters)
        np.testing.assert_array_equal(table["timestamp"], f.timestamps)
        assert np.isnat(table["interval"][0])
        np.testing.assert_array_equal(
            table["interval"][1:].astype(np.int64), np.diff(micro)
        )
        np.testing.assert_array_equal(table["dropped"], [0, 0, 0, 2, 0, 3])
        # The same frames as the metadata's count, at the frame after a gap.
        assert table["dropped"].sum() == f.metadata.dropped_frame_count
        after = np.flatnonzero(table["dropped"]) - 1
        assert tuple(after.tolist()) == tuple(f.metadata.dropped_frames)
        frame = f.frame_table(as_frame=True)
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(table.dtype.names)
    assert len(frame) == 6
    np.testing.assert_array_equal(frame["dropped"].to_numpy(), table["dropped"])
    np.testing.assert_array_equal(frame["framestamp"].to_numpy(), table["framestamp"])
    assert frame["interval"].iloc[3] == pd.Timedelta(microseconds=150)
    assert frame["timestamp"].iloc[0] == pd.Timestamp(micro[0], unit="us")


def test_frame_table_without_counters_or_time_stamps(tmp_path):
    """A cut packed file lost its footer: counters -1, time stamps NaT."""
    truth = np.arange(8 * 4 * 4, dtype=np.uint16).reshape(8, 4, 4)
    whole = write_dcimg(tmp_path / "whole.dcimg", truth, version=0x7)
    with dcimg.DCIMGFile(whole) as f:
        cut = f.layout.data_offset + 5 * f.layout.frame_stride
    path = tmp_path / "cut.dcimg"
    path.write_bytes(whole.read_bytes()[:cut])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dcimg.DCIMGWarning)
        f = dcimg.DCIMGFile(path)
    with f:
        assert f.nfrms == 5 and f.framestamps.size == 0
        table = f.frame_table()
    assert len(table) == 5
    assert (table["framestamp"] == -1).all()
    assert np.isnat(table["timestamp"]).all() and np.isnat(table["interval"]).all()
    assert (table["dropped"] == 0).all()


def test_frame_table_as_frame_without_pandas(stacks, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    for kind in KINDS:
        stack = stacks[kind][0]
        with pytest.raises(
            dcimg.MissingDependencyError, match="pip install pandas"
        ) as info:
            stack.frame_table(as_frame=True)
        assert isinstance(info.value, ImportError)
        assert info.value.name == "pandas"
        # The NumPy table needs no pandas.
        assert len(stack.frame_table()) == np.prod(stack.shape[:-2])


@pytest.mark.parametrize("kind", ["grid series", "concat series"])
def test_frame_table_of_a_series(stacks, kind):
    stack, truth, _ = stacks[kind]
    table = stack.frame_table()
    lead = truth.shape[:-2]
    assert len(table) == np.prod(lead)
    np.testing.assert_array_equal(table["timestamp"], stack.timestamps.ravel())
    np.testing.assert_array_equal(table["framestamp"], stack.framestamps.ravel())
    if kind == "grid series":
        assert table.dtype.names[:3] == ("T", "Z", "frame")
        places = np.unravel_index(np.arange(len(table)), lead)
        for name, place in zip(("T", "Z", "frame"), places, strict=True):
            np.testing.assert_array_equal(table[name], place)
        # write_series runs the counters on from file to file: no drops.
        assert (table["dropped"] == 0).all()
    else:
        assert table.dtype.names[:2] == ("file", "frame")
        np.testing.assert_array_equal(table["file"], [0, 0, 0, 1, 1, 1, 1, 1])
        np.testing.assert_array_equal(table["frame"], np.arange(8))
        # Counters 0, 1, 2 then 10...: 7 frames dropped between the files.
        np.testing.assert_array_equal(table["dropped"], [0, 0, 0, 7, 0, 0, 0, 0])
    intervals = np.diff(stack.timestamps.ravel())
    np.testing.assert_array_equal(table["interval"][1:], intervals)
    frame = stack.frame_table(as_frame=True)
    assert list(frame.columns) == list(table.dtype.names)


# ----------------------------------------------------------------------
# missing="fill"


def _fill_truth(truth: np.ndarray, missing: list[tuple[int, ...]], fill: int):
    want = truth.copy()
    for place in missing:
        want[place] = fill
    return want


def _grid_with_gaps(folder: Path, truth: np.ndarray, missing) -> np.ndarray:
    paths = write_series(folder, truth, name="cell")
    for place in missing:
        os.remove(paths[place])
    return paths


@st.composite
def _filled_grids(draw):
    grid = tuple(draw(st.lists(st.integers(2, 3), min_size=1, max_size=2)))
    frames = draw(st.integers(1, 4))
    places = list(np.ndindex(*grid))
    missing = draw(
        st.lists(st.sampled_from(places), unique=True, max_size=len(places) - 1)
    )
    # Some present files cut short: they hold fewer frames than the others.
    present = [p for p in places if p not in missing]
    short = {}
    if frames > 1:
        for place in draw(st.lists(st.sampled_from(present), unique=True)):
            short[place] = draw(st.integers(1, frames - 1))
    if short and len(short) == len(present):
        short.pop(present[0])  # at least one file has every frame
    # Every counter value keeps a file (or nothing would say it exists).
    for axis, n in enumerate(grid):
        for value in range(n):
            assume(any(p[axis] == value for p in present))
    fill = draw(st.integers(0, 0xFFFF))
    seed = draw(st.integers(0, 2**16))
    return grid, frames, missing, short, fill, seed


@settings(
    max_examples=max(EXAMPLES // 4, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_filled_grids(), data=st.data())
def test_filled_grid_reads_equal_numpy_indexing_of_the_truth(tmp_path, case, data):
    grid, frames, missing, short, fill, seed = case
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 0xFFFF, (*grid, frames, 5, 7), dtype=np.uint16)
    folder = tmp_path / f"case{seed}_{len(os.listdir(tmp_path))}"
    paths = _grid_with_gaps(folder, truth, missing)
    want = _fill_truth(truth, missing, fill)
    for place, kept in short.items():
        flat = int(np.ravel_multi_index(place, grid))
        write_dcimg(
            paths[place],
            truth[place][:kept],
            framestamps=np.arange(kept) + flat * frames,
        )
        want[place][kept:] = fill
    with dcimg.DCIMGSeries(folder, missing="fill", fill_value=fill) as s:
        assert s.shape == truth.shape
        key = data.draw(basic_indexing_keys(truth.shape))
        np.testing.assert_array_equal(s[key], want[key])
        np.testing.assert_array_equal(s.read(key, threads=3), want[key])
        np.testing.assert_array_equal(s.read(key, copy=False), want[key])
        got = s.read(key, dtype=np.float32)
        np.testing.assert_array_equal(got, want[key].astype(np.float32))
        if np.ndim(want[key]):
            out = np.full(np.shape(want[key]), 3, np.int64)[..., ::-1]
            s.read(key, out=out)
            np.testing.assert_array_equal(out, want[key])
        # (Dask's own slicing is not what is tested: it misreads some
        # negative steps, e.g. slice(-3, None, -1) of 2 elements.)
        np.testing.assert_array_equal(s.to_dask(chunks=1).compute()[key], want[key])
        assert len(s.metadata.missing) == len(missing)
        assert len(s.metadata.incomplete) == len(short)


def test_missing_raise_is_the_default_and_names_the_gaps(tmp_path):
    truth = np.zeros((2, 3, 1, 4, 4), np.uint16)
    _grid_with_gaps(tmp_path, truth, [(1, 2)])
    with pytest.raises(dcimg.DCIMGSeriesError, match="cell_001_002.dcimg"):
        dcimg.DCIMGSeries(tmp_path)
    with pytest.raises(dcimg.DCIMGSeriesError, match="gaps"):
        dcimg.DCIMGSeries(tmp_path, missing="raise")


def test_fill_lists_the_missing_files_and_reads_them_as_the_fill_value(tmp_path):
    truth = np.random.default_rng(2).integers(0, 255, (3, 2, 2, 4, 5), np.uint8)
    _grid_with_gaps(tmp_path, truth, [(0, 0), (2, 1)])
    with dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=255) as s:
        want = _fill_truth(truth, [(0, 0), (2, 1)], 255)
        np.testing.assert_array_equal(s[...], want)
        np.testing.assert_array_equal(np.asarray(s), want)
        meta = s.metadata
        assert meta.missing == (
            str(tmp_path / "cell_000_000.dcimg"),
            str(tmp_path / "cell_002_001.dcimg"),
        )
        assert meta.fill_value == 255 and meta.incomplete == ()
        assert meta.to_dict()["missing"] == list(meta.missing)
        # The first file present describes the series.
        assert meta.first.path == str(tmp_path / "cell_000_001.dcimg")
        assert s.files[0, 0] == meta.missing[0]
        np.testing.assert_array_equal(s.frames, [[0, 2], [2, 2], [2, 0]])
        # Missing frames have no counter and no time stamp.
        assert np.isnat(s.timestamps[0, 0]).all()
        assert (s.framestamps[2, 1] == -1).all()
        assert not np.isnat(s.timestamps[0, 1]).any()
        with pytest.raises(dcimg.DCIMGSeriesError, match="missing") as info:
            s.file((0, 0))
        assert info.value.path == meta.missing[0]
        # The Dask graph pickles with what is missing.
        lazy = pickle.loads(pickle.dumps(s.as_dask_array()))
        np.testing.assert_array_equal(lazy.compute(), want)
        arr = s.to_xarray()
        np.testing.assert_array_equal(arr.values, want)
        # The token says what is filled and with what.
        with dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=0) as zero:
            assert zero.token != s.token


def test_fill_with_a_list_of_files_some_not_written(tmp_path):
    truth = np.random.default_rng(3).integers(0, 4000, (4, 2, 3, 3), np.uint16)
    paths = write_series(tmp_path, truth, name="t")
    os.remove(paths[3])  # the last one of the list: its counter is known
    with pytest.raises(FileNotFoundError):
        dcimg.DCIMGSeries(list(paths))
    with dcimg.DCIMGSeries(list(paths), missing="fill") as s:
        assert s.shape == truth.shape
        np.testing.assert_array_equal(s[...], _fill_truth(truth, [(3,)], 0))
        assert s.metadata.missing == (str(paths[3]),)
    for path in paths[:3]:
        os.remove(path)
    with pytest.raises(dcimg.DCIMGSeriesError, match="none of the files"):
        dcimg.DCIMGSeries(list(paths), missing="fill")


def test_fill_takes_a_file_cut_by_an_interrupted_run(tmp_path):
    """The last file of a run that stopped: its complete frames are read."""
    truth = np.random.default_rng(4).integers(0, 4000, (3, 6, 4, 5), np.uint16)
    paths = write_series(tmp_path, truth, name="run")
    with dcimg.DCIMGFile(paths[2]) as f:
        cut = f.layout.data_offset + 4 * f.layout.frame_stride + 7
    data = paths[2].read_bytes()[:cut]
    paths[2].write_bytes(data)
    with pytest.raises(dcimg.DCIMGFormatError, match="frames"):
        with pytest.warns(dcimg.DCIMGWarning):
            dcimg.DCIMGSeries(tmp_path)
    with pytest.warns(dcimg.DCIMGWarning):
        s = dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=9)
    with s:
        want = truth.copy()
        want[2, 4:] = 9
        np.testing.assert_array_equal(s[...], want)
        np.testing.assert_array_equal(s[2, ::-1, 1], want[2, ::-1, 1])
        np.testing.assert_array_equal(s[2, 5], want[2, 5])
        assert s.metadata.incomplete == (str(paths[2]),)
        assert s.frames.tolist() == [6, 6, 4]
        assert np.isnat(s.timestamps[2, 4:]).all()
        np.testing.assert_array_equal(s.framestamps[2, :4], np.arange(12, 16))


def test_fill_arguments_are_checked(tmp_path):
    truth = np.zeros((2, 1, 4, 4), np.uint8)
    write_series(tmp_path, truth)
    with pytest.raises(ValueError, match="'raise' or 'fill'"):
        dcimg.DCIMGSeries(tmp_path, missing="skip")
    with pytest.raises(ValueError, match="concat"):
        dcimg.DCIMGSeries(tmp_path, missing="fill", concat=True)
    with pytest.raises(ValueError, match="uint8"):
        dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=256)
    with pytest.raises(ValueError, match="65535"):
        dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=-1)
    with pytest.raises(TypeError, match="integer"):
        dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=0.5)
    with pytest.raises(TypeError, match="integer"):
        dcimg.DCIMGSeries(tmp_path, missing="fill", fill_value=True)


def test_fill_refuses_a_grid_too_large_to_fill(tmp_path, monkeypatch):
    truth = np.zeros((3, 3, 1, 2, 2), np.uint16)
    _grid_with_gaps(tmp_path, truth, [(0, 1), (2, 2)])
    monkeypatch.setattr(series_module, "FILL_PLACES", 8)
    with pytest.raises(dcimg.DCIMGSeriesError, match="9 places"):
        dcimg.DCIMGSeries(tmp_path, missing="fill")
    monkeypatch.setattr(series_module, "FILL_PLACES", 9)
    with dcimg.DCIMGSeries(tmp_path, missing="fill") as s:
        assert s.shape == truth.shape


def test_fill_still_refuses_two_files_in_one_place(tmp_path):
    truth = np.zeros((2, 2, 1, 2, 2), np.uint16)
    paths = _grid_with_gaps(tmp_path, truth, [(1, 1)])
    shutil.copy(paths[0, 0], tmp_path / "cell_000_0.dcimg")
    with pytest.raises(dcimg.DCIMGSeriesError, match="same counters"):
        dcimg.DCIMGSeries(tmp_path, missing="fill")


# ----------------------------------------------------------------------
# refresh()


def _copy(source: Path, folder: Path, names) -> None:
    for name in names:
        shutil.copy(source / name, folder / name)


def _acquisition(tmp_path: Path, seed: int, shape: tuple[int, ...], written: int):
    """A time lapse whose first ``written`` files have reached its folder so far.

    The whole series (random pixels of ``shape`` from ``seed``) is written to
    ``tmp_path / "all"``; ``_copy`` brings more of its ``names`` (sorted, in
    the order a run writes them) into ``folder``. Returns ``truth, source,
    folder, names``.
    """
    source, folder = tmp_path / "all", tmp_path / "acq"
    folder.mkdir()
    truth = np.random.default_rng(seed).integers(0, 4000, shape, np.uint16)
    write_series(source, truth, name="tl")
    names = sorted(os.listdir(source))
    _copy(source, folder, names[:written])
    return truth, source, folder, names


def test_refresh_takes_in_new_time_points_and_filled_places(tmp_path):
    # Time points 0 and 1 written, and the first file of time point 2.
    truth, source, folder, names = _acquisition(tmp_path, 5, (5, 3, 2, 4, 6), 7)
    with dcimg.DCIMGSeries(folder, missing="fill", fill_value=1) as s:
        assert s.shape == (3, 3, 2, 4, 6)
        before = s.to_dask()
        before_x = s.to_xarray()
        np.testing.assert_array_equal(s[:2], truth[:2])
        np.testing.assert_array_equal(s[2, 0], truth[2, 0])
        assert (s[2, 1:] == 1).all()
        stamps = s.timestamps
        assert np.isnat(stamps[2, 1:]).all()
        # Nothing new: the same shape, the same reads.
        assert s.refresh() == (3, 3, 2, 4, 6)
        _copy(source, folder, names[7:11])  # the rest of 2, and part of 3
        assert s.refresh() == (4, 3, 2, 4, 6)
        assert s.shape == (4, 3, 2, 4, 6)
        assert s.sizes == {"T": 4, "Z": 3, "t": 2, "y": 4, "x": 6}
        np.testing.assert_array_equal(s.counters[0], np.arange(4))
        want = _fill_truth(truth[:4], [(3, 2)], 1)
        np.testing.assert_array_equal(s[...], want)
        np.testing.assert_array_equal(s.to_dask().compute(), want)
        assert s.metadata.missing == (str(folder / "tl_003_002.dcimg"),)
        assert not np.isnat(s.timestamps[2]).any()
        assert len(s.frame_table()) == 4 * 3 * 2
        # Arrays made before keep their shape and files, and read exactly.
        assert before.shape == (3, 3, 2, 4, 6)
        old = _fill_truth(truth[:3], [(2, 1), (2, 2)], 1)
        np.testing.assert_array_equal(before.compute(), old)
        np.testing.assert_array_equal(before_x.values, old)
        _copy(source, folder, names[11:])
        assert s.refresh() == truth.shape
        np.testing.assert_array_equal(s[...], truth)
        assert s.metadata.missing == ()


def test_refresh_rereads_a_file_still_being_written(tmp_path):
    truth = np.random.default_rng(6).integers(0, 4000, (3, 5, 4, 4), np.uint16)
    paths = write_series(tmp_path, truth, name="tl")
    complete = paths[2].read_bytes()
    write_dcimg(paths[2], truth[2, :2], framestamps=np.arange(10, 12))
    with dcimg.DCIMGSeries(tmp_path, missing="fill") as s:
        assert s.metadata.incomplete == (str(paths[2]),)
        np.testing.assert_array_equal(s[2, :2], truth[2, :2])
        assert (s[2, 2:] == 0).all()
        paths[2].write_bytes(complete)
        assert s.refresh() == truth.shape
        np.testing.assert_array_equal(s[...], truth)
        assert s.metadata.incomplete == ()


def test_refresh_with_missing_raise_refuses_a_gap_and_changes_nothing(tmp_path):
    truth, source, folder, names = _acquisition(tmp_path, 7, (3, 2, 1, 4, 4), 4)
    with dcimg.DCIMGSeries(folder) as s:
        token = s.token
        _copy(source, folder, names[4:5])  # time point 2 half written
        with pytest.raises(dcimg.DCIMGSeriesError, match="tl_002_001"):
            s.refresh()
        assert s.shape == (2, 2, 1, 4, 4) and s.token == token
        np.testing.assert_array_equal(s[...], truth[:2])
        _copy(source, folder, names[5:])
        assert s.refresh() == truth.shape
        assert s.token != token
        np.testing.assert_array_equal(s[...], truth)


def test_refresh_refuses_changed_or_removed_files(tmp_path):
    truth = np.random.default_rng(8).integers(0, 4000, (3, 2, 4, 4), np.uint16)
    paths = write_series(tmp_path, truth, name="tl")
    with dcimg.DCIMGSeries(tmp_path, missing="fill") as s:
        write_dcimg(paths[1], truth[1][::-1], framestamps=np.arange(2, 4))
        with pytest.raises(dcimg.DCIMGChangedError, match="tl_001.dcimg") as info:
            s.refresh()
        assert info.value.path == str(paths[1])
        write_dcimg(paths[1], truth[1], framestamps=np.arange(2, 4))
    with dcimg.DCIMGSeries(tmp_path, missing="fill") as s:
        os.remove(paths[1])
        with pytest.raises(dcimg.DCIMGChangedError, match="disappeared"):
            s.refresh()
        assert s.shape == truth.shape
    write_dcimg(paths[1], truth[1], framestamps=np.arange(2, 4))
    with dcimg.DCIMGSeries(tmp_path) as s:
        os.remove(paths[2])  # the last time point: the grid shrinks
        with pytest.raises(dcimg.DCIMGChangedError, match="tl_002.dcimg"):
            s.refresh()


def test_refresh_adds_the_axis_of_a_counter_that_starts_to_vary(tmp_path):
    """The first time point alone is a series of its Z files; T comes later."""
    truth, source, folder, names = _acquisition(tmp_path, 10, (3, 2, 1, 3, 3), 2)
    with dcimg.DCIMGSeries(folder) as s, dcimg.DCIMGSeries(folder, axes="Z") as named:
        assert s.axes == "Z" and s.shape == (2, 1, 3, 3)
        before = s.to_dask()
        _copy(source, folder, names[2:])
        assert s.refresh() == truth.shape
        assert s.axes == "TZ"
        assert s.sizes == {"T": 3, "Z": 2, "t": 1, "y": 3, "x": 3}
        np.testing.assert_array_equal(s[...], truth)
        np.testing.assert_array_equal(before.compute(), truth[0])
        assert s.frame_table().dtype.names[:2] == ("T", "Z")
        # Axes given by name stay as given: a new one is refused.
        with pytest.raises(dcimg.DCIMGSeriesError, match="2 counters"):
            named.refresh()
        assert named.shape == (2, 1, 3, 3)


def test_refresh_of_a_closed_series_raises(tmp_path):
    write_series(tmp_path, np.zeros((2, 1, 3, 3), np.uint16))
    s = dcimg.DCIMGSeries(tmp_path)
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.refresh()


def test_reads_on_other_threads_stay_exact_while_refreshing(tmp_path):
    """Each read sees the grid before or after a refresh, never a mix."""
    truth, source, folder, names = _acquisition(tmp_path, 9, (8, 2, 16, 16), 1)
    errors: list[BaseException] = []
    stop = threading.Event()
    with dcimg.DCIMGSeries(folder, missing="fill") as s:

        def reader() -> None:
            try:
                while not stop.is_set():
                    got = s[...]
                    # The first file alone: its stack; then the T axis.
                    want = truth[0] if got.ndim == 3 else truth[: got.shape[0]]
                    np.testing.assert_array_equal(got, want)
                    table = s.frame_table()
                    assert len(table) in {2 * k for k in range(1, 9)}
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            for k in range(1, len(names)):
                _copy(source, folder, names[k : k + 1])
                assert s.refresh()[0] == k + 1
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert not errors, errors[0]


def test_imread_passes_missing_to_the_series(tmp_path):
    truth = np.random.default_rng(11).integers(0, 4000, (3, 2, 1, 4, 4), np.uint16)
    paths = _grid_with_gaps(tmp_path, truth, [(2, 0)])
    want = _fill_truth(truth, [(2, 0)], 5)
    with pytest.raises(dcimg.DCIMGSeriesError, match="gaps"):
        dcimg.imread(tmp_path)
    np.testing.assert_array_equal(
        dcimg.imread(tmp_path, missing="fill", fill_value=5), want
    )
    lazy = dcimg.imread(tmp_path, dask=True, missing="fill", fill_value=5)
    np.testing.assert_array_equal(lazy.compute(), want)
    arr = dcimg.imread(tmp_path, (2, slice(None), 0), xarray=True, missing="fill")
    np.testing.assert_array_equal(arr.values, _fill_truth(truth, [(2, 0)], 0)[2, :, 0])
    with pytest.raises(ValueError, match="one file"):
        dcimg.imread(paths[0, 0], missing="fill")
    with pytest.raises(ValueError, match="one file"):
        dcimg.imread(paths[0, 0], xarray=True, missing="fill")
