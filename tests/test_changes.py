"""Files that change under the reader, descriptors, views, and the historical API.

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
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python, run_tool

import dcimg
from dcimg import DCIMGChangedError, DCIMGFile, DCIMGFormatError, DCIMGWarning
from dcimg.testing import example_stack, write_dcimg, write_example

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


# --------------------------------------------------------------------------
# Truncation at any moment: a clean exception, never a dead process


def _stress_tool():
    spec = importlib.util.spec_from_file_location(
        "truncation_stress", TOOLS / "truncation_stress.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The read paths and the ways of changing the file: the stress tool's own lists.
STRESS = _stress_tool()

# A deliberate break, to show that the detection tests fail without the
# check they test: DCIMG_BREAK=confirm pytest tests/test_changes.py skips the
# check after every copy (the kernel's probe and the sources' size checks).
if os.environ.get("DCIMG_BREAK") == "confirm":
    from dcimg import _source

    _source.CONFIRM = False


def test_file_changing_during_reads_is_never_silently_wrong(tmp_path):
    # The tiny mode of tools/truncation_stress.py: every read path, both
    # ways of changing the file, one trial each, in child processes.  The
    # full run (200 trials each) is in the report, not in the suite; the
    # tests below check each way of detecting a change in-process.
    extra = ["--no-confirm"] if os.environ.get("DCIMG_BREAK") == "confirm" else []
    run_tool(
        "truncation_stress.py",
        *("--trials", "1", "--seed", "7", "--markdown", tmp_path / "table.md"),
        *extra,
        timeout=900,
        cwd=tempfile.gettempdir(),
    )
    rows = [
        line.split(" | ")
        for line in (tmp_path / "table.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| path", "| **all"))
    ]
    assert {(r[0][2:], r[1]) for r in rows} == {
        (p, h) for p in STRESS.PATHS for h in STRESS.HOWS
    }
    for row in rows:
        trials, ok, changed, other, wrong, deaths = map(int, row[2:7] + [row[7][:-2]])
        assert (other, wrong, deaths) == (0, 0, 0), row
        assert ok + changed == trials == 1, row


def _cut_cases(tmp_path, version):
    truth = example_stack(nframes=10, height=64, width=80)
    path = write_dcimg(tmp_path / "cut.dcimg", truth, version=version)
    return truth, path, path.read_bytes()


def _open(path, source):
    if source == "map":
        return DCIMGFile(path)
    if source == "pread":
        return DCIMGFile(path, mmap=False)
    return DCIMGFile(open(path, "rb"))  # noqa: SIM115 - the file object's


@pytest.mark.parametrize("source", ["map", "pread", "file object"])
@pytest.mark.parametrize("version", [0x7, 0x1000000])
@pytest.mark.parametrize("cut", [1, 1200, 4000, 4096, 4097, 9000])
def test_cut_inside_the_last_page_is_never_silently_wrong(
    tmp_path, source, version, cut
):
    # A cut that falls inside the last page of the map
    # reads back as zeros, not SIGBUS.  Every read that covers the bytes cut
    # raises DCIMGChangedError naming the file; reads before them are exact.
    truth, path, data = _cut_cases(tmp_path, version)
    size = len(data)
    f = _open(path, source)
    stamps, counters = f.timestamps.copy(), f.framestamps.copy()
    os.truncate(path, size - cut)
    reads = {
        "last frame": (lambda: f[-1], truth[-1]),
        "whole": (f.whole, truth),
        "float": (lambda: f.read(..., dtype=np.float32), truth.astype(np.float32)),
        "frames": (lambda: np.stack([f.frame(i) for i in range(10)]), truth),
        "dask": (lambda: f.as_dask_array(chunks=3).compute(scheduler="sync"), truth),
    }
    if version != 0x7:
        # A packed file's counters and time stamps are in its footer, which
        # this cut removes from what the file says (its reads raise too).
        f._require_state().cache.clear()
        reads["timestamps"] = (lambda: f.timestamps, stamps)
        reads["framestamps"] = (lambda: f.framestamps, counters)
    for name, (read, expected) in reads.items():
        if name == "dask" and source == "file object":
            continue  # covered by the stress tool (threaded scheduler)
        try:
            got = read()
        except DCIMGChangedError as exc:
            assert str(path) in str(exc), (name, str(exc))
            continue
        np.testing.assert_array_equal(got, expected, err_msg=f"{name} after {cut}")
    # Frame 0 lies far from the cut: still exact.
    np.testing.assert_array_equal(f[0], truth[0])
    f.close()


@pytest.mark.parametrize("source", ["pread", "file object"])
def test_read_racing_a_cut_is_never_silently_wrong(tmp_path, source, monkeypatch):
    # A read racing a truncation can copy the zeroed tail of the cut page
    # and still return every byte asked for.  Played here exactly: the
    # reader's request returns, then the file is cut inside the bytes it
    # returned and those bytes are zeroed, as the system would have.
    truth = example_stack(nframes=10, height=64, width=80)
    path = write_dcimg(tmp_path / "a.dcimg", truth)
    size = path.stat().st_size
    f = _open(path, source)
    reader = f._source.reader
    real = reader._read_one
    cut = size - 1200

    def racing(start, stop, out):
        got = real(start, stop, out)
        if stop > cut:
            os.truncate(path, cut)
            views = got if isinstance(got, list) else [got]
            at = start
            for view in views:
                view = memoryview(view).cast("B")
                lo = max(cut - at, 0)
                if lo < view.nbytes:
                    view[lo:] = bytes(view.nbytes - lo)
                at += view.nbytes
        return got

    monkeypatch.setattr(reader, "_read_one", racing)
    with pytest.raises(DCIMGChangedError, match="shrank") as info:
        got = f[-1]
        # Without the check the read returns, with zeros in it.
        assert np.array_equal(got, truth[-1]), "silently wrong"
    assert str(path) in str(info.value)
    f.close()


@pytest.mark.parametrize("back", [1, 100, 700])
@pytest.mark.parametrize("version", [0x7, 0x1000000])
def test_cut_inside_a_middle_frame_is_never_silently_wrong(tmp_path, back, version):
    # The cut lands inside the page of the last byte a read copies, far
    # from the end of the map: the kernel's probe of the next page faults,
    # and the size now (smaller than the bytes copied) raises.
    truth = example_stack(nframes=40, height=64, width=80)
    path = write_dcimg(tmp_path / "a.dcimg", truth, version=version)
    f = DCIMGFile(path, first_4px_correction_enabled=None)
    layout = f.layout
    end = layout.data_offset + 20 * layout.frame_stride + layout.bytes_per_image
    os.truncate(path, end - back)
    for read in (lambda: f[20], lambda: f[10:21], lambda: f.read(20, dtype="f4")):
        with pytest.raises(DCIMGChangedError, match="shrank") as info:
            got = read()
            assert np.array_equal(got, truth[20] if got.ndim == 2 else truth[10:21])
        assert str(path) in str(info.value)
    np.testing.assert_array_equal(f[0], truth[0])
    f.close()


def test_cut_of_1200_bytes_raises_on_reading_the_last_frame(tmp_path):
    # This cut once read back 552 zero pixels with no error.
    t = example_stack(nframes=10, height=64, width=80)
    path = write_dcimg(tmp_path / "a.dcimg", t)
    f = DCIMGFile(path)
    os.truncate(path, os.path.getsize(path) - 1200)
    with pytest.raises(DCIMGChangedError, match="shrank") as info:
        f[-1]
    assert str(path) in str(info.value)


def test_replaced_file_reads_what_was_opened(tmp_path):
    # os.replace over the path: a map and an open descriptor keep the old
    # inode's bytes, which are what the file held when it was opened.
    truth = example_stack(nframes=10, height=64, width=80)
    other = example_stack(nframes=10, height=64, width=80, seed=5)
    path = write_dcimg(tmp_path / "a.dcimg", truth)
    files = [DCIMGFile(path), DCIMGFile(path, mmap=False)]
    write_dcimg(tmp_path / "b.dcimg", other)
    assert (tmp_path / "b.dcimg").stat().st_size == path.stat().st_size
    os.replace(tmp_path / "b.dcimg", path)
    for f in files:
        np.testing.assert_array_equal(f.whole(), truth)
        np.testing.assert_array_equal(f[-1], truth[-1])
        with pytest.raises(DCIMGChangedError, match="replaced"):
            f.refresh()
        f.close()


def _dask_array_of_a_replaced_file(tmp_path, same_mtime: bool):
    """A Dask array of a file, then the file replaced by one of the same size.

    Returns the array, the path and the ``os.stat`` of the file it was made
    of. With ``same_mtime`` the new file takes the old one's times too.
    """
    pytest.importorskip("dask.array")
    from dcimg import _dask

    truth = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", truth)
    with DCIMGFile(path) as f:
        arr = f.as_dask_array(chunks=2)
    was = os.stat(path)
    other = write_dcimg(tmp_path / "b.dcimg", truth[::-1].copy())
    if same_mtime:
        os.utime(other, ns=(was.st_atime_ns, was.st_mtime_ns))
    os.replace(other, path)
    _dask.clear_cache()
    return arr, path, was


def test_dask_chunk_refuses_a_replacement_with_the_same_size_and_mtime(tmp_path):
    # Size and modification time can match (cp -p, rsync -t): on the host
    # that made the array, the inode tells the files apart.
    arr, _, _ = _dask_array_of_a_replaced_file(tmp_path, same_mtime=True)
    with pytest.raises(DCIMGChangedError, match="another file"):
        arr.compute(scheduler="sync")


def test_dask_chunk_checks_the_file_it_opened(tmp_path, monkeypatch):
    # The path is looked at, then opened: a file put in its place between
    # the two must not be read as the array's file.
    arr, path, was = _dask_array_of_a_replaced_file(tmp_path, same_mtime=False)
    from dcimg import _dask

    real_stat = os.stat
    monkeypatch.setattr(
        _dask.os,
        "stat",
        lambda p, *a, **k: was if str(p) == str(path) else real_stat(p, *a, **k),
    )
    with pytest.raises(DCIMGChangedError, match="changed since the Dask array") as info:
        arr.compute(scheduler="sync")
    assert info.value.path == str(path)


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
        assert isinstance(info.value, OSError)
        assert not isinstance(info.value, ValueError)
    # Frames still wholly in the file read fine.
    np.testing.assert_array_equal(f[0], truth[0])
    f.close()


def test_unguarded_sigbus_is_not_swallowed(tmp_path):
    # A raw view is not protected (documented): the process dies as before,
    # so the guard does not hide faults that are not its own.
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((40, 64, 80), np.uint16))
    result = run_python(
        """
        import os, sys
        import dcimg
        f = dcimg.DCIMGFile(sys.argv[1])
        os.truncate(sys.argv[1], 4096)
        print(int(f.mma[-1].sum()))
        """,
        str(path),
        timeout=300,
    )
    # Killed by the signal itself (not, say, an import error).
    assert result.returncode == -signal.SIGBUS, result


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc (Linux)"
)
def test_import_alone_changes_no_signal_handler(tmp_path):
    # The guard's handler is installed when a file is first mapped.
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((4, 8, 8), np.uint16))
    result = run_python(
        """
        import signal, sys

        def caught():
            for line in open("/proc/self/status"):
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGBUS - 1) & 1)

        before = caught()
        import dcimg
        after_import = caught()
        dcimg.DCIMGFile(sys.argv[1]).whole()
        print(before, after_import, caught())
        """,
        str(path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]


@pytest.mark.parametrize("faulthandler_first", [False, True])
def test_unguarded_fault_goes_once_to_faulthandler(tmp_path, faulthandler_first):
    # faulthandler enabled after ``import dcimg``: the next
    # open puts the guard back in front (a guarded read still raises), chained
    # to faulthandler, whose own previous handler is the guard.  Enabled
    # before (pytest's own faulthandler is like this): the guard chains to it.
    # Either way an unguarded fault (a raw view) must give exactly one
    # faulthandler dump and death by SIGBUS -- not handlers calling each other
    # until the stack overflows (SIGSEGV).
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((40, 64, 80), np.uint16))
    imports = ["import dcimg", "faulthandler.enable()"]
    if faulthandler_first:
        imports.reverse()
    result = run_python(
        """
        import faulthandler, os, sys
        {}
        {}
        f = dcimg.DCIMGFile(sys.argv[1])
        os.truncate(sys.argv[1], 4096)
        try:
            f.whole()  # guarded: an error, and no dump
        except dcimg.DCIMGChangedError:
            print("changed", flush=True)
        print(int(f.mma[-1].sum()))  # unguarded
        """.format(*imports),
        str(path),
        timeout=300,
    )
    assert result.returncode == -signal.SIGBUS, result
    assert "changed" in result.stdout
    assert result.stderr.count("Fatal Python error") == 1, result.stderr
    assert "Bus error" in result.stderr


def test_parallel_copy_is_guarded_on_every_thread(tmp_path):
    # The OpenMP path (results of 32 MiB and more): the guard is armed on
    # each worker thread.
    path = write_dcimg(tmp_path / "t.dcimg", np.ones((64, 512, 512), np.uint16))
    result = run_python(
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
        timeout=300,
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


def _growing(tmp_path, frames=10, height=16, width=24):
    truth = example_stack(nframes=frames, height=height, width=width)
    full = write_dcimg(tmp_path / "full.dcimg", truth, version=0x1000000)
    data = full.read_bytes()
    with DCIMGFile(full) as f:
        stride = f.metadata.bytes_per_image + f.metadata.trailer_size
    header = len(data) - frames * stride
    return truth, data, header, stride


@pytest.mark.parametrize("source", ["pread", "file object", "memory"])
def test_refresh_works_on_every_byte_source(tmp_path, source):
    # refresh() once closed the reader that the next read
    # needed ("read from a closed reader"), even when nothing had changed.
    truth, data, header, stride = _growing(tmp_path)
    growing = tmp_path / "growing.dcimg"
    growing.write_bytes(data[: header + 3 * stride])
    handle = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        if source == "pread":
            f = DCIMGFile(growing, mmap=False)
        elif source == "file object":
            handle = open(growing, "rb")  # noqa: SIM115 - closed below
            f = DCIMGFile(handle)
        else:
            fsspec = pytest.importorskip("fsspec")
            memory = fsspec.filesystem("memory")
            memory.pipe("/guard/growing.dcimg", growing.read_bytes())
            f = DCIMGFile("memory://guard/growing.dcimg")
    assert f.refresh() == 3  # unchanged
    np.testing.assert_array_equal(f[0], truth[0])
    np.testing.assert_array_equal(f.whole(), truth[:3])
    assert f.timestamps.shape == (3,) and f.framestamps.shape == (3,)
    if source == "memory":
        memory.pipe("/guard/growing.dcimg", data[: header + 7 * stride])
    else:
        with open(growing, "ab") as out:
            out.write(data[header + 3 * stride : header + 7 * stride])
    assert f.refresh() == 7
    np.testing.assert_array_equal(f.whole(), truth[:7])
    assert f.timestamps.shape == (7,) and f.framestamps.shape == (7,)
    f.close()
    if handle is not None:
        handle.close()


@pytest.mark.parametrize("mmap", [True, False])
def test_refresh_racing_reads_on_other_threads(tmp_path, mmap):
    # A refresh once closed the source that reads on other
    # threads were using ('NoneType' object has no attribute 'advise' /
    # 'view').  Every read must see the file before or after a refresh:
    # its result is a prefix of the truth of a length the file had.
    # Frames larger than a page: the counters are gathered with read-ahead
    # turned off around them (the map's advise()).
    truth, data, header, stride = _growing(tmp_path, frames=12, height=64, width=80)
    growing = tmp_path / "growing.dcimg"
    growing.write_bytes(data[: header + 2 * stride])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DCIMGWarning)
        f = DCIMGFile(growing, mmap=mmap)
    with DCIMGFile(tmp_path / "full.dcimg") as full:
        all_stamps, all_counters = full.timestamps, full.framestamps
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader(kind: int) -> None:
        while not stop.is_set():
            try:
                if kind == 0:
                    got = f.framestamps
                    np.testing.assert_array_equal(got, all_counters[: len(got)])
                elif kind == 1:
                    got = f.timestamps
                    np.testing.assert_array_equal(got, all_stamps[: len(got)])
                elif kind == 2:
                    got = f.read(..., copy=False)
                    np.testing.assert_array_equal(got, truth[: len(got)])
                else:
                    got = f[:]
                    np.testing.assert_array_equal(got, truth[: len(got)])
                    assert f.metadata.frames >= 2
            except BaseException as exc:  # noqa: BLE001 - collected
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(k % 4,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        for n in range(3, 13):
            with open(growing, "ab") as out:
                out.write(data[header + (n - 1) * stride : header + n * stride])
            for _ in range(30):
                assert f.refresh() == n
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    np.testing.assert_array_equal(f.whole(), truth)
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
    result = run_python(
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
        timeout=300,
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
    result = run_python(
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
        str(ROOT / "dcimg" / "_imageio_hook"),
        timeout=300,
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


@pytest.mark.parametrize("mmap", [True, False])
def test_a_relative_path_means_the_file_it_named_when_opened(
    tmp_path, monkeypatch, mmap
):
    # The working folder may change after opening: refresh(), pickles and
    # Dask reopen the file that was opened, not a namesake elsewhere.
    import pickle

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    truth = example_stack(3, 16, 24)
    write_dcimg(tmp_path / "a" / "x.dcimg", truth)
    write_dcimg(tmp_path / "b" / "x.dcimg", truth[::-1].copy())
    monkeypatch.chdir(tmp_path / "a")
    with DCIMGFile("x.dcimg", mmap=mmap) as f:
        assert f.file_path == "x.dcimg"  # shown as given
        assert f.location == str(tmp_path / "a" / "x.dcimg")  # opened again
        monkeypatch.chdir(tmp_path / "b")
        f.refresh()
        np.testing.assert_array_equal(f[:], truth)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(f))[:], truth)
        np.testing.assert_array_equal(f.as_dask_array().compute(), truth)
