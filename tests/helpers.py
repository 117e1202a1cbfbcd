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
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

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


STACK_KINDS = ["file", "grid series", "concat series"]


def write_stack(folder: pathlib.Path, kind: str, seed: int = 0) -> tuple[Any, Any]:
    """Write one kind of stack in ``folder``: what opens it, and its true pixels.

    ``kind`` is one of :data:`STACK_KINDS`: one file of 6 frames, a grid
    series (T 2 x Z 3 files of 4 frames), or two files of 3 and 5 frames
    read as one series, whose counters jump from 2 to 10 between the files
    (7 frames dropped). Every file has the camera's stored pixels on row 3.
    Frames are 10 x 12 uint16 pixels drawn from ``seed``.
    """
    import numpy as np

    from dcimg.testing import write_dcimg, write_series

    rng = np.random.default_rng(seed)
    if kind == "file":
        truth = rng.integers(0, 4000, (6, 10, 12), dtype=np.uint16)
        return write_dcimg(folder / "one.dcimg", truth, stored_pixels_row=3), truth
    if kind == "grid series":
        truth = rng.integers(0, 4000, (2, 3, 4, 10, 12), dtype=np.uint16)
        write_series(folder / "grid", truth, name="cell", stored_pixels_row=3)
        return folder / "grid", truth
    parts = [rng.integers(0, 4000, (n, 10, 12), dtype=np.uint16) for n in (3, 5)]
    paths = [
        write_dcimg(
            folder / f"part_{k}.dcimg",
            part,
            framestamps=np.arange(len(part)) + 10 * k,
            stored_pixels_row=3,
        )
        for k, part in enumerate(parts)
    ]
    return paths, np.concatenate(parts)


def open_stack(source: Any, kind: str) -> Any:
    """Open what :func:`write_stack` wrote: a ``DCIMGFile`` or ``DCIMGSeries``."""
    import dcimg

    if kind == "file":
        return dcimg.DCIMGFile(source)
    return dcimg.DCIMGSeries(source, concat=kind == "concat series")


@contextlib.contextmanager
def opened_stacks(
    folder: pathlib.Path, seed: int = 0
) -> Iterator[dict[str, tuple[Any, Any, Any]]]:
    """Every kind of :func:`write_stack`, open: ``{kind: (stack, truth, source)}``.

    The stacks are closed on leaving the ``with`` block.
    """
    made = {}
    try:
        for kind in STACK_KINDS:
            source, truth = write_stack(folder, kind, seed)
            made[kind] = (open_stack(source, kind), truth, source)
        yield made
    finally:
        for stack, _, _ in made.values():
            stack.close()


def copies(
    source: pathlib.Path, folder: pathlib.Path, names: str
) -> list[pathlib.Path]:
    """Copies of ``source`` in ``folder``, one ``<name>.dcimg`` per letter."""
    paths = [folder / f"{name}.dcimg" for name in names]
    for path in paths:
        path.write_bytes(source.read_bytes())
    return paths


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` as a module, to call its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"_dcimg_tool_{name}", TOOLS / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool
    spec.loader.exec_module(tool)
    return tool


# --------------------------------------------------------------------------
# Reads: what a test asks for, and what it sees


def basic_indexing_keys(shape: tuple[int, ...]) -> SearchStrategy[tuple[Any, ...]]:
    """Keys of NumPy basic indexing of an array of ``shape``.

    One item per leading axis (any number of axes, from none to all): an
    index in range (negative ones too) or a slice whose start and stop may
    fall out of range and whose step is -3 to 3 (not 0).
    """
    from hypothesis import strategies as st

    def axis(n: int) -> SearchStrategy[int | slice]:
        return st.one_of(
            st.integers(-n, n - 1),
            st.builds(
                slice,
                st.none() | st.integers(-n - 2, n + 2),
                st.none() | st.integers(-n - 2, n + 2),
                st.none() | st.sampled_from([-3, -2, -1, 1, 2, 3]),
            ),
        )

    return st.tuples(*(axis(n) for n in shape)).flatmap(
        lambda items: st.integers(0, len(items)).map(lambda cut: items[:cut])
    )


@dataclass(frozen=True)
class FileRead:
    """One call of ``DCIMGFile.read``: its key and the array it returned."""

    key: Any
    ndim: int
    nbytes: int


def record_file_reads(monkeypatch: pytest.MonkeyPatch) -> list[FileRead]:
    """Record every ``DCIMGFile.read`` from now to the end of the test.

    Returns the list that each read appends its :class:`FileRead` to (only
    the key and the result's size, so that no view of a file outlives it).
    """
    import dcimg

    reads: list[FileRead] = []
    original = dcimg.DCIMGFile.read

    def read(self: dcimg.DCIMGFile, key: Any = Ellipsis, **kwargs: Any) -> Any:
        result = original(self, key, **kwargs)
        reads.append(FileRead(key, result.ndim, result.nbytes))
        return result

    monkeypatch.setattr(dcimg.DCIMGFile, "read", read)
    return reads
