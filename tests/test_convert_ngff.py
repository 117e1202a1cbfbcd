"""OME-Zarr 0.5 on Zarr v3 with shards, written through zarr-python 3.

What ``.ome.zarr`` and ``.zarr`` outputs are by default, what ``ngff="0.4"``
and ``zarr_format=2`` keep, how big the shards are, and that third-party
readers (zarr-python, ome-zarr, bioio-ome-zarr) and validators
(ome-zarr-models) agree.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import record_file_reads
from test_cli import run

import dcimg
from dcimg import _convert
from dcimg.testing import example_stack, write_dcimg, write_example

zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example(tmp_path_factory.mktemp("ngff") / "example.dcimg")


def objects(folder: Path) -> list[str]:
    """Every file under ``folder``, relative, sorted."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    )


def test_default_ome_zarr_is_ngff_05_on_zarr_v3_with_shards(tmp_path, example):
    out = dcimg.convert(
        example, tmp_path / "a.ome.zarr", pixel_size=0.65, pyramid=1, channel_name="GFP"
    )
    root = json.loads((out / "zarr.json").read_text())
    assert (root["zarr_format"], root["node_type"]) == (3, "group")
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (multiscale,) = ome["multiscales"]
    assert "version" not in multiscale
    assert [a["name"] for a in multiscale["axes"]] == ["t", "y", "x"]
    assert multiscale["axes"][0]["unit"] == "second"
    assert ome["omero"]["channels"][0]["label"] == "GFP"
    # Per-plane time stamps and the camera, as in 0.4.
    info = root["attributes"]["dcimg"]
    with dcimg.DCIMGFile(example) as f:
        assert info["timestamps_us"] == f.timestamps.astype(np.int64).tolist()
        assert info["framestamps"] == f.framestamps.tolist()
        interval = float(np.median(np.diff(f.timestamps.astype(np.int64)))) / 1e6
    assert info["metadata"]["camera"]["model"] == "C11440-22C"
    scales = [
        d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]
    ]
    assert scales == [[interval, 0.65, 0.65], [interval, 1.3, 1.3]]
    for level, shape in (("0", [20, 64, 80]), ("1", [20, 32, 40])):
        array = json.loads((out / level / "zarr.json").read_text())
        assert array["shape"] == shape
        assert array["dimension_names"] == ["t", "y", "x"]
        (sharding,) = array["codecs"]
        assert sharding["name"] == "sharding_indexed"
        # The whole (small) stack is one shard of whole-frame chunks.
        assert array["chunk_grid"]["configuration"]["chunk_shape"] == shape
        assert sharding["configuration"]["chunk_shape"] == shape
    # One object per shard and level: the data, and the metadata documents.
    assert objects(out) == [
        "0/c/0/0/0",
        "0/zarr.json",
        "1/c/0/0/0",
        "1/zarr.json",
        "zarr.json",
    ]


def test_ngff_05_validates_and_reads_back_everywhere(tmp_path, example):
    truth = example_stack().reshape(4, 5, 64, 80).transpose(1, 0, 2, 3)
    out = dcimg.convert(
        example, tmp_path / "zt.ome.zarr", axes="ZT", z_size=4, pixel_size=(0.5, 0.6),
        z_step=2, pyramid=1,
    )  # fmt: skip
    models = pytest.importorskip("ome_zarr_models.v05.image")
    image = models.Image.from_zarr(zarr.open_group(str(out), mode="r"))
    (multiscale,) = image.ome_attributes.multiscales
    assert [a.name for a in multiscale.axes] == ["t", "z", "y", "x"]
    scale = multiscale.datasets[0].coordinateTransformations[0].scale
    assert scale[1:] == [2.0, 0.5, 0.6]
    # zarr-python
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][:], truth)
    # ome-zarr
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (node, *_) = list(reader.Reader(io.parse_url(str(out)))())
        levels = [np.asarray(level) for level in node.data]
    np.testing.assert_array_equal(levels[0], truth)
    assert levels[1].shape == (5, 4, 32, 40)
    # bioio-ome-zarr
    bioio = pytest.importorskip("bioio")
    pytest.importorskip("bioio_ome_zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bio = bioio.BioImage(out)
        assert (bio.dims.T, bio.dims.Z, bio.dims.Y, bio.dims.X) == (5, 4, 64, 80)
        assert tuple(bio.physical_pixel_sizes) == (2.0, 0.5, 0.6)
        np.testing.assert_array_equal(bio.get_image_data("TZYX"), truth)


def test_ngff_04_keeps_zarr_v2(tmp_path, example, capsys):
    out = tmp_path / "old.ome.zarr"
    status, _, err = run(capsys, "convert", example, out, "--ngff", "0.4")
    assert status == 0, err
    assert json.loads((out / ".zgroup").read_text())["zarr_format"] == 2
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert "omero" in attrs and "dcimg" in attrs
    models = pytest.importorskip("ome_zarr_models.v04.image")
    models.Image.from_zarr(zarr.open_group(str(out), mode="r"))
    header = json.loads((out / "0" / ".zarray").read_text())
    assert header["dimension_separator"] == "/"
    np.testing.assert_array_equal(zarr.open_group(str(out))["0"][:], example_stack())


@pytest.mark.parametrize(("argv", "version"), [([], 3), (["--zarr-format", "2"], 2)])
def test_plain_zarr_format(tmp_path, example, capsys, argv, version):
    out = tmp_path / "plain.zarr"
    status, _, err = run(capsys, "convert", example, out, *argv)
    assert status == 0, err
    array = zarr.open_array(str(out), mode="r")
    assert array.metadata.zarr_format == version
    assert (array.shards is not None) == (version == 3)
    np.testing.assert_array_equal(array[:], example_stack())
    assert array.attrs["dcimg"]["metadata"]["camera"]["serial"] == "301234"


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("o.zarr", ["--ngff", "0.4"], "--ngff applies to OME-Zarr"),
        ("o.tif", ["--zarr-format", "2"], "apply to Zarr output"),
        ("o.ome.zarr", ["--ngff", "0.4", "--zarr-format", "3"], "Zarr format 2"),
    ],
)
def test_format_options_that_disagree(tmp_path, example, capsys, name, argv, message):
    status, _, err = run(capsys, "convert", example, tmp_path / name, *argv)
    assert status == 2 and message in err, err
    assert not (tmp_path / name).exists()


def test_zarr_format_2_alone_means_ngff_04(tmp_path, example):
    out = dcimg.convert(example, tmp_path / "o.ome.zarr", zarr_format=2)
    assert json.loads((out / ".zattrs").read_text())["multiscales"][0]["version"]


def test_shards_gather_chunks_along_the_frames(tmp_path, example, monkeypatch):
    """Chunks of 2 frames in shards of 6 (SHARD_BYTES): 4 shards for 20 frames."""
    frame = 64 * 80 * 2
    monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 2 * frame)
    monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 6 * frame)
    reads = record_file_reads(monkeypatch)
    out = dcimg.convert(example, tmp_path / "s.ome.zarr")
    array = zarr.open_group(str(out), mode="r")["0"]
    assert (array.chunks, array.shards) == ((2, 64, 80), (6, 64, 80))
    assert [p for p in objects(out) if p.startswith("0/c/")] == [
        f"0/c/{k}/0/0" for k in range(4)
    ]
    # Whole shards are read and written at once: each shard once.
    assert len(reads) == 4
    np.testing.assert_array_equal(array[:], example_stack())


def test_shards_grow_across_axes_and_tiles(tmp_path, example, monkeypatch):
    """Y, X tiles: a shard holds whole frames; Z of a Z-major file too."""
    frame = 64 * 80 * 2
    monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 12 * frame)
    out = dcimg.convert(
        example, tmp_path / "t.ome.zarr", axes="ZT", z_size=4, chunks=(32, 32)
    )
    array = zarr.open_group(str(out), mode="r")["0"]
    # T (5, the inner axis of the file) whole, then 2 of the 4 Z planes;
    # Y and X rounded up to whole chunks.
    assert array.chunks == (5, 1, 32, 32)
    assert array.shards == (5, 2, 64, 96)
    truth = example_stack().reshape(4, 5, 64, 80).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(array[:], truth)


def test_default_shards_of_a_20_gib_acquisition(tmp_path):
    """At most 50 objects per level for 20 GiB of 2048 x 2048 frames."""
    from dcimg.testing import write_sparse_dcimg

    frames = 2560  # 2560 frames of 8 MiB: 20 GiB
    path = write_sparse_dcimg(tmp_path / "big.dcimg", frames, 2048, 2048)
    with dcimg.DCIMGFile(path) as f:
        fmt = _convert.output_format("x.ome.zarr")
        plan = _convert.plan._make_plan(f, "big", fmt, _convert._Options.checked())
        lead = plan.lead_shape
        chunks = _convert.zarr_output._zarr_chunks(plan, lead)
        shards = _convert.zarr_output._zarr_shards(plan, lead, chunks)
    assert chunks == (1, 2048, 2048)
    assert math.prod(shards) * 2 == _convert.zarr_output.SHARD_BYTES
    assert math.ceil(frames / shards[0]) <= 50


def test_no_write_outlives_a_failed_conversion(tmp_path, example, monkeypatch):
    """One object fails while others are being written: when the error
    reaches the caller, every write has ended and the folder is gone."""
    real_set = zarr.storage.LocalStore.set
    calls = []

    async def slow_or_failing_set(self: Any, key: str, value: Any) -> None:
        if key.rsplit("/", 1)[-1] in (".zarray", ".zattrs", ".zgroup", "zarr.json"):
            return await real_set(self, key, value)
        calls.append(key)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        await asyncio.sleep(0.3)  # still writing when the error is raised
        await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", slow_or_failing_set)
    out = tmp_path / "o.zarr"
    # Format 2 with tiles: one region is 6 objects written concurrently.
    with pytest.raises(OSError, match="no space left"):
        dcimg.convert(example, out, zarr_format=2, chunks=(20, 32, 32))
    time.sleep(0.6)  # a write left running would recreate folders by now
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_full_disk_mid_shard(tmp_path, example, monkeypatch, capsys):
    """The disk fills while a shard is written: one line, nothing left."""

    async def full(self: Any, key: str, value: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full)
    out = tmp_path / "o.ome.zarr"
    status, _, err = run(capsys, "convert", example, out)
    assert status == 1
    assert err == f"dcimg convert: {out}: no space left on the device\n"
    assert list(tmp_path.iterdir()) == []


def test_zarr_2_is_missing(tmp_path, example, monkeypatch):
    """zarr-python 2 installed: a clear MissingDependencyError, nothing made."""
    import types

    old = types.ModuleType("zarr")
    old.__version__ = "2.18.3"
    monkeypatch.setitem(__import__("sys").modules, "zarr", old)
    with pytest.raises(dcimg.MissingDependencyError, match="zarr-python 3"):
        dcimg.convert(example, tmp_path / "o.ome.zarr")
    assert list(tmp_path.iterdir()) == []


def test_uint8_and_floats_round_trip(tmp_path):
    stack = example_stack(5, 9, 11, dtype=np.uint8)
    path = write_dcimg(tmp_path / "u8.dcimg", stack)
    for dtype in (None, "float32"):
        out = dcimg.convert(path, tmp_path / f"u8-{dtype}.ome.zarr", dtype=dtype)
        got = zarr.open_group(str(out), mode="r")["0"][:]
        np.testing.assert_array_equal(got, stack.astype(dtype or np.uint8))


def test_reading_overlaps_writing(tmp_path, example, monkeypatch):
    """While zarr-python writes a shard, the next one is read."""
    import threading

    frame = 64 * 80 * 2
    monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 5 * frame)
    monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 5 * frame)
    writing = threading.Event()
    read_while_writing = threading.Event()
    original = dcimg.DCIMGFile.read
    real_set = zarr.storage.LocalStore.set

    reads = []

    def read(self, key=Ellipsis, **kwargs):
        reads.append(key)
        # Every read but the first waits (2 s at most) for a shard's write.
        if len(reads) > 1 and writing.wait(2):
            read_while_writing.set()
        return original(self, key, **kwargs)

    async def set_(self: Any, key: str, value: Any) -> None:
        if key.startswith("0/c/"):
            writing.set()
            # The next shard's read is under way: it sees the write.
            await asyncio.get_running_loop().run_in_executor(
                None, read_while_writing.wait, 2
            )
            writing.clear()
        await real_set(self, key, value)

    monkeypatch.setattr(dcimg.DCIMGFile, "read", read)
    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_)
    out = dcimg.convert(example, tmp_path / "o.ome.zarr")
    assert read_while_writing.is_set()
    np.testing.assert_array_equal(zarr.open_group(str(out))["0"][:], example_stack())


def test_shard_size_option(tmp_path, capsys):
    """--shard-size (MiB) and shard_bytes: a shard is at least one chunk;
    2 MiB shards of 1 MiB chunks hold 2."""
    path = write_dcimg(tmp_path / "s.dcimg", example_stack(5, 512, 1024))
    out = tmp_path / "s.ome.zarr"
    status, _, err = run(capsys, "convert", path, out, "--shard-size", "2")
    assert status == 0, err
    array = zarr.open_group(str(out), mode="r")["0"]
    assert (array.chunks, array.shards) == ((5, 512, 1024), (5, 512, 1024))
    out = dcimg.convert(
        path, tmp_path / "t.ome.zarr", shard_bytes=2 << 20, chunks=(1, 512, 1024)
    )
    array = zarr.open_group(str(out), mode="r")["0"]
    assert (array.chunks, array.shards) == ((1, 512, 1024), (2, 512, 1024))
    np.testing.assert_array_equal(array[:], example_stack(5, 512, 1024))
    for argv, message in (
        (["--shard-size", "0.5"], "--shard-size must be at least 1 MiB"),
        (["--shard-size", "2", "--ngff", "0.4"], "Zarr format 3"),
    ):
        status, _, err = run(capsys, "convert", path, tmp_path / "x.ome.zarr", *argv)
        assert status == 2 and message in err, err
    status, _, err = run(
        capsys, "convert", path, tmp_path / "x.tif", "--shard-size", "2"
    )
    assert status == 2 and "Zarr format 3" in err, err
