"""``ome_metadata()`` of files and series: valid OME, the converter's builder."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import dcimg
from dcimg.testing import example_stack, write_dcimg, write_example, write_series

ome_types = pytest.importorskip("ome_types")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("ome") / "example.dcimg")


def delta_t(stamps: np.ndarray) -> list[float]:
    """Seconds of every stamp from the earliest (what DeltaT must say)."""
    micro = stamps.astype("datetime64[us]").astype(np.int64).reshape(-1)
    return [(int(m) - int(micro.min())) / 1e6 for m in micro]


def test_file_ome_metadata_is_valid_and_complete(example):
    with dcimg.DCIMGFile(example) as f:
        ome = f.ome_metadata(pixel_size=(0.5, 0.65), z_step=2.0)
        stamps, meta = f.timestamps, f.metadata
        shape, dtype = f.shape, f.dtype
    assert isinstance(ome, ome_types.OME)
    ome_types.validate_xml(ome_types.to_xml(ome))
    (image,) = ome.images
    pixels = image.pixels
    assert (pixels.size_t, pixels.size_z, pixels.size_c) == (shape[0], 1, 1)
    assert (pixels.size_y, pixels.size_x) == shape[1:]
    assert pixels.type.value == dtype.name and pixels.significant_bits == 16
    assert (pixels.physical_size_y, pixels.physical_size_x) == (0.5, 0.65)
    assert pixels.physical_size_z == 2.0
    assert pixels.physical_size_x_unit.value == "µm"
    assert len(pixels.planes) == shape[0]
    assert [p.the_t for p in pixels.planes] == list(range(shape[0]))
    assert [p.delta_t for p in pixels.planes] == delta_t(stamps)
    assert all(p.delta_t_unit.value == "s" for p in pixels.planes)
    assert pixels.time_increment == pytest.approx(meta.frame_interval_s)
    (detector,) = ome.instruments[0].detectors
    assert detector.model == meta.camera.model
    assert detector.serial_number == meta.camera.serial
    assert image.instrument_ref.id == ome.instruments[0].id
    (channel,) = pixels.channels
    assert channel.name == "example"
    assert channel.detector_settings.id == detector.id
    assert image.acquisition_date is not None
    (annotation,) = ome.structured_annotations.map_annotations
    values = {m.k: m.value for m in annotation.value.ms}
    assert values["camera model"] == meta.camera.model


def test_physical_sizes_are_left_out_unless_given(example):
    with dcimg.DCIMGFile(example) as f:
        pixels = f.ome_metadata().images[0].pixels
        assert pixels.physical_size_x is None and pixels.physical_size_z is None
        with pytest.raises(ValueError, match="pixel_size"):
            f.ome_metadata(pixel_size=-1)
        with pytest.raises(ValueError, match="z_step"):
            f.ome_metadata(z_step=float("nan"))


def test_ome_metadata_is_what_the_converter_writes(tmp_path, example):
    """One builder: the OME-TIFF's OME-XML lists the same image and planes."""
    pytest.importorskip("tifffile")
    import tifffile

    out = dcimg.convert(example, tmp_path / "example.ome.tif", pixel_size=0.65)
    with tifffile.TiffFile(out) as tif:
        written = ome_types.from_xml(tif.ome_metadata)
    with dcimg.DCIMGFile(example) as f:
        built = f.ome_metadata(pixel_size=0.65)
    exclude = {"tiff_data_blocks", "metadata_only"}
    assert built.images[0].pixels.model_dump(exclude=exclude) == written.images[
        0
    ].pixels.model_dump(exclude=exclude)
    assert built.instruments == written.instruments
    assert built.images[0].name == written.images[0].name
    assert built.images[0].acquisition_date == written.images[0].acquisition_date


def test_series_ome_metadata(tmp_path):
    """A Z grid of files of 3 time points each: SizeZ 4, SizeT 3, exact times."""
    truth = example_stack(12, 8, 10).reshape(4, 3, 8, 10)
    stamps = 1_700_000_000_000_000 + np.arange(12).reshape(4, 3) * 250_000
    folder = tmp_path / "run"
    folder.mkdir()
    for z in range(4):
        write_dcimg(folder / f"cell_{z:03d}.dcimg", truth[z], timestamps_us=stamps[z])
    with dcimg.DCIMGSeries(folder, axes="Z") as series:
        ome = series.ome_metadata(z_step=1.5)
        series_stamps = series.timestamps
    ome_types.validate_xml(ome_types.to_xml(ome))
    pixels = ome.images[0].pixels
    assert (pixels.size_z, pixels.size_t, pixels.size_c) == (4, 3, 1)
    assert pixels.dimension_order.value == "XYTZC"
    assert pixels.physical_size_z == 1.5
    assert [(p.the_z, p.the_t) for p in pixels.planes] == [
        (z, t) for z in range(4) for t in range(3)
    ]
    assert [p.delta_t for p in pixels.planes] == delta_t(series_stamps)
    assert pixels.planes[-1].delta_t == 11 * 0.25


def test_series_of_single_frames_over_t_and_z(tmp_path):
    truth = example_stack(6, 8, 10).reshape(3, 2, 8, 10)
    write_series(tmp_path, truth, axes="TZ")
    with dcimg.DCIMGSeries(tmp_path, axes="TZ") as series:
        pixels = series.ome_metadata().images[0].pixels
    assert (pixels.size_t, pixels.size_z, pixels.size_c) == (3, 2, 1)
    assert len(pixels.planes) == 6


def test_file_without_time_stamps_has_planes_without_delta_t(tmp_path):
    stack = example_stack(6, 8, 10)
    path = write_dcimg(
        tmp_path / "cut.dcimg", stack, version=0x7, stored_pixels_row=2, truncate_to=900
    )
    with pytest.warns(dcimg.DCIMGWarning), dcimg.DCIMGFile(path) as f:
        ome = f.ome_metadata()
    ome_types.validate_xml(ome_types.to_xml(ome))
    pixels = ome.images[0].pixels
    assert pixels.planes and all(p.delta_t is None for p in pixels.planes)
    assert pixels.time_increment is None


def test_without_ome_types(example, monkeypatch):
    monkeypatch.setitem(sys.modules, "ome_types", None)
    with dcimg.DCIMGFile(example) as f, pytest.raises(dcimg.MissingDependencyError):
        f.ome_metadata()
    with pytest.raises(ImportError, match=r"dcimg\[ome\]"):
        with dcimg.DCIMGFile(example) as f:
            f.ome_metadata()


def test_series_of_multi_frame_files_over_t_and_z_joins_time(tmp_path):
    """As the converter: each file's frames follow on along the grid's T."""
    truth = example_stack(12, 8, 10).reshape(2, 3, 2, 8, 10)
    write_series(tmp_path, truth, axes="TZ")
    with dcimg.DCIMGSeries(tmp_path, axes="TZ") as series:
        pixels = series.ome_metadata().images[0].pixels
        stamps = series.timestamps
    assert (pixels.size_t, pixels.size_z) == (4, 3)
    assert pixels.dimension_order.value == "XYTZC"
    expected = delta_t(np.moveaxis(stamps, 0, -2).reshape(3, 4))
    assert [p.delta_t for p in pixels.planes] == expected
    assert [(p.the_z, p.the_t) for p in pixels.planes] == [
        (z, t) for z in range(3) for t in range(4)
    ]
