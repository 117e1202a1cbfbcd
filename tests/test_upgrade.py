"""Upgrading over the historical ``dcimg`` module, and back.

The historical module (``dcimg`` 0.6.0.post1 on the package index) is a
single top-level ``dcimg.py``; this package is a ``dcimg/`` folder. A
leftover ``dcimg.py`` beside the folder would not shadow it (a package wins
over a module of the same name in one folder), but a leftover of either kind
in the wrong place, or a half-removed install, would break ``import dcimg``.
So this test installs the old release from the index into a fresh virtual
environment, then this package's wheel over it, and checks what is on disk
and what ``import dcimg`` gives; then ``dcimg>=0.4.0`` (ZetaStitcher's
requirement) must keep this package, and a downgrade must leave a working
old module and nothing of this package.

It needs the wheel (``DCIMG_DIST_DIR``, a folder holding it, as
``.ci/run`` sets) and the package index; it is skipped, saying which is
missing, otherwise. About 30 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dcimg
from dcimg.testing import example_stack, write_dcimg

OLD = "0.6.0.post1"
DIST = os.environ.get("DCIMG_DIST_DIR")
TIMEOUT = 600

pytestmark = pytest.mark.skipif(
    not DIST, reason="set DCIMG_DIST_DIR to a folder holding the wheel to test"
)


def run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=Path(command[0]).parent,  # never the checkout: it holds dcimg/
    )
    if check and result.returncode:
        raise AssertionError(
            f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def wheel() -> Path:
    wheels = sorted(Path(DIST).glob(f"dcimg-{dcimg.__version__}-*.whl"))
    if not wheels:
        pytest.skip(f"no dcimg-{dcimg.__version__} wheel in DCIMG_DIST_DIR={DIST}")
    return wheels[-1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with its bundled pip, and NumPy 1.x.

    NumPy 1.x because the historical module does not run on NumPy 2 (it
    converts one-element arrays to ``int``); this package runs on both.
    """
    root = tmp_path_factory.mktemp("upgrade")
    download = run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--dest",
        root / "probe",
        f"dcimg=={OLD}",
        check=False,
    )
    if download.returncode:
        last = (download.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"the package index is unreachable (dcimg=={OLD}): {last}")
    run(sys.executable, "-m", "venv", root / "venv")
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = root / "venv" / bindir / ("python.exe" if os.name == "nt" else "python")
    run(python, "-m", "pip", "install", "--quiet", "numpy>=1.25,<2")
    return python


def site_packages(python: Path) -> Path:
    out = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    return Path(out.stdout.strip())


def installed(python: Path) -> tuple[str, str]:
    """``(dcimg.__version__, dcimg.__file__)`` as the environment imports it."""
    out = run(python, "-c", "import dcimg; print(dcimg.__version__, dcimg.__file__)")
    version, path = out.stdout.split()
    return version, path


def read_with(python: Path, path: Path) -> np.ndarray:
    """The whole stack of ``path`` as ``dcimg.DCIMGFile`` in ``python`` reads it."""
    out = path.with_suffix(".npy")
    script = textwrap.dedent(
        f"""
        import numpy as np, dcimg
        f = dcimg.DCIMGFile({str(path)!r})
        np.save({str(out)!r}, np.array(f[:]))
        f.close()
        """
    )
    run(python, "-c", script)
    return np.load(out)


def test_upgrade_over_the_old_module_and_back(venv, wheel, tmp_path):
    data = example_stack(5, 16, 12)
    packed = write_dcimg(tmp_path / "packed.dcimg", data, version=0x7)
    site = site_packages(venv)

    # The historical release: a top-level dcimg.py.
    run(venv, "-m", "pip", "install", "--quiet", f"dcimg=={OLD}")
    version, path = installed(venv)
    assert version == OLD and Path(path) == site / "dcimg.py"
    np.testing.assert_array_equal(read_with(venv, packed), data)

    # This wheel over it: the old module is removed, not left to shadow.
    result = run(venv, "-m", "pip", "install", wheel)
    assert f"Successfully uninstalled dcimg-{OLD}" in result.stdout
    version, path = installed(venv)
    assert version == dcimg.__version__
    assert Path(path) == site / "dcimg" / "__init__.py"
    assert not (site / "dcimg.py").exists()
    assert not list(site.glob("__pycache__/dcimg.*"))
    assert not list(site.glob(f"dcimg-{OLD}*"))
    np.testing.assert_array_equal(read_with(venv, packed), data)
    run(venv.parent / "dcimg", "info", "--example")

    # ZetaStitcher's requirement keeps this package, with or without -U.
    for upgrade in ([], ["--upgrade"]):
        result = run(venv, "-m", "pip", "install", *upgrade, "dcimg>=0.4.0")
        assert "Successfully installed" not in result.stdout, result.stdout
        assert installed(venv)[0] == dcimg.__version__

    # And back: the old module works, nothing of this package is left
    # (not the folder, nor the imageio start-up hook, which would fail at
    # every interpreter start without its module).
    result = run(venv, "-m", "pip", "install", f"dcimg=={OLD}")
    assert f"Successfully uninstalled dcimg-{dcimg.__version__}" in result.stdout
    version, path = installed(venv)
    assert version == OLD and Path(path) == site / "dcimg.py"
    assert not (site / "dcimg").exists()
    assert not list(site.glob("*dcimg*imageio*"))
    np.testing.assert_array_equal(read_with(venv, packed), data)
    quiet = run(venv, "-c", "pass")
    assert quiet.stderr == ""
