"""Tests of the imageio plugin (``dcimg._imageio``) and its start-up hook.

The plugin is checked in this process against :class:`dcimg.DCIMGFile` on
every golden file.  What matters for the start-up hook (imageio reading
``.dcimg`` files in an interpreter that never imports dcimg, and nothing heavy
imported at start-up) is checked in fresh subprocesses.

In a regular install the hook's ``dcimg-imageio.pth`` is in ``site-packages``
and the subprocesses are plain ``python``.  meson-python's editable installs do
not place it there (an editable wheel holds only meson-python's own loader),
so the subprocesses then run in a throw-away virtual environment holding
copies of the two hook files, as a regular install would, and a last ``.pth``
file that adds this interpreter's ``site-packages`` (with the editable loader).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import pathlib
import pickle
import py_compile
import shutil
import site
import subprocess
import sys
import tempfile
import textwrap
import venv
import warnings

import numpy as np
import pytest

import dcimg
from dcimg import DCIMGFile, DCIMGFormatError, DCIMGWarning
from dcimg.testing import write_dcimg, write_example

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
GOLDEN = sorted(json.loads((DATA / "manifest.json").read_text()))
HOOK_MODULE = "_dcimg_imageio_hook"
PTH_NAME = "dcimg-imageio.pth"
DISABLE_ENV = "DCIMG_NO_IMAGEIO_HOOK"

pytestmark = pytest.mark.filterwarnings("ignore::dcimg.DCIMGWarning")


@pytest.fixture(scope="module")
def iio():
    """imageio's v3 API (a test dependency: ``pip install .[test]``)."""
    return pytest.importorskip("imageio.v3", reason="imageio is not installed")


def _open(path: pathlib.Path, **kwargs) -> DCIMGFile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        return DCIMGFile(path, **kwargs)


@pytest.fixture
def example(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_example(tmp_path / "example.dcimg")


@pytest.fixture
def rich(tmp_path: pathlib.Path) -> pathlib.Path:
    """A file with every kind of metadata: sub-array, binning, dropped frames."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, size=(6, 12, 20), dtype=np.uint16)
    return write_dcimg(
        tmp_path / "rich.dcimg",
        data,
        version=0x2000000,
        stored_pixels_row=5,
        camera_model="C13440-20CU",
        camera_serial="000777",
        sub_array=(100, 40, 40, 24),
        binning=2,
        framestamps=[10, 11, 12, 15, 16, 17],
        timestamps_us=[1_700_000_000_000_000 + 20_000 * k for k in range(6)],
    )


# --------------------------------------------------------------------------
# Registration (in this process: ``import dcimg`` registered the plugin)
# --------------------------------------------------------------------------


def test_registered_first_for_the_extension(iio):
    import imageio.config as config

    assert config.known_plugins["DCIMG"].module_name == "dcimg._imageio"
    formats = config.known_extensions[".dcimg"]
    assert all(fmt.priority[0] == "DCIMG" for fmt in formats)
    assert all(fmt.default_priority[0] == "DCIMG" for fmt in formats)
    assert formats[0] in config.extension_list
    assert formats[0].volume_support


def test_register_is_idempotent_and_goes_first(iio):
    import _dcimg_imageio_hook as hook
    import imageio.config as config

    fake = type(config)("fake_config")
    fake.PluginConfig = config.PluginConfig
    fake.FileExtension = config.FileExtension
    fake.known_plugins = {"other": object()}
    other = config.FileExtension(extension=".dcimg", priority=["other", "DCIMG"])
    fake.known_extensions = {".dcimg": [other]}
    fake.extension_list = [other]
    for _ in range(3):
        hook.register(fake)
    assert list(fake.known_plugins) == ["other", "DCIMG"]
    assert other.priority == ["DCIMG", "other"]
    other.reset()
    assert other.priority == ["DCIMG", "other"]
    assert fake.extension_list == [other]


def test_register_creates_the_format_once(iio):
    import _dcimg_imageio_hook as hook
    import imageio.config as config

    fake = type(config)("fake_config")
    fake.PluginConfig = config.PluginConfig
    fake.FileExtension = config.FileExtension
    fake.known_plugins = {}
    fake.known_extensions = {}
    zzz = config.FileExtension(extension=".zzz", priority=[])
    fake.extension_list = [zzz]
    hook.register(fake)
    hook.register(fake)
    (fmt,) = fake.known_extensions[".dcimg"]
    assert fmt.priority == ["DCIMG"]
    assert fake.extension_list == [fmt, zzz]


def test_a_failed_registration_only_warns():
    import _dcimg_imageio_hook as hook

    with pytest.warns(RuntimeWarning, match="could not register"):
        hook._register_quietly(type(hook)("not_imageio_config"))


def test_disable_variable(monkeypatch):
    import _dcimg_imageio_hook as hook

    for value, off in [("", False), ("0", False), ("off", False), ("1", True)]:
        monkeypatch.setenv(DISABLE_ENV, value)
        assert hook.disabled() is off
    monkeypatch.setenv(DISABLE_ENV, "yes")
    assert hook.install() is False


# --------------------------------------------------------------------------
# The plugin, against DCIMGFile
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN)
def test_read_equals_dcimgfile(iio, name):
    path = DATA / f"{name}.dcimg"
    with _open(path) as f:
        stack = f.read()
        n = f.nfrms
        assert np.array_equal(iio.imread(path), stack)
        assert np.array_equal(iio.imread(path, index=...), stack)
        assert np.array_equal(iio.imread(str(path), plugin="DCIMG"), stack)
        for k in (0, n - 1, -1, -n):
            frame = iio.imread(path, index=k)
            assert frame.shape == f.shape[1:]
            assert np.array_equal(frame, f.frame(k))
        converted = iio.imread(path, index=1, dtype=np.float32)
        assert converted.dtype == np.float32
        assert np.array_equal(converted, f.read(1, dtype=np.float32))
        assert np.array_equal(
            iio.imread(path, index=slice(None, None, -2)), f.read(slice(None, None, -2))
        )
    golden = np.load(DATA / f"{name}.npz")
    assert np.array_equal(iio.imread(path), golden["data"])


@pytest.mark.parametrize("name", GOLDEN)
def test_iter_equals_frames(iio, name):
    path = DATA / f"{name}.dcimg"
    with _open(path) as f:
        frames = list(iio.imiter(path))
        assert len(frames) == f.nfrms
        for k, frame in enumerate(frames):
            assert np.array_equal(frame, f.frame(k))
        as_float = next(iter(iio.imiter(path, dtype="float64")))
        assert np.array_equal(as_float, f.frame(0, dtype="float64"))


def test_iter_reads_one_frame_at_a_time(iio, example, monkeypatch):
    keys = []
    original = DCIMGFile.read

    def spy(self, key=Ellipsis, **kwargs):
        keys.append(key)
        return original(self, key, **kwargs)

    monkeypatch.setattr(DCIMGFile, "read", spy)
    with iio.imopen(example, "r") as plugin:
        frames = plugin.iter()
        assert keys == []
        first = next(frames)
        assert keys == [0]
        assert first.shape == (64, 80)
        rest = list(frames)
    assert len(rest) == 19
    assert keys == list(range(20))


@pytest.mark.parametrize("name", GOLDEN)
def test_properties(iio, name):
    path = DATA / f"{name}.dcimg"
    with _open(path) as f:
        props = iio.improps(path)
        assert props.shape == f.shape
        assert props.dtype == f.dtype
        assert props.n_images == f.nfrms
        assert props.is_batch is True
        assert iio.improps(path, index=...) == props
        one = iio.improps(path, index=-1)
        assert one.shape == f.shape[1:]
        assert one.dtype == f.dtype
        assert one.n_images is None
        assert one.is_batch is False
        assert iio.improps(path, index=0, dtype="float32").dtype == np.float32
        part = iio.improps(path, index=slice(1, None))
        assert part.shape == (f.nfrms - 1, *f.shape[1:])
        assert part.n_images == f.nfrms - 1


@pytest.mark.parametrize("name", GOLDEN)
def test_metadata(iio, name):
    path = DATA / f"{name}.dcimg"
    with _open(path) as f:
        expected = f.metadata.to_dict()
        meta = iio.immeta(path)
        assert meta["format_version"] == f.metadata.format_version
        assert meta["camera"]["model"] == f.metadata.camera.model
        for key in (
            "format_version_hex",
            "camera",
            "sub_array",
            "binning",
            "stored_pixels",
            "dropped_frames",
            "frame_interval_s",
            "first_timestamp",
        ):
            assert meta[key] == expected[key], key
        assert meta["path"] == str(path)
        assert meta["timestamps"].dtype == np.dtype("datetime64[us]")
        assert np.array_equal(meta["timestamps"], f.timestamps)
        assert np.array_equal(meta["framestamps"], f.framestamps)
        assert iio.immeta(path, index=..., exclude_applied=False).keys() == meta.keys()
        for k in (0, -1):
            one = iio.immeta(path, index=k)
            assert one["index"] == k % f.nfrms
            assert one["framestamp"] == f.framestamps[k]
            assert one["timestamp"] == f.timestamps[k]
            assert one["timestamp"].dtype == np.dtype("datetime64[us]")
            assert "timestamps" not in one
            assert one["camera"] == meta["camera"]


def test_metadata_of_a_rich_file(iio, rich):
    meta = iio.immeta(rich)
    assert meta["camera"]["model"] == "C13440-20CU"
    assert meta["camera"]["serial"] == "000777"
    assert meta["format_version_hex"] == "0x2000000"
    assert meta["sub_array"]["x0"] == 100
    assert meta["sub_array"]["width"] == 40
    assert meta["binning"] == 2
    assert meta["dropped_frames"] == [2]
    assert meta["dropped_frame_count"] == 2
    assert meta["frame_interval_s"] == pytest.approx(0.02)
    assert meta["stored_pixels"]["row"] == 5
    assert meta["framestamps"].tolist() == [10, 11, 12, 15, 16, 17]
    assert meta["timestamps"][0] == np.datetime64(1_700_000_000_000_000, "us")
    frame = iio.immeta(rich, index=3)
    assert frame["framestamp"] == 15
    assert frame["timestamp"] == np.datetime64(1_700_000_000_060_000, "us")
    part = iio.immeta(rich, index=slice(2, 4))
    assert part["framestamps"].tolist() == [12, 15]


def test_correction_option(iio):
    path = DATA / "framed_camlink_crop.dcimg"
    for mode in (True, False, None):
        with _open(path, first_4px_correction_enabled=mode) as f:
            expected = f.read()
        with iio.imopen(path, "r", first_4px_correction_enabled=mode) as plugin:
            assert np.array_equal(plugin.read(), expected)


# --------------------------------------------------------------------------
# Sources, errors, life cycle
# --------------------------------------------------------------------------


def test_every_kind_of_source(iio, example, tmp_path):
    with _open(example) as f:
        stack = f.read()
    raw = example.read_bytes()
    upper = tmp_path / "UPPER.DCIMG"
    shutil.copy(example, upper)
    mixed = tmp_path / "mixed.DcImg"
    shutil.copy(example, mixed)
    sources = [example, str(example), raw, io.BytesIO(raw), upper, str(mixed)]
    for source in sources:
        assert np.array_equal(iio.imread(source), stack)
    with open(example, "rb") as handle:
        assert np.array_equal(iio.imread(handle, index=3), stack[3])
    assert np.array_equal(iio.imread(raw, extension=".dcimg", index=-1), stack[-1])
    assert iio.immeta(raw)["path"] == "<bytes>"
    assert iio.improps(io.BytesIO(raw)).shape == stack.shape


def test_imopen(iio, example):
    from dcimg._imageio import DCIMGPlugin

    with iio.imopen(example, "r") as plugin:
        assert isinstance(plugin, DCIMGPlugin)
        assert isinstance(plugin.file, DCIMGFile)
        assert plugin.file.shape == (20, 64, 80)
        assert plugin.read(index=2).shape == (64, 80)
    with pytest.raises(ValueError, match="closed"):
        plugin.read()
    plugin.close()  # a second close is harmless


def test_bytes_and_file_objects_are_read_in_place(iio, example, tmp_path, monkeypatch):
    # No temporary copy: the bytes are read through dcimg's range reader.
    # A temporary folder of the test's own, so that other processes writing
    # to the shared one cannot change what is seen.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    truth = iio.imread(example)
    with iio.imopen(example.read_bytes(), "r", plugin="DCIMG") as plugin:
        assert plugin.file.file_object is not None
        assert plugin.file.location is None
        np.testing.assert_array_equal(plugin.read(), truth)
        assert list(private.iterdir()) == []
    with open(example, "rb") as handle:
        np.testing.assert_array_equal(iio.imread(handle, plugin="DCIMG"), truth)


def test_bad_indices(iio, example):
    with iio.imopen(example, "r") as plugin:
        for bad in (20, -21):
            with pytest.raises(IndexError, match="out of range"):
                plugin.read(index=bad)
            with pytest.raises(IndexError):
                plugin.properties(index=bad)
            with pytest.raises(IndexError):
                plugin.metadata(index=bad)
        for bad in (1.5, "0", True, (0, 1)):
            with pytest.raises(TypeError):
                plugin.read(index=bad)
        with pytest.raises(TypeError):
            plugin.read(unknown_option=1)


def test_not_dcimg_with_dcimg_name(iio, tmp_path):
    bad = tmp_path / "not really.dcimg"
    bad.write_bytes(b"this is a text file, not an image\n" * 20)
    with pytest.raises(OSError, match="not really.dcimg"):
        iio.imread(bad)
    with pytest.raises(OSError, match="`DCIMG` can not handle") as caught:
        iio.imread(bad, plugin="DCIMG")
    assert "not a DCIMG file" in str(caught.value.__cause__)
    from imageio.core.request import InitializationError

    assert isinstance(caught.value.__cause__, InitializationError)
    # An empty .dcimg file (an export rewritten in place) is named as such.
    empty = tmp_path / "empty.dcimg"
    empty.write_bytes(b"")
    with pytest.raises(DCIMGFormatError, match=r"empty\.dcimg.*empty \(0 bytes\)"):
        iio.imread(empty)
    # Under another extension it is simply not this plugin's.
    other = tmp_path / "empty.bin"
    other.write_bytes(b"")
    with pytest.raises(OSError):
        iio.imread(other)


def test_other_formats_still_work_through_the_fallback(iio, tmp_path):
    image = np.arange(48, dtype=np.uint8).reshape(6, 8)
    png = tmp_path / "really_a_png.dcimg"
    png.write_bytes(iio.imwrite("<bytes>", image, extension=".png"))
    assert np.array_equal(iio.imread(png), image)
    assert np.array_equal(iio.imread(png.read_bytes()), image)


def test_corrupt_dcimg_reports_the_field(iio, example, tmp_path):
    cut = tmp_path / "cut.dcimg"
    cut.write_bytes(example.read_bytes()[:64])
    with pytest.raises(DCIMGFormatError):
        iio.imread(cut)
    with pytest.raises(OSError) as caught:
        iio.imread(cut, plugin="DCIMG")
    assert isinstance(caught.value.__cause__, DCIMGFormatError)


def test_writing_is_refused(iio, tmp_path):
    target = tmp_path / "out.dcimg"
    with pytest.raises(OSError):
        iio.imwrite(target, np.zeros((4, 4), np.uint16), plugin="DCIMG")
    with pytest.raises(OSError, match="cannot write DCIMG"):
        iio.imwrite(target, np.zeros((4, 4), np.uint16))
    assert not target.exists()
    # Other extensions and "<bytes>" are left to the other plugins.
    png = iio.imwrite("<bytes>", np.zeros((4, 4), np.uint8), extension=".png")
    assert png.startswith(b"\x89PNG")


def test_missing_file(iio, tmp_path):
    with pytest.raises(FileNotFoundError):
        iio.imread(tmp_path / "missing.dcimg")


def test_dcimg_imread_matches(iio, example):
    assert np.array_equal(dcimg.imread(example), iio.imread(example))
    assert np.array_equal(dcimg.imread(example, 4), iio.imread(example, index=4))


def test_imageio_v2(iio, example):
    import imageio.v2 as v2

    with _open(example) as f:
        assert np.array_equal(v2.imread(example), f.frame(0))
        assert len(v2.mimread(example)) == f.nfrms


# --------------------------------------------------------------------------
# Fresh interpreters: the start-up hook
# --------------------------------------------------------------------------


def _site_folders() -> list[str]:
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return folders


@pytest.fixture(scope="session")
def hook_python(tmp_path_factory) -> str:
    """A Python whose start-up runs the hook, as after ``pip install dcimg``."""
    if any(pathlib.Path(folder, PTH_NAME).is_file() for folder in _site_folders()):
        return sys.executable
    if "_dcimg_editable_loader" not in sys.modules:
        pytest.fail(
            f"{PTH_NAME} is missing from site-packages although dcimg is not an "
            "editable install: the start-up hook was not installed"
        )
    # meson-python's editable install: a virtual environment holding the two
    # hook files as a regular install does, whose last .pth file adds this
    # interpreter's site-packages (with the editable loader) after them.
    env_dir = tmp_path_factory.mktemp("hook-venv")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = str(next((env_dir / bindir).glob("python*")))
    purelib = pathlib.Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    module = shutil.copy(
        ROOT / "dcimg" / "_imageio_hook" / f"{HOOK_MODULE}.py", purelib
    )
    py_compile.compile(module, doraise=True)  # pip compiles on install too
    shutil.copy(ROOT / "dcimg" / "_imageio_hook" / PTH_NAME, purelib)
    lines = [f"import site; site.addsitedir({folder!r})" for folder in _site_folders()]
    (purelib / "zz-dcimg-test-parent-site.pth").write_text("\n".join(lines) + "\n")
    return python


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != DISABLE_ENV}
    env.update(extra)
    return env


def _run(python: str, code: str, cwd: pathlib.Path, *args: str, **env: str) -> str:
    result = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(**env),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# Runs in a fresh interpreter that never imports dcimg itself; saves what
# imageio returned for the parent test to compare with DCIMGFile.
CHILD = """
import io, pickle, sys

def dcimg_loaded():
    return any(name.split(".")[0] == "dcimg" for name in sys.modules)

hooked = [type(f).__name__ for f in sys.meta_path]
import imageio.v3 as iio
import imageio.config as config

path, upper, out = sys.argv[1:]
fmt = config.known_extensions[".dcimg"][0]
result = {
    "hook_armed_at_start": "_ImageioConfigFinder" in hooked,
    "hook_removed": all(
        type(f).__name__ != "_ImageioConfigFinder" for f in sys.meta_path
    ),
    "loader_restored": config.__loader__ is config.__spec__.loader
    and type(config.__loader__).__name__ == "SourceFileLoader",
    "registered": "DCIMG" in config.known_plugins and fmt.priority[0] == "DCIMG",
    "dcimg_after_imageio_import": dcimg_loaded(),
}

def props(p):
    return (p.shape, str(p.dtype), p.n_images, p.is_batch)

raw = open(path, "rb").read()
with iio.imopen(path, "r") as plugin:
    result["imopen_class"] = type(plugin).__name__
    result["imopen_read"] = plugin.read(index=2)
result["read"] = iio.imread(path)
result["read_upper"] = iio.imread(upper)
result["read_bytes"] = iio.imread(raw)
result["read_filelike"] = iio.imread(io.BytesIO(raw), index=1)
result["read_index"] = iio.imread(path, index=3)
result["read_negative"] = iio.imread(path, index=-1)
result["read_dtype"] = iio.imread(path, index=0, dtype="float32")
result["read_plugin"] = iio.imread(path, plugin="DCIMG")
result["iter"] = list(iio.imiter(path))
result["props"] = props(iio.improps(path))
result["props_frame"] = props(iio.improps(path, index=0))
result["meta"] = iio.immeta(path)
result["meta_frame"] = iio.immeta(path, index=4)
try:
    iio.imread("bad.dcimg")
except OSError as error:
    result["bad_error"] = str(error)
with open(out, "wb") as handle:
    pickle.dump(result, handle)
"""


def test_fresh_interpreter_reads_dcimg(iio, hook_python, rich, tmp_path):
    upper = tmp_path / "RICH.DCIMG"
    shutil.copy(rich, upper)
    (tmp_path / "bad.dcimg").write_bytes(b"plain text, not a DCIMG file\n" * 10)
    out = tmp_path / "result.pickle"
    _run(hook_python, CHILD, tmp_path, str(rich), str(upper), str(out))
    with open(out, "rb") as handle:
        got = pickle.load(handle)

    assert got["hook_armed_at_start"]
    assert got["hook_removed"]
    assert got["loader_restored"]
    assert got["registered"]
    assert not got["dcimg_after_imageio_import"]
    assert got["imopen_class"] == "DCIMGPlugin"
    with _open(rich) as f:
        stack = f.read()
        for key in ("read", "read_upper", "read_bytes", "read_plugin"):
            assert np.array_equal(got[key], stack), key
            assert got[key].dtype == stack.dtype
        assert np.array_equal(got["imopen_read"], stack[2])
        assert np.array_equal(got["read_filelike"], stack[1])
        assert np.array_equal(got["read_index"], stack[3])
        assert np.array_equal(got["read_negative"], stack[-1])
        assert np.array_equal(got["read_dtype"], f.frame(0, dtype="float32"))
        assert got["read_dtype"].dtype == np.float32
        assert len(got["iter"]) == f.nfrms
        assert all(
            np.array_equal(a, b) for a, b in zip(got["iter"], stack, strict=True)
        )
        assert got["props"] == (f.shape, "uint16", f.nfrms, True)
        assert got["props_frame"] == (f.shape[1:], "uint16", None, False)
        meta = got["meta"]
        assert meta["camera"]["model"] == f.metadata.camera.model == "C13440-20CU"
        assert meta["camera"]["serial"] == "000777"
        assert np.array_equal(meta["timestamps"], f.timestamps)
        assert meta["timestamps"].dtype == np.dtype("datetime64[us]")
        assert np.array_equal(meta["framestamps"], f.framestamps)
        assert meta["dropped_frames"] == [2]
        assert meta["sub_array"] == f.metadata.to_dict()["sub_array"]
        assert meta["binning"] == 2
        assert meta["stored_pixels"]["row"] == 5
        frame = got["meta_frame"]
        assert frame["timestamp"] == f.timestamps[4]
        assert frame["framestamp"] == f.framestamps[4] == 16
    assert "bad.dcimg" in got["bad_error"]


def test_startup_imports_nothing_heavy(hook_python, tmp_path):
    heavy = {"numpy", "imageio", "dcimg"}
    best = None
    for _ in range(7):
        result = subprocess.run(
            [hook_python, "-X", "importtime", "-c", "pass"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_env(),
            check=True,
        )
        rows = {}
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows[name.strip()] = int(cumulative)
        loaded = {name for name in rows if name.split(".")[0] in heavy}
        assert not loaded, f"imported at start-up: {sorted(loaded)}"
        assert HOOK_MODULE in rows, "the start-up hook did not run"
        best = rows[HOOK_MODULE] if best is None else min(best, rows[HOOK_MODULE])
        if best < 1000:
            break
    assert best < 1000, f"the start-up hook took {best} us (at best of 7)"


def test_disabled_hook_and_import_dcimg(iio, hook_python, example):
    code = """
    import sys
    assert "_ImageioConfigFinder" not in [type(f).__name__ for f in sys.meta_path]
    import imageio.v3 as iio
    import imageio.config
    assert "DCIMG" not in imageio.config.known_plugins
    try:
        iio.imread(sys.argv[1])
    except OSError:
        pass
    else:
        raise AssertionError("read without the plugin")
    import dcimg  # registers the plugin although imageio is already loaded
    print(iio.imread(sys.argv[1]).shape)
    """
    out = _run(hook_python, code, example.parent, str(example), **{DISABLE_ENV: "1"})
    assert out.strip() == "(20, 64, 80)"


def test_import_dcimg_does_not_import_imageio(iio, example):
    code = """
    import sys
    import dcimg
    assert not any(name.split(".")[0] == "imageio" for name in sys.modules)
    import imageio.v3 as iio
    print(iio.imread(sys.argv[1], index=0).shape)
    """
    out = _run(sys.executable, code, example.parent, str(example), **{DISABLE_ENV: "1"})
    assert out.strip() == "(64, 80)"


def test_hook_module_imports_only_os_and_sys():
    spec = importlib.util.find_spec(HOOK_MODULE)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(pathlib.Path(spec.origin).read_text())
    names = set()
    for node in tree.body:  # module level: what runs at start-up
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert names == {"os", "sys"}
