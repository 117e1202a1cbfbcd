"""DCIMG as Zarr without converting: ``aszarr()`` stores and reference files.

Every synthetic variant (packed, framed 0x1000000/0x2000000, 8/16-bit, row
padding, trailers, stored pixels, fallback rows, the three correction modes)
is read through ``DCIMGFile.aszarr()`` and through a kerchunk reference file
(locally and over the HTTP test server) and compared with the true image,
bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import http_server, s3_server, serving_http  # noqa: F401
from test_properties import SETTINGS, Variant, expected, variants
from test_properties import folder as folder  # noqa: PLC0414  (the fixture)

import dcimg
from dcimg.testing import example_stack, write_dcimg, write_example

zarr = pytest.importorskip("zarr")
if int(zarr.__version__.split(".")[0]) < 3:  # pragma: no cover - zarr 2 only
    pytest.skip("aszarr and references need zarr 3", allow_module_level=True)
pytest.importorskip("fsspec")

EXAMPLES = max(10, int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "500")) // 5)
ZARR_SETTINGS = SETTINGS.__class__(SETTINGS, max_examples=EXAMPLES)
HTTP_SETTINGS = SETTINGS.__class__(SETTINGS, max_examples=max(5, EXAMPLES // 4))
MODES = [True, False, None]
# What a reader passes to read references to an HTTP URL (zarr opens the
# reference file system asynchronously, so the HTTP one must be too).
HTTP = {"remote_protocol": "http", "remote_options": {"asynchronous": True}}


def open_references(refs: Path, zarr_format: int = 3, **options) -> zarr.Group:
    return zarr.open_group(
        "reference://",
        mode="r",
        storage_options={"fo": str(refs), **options},
        zarr_format=zarr_format,
    )


def chunk_counts(frames: int) -> st.SearchStrategy:
    return st.one_of(st.just("auto"), st.just(-1), st.integers(1, frames + 1))


def assert_bitwise(got, want) -> None:
    got = np.asarray(got)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def check_group(group: zarr.Group, want: np.ndarray, data: st.DataObject) -> None:
    """The image array equals ``want`` whole and for a drawn selection."""
    image = group["0"]
    assert_bitwise(image[...], want)
    frames, height, width = want.shape
    first = data.draw(st.integers(0, frames - 1))
    last = data.draw(st.integers(first + 1, frames))
    rows = slice(
        data.draw(st.integers(0, height - 1)), None, data.draw(st.integers(1, 3))
    )
    assert_bitwise(image[first:last, rows], want[first:last, rows])


@ZARR_SETTINGS
@given(data=st.data())
def test_store_reads_every_variant_bit_for_bit(folder, data):
    variant: Variant = data.draw(variants(folder))
    chunks = data.draw(chunk_counts(variant.truth.shape[0]))
    for mode in MODES:
        with dcimg.DCIMGFile(variant.path, first_4px_correction_enabled=mode) as f:
            want = expected(variant, mode)
            assert_bitwise(f[...], want)  # the reader itself agrees
            check_group(zarr.open_group(f.aszarr(chunks), mode="r"), want, data)
            root = zarr.open_array(f.aszarr(chunks, group=False), mode="r")
            assert_bitwise(root[...], want)


@ZARR_SETTINGS
@given(data=st.data())
def test_references_read_every_variant_bit_for_bit(folder, data):
    variant: Variant = data.draw(variants(folder))
    chunks = data.draw(chunk_counts(variant.truth.shape[0]))
    zarr_format = data.draw(st.sampled_from([3, 3, 2]))
    for mode in MODES:
        refs = dcimg.write_references(
            variant.path,
            variant.path.with_suffix(f".{mode}.json"),
            chunks=chunks,
            first_4px_correction_enabled=mode,
            zarr_format=zarr_format,
        )
        group = open_references(refs, zarr_format)
        check_group(group, expected(variant, mode), data)


@HTTP_SETTINGS
@given(data=st.data())
def test_references_and_store_over_http(folder, data):
    variant: Variant = data.draw(variants(folder))
    chunks = data.draw(chunk_counts(variant.truth.shape[0]))
    mode = data.draw(st.sampled_from(MODES))
    want = expected(variant, mode)
    with serving_http() as server:
        server.files["/v.dcimg"] = variant.path.read_bytes()
        url = server.url("/v.dcimg")
        refs = dcimg.write_references(
            url,
            variant.path.with_suffix(".http.json"),
            chunks=chunks,
            first_4px_correction_enabled=mode,
        )
        assert json.loads(refs.read_text())["templates"]["u"] == url
        check_group(open_references(refs, **HTTP), want, data)
        with dcimg.DCIMGFile(url, first_4px_correction_enabled=mode) as f:
            check_group(zarr.open_group(f.aszarr(chunks), mode="r"), want, data)


def test_local_references_then_served_over_http(tmp_path, http_server):  # noqa: F811
    """``target=``: references written from the local file, read by URL."""
    stack = example_stack(nframes=7, height=20, width=16)
    path = write_dcimg(tmp_path / "a.dcimg", stack, version=0x2000000)
    http_server.files["/a.dcimg"] = path.read_bytes()
    url = http_server.url("/a.dcimg")
    refs = dcimg.write_references(path, tmp_path / "a.json", chunks=2, target=url)
    group = open_references(refs, **HTTP)
    assert_bitwise(group["0"][...], stack)
    assert len(http_server.requests_for("/a.dcimg")) == 4  # one per chunk


TRUNCATIONS = [
    # (version, bytes cut from the end): framed cut inside the last trailer's
    # stored values (that frame is returned as stored), after them (its time
    # stamp lost, pixels restored), and a packed file cut before its footer.
    (0x1000000, 64 + 32 - 10),
    (0x1000000, 64 + 32 - 28),
    (0x1000000, 64 + 8),
    (0x7, 30),
]


@pytest.mark.parametrize(("version", "cut"), TRUNCATIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunks", [1, 2, 3, -1])
def test_truncated_files(tmp_path, version, cut, mode, chunks):
    stack = example_stack(nframes=5, height=16, width=24)
    full = write_dcimg(tmp_path / "full.dcimg", stack, version=version,
                       stored_pixels_row=3)  # fmt: skip
    size = full.stat().st_size
    path = write_dcimg(tmp_path / "cut.dcimg", stack, version=version,
                       stored_pixels_row=3, truncate_to=size - cut)  # fmt: skip
    with pytest.warns(dcimg.DCIMGWarning):
        want = dcimg.imread(path, first_4px_correction_enabled=mode)
    with pytest.warns(dcimg.DCIMGWarning):
        refs = dcimg.write_references(
            path, tmp_path / "r.json", chunks=chunks, first_4px_correction_enabled=mode
        )
    assert_bitwise(open_references(refs)["0"][...], want)
    with (
        pytest.warns(dcimg.DCIMGWarning),
        dcimg.DCIMGFile(path, first_4px_correction_enabled=mode) as f,
    ):
        store = f.aszarr(chunks)
        assert_bitwise(zarr.open_group(store, mode="r")["0"][...], want)


def test_packed_file_restores_from_the_codec_table(tmp_path):
    """A packed file's true values live in its footer: they travel with the
    codec's settings, and every chunk's range says which chunk it is."""
    stack = example_stack(nframes=9, height=16, width=24)
    path = write_dcimg(tmp_path / "p.dcimg", stack, version=0x7, stored_pixels_row=5)
    refs = dcimg.write_references(path, tmp_path / "p.json", chunks=2)
    document = json.loads(refs.read_text())
    image = json.loads(document["refs"]["0/zarr.json"])
    config = image["codecs"][0]["configuration"]
    assert config["stored_table"] and config["correction"] == "restore"
    lengths = [document["refs"][f"0/c/{k}/0/0"][2] for k in range(5)]
    frame = 16 * 24 * 2
    assert lengths == [2 * frame, 2 * frame + 1, 2 * frame + 2, 2 * frame + 3,
                       frame + 4]  # fmt: skip
    assert_bitwise(open_references(refs)["0"][...], stack)
    with dcimg.DCIMGFile(path, first_4px_correction_enabled=None) as f:
        assert (f[:, 5, :4] != stack[:, 5, :4]).any()  # there was a pattern


def test_a_changed_file_is_refused_not_misread(tmp_path):
    stack = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", stack)
    refs = dcimg.write_references(path, tmp_path / "a.json", chunks=4)
    write_dcimg(path, stack[:5])  # shorter: the last chunk's range is cut
    group = open_references(refs)
    with pytest.raises(dcimg.DCIMGFormatError, match="matches no chunk"):
        group["0"][4:]


def test_codec_settings_are_checked():
    from dcimg.codecs import DCIMGFramesCodec

    good = {"byte_depth": 2, "height": 4, "width": 4, "bytes_per_row": 8,
            "frame_stride": 64, "frames": 3, "chunk_frames": 2,
            "last_chunk_bytes": 32}  # fmt: skip
    codec = DCIMGFramesCodec.from_dict({"name": "dcimg_frames", "configuration": good})
    assert DCIMGFramesCodec.from_dict(codec.to_dict()) == codec
    bad = [
        {"byte_depth": 3},
        {"bytes_per_row": 7},
        {"frame_stride": 31},
        {"correction": "maybe"},
        {"stored_bytes": 8, "stored_row": 4, "stored_offset": 32},
        {"stored_bytes": 8, "stored_offset": 60},
        {"stored_bytes": 8, "correction": "restore"},  # no source of values
        {"stored_bytes": 8, "stored_frames": 3, "stored_table": "AAAA"},
        {"height": True},
        {"stored_table": 12},
        {"surprise": 1},
    ]
    for change in bad:
        with pytest.raises(dcimg.DCIMGFormatError):
            DCIMGFramesCodec(**{**good, **change})


def test_codecs_register_in_a_fresh_process(tmp_path):
    """Only zarr, numcodecs and NumPy imported by the script: the entry
    points find the codecs (zarr v3 and numcodecs) in the installed package,
    for Zarr v3 and v2 references."""
    stack = example_stack(nframes=5, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", stack, version=0x7, stored_pixels_row=2)
    refs = dcimg.write_references(path, tmp_path / "a.json", chunks=2)
    refs2 = dcimg.write_references(path, tmp_path / "a2.json", zarr_format=2)
    np.save(tmp_path / "want.npy", stack)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import numcodecs
        import zarr

        assert "dcimg" not in sys.modules
        group = zarr.open_group(
            "reference://", mode="r", storage_options={{"fo": {str(refs)!r}}}
        )
        got = group["0"][...]
        want = np.load({str(tmp_path / "want.npy")!r})
        assert (got == want).all() and got.dtype == want.dtype
        version2 = zarr.open_group(
            "reference://", mode="r", zarr_format=2,
            storage_options={{"fo": {str(refs2)!r}}},
        )
        got = version2["0"][...]
        assert (got == want).all() and got.dtype == want.dtype
        codec = numcodecs.get_codec(
            {{"id": "dcimg_frames", "dtype": "<u2", "byte_depth": 2, "height": 2,
             "width": 2, "bytes_per_row": 4, "frame_stride": 8, "frames": 1,
             "chunk_frames": 1, "last_chunk_bytes": 8}}
        )
        out = codec.decode(bytes(range(8)))
        assert out.tolist() == [[[256, 770], [1284, 1798]]], out.tolist()
        print("ok", type(codec).__module__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "dcimg.codecs"]


def test_store_metadata_for_xarray_dask_and_ngff(tmp_path):
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    path = write_example(tmp_path / "example.dcimg")
    with dcimg.DCIMGFile(path) as f:
        want = f[...]
        stamps = f.timestamps
        counters = f.framestamps
        for store in (f.aszarr(3), None):
            if store is None:
                refs = dcimg.write_references(path, tmp_path / "e.json", chunks=3)
                opened = xr.open_zarr(
                    "reference://", storage_options={"fo": str(refs)},
                    consolidated=False,
                )  # fmt: skip
            else:
                opened = xr.open_zarr(store, consolidated=False)
            image = opened["0"]
            assert image.dims == ("t", "y", "x")
            np.testing.assert_array_equal(image.values, want)
            np.testing.assert_array_equal(
                opened["t"].values.astype("datetime64[us]"), stamps
            )
            np.testing.assert_array_equal(opened["framestamp"].values, counters)
            ome = opened.attrs["ome"]
            assert ome["version"] == "0.5"
            axes = ome["multiscales"][0]["axes"]
            assert [a["name"] for a in axes] == ["t", "y", "x"]
            scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"]
            assert scale[0]["scale"][0] == pytest.approx(1 / 30, rel=1e-3)
        lazy = da.from_zarr(f.aszarr(4), component="0")
        assert lazy.chunksize == (4, 64, 80)
        np.testing.assert_array_equal(lazy.compute(), want)
        assert f.aszarr().__eq__(f.aszarr()) is True


def test_store_is_valid_ome_ngff(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05")
    path = write_example(tmp_path / "example.dcimg")
    with dcimg.DCIMGFile(path) as f:
        image = models.Image.from_zarr(zarr.open_group(f.aszarr(), mode="r"))
        assert [a.name for a in image.ome_attributes.multiscales[0].axes] == [
            "t", "y", "x"]  # fmt: skip
        refs = dcimg.write_references(path, tmp_path / "e.json")
        models.Image.from_zarr(open_references(refs))


def test_series_store(tmp_path):
    stacks = [example_stack(nframes=4, height=8, width=12, seed=k) for k in range(3)]
    for k, stack in enumerate(stacks):
        write_dcimg(tmp_path / f"cell_{k:03d}.dcimg", stack)
    with dcimg.DCIMGSeries(tmp_path / "cell_*.dcimg") as series:
        want = series[...]
        group = zarr.open_group(series.aszarr(3), mode="r")
        image = group["0"]
        assert image.shape == series.shape == (3, 4, 8, 12)
        assert image.chunks == (1, 3, 8, 12)
        assert_bitwise(image[...], want)
        assert_bitwise(image[1:, 2:], want[1:, 2:])
        assert group["timestamp"].shape == (3, 4)
        dims = image.metadata.dimension_names
        assert dims == (*series.axes, "t", "y", "x")


def test_errors(tmp_path):
    path = write_example(tmp_path / "example.dcimg")
    f = dcimg.DCIMGFile(path)
    for bad in ("lots", 0, -2, 1.5, True):
        with pytest.raises(ValueError, match="chunks"):
            f.aszarr(bad)
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.aszarr()
    with pytest.raises(dcimg.InputCollisionError):
        dcimg.write_references(path, path)
    assert path.read_bytes()[:5] == b"DCIMG"
    with pytest.raises(dcimg.ConversionError, match="target="):
        dcimg.write_references(
            "http://user:secret@127.0.0.1:9/a.dcimg", tmp_path / "never.json"
        )
    assert not (tmp_path / "never.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["example.dcimg"]
    bad = tmp_path / "bad.dcimg"
    bad.write_bytes(b"not a dcimg file" * 10)
    with pytest.raises(dcimg.DCIMGFormatError):
        dcimg.write_references(bad, tmp_path / "bad.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dcimg", "example.dcimg"]


def test_command_line(tmp_path, capsys):
    from dcimg.cli import main

    stack = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", stack, version=0x7, stored_pixels_row=1)
    out = tmp_path / "a.json"
    assert main(["references", "--chunks", "4", str(path), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert_bitwise(open_references(out)["0"][...], stack)
    assert main(["references", "--correction", "zero", str(path), str(out)]) == 0
    zeroed = stack.copy()
    zeroed[:, 1, :4] = 0
    assert_bitwise(open_references(out)["0"][...], zeroed)
    assert main(["references", "--zarr-format", "2", str(path), str(out)]) == 0
    assert_bitwise(open_references(out, 2)["0"][...], stack)
    with pytest.raises(SystemExit) as exit_info:
        main(["references", str(path), str(path)])
    assert exit_info.value.code == 2
    assert main(["references", str(tmp_path / "none.dcimg"), str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["references", "--chunks", "many", str(path), str(out)])


def test_ome_zarr_py_reads_the_references(tmp_path):
    """ome-zarr-py's reader takes file-system stores only: the references,
    through fsspec's reference file system, are one."""
    fsspec = pytest.importorskip("fsspec")
    io = pytest.importorskip("ome_zarr.io")
    reader = pytest.importorskip("ome_zarr.reader")
    path = write_example(tmp_path / "example.dcimg")
    refs = dcimg.write_references(path, tmp_path / "e.json", chunks=4)
    fs = fsspec.filesystem("reference", fo=str(refs), asynchronous=True)
    store = zarr.storage.FsspecStore(fs, path="", read_only=True)
    nodes = list(reader.Reader(io.ZarrLocation(store))())
    pyramid = nodes[0].data
    assert len(pyramid) == 1
    assert_bitwise(pyramid[0].compute(), dcimg.imread(path))
    axes = nodes[0].metadata["axes"]
    assert [a["name"] for a in axes] == ["t", "y", "x"]


def test_ngff_metadata_only_where_ngff_allows_the_axes(tmp_path):
    from dcimg._zarr_metadata import ngff_allows, ngff_axes

    assert ngff_allows(ngff_axes(""))
    for axes in ("c", "z", "cz", "t", "p"):
        assert not ngff_allows(ngff_axes(axes)), axes  # t is not first
    for c in range(2):
        for z in range(2):
            stack = example_stack(nframes=3, height=8, width=12, seed=3 * c + z)
            write_dcimg(tmp_path / f"a_c{c}_z{z:02d}.dcimg", stack)
    pattern = r".*_c(\d+)_z(\d+)\.dcimg"
    with dcimg.DCIMGSeries(tmp_path / "a_c*", pattern=pattern, axes="cz") as series:
        group = zarr.open_group(series.aszarr(), mode="r")
        assert "ome" not in group.attrs
        assert "does not allow" in group.attrs["dcimg"]["ome"]
        assert_bitwise(group["0"][...], series[...])
    files = sorted(tmp_path.glob("a_c0_*.dcimg"))
    with dcimg.DCIMGSeries(files, pattern=pattern, concat=True) as series:
        assert series.shape == (6, 8, 12)
        group = zarr.open_group(series.aszarr(4), mode="r")
        assert group.attrs["ome"]["version"] == "0.5"
        assert_bitwise(group["0"][...], series[...])
        np.testing.assert_array_equal(group["t"][...], series.timestamps.view("i8"))


def test_store_of_a_file_that_shrank_raises(tmp_path):
    stack = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", stack)
    with dcimg.DCIMGFile(path) as f:
        image = zarr.open_group(f.aszarr(2), mode="r")["0"]
        assert_bitwise(image[:2], stack[:2])
        os.truncate(path, 2000)
        with pytest.raises(dcimg.DCIMGChangedError):
            image[4:]


def test_kerchunk_combines_version_2_references(tmp_path):
    """Files of one layout and length: kerchunk's MultiZarrToZarr stacks
    their Zarr v2 references into one array along a new axis."""
    combine = pytest.importorskip("kerchunk.combine")
    stacks = [example_stack(nframes=5, height=16, width=24, seed=k) for k in range(3)]
    refs = []
    for k, stack in enumerate(stacks):
        path = write_dcimg(tmp_path / f"a{k}.dcimg", stack, stored_pixels_row=2)
        out = tmp_path / f"a{k}.json"
        refs.append(str(dcimg.write_references(path, out, chunks=2, zarr_format=2)))
    combined = combine.MultiZarrToZarr(
        refs, concat_dims=["c"], coo_map={"c": "INDEX"}, identical_dims=["t"]
    ).translate()
    (tmp_path / "all.json").write_text(json.dumps(combined))
    group = open_references(tmp_path / "all.json", 2)
    assert_bitwise(group["0"][...], np.stack(stacks))


# The golden files (copies of the project's shared fixtures).
GOLDEN = Path(__file__).parent / "data"


@pytest.mark.parametrize("mode", MODES)
def test_golden_files(tmp_path, mode):
    import warnings

    paths = sorted(GOLDEN.glob("*.dcimg"))
    assert len(paths) >= 8
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dcimg.DCIMGWarning)
            want = dcimg.imread(path, first_4px_correction_enabled=mode)
            if mode:  # the true image, as the fixture records it
                truth = np.load(path.with_suffix(".npz"))["data"]
                np.testing.assert_array_equal(want, truth)
            for chunks in ("auto", 1, 2):
                refs = dcimg.write_references(
                    path, tmp_path / "r.json", chunks=chunks,
                    first_4px_correction_enabled=mode,
                )  # fmt: skip
                assert_bitwise(open_references(refs)["0"][...], want)
                with dcimg.DCIMGFile(path, first_4px_correction_enabled=mode) as f:
                    group = zarr.open_group(f.aszarr(chunks), mode="r")
                    assert_bitwise(group["0"][...], want)


@pytest.mark.parametrize("version", [0x7, 0x2000000])
def test_s3_references_and_store(tmp_path, s3_server, version):  # noqa: F811
    """An object in S3 (moto on 127.0.0.1): references written from its URL
    (credentials stay in the storage options, never in the file) and read
    through s3fs, and the store of the file opened by URL."""
    stack = example_stack(nframes=7, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", stack, version=version,
                       stored_pixels_row=4)  # fmt: skip
    url = s3_server.put(f"a{version}.dcimg", path.read_bytes())
    options = s3_server.storage_options
    refs = dcimg.write_references(
        url, tmp_path / "a.json", chunks=3, storage_options=options
    )
    text = refs.read_text()
    assert url in text and options["secret"] not in text
    remote = {**options, "asynchronous": True}
    group = open_references(refs, remote_protocol="s3", remote_options=remote)
    assert_bitwise(group["0"][...], stack)
    with dcimg.DCIMGFile(url, storage_options=options) as f:
        assert_bitwise(zarr.open_group(f.aszarr(2), mode="r")["0"][...], stack)
