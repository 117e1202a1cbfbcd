"""Local paths that merely look like URLs are read as local files.

``::`` joins the parts of a chained fsspec URL (``simplecache::s3://...``),
but a folder may be called ``a::b`` too; only a ``protocol://`` start makes
a URL (one rule, :func:`dcimg._urls.is_url`).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import dcimg
from dcimg.testing import write_series


@pytest.fixture
def odd_folder(tmp_path):
    folder = tmp_path / "a::b"
    truth = np.arange(3 * 2 * 8 * 8, dtype=np.uint16).reshape(3, 2, 8, 8)
    write_series(folder, truth, name="c")
    return folder, truth


@pytest.mark.parametrize("spelling", ["{}", "{}/", "{}/*.dcimg", "list"])
def test_a_series_in_a_folder_named_with_double_colons_opens(odd_folder, spelling):
    folder, truth = odd_folder
    if spelling == "list":
        source = sorted(str(p) for p in folder.iterdir())
    else:
        source = spelling.format(folder)
    with dcimg.DCIMGSeries(source) as series:
        np.testing.assert_array_equal(np.asarray(series), truth)
    np.testing.assert_array_equal(dcimg.imread(source), truth)


def test_its_files_open_alone_and_in_the_command_line(odd_folder):
    folder, truth = odd_folder
    with dcimg.DCIMGFile(folder / "c_001.dcimg") as f:
        np.testing.assert_array_equal(f[:], truth[1])
    shown = subprocess.run(
        [sys.executable, "-m", "dcimg", "info", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder.parent,
    )
    assert shown.returncode == 0, shown.stderr
    assert "3 files" in shown.stdout or "(3, 2, 8, 8)" in shown.stdout, shown.stdout
