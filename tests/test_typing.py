"""The public API's type hints, as a user's ``mypy --strict`` sees them.

``typing_user_script.py`` uses the public API the way a user's script does and
states the types it expects with ``assert_type``. Type-checking it with
``mypy --strict`` must report nothing, and running it must pass too, so a
declared type that is too wide (``Any``) fails the first test and one that
does not match what the code returns fails the second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import dcimg

SCRIPT = Path(__file__).with_name("typing_user_script.py")


def _mypy_environment(tmp_path: Path) -> dict[str, str]:
    """Environment in which mypy finds the ``dcimg`` that tests import.

    An installed dcimg (a wheel) is found in site-packages through its
    ``py.typed`` marker. An editable install is found through an import hook
    that mypy cannot follow, so then the folder holding the package goes on
    ``MYPYPATH`` (mypy refuses site-packages there, hence the distinction).
    """
    env = dict(os.environ)
    package_parent = Path(dcimg.__file__).resolve().parent.parent
    site_dirs = {
        Path(sysconfig.get_paths()[name]).resolve() for name in ("purelib", "platlib")
    }
    if package_parent not in site_dirs:
        env["MYPYPATH"] = str(package_parent)
    else:
        env.pop("MYPYPATH", None)
    env["MYPY_CACHE_DIR"] = str(tmp_path / "mypy-cache")
    return env


@pytest.mark.slow
def test_user_script_passes_mypy_strict_and_a_wrong_one_fails(tmp_path):
    # One mypy run (it is slow to start) checks two scripts: the user's must
    # give no error, and a wrong assert_type in a script like it must give
    # the error that mypy reports, so that the check above it can fail.
    pytest.importorskip("mypy", reason="mypy is part of the test extra")
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from typing_extensions import assert_type\n"
        "import dcimg\n"
        "assert_type(dcimg.imread('x.dcimg', dask=True), int)\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            # An isinstance() that contradicts a declared type makes the rest
            # of a block unreachable, which mypy would otherwise skip quietly.
            "--warn-unreachable",
            # Check the scripts only; dcimg's own modules are read for their
            # types, and their internal errors are not the user's concern.
            "--follow-imports=silent",
            "--no-error-summary",
            "--show-error-codes",
            str(SCRIPT),
            str(wrong),
        ],
        capture_output=True,
        text=True,
        env=_mypy_environment(tmp_path),
        cwd=tmp_path,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    in_user_script = [line for line in errors if SCRIPT.name in line]
    assert not in_user_script, result.stdout + result.stderr
    assert result.returncode == 1
    assert len(errors) == 1, result.stdout + result.stderr
    assert re.search(r"wrong\.py:3: error: .*assert-type", errors[0]), (
        result.stdout + result.stderr
    )


def test_user_script_runs(tmp_path):
    # The types asserted in the script are also checked against the values
    # returned at run time (isinstance), in a fresh interpreter.
    pytest.importorskip("dask.array")
    pytest.importorskip("xarray")
    if sys.version_info < (3, 11):
        pytest.importorskip("typing_extensions")
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused: magic" in result.stdout
