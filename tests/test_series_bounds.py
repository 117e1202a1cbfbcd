"""Trust in a series: bounded work from names, member identity, member errors.

File names alone decide a series' grid, so they must never make the reader
allocate or loop in proportion to anything but the names themselves: a folder
of a few empty files whose counters all differ describes a grid of 10**10
places or more.  A file put in a member's place (``os.replace``) with the
same size and time stamp must be noticed.  Errors about a member say which.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import pickle
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcimg import DCIMGSeries, _format
from dcimg import series as series_module
from dcimg.errors import DCIMGChangedError, DCIMGError, DCIMGFormatError
from dcimg.testing import example_stack, write_dcimg, write_series

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))
FOLDER = os.path.join(os.sep + "data", "run")


def _diagonal_names(files: int, counters: int) -> list[str]:
    """``a_i_i_..._i.dcimg`` for i < files: every counter takes ``files`` values,
    so the names describe a grid of ``files ** counters`` places."""
    return [
        os.path.join(FOLDER, "a" + f"_{i}" * counters + ".dcimg") for i in range(files)
    ]


def _peak_bytes(function) -> tuple[int, BaseException | None]:
    """Peak of memory allocated while ``function`` runs (NumPy's included)."""
    tracemalloc.start()
    try:
        function()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        error = exc
    else:
        error = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


# ----------------------------------------------------------------------
# A grid that cannot be complete is refused from the files alone


@pytest.mark.parametrize(
    ("files", "counters"),
    [
        (12, 5),  # 248,832 places: the old check allocated a few MB
        (45, 5),  # 184,528,125 places: 1.7 GB and 4.5 s before
        (100, 5),  # 10**10 places: numpy.zeros(10**10) before
        (30, 20),  # 30**20 places, beyond int64 and NumPy's dimensions
    ],
)
def test_names_alone_never_allocate_the_grid(files, counters):
    paths = _diagonal_names(files, counters)
    peak, error = _peak_bytes(lambda: series_module._grid(paths, False, None, FOLDER))
    assert isinstance(error, DCIMGError), repr(error)
    message = str(error)
    places = files**counters
    assert f"{places - files} of {places} files" in message
    assert f"in {FOLDER!r}" in message  # the folder
    # The first missing files, in C order of the grid, then a count.
    assert "'a_0_0_0_0_1.dcimg'" in message or counters != 5
    listed = message.split("are missing: ", 1)[1]
    assert listed.endswith(f" and {places - files - 10} more")
    assert listed.count(".dcimg'") == 10
    # Nothing in proportion to the grid: a few kilobytes per file at most.
    assert peak < 64 * 1024 + 4096 * files, f"peak {peak} bytes"


def test_a_folder_of_empty_files_is_refused_before_any_is_read(tmp_path):
    # 45 empty files whose names differ in every counter.
    for path in _diagonal_names(45, 5):
        (tmp_path / os.path.basename(path)).write_bytes(b"")
    with pytest.raises(DCIMGError, match=r"has gaps: 184528080 of 184528125") as info:
        DCIMGSeries(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, ValueError)


def _reference_missing(rows: list[tuple[int, ...]], pad: int) -> list[str]:
    """The first missing names, by enumerating every place of the grid."""
    columns = list(zip(*rows, strict=True))
    varying = [j for j, c in enumerate(columns) if len(set(c)) > 1]
    axes = [sorted(set(columns[j])) for j in varying]
    taken = {tuple(row[j] for j in varying) for row in rows}
    missing = []
    for place in itertools.product(*axes):
        if place not in taken:
            row = list(rows[0])
            for j, value in zip(varying, place, strict=True):
                row[j] = value
            missing.append("cell" + "".join(f"_{v:0{pad}d}" for v in row) + ".dcimg")
    return missing


@st.composite
def rows_with_gaps(draw):
    counters = draw(st.integers(1, 4))
    axes = [
        sorted(draw(st.sets(st.integers(0, 30), min_size=1, max_size=4)))
        for _ in range(counters)
    ]
    places = list(itertools.product(*axes))
    kept = draw(
        st.lists(st.sampled_from(places), min_size=1, max_size=len(places), unique=True)
    )
    return draw(st.permutations(kept))


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(rows=rows_with_gaps(), pad=st.sampled_from([0, 3]), fast=st.booleans())
def test_the_missing_names_are_the_first_gaps_of_the_grid(rows, pad, fast):
    paths = [
        os.path.join(FOLDER, "cell" + "".join(f"_{v:0{pad}d}" for v in row) + ".dcimg")
        for row in rows
    ]
    expected = _reference_missing(rows, pad)
    original = series_module._parse_alike
    if not fast:
        series_module._parse_alike = lambda paths, first: None
    try:
        if not expected:
            assert series_module._grid(paths, False, None, FOLDER).paths
            return
        with pytest.raises(DCIMGError, match="has gaps") as info:
            series_module._grid(paths, False, None, FOLDER)
    finally:
        series_module._parse_alike = original
    listed = info.value.args[0].split("are missing: ", 1)[1]
    shown = ", ".join(repr(m) for m in expected[:10])
    if len(expected) > 10:
        shown += f" and {len(expected) - 10} more"
    assert listed == shown


def test_two_files_in_one_place_are_named_before_the_gaps():
    # Three files, a grid of 2 x 2 places: two share one place, one is empty.
    paths = [os.path.join(FOLDER, n) for n in ("a_0_0.dcimg", "a_1_1.dcimg")]
    paths.append(os.path.join(FOLDER, "a_01_01.dcimg"))
    with pytest.raises(DCIMGError, match="same counters") as info:
        series_module._grid(paths, False, None, FOLDER)
    assert "a_1_1.dcimg" in str(info.value) and "a_01_01.dcimg" in str(info.value)


def test_a_pattern_with_many_groups_is_bounded_too():
    paths = _diagonal_names(100, 6)
    pattern = series_module.re.compile(r"a" + r"_(\d+)" * 6 + r"\.dcimg")
    peak, error = _peak_bytes(
        lambda: series_module._grid(paths, False, pattern, FOLDER)
    )
    assert isinstance(error, DCIMGError) and "has gaps" in str(error)
    assert peak < 1 << 20


# ----------------------------------------------------------------------
# Names are matched in time linear in their length


# Names that make a backtracking pattern try every start (or every split).
_LONG_NAMES = textwrap.dedent(
    """
    n = 40_000
    names = [
        "_1" * n + "x.dcimg",
        "-1" * n + ".dcimgx",
        "a" + "_1" * n + ".dcimg",
        "1" * (2 * n) + ".dcimg",
        "_" * (2 * n) + ".dcimg",
        "_1" * n + "_.dcimg",
        "x" * (2 * n) + ".dcimg",
    ]
    """
)


def _run_within(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter; fail if it takes over ``timeout``."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tempfile.gettempdir(),  # not the source tree (no compiled modules)
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_80000_character_names_are_parsed_promptly():
    # Quadratic matching took 136 s for one of these; linear takes
    # milliseconds.  The timeout leaves room for a busy machine.
    code = _LONG_NAMES + textwrap.dedent(
        """
        import os
        from dcimg import series
        for name in names:
            series._parse_name(name, None)
        # The one-pass parse of many names, and a series given such names.
        paths = [os.path.join("/data", n) for n in names]
        try:
            series._grid(paths[:1] * 2 + paths, False, None, "/data")
        except ValueError:
            pass
        for name in names:
            try:
                series.DCIMGSeries([name])
            except (OSError, ValueError):
                pass
        print("done")
        """
    )
    assert _run_within(code).strip() == "done"


def test_the_default_naming_reads_long_names_right():
    # What the quadratic pattern found, the linear one finds: the longest
    # run of counters before the extension.
    name = "run_x" + "_7" * 5000 + ".DCIMG"
    parsed = series_module._parse_name(os.path.join(FOLDER, name), None)
    assert parsed.texts == ("7",) * 5000
    assert parsed.template == "run_x" + "_{}" * 5000 + ".DCIMG"
    assert series_module._parse_name("a1_2x.dcimg", None) is None
    assert series_module._parse_name("a1_2.dcimgx", None) is None
    assert series_module._parse_name("a1__2.dcimg", None).template == "a1__{}.dcimg"


# ----------------------------------------------------------------------
# A member's identity: size, time stamp, device and inode


def _replace_keeping_size_and_time(path: str, pixels: np.ndarray) -> None:
    """Put another file at ``path``: same size and mtime, other pixels."""
    info = os.stat(path)
    other = pathlib.Path(path).with_suffix(".new")
    write_dcimg(other, pixels, stored_pixels_row=4)
    assert os.path.getsize(other) == info.st_size
    os.replace(other, path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    assert after.st_ino != info.st_ino


@pytest.fixture
def grid(tmp_path):
    truth = example_stack(2 * 3 * 2, 12, 10, seed=3).reshape(2, 3, 2, 12, 10)
    paths = write_series(tmp_path, truth, name="cell", stored_pixels_row=4)
    return tmp_path, truth, paths


def test_a_member_replaced_with_the_same_size_and_time_is_detected(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder, cache_size=1) as series:
        assert np.array_equal(series[0, 0], truth[0, 0])  # opens (0, 0) only
        member = str(paths[1, 2])
        _replace_keeping_size_and_time(member, truth[1, 2] // 2 + 1)
        with pytest.raises(DCIMGChangedError, match="put in its place") as info:
            series[1, 2]
        assert info.value.path == member
        assert repr(member) in str(info.value)
        # The files that did not change still read, and right.
        assert np.array_equal(series[0, 1], truth[0, 1])


def test_a_member_open_in_the_cache_is_detected_once_reopened(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder, cache_size=1) as series:
        assert np.array_equal(series[1, 2], truth[1, 2])  # open, mapped
        _replace_keeping_size_and_time(paths[1, 2], truth[1, 2] // 2 + 1)
        # The mapped file is the one the series checked: its pixels.
        assert np.array_equal(series[1, 2], truth[1, 2])
        series[0, 0]  # evicts (1, 2)
        with pytest.raises(DCIMGChangedError, match="changed since the series"):
            series[1, 2]


def test_a_pickled_series_checks_the_inode(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        blob = pickle.dumps(series)
    _replace_keeping_size_and_time(paths[0, 1], truth[0, 1] // 2 + 1)
    clone = pickle.loads(blob)
    with pytest.raises(DCIMGChangedError) as info:
        clone[0, 1]
    assert info.value.path == str(paths[0, 1])


def test_another_machine_compares_size_and_time_only(grid):
    # A Dask worker elsewhere numbers the same network files differently:
    # device and inode mean something only where they were recorded.
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        clone = pickle.loads(pickle.dumps(series))
    clone._members.identities = tuple(
        (size, mtime, device + 1, inode + 1)
        for size, mtime, device, inode in clone._members.identities
    )
    with pytest.raises(DCIMGChangedError, match="device"):
        clone[0, 0]
    clone._members.host = "another machine"
    assert np.array_equal(clone[...], truth)


def test_identities_hold_device_and_inode(grid):
    folder, _, paths = grid
    with DCIMGSeries(folder) as series:
        for path, identity in zip(
            paths.ravel(), series._members.identities, strict=True
        ):
            info = os.stat(path)
            assert identity == (
                info.st_size,
                info.st_mtime_ns,
                info.st_dev,
                info.st_ino,
            )
    table = _format.probe_many([str(p) for p in paths.ravel()])
    assert table.shape[1] == len(_format.PROBE_COLUMNS) == 9
    info = os.stat(paths[0, 0])
    assert table[0, -2:].tolist() == [info.st_dev, info.st_ino]
    assert len(_format.probe(str(paths[0, 0]))) == 7


def test_a_probe_without_inodes_is_completed_by_stat(grid, monkeypatch):
    # Windows' C library has no inode: the probe says -1 and the series asks
    # os.stat, so that the files opened later (which have one) compare equal.
    folder, truth, paths = grid
    real = _format.probe_many

    def no_inodes(names):
        table = real(names)
        table[:, -2:] = -1
        return table

    monkeypatch.setattr(_format, "probe_many", no_inodes)
    with DCIMGSeries(folder, cache_size=1) as series:
        info = os.stat(paths[1, 1])
        assert series._members.identities[4][2:] == (info.st_dev, info.st_ino)
        assert np.array_equal(series[...], truth)
        _replace_keeping_size_and_time(paths[1, 1], truth[1, 1] // 2 + 1)
        with pytest.raises(DCIMGChangedError):
            series[1, 1]


def test_the_dask_token_changes_with_the_inode(grid):
    folder, truth, paths = grid
    with DCIMGSeries(folder) as series:
        before = series._members.token
    _replace_keeping_size_and_time(paths[0, 0], truth[0, 0] // 2 + 1)
    with DCIMGSeries(folder) as series:
        assert series._members.token != before


# ----------------------------------------------------------------------
# A member's error keeps the member's path


def test_a_corrupt_member_error_carries_its_path(grid):
    folder, _, paths = grid
    bad = paths[1, 1]
    pathlib.Path(bad).write_bytes(b"not a dcimg file at all" * 10)
    with pytest.raises(DCIMGFormatError) as info:
        DCIMGSeries(folder)
    assert info.value.path == str(bad)
    assert str(bad) in str(info.value)
