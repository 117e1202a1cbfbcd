"""Inputs are sacred: no conversion deletes, truncates or replaces what it reads.

Every scenario builds a small tree (a series folder, a file in a folder, a
file two folders down, and whatever links the scenario needs), snapshots it
(the SHA-256 of every file, the target of every symbolic link, every
folder), runs the conversion from the command line and from Python, and
checks that it is refused (exit status 2 and one line naming both paths, or
:class:`dcimg._convert.InputCollisionError`) and that the tree is exactly as
it was: every input intact byte for byte, nothing partial left behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcimg
from dcimg import _convert, cli
from dcimg.testing import write_dcimg, write_series

pytest.importorskip("tifffile")
pytest.importorskip("numcodecs")

SETTINGS_PATHS = settings(
    max_examples=int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root``: file hashes, link targets, folders."""
    found: dict[str, tuple[str, str]] = {}
    for folder, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                found[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[key] = ("folder", "")
            else:
                with open(path, "rb") as handle:
                    found[key] = ("file", hashlib.sha256(handle.read()).hexdigest())
    return found


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A folder with inputs in it, made the working folder (names as typed)."""
    rng = np.random.default_rng(21)
    write_series(
        tmp_path / "run.zarr",
        rng.integers(0, 4000, (3, 2, 16, 16)).astype(np.uint16),
        name="c",
    )
    (tmp_path / "keep.zarr").mkdir()
    write_dcimg(
        tmp_path / "keep.zarr" / "precious.dcimg",
        rng.integers(0, 4000, (2, 16, 16)).astype(np.uint16),
    )
    (tmp_path / "top.zarr" / "mid").mkdir(parents=True)
    write_dcimg(
        tmp_path / "top.zarr" / "mid" / "deep.dcimg",
        rng.integers(0, 4000, (2, 16, 16)).astype(np.uint16),
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def case_insensitive(folder: Path) -> bool:
    """Whether the file system of ``folder`` folds letter case (asked, not guessed)."""
    probe = folder / "Case-Probe"
    probe.touch()
    try:
        return (folder / "case-probe").exists()
    finally:
        probe.unlink()


@dataclass(frozen=True)
class Scenario:
    """A conversion that must be refused."""

    source: str
    out: str
    options: tuple[str, ...] = ("--overwrite",)
    setup: Callable[[Path], None] = field(default=lambda root: None)
    case_folded: bool = False


def hard_link(target: str, name: str) -> Callable[[Path], None]:
    return lambda root: os.link(root / target, root / name)


def symlink(target: str, name: str) -> Callable[[Path], None]:
    return lambda root: os.symlink(target, root / name)


def hop(root: Path) -> None:
    # "hop/.." is keep.zarr to the system, but "." as text.
    (root / "keep.zarr" / "inner").mkdir()
    os.symlink(os.path.join("keep.zarr", "inner"), root / "hop")


SCENARIOS = {
    # The two commands of the report.
    "series-folder-is-output": Scenario("run.zarr", "run.zarr"),
    "parent-folder-of-input": Scenario("keep.zarr/precious.dcimg", "keep.zarr"),
    # Without --overwrite: refused as an input, not "add --overwrite".
    "series-folder-without-overwrite": Scenario("run.zarr", "run.zarr", ()),
    "grandparent-folder-of-input": Scenario("top.zarr/mid/deep.dcimg", "top.zarr"),
    "glob-series-folder-is-output": Scenario("run.zarr/c_*.dcimg", "run.zarr"),
    # New outputs (and their staging folders) inside a series being read.
    "inside-series-folder": Scenario("run.zarr", "run.zarr/out.ome.tif", ()),
    "inside-series-folder-pyramid": Scenario(
        "run.zarr", "run.zarr/out.ome.zarr", ("--pyramid", "1")
    ),
    "inside-series-folder-missing-dotdot": Scenario(
        "run.zarr", "run.zarr/new/../out.tif", ()
    ),
    "hard-link-to-input": Scenario(
        "keep.zarr/precious.dcimg",
        "hard.tif",
        setup=hard_link("keep.zarr/precious.dcimg", "hard.tif"),
    ),
    "hard-link-to-series-member": Scenario(
        "run.zarr",
        "member.ome.tif",
        ("--overwrite", "--pyramid", "1"),
        setup=hard_link("run.zarr/c_001.dcimg", "member.ome.tif"),
    ),
    "symlink-to-input": Scenario(
        "keep.zarr/precious.dcimg",
        "alias.tif",
        setup=symlink("keep.zarr/precious.dcimg", "alias.tif"),
    ),
    "symlink-to-input-folder": Scenario(
        "keep.zarr/precious.dcimg",
        "alias.zarr",
        setup=symlink("keep.zarr", "alias.zarr"),
    ),
    "symlink-to-series-folder": Scenario(
        "run.zarr", "alias.ome.zarr", setup=symlink("run.zarr", "alias.ome.zarr")
    ),
    "series-read-through-symlink": Scenario(
        "alias.zarr/", "run.zarr", setup=symlink("run.zarr", "alias.zarr")
    ),
    "input-in-symlinked-folder-output-its-real-parent": Scenario(
        "short/deep.dcimg", "top.zarr", setup=symlink("top.zarr/mid", "short")
    ),
    "input-is-symlink-output-its-target-folder": Scenario(
        "link.dcimg",
        "keep.zarr",
        setup=symlink("keep.zarr/precious.dcimg", "link.dcimg"),
    ),
    "dotdot-output": Scenario("run.zarr", "run.zarr/../run.zarr"),
    "dotdot-input": Scenario("keep.zarr/../keep.zarr/precious.dcimg", "keep.zarr"),
    "dotdot-after-symlink": Scenario(
        "keep.zarr/precious.dcimg", "hop/../../keep.zarr", setup=hop
    ),
    "case-folded-series-folder": Scenario("run.zarr", "RUN.ZARR", case_folded=True),
    "case-folded-parent-folder": Scenario(
        "keep.zarr/precious.dcimg", "Keep.Zarr", case_folded=True
    ),
}


def prepare(root: Path, scenario: Scenario) -> dict[str, tuple[str, str]]:
    if scenario.case_folded and not case_insensitive(root):
        pytest.skip("this file system tells letter cases apart")
    try:
        scenario.setup(root)
    except (OSError, NotImplementedError) as error:  # e.g. Windows, no privilege
        pytest.skip(f"cannot make the links of this scenario here: {error}")
    return snapshot(root)


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS)
def test_command_line_refuses(tree, scenario, capsys):
    before = prepare(tree, scenario)
    status = cli.main(
        ["convert", "-q", *scenario.options, scenario.source, scenario.out]
    )
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("dcimg convert: refusing")
    assert repr(scenario.out) in err
    assert snapshot(tree) == before


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS)
def test_python_refuses(tree, scenario):
    before = prepare(tree, scenario)
    options = dict(overwrite="--overwrite" in scenario.options)
    if "--pyramid" in scenario.options:
        options["pyramid"] = 1
    with pytest.raises(_convert.InputCollisionError) as refused:
        dcimg.convert(scenario.source, scenario.out, **options)
    assert isinstance(refused.value, ValueError)
    message = str(refused.value)
    assert "\n" not in message and repr(scenario.out) in message
    assert refused.value.input in message
    assert snapshot(tree) == before


@pytest.mark.parametrize("opener", [dcimg.DCIMGSeries, dcimg.DCIMGFile])
def test_open_sources_are_protected(tree, opener):
    source, out = (
        ("run.zarr", "run.zarr")
        if opener is dcimg.DCIMGSeries
        else ("keep.zarr/precious.dcimg", "keep.zarr")
    )
    before = snapshot(tree)
    with opener(source) as opened, pytest.raises(_convert.InputCollisionError):
        dcimg.convert(opened, out, overwrite=True)
    assert snapshot(tree) == before


@pytest.mark.parametrize(
    ("paths", "out_dir"),
    [
        # Every output of the batch lands in the series folder.
        (["run.zarr"], "run.zarr"),
        # The second output would replace the folder of the first input:
        # the first is not written either.
        (["keep.zarr/precious.dcimg", "other/keep.dcimg"], "."),
        # A folder that does not exist yet is not made.
        (["run.zarr"], "run.zarr/made/here"),
        # A damaged input that cannot be opened is an input all the same.
        (["junk.zarr/damaged.dcimg", "other/junk.dcimg"], "."),
    ],
    ids=[
        "out-dir-is-series-folder",
        "one-output-is-input-folder",
        "out-dir-inside",
        "output-is-folder-of-unreadable-input",
    ],
)
def test_batch_refuses_before_writing(tree, paths, out_dir, capsys):
    (tree / "other").mkdir()
    write_dcimg(tree / "other" / "keep.dcimg", np.ones((1, 16, 16), np.uint16))
    write_dcimg(tree / "other" / "junk.dcimg", np.ones((1, 16, 16), np.uint16))
    (tree / "junk.zarr").mkdir()
    (tree / "junk.zarr" / "damaged.dcimg").write_bytes(b"DCIMG\0 cut short")
    before = snapshot(tree)
    argv = ["convert", "-q", "--overwrite", *paths, "--out-dir", out_dir]
    status = cli.main([*argv, "--to", "zarr"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and "refusing" in err
    assert snapshot(tree) == before


def test_output_turned_into_input_while_converting_is_kept(tree):
    # The output is checked again just before it is replaced: here, while
    # frames are written, someone makes OUT a hard link to the input.
    source = tree / "keep.zarr" / "precious.dcimg"
    out = tree / "out.tif"
    out.write_bytes(b"an old output")

    def progress(_: int) -> None:
        if not out.samefile(source):
            out.unlink()
            os.link(source, out)

    options = _convert._Options.checked()
    with dcimg.DCIMGFile(source) as f:
        before = snapshot(tree)
        with pytest.raises(_convert.InputCollisionError):
            _convert._convert_one(
                f, out, options, True, progress, _convert._Interrupt()
            )
    after = snapshot(tree)
    # Only the name OUT changed (to the input's content); no staging left.
    assert after.pop("out.tif") == before["keep.zarr/precious.dcimg"]
    before.pop("out.tif")
    assert after == before


def test_outputs_beside_inputs_still_work(tree, capsys):
    # Beside a file, and replacing an older output, as before.
    for _ in range(2):
        status = cli.main(
            ["convert", "-q", "--overwrite", "keep.zarr/precious.dcimg", "k.ome.tif"]
        )
        assert status == 0, capsys.readouterr().err
    assert (
        cli.main(["convert", "-q", "keep.zarr/precious.dcimg", "keep.zarr/k.tif"]) == 0
    )
    assert dcimg.convert("run.zarr", "series.ome.zarr").is_dir()
    names = {p.name for p in tree.iterdir()}
    assert {"k.ome.tif", "series.ome.zarr"} <= names
    assert not [name for name in names if name.endswith(".part")]


def test_remote_inputs_convert_and_file_urls_are_local(tree, capsys):
    fsspec = pytest.importorskip("fsspec")
    url = "memory://dcimg-inputs/keep.zarr/precious.dcimg"
    with fsspec.open(url, "wb") as handle:
        handle.write((tree / "keep.zarr" / "precious.dcimg").read_bytes())
    # A remote object cannot be a local output, even of the same name.
    assert cli.main(["convert", "-q", url, "precious.tif"]) == 0
    assert (tree / "precious.tif").is_file()
    before = snapshot(tree)
    local = (tree / "keep.zarr" / "precious.dcimg").as_uri()
    status = cli.main(["convert", "-q", "--overwrite", local, "keep.zarr"])
    assert status == 2 and "refusing" in capsys.readouterr().err
    assert snapshot(tree) == before


# --------------------------------------------------------------------------
# Property: however a path is spelled, the check sees what it leads to.

# The tree, as a model independent of the file system: each folder's
# entries, and where each leads (a folder, a file, or a link's target).
# "data" is a series folder (s_000, s_001), "keep" holds a single input.
FOLDERS: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {
    (): {
        "data": ("data",),
        "keep": ("keep",),
        "other": ("other",),
        "L_data": ("data",),
    },
    ("data",): {
        "s_000.dcimg": ("data", "s_000.dcimg"),
        "s_001.dcimg": ("data", "s_001.dcimg"),
        "sub": ("data", "sub"),
    },
    ("data", "sub"): {},
    ("keep",): {"precious.dcimg": ("keep", "precious.dcimg")},
    ("other",): {
        "deeper": ("other", "deeper"),
        "L_keep": ("keep",),
        "L_file": ("keep", "precious.dcimg"),
        # A hard link: another name of the same file.
        "hard.dcimg": ("keep", "precious.dcimg"),
        "plain.dcimg": ("other", "plain.dcimg"),
    },
    ("other", "deeper"): {},
}
ABOVE = ("..",)  # any folder above the tree's root
INPUT_FILES = {
    ("data", "s_000.dcimg"),
    ("data", "s_001.dcimg"),
    ("keep", "precious.dcimg"),
}
HOLDERS = {(), ("data",), ("keep",), ABOVE}
SERIES = ("data",)


@pytest.fixture(scope="module")
def model_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    for folder in FOLDERS:
        (root.joinpath(*folder)).mkdir(parents=True, exist_ok=True)
    for name in INPUT_FILES | {("other", "plain.dcimg")}:
        root.joinpath(*name).write_bytes(b"DCIMG")
    try:
        os.symlink("data", root / "L_data")
    except (OSError, NotImplementedError) as error:
        pytest.skip(f"cannot make symbolic links here: {error}")
    os.symlink(os.path.join("..", "keep"), root / "other" / "L_keep")
    os.symlink(os.path.join("..", "keep", "precious.dcimg"), root / "other" / "L_file")
    os.link(root / "keep" / "precious.dcimg", root / "other" / "hard.dcimg")
    series = SimpleNamespace(
        metadata=SimpleNamespace(
            files=[
                str(root / "data" / "s_000.dcimg"),
                str(root / "data" / "s_001.dcimg"),
            ]
        )
    )
    inputs = _convert._inputs_of(series)
    inputs.add(
        _convert._inputs_of(
            SimpleNamespace(file_path=str(root / "keep" / "precious.dcimg"))
        )
    )
    return root, inputs


def expected_refusal(node: tuple[str, ...], missing: bool) -> bool:
    """Whether writing at ``node`` (or at a new name inside it) must be refused."""
    inside_series = node[: len(SERIES)] == SERIES
    if missing:
        return inside_series
    return node in INPUT_FILES or node in HOLDERS or inside_series


@SETTINGS_PATHS
@given(data=st.data())
def test_any_spelling_of_a_path_is_judged_by_what_it_leads_to(model_tree, data):
    root, inputs = model_tree
    node: tuple[str, ...] = ()
    parts: list[str] = []
    missing = False
    for _ in range(data.draw(st.integers(0, 6), label="steps")):
        if node not in FOLDERS and node != ABOVE:
            break  # a file: nothing goes below it
        entries = sorted(FOLDERS.get(node, {}))
        step = data.draw(st.sampled_from([".", "..", "new.zarr", *entries]))
        parts.append(step)
        if step == "new.zarr":
            missing = True
            break
        if step == "..":
            node = ABOVE if node in ((), ABOVE) else node[:-1]
        elif step != ".":
            node = FOLDERS[node][step]
    path = Path(root, *parts)
    try:
        _convert._refuse_inputs(inputs, path)
        refused = False
    except _convert.InputCollisionError:
        refused = True
    assert refused == expected_refusal(node, missing), (parts, node)
