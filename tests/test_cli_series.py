"""The command line on series (folders, globs) and on URLs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dcimg
from dcimg.cli import main
from dcimg.testing import write_dcimg, write_example, write_series


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4000, (3, 4, 1, 16, 20)).astype(np.uint16)
    folder = tmp_path / "run"
    write_series(folder, truth, name="bead-bot4-560", separator="-", axes="TZ")
    return folder, truth


def test_info_describes_a_series(series, capsys):
    folder, truth = series
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "12 files: grid 3 T x 4 Z" in out
    assert "3 x 4 x 1 x 16 x 20 (uint16)" in out
    assert "dropped frames none" in out
    assert main(["info", "--json", str(folder / "*.dcimg")]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["grid_shape"] == [3, 4] and report["axes"] == "TZ"


def test_info_names_the_file_that_disagrees(series, capsys):
    folder, _ = series
    write_dcimg(
        folder / "bead-bot4-560-002-003.dcimg", np.zeros((1, 16, 21), np.uint16)
    )
    assert main(["info", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "bead-bot4-560-002-003.dcimg" in err and "width" in err


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
def test_convert_a_series_to_one_image(series, tmp_path, suffix):
    folder, truth = series
    out = tmp_path / f"out{suffix}"
    assert main(["convert", "--quiet", str(folder), str(out)]) == 0
    if suffix == ".ome.tif":
        tifffile = pytest.importorskip("tifffile")
        with tifffile.TiffFile(out) as tif:
            assert tif.series[0].axes == "TZYX"
            got = tif.series[0].asarray()
    else:
        zarr = pytest.importorskip("zarr")
        group = zarr.open(str(out), mode="r")
        axes = [a["name"] for a in group.attrs["multiscales"][0]["axes"]]
        assert axes == ["t", "c", "z", "y", "x"]
        got = group["0"][:]
    np.testing.assert_array_equal(np.squeeze(got), np.squeeze(truth))
    np.testing.assert_array_equal(dcimg.imread(folder), truth)


def test_info_reads_a_url(tmp_path, capsys):
    fsspec = pytest.importorskip("fsspec")
    path = write_example(tmp_path / "x.dcimg")
    url = "memory://dcimg-cli/x.dcimg"
    with fsspec.open(url, "wb") as out:
        out.write(path.read_bytes())
    assert main(["info", url]) == 0
    out = capsys.readouterr().out
    assert "20 frames x 64 x 80" in out
    assert main(["info", "memory://dcimg-cli/missing.dcimg"]) == 1
    assert "missing.dcimg" in capsys.readouterr().err
