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
        (multiscale,) = group.attrs["ome"]["multiscales"]  # NGFF 0.5
        axes = [a["name"] for a in multiscale["axes"]]
        assert axes == ["t", "c", "z", "y", "x"]
        got = group["0"][:]
    np.testing.assert_array_equal(np.squeeze(got), np.squeeze(truth))
    np.testing.assert_array_equal(dcimg.imread(folder), truth)


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
@pytest.mark.parametrize(
    ("grid_axes", "shape", "options", "expected_axes", "frame"),
    [
        # Three counters use C, T and Z: the one-frame axis has no letter left.
        ("CTZ", (2, 3, 2, 1), [], "CTZ", 0),
        ("CTZ", (2, 2, 3, 2), ["--frames", "1"], "CTZ", 1),
        # Two counters and two frames per file: the frames take the free letter.
        ("TZ", (2, 3, 2), ["--axes", "C"], "TZC", None),
        ("TZ", (2, 3, 2), ["--frames", "1"], "TZC", 1),
        # The grid's letters named on the command line.
        ("CZ", (2, 3, 1), ["--series-axes", "cz"], "CZT", 0),
    ],
)
def test_convert_series_of_every_axis_letter(
    tmp_path, suffix, grid_axes, shape, options, expected_axes, frame
):
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4000, (*shape, 6, 7)).astype(np.uint16)
    folder = tmp_path / "run"
    write_series(folder, truth, name="cell", axes=grid_axes)
    out = tmp_path / f"out{suffix}"
    assert main(["convert", "--quiet", *options, str(folder), str(out)]) == 0
    # The expected image: every frame, or the selected one (its axis gone
    # when the grid took every letter).
    if frame is None:
        expected = truth
    elif len(expected_axes) == len(grid_axes):
        expected = truth[..., frame, :, :]
    else:
        expected = truth[..., frame : frame + 1, :, :]
    if suffix == ".ome.tif":
        tifffile = pytest.importorskip("tifffile")
        with tifffile.TiffFile(out) as tif:
            axes = tif.series[0].axes
            got = tif.series[0].asarray()
    else:
        zarr = pytest.importorskip("zarr")
        group = zarr.open(str(out), mode="r")
        (multiscale,) = group.attrs["ome"]["multiscales"]  # NGFF 0.5
        axes = "".join(a["name"] for a in multiscale["axes"])
        got = group["0"][:]
    # Compare without the axes of length 1 (tifffile drops them, NGFF
    # writes all five), in the series' order.
    axes = "".join(a for a, n in zip(axes.upper(), got.shape, strict=True) if n > 1)
    expected_axes = "".join(
        a for a, n in zip(expected_axes + "YX", expected.shape, strict=True) if n > 1
    )
    got, expected = np.squeeze(got), np.squeeze(expected)
    assert sorted(axes) == sorted(expected_axes)
    order = [axes.index(a) for a in expected_axes]
    np.testing.assert_array_equal(np.transpose(got, order), expected)


def test_series_axes_on_the_command_line(tmp_path, capsys):
    folder = tmp_path / "run"
    write_series(folder, np.zeros((2, 3, 1, 4, 5), np.uint16), axes="CZ")
    assert main(["info", "--series-axes", "CZ", str(folder)]) == 0
    assert "grid 2 C x 3 Z" in capsys.readouterr().out
    assert main(["info", "--series-axes", "C", str(folder)]) == 1
    assert "2 varying" in capsys.readouterr().err
    single = tmp_path / "one.dcimg"
    write_dcimg(single, np.zeros((2, 4, 5), np.uint16))
    out = tmp_path / "o.ome.tif"
    assert main(["convert", "-q", "--series-axes", "CZ", str(single), str(out)]) == 1
    assert "not of one file" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_t_by_z_run_of_multi_frame_files_joins_time(tmp_path, capsys, suffix):
    """The README's series example on a T x Z run of 2-frame files: each
    file's frames are time points, joined along the grid's T."""
    folder = tmp_path / "acq"
    truth = np.arange(2 * 3 * 2 * 4 * 5, dtype=np.uint16).reshape(2, 3, 2, 4, 5)
    stamps = 1_700_000_000_000_000 + np.arange(12).reshape(2, 3, 2) * 1000
    folder.mkdir()
    for t in range(2):
        for z in range(3):
            write_dcimg(
                folder / f"acq_{t:03d}_{z:03d}.dcimg",
                truth[t, z],
                timestamps_us=stamps[t, z],
            )
    out = tmp_path / f"out{suffix}"
    argv = ["convert", str(folder), str(out), "--pixel-size", "0.65", "--z-step", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    # T = 2 files x 2 frames; frame f of file (t, z) is time point 2 t + f.
    expected = truth.transpose(0, 2, 1, 3, 4).reshape(4, 3, 4, 5)
    expected_stamps = stamps.transpose(0, 2, 1).reshape(4, 3)
    if suffix == ".ome.tif":
        tifffile = pytest.importorskip("tifffile")
        ome_types = pytest.importorskip("ome_types")
        with tifffile.TiffFile(out) as tif:
            assert tif.series[0].axes == "ZTYX"
            got = tif.series[0].asarray().transpose(1, 0, 2, 3)
            ome = ome_types.from_xml(tif.ome_metadata)
        pixels = ome.images[0].pixels
        assert (pixels.size_t, pixels.size_z) == (4, 3)
        deltas = {(p.the_t, p.the_z): p.delta_t for p in pixels.planes}
        for t in range(4):
            for z in range(3):
                micro = expected_stamps[t, z] - stamps.min()
                assert deltas[t, z] == micro / 1e6
    else:
        zarr = pytest.importorskip("zarr")
        group = zarr.open_group(str(out), mode="r")
        (multiscale,) = group.attrs["ome"]["multiscales"]
        assert [a["name"] for a in multiscale["axes"]] == ["t", "z", "y", "x"]
        got = group["0"][:]
        stamps_us = np.array(group.attrs["dcimg"]["timestamps_us"]).reshape(3, 4)
        np.testing.assert_array_equal(stamps_us.T, expected_stamps)
    np.testing.assert_array_equal(got, expected)


def test_frames_of_a_t_by_z_run_as_channels(tmp_path, capsys):
    """--axes C still makes the frames channels; --frames 0 one per file."""
    folder = tmp_path / "run"
    truth = np.arange(2 * 3 * 2 * 4 * 5, dtype=np.uint16).reshape(2, 3, 2, 4, 5)
    write_series(folder, truth, axes="TZ")
    tifffile = pytest.importorskip("tifffile")
    out = tmp_path / "c.ome.tif"
    assert main(["convert", "-q", "--axes", "C", str(folder), str(out)]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TZCYX"
        np.testing.assert_array_equal(tif.series[0].asarray(), truth)
    one = tmp_path / "one.ome.tif"
    assert main(["convert", "-q", "--frames", "0", str(folder), str(one)]) == 0
    np.testing.assert_array_equal(tifffile.imread(one), truth[:, :, 0])


def test_two_letter_frames_that_repeat_the_grid_say_what_to_do(tmp_path, capsys):
    folder = tmp_path / "run"
    write_series(folder, np.zeros((2, 3, 4, 4, 5), np.uint16), axes="TZ")
    out = tmp_path / "o.ome.tif"
    argv = ["convert", "--quiet", "--axes", "ZT", "--z-size", "2"]
    assert main([*argv, str(folder), str(out)]) == 1
    err = capsys.readouterr().err
    assert "--axes C" in err and "--frames 0" in err
    assert not out.exists()


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


def test_one_frame_of_each_file_is_recorded_as_such(tmp_path):
    # A C x T x Z grid of 2-frame files, frame 1 of each: the grid's last
    # axis becomes the frames, but the provenance names frame 1 of each file
    # and times stay relative to the acquisition's first frame (frame 0).
    zarr = pytest.importorskip("zarr")
    tifffile = pytest.importorskip("tifffile")
    ome_types = pytest.importorskip("ome_types")
    folder = tmp_path / "run"
    truth = np.arange(2 * 2 * 3 * 2 * 4 * 5, dtype=np.uint16).reshape(2, 2, 3, 2, 4, 5)
    write_series(folder, truth, name="cell")
    zarr_out, tiff_out = tmp_path / "o.ome.zarr", tmp_path / "o.ome.tif"
    for out in (zarr_out, tiff_out):
        assert main(["convert", "-q", "--frames", "1", str(folder), str(out)]) == 0
    summary = zarr.open(str(zarr_out), mode="r").attrs["dcimg"]
    assert summary["frames"] == {"start": 1, "stop": 2, "step": 1}
    with tifffile.TiffFile(tiff_out) as tif:
        np.testing.assert_array_equal(tif.series[0].asarray(), truth[..., 1, :, :])
        ome = ome_types.from_xml(tif.ome_metadata)
    with dcimg.DCIMGSeries(folder) as series:
        stamps = series.timestamps.astype("datetime64[us]")
    first = stamps.min()
    assert str(ome.images[0].acquisition_date.replace(tzinfo=None)) == str(
        first.astype("datetime64[us]").item()
    )
    planes = ome.images[0].pixels.planes
    expected = (stamps[..., 1] - first).astype(np.int64).ravel() / 1e6
    assert [p.delta_t for p in planes] == pytest.approx(expected.tolist())


def test_info_names_the_member_that_is_a_folder(series, capsys):
    folder, _ = series
    member = folder / "bead-bot4-560-002-003.dcimg"
    member.unlink()
    member.mkdir()
    assert main(["info", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "bead-bot4-560-002-003.dcimg: a folder" in err


def test_info_refuses_names_that_describe_a_huge_grid_at_once(tmp_path, capsys):
    # 100 empty files whose five counters all differ: 10**10 places.  The
    # error comes from the names, before any file is read, and lists the
    # first missing files.
    folder = tmp_path / "names"
    folder.mkdir()
    for i in range(100):
        (folder / ("a" + f"_{i}" * 5 + ".dcimg")).write_bytes(b"")
    assert main(["info", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "9999999900 of 10000000000 files" in err
    assert str(folder) in err and "'a_0_0_0_0_1.dcimg'" in err


def test_a_run_that_stopped_early_with_missing_fill(tmp_path, capsys):
    truth = np.arange(3 * 2 * 2 * 4 * 5, dtype=np.uint16).reshape(3, 2, 2, 4, 5)
    paths = write_series(tmp_path / "gap", truth, name="cell")
    paths[2, 1].unlink()  # the run stopped before its last file
    folder = str(tmp_path / "gap")
    # Refused by default, naming the missing file.
    assert main(["info", folder]) == 1
    assert "cell_002_001.dcimg" in capsys.readouterr().err
    # Described with --missing fill, the missing file named.
    assert main(["info", "--missing", "fill", folder]) == 0
    out = capsys.readouterr().out
    assert "missing files  1, read as 0: cell_002_001.dcimg" in out
    # Converted: the missing place holds zeros, the rest the true pixels.
    target = tmp_path / "gap.ome.tif"
    assert main(["convert", "--missing", "fill", "-q", folder, str(target)]) == 0
    expected = truth.copy()
    expected[2, 1] = 0
    with dcimg.DCIMGSeries(folder, missing="fill") as series:
        np.testing.assert_array_equal(series[...], expected)
    tifffile = pytest.importorskip("tifffile")
    written = tifffile.imread(target)
    assert written.size == expected.size
    np.testing.assert_array_equal(np.sort(written.ravel()), np.sort(expected.ravel()))
    # One file is not a series: the option is refused.
    assert main(["info", "--missing", "fill", str(paths[0, 0])]) == 1
    assert "--missing fill is for a series" in capsys.readouterr().err
