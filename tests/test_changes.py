"""Files that change under the reader, descriptors, views and seed-API parity.

Crash-prone cases run in a child process: a ``SIGBUS`` there shows up as a
failed test (a negative return code), not as a dead test runner.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import dcimg
from dcimg import DCIMGChangedError, DCIMGFile, DCIMGFormatError, DCIMGWarning
from dcimg.testing import example_stack, write_dcimg, write_example

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


def _child(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        # Not from the source tree, whose dcimg folder has no compiled parts.
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------
# Truncation at any moment: a clean exception, never a dead process


def _stress_tool():
    spec = importlib.util.spec_from_file_location(
        "truncation_stress", TOOLS / "truncation_stress.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The reads and the ways of changing the file: the stress tool's own lists.
STRESS = _stress_tool()


@pytest.mark.parametrize("read", STRESS.READS)
@pytest.mark.parametrize("how", STRESS.HOWS)
def test_file_changing_during_reads_never_kills(tmp_path, read, how):
    # tools/truncation_stress.py runs one child per case, many times over; here
    # each child goes through 12 truncation moments of one read.
    result = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "truncation_stress.py"),
            "--child",
            read,
            how,
            str(tmp_path),
            "--moments",
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    # Every moment ended with the pixels or a DCIMGError (DCIMGChangedError,
    # or, for a file reopened after the change, another one) -- nothing else.
    outcomes = dict(item.split("=") for item in result.stdout.split())
    assert sum(int(n) for n in outcomes.values()) == 12, outcomes
    clean = {"changed", "complete", "DCIMGError", "DCIMGFormatError"}
    if read == "imageio":
        # Caught while empty (mid-overwrite), the file is no DCIMG file at all:
        # imageio then says that no plugin can read it.
        clean.add("other:OSError")
    assert set(outcomes) <= clean, outcomes


def test_shrunk_file_raises_changed_error_naming_sizes(tmp_path):
    truth = example_stack(nframes=40, height=32, width=40)
    path = write_dcimg(tmp_path / "t.dcimg", truth, stored_pixels_row=3)
    f = DCIMGFile(path)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    for read in (
        lambda: f[-1],
        f.whole,
        lambda: f.read(-1, dtype=np.float32),
        lambda: f.frame(39),
        lambda: f.zslice(30, 40),
        lambda: f.timestamps,
        lambda: f.framestamps,
        lambda: f.metadata,
        lambda: f.ts(3),
    ):
        with pytest.raises(DCIMGChangedError) as info:
            read()
        message = str(info.value)
        assert str(path) in message and f"{size // 2} bytes, was {size}" in message
        assert isinstance(info.value, ValueError)
    # Frames still wholly in the file read fine.
    np.testing.assert_array_equal(f[0], truth[0])
    f.close()


def test_unguarded_sigbus_is_not_swallowed(tmp_path):
    # A raw view is not protected (documented): the process dies as before,
    # so the guard does not hide faults that are not its own.
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((40, 64, 80), np.uint16))
    result = _child(
        """
        import os, sys
        import dcimg
        f = dcimg.DCIMGFile(sys.argv[1])
        os.truncate(sys.argv[1], 4096)
        print(int(f.mma[-1].sum()))
        """,
        str(path),
    )
    # Killed by the signal itself (not, say, an import error).
    assert result.returncode == -signal.SIGBUS, result


def test_guard_survives_faulthandler_enabled_later(tmp_path):
    # faulthandler.enable() after import replaces the SIGBUS handler; the next
    # open puts the guard back in front (chained to faulthandler).
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((40, 64, 80), np.uint16))
    result = _child(
        """
        import faulthandler, os, sys
        import dcimg
        faulthandler.enable()
        f = dcimg.DCIMGFile(sys.argv[1])
        os.truncate(sys.argv[1], 4096)
        try:
            f.whole()
        except dcimg.DCIMGChangedError:
            print("changed")
        """,
        str(path),
    )
    assert result.returncode == 0 and "changed" in result.stdout, result


def test_parallel_copy_is_guarded_on_every_thread(tmp_path):
    # The OpenMP path (results of 32 MiB and more): the guard is armed on
    # each worker thread.
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((64, 512, 512), np.uint16))
    result = _child(
        """
        import os, sys
        import numpy as np
        import dcimg
        f = dcimg.DCIMGFile(sys.argv[1])
        os.truncate(sys.argv[1], os.path.getsize(sys.argv[1]) * 3 // 4)
        try:
            f.whole(dtype=np.float64)  # 128 MiB: split across threads
        except dcimg.DCIMGChangedError:
            print("changed")
        """,
        str(path),
    )
    assert result.returncode == 0 and "changed" in result.stdout, result


# --------------------------------------------------------------------------
# Growing files: refresh()


def test_refresh_follows_a_growing_framed_file(tmp_path):
    truth = example_stack(nframes=10, height=16, width=24)
    full = write_dcimg(tmp_path / "full.dcimg", truth, version=0x1000000)
    data = full.read_bytes()
    growing = tmp_path / "growing.dcimg"
    with DCIMGFile(full) as f:
        stride = f.metadata.bytes_per_image + f.metadata.trailer_size
    header = len(data) - 10 * stride
    growing.write_bytes(data[: header + 3 * stride])
    with pytest.warns(DCIMGWarning):
        f = DCIMGFile(growing)
    assert f.nfrms == 3
    with open(growing, "ab") as out:
        out.write(data[header + 3 * stride : header + 7 * stride + 5])
    assert f.refresh() == 7 and f.shape[0] == 7
    np.testing.assert_array_equal(f.whole(), truth[:7])
    assert f.timestamps.shape == (7,)
    with open(growing, "ab") as out:
        out.write(data[header + 7 * stride + 5 :])
    assert f.refresh() == 10
    np.testing.assert_array_equal(f.whole(), truth)
    assert not f.metadata.truncated
    f.close()


def test_refresh_refuses_a_replaced_file(tmp_path):
    path = write_example(tmp_path / "a.dcimg")
    f = DCIMGFile(path)
    other = write_example(tmp_path / "b.dcimg")
    os.replace(other, path)
    with pytest.raises(DCIMGChangedError, match="replaced"):
        f.refresh()
    f.close()


def test_incomplete_header_is_named(tmp_path):
    path = write_example(tmp_path / "a.dcimg")
    cut = tmp_path / "cut.dcimg"
    cut.write_bytes(path.read_bytes()[:0x60])
    with pytest.raises(DCIMGFormatError, match="incomplete header") as info:
        DCIMGFile(cut)
    assert str(cut) in str(info.value)
    cut.write_bytes(path.read_bytes()[:0x30])
    with pytest.raises(DCIMGFormatError, match="incomplete header"):
        DCIMGFile(cut)


def test_not_dcimg_error_names_the_file(tmp_path):
    path = tmp_path / "notes.dcimg"
    path.write_bytes(b"hello world, not an image" * 10)
    with pytest.raises(DCIMGFormatError, match="not a DCIMG file") as info:
        DCIMGFile(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    empty = tmp_path / "empty.dcimg"
    empty.write_bytes(b"")
    with pytest.raises(DCIMGFormatError, match="empty") as info:
        DCIMGFile(empty)
    assert str(empty) in str(info.value)


# --------------------------------------------------------------------------
# Descriptors


def test_open_files_and_views_hold_no_descriptors(tmp_path):
    # 1,000 open files, 2,000 views and a persisted Dask array of 600 chunks
    # under a limit of 256 descriptors.
    path = write_dcimg(
        tmp_path / "a.dcimg", example_stack(nframes=600, height=8, width=8)
    )
    result = _child(
        """
        import os, resource, sys
        import numpy as np
        import dcimg
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        path = sys.argv[1]
        before = len(os.listdir("/proc/self/fd"))
        files = [dcimg.DCIMGFile(path) for _ in range(1000)]
        assert all(f[5, 0, 0] == files[0][5, 0, 0] for f in files)
        views = [files[0].read(i % 600, copy=False) for i in range(2000)]
        arr = files[1].as_dask_array(chunks=1).persist(scheduler="threads")
        assert arr.sum().compute() == files[1].whole().sum(dtype=np.int64)
        held = len(os.listdir("/proc/self/fd")) - before
        print("held", held, len(views))
        assert held <= 2, held
        """,
        str(path),
    )
    assert result.returncode == 0, result.stderr
    assert "held" in result.stdout


# --------------------------------------------------------------------------
# Views made by the kernel; huge steps


@pytest.mark.parametrize("correction", [True, False, None])
def test_copy_false_with_huge_steps(tmp_path, correction):
    truth = example_stack(nframes=5, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=0)
    with DCIMGFile(path, first_4px_correction_enabled=correction) as f:
        expected = f.read(...)
        for key in (
            slice(None, None, 10**18),
            slice(None, None, -(10**18)),
            (slice(1, None, 10**18), slice(None, None, 10**17), 3),
            (..., slice(None, None, 10**18)),
            (4, 5, slice(2, None, 10**18)),
        ):
            got = f.read(key, copy=False)
            np.testing.assert_array_equal(got, expected[key])
            dask = f.as_dask_array(chunks=2)[key].compute()
            np.testing.assert_array_equal(dask, expected[key])


def test_copy_false_views_need_no_reopening(tmp_path):
    # Views come from the map already open: they keep working after the
    # path is removed.
    truth = example_stack(nframes=4, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=2)
    f = DCIMGFile(path)
    path.unlink()
    view = f.read(np.s_[:, 3:], copy=False)
    assert not view.flags.owndata and not view.flags.writeable
    np.testing.assert_array_equal(view, truth[:, 3:])
    np.testing.assert_array_equal(f.read(np.s_[:, 2], copy=False), truth[:, 2])
    f.close()
    np.testing.assert_array_equal(view, truth[:, 3:])  # outlives close()


# --------------------------------------------------------------------------
# Closing and caches under threads


def test_close_while_threads_read_gives_closed_file_error(tmp_path):
    path = write_dcimg(tmp_path / "a.dcimg", example_stack(nframes=30))
    errors: list[BaseException] = []
    for _ in range(20):
        f = DCIMGFile(path)
        go = threading.Event()

        def reader(f: DCIMGFile = f, go: threading.Event = go) -> None:
            go.wait()
            for i in range(300):
                try:
                    f[i % 30]
                    f.read(i % 30, dtype=np.float32)
                    _ = f.timestamps
                except ValueError as exc:
                    if "closed" not in str(exc):
                        errors.append(exc)
                    return
                except BaseException as exc:  # noqa: BLE001 - collected
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        go.set()
        f.close()
        for t in threads:
            t.join()
    assert not errors, errors[:3]


def test_dask_cache_eviction_never_breaks_running_reads(tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    from dcimg import _dask

    monkeypatch.setattr(_dask, "CACHE_SIZE", 2)
    _dask.clear_cache()
    paths = [
        write_dcimg(tmp_path / f"f{i}.dcimg", example_stack(nframes=8, seed=i))
        for i in range(6)
    ]
    arrays = []
    truths = []
    for p in paths:
        with DCIMGFile(p) as f:
            arrays.append(f.as_dask_array(chunks=1))
            truths.append(f.whole())
    total = da.stack(arrays * 8)
    got = total.compute(scheduler="threads", num_workers=8)
    np.testing.assert_array_equal(got, np.stack(truths * 8))


# --------------------------------------------------------------------------
# Seed API parity


def test_array_protocol_honours_copy(tmp_path):
    truth = example_stack(nframes=3, height=6, width=10)
    path = write_dcimg(tmp_path / "a.dcimg", truth, stored_pixels_row=2)

    def no_copy(f: DCIMGFile) -> np.ndarray:
        # NumPy 2 passes copy= to __array__; NumPy 1 has no such argument.
        if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            return np.asarray(f, copy=False)
        return f.__array__(copy=False)

    with DCIMGFile(path) as f:
        np.testing.assert_array_equal(np.asarray(f), truth)
        np.testing.assert_array_equal(np.array(f, dtype=np.float32), truth)
        with pytest.raises(ValueError, match="without a copy"):
            no_copy(f)  # the overwritten pixels need correcting
        with pytest.raises(ValueError, match="without a copy"):
            f.__array__(np.float32, copy=False)
        f.first_4px_correction_enabled = None
        view = no_copy(f)
        assert not view.flags.owndata
    plain = write_dcimg(tmp_path / "b.dcimg", truth)
    with DCIMGFile(plain) as f:
        np.testing.assert_array_equal(no_copy(f), truth)


def test_ts_returns_datetime64(tmp_path):
    path = write_example(tmp_path / "a.dcimg")
    with DCIMGFile(path) as f:
        stamp = f.ts(2)
        assert isinstance(stamp, np.datetime64) and stamp.dtype == "datetime64[us]"
        assert stamp == f.timestamps[2]
        assert f.ts().dtype == np.dtype("datetime64[us]")


def test_source_checkout_import_says_what_to_do():
    # -S: no site-packages, so no installed (or editable) dcimg: Python finds
    # the source folder, which holds no compiled modules.
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import dcimg"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: dcimg is being imported from its source")
    assert "pip install" in last


def test_imageio_hint_names_this_package(tmp_path):
    pytest.importorskip("imageio")
    result = _child(
        """
        import sys, warnings
        sys.path.append(sys.argv[1])  # editable installs lack the hook
        import imageio.config
        import _dcimg_imageio_hook as hook
        hook.register(imageio.config)
        config = imageio.config.known_plugins["DCIMG"]
        config.module_name = "dcimg._no_such_module"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                config.plugin_class
            except ImportError:
                pass
        print([str(w.message) for w in caught])
        """,
        str(ROOT / "hooks"),
    )
    assert result.returncode == 0, result.stderr
    assert "pip install dcimg" in result.stdout


def test_warnings_name_file(tmp_path):
    truth = example_stack(nframes=6, height=8, width=8)
    path = write_dcimg(tmp_path / "a.dcimg", truth, version=0x1000000)
    cut = tmp_path / "cut.dcimg"
    cut.write_bytes(path.read_bytes()[:-200])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DCIMGFile(cut).close()
    assert any(str(cut) in str(w.message) for w in caught)


def test_module_surface():
    assert issubclass(dcimg.DCIMGChangedError, dcimg.DCIMGError)
    assert "DCIMGChangedError" in dcimg.__all__
