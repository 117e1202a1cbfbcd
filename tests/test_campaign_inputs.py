"""Campaign: conversions never replace an input named through an fsspec chain.

fsspec reads ``simplecache::file:///data/a.dcimg`` (and a chain whose last
part has no protocol, ``simplecache::/data/a.dcimg``) from the local file;
such an input is protected like a plain path.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import dcimg
from dcimg._convert import InputCollisionError, _local_path
from dcimg.cli import main
from dcimg.testing import write_dcimg

FRAMES = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)

SPELLINGS = {
    "simplecache-file-url": lambda path: "simplecache::file://" + path,
    "blockcache-file-url": lambda path: "blockcache::file://" + path,
    "simplecache-bare-path": lambda path: "simplecache::" + path,
}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS)
def test_a_chained_local_input_is_never_replaced(tmp_path, spell):
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    path = folder / "x.dcimg"
    write_dcimg(path, FRAMES)
    before = path.read_bytes()
    with dcimg.DCIMGFile(spell(str(path))) as f:
        with pytest.raises(InputCollisionError, match="x.dcimg"):
            dcimg.convert(f, folder, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(folder)) == ["x.dcimg"]


def test_the_command_line_refuses_a_chained_local_input(tmp_path, capsys):
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    path = folder / "x.dcimg"
    write_dcimg(path, FRAMES)
    url = "simplecache::file://" + str(path)
    status = main(["convert", url, str(folder), "--overwrite", "-q"])
    assert status == 2
    assert "refusing" in capsys.readouterr().err
    assert path.exists()


def test_a_relative_file_url_is_judged_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _local_path("file://a/x.dcimg") == str(tmp_path / "a" / "x.dcimg")
    assert _local_path("simplecache::file://a/x.dcimg") == str(tmp_path / "a/x.dcimg")
    assert _local_path("https://host/a.dcimg") is None
    assert _local_path("simplecache::https://host/a.dcimg") is None
    assert _local_path("simplecache::memory") is None


def test_still_remote_chains_convert_beside_themselves(tmp_path):
    path = tmp_path / "x.dcimg"
    write_dcimg(path, FRAMES)
    with dcimg.DCIMGFile("simplecache::file://" + str(path)) as f:
        out = dcimg.convert(f, tmp_path / "x.tif")
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(out), FRAMES)


def test_an_input_opened_by_a_relative_path_is_protected_after_chdir(
    tmp_path, monkeypatch
):
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    path = folder / "x.dcimg"
    write_dcimg(path, FRAMES)
    monkeypatch.chdir(tmp_path)
    f = dcimg.DCIMGFile("out.zarr/x.dcimg")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    try:
        with pytest.raises(InputCollisionError):
            dcimg.convert(f, folder, overwrite=True)
    finally:
        f.close()
        assert path.exists()


def test_a_file_object_without_a_path_name_is_protected(tmp_path):
    """os.fdopen gives a file object whose name is a number, not a path."""
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    path = folder / "x.dcimg"
    write_dcimg(path, FRAMES)
    before = path.read_bytes()
    os.link(path, tmp_path / "hard.tif")
    with os.fdopen(os.open(path, os.O_RDONLY), "rb") as handle:
        assert isinstance(handle.name, int)
        with dcimg.DCIMGFile(handle) as f:
            with pytest.raises(InputCollisionError):
                dcimg.convert(f, tmp_path / "hard.tif", overwrite=True)
            if os.path.exists(f"/proc/self/fd/{handle.fileno()}"):
                # Where the system names the descriptor's file, its folders
                # are protected too.
                with pytest.raises(InputCollisionError):
                    dcimg.convert(f, folder, overwrite=True)
            out = dcimg.convert(f, tmp_path / "beside.tif")
    assert out.exists()
    assert path.read_bytes() == before
    assert sorted(os.listdir(folder)) == ["x.dcimg"]
