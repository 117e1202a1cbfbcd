"""The public error model (:mod:`dcimg.errors`).

One base class; bad content is a ``ValueError``, a file that could not be
read or changed is an ``OSError``, a missing optional package an
``ImportError``; every error names its file in ``path`` (a series' member
included); every class is public, exported and documented.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import sys

import numpy as np
import pytest

import dcimg
from dcimg import errors
from dcimg.testing import example_stack, write_dcimg, write_series

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Each class, and the built-in exception it must also be (None: only the base).
KINDS = {
    "DCIMGError": None,
    "DCIMGFormatError": ValueError,
    "DCIMGSeriesError": ValueError,
    "ConversionError": ValueError,
    "InputCollisionError": ValueError,
    "DCIMGReadError": OSError,
    "DCIMGChangedError": OSError,
    "MissingDependencyError": ImportError,
}
BUILTINS = (ValueError, OSError, ImportError)


def test_every_error_is_public_and_listed():
    assert sorted(errors.__all__) == sorted([*KINDS, "DCIMGWarning"])
    for name in errors.__all__:
        assert getattr(dcimg, name) is getattr(errors, name)
        assert name in dcimg.__all__


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_error_is_one_kind_of_builtin(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DCIMGError)
    kind = KINDS[name]
    for builtin in BUILTINS:
        assert issubclass(cls, builtin) is (builtin is kind), (name, builtin)


def test_changed_is_a_read_error_and_collision_a_conversion_error():
    assert issubclass(errors.DCIMGChangedError, errors.DCIMGReadError)
    assert issubclass(errors.InputCollisionError, errors.ConversionError)
    assert issubclass(errors.DCIMGWarning, UserWarning)
    assert not issubclass(errors.DCIMGWarning, errors.DCIMGError)


@pytest.mark.parametrize(
    "error",
    [
        errors.DCIMGError("m", "/a.dcimg"),
        errors.DCIMGFormatError("m", "magic", "/a.dcimg"),
        errors.DCIMGSeriesError("m", "/run/"),
        errors.ConversionError("m", "/a.dcimg"),
        errors.InputCollisionError("out", "/a.dcimg", "it is"),
        errors.DCIMGReadError("m", "http://host/a.dcimg"),
        errors.DCIMGChangedError("m", "/a.dcimg"),
        errors.MissingDependencyError("m", "tifffile", "/a.dcimg"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_cross_process_boundaries_whole(error):
    # Dask workers and multiprocessing pickle errors back to the caller.
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.path == error.path
    for attribute in ("field", "output", "input", "name"):
        assert getattr(again, attribute, None) == getattr(error, attribute, None)


def test_documented_on_one_page():
    page = (ROOT / "docs" / "errors.rst").read_text(encoding="utf-8")
    for name in errors.__all__:
        assert f"dcimg.errors.{name}" in page or name in page, name


# -- Raised for real, with the file named in ``path`` ---------------------


def test_not_dcimg_is_a_format_error_naming_the_file(tmp_path):
    path = tmp_path / "notes.dcimg"
    path.write_bytes(b"not a dcimg file" * 64)
    with pytest.raises(errors.DCIMGFormatError) as info:
        dcimg.DCIMGFile(path)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, OSError)
    assert info.value.path == str(path)
    assert info.value.field == "magic"


def test_a_shrunk_file_is_an_os_error_naming_the_file(tmp_path):
    path = write_dcimg(tmp_path / "a.dcimg", example_stack(nframes=4))
    with dcimg.DCIMGFile(path, mmap=False) as f:
        os.truncate(path, os.path.getsize(path) // 2)
        with pytest.raises(errors.DCIMGChangedError) as info:
            f.whole()
    assert isinstance(info.value, OSError)
    assert not isinstance(info.value, ValueError)
    assert info.value.path == str(path)


def test_a_broken_file_object_is_a_read_error(tmp_path):
    # Large enough that opening reads only the headers.
    frames = np.zeros((8, 512, 512), np.uint16)
    data = pathlib.Path(write_dcimg(tmp_path / "a.dcimg", frames)).read_bytes()

    class Broken(io.BytesIO):
        broken = False

        def readinto(self, buffer):  # type: ignore[override]
            if self.broken:
                raise OSError(5, "Input/output error")
            return super().readinto(buffer)

    source = Broken(data)
    f = dcimg.DCIMGFile(source)
    source.broken = True
    with pytest.raises(errors.DCIMGReadError) as info:
        f.whole()
    assert isinstance(info.value, OSError)
    assert info.value.path


def test_series_errors_name_the_folder_or_the_member(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.DCIMGSeriesError) as info:
        dcimg.DCIMGSeries(empty)
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(empty)

    run = tmp_path / "run"
    write_series(run, np.zeros((2, 2, 2, 8, 8), np.uint16), name="c")
    os.remove(run / "c_000_001.dcimg")
    with pytest.raises(errors.DCIMGSeriesError, match="gaps") as info:
        dcimg.DCIMGSeries(run)
    assert info.value.path == str(run)

    (run / "c_000_001.dcimg").write_bytes(b"x" * 4096)
    with pytest.raises(errors.DCIMGFormatError) as info:
        dcimg.DCIMGSeries(run).whole()
    assert info.value.path == str(run / "c_000_001.dcimg")


def test_an_input_collision_names_the_input(tmp_path):
    (tmp_path / "keep.zarr").mkdir()
    path = write_dcimg(tmp_path / "keep.zarr" / "a.dcimg", example_stack(nframes=2))
    with pytest.raises(errors.InputCollisionError) as info:
        dcimg.convert(path, tmp_path / "keep.zarr", overwrite=True)
    assert isinstance(info.value, ValueError)
    assert os.path.samefile(info.value.path, path)
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize(
    ("modules", "call", "package"),
    [
        (("tifffile",), lambda f, tmp: dcimg.convert(f, tmp / "o.ome.tif"), "tifffile"),
        (("dask", "dask.array"), lambda f, tmp: f.as_dask_array(), "dask"),
        (("xarray",), lambda f, tmp: f.to_xarray(), "xarray"),
    ],
    ids=["tifffile", "dask", "xarray"],
)
def test_a_missing_package_is_an_import_error_naming_it(
    tmp_path, monkeypatch, modules, call, package
):
    path = write_dcimg(tmp_path / "a.dcimg", example_stack(nframes=2))
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import fails
    with (
        dcimg.DCIMGFile(path) as f,
        pytest.raises(errors.MissingDependencyError) as info,
    ):
        call(f, tmp_path)
    assert isinstance(info.value, ImportError)
    assert info.value.name == package
    assert "pip install" in str(info.value)


def test_quiet_warnings_affects_only_its_own_thread(tmp_path):
    # Files reopened by Dask tasks and series members are opened quietly;
    # a file opened meanwhile on another thread still warns (swapping the
    # process-wide warning filters, as catch_warnings does, would lose it).
    import threading
    import warnings

    path = write_dcimg(tmp_path / "cut.dcimg", example_stack(nframes=4))
    os.truncate(path, os.path.getsize(path) - 100)  # an interrupted recording
    inside, leave = threading.Event(), threading.Event()
    quiet_caught: list[warnings.WarningMessage] = []

    def quiet_opener() -> None:
        with errors.quiet_warnings(), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            dcimg.DCIMGFile(path).close()
            quiet_caught.extend(seen)
            inside.set()
            leave.wait(30)

    worker = threading.Thread(target=quiet_opener)
    worker.start()
    try:
        assert inside.wait(30)
        assert not errors.warnings_quieted()
        with pytest.warns(errors.DCIMGWarning, match="cut.dcimg"):
            dcimg.DCIMGFile(path).close()
    finally:
        leave.set()
        worker.join(30)
    assert not [w for w in quiet_caught if issubclass(w.category, errors.DCIMGWarning)]
