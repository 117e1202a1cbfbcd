"""Tests of the converter: ``dcimg.convert`` and ``dcimg convert``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import dcimg
from dcimg import _convert, cli
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
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and ptys")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in this process; return (status, stdout, stderr)."""
    try:
        status = cli.main([str(arg) for arg in argv])
    except SystemExit as stop:  # argparse: --help, --version, usage errors
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


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


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` other than the input files (outputs, temporaries)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".dcimg")


def assert_one_line_error(status: int, err: str) -> None:
    assert status not in (0, None)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dcimg ")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example(tmp_path_factory.mktemp("example") / "example.dcimg")


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty.dcimg"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.dcimg"
    cut.write_bytes((DATA / "framed_usb.dcimg").read_bytes()[:40])
    folder = tmp_path / "folder.dcimg"
    folder.mkdir()
    return {
        "missing": tmp_path / "missing.dcimg",
        "text": text,
        "empty": empty,
        "cut-header": cut,
        "directory": folder,
    }


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
    monkeypatch.setattr(_convert, "_CLASSIC_TIFF_LIMIT", 1000)
    _convert.convert(example, tmp_path / "a.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.is_bigtiff


def test_convert_streams_in_bounded_blocks(tmp_path, example, monkeypatch):
    """Every read is a block of at most BLOCK_BYTES; chunks hold whole frames."""
    frame_bytes = 64 * 80 * 2
    monkeypatch.setattr(_convert, "BLOCK_BYTES", 3 * frame_bytes)
    monkeypatch.setattr(_convert, "CHUNK_BYTES", 2 * frame_bytes)
    sizes = []
    original = dcimg.DCIMGFile.read

    def spy(self, key=Ellipsis, **kwargs):
        result = original(self, key, **kwargs)
        if result.ndim == 3:
            sizes.append(result.nbytes)
        return result

    monkeypatch.setattr(dcimg.DCIMGFile, "read", spy)
    for name in ("s.ome.tif", "s.ome.zarr"):
        sizes.clear()
        _convert.convert(example, tmp_path / name, progress=False)
        assert sum(sizes) == 20 * frame_bytes
        assert max(sizes) <= 3 * frame_bytes
    array = zarr.open(str(tmp_path / "s.ome.zarr"), mode="r")["0"]
    assert array.chunks == (2, 64, 80)
    np.testing.assert_array_equal(array[:], example_stack())


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
    (multiscale,) = group.attrs["multiscales"]
    assert multiscale["version"] == "0.4"
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


@pytest.mark.parametrize("module", ["tifffile", "numcodecs"])
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
    monkeypatch.setattr(_convert, "BLOCK_BYTES", 64 * 80 * 2 * 4)
    monkeypatch.setattr(_convert, "CHUNK_BYTES", 64 * 80 * 2 * 2)


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

    monkeypatch.setattr(_convert, "_write_tiff", broken)
    status, _, err = run(capsys, "convert", example, tmp_path / "o.tif")
    assert_one_line_error(status, err)
    assert "No space left on device" in err
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


SLOW_CONVERT = textwrap.dedent(
    """
    import sys, time
    import dcimg, dcimg._convert as convert
    from dcimg.cli import main

    original = dcimg.DCIMGFile.read

    def slow_read(self, key=Ellipsis, **kwargs):
        time.sleep(0.05)
        return original(self, key, **kwargs)

    dcimg.DCIMGFile.read = slow_read
    # one frame per block and per chunk: 20 slow blocks
    convert.BLOCK_BYTES = convert.CHUNK_BYTES = 64 * 80 * 2
    sys.exit(main(sys.argv[1:]))
    """
)


@POSIX
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_signal_mid_conversion_leaves_nothing(tmp_path, example, signum, suffix):
    out = tmp_path / f"o{suffix}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CONVERT, "convert", str(example), str(out)],
        cwd=CWD,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".part") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)  # a few blocks into the conversion
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "dcimg: interrupted" in err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


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
    assert "unit" not in group.attrs["multiscales"][0]["axes"][0]
