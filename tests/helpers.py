"""Small helpers shared by several test modules."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"


def skip_unless_sparse_files(folder: pathlib.Path) -> None:
    """Skip the calling test unless files in ``folder`` can be sparse.

    Writes a 1 GiB hole and checks that it takes (almost) no disk blocks, so
    that tests of huge synthetic files cost no disk space.
    """
    if not hasattr(os.stat_result, "st_blocks"):
        pytest.skip("no sparse files on this system")
    probe = folder / "probe"
    with open(probe, "wb") as fh:
        fh.truncate(1 << 30)
    try:
        sparse = os.stat(probe).st_blocks * 512 < (1 << 20)
    finally:
        probe.unlink()
    if not sparse:
        pytest.skip("no sparse files on this file system")


# --------------------------------------------------------------------------
# Child processes


def run_python(
    code: str,
    *args: str,
    timeout: float,
    cwd: pathlib.Path | str | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[Any]:
    """Run ``python -c code args`` in a child process and return what it did.

    ``code`` is dedented first. The child runs from ``cwd``, by default the
    temporary folder: never from the source tree, whose ``dcimg`` folder has
    no compiled modules. Output is text, unless ``stdin`` (bytes fed to the
    child) makes it bytes.
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        input=stdin,
        capture_output=True,
        text=stdin is None,
        timeout=timeout,
        cwd=tempfile.gettempdir() if cwd is None else cwd,
    )


def run_tool(
    script: str,
    *args: str | pathlib.Path,
    timeout: float,
    cwd: pathlib.Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tools/<script>`` with ``args``; fail the test unless it succeeds.

    Returns the finished process, its output as text. The failure message
    holds the tool's output and the end of its error output.
    """
    done = subprocess.run(
        [sys.executable, str(TOOLS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    return done


def run_tiny_bench(
    script: str, tmp_path: pathlib.Path, *args: str | pathlib.Path, timeout: float
) -> tuple[subprocess.CompletedProcess[str], pathlib.Path]:
    """Run a benchmark of ``tools/`` on its tiny size, its files in ``tmp_path``.

    Returns the finished process and the JSON file the benchmark wrote
    (``tmp_path / "bench.json"``). No timing is checked by the smoke tests
    that call this: the machine is shared and noisy.
    """
    out_json = tmp_path / "bench.json"
    done = run_tool(
        script,
        *("--size", "tiny", "--tmpdir", tmp_path, "--json", out_json),
        *args,
        timeout=timeout,
        cwd=ROOT,
    )
    return done, out_json


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """A ``distributed`` client of two one-thread worker processes on 127.0.0.1.

    Skips the calling test without ``distributed``.
    """
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


# --------------------------------------------------------------------------
# File layout, read from the header independently of the reader


def trailer_ranges(path: pathlib.Path, length: int = 12) -> list[tuple[int, int]]:
    """The (counter, seconds, microseconds) of every frame of a framed file.

    Found from the header fields, independently of the reader: ``length``
    bytes from the start of each frame's trailer.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    (session,) = struct.unpack_from("<I", head, 0x28)
    (nframes,) = struct.unpack_from("<I", head, session + 0x3C)
    (bytes_per_image,) = struct.unpack_from("<I", head, session + 0x54)
    (data_offset,) = struct.unpack_from("<Q", head, session + 0x60)
    (stride,) = struct.unpack_from("<I", head, session + 0x74)
    first = session + data_offset + bytes_per_image
    return [(first + i * stride, first + i * stride + length) for i in range(nframes)]


# --------------------------------------------------------------------------
# The command line


def leftovers(folder: pathlib.Path) -> list[str]:
    """Names in ``folder`` other than the input files (outputs, temporaries)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".dcimg")


def assert_one_line_error(status: int | str | None, err: str) -> None:
    """Check that the command line failed with one line of error, no traceback."""
    assert status not in (0, None)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dcimg ")


# --------------------------------------------------------------------------
# Files written for a test


_LAYOUT_NAMES = {0x7: "packed", 0x1000000: "framed", 0x2000000: "framed2"}


def file_kinds(*kinds: tuple[int, Any]) -> list[Any]:
    """Test parameters ``(version, dtype)``, named like ``packed-16bit``."""
    import numpy as np

    return [
        pytest.param(
            (version, dtype),
            id=f"{_LAYOUT_NAMES[version]}-{8 * np.dtype(dtype).itemsize}bit",
        )
        for version, dtype in kinds
    ]


def write_with_stored_pixels(
    path: pathlib.Path, truth: Any, version: int, row: int
) -> tuple[pathlib.Path, Any]:
    """Write ``truth`` to ``path`` with the camera's pattern over row ``row``.

    Checks that the pattern shows when the file is read without the
    correction (so that a test of the correction tests something), and
    returns the path and ``truth``.
    """
    import numpy as np

    import dcimg
    from dcimg.testing import write_dcimg

    write_dcimg(path, truth, version=version, stored_pixels_row=row)
    with dcimg.DCIMGFile(path, first_4px_correction_enabled=None) as f:
        assert not np.array_equal(f.read(), truth)  # the correction matters
    return path, truth


def copies(
    source: pathlib.Path, folder: pathlib.Path, names: str
) -> list[pathlib.Path]:
    """Copies of ``source`` in ``folder``, one ``<name>.dcimg`` per letter."""
    paths = [folder / f"{name}.dcimg" for name in names]
    for path in paths:
        path.write_bytes(source.read_bytes())
    return paths
