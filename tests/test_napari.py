"""Tests of the napari plugin (``dcimg/napari.yaml`` and ``dcimg._napari``).

Headless: files are read through npe2's own reading API and napari's
``ViewerModel`` (no window, no Qt), and every layer is compared with the true
image written by :func:`dcimg.testing.write_dcimg`, with overwritten pixels so
that the correction matters. Skipped when napari is not installed
(``pip install "dcimg[napari]"``).

meson-python's editable installs hide package data files from npe2 (it looks
for the manifest in the package's folder on disk, which an editable loader does
not have), so there the manifest is registered from the source tree; the
discovery test itself is skipped in that case only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")
pytest.importorskip("napari")
da = pytest.importorskip("dask.array")

from helpers import (  # noqa: E402
    file_kinds,
    skip_unless_sparse_files,
    write_with_stored_pixels,
)

import dcimg  # noqa: E402
from dcimg import _napari  # noqa: E402
from dcimg.testing import (  # noqa: E402
    example_stack,
    write_dcimg,
    write_sparse_dcimg,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_MANIFEST = ROOT / "dcimg" / "napari.yaml"


def _editable_install() -> bool:
    loader = getattr(dcimg.__spec__, "loader", None)
    return "editable" in type(loader).__module__


@pytest.fixture(scope="module")
def plugin_manager():
    pm = npe2.PluginManager.instance()
    pm.discover()
    if "dcimg" not in pm._manifests and _editable_install():
        pm.register(npe2.PluginManifest.from_file(SOURCE_MANIFEST))
    assert "dcimg" in pm._manifests
    return pm


def _truth(dtype=np.uint16, nframes=7, height=24, width=40, seed=1):
    return example_stack(nframes, height, width, dtype=dtype, seed=seed)


FILE_KINDS = file_kinds(
    (0x7, np.uint16), (0x7, np.uint8), (0x1000000, np.uint16), (0x2000000, np.uint8)
)


@pytest.fixture(params=FILE_KINDS)
def stored_file(request, tmp_path):
    """A file whose row 5 the camera overwrote, and its true pixels."""
    version, dtype = request.param
    return write_with_stored_pixels(
        tmp_path / "run_07.dcimg", _truth(dtype), version, 5
    )


# ---------------------------------------------------------------------------
# The manifest


def test_manifest_is_registered_and_shipped():
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="napari.manifest")
        if ep.name == "dcimg"
    ]
    assert entry.value == "dcimg:napari.yaml"
    shipped = importlib.resources.files("dcimg") / "napari.yaml"
    assert shipped.read_text(encoding="utf-8") == SOURCE_MANIFEST.read_text(
        encoding="utf-8"
    )


@pytest.mark.skipif(
    _editable_install(), reason="npe2 cannot see data files of editable installs"
)
def test_manifest_is_discovered_by_npe2():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("dcimg")
    assert manifest.package_metadata.name == "dcimg"


def _npe2_validate(target: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    # Run away from the source tree: there ``python -m`` would import the
    # uncompiled source package instead of the installed one.
    return subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "--imports", target],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_npe2_validate_passes(tmp_path):
    result = _npe2_validate(str(SOURCE_MANIFEST), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
    if not _editable_install():  # the installed package, found by its name
        result = _npe2_validate("dcimg", tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_npe2_validate_rejects_a_broken_manifest(tmp_path):
    # The check above can fail: a command naming a function that is not there.
    broken = SOURCE_MANIFEST.read_text(encoding="utf-8").replace(
        "dcimg._napari:napari_get_reader", "dcimg._napari:no_such_function"
    )
    path = tmp_path / "napari.yaml"
    path.write_text(broken, encoding="utf-8")
    result = _npe2_validate(str(path), tmp_path)
    assert result.returncode != 0
    assert "no_such_function" in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# Reading single files


def test_npe2_read_gives_the_corrected_stack(plugin_manager, stored_file):
    path, truth = stored_file
    layers = npe2.read([str(path)], stack=False)
    assert len(layers) == 1
    data, kwargs, layer_type = layers[0]
    assert layer_type == "image"
    assert isinstance(data, np.ndarray)
    np.testing.assert_array_equal(data, truth)
    assert data.dtype == truth.dtype
    assert kwargs["name"] == "run_07"
    assert kwargs["axis_labels"] == ("t", "y", "x")


def test_layer_metadata(plugin_manager, tmp_path):
    truth = _truth()
    counters = np.array([0, 1, 2, 5, 6, 7, 8])
    stamps = 1_700_000_000_000_000 + counters * 10_000
    path = write_dcimg(
        tmp_path / "gaps.dcimg",
        truth,
        stored_pixels_row=3,
        framestamps=counters,
        timestamps_us=stamps,
    )
    ((_, kwargs, _),) = npe2.read([str(path)], stack=False)
    meta = kwargs["metadata"]
    with dcimg.DCIMGFile(path) as f:
        expected = f.metadata.to_dict()
        np.testing.assert_array_equal(meta["timestamps"], f.timestamps)
    for key, value in expected.items():
        assert meta[key] == value, key
    assert meta["dropped_frames"] == [2]
    assert meta["dropped_frame_count"] == 2
    np.testing.assert_array_equal(meta["framestamps"], counters)
    assert meta["timestamps"].dtype == np.dtype("datetime64[us]")
    np.testing.assert_array_equal(
        meta["timestamps"].astype(np.int64), stamps.astype(np.int64)
    )


@pytest.mark.parametrize("name", ["UPPER.DCIMG", "Mixed.DcImg"])
def test_any_letter_case(plugin_manager, tmp_path, name):
    truth = _truth(np.uint8)
    path = write_dcimg(tmp_path / name, truth, stored_pixels_row=2)
    ((data, kwargs, _),) = npe2.read([str(path)], stack=False)
    np.testing.assert_array_equal(data, truth)
    assert kwargs["name"] == pathlib.Path(name).stem


def test_contrast_limits_come_from_a_few_frames(plugin_manager, tmp_path):
    nframes = 40
    truth = np.zeros((nframes, 8, 10), np.uint16)
    truth[:, 0, 0] = np.arange(nframes) * 10 + 100  # brightest: the last frame
    truth[:, 0, 1] = 50
    truth[17, 3, 3] = 60_000  # not a sampled frame: must not widen the range
    path = write_dcimg(tmp_path / "c.dcimg", truth)
    sampled = _napari._sample_frames(nframes)
    assert len(sampled) == _napari.CONTRAST_SAMPLE_FRAMES
    assert 17 not in sampled and sampled[0] == 0 and sampled[-1] == nframes - 1
    ((_, kwargs, _),) = npe2.read([str(path)], stack=False)
    assert kwargs["contrast_limits"] == [0.0, float(truth[-1].max())]


class _CountingSource:
    """Wraps an open file and records every read."""

    def __init__(self, f):
        self._f = f
        self.keys = []

    def __getattr__(self, name):
        return getattr(self._f, name)

    def read(self, key=..., **kwargs):
        self.keys.append(key)
        return self._f.read(key, **kwargs)


def test_large_layer_reads_only_the_sampled_frames(tmp_path, monkeypatch):
    truth = _truth(nframes=30)
    path = write_dcimg(tmp_path / "big.dcimg", truth, stored_pixels_row=4)
    monkeypatch.setattr(_napari, "IN_MEMORY_MAX_BYTES", truth.nbytes - 1)
    with dcimg.DCIMGFile(path) as f:
        source = _CountingSource(f)
        data, kwargs, _ = _napari._layer_data(source, "big")
        shapes = [f[key].shape for key in source.keys]
    assert isinstance(data, da.Array)
    # One frame per read (small frames are read whole), only the sampled
    # ones: never the whole file.
    assert len(source.keys) == _napari.CONTRAST_SAMPLE_FRAMES
    assert [key[0] for key in source.keys] == _napari._sample_frames(30)
    assert shapes == [truth.shape[1:]] * len(shapes)
    np.testing.assert_array_equal(np.asarray(data), truth)


@pytest.mark.parametrize(
    ("limit", "available", "lazy"),
    [
        (1 << 30, 1 << 34, False),  # small file, plenty of memory
        (100, 1 << 34, True),  # over the size limit
        (1 << 30, 1000, True),  # over the share of available memory
        (1 << 30, None, False),  # memory unknown: the size limit decides
    ],
)
def test_in_memory_threshold(tmp_path, monkeypatch, limit, available, lazy):
    truth = _truth()
    path = write_dcimg(tmp_path / "t.dcimg", truth, stored_pixels_row=0)
    monkeypatch.setattr(_napari, "IN_MEMORY_MAX_BYTES", limit)
    monkeypatch.setattr(_napari, "_available_memory", lambda: available)
    reader = _napari.napari_get_reader(str(path))
    ((data, _, _),) = reader(str(path))
    assert isinstance(data, da.Array) is lazy
    assert isinstance(data, np.ndarray) is not lazy
    np.testing.assert_array_equal(np.asarray(data), truth)


def test_100_gb_file_opens_in_under_a_second_as_dask(plugin_manager, tmp_path):
    skip_unless_sparse_files(tmp_path)
    path = write_sparse_dcimg(
        tmp_path / "huge.dcimg", 12_800, 2048, 2048, stored_pixels_row=1023
    )
    assert os.path.getsize(path) > 100e9
    # Warm up imports (Dask, the plugin) on a small file first.
    small = write_dcimg(tmp_path / "small.dcimg", _truth())
    npe2.read([str(small)], stack=False)
    # Best of three: this machine may be shared; reading the pixels of a
    # 100 GB file would take minutes every time, not a second.
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        ((data, kwargs, _),) = npe2.read([str(path)], stack=False)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 1.0, f"opening took {timings} s"
    assert isinstance(data, da.Array)
    assert data.shape == (12_800, 2048, 2048)
    assert kwargs["contrast_limits"] == [0.0, 1.0]  # all zero: a flat range
    assert len(kwargs["metadata"]["timestamps"]) == 12_800
    # The overwritten pixels of a frame are put back (zeros) when read.
    np.testing.assert_array_equal(data[6400, 1023, :16].compute(), 0)


def test_reader_function_can_be_called_twice(tmp_path):
    truth = _truth()
    path = str(write_dcimg(tmp_path / "twice.dcimg", truth, stored_pixels_row=2))
    reader = _napari.napari_get_reader(path)
    for _ in range(2):
        ((data, _, _),) = reader(path)
        np.testing.assert_array_equal(data, truth)


def test_interrupted_acquisition_opens_its_complete_frames(tmp_path):
    truth = _truth(nframes=8)
    full = write_dcimg(tmp_path / "full.dcimg", truth, stored_pixels_row=2)
    cut = write_dcimg(
        tmp_path / "cut.dcimg",
        truth,
        stored_pixels_row=2,
        truncate_to=int(os.path.getsize(full) * 0.6),
    )
    with pytest.warns(dcimg.DCIMGWarning):
        reader = _napari.napari_get_reader(str(cut))
    ((data, kwargs, _),) = reader(str(cut))
    assert 0 < data.shape[0] < truth.shape[0]
    np.testing.assert_array_equal(data, truth[: data.shape[0]])
    assert kwargs["metadata"]["truncated"] is True


def test_non_dcimg_file_is_declined(plugin_manager, tmp_path):
    junk = tmp_path / "junk.dcimg"
    junk.write_bytes(b"this is not a DCIMG file at all" * 100)
    empty = tmp_path / "empty.dcimg"
    empty.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _napari.napari_get_reader(str(junk)) is None
        assert _napari.napari_get_reader(str(empty)) is None
        assert _napari.napari_get_reader(str(tmp_path / "missing.dcimg")) is None
    assert _napari.napari_get_reader(str(tmp_path / "other.tif")) is None
    # npe2 then reports that no reader could open it (its own message).
    with pytest.raises(ValueError, match="[Nn]o .*reader"):
        npe2.read([str(junk)], stack=False)


def test_reader_found_by_napari_for_the_file(plugin_manager, stored_file):
    path, _ = stored_file
    readers = list(plugin_manager.iter_compatible_readers([str(path)]))
    assert [r.plugin_name for r in readers] == ["dcimg"]


# ---------------------------------------------------------------------------
# napari's ViewerModel (no window)


@pytest.mark.parametrize("plugin", ["dcimg", None])
def test_viewer_model_open(plugin_manager, stored_file, plugin):
    from napari.components import ViewerModel

    path, truth = stored_file
    viewer = ViewerModel()
    layers = viewer.open(str(path), plugin=plugin)
    assert len(layers) == 1 and len(viewer.layers) == 1
    layer = layers[0]
    np.testing.assert_array_equal(np.asarray(layer.data), truth)
    assert layer.name == "run_07"
    assert layer.metadata["shape"] == list(truth.shape)
    low, high = layer.contrast_limits
    assert truth.min() <= low < high <= truth.max()
    assert tuple(layer.axis_labels) == ("t", "y", "x")


def test_viewer_model_add_image_from_layer_data(plugin_manager, stored_file):
    from napari.components import ViewerModel

    path, truth = stored_file
    ((data, kwargs, _),) = npe2.read([str(path)], stack=False)
    viewer = ViewerModel()
    layer = viewer.add_image(data, **kwargs)
    np.testing.assert_array_equal(np.asarray(layer.data), truth)
    # The slice napari shows by default is the middle frame.
    viewer.dims.set_current_step(0, 3)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.view), truth[3])


def test_sample_data(plugin_manager):
    from napari.components import ViewerModel

    contributions = plugin_manager.get_manifest("dcimg").contributions
    assert [s.key for s in contributions.sample_data] == ["example"]
    viewer = ViewerModel()
    viewer.open_sample("dcimg", "example")
    (layer,) = viewer.layers
    np.testing.assert_array_equal(np.asarray(layer.data), example_stack())
    assert layer.metadata["dropped_frames"] == [11]
    assert layer.metadata["stored_pixels"]["row"] == 31


# ---------------------------------------------------------------------------
# Series: folders and lists of files


def _two_files(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    truths = [_truth(seed=1), _truth(seed=2)]
    for k, truth in enumerate(truths):
        write_dcimg(folder / f"acq_{k:02d}.DCIMG", truth, stored_pixels_row=1)
    (folder / "notes.txt").write_text("not an image")
    return folder, truths


def test_folders_and_lists_are_routed_to_the_series(tmp_path):
    folder, truths = _two_files(tmp_path)
    files = sorted(str(p) for p in folder.glob("*.DCIMG"))

    ((data, kwargs, _),) = _napari.napari_get_reader(str(folder))(str(folder))
    np.testing.assert_array_equal(np.asarray(data), np.stack(truths))
    assert kwargs["name"] == "acq"
    assert len(kwargs["axis_labels"]) == 4
    assert kwargs["axis_labels"][1:] == ("t", "y", "x")

    ((data, kwargs, _),) = _napari.napari_get_reader(files)(files)
    np.testing.assert_array_equal(np.asarray(data), np.stack(truths))
    assert kwargs["name"] == "acq"

    # One path in a list is a single file, not a series.
    ((data, _, _),) = _napari.napari_get_reader(files[:1])(files[:1])
    np.testing.assert_array_equal(np.asarray(data), truths[0])
    # An empty folder is declined.
    (tmp_path / "empty_folder").mkdir()
    assert _napari.napari_get_reader(str(tmp_path / "empty_folder")) is None


def test_a_folder_with_strays_opens_as_its_series(tmp_path):
    from dcimg.testing import write_series

    truth = np.random.default_rng(8).integers(0, 4000, (3, 1, 6, 7)).astype(np.uint16)
    folder = tmp_path / "run"
    write_series(folder, truth, name="cell")
    write_dcimg(folder / "background.dcimg", truth[0])  # not a member
    (folder / "._cell_000.dcimg").write_bytes(b"\0\5\26\7" * 16)  # macOS
    ((data, kwargs, _),) = _napari.napari_get_reader(str(folder))(str(folder))
    np.testing.assert_array_equal(np.asarray(data), truth)
    assert kwargs["name"] == "run"


def test_a_folder_opens_as_one_layer_with_the_real_series(plugin_manager, tmp_path):
    from napari.components import ViewerModel

    from dcimg.testing import write_series

    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4000, (3, 4, 1, 16, 20)).astype(np.uint16)
    folder = tmp_path / "bead-bot4"
    write_series(folder, truth, name="bead-bot4-560", separator="-", axes="TZ",
                 stored_pixels_row=3)  # fmt: skip
    # Folders are claimed by napari's built-in reader too: name the plugin.
    ((data, kwargs, _),) = npe2.read([str(folder)], stack=False, plugin_name="dcimg")
    np.testing.assert_array_equal(np.asarray(data), truth)
    assert kwargs["name"] == "bead-bot4"
    viewer = ViewerModel()
    (layer,) = viewer.open(str(folder), plugin="dcimg")
    np.testing.assert_array_equal(np.asarray(layer.data), truth)


# ---------------------------------------------------------------------------
# In memory or lazy: DCIMG_NAPARI_LOAD, and the size of a series


@pytest.mark.parametrize(
    ("mode", "lazy"), [("lazy", True), ("memory", False), ("auto", False)]
)
def test_load_mode_chooses_memory_or_lazy(tmp_path, monkeypatch, mode, lazy):
    truth = _truth()
    path = str(write_dcimg(tmp_path / "m.dcimg", truth, stored_pixels_row=2))
    # Over the size limit: "auto" alone would be lazy, "memory" is not.
    monkeypatch.setattr(
        _napari, "IN_MEMORY_MAX_BYTES", 100 if mode != "auto" else 1 << 30
    )
    monkeypatch.setenv(_napari.LOAD_ENV, mode.upper() if mode == "lazy" else mode)
    ((data, kwargs, _),) = _napari.napari_get_reader(path)(path)
    assert isinstance(data, da.Array) is lazy
    assert isinstance(data, np.ndarray) is not lazy
    np.testing.assert_array_equal(np.asarray(data), truth)
    assert kwargs["contrast_limits"] == [float(truth.min()), float(truth.max())]


def test_memory_mode_goes_lazy_when_memory_cannot_hold_it(tmp_path, monkeypatch):
    truth = _truth()
    path = str(write_dcimg(tmp_path / "m.dcimg", truth))
    monkeypatch.setenv(_napari.LOAD_ENV, "memory")
    monkeypatch.setattr(_napari, "_available_memory", lambda: truth.nbytes - 1)
    with pytest.warns(RuntimeWarning, match="DCIMG_NAPARI_LOAD=memory"):
        ((data, _, _),) = _napari.napari_get_reader(path)(path)
    assert isinstance(data, da.Array)


def test_an_unknown_load_mode_warns_and_means_auto(tmp_path, monkeypatch):
    truth = _truth()
    path = str(write_dcimg(tmp_path / "m.dcimg", truth))
    monkeypatch.setenv(_napari.LOAD_ENV, "eager")
    with pytest.warns(RuntimeWarning, match="'eager' is not one of auto, memory"):
        ((data, _, _),) = _napari.napari_get_reader(path)(path)
    assert isinstance(data, np.ndarray)  # auto: small enough


def _many_files(folder, files, frames=2):
    """A series of ``files`` numbered files whose pixels are their number."""
    from dcimg.testing import write_series

    truth = np.empty((files, frames, 6, 8), np.uint16)
    truth[:] = np.arange(files, dtype=np.uint16)[:, None, None, None] * 10
    write_series(folder, truth, name="cell", stored_pixels_row=None)
    return truth


def test_a_series_of_many_files_is_lazy_with_every_time_stamp(tmp_path, monkeypatch):
    monkeypatch.delenv(_napari.LOAD_ENV, raising=False)
    files = _napari.IN_MEMORY_MAX_FILES + 1
    truth = _many_files(tmp_path / "many", files)
    folder = str(tmp_path / "many")
    reads = []
    original = dcimg.DCIMGSeries.read

    def counting_read(self, key=..., **kwargs):
        reads.append(key)
        return original(self, key, **kwargs)

    monkeypatch.setattr(dcimg.DCIMGSeries, "read", counting_read)
    ((data, kwargs, _),) = _napari.napari_get_reader(folder)(folder)
    assert isinstance(data, da.Array)
    # Only the sampled frames were read, one per read, spread over the files:
    # the first file's and the last one's included.
    assert len(reads) == _napari.CONTRAST_SAMPLE_FRAMES
    assert reads[0][:2] == (0, 0) and reads[-1][:2] == (files - 1, 1)
    assert kwargs["contrast_limits"] == [0.0, float(truth.max())]
    stamps = kwargs["metadata"]["timestamps"]
    assert stamps.shape == (files, 2) and stamps.dtype == "datetime64[us]"
    assert kwargs["metadata"]["framestamps"].shape == (files, 2)
    assert kwargs["axis_labels"] == ("Z", "t", "y", "x")
    np.testing.assert_array_equal(data[::25].compute(), truth[::25])


def test_a_small_series_is_in_memory_and_sampled_over_its_files(tmp_path):
    truth = _many_files(tmp_path / "few", 5, frames=3)
    folder = str(tmp_path / "few")
    ((data, kwargs, _),) = _napari.napari_get_reader(folder)(folder)
    assert isinstance(data, np.ndarray)
    np.testing.assert_array_equal(data, truth)
    # Five frames over the 15 of the series: files 0 to 4, not file 0 alone.
    assert kwargs["contrast_limits"] == [0.0, 40.0]


def test_a_series_layer_opens_each_file_once(tmp_path, monkeypatch):
    files = _napari.IN_MEMORY_MAX_FILES + 20  # more than a series keeps open
    _many_files(tmp_path / "many", files)
    folder = str(tmp_path / "many")
    opened = []
    original = dcimg.DCIMGFile.open

    def counting_open(self, *args, **kwargs):
        opened.append(self.file_path)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(dcimg.DCIMGFile, "open", counting_open)
    ((data, kwargs, _),) = _napari.napari_get_reader(folder)(folder)
    assert kwargs["metadata"]["timestamps"].shape == (files, 2)
    # Metadata, time stamps, counters and the sampled frames: one open each.
    assert len(opened) == len(set(opened)) == files
