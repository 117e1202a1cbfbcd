"""Tests of the bioio reader plugin (``dcimg.bioio``).

``BioImage(path)`` is never told which reader to use: these tests check that
bioio's own plugin lookup (the ``bioio.readers`` entry point) finds this one,
and compare what it reads with the true image written by
:func:`dcimg.testing.write_dcimg`, with overwritten pixels so that the
correction matters. Skipped when bioio is not installed
(``pip install "dcimg[bioio]"``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import time

import numpy as np
import pytest

bioio = pytest.importorskip("bioio")
bioio_base = pytest.importorskip("bioio_base")
da = pytest.importorskip("dask.array")

from helpers import file_kinds, write_with_stored_pixels  # noqa: E402

import dcimg  # noqa: E402
import dcimg.bioio  # noqa: E402
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg  # noqa: E402

BioImage = bioio.BioImage

FILE_KINDS = file_kinds(
    (0x7, np.uint16),
    (0x7, np.uint8),
    (0x1000000, np.uint16),
    (0x1000000, np.uint8),
    (0x2000000, np.uint16),
)


@pytest.fixture(params=FILE_KINDS)
def stored_file(request, tmp_path):
    """A file whose row 6 the camera overwrote, and its true pixels."""
    version, dtype = request.param
    truth = example_stack(9, 20, 32, dtype=dtype, seed=3)
    return write_with_stored_pixels(tmp_path / "cells.dcimg", truth, version, 6)


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


def test_a_time_lapse_of_single_planes_opens_as_is(tmp_path):
    from dcimg.testing import write_series

    # The usual T x Z run saved a plane a file: the one frame of each file
    # takes the free C, with no option (it failed before).
    truth = np.random.default_rng(6).integers(0, 4000, (2, 3, 1, 6, 7), np.uint16)
    write_series(tmp_path / "run", truth, name="cell")
    image = BioImage(tmp_path / "run")
    assert image.shape == (2, 1, 3, 6, 7)
    np.testing.assert_array_equal(image.get_image_data("TZYX"), truth[:, :, 0])
    np.testing.assert_array_equal(image.dask_data.compute(), image.data)
    assert image.time_interval is not None  # from the grid's T
    # Named explicitly, the frames still go where they are told.
    assert BioImage(tmp_path / "run", frames_axis="C").shape == (2, 1, 3, 6, 7)


# ---------------------------------------------------------------------------
# Standard metadata: every field DCIMG records, checked against the values
# the writer was told to record

T0_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC


@pytest.fixture
def described_file(tmp_path):
    """A file with a known camera, sub-array, binning, stamps and a drop."""
    truth = example_stack(6, 32, 40, seed=8)
    stamps = T0_US + np.array([0, 25, 50, 75, 100, 150]) * 1000
    path = write_dcimg(
        tmp_path / "described.dcimg",
        truth,
        camera_model="C15440-20UP",
        camera_serial="700123",
        sub_array=(128, 256, 80, 64),
        binning=2,
        timestamps_us=stamps,
        framestamps=[10, 11, 12, 13, 15, 16],  # one frame dropped after 13
    )
    return path


def test_standard_metadata_fills_every_field_dcimg_records(described_file):
    image = BioImage(described_file, physical_pixel_sizes=(2.0, 0.325, 0.35))
    meta = image.standard_metadata
    assert isinstance(meta, dcimg.bioio.DCIMGStandardMetadata)
    expected = {
        "dimensions_present": "TCZYX",
        "image_size_t": 6,
        "image_size_c": 1,
        "image_size_z": 1,
        "image_size_y": 32,
        "image_size_x": 40,
        "pixel_type": "uint16",
        "timelapse": True,
        # Median of the intervals 25, 25, 25, 25, 50 ms.
        "time_interval": datetime.timedelta(milliseconds=25),
        "timelapse_interval": datetime.timedelta(milliseconds=25),
        # First time point to the last one.
        "total_time_duration": datetime.timedelta(milliseconds=150),
        "imaging_datetime": datetime.datetime(
            2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc
        ),
        "binning": "2x2",
        "detector_model": "C15440-20UP",
        "detector_serial_number": "700123",
        "sensor_region": (128, 256, 80, 64),
        "dropped_frames": 1,
        "pixel_size_z": 2.0,
        "pixel_size_y": 0.325,
        "pixel_size_x": 0.35,
    }
    assert {name: getattr(meta, name) for name in expected} == expected
    # What DCIMG does not record stays unknown rather than made up.
    for name in ("objective", "imaged_by", "row", "column", "stage_position_x"):
        assert getattr(meta, name) is None, name
    filled = [name for name, value in dataclasses.asdict(meta).items() if value]
    assert len(filled) >= 8
    # to_dict() lists the added fields under readable labels.
    labels = meta.to_dict()
    assert labels["Detector Model"] == "C15440-20UP"
    assert labels["Pixel Type"] == "uint16"
    assert labels["Image Size T"] == 6
    # The reader's own property gives the same.
    assert image.reader.standard_metadata == meta


def test_standard_metadata_without_camera_stamps_or_sub_array(tmp_path):
    truth = example_stack(5, 16, 24, seed=9)
    path = write_dcimg(
        tmp_path / "cut.dcimg",
        truth,
        version=0x7,
        camera_model="",
        camera_serial="",
        block_table=False,
    )
    # A packed file cut inside its last frame loses its footer: no time
    # stamps, no counters.
    with dcimg.DCIMGFile(path) as f:
        cut = f.metadata.file_size - 10
    os.truncate(path, cut)
    with pytest.warns(dcimg.DCIMGWarning):
        image = BioImage(path)
        meta = image.standard_metadata
    assert meta.image_size_t == 5  # the pixels are whole, the footer is not
    assert meta.detector_model is None and meta.detector_serial_number is None
    assert meta.dropped_frames is None  # the counters are lost: unknown
    assert meta.imaging_datetime is None
    assert meta.time_interval is None and meta.timelapse_interval is None
    assert meta.total_time_duration is None
    assert meta.pixel_size_x is None
    assert meta.pixel_type == "uint16"


def test_standard_metadata_of_a_series_with_frames_on_t(tmp_path):
    # 3 files (one counter: Z planes), each 4 frames taken 10 ms apart; a
    # frame dropped in the second file.
    truth = np.random.default_rng(6).integers(0, 4000, (3, 4, 8, 10), np.uint16)
    folder = tmp_path / "stack"
    folder.mkdir()
    for z in range(3):
        write_dcimg(
            folder / f"cell_{z:03d}.dcimg",
            truth[z],
            timestamps_us=T0_US + z * 2_000_000 + np.arange(4) * 10_000,
            framestamps=[0, 1, 3, 4] if z == 1 else None,
            camera_model="C13440-20C",
            camera_serial="100042",
        )
    meta = BioImage(folder).standard_metadata
    assert (meta.image_size_t, meta.image_size_z, meta.image_size_c) == (4, 3, 1)
    assert meta.time_interval == datetime.timedelta(milliseconds=10)
    assert meta.timelapse_interval == datetime.timedelta(milliseconds=10)
    # T points at Z = 0: the first file's frames.
    assert meta.total_time_duration == datetime.timedelta(milliseconds=30)
    assert meta.dropped_frames == 1
    assert meta.detector_model == "C13440-20C"
    assert meta.detector_serial_number == "100042"
    assert meta.imaging_datetime == datetime.datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc
    )


def test_standard_metadata_of_a_time_lapse_of_z_stacks(tmp_path):
    from dcimg.testing import write_series

    # Two counters: T (2 time points) and Z (2 planes); each file 3 frames
    # (channels here). Stamps: time points 5 s apart.
    truth = np.random.default_rng(7).integers(0, 4000, (2, 2, 3, 6, 7), np.uint16)
    folder = tmp_path / "run"
    write_series(folder, truth, name="cell")
    for path in sorted(folder.iterdir()):
        t, z = (int(part) for part in path.stem.split("_")[1:])
        write_dcimg(
            path,
            truth[t, z],
            timestamps_us=T0_US + t * 5_000_000 + z * 100_000 + np.arange(3) * 1000,
        )
    meta = BioImage(folder, frames_axis="C").standard_metadata
    assert (meta.image_size_t, meta.image_size_z, meta.image_size_c) == (2, 2, 3)
    assert meta.timelapse is True
    assert meta.timelapse_interval == datetime.timedelta(seconds=5)
    assert meta.total_time_duration == datetime.timedelta(seconds=5)
    assert meta.time_interval == datetime.timedelta(milliseconds=1)  # frames
    assert meta.imaging_datetime == datetime.datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc
    )


# ---------------------------------------------------------------------------
# OME metadata: from the file's or series' ome_metadata()


def test_ome_metadata_comes_from_the_file(described_file):
    ome_types = pytest.importorskip("ome_types")
    image = BioImage(described_file, physical_pixel_sizes=(2.0, 0.325, 0.35))
    ome = image.ome_metadata
    assert isinstance(ome, ome_types.OME)
    ome_types.from_xml(ome.to_xml())  # valid against the schema
    pixels = ome.images[0].pixels
    assert (pixels.size_t, pixels.size_y, pixels.size_x) == (6, 32, 40)
    assert pixels.physical_size_x == pytest.approx(0.35)
    assert pixels.physical_size_y == pytest.approx(0.325)
    assert pixels.physical_size_z == pytest.approx(2.0)
    with dcimg.DCIMGFile(described_file) as f:
        direct = f.ome_metadata(pixel_size=(0.325, 0.35), z_step=2.0)
    assert ome.to_xml() == direct.to_xml()


# ---------------------------------------------------------------------------
# URLs: read as DCIMGFile reads them


def test_bioimage_reads_a_file_over_http(http_server, described_file):
    http_server.files["/run/described.dcimg"] = described_file.read_bytes()
    url = http_server.url("run/described.dcimg")
    image = BioImage(url)  # bioio picks the reader by itself
    assert type(image.reader) is dcimg.bioio.Reader
    local = BioImage(described_file)
    np.testing.assert_array_equal(image.get_image_data("TYX"), local.data[:, 0, 0])
    np.testing.assert_array_equal(image.dask_data.compute(), local.data)
    assert image.standard_metadata == local.standard_metadata
    assert image.metadata.path == url
    assert image.time_interval == local.time_interval


def test_opening_a_url_reads_no_pixels(http_server, tmp_path):
    truth = example_stack(6, 1024, 1024, seed=10)  # 2 MiB frames
    path = write_dcimg(tmp_path / "big.dcimg", truth)
    http_server.files["/big.dcimg"] = path.read_bytes()
    image = BioImage(http_server.url("big.dcimg"))
    lazy = image.dask_data
    assert image.standard_metadata.image_size_t == 6
    http_server.wait_idle()
    gets = http_server.requests_for("big.dcimg")
    # Bioio's choice of reader, headers and time stamps: no request for the
    # whole object (bioio's own check of a URL asks for it), no frame's pixels.
    assert all(r.range for r in gets), [r for r in gets if not r.range]
    assert sum(r.sent for r in gets) < truth[0].nbytes / 4
    np.testing.assert_array_equal(lazy[:, 0, 0].compute(), truth)


def test_storage_options_reach_the_file_system(http_server, described_file, tmp_path):
    http_server.files["/d.dcimg"] = described_file.read_bytes()
    url = "simplecache::" + http_server.url("d.dcimg")
    for name in ("storage_options", "fs_kwargs"):
        cache = tmp_path / f"cache-{name}"
        options = {"simplecache": {"cache_storage": str(cache)}}
        image = BioImage(url, reader=dcimg.bioio.Reader, **{name: options})
        np.testing.assert_array_equal(
            image.get_image_data("TYX"), BioImage(described_file).data[:, 0, 0]
        )
        assert list(cache.iterdir()), name  # the cache the options named


def test_a_missing_url_names_it_without_its_secrets(http_server):
    url = (
        http_server.base.replace("http://", "http://someone:hunter2@")
        + "/none.dcimg?X-Amz-Signature=deadbeef"
    )
    with pytest.raises(FileNotFoundError) as info:
        dcimg.bioio.Reader(url)
    text = str(info.value)
    assert "none.dcimg" in text
    assert "hunter2" not in text and "deadbeef" not in text


def test_a_remote_folder_is_one_image(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from dcimg.testing import write_series

    truth = np.random.default_rng(11).integers(0, 4000, (3, 4, 8, 10), np.uint16)
    write_series(tmp_path / "acq", truth, name="cell", stored_pixels_row=2)
    memory = fsspec.filesystem("memory")
    root = f"/viewers-{os.getpid()}-{time.monotonic_ns()}"
    try:
        for path in sorted((tmp_path / "acq").iterdir()):
            memory.pipe(f"{root}/acq/{path.name}", path.read_bytes())
        for url in (f"memory://{root}/acq/", f"memory://{root}/acq"):
            image = BioImage(url, reader=dcimg.bioio.Reader)
            assert image.shape == (4, 1, 3, 8, 10)
            np.testing.assert_array_equal(image.get_image_data("ZTYX"), truth)
            np.testing.assert_array_equal(image.dask_data.compute(), image.data)
        # Without naming the reader: bioio asks the directory readers.
        image = BioImage(f"memory://{root}/acq")
        assert type(image.reader) is dcimg.bioio.Reader
    finally:
        memory.rm(root, recursive=True)


def test_ome_metadata_is_a_thin_call_with_the_pixel_sizes(described_file, monkeypatch):
    """The wiring, whatever ome_metadata() builds: its arguments and result."""
    ome_types = pytest.importorskip("ome_types")
    calls = []

    def ome_metadata(self, *, pixel_size=None, z_step=None):
        calls.append((self.file_path, pixel_size, z_step))
        return ome_types.OME(creator=f"test {self.shape}")

    monkeypatch.setattr(dcimg.DCIMGFile, "ome_metadata", ome_metadata, raising=False)
    image = BioImage(described_file, physical_pixel_sizes=(2.0, 0.325, 0.35))
    ome = image.ome_metadata
    assert ome.creator == "test (6, 32, 40)"
    assert calls == [(str(described_file), (0.325, 0.35), 2.0)]
    calls.clear()
    _ = BioImage(described_file).ome_metadata
    assert calls == [(str(described_file), None, None)]


def test_an_array_is_not_for_this_reader():
    with pytest.raises(bioio_base.exceptions.UnsupportedFileFormatError, match="path"):
        dcimg.bioio.Reader(np.zeros((2, 3, 4), np.uint16))
    assert dcimg.bioio.Reader.is_supported_image(np.zeros((2, 3, 4))) is False
