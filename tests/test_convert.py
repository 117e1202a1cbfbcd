"""Tests of the converter: ``dcimg.convert`` and ``dcimg convert``."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import assert_one_line_error, copies, leftovers, record_file_reads
from test_cli import POSIX, bad_inputs, run  # shared with the CLI tests

import dcimg
from dcimg import _convert
from dcimg.testing import example_stack, write_dcimg, write_example

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")

DATA = Path(__file__).resolve().parent / "data"
# Programs run from here, so ``python -m dcimg`` imports the installed package,
# never the source tree (the project root holds an uncompiled ``dcimg``).
CWD = Path(__file__).resolve().parent
MANIFEST = json.loads((DATA / "manifest.json").read_text())
FIXTURES = sorted(DATA.glob("*.dcimg"))
FIXTURE_IDS = [path.stem for path in FIXTURES]
SUFFIXES = [".tif", ".btf", ".ome.tif", ".zarr", ".ome.zarr"]


def read_back(out: Path) -> np.ndarray:
    """Read a converted file with the third-party reader of its format."""
    if out.suffix == ".zarr":
        node = zarr.open(str(out), mode="r")
        return np.asarray(node["0"] if out.name.endswith(".ome.zarr") else node)
    return tifffile.imread(out)


def expected(path: Path, frames: slice = slice(None)) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dcimg.DCIMGWarning)
        with dcimg.DCIMGFile(path) as f:
            return f[frames]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example(tmp_path_factory.mktemp("example") / "example.dcimg")


# --------------------------------------------------------------------------
# convert: round trips


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("path", FIXTURES, ids=FIXTURE_IDS)
def test_convert_golden_files_round_trip(capsys, tmp_path, path, suffix):
    out = tmp_path / f"out{suffix}"
    status, _, err = run(capsys, "convert", path, out)
    assert status == 0, err
    result = read_back(out)
    truth = expected(path)
    assert result.dtype == truth.dtype
    np.testing.assert_array_equal(result, truth)
    np.testing.assert_array_equal(result, np.load(DATA / f"{path.stem}.npz")["data"])
    assert leftovers(tmp_path) == [out.name]


@pytest.mark.parametrize("suffix", [*SUFFIXES, ".tiff", ".tf8", ".ome.tiff"])
def test_convert_example_round_trip(capsys, tmp_path, suffix):
    out = tmp_path / f"example{suffix}"
    status, _, err = run(capsys, "convert", "--example", out)
    assert status == 0, err
    assert "wrote" in err and "built-in example" in err
    np.testing.assert_array_equal(read_back(out), example_stack())


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("3:17:2", slice(3, 17, 2)),
        ("-5:", slice(-5, None)),
        ("::-3", slice(None, None, -3)),
        ("7", slice(7, 8)),
    ],
)
def test_convert_frame_selection(capsys, tmp_path, example, suffix, text, frames):
    out = tmp_path / f"part{suffix}"
    status, _, err = run(capsys, "convert", example, out, "--frames", text)
    assert status == 0, err
    # tifffile drops the length-1 time axis of a one-frame OME-TIFF
    truth = expected(example, frames)
    np.testing.assert_array_equal(read_back(out).reshape(truth.shape), truth)


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".ome.zarr"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint16"])
def test_convert_dtype(capsys, tmp_path, example, suffix, dtype):
    out = tmp_path / f"typed{suffix}"
    status, _, err = run(capsys, "convert", example, out, "--dtype", dtype)
    assert status == 0, err
    result = read_back(out)
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result, expected(example).astype(dtype))


def test_convert_bigtiff_is_bigtiff(tmp_path, example):
    for name, big in (("a.tif", False), ("a.btf", True), ("a.ome.tif", False)):
        _convert.convert(example, tmp_path / name, progress=False)
        with tifffile.TiffFile(tmp_path / name) as tif:
            assert tif.is_bigtiff is big


def test_convert_large_data_switches_tiff_to_bigtiff(tmp_path, example, monkeypatch):
    monkeypatch.setattr(_convert.tiff, "_CLASSIC_TIFF_LIMIT", 1000)
    _convert.convert(example, tmp_path / "a.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.is_bigtiff


def test_convert_streams_in_bounded_blocks(tmp_path, example, monkeypatch):
    """Every read is a block of at most BLOCK_BYTES; chunks hold whole frames."""
    frame_bytes = 64 * 80 * 2
    monkeypatch.setattr(_convert.options, "BLOCK_BYTES", 3 * frame_bytes)
    monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 2 * frame_bytes)
    reads = record_file_reads(monkeypatch)
    for name in ("s.ome.tif", "s.ome.zarr"):
        reads.clear()
        _convert.convert(example, tmp_path / name, progress=False)
        sizes = [read.nbytes for read in reads if read.ndim == 3]
        assert sum(sizes) == 20 * frame_bytes
        assert max(sizes) <= 3 * frame_bytes
    array = zarr.open(str(tmp_path / "s.ome.zarr"), mode="r")["0"]
    assert array.chunks == (2, 64, 80)
    np.testing.assert_array_equal(array[:], example_stack())


def test_block_pool_reuses_only_what_nobody_holds():
    """A block is read into again only once no view of it is left."""
    from dcimg._convert.plan import _BlockPool

    pool = _BlockPool(keep=2)
    first = pool.take((3, 4), np.dtype(np.uint16))
    second = pool.take((3, 4), np.dtype(np.uint16))
    kept = memoryview(second)  # a buffer export holds its array too
    assert not np.shares_memory(first, second)
    third = pool.take((2, 4), np.dtype(np.uint16))  # both held: a new one
    assert not np.shares_memory(third, first)
    assert not np.shares_memory(third, second)
    address = first.__array_interface__["data"][0]
    del first
    again = pool.take((2, 2), np.dtype(np.int32))  # the first one's memory
    assert again.__array_interface__["data"][0] == address
    assert again.shape == (2, 2)
    assert again.dtype == np.int32
    assert again.flags.c_contiguous
    del second
    assert not np.shares_memory(pool.take((3, 4), np.dtype(np.uint16)), kept.obj)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_pages_kept_by_the_writer_are_not_overwritten(
    tmp_path, example, monkeypatch, compression
):
    """tifffile holds strips of many pages to compress them together; with a
    frame per block, the blocks it holds must not be read into again."""
    tifffile = pytest.importorskip("tifffile")
    if compression == "zstd":
        pytest.importorskip("imagecodecs")
    monkeypatch.setattr(_convert.options, "BLOCK_BYTES", 64 * 80 * 2)
    out = _convert.convert(
        example, tmp_path / "k.ome.tif", compression=compression, progress=False
    )
    np.testing.assert_array_equal(tifffile.imread(out), example_stack())


# --------------------------------------------------------------------------
# convert: metadata


def test_ome_tiff_metadata(tmp_path, example):
    out = _convert.convert(example, tmp_path / "m.ome.tif", frames=slice(2, 8, 2))
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome
        assert tif.series[0].axes == "TYX"
        xml = tif.ome_metadata
    with dcimg.DCIMGFile(example) as f:
        micro = f.timestamps.astype(np.int64)
    for index in (2, 4, 6):
        assert f'DeltaT="{(micro[index] - micro[0]) / 1e6}"' in xml
    for text in ("C11440-22C", "301234", "x0=984 y0=992", "2024-09-05T16:53:17"):
        assert text in xml


def test_ome_zarr_metadata(tmp_path, example):
    out = _convert.convert(
        example, tmp_path / "m.ome.zarr", frames=slice(None, None, 2)
    )
    group = zarr.open_group(str(out), mode="r")
    (multiscale,) = ngff_attrs(out)["multiscales"]
    assert [axis["name"] for axis in multiscale["axes"]] == ["t", "y", "x"]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[0] == pytest.approx(2 / 30, rel=1e-3)
    info = group.attrs["dcimg"]
    with dcimg.DCIMGFile(example) as f:
        assert info["timestamps_us"] == f.timestamps.astype(np.int64)[::2].tolist()
        assert info["framestamps"] == f.framestamps[::2].tolist()
    assert info["metadata"]["camera"]["model"] == "C11440-22C"


def test_plain_tiff_and_zarr_keep_camera_metadata(tmp_path, example):
    tif = _convert.convert(example, tmp_path / "m.tif")
    with tifffile.TiffFile(tif) as f:
        (shaped,) = f.shaped_metadata
    assert shaped["dcimg"]["metadata"]["camera"]["serial"] == "301234"
    plain = _convert.convert(example, tmp_path / "m.zarr")
    assert zarr.open(str(plain), mode="r").attrs["dcimg"]["metadata"]["shape"] == [
        20,
        64,
        80,
    ]


def test_truncated_input_converts_the_complete_frames(capsys, tmp_path):
    path = DATA / "framed_truncated.dcimg"
    status, _, err = run(capsys, "convert", path, tmp_path / "t.ome.tif")
    assert status == 0
    assert "warning:" in err
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "t.ome.tif"), expected(path)
    )


# --------------------------------------------------------------------------
# convert: refusals and errors


@pytest.mark.parametrize("suffix", [".tif", ".ome.zarr"])
def test_convert_refuses_to_overwrite(capsys, tmp_path, example, suffix):
    out = tmp_path / f"exists{suffix}"
    if suffix == ".tif":
        out.write_bytes(b"precious")
    else:
        out.mkdir()
        (out / "keep").write_text("precious")
    status, _, err = run(capsys, "convert", example, out)
    assert_one_line_error(status, err)
    assert "--overwrite" in err
    if suffix == ".tif":
        assert out.read_bytes() == b"precious"
    else:
        assert (out / "keep").read_text() == "precious"
    status, _, err = run(capsys, "convert", example, out, "--overwrite", "--quiet")
    assert status == 0, err
    assert err == ""
    np.testing.assert_array_equal(read_back(out), example_stack())
    assert leftovers(tmp_path) == [out.name]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert"], "PATH and OUT"),
        (["convert", "--example"], "OUT after --example"),
        (["convert", "{example}", "out.png"], "cannot tell the output format"),
        (["convert", "{example}", "out.tif", "--frames", "a:b"], "integers"),
        (["convert", "{example}", "out.tif", "--frames", "::0"], "step cannot be 0"),
        (["convert", "{example}", "out.tif", "--dtype", "complex64"], "invalid choice"),
    ],
)
def test_convert_usage_errors(capsys, tmp_path, monkeypatch, example, argv, message):
    argv = [arg.format(example=example) for arg in argv]
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "30:40"], "selects none of the 20 frames"),
        (["--dtype", "uint8"], "cannot hold every uint16 value"),
        (["--dtype", "int16"], "cannot hold every uint16 value"),
    ],
)
def test_convert_refuses_bad_requests(capsys, tmp_path, example, args, message):
    status, _, err = run(capsys, "convert", example, tmp_path / "o.tif", *args)
    assert_one_line_error(status, err)
    assert message in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "kind", ["missing", "text", "empty", "cut-header", "directory"]
)
def test_convert_bad_input_is_one_line(capsys, tmp_path, kind):
    path = bad_inputs(tmp_path)[kind]
    before = leftovers(tmp_path)
    status, _, err = run(capsys, "convert", path, tmp_path / "out.ome.tif")
    assert_one_line_error(status, err)
    assert str(path) in err
    assert leftovers(tmp_path) == before


def test_convert_into_missing_folder(capsys, tmp_path, example):
    status, _, err = run(capsys, "convert", example, tmp_path / "no" / "o.tif")
    assert_one_line_error(status, err)
    assert "does not exist" in err


@pytest.mark.parametrize("module", ["tifffile", "zarr"])
def test_convert_without_optional_package(
    capsys, tmp_path, example, monkeypatch, module
):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    out = tmp_path / ("o.ome.tif" if module == "tifffile" else "o.ome.zarr")
    status, _, err = run(capsys, "convert", example, out)
    assert_one_line_error(status, err)
    assert f"needs the {module} package" in err
    assert "pip install 'dcimg[convert]'" in err
    assert leftovers(tmp_path) == []


def test_convert_without_tqdm_still_converts(tmp_path, example, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = _convert.convert(example, tmp_path / "o.tif", progress=True)
    np.testing.assert_array_equal(tifffile.imread(out), example_stack())


# --------------------------------------------------------------------------
# convert: failures and interruptions leave nothing behind


def failing_read(monkeypatch, error: BaseException, after: int = 1) -> None:
    """Make DCIMGFile.read fail once ``after`` blocks have been read."""
    original = dcimg.DCIMGFile.read
    calls = []

    def read(self, key=Ellipsis, **kwargs):
        calls.append(key)
        if len(calls) > after:
            raise error
        return original(self, key, **kwargs)

    monkeypatch.setattr(dcimg.DCIMGFile, "read", read)
    monkeypatch.setattr(_convert.options, "BLOCK_BYTES", 64 * 80 * 2 * 4)
    monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 64 * 80 * 2 * 2)
    monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 64 * 80 * 2 * 4)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_failed_conversion_leaves_nothing(
    capsys, tmp_path, example, monkeypatch, suffix
):
    failing_read(monkeypatch, OSError(5, "Input/output error"))
    status, _, err = run(capsys, "convert", example, tmp_path / f"o{suffix}")
    assert_one_line_error(status, err)
    assert "Input/output error" in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_failed_overwrite_keeps_the_old_output(
    capsys, tmp_path, example, monkeypatch, suffix
):
    out = tmp_path / f"o{suffix}"
    _convert.convert(example, out, frames=slice(0, 3))
    failing_read(monkeypatch, OSError(28, "No space left on device"))
    status, _, err = run(capsys, "convert", example, out, "--overwrite")
    assert_one_line_error(status, err)
    assert read_back(out).shape == (3, 64, 80)
    assert leftovers(tmp_path) == [out.name]


def test_failing_writer_leaves_nothing(capsys, tmp_path, example, monkeypatch):
    def broken(plan, target, progress):
        target.write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_convert.run, "_write_tiff", broken)
    status, _, err = run(capsys, "convert", example, tmp_path / "o.tif")
    assert_one_line_error(status, err)
    assert err.strip().endswith("o.tif: no space left on the device")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".ome.zarr"])
def test_interrupted_conversion_leaves_nothing(
    capsys, tmp_path, example, monkeypatch, suffix
):
    failing_read(monkeypatch, KeyboardInterrupt(), after=2)
    status, _, err = run(capsys, "convert", example, tmp_path / f"o{suffix}")
    assert status == 130
    assert err.strip().splitlines()[-1] == "dcimg: interrupted"
    assert leftovers(tmp_path) == []


# Converts one frame per block and stops at read number TARGET (1-based)
# until a signal has been received: the test sends SIGINT or SIGTERM at an
# exact moment of the conversion, whatever the load of the machine.
PAUSED_CONVERT = textwrap.dedent(
    """
    import itertools, signal, sys, time
    import dcimg
    import dcimg._convert.options as options, dcimg._convert.zarr_output as zarr_output
    from dcimg.cli import main

    target = int(sys.argv.pop(1))
    original = dcimg.DCIMGFile.read
    reads = itertools.count(1)

    def paused_read(self, key=Ellipsis, **kwargs):
        if next(reads) == target:
            print("paused", flush=True)
            interrupt = signal.getsignal(signal.SIGINT).__self__
            deadline = time.monotonic() + 60
            while interrupt.received is None and time.monotonic() < deadline:
                time.sleep(0.005)
        return original(self, key, **kwargs)

    dcimg.DCIMGFile.read = paused_read
    frame = 64 * 80 * 2
    options.BLOCK_BYTES = zarr_output.CHUNK_BYTES = zarr_output.SHARD_BYTES = frame
    sys.exit(main(sys.argv[1:]))
    """
)
# The first, a middle and the last of the 20 reads (after the last one, the
# pyramid levels and the metadata are still to be written).
MOMENTS = {"first": 1, "middle": 10, "last": 20}


@POSIX
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_signals_at_any_moment_leave_nothing(tmp_path, example, suffix):
    """SIGINT and SIGTERM, at three moments: one line, status 130, no files."""
    runs = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        for moment, target in MOMENTS.items():
            folder = tmp_path / f"{signum.name}-{moment}"
            folder.mkdir()
            # Pyramid levels (where the format has them) add moments to stop.
            levels = [] if suffix == ".zarr" else ["--pyramid", "1"]
            argv = [str(example), str(folder / f"o{suffix}"), *levels]
            proc = subprocess.Popen(
                [sys.executable, "-c", PAUSED_CONVERT, str(target), "convert", *argv],
                cwd=CWD,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            runs.append((signum, moment, folder, proc))
    for signum, moment, folder, proc in runs:
        line = proc.stdout.readline()
        assert line == "paused\n", (moment, proc.communicate())
        # The conversion is under way: its temporary output exists.
        assert [p.name.endswith(".part") for p in folder.iterdir()] == [True]
        proc.send_signal(signum)
    for signum, moment, folder, proc in runs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (signum, moment, err)
        assert err == "dcimg: interrupted\n", (signum, moment, err)
        assert list(folder.iterdir()) == [], (signum, moment)


@POSIX
def test_signal_during_a_batch_keeps_finished_files(tmp_path, example):
    inputs = copies(example, tmp_path, "ab")
    out_dir = tmp_path / "out"
    # Read 25 is the fifth of the second file's 20 one-frame blocks.
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_CONVERT, "25", "convert", *map(str, inputs),
         "--to", "ome.zarr", "--out-dir", str(out_dir)],
        cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline() == "paused\n", proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (130, "dcimg: interrupted\n")
    assert [p.name for p in out_dir.iterdir()] == ["a.ome.zarr"]
    np.testing.assert_array_equal(read_back(out_dir / "a.ome.zarr"), example_stack())


# --------------------------------------------------------------------------
# convert: a full disk


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("how", ["errno", "short write"])
def test_full_disk_injected(capsys, tmp_path, example, monkeypatch, suffix, how):
    """Writes fail as on a full disk: one line naming it, nothing left."""
    written = []

    def fail(*args: Any, **kwargs: Any) -> None:
        if how == "errno":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        # NumPy's tofile on a full disk (no errno); the disk has no room left.
        usage = SimpleNamespace(total=100, used=100, free=0)
        monkeypatch.setattr(_convert.staging.shutil, "disk_usage", lambda path: usage)
        raise OSError("262144 requested and 261504 written")

    if suffix.endswith("zarr"):
        # Ten shards of one chunk: the disk fills up at the fourth object
        # zarr-python writes (metadata included).
        monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 64 * 80 * 2 * 2)
        monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 64 * 80 * 2 * 2)
        real_set = zarr.storage.LocalStore.set

        async def full_set(self: Any, key: str, value: Any) -> None:
            if len(written) >= 3:
                fail()
            written.append(key)
            await real_set(self, key, value)

        monkeypatch.setattr(zarr.storage.LocalStore, "set", full_set)
    else:
        monkeypatch.setattr(tifffile.FileHandle, "write_array", fail)
    status, _, err = run(capsys, "convert", example, tmp_path / f"o{suffix}")
    assert_one_line_error(status, err)
    assert (
        err
        == f"dcimg convert: {tmp_path / f'o{suffix}'}: no space left on the device\n"
    )
    assert leftovers(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (needs root; skipped otherwise)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root on Linux")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_full_disk_for_real(capsys, small_disk, tmp_path, suffix):
    """A 2.5 MB stack does not fit in 1 MiB: the real error, reported once."""
    stack = np.random.default_rng(0).integers(0, 2**16, (40, 128, 256), np.uint16)
    path = write_dcimg(tmp_path / "big.dcimg", stack)
    out = small_disk / f"o{suffix}"
    options = ["--compression", "none"]
    status, _, err = run(capsys, "convert", path, out, *options)
    assert_one_line_error(status, err)
    assert err == f"dcimg convert: {out}: no space left on the device\n"
    assert list(small_disk.iterdir()) == []


# --------------------------------------------------------------------------
# convert: progress bar


def run_in_pty(argv: list[str]) -> tuple[int, str]:
    """Run a command with a pseudo-terminal (80 x 24) as its terminal."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, cwd=CWD
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return proc.wait(timeout=60), output.decode(errors="replace")


@POSIX
def test_progress_bar_on_a_terminal(tmp_path, example):
    out = tmp_path / "bar.ome.zarr"
    status, screen = run_in_pty(
        [sys.executable, "-m", "dcimg", "convert", str(example), str(out)]
    )
    assert status == 0, screen
    assert "bar.ome.zarr: 100%" in screen
    assert "20/20" in screen and "frame/s" in screen


@POSIX
def test_one_progress_bar_for_a_batch(tmp_path, example):
    inputs = copies(example, tmp_path, "ab")
    out_dir = tmp_path / "out"
    status, screen = run_in_pty(
        [sys.executable, "-m", "dcimg", "convert", *map(str, inputs), "--to",
         "zarr", "--out-dir", str(out_dir), "--frames", "::2"]
    )  # fmt: skip
    assert status == 0, screen
    assert "2 files: 100%" in screen and "20/20" in screen
    assert f"wrote 2 files to {out_dir}" in screen


def test_convert_is_public():
    assert dcimg.convert is _convert.convert
    assert "convert" in dcimg.__all__
    for word in ("Stack", "shape", "dtype", "read(key", "timestamps", "axes"):
        assert word in dcimg.convert.__doc__


@POSIX
def test_no_progress_bar_with_quiet_on_a_terminal(tmp_path, example):
    out = tmp_path / "quiet.tif"
    status, screen = run_in_pty(
        [sys.executable, "-m", "dcimg", "convert", "-q", str(example), str(out)]
    )
    assert status == 0, screen
    assert screen.strip() == ""
    assert out.is_file()


def test_no_progress_bar_when_piped(tmp_path, example):
    out = tmp_path / "piped.tif"
    proc = subprocess.run(
        [sys.executable, "-m", "dcimg", "convert", str(example), str(out)],
        capture_output=True,
        text=True,
        cwd=CWD,
    )
    assert proc.returncode == 0, proc.stderr
    assert "%|" not in proc.stderr and "frame/s" not in proc.stderr
    assert proc.stderr.strip() == f"dcimg convert: wrote {out} from {example}"


# --------------------------------------------------------------------------
# helpers of the converter


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.tif", "TIFF"),
        ("a.TIFF", "TIFF"),
        ("a.btf", "BigTIFF"),
        ("a.tf8", "BigTIFF"),
        ("a.ome.tif", "OME-TIFF"),
        ("a.OME.TIFF", "OME-TIFF"),
        ("a.ome.btf", "OME-BigTIFF"),
        ("a.zarr", "Zarr"),
        ("a.ome.zarr", "OME-Zarr"),
    ],
)
def test_output_format(name, fmt):
    assert _convert.output_format(name).name == fmt


@pytest.mark.parametrize("name", ["a.png", "a", ".tif", "a.tif.gz"])
def test_output_format_unknown(name):
    with pytest.raises(_convert.ConversionError):
        _convert.output_format(name)


@pytest.mark.parametrize(
    ("text", "selection"),
    [
        (":", slice(None, None)),
        ("5:", slice(5, None)),
        (":10", slice(None, 10)),
        ("1:10:3", slice(1, 10, 3)),
        ("::-1", slice(None, None, -1)),
        ("-1", slice(-1, None)),
        ("4", slice(4, 5)),
    ],
)
def test_parse_frames(text, selection):
    assert _convert.parse_frames(text) == selection


def test_convert_accepts_an_open_file(tmp_path, example):
    with dcimg.DCIMGFile(example) as f:
        out = _convert.convert(f, tmp_path / "o.zarr", frames=slice(4, 6))
        assert not f.closed
    np.testing.assert_array_equal(
        zarr.open(str(out), mode="r")[:], example_stack()[4:6]
    )


def test_convert_u8_and_padded_rows(tmp_path):
    stack = example_stack(5, 9, 13, dtype=np.uint8)
    path = write_dcimg(
        tmp_path / "u8.dcimg", stack, version=0x7, bytes_per_row=16, stored_pixels_row=2
    )
    for suffix in SUFFIXES:
        out = _convert.convert(path, tmp_path / f"u8{suffix}", dtype="float64")
        np.testing.assert_array_equal(read_back(out), stack.astype(np.float64))


def test_convert_cut_packed_file_without_time_stamps(capsys, tmp_path):
    """A packed file cut before its footer has no time stamps or counters."""
    stack = example_stack(6, 8, 10)
    path = write_dcimg(
        tmp_path / "cut.dcimg", stack, version=0x7, stored_pixels_row=2, truncate_to=900
    )
    truth = expected(path)
    assert 0 < len(truth) < 6
    for suffix in SUFFIXES:
        out = tmp_path / f"cut{suffix}"
        status, _, err = run(capsys, "convert", path, out)
        assert status == 0, err
        np.testing.assert_array_equal(read_back(out), truth)
    group = zarr.open_group(str(tmp_path / "cut.ome.zarr"), mode="r")
    assert group.attrs["dcimg"]["timestamps_us"] is None
    multiscales = ngff_attrs(tmp_path / "cut.ome.zarr")["multiscales"]
    assert "unit" not in multiscales[0]["axes"][0]


# --------------------------------------------------------------------------
# third-party checks of every OME output


def ome_xml(out: Path) -> str:
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome
        return tif.ome_metadata


def validate_ome_tiff(out: Path) -> Any:
    """The OME-XML validates against the OME schema; return it parsed."""
    ome_types = pytest.importorskip("ome_types")
    xml = ome_xml(out)
    ome_types.validate_xml(xml)
    return ome_types.from_xml(xml)


def ngff_attrs(out: Path) -> dict[str, Any]:
    """The NGFF metadata of an OME-Zarr: in ``ome`` (0.5) or at the top (0.4)."""
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    if "ome" in attrs:
        assert attrs["ome"]["version"] == "0.5"
        assert "version" not in attrs["ome"]["multiscales"][0]
        return dict(attrs["ome"])
    assert attrs["multiscales"][0]["version"] == "0.4"
    return attrs


def validate_ome_zarr(out: Path) -> Any:
    """The group validates as NGFF 0.5 (or 0.4) and opens with ome-zarr's reader.

    Returns the validated metadata (the ``multiscales`` and ``omero``) and the
    levels as ome-zarr reads them.
    """
    group = zarr.open_group(str(out), mode="r")
    if "ome" in group.attrs:
        models = pytest.importorskip("ome_zarr_models.v05.image")
        assert group.metadata.zarr_format == 3
        image = models.Image.from_zarr(group).ome_attributes
    else:
        models = pytest.importorskip("ome_zarr_models.v04.image")
        assert group.metadata.zarr_format == 2
        image = models.Image.from_zarr(group).attributes
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "version mismatch" of the format guess
        (node, *_) = list(reader.Reader(io.parse_url(str(out)))())
        levels = [np.asarray(level) for level in node.data]
    return image, levels


def bioio_image(out: Path) -> Any:
    bioio = pytest.importorskip("bioio")
    pytest.importorskip(
        "bioio_ome_tiff" if out.name.endswith((".tif", ".btf")) else "bioio_ome_zarr"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bioio.BioImage(out)


def test_every_ome_output_validates(tmp_path, example):
    """Golden files and option combinations: schema-valid OME-XML and NGFF."""
    cases = [
        {},
        {"axes": "Z", "pixel_size": 0.65, "z_step": 2.0},
        {"axes": "ZT", "z_size": 4, "pixel_size": (0.5, 0.7), "pyramid": 2},
        {"axes": "TZ", "z_size": 2, "frames": slice(0, 20, 1), "z_step": 1.5},
        {"frames": slice(None, None, -3), "dtype": "float32", "channel_name": "GFP µ"},
    ]
    for number, options in enumerate(cases):
        for suffix in (".ome.tif", ".ome.zarr"):
            out = dcimg.convert(example, tmp_path / f"{number}{suffix}", **options)
            if suffix == ".ome.tif":
                validate_ome_tiff(out)
            else:
                image, levels = validate_ome_zarr(out)
                assert len(levels) == 1 + options.get("pyramid", 0)
    for path in FIXTURES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dcimg.DCIMGWarning)
            tif = dcimg.convert(path, tmp_path / f"{path.stem}.ome.tif")
            ngff = dcimg.convert(path, tmp_path / f"{path.stem}.ome.zarr")
        validate_ome_tiff(tif)
        _, (level,) = validate_ome_zarr(ngff)
        np.testing.assert_array_equal(level, expected(path))


# --------------------------------------------------------------------------
# dimensions and physical sizes


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_z_stack_done_when(capsys, tmp_path, example, suffix):
    """A whole conversion, through the command line and bioio."""
    out = tmp_path / f"stack{suffix}"
    status, _, err = run(
        capsys, "convert", example, out, "--axes", "Z", "--pixel-size", "0.65",
        "--z-step", "2",
    )  # fmt: skip
    assert status == 0, err
    image = bioio_image(out)
    assert (image.dims.Z, image.dims.Y, image.dims.X) == (20, 64, 80)
    assert (image.dims.T, image.dims.C) == (1, 1)
    assert tuple(image.physical_pixel_sizes) == (2.0, 0.65, 0.65)
    pixels = image.get_image_data("ZYX")
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, example_stack())
    assert list(image.channel_names) == ["example"]


def test_ome_tiff_dimensions_and_sizes(tmp_path, example):
    out = dcimg.convert(
        example,
        tmp_path / "zt.ome.tif",
        axes="ZT",
        frames_per_slice=5,
        pixel_size_x=0.5,
        pixel_size_y=0.25,
        z_step=3,
    )
    ome = validate_ome_tiff(out)
    pixels = ome.images[0].pixels
    # Five consecutive frames per Z plane: T varies fastest.
    assert pixels.dimension_order.value == "XYTZC"
    assert (pixels.size_z, pixels.size_t, pixels.size_c) == (4, 5, 1)
    assert (pixels.physical_size_x, pixels.physical_size_y) == (0.5, 0.25)
    assert pixels.physical_size_z == 3.0
    assert pixels.physical_size_x_unit.value == "µm"
    assert pixels.physical_size_z_unit.value == "µm"
    planes = [(p.the_z, p.the_t) for p in pixels.planes]
    assert planes == [(z, t) for z in range(4) for t in range(5)]
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "ZTYX"
        data = tif.series[0].asarray()
    np.testing.assert_array_equal(data, example_stack().reshape(4, 5, 64, 80))
    # Same split, given the other way, and its transpose.
    tz = dcimg.convert(example, tmp_path / "tz.ome.tif", axes="TZ", z_size=5)
    pixels = validate_ome_tiff(tz).images[0].pixels
    assert pixels.dimension_order.value == "XYZTC"
    assert (pixels.size_z, pixels.size_t) == (5, 4)


def test_ome_zarr_dimensions_and_scales(tmp_path, example):
    out = dcimg.convert(
        example, tmp_path / "zt.ome.zarr", axes="ZT", z_size=4, pixel_size=0.65,
        z_step=2,
    )  # fmt: skip
    image, (level,) = validate_ome_zarr(out)
    (multiscale,) = image.multiscales
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [
        ("t", "time", "second"),
        ("z", "space", "micrometer"),
        ("y", "space", "micrometer"),
        ("x", "space", "micrometer"),
    ]
    (scale,) = multiscale.datasets[0].coordinateTransformations
    with dcimg.DCIMGFile(example) as f:
        micro = f.timestamps.astype(np.int64)
    # T steps are consecutive frames: the median frame interval, exactly.
    assert scale.scale == [np.median(np.diff(micro)) / 1e6, 2.0, 0.65, 0.65]
    # NGFF orders time before space: the Z-major frames are transposed.
    truth = example_stack().reshape(4, 5, 64, 80).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(level, truth)
    image = bioio_image(out)
    assert (image.dims.T, image.dims.Z) == (5, 4)
    assert tuple(image.physical_pixel_sizes) == (2.0, 0.65, 0.65)
    np.testing.assert_array_equal(image.get_image_data("TZYX"), truth)


def test_time_stamps_are_exact(tmp_path):
    """DeltaT per plane and TimeIncrement come from the time stamps exactly."""
    stamps = np.datetime64("2024-01-02T03:04:05.000001", "us") + np.array(
        [0, 100_003, 200_001, 300_007, 400_011, 500_013], "timedelta64[us]"
    )
    path = write_dcimg(
        tmp_path / "t.dcimg",
        example_stack(6, 8, 10),
        timestamps_us=stamps.astype(np.int64),
    )
    out = dcimg.convert(path, tmp_path / "t.ome.tif", frames=slice(1, None, 2))
    pixels = validate_ome_tiff(out).images[0].pixels
    micro = (stamps - stamps[0]).astype(np.int64)
    assert [p.delta_t for p in pixels.planes] == [m / 1e6 for m in micro[1::2]]
    assert {p.delta_t_unit.value for p in pixels.planes} == {"s"}
    steps = np.diff(micro[1::2])
    assert pixels.time_increment == int(np.median(steps)) / 1e6
    image = validate_ome_tiff(out).images[0]
    assert image.acquisition_date.replace(tzinfo=None) == stamps[0].astype(object)
    # A Z-stack has no time increment; its planes keep their DeltaT.
    z = dcimg.convert(path, tmp_path / "z.ome.tif", axes="Z")
    pixels = validate_ome_tiff(z).images[0].pixels
    assert pixels.time_increment is None
    assert pixels.planes[5].delta_t == micro[5] / 1e6


def test_instrument_channel_and_date(capsys, tmp_path, example):
    out = tmp_path / "i.ome.tif"
    status, _, err = run(capsys, "convert", example, out, "--channel-name", "GFP")
    assert status == 0, err
    ome = validate_ome_tiff(out)
    (instrument,) = ome.instruments
    (detector,) = instrument.detectors
    assert detector.manufacturer == "Hamamatsu"
    assert (detector.model, detector.serial_number) == ("C11440-22C", "301234")
    image = ome.images[0]
    assert image.instrument_ref.id == instrument.id
    (channel,) = image.pixels.channels
    assert channel.name == "GFP"
    assert channel.detector_settings.id == detector.id
    assert str(image.acquisition_date).startswith("2024-09-05 16:53:17.25")
    annotation = ome.structured_annotations.map_annotations[0]
    assert {m.k: m.value for m in annotation.value.ms}["camera serial"] == "301234"
    ngff = tmp_path / "i.ome.zarr"
    status, _, err = run(capsys, "convert", example, ngff, "--channel-name", "GFP")
    assert status == 0, err
    omero = ngff_attrs(ngff)["omero"]
    assert omero["channels"][0]["label"] == "GFP"
    window = omero["channels"][0]["window"]
    stack = example_stack()
    assert (window["start"], window["end"]) == (stack.min(), stack.max())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--axes", "ZT"], "needs --z-size or --frames-per-slice"),
        (["--axes", "TZ"], "needs --z-size"),
        (["--z-size", "4"], "use it with --axes 'ZT' or 'TZ'"),
        (["--axes", "ZT", "--z-size", "3"], "do not split into --z-size=3"),
        (["--axes", "ZT", "--frames-per-slice", "3"], "whole number of Z slices"),
        (["--axes", "Q"], "invalid choice"),
        (["--pixel-size", "-1"], "positive number of µm"),
        (["--z-step", "nan"], "positive number of µm"),
        (["--pyramid", "-1"], "--pyramid must be a whole number"),
        (["--compression", "blosc-zstd"], "is for Zarr"),
        (["--chunks", "1,2,x"], "comma-separated integers"),
        (["--chunks", "4,4"], "chunks apply to Zarr output"),
    ],
)
def test_convert_option_errors(capsys, tmp_path, example, args, message):
    status, _, err = run(capsys, "convert", example, tmp_path / "o.ome.tif", *args)
    assert status in (1, 2)
    assert message in err, err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_dtype_without_ome_type(tmp_path, example):
    with pytest.raises(_convert.ConversionError, match="cannot store int64"):
        dcimg.convert(example, tmp_path / "o.ome.tif", dtype="int64")
    out = dcimg.convert(example, tmp_path / "o.ome.zarr", dtype="int64")
    assert read_back(out).dtype == np.int64


# --------------------------------------------------------------------------
# compression, chunks, pyramids


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd", "lzw"])
def test_tiff_compression_round_trips(tmp_path, example, compression):
    if compression in ("zstd", "lzw"):
        pytest.importorskip("imagecodecs")
    out = dcimg.convert(
        example, tmp_path / "c.ome.tif", compression=compression, pyramid=1
    )
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        codes = {"none": 1, "zlib": 8, "zstd": 50000, "lzw": 5}
        assert page.compression == codes[compression]
        np.testing.assert_array_equal(tif.series[0].asarray(), example_stack())
        np.testing.assert_array_equal(
            tif.series[0].levels[1].asarray(), mean_2x2(example_stack())
        )


@pytest.mark.parametrize("compression", [None, "none", "blosc-zstd", "zstd", "gzip"])
def test_zarr_compression_round_trips(tmp_path, example, compression):
    # NGFF 0.4 (Zarr format 2): the compressor in .zarray, as numcodecs names it.
    out = dcimg.convert(
        example, tmp_path / "c.ome.zarr", compression=compression, ngff="0.4"
    )
    header = json.loads((out / "0" / ".zarray").read_text())
    codec = header["compressor"]
    if compression == "none":
        assert codec is None
    elif compression in (None, "blosc-zstd"):
        assert (codec["id"], codec["cname"]) == ("blosc", "zstd")
    else:
        assert codec["id"] == compression
    assert header["dimension_separator"] == "/"
    np.testing.assert_array_equal(read_back(out), example_stack())
    # NGFF 0.5 (Zarr format 3): the compressor inside the sharding codec.
    out = dcimg.convert(example, tmp_path / "c5.ome.zarr", compression=compression)
    (sharding,) = json.loads((out / "0" / "zarr.json").read_text())["codecs"]
    assert sharding["name"] == "sharding_indexed"
    names = [codec["name"] for codec in sharding["configuration"]["codecs"]]
    expected_names = {
        "none": ["bytes"],
        None: ["bytes", "blosc"],
        "blosc-zstd": ["bytes", "blosc"],
        "zstd": ["bytes", "zstd"],
        "gzip": ["bytes", "gzip"],
    }[compression]
    assert names == expected_names
    np.testing.assert_array_equal(read_back(out), example_stack())
    for version in (3, 2):
        plain = dcimg.convert(
            example,
            tmp_path / f"c{version}.zarr",
            compression=compression,
            zarr_format=version,
        )
        assert zarr.open(str(plain), mode="r").metadata.zarr_format == version
        np.testing.assert_array_equal(read_back(plain), example_stack())


@pytest.mark.parametrize(
    ("chunks", "expected_chunks"),
    [("3,16,32", (3, 16, 32)), ("16,32", (20, 16, 32)), ("64,100,100", (20, 64, 80))],
)
def test_zarr_chunks(capsys, tmp_path, example, chunks, expected_chunks):
    out = tmp_path / "k.ome.zarr"
    status, _, err = run(capsys, "convert", example, out, "--chunks", chunks)
    assert status == 0, err
    array = zarr.open_group(str(out), mode="r")["0"]
    assert array.chunks == expected_chunks
    np.testing.assert_array_equal(array[:], example_stack())


def test_zarr_chunks_across_transposed_axes(tmp_path, example):
    """Chunks spanning Z and T of a Z-major file are filled from both."""
    out = dcimg.convert(
        example, tmp_path / "k.ome.zarr", axes="ZT", z_size=4, chunks=(2, 3, 64, 40)
    )
    array = zarr.open_group(str(out), mode="r")["0"]
    assert array.chunks == (2, 3, 64, 40)
    truth = example_stack().reshape(4, 5, 64, 80).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(array[:], truth)


def mean_2x2(stack: np.ndarray) -> np.ndarray:
    """Reference 2 x 2 mean, edges repeated, integers rounded half up."""
    height, width = stack.shape[-2:]
    out = np.empty((*stack.shape[:-2], (height + 1) // 2, (width + 1) // 2))
    for y in range(out.shape[-2]):
        for x in range(out.shape[-1]):
            ys = [min(2 * y + i, height - 1) for i in (0, 1)]
            xs = [min(2 * x + i, width - 1) for i in (0, 1)]
            block = stack[..., ys, :][..., xs].astype(np.float64)
            out[..., y, x] = block.sum(axis=(-2, -1)) / 4
    if stack.dtype.kind in "ui":
        out = np.floor(out + 0.5)
    return out.astype(stack.dtype)


@pytest.mark.parametrize("suffix", [".ome.tif", ".tif", ".ome.zarr"])
def test_pyramid_levels(tmp_path, suffix):
    stack = example_stack(4, 13, 22)
    path = write_dcimg(tmp_path / "p.dcimg", stack)
    out = dcimg.convert(path, tmp_path / f"p{suffix}", pyramid=3, pixel_size=0.5)
    truth = [stack]
    for _ in range(3):
        truth.append(mean_2x2(truth[-1]))
    assert [level.shape[-2:] for level in truth] == [(13, 22), (7, 11), (4, 6), (2, 3)]
    if suffix.endswith("tif"):
        with tifffile.TiffFile(out) as tif:
            levels = [level.asarray() for level in tif.series[0].levels]
        if suffix == ".ome.tif":
            validate_ome_tiff(out)
    elif suffix == ".ome.zarr":
        image, levels = validate_ome_zarr(out)
        (multiscale,) = image.multiscales
        scales = [d.coordinateTransformations[0].scale for d in multiscale.datasets]
        # T keeps its scale (the frame interval); Y and X double per level.
        assert scales == [[scales[0][0], 0.5 * 2**k, 0.5 * 2**k] for k in range(4)]
    assert len(levels) == 4
    for level, reference in zip(levels, truth, strict=True):
        np.testing.assert_array_equal(level, reference)


def test_plain_zarr_refuses_pyramid_levels(tmp_path, capsys):
    # One array has no place for other levels (each level used to overwrite
    # the full-size array's header).
    path = write_dcimg(tmp_path / "p.dcimg", example_stack(3, 16, 20))
    with pytest.raises(_convert.ConversionError, match="OME-Zarr"):
        dcimg.convert(path, tmp_path / "p.zarr", pyramid=2)
    status, _, err = run(capsys, "convert", path, tmp_path / "p.zarr", "--pyramid", "1")
    assert status in (1, 2) and "OME-Zarr" in err
    assert leftovers(tmp_path) == []


def test_pyramid_of_floats_and_bytes(tmp_path):
    stack = example_stack(3, 9, 7, dtype=np.uint8)
    path = write_dcimg(tmp_path / "b.dcimg", stack, version=0x7)
    out = dcimg.convert(path, tmp_path / "b.ome.zarr", pyramid=1, dtype="float32")
    _, levels = validate_ome_zarr(out)
    np.testing.assert_array_equal(levels[1], mean_2x2(stack.astype(np.float32)))
    out = dcimg.convert(path, tmp_path / "b.ome.tif", pyramid=1)
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(
            tif.series[0].levels[1].asarray(), mean_2x2(stack)
        )


# --------------------------------------------------------------------------
# sources other than one file


class GridSource:
    """A two-file "series" as the converter sees it: axes, shape, read()."""

    def __init__(self, files: list[dcimg.DCIMGFile]) -> None:
        self.files = files
        self.axes = "C"
        self.shape = (len(files), *files[0].shape)
        self.dtype = files[0].dtype
        self.timestamps = np.stack([f.timestamps for f in files])
        self.framestamps = np.stack([f.framestamps for f in files])
        self.metadata = files[0].metadata
        self.file_path = files[0].file_path
        self.keys: list[Any] = []

    def read(self, key: Any, dtype: Any = None) -> np.ndarray:
        self.keys.append(key)
        cell, frames = key
        return self.files[cell].read(frames, dtype=dtype)


def test_grid_source(tmp_path, example):
    other = write_dcimg(tmp_path / "b.dcimg", example_stack()[::-1].copy())
    with dcimg.DCIMGFile(example) as a, dcimg.DCIMGFile(other) as b:
        source = GridSource([a, b])
        truth = np.stack([a[:], b[:]])
        tif = dcimg.convert(source, tmp_path / "g.ome.tif", axes="Z", z_step=1.0)
        ngff = dcimg.convert(source, tmp_path / "g.ome.zarr", axes="Z", pyramid=1)
        assert all(isinstance(key[0], int) for key in source.keys)
        source.axes = "T"
        with pytest.raises(_convert.ConversionError, match="repeat a letter"):
            dcimg.convert(source, tmp_path / "x.tif", axes="ZT", z_size=4)
        source.axes = "P"
        with pytest.raises(_convert.ConversionError, match="T, C and Z only"):
            dcimg.convert(source, tmp_path / "x.ome.tif")
        plain = dcimg.convert(source, tmp_path / "g.tif")
        source.axes = ""
        with pytest.raises(_convert.ConversionError, match="names 0"):
            dcimg.convert(source, tmp_path / "x.tif")
    pixels = validate_ome_tiff(tif).images[0].pixels
    assert pixels.dimension_order.value == "XYZCT"
    assert (pixels.size_c, pixels.size_z) == (2, 20)
    assert [c.name for c in pixels.channels] == ["example 0", "example 1"]
    with tifffile.TiffFile(tif) as f:
        np.testing.assert_array_equal(f.series[0].asarray(), truth)
    _, levels = validate_ome_zarr(ngff)
    np.testing.assert_array_equal(levels[0], truth)
    np.testing.assert_array_equal(tifffile.imread(plain), truth)


# --------------------------------------------------------------------------
# batch


def test_batch_converts_every_file(capsys, tmp_path, example):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b", "c"):
        (inputs / f"{name}.dcimg").write_bytes(example.read_bytes())
    out_dir = tmp_path / "converted"
    status, _, err = run(
        capsys, "convert", str(inputs / "*.dcimg"), "--to", "ome.zarr",
        "--out-dir", out_dir, "--axes", "Z", "--pixel-size", "0.65",
    )  # fmt: skip
    assert status == 0, err
    assert err.strip() == f"dcimg convert: wrote 3 files to {out_dir}"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "a.ome.zarr",
        "b.ome.zarr",
        "c.ome.zarr",
    ]
    for name in ("a", "b", "c"):
        np.testing.assert_array_equal(
            read_back(out_dir / f"{name}.ome.zarr"), example_stack()
        )


def test_batch_reports_failures_and_leaves_nothing_partial(
    capsys, tmp_path, example, monkeypatch
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = inputs / "good.dcimg"
    good.write_bytes(example.read_bytes())
    bad = inputs / "bad.dcimg"
    bad.write_bytes(b"not a DCIMG file at all")
    broken = inputs / "broken.dcimg"
    broken.write_bytes(example.read_bytes())
    original = dcimg.DCIMGFile.read

    def read(self, key=Ellipsis, **kwargs):
        if self.file_path.endswith("broken.dcimg"):
            raise OSError(5, "Input/output error")
        return original(self, key, **kwargs)

    monkeypatch.setattr(dcimg.DCIMGFile, "read", read)
    out_dir = tmp_path / "out"
    status, _, err = run(
        capsys, "convert", bad, broken, good, inputs / "none*.dcimg", "--to",
        "ome.tif", "--out-dir", out_dir,
    )  # fmt: skip
    assert status == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert any(str(bad) in line for line in lines)
    assert any(str(broken) in line and "Input/output error" in line for line in lines)
    assert any("none*.dcimg: no file matches" in line for line in lines)
    assert lines[-1] == f"dcimg convert: 3 of 4 files failed; 1 written to {out_dir}"
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.ome.tif"]


def test_batch_usage(capsys, tmp_path, example):
    status, _, err = run(capsys, "convert", example, "--out-dir", tmp_path / "o")
    assert status == 2 and "--to" in err
    status, _, err = run(capsys, "convert", example, tmp_path / "o.tif", "--to", "tif")
    assert status == 2 and "--out-dir" in err
    status, _, err = run(
        capsys, "convert", example, example, "--to", "tif", "--out-dir", tmp_path / "o"
    )
    assert status == 1 and "same output name" in err
    assert not (tmp_path / "o" / "example.tif").exists() or status == 1


def test_batch_all_failed_removes_the_new_folder(capsys, tmp_path):
    status, _, err = run(
        capsys, "convert", tmp_path / "missing.dcimg", "--to", "zarr", "--out-dir",
        tmp_path / "new",
    )  # fmt: skip
    assert status == 1
    assert "1 of 1 files failed" in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("suffix", "options"),
    [(".ome.zarr", {"pyramid": 2}), (".ome.tif", {"pyramid": 1}), (".tif", {})],
)
def test_memory_stays_bounded(tmp_path, monkeypatch, suffix, options):
    """A 200 MB file converts with a few blocks of memory (NumPy's allocations
    are traced), pyramid levels included."""
    import tracemalloc

    from dcimg.testing import write_sparse_dcimg

    path = write_sparse_dcimg(
        tmp_path / "big.dcimg", 100, 1024, 1024, stored_pixels_row=3
    )
    block = 8 << 20
    monkeypatch.setattr(_convert.options, "BLOCK_BYTES", block)
    monkeypatch.setattr(_convert.zarr_output, "CHUNK_BYTES", 4 << 20)
    # Zarr format 3 writes whole shards: memory holds one (with its levels).
    monkeypatch.setattr(_convert.zarr_output, "SHARD_BYTES", 8 << 20)
    tracemalloc.start()
    try:
        out = dcimg.convert(path, tmp_path / f"o{suffix}", **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = 100 * 1024 * 1024 * 2
    assert peak < 8 * block < size / 3, peak
    with dcimg.DCIMGFile(path) as f:
        truth = f[::33]
    result = read_back(out)
    np.testing.assert_array_equal(result[::33], truth)
