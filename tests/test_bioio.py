"""Tests of the bioio reader plugin (``dcimg.bioio``).

``BioImage(path)`` is never told which reader to use: these tests check that
bioio's own plugin lookup (the ``bioio.readers`` entry point) finds this one,
and compare what it reads with the true image written by
:func:`dcimg.testing.write_dcimg`, with overwritten pixels so that the
correction matters. Skipped when bioio is not installed
(``pip install "dcimg[bioio]"``).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import time

import numpy as np
import pytest

bioio = pytest.importorskip("bioio")
bioio_base = pytest.importorskip("bioio_base")
da = pytest.importorskip("dask.array")

import dcimg  # noqa: E402
import dcimg.bioio  # noqa: E402
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg  # noqa: E402

BioImage = bioio.BioImage

FILE_KINDS = [
    pytest.param((0x7, np.uint16), id="packed-16bit"),
    pytest.param((0x7, np.uint8), id="packed-8bit"),
    pytest.param((0x1000000, np.uint16), id="framed-16bit"),
    pytest.param((0x1000000, np.uint8), id="framed-8bit"),
    pytest.param((0x2000000, np.uint16), id="framed2-16bit"),
]


@pytest.fixture(params=FILE_KINDS)
def stored_file(request, tmp_path):
    """A file whose row 6 the camera overwrote, and its true pixels."""
    version, dtype = request.param
    truth = example_stack(9, 20, 32, dtype=dtype, seed=3)
    path = write_dcimg(
        tmp_path / "cells.dcimg", truth, version=version, stored_pixels_row=6
    )
    with dcimg.DCIMGFile(path, first_4px_correction_enabled=None) as f:
        assert not np.array_equal(f.read(), truth)  # correction matters
    return path, truth


def test_entry_point_names_the_module():
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="bioio.readers")
        if ep.value == "dcimg.bioio"
    ]
    # bioio reads the plugin's bioio-base requirement from the distribution
    # named like the entry point: it must be this distribution's name.
    assert entry.name == "dcimg"
    requirements = importlib.metadata.requires("dcimg") or []
    assert len([r for r in requirements if r.startswith("bioio-base")]) == 1
    module = entry.load()
    assert module.Reader is dcimg.bioio.Reader
    assert module.ReaderMetadata.get_reader() is dcimg.bioio.Reader


def test_discovered_by_bioio_plugin_lookup(stored_file):
    path, _ = stored_file
    plugins = bioio.plugins.get_plugins(use_cache=False)
    assert [p.entrypoint.name for p in plugins[".dcimg"]] == ["dcimg"]
    plugin = BioImage.determine_plugin(str(path))
    assert plugin.entrypoint.name == "dcimg"
    assert plugin.metadata.get_reader() is dcimg.bioio.Reader


def test_bioimage_reads_the_corrected_stack(stored_file):
    path, truth = stored_file
    image = BioImage(path)  # no reader named
    assert isinstance(image.reader, dcimg.bioio.Reader)
    assert image.dims.order == "TCZYX"
    assert image.shape == (truth.shape[0], 1, 1, *truth.shape[1:])
    assert image.dtype == truth.dtype
    np.testing.assert_array_equal(image.get_image_data("TYX"), truth)
    np.testing.assert_array_equal(image.get_image_data("YX", T=4), truth[4])


def test_dask_data_is_lazy_and_equals_data(stored_file):
    path, truth = stored_file
    image = BioImage(str(path))
    lazy = image.dask_data
    assert isinstance(lazy, da.Array)
    assert image.reader._xarray_data is None  # nothing read yet
    np.testing.assert_array_equal(lazy.compute(), image.data)
    np.testing.assert_array_equal(image.data[:, 0, 0], truth)
    np.testing.assert_array_equal(
        image.get_image_dask_data("TYX", T=slice(2, 5)).compute(), truth[2:5]
    )


def test_upper_case_extension(tmp_path):
    truth = example_stack(3, 8, 16)
    path = write_dcimg(tmp_path / "RUN.DCIMG", truth, stored_pixels_row=1)
    image = BioImage(path)
    assert isinstance(image.reader, dcimg.bioio.Reader)
    np.testing.assert_array_equal(image.get_image_data("TYX"), truth)


def test_metadata_is_the_typed_metadata(stored_file):
    path, _ = stored_file
    image = BioImage(path)
    with dcimg.DCIMGFile(path) as f:
        expected = f.metadata
    assert isinstance(image.metadata, dcimg.Metadata)
    assert image.metadata == expected
    assert image.xarray_dask_data.attrs["unprocessed"] == expected.to_dict()


def test_time_axis_and_interval(tmp_path):
    truth = example_stack(6, 8, 16)
    stamps = 1_700_000_000_000_000 + np.array([0, 20, 40, 60, 80, 130]) * 1000
    path = write_dcimg(tmp_path / "t.dcimg", truth, timestamps_us=stamps)
    image = BioImage(path)
    # Median interval of the time stamps: 20 ms.
    assert image.time_interval == datetime.timedelta(milliseconds=20)
    assert image.scale.T == pytest.approx(0.02)
    np.testing.assert_allclose(
        image.xarray_dask_data.coords["T"].values, (stamps - stamps[0]) / 1e6
    )


def test_single_frame_has_no_time_interval(tmp_path):
    path = write_dcimg(tmp_path / "one.dcimg", example_stack(1, 8, 16))
    image = BioImage(path)
    assert image.time_interval is None
    assert image.dims.T == 1


def test_physical_pixel_sizes_unknown_unless_given(stored_file):
    path, _ = stored_file
    sizes = BioImage(path).physical_pixel_sizes
    assert (sizes.Z, sizes.Y, sizes.X) == (None, None, None)
    given = BioImage(path, physical_pixel_sizes=(None, 0.65, 0.65))
    assert given.physical_pixel_sizes == bioio_base.types.PhysicalPixelSizes(
        None, 0.65, 0.65
    )


def test_channel_name(stored_file):
    path, _ = stored_file
    assert BioImage(path).channel_names == [dcimg.bioio.DEFAULT_CHANNEL_NAME]
    assert dcimg.bioio.DEFAULT_CHANNEL_NAME == "Channel:0:0"
    assert BioImage(path, channel_name="GFP").channel_names == ["GFP"]


def test_scene(stored_file):
    path, _ = stored_file
    assert BioImage(path).scenes == ("Image:0",)


def test_correction_can_be_switched_off(tmp_path):
    truth = example_stack(4, 12, 16)
    path = write_dcimg(tmp_path / "raw.dcimg", truth, stored_pixels_row=2)
    raw = BioImage(path, first_4px_correction_enabled=None).get_image_data("TYX")
    with dcimg.DCIMGFile(path, first_4px_correction_enabled=None) as f:
        np.testing.assert_array_equal(raw, f.read())
    assert not np.array_equal(raw, truth)


def test_not_dcimg_is_unsupported(tmp_path):
    junk = tmp_path / "junk.dcimg"
    junk.write_bytes(b"not a DCIMG file" * 64)
    assert not dcimg.bioio.Reader.is_supported_image(str(junk))
    with pytest.raises(bioio_base.exceptions.UnsupportedFileFormatError):
        BioImage(junk)
    with pytest.raises(bioio_base.exceptions.UnsupportedFileFormatError):
        dcimg.bioio.Reader(junk)


def test_large_file_opens_lazily(tmp_path):
    path = write_sparse_dcimg(
        tmp_path / "big.dcimg", 2000, 1024, 1024, stored_pixels_row=512
    )
    if os.stat(path).st_blocks * 512 > 1 << 28:
        pytest.skip("no sparse files on this file system")
    warm = write_dcimg(tmp_path / "warm.dcimg", example_stack(2, 8, 8))
    assert BioImage(warm).dask_data.shape == (2, 1, 1, 8, 8)  # imports done
    start = time.perf_counter()
    lazy = BioImage(path).dask_data
    elapsed = time.perf_counter() - start
    assert lazy.shape == (2000, 1, 1, 1024, 1024)
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert lazy[1999, 0, 0, 512, :8].compute().sum() == 0  # corrected


# ---------------------------------------------------------------------------
# A folder of numbered files is one image


def test_a_folder_is_one_image_on_its_letters_dimensions(tmp_path):
    from dcimg.testing import write_series

    truth = np.random.default_rng(4).integers(0, 4000, (3, 5, 8, 10), np.uint16)
    write_series(tmp_path / "stack", truth, name="cell", stored_pixels_row=2)
    # One counter: a Z grid by default; each file's frames go on T.
    image = BioImage(tmp_path / "stack")
    assert type(image.reader) is dcimg.bioio.Reader
    assert image.dims.order == "TCZYX"
    assert image.shape == (5, 1, 3, 8, 10)
    np.testing.assert_array_equal(image.get_image_data("ZTYX"), truth)
    np.testing.assert_array_equal(image.dask_data.compute(), image.data)
    assert image.time_interval is not None
    assert isinstance(image.metadata, dcimg.series.SeriesMetadata)


def test_a_time_lapse_of_z_stacks_puts_the_frames_on_z(tmp_path):
    from dcimg.testing import write_series

    # Two counters (T and Z by default) and frames: the frames need a letter.
    truth = np.random.default_rng(5).integers(0, 4000, (2, 3, 4, 6, 7), np.uint16)
    write_series(tmp_path / "run", truth, name="cell")
    with pytest.raises(
        bioio_base.exceptions.UnsupportedFileFormatError, match="frames"
    ):
        BioImage(tmp_path / "run")
    image = BioImage(tmp_path / "run", frames_axis="C")
    assert image.shape == (2, 4, 3, 6, 7)
    np.testing.assert_array_equal(image.get_image_data("TZCYX"), truth)
