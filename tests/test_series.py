"""Tests of dcimg.DCIMGSeries: numbered files read as one N-D array."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import pytest
from helpers import local_cluster, run_python, run_tiny_bench
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dcimg
from dcimg import DCIMGFile, DCIMGSeries
from dcimg.errors import DCIMGError, DCIMGFormatError
from dcimg.testing import example_stack, write_dcimg, write_series

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))
ROOT = pathlib.Path(__file__).resolve().parent.parent


def stacked_truth(paths: np.ndarray, concat: bool = False) -> np.ndarray:
    """np.stack / np.concatenate of every file read with DCIMGFile."""
    arrays = []
    for path in paths.ravel():
        with DCIMGFile(path) as f:
            arrays.append(f[...])
    if concat:
        return np.concatenate(arrays)
    return np.stack(arrays).reshape(*paths.shape, *arrays[0].shape)


def random_stack(shape, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.fixture
def grid(tmp_path):
    """A 2 x 3 grid of files of 2 frames with stored pixels."""
    truth = random_stack((2, 3, 2, 12, 10))
    paths = write_series(tmp_path, truth, name="cell", stored_pixels_row=4)
    return tmp_path, truth, paths


# ----------------------------------------------------------------------
# The stacked truth, for every grid and index


@st.composite
def series_cases(draw):
    counts = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    frames = draw(st.integers(1, 4))
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    separator = draw(st.sampled_from(["_", "-"]))
    # Start so that counters cross a change in digit count (9 -> 10) with
    # unpadded names: text order differs from numeric order.
    digits, start = draw(st.sampled_from([(3, 0), (1, 8), (1, 98), (2, 9)]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    stored = draw(st.sampled_from([None, 0]))
    version = draw(st.sampled_from([0x7, 0x1000000]))
    concat = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(
        shape=(*counts, frames, height, width),
        separator=separator,
        digits=digits,
        start=start,
        dtype=dtype,
        stored=stored,
        version=version,
        concat=concat,
        seed=seed,
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=series_cases(), data=st.data())
def test_every_grid_and_index_equals_the_stacked_truth(case, data):
    truth = random_stack(case["shape"], case["dtype"], case["seed"])
    options = dict(version=case["version"])
    if case["stored"] is not None and truth.shape[-1] * truth.itemsize >= 8:
        options["stored_pixels_row"] = case["stored"]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_series(
            folder,
            truth,
            name="run",
            separator=case["separator"],
            digits=case["digits"],
            start=case["start"],
            **options,
        )
        ngrid = truth.ndim - 3
        varying = [n for n in truth.shape[:ngrid] if n > 1]
        if case["concat"]:
            expected = truth.reshape(-1, *truth.shape[-2:])
            assert np.array_equal(expected, stacked_truth(paths, concat=True))
        else:
            expected = truth.reshape(*varying, *truth.shape[-3:])
            assert np.array_equal(
                expected, stacked_truth(paths).reshape(expected.shape)
            )
        with DCIMGSeries(folder, concat=case["concat"]) as series:
            assert series.shape == expected.shape
            assert series.dtype == expected.dtype
            assert series.ndim == expected.ndim
            if case["concat"]:
                assert series.axes == ""
            else:
                assert series.axes == "SRQPCTZ"[7 - len(varying) :]
                assert series.files.shape == tuple(varying)
                # The files sit where their counters put them.
                assert list(series.files.ravel()) == [
                    os.path.abspath(p) for p in paths.ravel()
                ]
            assert np.array_equal(np.asarray(series), expected)
            for _ in range(3):
                key = data.draw(
                    hnp.basic_indices(
                        expected.shape, allow_newaxis=True, allow_ellipsis=True
                    ),
                    label="key",
                )
                got = series[key]
                want = expected[key]
                assert np.shape(got) == want.shape, key
                assert np.array_equal(got, want), key
                assert np.array_equal(series.read(key, dtype=np.float32), want), key


def test_shape_contract_one_frame_files(tmp_path):
    truth = random_stack((11, 1, 5, 7))
    write_series(tmp_path, truth, name="img", digits=1)
    with DCIMGSeries(tmp_path) as series:
        assert series.shape == (11, 1, 5, 7)
        assert series.axes == "Z"
        assert series.counters[0].tolist() == list(range(11))
        # Numeric order: _10 comes after _9, not after _1.
        names = [os.path.basename(p) for p in series.files]
        assert names[9:] == ["img_9.dcimg", "img_10.dcimg"]
        assert np.array_equal(series[...], truth)


def test_counters_from_1_and_dash_separator(tmp_path):
    truth = random_stack((3, 4, 2, 4, 5))
    write_series(tmp_path, truth, name="bead-bot4-560", separator="-", start=1)
    with DCIMGSeries(tmp_path, axes="PZ") as series:
        assert series.shape == truth.shape
        assert series.axes == "PZ"
        assert series.counters[0].tolist() == [1, 2, 3]
        assert np.array_equal(series[2, -1, 1], truth[2, -1, 1])


def test_constant_counters_are_dropped(tmp_path):
    # The 642 (a wavelength) never varies: it is not an axis.
    truth = random_stack((4, 1, 3, 3))
    for i in range(4):
        write_dcimg(tmp_path / f"cell09_642_{i:03d}.dcimg", truth[i])
    with DCIMGSeries(tmp_path) as series:
        assert series.shape == (4, 1, 3, 3)
        assert np.array_equal(series[...], truth)


def test_values_equal_single_file_reads_with_correction(grid):
    folder, truth, paths = grid
    for correction in (True, False, None):
        with DCIMGSeries(folder, first_4px_correction_enabled=correction) as series:
            assert series.first_4px_correction_enabled is correction
            stacked = []
            for path in paths.ravel():
                with DCIMGFile(path, first_4px_correction_enabled=correction) as f:
                    stacked.append(f[...])
            want = np.stack(stacked).reshape(series.shape)
            assert np.array_equal(series[...], want)
            if correction is not True:
                # The overwritten pixels differ from the truth.
                assert not np.array_equal(want, truth)
    with pytest.raises(TypeError):
        DCIMGSeries(folder, first_4px_correction_enabled="yes")


def test_single_file_is_a_series_of_one(tmp_path):
    truth = random_stack((3, 4, 5))
    path = write_dcimg(tmp_path / "lonely.dcimg", truth)
    for files in (path, [path], tmp_path):
        with DCIMGSeries(files) as series:
            assert series.shape == (3, 4, 5)
            assert series.axes == ""
            assert series.files.shape == ()
            assert np.array_equal(series[1:], truth[1:])


# ----------------------------------------------------------------------
# Concatenation


def test_concat_files_of_different_lengths(tmp_path):
    parts = [random_stack((n, 6, 4), seed=n) for n in (3, 1, 4)]
    for i, part in enumerate(parts):
        write_dcimg(tmp_path / f"long_run_{i:02d}.dcimg", part)
    joined = np.concatenate(parts)
    with DCIMGSeries(tmp_path, concat=True) as series:
        assert series.shape == (8, 6, 4)
        assert series.frames.tolist() == [3, 1, 4]
        assert np.array_equal(series[...], joined)
        for key in (
            np.s_[::-1],
            np.s_[2:5],
            np.s_[-1, 2],
            np.s_[1::3, ::-2],
            np.s_[7:0:-2, None],
            np.s_[3],
            np.s_[4:4],
        ):
            assert np.array_equal(series[key], joined[key]), key
        assert series.timestamps.shape == (8,)
    with pytest.raises(DCIMGFormatError, match=r"frames 1 \(first file: 3\)"):
        DCIMGSeries(tmp_path)
    with pytest.raises(ValueError, match="concat"):
        DCIMGSeries(tmp_path, concat=True, axes="T")


def test_concat_with_an_interrupted_last_file(tmp_path):
    parts = [random_stack((4, 64, 64), seed=n) for n in range(3)]
    paths = [
        write_dcimg(tmp_path / f"split-{i}.dcimg", part) for i, part in enumerate(parts)
    ]
    # The acquisition stopped while writing the last file.
    os.truncate(paths[-1], int(os.path.getsize(paths[-1]) * 0.6))
    with pytest.warns(dcimg.DCIMGWarning):
        with DCIMGFile(paths[-1]) as f:
            complete = f[...]
    assert 0 < len(complete) < 4
    with pytest.warns(dcimg.DCIMGWarning, match="split-2"):
        series = DCIMGSeries(tmp_path, concat=True)
    with series:
        assert series.shape == (8 + len(complete), 64, 64)
        assert np.array_equal(series[...], np.concatenate([*parts[:2], complete]))
    with pytest.warns(dcimg.DCIMGWarning), pytest.raises(DCIMGFormatError):
        DCIMGSeries(tmp_path)


# ----------------------------------------------------------------------
# Errors


def test_odd_geometry_names_file_field_and_values(tmp_path):
    write_series(tmp_path, random_stack((3, 1, 8, 6)), name="s")
    odd = write_dcimg(tmp_path / "s_003.dcimg", random_stack((1, 8, 5)))
    with pytest.raises(DCIMGFormatError) as info:
        DCIMGSeries(tmp_path)
    message = str(info.value)
    assert str(odd) in message and "width 5 (first file: 6)" in message
    assert info.value.field == "width"

    write_dcimg(odd, random_stack((1, 7, 6)))
    with pytest.raises(DCIMGFormatError, match=r"height 7 \(first file: 8\)"):
        DCIMGSeries(tmp_path)
    write_dcimg(odd, random_stack((1, 8, 6), np.uint8))
    with pytest.raises(DCIMGFormatError, match=r"dtype uint8 \(first file: uint16\)"):
        DCIMGSeries(tmp_path)
    write_dcimg(odd, random_stack((1, 8, 6)), version=0x7)
    with pytest.raises(DCIMGFormatError, match=r"layout packed \(first file: framed\)"):
        DCIMGSeries(tmp_path)
    write_dcimg(odd, random_stack((2, 8, 6)))
    with pytest.raises(DCIMGFormatError, match=r"frames 2 \(first file: 1\)"):
        DCIMGSeries(tmp_path)
    write_dcimg(odd, random_stack((1, 8, 6)))
    assert DCIMGSeries(tmp_path).shape == (4, 1, 8, 6)


def test_gaps_name_the_missing_files(grid):
    folder, _, paths = grid
    os.remove(paths[1, 2])
    os.remove(paths[0, 0])
    with pytest.raises(DCIMGError) as info:
        DCIMGSeries(folder)
    message = str(info.value)
    assert "2 of 6" in message
    assert "'cell_000_000.dcimg'" in message and "'cell_001_002.dcimg'" in message


def test_gap_names_follow_unpadded_counters(tmp_path):
    paths = write_series(tmp_path, random_stack((2, 11, 1, 2, 2)), digits=1)
    os.remove(paths[1, 10])
    with pytest.raises(DCIMGError, match="'image_1_10.dcimg'"):
        DCIMGSeries(tmp_path)


def test_corrupt_member_names_itself(grid):
    folder, _, paths = grid
    bad = paths[1, 1]
    pathlib.Path(bad).write_bytes(b"not a dcimg file at all" * 10)
    with pytest.raises(DCIMGFormatError, match=str(bad)):
        DCIMGSeries(folder)


def test_unrelated_files_in_the_folder(grid):
    folder, truth, paths = grid
    (folder / "notes.txt").write_text("hello")
    (folder / "background.dcimg").write_bytes(b"garbage")
    (folder / "subdir.dcimg").mkdir()
    with DCIMGSeries(folder) as series:
        assert series.shape == truth.shape
    with DCIMGSeries(str(folder / "cell_*.dcimg")) as series:
        assert series.shape == truth.shape
    # Listed explicitly, a file that does not match is an error.
    with pytest.raises(DCIMGError, match="background.dcimg"):
        DCIMGSeries([*paths.ravel(), folder / "background.dcimg"])


def test_a_folder_in_place_of_a_member_names_itself(grid):
    folder, _, paths = grid
    member = pathlib.Path(paths[1, 2])
    member.unlink()
    member.mkdir()  # e.g. an export that made a folder of that name
    with pytest.raises(DCIMGFormatError, match=f"{member.name}: a folder"):
        DCIMGSeries(folder)
    with pytest.raises(DCIMGFormatError, match=f"{member.name}: a folder"):
        DCIMGSeries(str(folder / "cell_*.dcimg"))


def test_two_series_in_one_folder(grid):
    folder, truth, _ = grid
    write_series(folder, random_stack((2, 1, 3, 3)), name="dark")
    with pytest.raises(DCIMGError, match=r"'cell_\*_\*.dcimg' \(6 files\).*dark"):
        DCIMGSeries(folder)
    with DCIMGSeries(os.path.join(folder, "dark_*.dcimg")) as series:
        assert series.shape == (2, 1, 3, 3)
    with DCIMGSeries(folder, pattern=r"cell_(\d+)_(\d+)\.dcimg") as series:
        assert series.shape == truth.shape


_NAME_PARTS = st.sampled_from(["cell", "a-1", "x_", "b{", "_", "-", "7", "00", "9"])


@st.composite
def folder_names(draw):
    """Names as a folder may hold them: series, strays, odd characters."""
    stem = "".join(draw(st.lists(_NAME_PARTS, min_size=1, max_size=3)))
    counters = draw(st.integers(1, 3))
    seps = draw(st.lists(st.sampled_from("_-"), min_size=counters, max_size=counters))
    rows = draw(
        st.lists(
            st.tuples(*[st.integers(0, 120) | st.just(10**19)] * counters),
            min_size=1,
            max_size=12,
        )
    )
    pad = draw(st.sampled_from([0, 1, 3]))
    names = [
        stem + "".join(f"{c}{v:0{pad}d}" for c, v in zip(seps, row, strict=True))
        for row in rows
    ]
    strays = draw(st.lists(st.text("ab_-1{}.", max_size=6), max_size=3))
    names += [stem + s for s in strays]
    ext = draw(st.sampled_from([".dcimg", ".DCIMG"]))
    names = [
        n + (ext if draw(st.booleans()) or i == 0 else ".dcimg")
        for i, n in enumerate(names)
    ]
    return draw(st.permutations(names))


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(names=folder_names(), listed=st.booleans())
def test_one_pass_parse_equals_name_by_name(names, listed):
    """The one-regex parse of a big folder gives the grid, or the error, that
    parsing each name on its own gives."""
    from dcimg import series as module

    paths = [os.path.join(os.sep + "data", "run", n) for n in names]

    def outcome(fast):
        original = module._parse_alike
        if not fast:
            module._parse_alike = lambda paths, first: None
        try:
            grid = module._grid(paths, listed, None, "folder")
        except DCIMGError as exc:
            return ("error", str(exc))
        finally:
            module._parse_alike = original
        return (grid.paths, grid.shape, [c.tolist() for c in grid.counters])

    assert outcome(fast=True) == outcome(fast=False)


def test_same_counters_twice(tmp_path):
    write_dcimg(tmp_path / "a_1.dcimg", random_stack((1, 2, 2)))
    write_dcimg(tmp_path / "a_01.dcimg", random_stack((1, 2, 2)))
    write_dcimg(tmp_path / "a_2.dcimg", random_stack((1, 2, 2)))
    with pytest.raises(DCIMGError, match="same counters"):
        DCIMGSeries(tmp_path)


def test_absurdly_long_counter(tmp_path):
    write_dcimg(tmp_path / f"a_{'9' * 30}.dcimg", random_stack((1, 2, 2)))
    write_dcimg(tmp_path / "a_1.dcimg", random_stack((1, 2, 2)))
    with pytest.raises(DCIMGError, match="more than 18 digits"):
        DCIMGSeries(tmp_path)


def test_custom_pattern_and_upper_case_extension(tmp_path):
    truth = random_stack((2, 3, 1, 4, 4))
    for p in range(2):
        for t in range(3):
            write_dcimg(tmp_path / f"pos{p}_t{t * 5}.DCIMG", truth[p, t])
    with DCIMGSeries(tmp_path, pattern=r"pos(\d+)_t(\d+)\.DCIMG", axes="PT") as s:
        assert s.shape == truth.shape
        assert s.counters[1].tolist() == [0, 5, 10]
        assert np.array_equal(s[...], truth)
    # The default naming needs a separator before the counter.
    with pytest.raises(DCIMGError, match="pattern="):
        DCIMGSeries(tmp_path)
    with pytest.raises(DCIMGError, match="not a counter"):
        DCIMGSeries(tmp_path, pattern=r"pos(\d+)_(t\d+)\.DCIMG")


def test_no_files(tmp_path):
    with pytest.raises(DCIMGError, match="no \\*.dcimg"):
        DCIMGSeries(tmp_path)
    with pytest.raises(DCIMGError, match="no \\*.dcimg file matches"):
        DCIMGSeries(str(tmp_path / "x_*.dcimg"))
    with pytest.raises(DCIMGError, match="empty"):
        DCIMGSeries([])
    with pytest.raises(FileNotFoundError):
        DCIMGSeries(tmp_path / "missing.dcimg")
    with pytest.raises(TypeError):
        DCIMGSeries(42)


def test_axes_names_are_checked(grid):
    folder = grid[0]
    for axes, message in (
        ("T", "2 varying"),
        ("TT", "repeats"),
        ("T1", "not an ASCII letter"),
        ("Tt", "dimension of every file"),
    ):
        with pytest.raises(ValueError, match=message):
            DCIMGSeries(folder, axes=axes)
    with pytest.raises(TypeError):
        DCIMGSeries(folder, axes=["T", "Z"])


def test_bad_indices(grid):
    folder, truth, _ = grid
    with DCIMGSeries(folder) as series:
        # Refused by NumPy too.
        for key in ((2,), (0, 3), (0, 0, 0, 0, 0, 0), (..., ...), (0, -4), 1.5):
            with pytest.raises(IndexError):
                truth[key]
            with pytest.raises(IndexError):
                series[key]
        # Advanced indices are not basic indexing.
        for key in ([0, 1], np.array([0, 1]), True, (0, np.array([True] * 3))):
            with pytest.raises(IndexError, match="advanced|only integers"):
                series[key]


# ----------------------------------------------------------------------
# Reading API


def test_read_out_dtype_and_array_protocol(grid):
    folder, truth, _ = grid
    with DCIMGSeries(folder) as series:
        out = np.zeros((1, 3, 2, 12, 1, 10), np.float64)
        result = series.read((slice(1, 2), ..., None, slice(None)), out=out)
        assert result is out
        assert np.array_equal(out, truth[1:2, ..., None, :])
        with pytest.raises(ValueError, match="shape"):
            series.read(0, out=out)
        with pytest.raises(ValueError, match="differs"):
            series.read(..., dtype=np.uint8, out=np.empty(truth.shape))
        strided = np.zeros((*truth.shape[:-1], 20))[..., ::2]  # filled exactly
        assert series.read(..., out=strided) is strided
        assert np.array_equal(strided, truth)
        assert np.array_equal(np.asarray(series, dtype=np.float32), truth)
        assert np.asarray(series, dtype=np.float32).dtype == np.float32
        assert np.array_equal(np.array(series), truth)
        if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            with pytest.raises(ValueError, match="copy"):
                np.asarray(series, copy=False)
        scalar = series[1, 2, 0, 3, 4]
        assert scalar == truth[1, 2, 0, 3, 4] and np.ndim(scalar) == 0
        assert series.read((0, 0, 0, 0, 0), dtype=np.int32) == truth[0, 0, 0, 0, 0]
        assert series[0, 0, :0].shape == (0, 12, 10)
        assert series.read(..., dtype=np.complex64).dtype == np.complex64
        assert len(series) == 2
        assert series.size == truth.size and series.nbytes == truth.nbytes
        assert "shape=2x3x2x12x10" in repr(series)


def test_file_access(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        f = series.file((1, -1))
        assert f.file_path == str(paths[1, 2])
        assert np.array_equal(f[...], truth[1, 2])
        with pytest.raises(IndexError):
            series.file((2, 0))
        with pytest.raises(IndexError):
            series.file(0)
        f.close()  # the series reopens it
        assert np.array_equal(series[1, 2], truth[1, 2])


def test_close_and_context_manager(grid):
    folder, truth, _ = grid
    series = DCIMGSeries(folder)
    with series as s:
        assert s is series and not s.closed
    assert series.closed
    with pytest.raises(ValueError, match="closed"):
        series[0]
    series.close()
    assert series.shape == truth.shape  # the description stays


def test_timestamps_framestamps_and_metadata(tmp_path):
    truth = random_stack((2, 2, 3, 4, 4))
    paths = write_series(tmp_path, truth)
    # One file whose counter skips a frame (a drop after frame 0).
    write_dcimg(paths[1, 0], truth[1, 0], framestamps=[6, 8, 9])
    with DCIMGSeries(tmp_path) as series:
        stamps = series.timestamps
        assert stamps.shape == (2, 2, 3) and stamps.dtype == "datetime64[us]"
        with DCIMGFile(paths[0, 1]) as f:
            assert np.array_equal(stamps[0, 1], f.timestamps)
        counters = series.framestamps
        assert counters.shape == (2, 2, 3)
        assert counters[1, 0].tolist() == [6, 8, 9]
        assert counters[1, 1].tolist() == [9, 10, 11]
        meta = series.metadata
        assert meta.dropped_frames == ((), (), (0,), ())
        assert meta.dropped_frame_count == (0, 0, 1, 0)
        assert meta.total_dropped_frames == 1
        assert meta.first.path == str(paths[0, 0])
        assert meta.files == tuple(str(p) for p in paths.ravel())
        assert meta.axes == "TZ" and meta.grid_shape == (2, 2)
        assert meta.first_timestamp < meta.last_timestamp
        plain = json.loads(json.dumps(meta.to_dict()))
        assert plain["dropped_frames"] == [[], [], [0], []]
        assert plain["first"]["shape"] == [3, 4, 4]
        with pytest.raises(AttributeError):
            meta.axes = "Z"


def test_pickle_holds_paths_and_checks_identity(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        assert series.metadata  # cached values are not pickled
        blob = pickle.dumps(series)
    assert len(blob) < 4000
    clone = pickle.loads(blob)
    assert clone.shape == truth.shape and clone.axes == "TZ"
    assert np.array_equal(clone[...], truth)
    fresh = pickle.loads(blob)
    write_dcimg(paths[0, 1], truth[0, 1] // 2, stored_pixels_row=4)
    os.utime(paths[0, 1], ns=(1, 1))
    with pytest.raises(DCIMGError, match="changed since the series was made"):
        fresh[0, 1]


def test_threads_share_a_small_cache(grid):
    folder, truth, _ = grid
    with DCIMGSeries(folder, cache_size=2) as series:
        errors = []

        def work(seed):
            rng = np.random.default_rng(seed)
            for _ in range(40):
                t, z = rng.integers(2), rng.integers(3)
                try:
                    assert np.array_equal(series[t, z], truth[t, z])
                except Exception as exc:  # pragma: no cover - reported below
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert series._members.open_count() <= 2
    with pytest.raises(ValueError):
        DCIMGSeries(folder, cache_size=0)


def test_eviction_never_closes_a_file_in_use(grid):
    folder, truth, _ = grid
    with DCIMGSeries(folder, cache_size=1) as series:
        held = series.file((0, 0))
        assert np.array_equal(series[1], truth[1])  # evicts (0, 0)
        assert series._members.open_count() == 1
        assert not held.closed
        assert np.array_equal(held[...], truth[0, 0])


def test_reads_over_many_files_use_threads(grid, monkeypatch):
    import dcimg.series

    folder, truth, paths = grid
    monkeypatch.setattr(dcimg.series, "_PARALLEL_BYTES", 0)
    seen = set()
    real = dcimg.series._Members.file

    def spy(self, index):
        seen.add(threading.get_ident())
        # Each open takes a while, as on a busy disk: a pool of threads then
        # spreads the files whatever the machine's load (one busy thread
        # could otherwise take every job before the others start).
        time.sleep(0.02)
        return real(self, index)

    monkeypatch.setattr(dcimg.series._Members, "file", spy)
    with DCIMGSeries(folder, cache_size=2) as series:
        assert np.array_equal(series[...], truth)
        assert np.array_equal(series[:, ::-1, 1, 3:], truth[:, ::-1, 1, 3:])
        assert len(seen) > 1 and threading.get_ident() not in seen
        # An error in a reading thread reaches the caller.
        write_dcimg(paths[1, 1], truth[1, 1], stored_pixels_row=4)
        os.utime(paths[1, 1], ns=(1, 1))
        with pytest.raises(DCIMGError, match="changed"):
            series[...]


# ----------------------------------------------------------------------
# imread


def test_imread_folder_glob_list_and_single_path(grid):
    folder, truth, paths = grid
    assert np.array_equal(dcimg.imread(folder), truth)
    assert np.array_equal(dcimg.imread(str(folder / "cell_001_*.dcimg")), truth[1])
    assert np.array_equal(dcimg.imread(list(paths[0])), truth[0])
    assert np.array_equal(
        dcimg.imread(folder, (1, slice(None, None, -1))), truth[1, ::-1]
    )
    assert dcimg.imread(folder, dtype=np.float32).dtype == np.float32
    # A single path keeps today's behaviour.
    with DCIMGFile(paths[0, 0]) as f:
        assert np.array_equal(dcimg.imread(paths[0, 0]), f[...])
    with pytest.raises(ValueError, match="one file"):
        dcimg.imread(paths[0, 0], concat=True)
    assert dcimg.imread(folder, concat=True).shape == (12, 12, 10)


# ----------------------------------------------------------------------
# Dask and xarray


def test_dask_array_whole_files_per_chunk(grid):
    da = pytest.importorskip("dask.array")
    folder, truth, _ = grid
    with DCIMGSeries(folder) as series:
        arr = series.as_dask_array()
        two = series.as_dask_array(chunks=2, dtype=np.float32)
        joined = DCIMGSeries(folder, concat=True).as_dask_array(chunks=4)
    assert arr.chunks == ((1, 1), (3,), (2,), (12,), (10,))
    assert two.chunks[1] == (2, 1) and two.dtype == np.float32
    assert joined.chunks[0] == (8, 4)
    # The series is closed: the graph reopens the files itself.
    assert np.array_equal(arr.compute(), truth)
    assert np.array_equal(two[1, ::-1, :, 3].compute(), truth[1, ::-1, :, 3])
    assert np.array_equal(joined.compute(), truth.reshape(12, 12, 10))
    assert arr.name == DCIMGSeries(folder).as_dask_array().name
    assert isinstance(arr, da.Array)
    with pytest.raises(ValueError):
        DCIMGSeries(folder).as_dask_array(chunks=0)
    with pytest.raises(TypeError):
        DCIMGSeries(folder).as_dask_array(chunks=True)


def test_dask_graph_is_small(tmp_path):
    pytest.importorskip("dask.array")
    write_series(tmp_path, np.zeros((300, 1, 2, 2), np.uint16), digits=4)
    with DCIMGSeries(tmp_path) as series:
        arr = series.as_dask_array(chunks=1)
    assert arr.numblocks == (300, 1, 1, 1)
    graph = dict(arr.__dask_graph__())
    source = len(pickle.dumps(series.files))
    assert source > 300 * 50
    # The paths are in the graph once (one source), not once per task.
    assert len(pickle.dumps(graph)) < source + 300 * 400


def test_local_cluster_with_processes(grid):
    pytest.importorskip("dask.array")
    folder, truth, _ = grid
    with DCIMGSeries(folder) as series:
        arr = series.as_dask_array(chunks=1, dtype=np.float64)
    with local_cluster() as client:
        assert np.array_equal(client.compute(arr).result(), truth)
        assert client.compute(arr.sum()).result() == truth.sum()


def test_to_xarray(grid):
    pytest.importorskip("xarray")
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        lazy = series.to_xarray()
        eager = series.to_xarray(dask=False, dtype=np.float32)
        stamps = series.timestamps
    assert lazy.dims == ("T", "Z", "t", "y", "x")
    assert lazy.name == "cell_000_000"
    assert np.array_equal(lazy.values, truth)
    assert eager.dtype == np.float32
    assert np.array_equal(lazy.coords["timestamp"].values, stamps)
    assert lazy.coords["Z"].values.tolist() == [0, 1, 2]
    assert np.array_equal(lazy.sel(T=1, Z=2).values, truth[1, 2])
    with DCIMGSeries(folder, concat=True) as joined:
        frames = joined.to_xarray()
    assert frames.dims == ("t", "y", "x")
    assert frames.coords["t"].dtype == "datetime64[us]"
    with pytest.raises(ValueError):
        DCIMGSeries(folder).to_xarray(dask=False, chunks=1)


# ----------------------------------------------------------------------
# Bounded resources


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_many_files_under_a_low_descriptor_limit(tmp_path):
    # A subprocess, so that the limit and any crash stay there.
    script = f"""
        import os, resource
        import numpy as np
        from dcimg import DCIMGSeries
        from dcimg.testing import write_series

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        folder = {str(tmp_path)!r}
        truth = np.arange(600 * 2 * 3 * 4, dtype=np.uint16).reshape(600, 2, 3, 4)
        write_series(folder, truth, digits=3)

        def mapped():
            with open("/proc/self/maps") as maps:
                return sum(folder in line for line in maps)

        series = DCIMGSeries(folder)
        assert mapped() <= series.cache_size, mapped()
        assert np.array_equal(np.asarray(series), truth)
        assert np.array_equal(series[::-7, 1], truth[::-7, 1])
        assert series.metadata.total_dropped_frames == 0
        assert series.timestamps.shape == (600, 2)
        assert np.array_equal(series.as_dask_array(chunks=5).compute(), truth)
        assert mapped() <= 2 * series.cache_size, mapped()
        # A mapping may hold a descriptor of its own: bounded by the cache.
        assert len(os.listdir("/proc/self/fd")) <= series.cache_size + 16
        print("ok", mapped())
        """
    result = run_python(script, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


# ----------------------------------------------------------------------
# write_series


def test_write_series_names_and_shapes(tmp_path):
    stack = example_stack(nframes=6, height=4, width=5)
    paths = write_series(tmp_path, stack.reshape(2, 3, 4, 5), axes="TZ", name="a")
    assert paths.shape == (2, 3)
    assert paths[1, 2].name == "a_001_002.dcimg"
    with DCIMGFile(paths[1, 2]) as f:
        assert f.shape == (1, 4, 5)
        assert np.array_equal(f[0], stack[5])
    paths = write_series(tmp_path, stack[None], name="b", separator="-", digits=5)
    assert paths.shape == (1,) and paths[0].name == "b-00000.dcimg"
    for kwargs in (
        dict(separator="."),
        dict(digits=0),
        dict(start=-1),
        dict(axes="TZY"),
    ):
        with pytest.raises(ValueError):
            write_series(tmp_path, stack.reshape(2, 3, 4, 5), **kwargs)
    with pytest.raises(ValueError):
        write_series(tmp_path, stack[0])


def test_docs_and_readme_mention_the_series():
    readme = (ROOT / "README.md").read_text()
    assert "## Series" in readme and "dcimg/series.py" in readme
    assert "series" in (ROOT / "docs" / "index.rst").read_text()


def test_bench_series_tiny_runs(tmp_path):
    pytest.importorskip("dask.array")
    result, out = run_tiny_bench("bench_series.py", tmp_path, timeout=300)
    rows = json.loads(out.read_text())["rows"]
    assert [r["result"] for r in rows].count("info") == 3
    assert "np.asarray(series)" in result.stdout
    # Nothing is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


@pytest.mark.parametrize("version", [0x7, 0x1000000, 0x2000000])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_quick_probe_agrees_with_the_parser(tmp_path, version, dtype):
    from dcimg import _format

    truth = np.arange(3 * 10 * 12, dtype=dtype).reshape(3, 10, 12)
    path = write_dcimg(tmp_path / "a.dcimg", truth, version=version)
    version_, frames, height, width, depth, size, mtime_ns = _format.probe(str(path))
    with DCIMGFile(path) as f:
        assert (frames, height, width) == f.shape
        assert depth == f.byte_depth and version_ == f.metadata.format_version
        assert (size, mtime_ns) == f.identity[1:]
    # A file cut short: the probe vouches for it only where the full parser
    # finds every frame too; otherwise it leaves the file to the parser.
    data = path.read_bytes()
    cut = tmp_path / "cut.dcimg"
    vouched = 0
    for length in range(0, len(data), 7):
        cut.write_bytes(data[:length])
        quick = _format.probe(str(cut))
        if quick is not None:
            vouched += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with DCIMGFile(cut) as f:
                    assert quick[1:4] == f.shape, length
    assert vouched < len(range(0, len(data), 7)) // 2
    other = tmp_path / "other.dcimg"
    other.write_bytes(b"not a DCIMG file at all" * 10)
    assert _format.probe(str(other)) is None
    with pytest.raises(OSError):
        _format.probe(str(tmp_path / "missing.dcimg"))


# ----------------------------------------------------------------------
# Odd inputs (found by an adversarial campaign)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_dotdot_after_a_linked_folder_means_what_the_system_says(tmp_path):
    # work/link -> data/run/sub: "link/.." is data/run, not work.
    real = tmp_path / "data" / "run"
    (real / "sub").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(real / "sub")
    truth = random_stack((2, 1, 3, 4), seed=1)
    write_series(real, truth, name="a")
    write_series(work, truth + 1, name="a")  # what text-only '..' would read
    link = work / "link"
    for files in (
        str(link / ".."),
        str(link / ".." / "a_*.dcimg"),
        [str(link / ".." / "a_000.dcimg"), str(link / ".." / "a_001.dcimg")],
        # A doubled separator after the "..": still the same files.
        [str(link / ".." / "a_000.dcimg"), str(link / "..") + "//a_001.dcimg"],
    ):
        with DCIMGSeries(files) as series:
            np.testing.assert_array_equal(series[...], truth)


def test_a_line_break_in_a_name(tmp_path):
    truth = random_stack((3, 1, 2, 2))
    for i in range(3):
        write_dcimg(tmp_path / f"scan\nA_{i}.dcimg", truth[i])
    with DCIMGSeries(tmp_path) as series:
        assert series.shape == truth.shape
        np.testing.assert_array_equal(series[...], truth)


def test_hidden_files_in_a_folder_are_skipped_like_the_glob(tmp_path):
    truth = random_stack((3, 1, 2, 2))
    write_series(tmp_path, truth, name="cell")
    for i in range(3):  # what macOS leaves on exFAT and SMB drives
        (tmp_path / f"._cell_{i:03d}.dcimg").write_bytes(b"\0\5\26\7" * 20)
    for files in (tmp_path, str(tmp_path / "*.dcimg")):
        with DCIMGSeries(files) as series:
            np.testing.assert_array_equal(series[...], truth)
    # Named explicitly, a hidden file is a member like any other.
    hidden = tmp_path / ".dark_000.dcimg"
    write_dcimg(hidden, truth[0])
    with DCIMGSeries([hidden]) as series:
        np.testing.assert_array_equal(series[...], truth[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_member_is_refused_at_once(tmp_path):
    write_series(tmp_path, random_stack((3, 1, 2, 2)), name="a")
    fifo = tmp_path / "a_003.dcimg"
    os.mkfifo(fifo)
    # In a child: a blocking open() of a FIFO would wait for a writer forever.
    code = f"""
        import dcimg
        from dcimg import DCIMGFile, DCIMGSeries
        for attempt in (
            lambda: DCIMGSeries({str(tmp_path)!r}),
            lambda: DCIMGFile({str(fifo)!r}),
            lambda: DCIMGFile({str(fifo)!r}, mmap=False),
        ):
            try:
                attempt()
            except dcimg.DCIMGFormatError as exc:
                assert "a_003.dcimg: a FIFO" in str(exc), exc
                print(type(exc).__name__)
            else:
                raise SystemExit("a FIFO was accepted")
        """
    # cwd: not the checkout, whose dcimg/ folder is not the installed package.
    result = run_python(code, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def test_a_null_byte_in_a_path(tmp_path):
    from dcimg import _format

    paths = write_series(tmp_path, random_stack((2, 1, 2, 2)), name="a")
    good = str(paths[0])
    for listed in ([good + "\0junk"], [good + "\0junk", good], [good, "x\0"]):
        with pytest.raises(ValueError, match="null byte"):
            _format.probe_many(listed)
    # A series refuses the name first (it does not parse), naming it.
    for listed in ([good + "\0junk", good], [good, good[:-7] + "1\0.dcimg"]):
        with pytest.raises(DCIMGError, match=re.escape("\\x00")):
            DCIMGSeries(listed)
    with pytest.raises(ValueError, match="null byte"):
        DCIMGSeries([good + "\0junk"])  # one file: no name to parse


def test_a_bad_pattern_is_a_value_error(tmp_path):
    write_series(tmp_path, random_stack((2, 1, 2, 2)), name="img")
    with pytest.raises(ValueError, match="not a regular expression"):
        DCIMGSeries(tmp_path, pattern=r"img_(\d+")


def test_a_grid_of_paths_opens_again(tmp_path):
    truth = random_stack((2, 3, 1, 2, 2))
    paths = write_series(tmp_path, truth, name="cell")
    with DCIMGSeries(paths) as first, DCIMGSeries(first.files) as second:
        assert first.shape == second.shape == truth.shape
        np.testing.assert_array_equal(second[...], truth)
