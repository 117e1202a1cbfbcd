"""Tests of the fast paths under DCIMGSeries: names, grid and header probe.

Each fast path is checked against a plain reference written here: a regular
expression per name, a sort of counter tuples, one probe per file.
"""

from __future__ import annotations

import math
import os
import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcimg import _format, _names
from dcimg import series as series_module
from dcimg.errors import DCIMGError, DCIMGFormatError
from dcimg.testing import write_dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))

# Characters of names: digits and separators matter most; others check that
# wide characters (2- and 4-byte str storage) compare like ASCII ones.
_CHARS = "0123456789_-.aZé€😀/\\\n"
_NON_DIGITS = "_-.aZé€😀/\\\n"


def reference_split(paths, pieces, separators):
    """split_counters() written as one regular expression per name."""
    counter = f"([0-9]{{1,{_names.COUNTER_DIGITS}}})"
    regex = re.compile(counter.join(re.escape(p) for p in pieces), re.DOTALL)
    matched, values = [], []
    for path in paths:
        cut = max(path.rfind(s) for s in separators)
        match = regex.fullmatch(path[cut + 1 :])
        matched.append(match is not None)
        values.append(
            [int(g) for g in match.groups()] if match else [0] * (len(pieces) - 1)
        )
    return matched, values


@st.composite
def templates_and_paths(draw):
    counters = draw(st.integers(1, 3))
    head = draw(st.text(_CHARS, max_size=4))
    after = [
        draw(st.text(_NON_DIGITS, min_size=1, max_size=1))
        + draw(st.text(_CHARS, max_size=3))
        for _ in range(counters)
    ]
    pieces = (head, *after)
    separators = draw(st.sampled_from(["/", "/\\"]))

    def member():
        digits = [draw(st.text("0123456789", min_size=1, max_size=20)) for _ in after]
        name = head + "".join(d + p for d, p in zip(digits, after, strict=True))
        folder = draw(st.sampled_from(["", "/data/run/", "é/", "a\\b\\", "x_1/"]))
        return folder + name

    def mutant():
        name = list(member())
        if name:
            at = draw(st.integers(0, len(name) - 1))
            if draw(st.booleans()):
                del name[at]
            else:
                name.insert(at, draw(st.sampled_from(_CHARS)))
        return "".join(name)

    kinds = draw(st.lists(st.sampled_from("mmmxr"), min_size=1, max_size=12))
    paths = [
        member() if k == "m" else mutant() if k == "x" else draw(st.text(_CHARS))
        for k in kinds
    ]
    return paths, pieces, separators


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(case=templates_and_paths())
def test_split_counters_equals_a_regex_per_name(case):
    paths, pieces, separators = case
    matched, values = _names.split_counters(paths, pieces, separators)
    expected_matched, expected_values = reference_split(paths, pieces, separators)
    assert matched.dtype == np.bool_ and values.dtype == np.int64
    assert matched.tolist() == expected_matched
    assert values.shape == (len(pieces) - 1, len(paths))
    assert values.T.tolist() == expected_values


def test_split_counters_limits():
    paths = ["/d/a_" + "9" * 18 + ".dcimg", "/d/a_" + "1" * 19 + ".dcimg"]
    matched, values = _names.split_counters(paths, ("a_", ".dcimg"), "/")
    assert matched.tolist() == [True, False]
    assert values[0, 0] == 10**18 - 1
    with pytest.raises(ValueError, match="two pieces"):
        _names.split_counters(paths, ("a_",), "/")
    with pytest.raises(ValueError, match="non-digit"):
        _names.split_counters(paths, ("a_", "1.dcimg"), "/")
    with pytest.raises(ValueError, match="non-digit"):
        _names.split_counters(paths, ("a_", "", ".dcimg"), "/")
    with pytest.raises(ValueError, match="separators"):
        _names.split_counters(paths, ("a_", ".dcimg"), "")
    with pytest.raises(TypeError, match="bytes"):
        _names.split_counters([b"a_1.dcimg"], ("a_", ".dcimg"), "/")
    with pytest.raises(TypeError, match="NoneType"):
        _names.split_counters(["a_1.dcimg"], (None, ".dcimg"), "/")
    with pytest.raises(TypeError, match="NoneType"):
        _names.split_counters([None], ("a_", ".dcimg"), "/")
    with pytest.raises(TypeError, match="NoneType"):
        _names.dcimg_names(["a.dcimg", None])


_EXTENSIONS = [".dcimg", ".DcImG", ".DCIMG", ".dcımg", ".DCİMG", "", ".dcim", "dcimg"]


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(
    names=st.lists(
        st.builds(
            str.__add__,
            st.text("aé.dcimgDCIMGİı😀", max_size=6),
            st.sampled_from(_EXTENSIONS),
        ),
        max_size=10,
    ),
    folder=st.sampled_from(["", "/data/", "é/"]),
)
def test_dcimg_names_keeps_ascii_case_insensitive_extensions(names, folder):
    # bytes.lower() folds ASCII letters only, like the extension check.
    expected = [folder + n for n in names if n[-6:].encode().lower() == b".dcimg"]
    assert _names.dcimg_names(names, folder) == expected


# ----------------------------------------------------------------------
# The grid of counters


def reference_grid(rows):
    """Positions of files in their grid, by sorting their counter tuples."""
    columns = list(zip(*rows, strict=True))
    varying = [j for j, c in enumerate(columns) if len(set(c)) > 1]
    keys = [tuple(row[j] for j in varying) for row in rows]
    if len(set(keys)) != len(keys):
        return "same counters"
    axes = [sorted(set(columns[j])) for j in varying]
    if math.prod(len(a) for a in axes) != len(rows):
        return "has gaps"
    order = sorted(range(len(rows)), key=keys.__getitem__)
    return order, tuple(len(a) for a in axes), axes


@st.composite
def counter_rows(draw):
    counters = draw(st.integers(1, 3))
    kinds = [
        draw(st.sampled_from(["dense", "steps", "huge", "constant"]))
        for _ in range(counters)
    ]
    sizes = [1 if k == "constant" else draw(st.integers(1, 4)) for k in kinds]

    def values(kind, size):
        start = draw(st.integers(0, 50))
        if kind == "dense":
            return [start + i for i in range(size)]
        if kind == "steps":
            step = draw(st.integers(2, 5))
            return [start + i * step for i in range(size)]
        if kind == "huge":  # spread too wide for a table of values present
            return sorted(
                draw(st.sets(st.integers(0, 10**18 - 1), min_size=size, max_size=size))
            )
        return [start]

    axes = [values(k, n) for k, n in zip(kinds, sizes, strict=True)]
    rows = [
        list(r)
        for r in np.array(np.meshgrid(*axes, indexing="ij"))
        .reshape(counters, -1)
        .T.tolist()
    ]
    # Break the grid now and then: drop a file (a gap), repeat one, or both
    # (as many files as places, two in one of them).
    change = draw(st.sampled_from(["none", "none", "drop", "repeat", "both"]))
    if change in ("repeat", "both"):
        rows.append(list(rows[draw(st.integers(0, len(rows) - 1))]))
    if change in ("drop", "both") and len(rows) > 1:
        del rows[draw(st.integers(0, len(rows) - 2))]
    return draw(st.permutations(rows))


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(rows=counter_rows(), pad=st.sampled_from([0, 3]), fast=st.booleans())
def test_grid_equals_sorting_counter_tuples(rows, pad, fast):
    # Repeated counters are written with another padding now and then
    # ("_5", "_005"), as two files of the same counters would be.
    paths = [
        "/data/run/cell" + "".join(f"_{v:0{pad + (i % 2)}d}" for v in row) + ".dcimg"
        for i, row in enumerate(rows)
    ]
    original = series_module._parse_alike
    if not fast:  # the name-by-name parse must give the same grid
        series_module._parse_alike = lambda paths, first: None
    try:
        expected = reference_grid(rows)
        if isinstance(expected, str):
            with pytest.raises(DCIMGError, match=expected):
                series_module._grid(paths, False, None, "folder")
            return
        grid = series_module._grid(paths, False, None, "folder")
    finally:
        series_module._parse_alike = original
    order, shape, axes = expected
    assert grid.paths == tuple(paths[i] for i in order)
    assert grid.shape == shape
    assert [c.tolist() for c in grid.counters] == axes
    assert all(c.dtype == np.int64 for c in grid.counters)


# ----------------------------------------------------------------------
# The header probe: files of one folder are opened by name in it


def test_probe_by_folder_equals_probe_by_path(tmp_path, monkeypatch):
    stack = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    (tmp_path / "sub").mkdir()
    (tmp_path / "ab").mkdir()
    (tmp_path / "a").mkdir()
    paths = []
    for i, folder in enumerate(["", "", "sub", "ab", "a", ""]):
        path = tmp_path / folder / f"f_{i}.dcimg"
        write_dcimg(path, stack[:, : 1 + i % 3])
        paths.append(str(path))
    one_by_one = np.stack([_format.probe_many([p])[0] for p in paths])
    assert (one_by_one[:, 0] >= 0).all()
    same_folder = [paths[0], paths[1], paths[5]]
    # The same files written another way: a doubled separator, "." and ".."
    # (after the folder, openat() would take "/f_1.dcimg" as absolute).
    doubled = str(tmp_path) + "//f_1.dcimg"
    dotted = str(tmp_path / "sub" / ".." / "." / "f_5.dcimg")
    if sys.platform.startswith(("linux", "darwin")):
        assert _format.OPENS_BY_FOLDER
    for chosen in (
        same_folder,  # opened by name in the folder
        paths,  # names go on into sub-folders ("sub/f_2.dcimg")
        [paths[3], paths[4]],  # ".../ab/" and ".../a/": different folders
        [paths[4], paths[3]],
        [paths[2], paths[0]],  # the first one's folder does not hold the other
        [paths[0], doubled, dotted],
        [doubled, paths[0]],
    ):
        expected = one_by_one[[_same_file(paths, p) for p in chosen]]
        assert np.array_equal(_format.probe_many(chosen), expected), chosen
    # Relative names (no folder at all), and a missing one named in the error.
    monkeypatch.chdir(tmp_path)
    names = [os.path.basename(p) for p in same_folder]
    assert np.array_equal(_format.probe_many(names), one_by_one[[0, 1, 5]])
    with pytest.raises(FileNotFoundError, match="f_9"):
        _format.probe_many([*same_folder, str(tmp_path / "f_9.dcimg")])
    # A folder where a file is expected, among files of one folder.
    with pytest.raises(DCIMGFormatError, match="sub: a folder"):
        _format.probe_many([*same_folder, str(tmp_path / "sub")])


def _same_file(paths, path):
    """Index in ``paths`` of the file ``path`` names."""
    return [os.path.samefile(p, path) for p in paths].index(True)
