"""Every ``dcimg convert`` example of the README and the docs runs as written.

The commands are read from the files themselves, so an example that is
edited stays tested; they run in a folder holding the inputs they name
(``recording.dcimg``, a ``run3/`` series of multi-frame files over T and Z,
...).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from dcimg.cli import main
from dcimg.testing import example_stack, write_dcimg, write_series

pytest.importorskip("tifffile")
pytest.importorskip("zarr")

ROOT = Path(__file__).resolve().parent.parent
# Examples that show a refusal, not a conversion.
REFUSALS = ("run.zarr run.zarr", "keep.zarr")


def examples() -> list[tuple[str, str]]:
    found = []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            if line.startswith("dcimg convert "):
                found.append(("README.md", line.split("  #")[0].strip()))
    for page in sorted((ROOT / "docs").glob("*.rst")):
        if page.name == "changelog.rst":
            continue
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")
        for line in re.findall(r"^\s*\$ (dcimg convert .*)$", text, re.M):
            found.append((page.name, line.strip()))
        for line in re.findall(r"``(dcimg convert [^`]*)``", text.replace("\n", " ")):
            found.append((page.name, " ".join(line.split())))
    return [(where, cmd) for where, cmd in found if not any(r in cmd for r in REFUSALS)]


EXAMPLES = examples()


def test_the_examples_are_found():
    where = {w for w, _ in EXAMPLES}
    assert {"README.md", "cli.rst", "conversion.rst", "index.rst"} <= where
    assert any("run3/" in cmd for _, cmd in EXAMPLES)
    assert any(cmd.startswith("dcimg convert acq ") for _, cmd in EXAMPLES)


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    """A folder holding every input the examples name."""
    write_dcimg(tmp_path / "recording.dcimg", np.zeros((2001, 8, 8), np.uint16) + 7)
    write_dcimg(tmp_path / "zstack.dcimg", example_stack(12, 40, 48))
    write_dcimg(tmp_path / "stack.dcimg", example_stack(6, 16, 20))
    # T x Z runs of files of 2 frames each (time points).
    truth = example_stack(12, 8, 10).reshape(2, 3, 2, 8, 10)
    write_series(tmp_path / "run3", truth, name="run3", axes="TZ")
    write_series(tmp_path / "acq", truth, name="acq", axes="TZ")
    (tmp_path / "day1").mkdir()
    for name in ("a", "b"):
        write_dcimg(tmp_path / "day1" / f"{name}.dcimg", example_stack(3, 8, 10))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("where", "command"), EXAMPLES, ids=[f"{w}: {c}" for w, c in EXAMPLES]
)
def test_example_runs_as_written(inputs, capsys, where, command):
    argv = shlex.split(command)[1:]
    assert main(argv) == 0, (where, command, capsys.readouterr().err)
