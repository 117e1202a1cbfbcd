"""Tests of the ``dcimg`` command line: ``info`` and ``convert``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, leftovers

import dcimg
from dcimg import cli

DATA = Path(__file__).resolve().parent / "data"
# Programs run from here, so ``python -m dcimg`` imports the installed package,
# never the source tree (the project root holds an uncompiled ``dcimg``).
CWD = Path(__file__).resolve().parent
MANIFEST = json.loads((DATA / "manifest.json").read_text())
FIXTURES = sorted(DATA.glob("*.dcimg"))
FIXTURE_IDS = [path.stem for path in FIXTURES]
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and ptys")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line in this process; return (status, stdout, stderr)."""
    try:
        status = cli.main([str(arg) for arg in argv])
    except SystemExit as stop:  # argparse: --help, --version, usage errors
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


# --------------------------------------------------------------------------
# help, version


@pytest.mark.parametrize("command", [[], ["info"], ["convert"]])
def test_help_on_every_command(capsys, command):
    status, out, _ = run(capsys, *command, "--help")
    assert status == 0
    assert out.startswith("usage: dcimg")


def test_no_command_prints_help(capsys):
    status, out, _ = run(capsys)
    assert status == 2
    assert "info" in out and "convert" in out


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.strip() == dcimg.__version__


# --------------------------------------------------------------------------
# info


@pytest.mark.parametrize("path", FIXTURES, ids=FIXTURE_IDS)
def test_info_on_golden_files(capsys, path):
    truth = MANIFEST[path.stem]
    status, out, err = run(capsys, "info", path)
    assert status == 0, err
    frames, height, width = truth["shape"]
    assert f"{frames} frames x {height} x {width} pixels ({truth['dtype']})" in out
    assert f"version {truth['format_version']}" in out
    for label in ("camera", "first frame", "last frame", "frame rate", "truncated"):
        assert f"  {label}" in out
    row = truth["stored_pixels_row"]
    if row is None:
        assert "stored pixels  none" in out
    else:
        assert f"at row {row}, column 0" in out
    if "camera_model" in truth:
        assert f"{truth['camera_model']}, S/N {truth['camera_serial']}" in out
    if "sub_array" in truth:
        sub = truth["sub_array"]
        assert f"x0={sub['x0']} y0={sub['y0']} {sub['width']} x {sub['height']}" in out
        assert f"binning {truth['binning']}x" in out
    if "dropped_frames_after_index" in truth:
        assert f"after frame index {truth['dropped_frames_after_index']}" in out
    if "declared_frames" in truth:
        assert (
            f"truncated      yes: {truth['complete_frames']} of "
            f"{truth['declared_frames']} declared" in out
        )
    else:
        assert "truncated      no" in out


def test_info_json_on_all_golden_files(capsys):
    status, out, _ = run(capsys, "info", "--json", *FIXTURES)
    assert status == 0
    reports = json.loads(out)
    assert [Path(r["path"]).stem for r in reports] == FIXTURE_IDS
    for report in reports:
        truth = MANIFEST[Path(report["path"]).stem]
        assert report["shape"] == truth["shape"]
        assert report["format_version_hex"] == truth["format_version"]


def test_info_example(capsys):
    status, out, _ = run(capsys, "info", "--example")
    assert status == 0
    assert "(built-in example)" in out
    assert "20 frames x 64 x 80 pixels (uint16)" in out
    assert "C11440-22C, S/N 301234" in out
    assert "x0=984 y0=992 80 x 64 sensor pixels, binning 1x" in out
    assert "frame rate     30.000 Hz" in out
    assert "dropped frames 1 missing, after frame index 11" in out
    assert "stored pixels  4 at row 31, column 0" in out


def test_info_example_json(capsys):
    status, out, _ = run(capsys, "info", "--example", "--json")
    assert status == 0
    (report,) = json.loads(out)
    assert report["dropped_frames"] == [11]


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


@pytest.mark.parametrize(
    "kind", ["missing", "text", "empty", "cut-header", "directory"]
)
def test_info_bad_path_is_one_line(capsys, tmp_path, kind):
    path = bad_inputs(tmp_path)[kind]
    status, out, err = run(capsys, "info", path)
    assert_one_line_error(status, err)
    assert str(path) in err
    assert out == ""


def test_info_reports_good_files_despite_bad_ones(capsys, tmp_path):
    status, out, err = run(capsys, "info", tmp_path / "nope.dcimg", FIXTURES[0])
    assert status == 1
    assert "no such file" in err
    assert FIXTURES[0].name in out


def test_info_needs_a_path(capsys):
    status, _, err = run(capsys, "info")
    assert status == 2
    assert "--example" in err


def test_errors_have_no_traceback_from_the_real_program(tmp_path):
    """The installed entry point (``python -m dcimg``) as a user runs it."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    for argv in (
        ["info", str(tmp_path / "missing.dcimg")],
        ["info", str(text)],
        ["convert", str(text), str(tmp_path / "out.tif")],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "dcimg", *argv],
            capture_output=True,
            text=True,
            cwd=CWD,
        )
        assert_one_line_error(proc.returncode, proc.stderr)
        assert proc.returncode == 1
    assert leftovers(tmp_path) == ["notes.txt"]


@POSIX
def test_info_into_a_closed_pipe_has_no_traceback():
    args = [sys.executable, "-m", "dcimg", "info", "--json", *map(str, FIXTURES * 40)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=CWD
    )
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
