"""The Python recipes of ``docs/napari.rst`` run as written.

Every ``code-block:: python`` of that page that follows a comment saying it
"runs as a test" is executed, in the page's order and in one namespace, in a
fresh interpreter whose working folder holds what the recipes name: a file
``run_01.dcimg`` and a folder ``acq`` of numbered files. napari's settings go
to a file in that folder (``NAPARI_CONFIG``), never the user's.

``napari.Viewer`` is the window: it needs a Qt binding and a display. Where
there is none (as in CI), ``napari.components.ViewerModel`` -- the model the
window shows, whose ``open`` is the same method -- stands in for it, and
``napari.run`` does nothing; the test says so in its output.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("npe2")
pytest.importorskip("napari")

from dcimg.testing import example_stack, write_dcimg, write_series  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "napari.rst"
MARK = "runs as a test"

# Run before the recipes: register the manifest from the source tree when an
# editable install hides it from npe2 (see tests/test_napari.py), and, without
# Qt, put the viewer model in the window's place.
PRELUDE = textwrap.dedent(
    """
    import importlib.util, sys
    import npe2
    import napari

    pm = npe2.PluginManager.instance()
    pm.discover()
    if "dcimg" not in pm._manifests:
        pm.register(npe2.PluginManifest.from_file(MANIFEST))
    try:
        import qtpy  # noqa: F401  (raises without a Qt binding)
        HEADLESS = False
    except Exception:
        HEADLESS = True
    if HEADLESS:
        from napari.components import ViewerModel

        napari.Viewer = ViewerModel
        napari.run = lambda *args, **kwargs: None
    """
)

# Run after them: what the recipes left behind, as JSON on the last line.
EPILOGUE = textwrap.dedent(
    """
    import json
    import numpy as np

    report = {
        "headless": HEADLESS,
        "layers": [
            [layer.name, list(np.shape(layer.data)), type(layer.data).__name__]
            for layer in viewer.layers
        ],
        "npe2_name": kwargs["name"],
        "npe2_axis_labels": list(kwargs["axis_labels"]),
        "npe2_stamps": list(kwargs["metadata"]["timestamps"].shape),
        "npe2_data": np.asarray(data).tolist(),
    }
    print(json.dumps(report))
    """
)


def recipe_blocks(text: str) -> list[str]:
    """The Python blocks of ``text`` that follow a comment saying MARK."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith(".. code-block:: python"):
            continue
        before = "\n".join(lines[max(0, number - 4) : number])
        if MARK not in before:
            continue
        body = []
        for following in lines[number + 1 :]:
            if following.strip() and not following.startswith("    "):
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return blocks


def test_the_page_has_the_recipes():
    blocks = recipe_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    text = "\n".join(blocks)
    assert 'viewer.open("acq", plugin="dcimg")' in text
    assert 'viewer.open("acq", plugin=None)' in text
    assert re.search(r'npe2\.read\(\["acq"\].*plugin_name="dcimg"\)', text)


@pytest.fixture
def workspace(tmp_path):
    """A folder with run_01.dcimg and acq/ (3 files of 4 frames)."""
    file_truth = example_stack(6, 16, 20, seed=2)
    write_dcimg(tmp_path / "run_01.dcimg", file_truth, stored_pixels_row=3)
    series_truth = np.random.default_rng(3).integers(0, 4000, (3, 4, 8, 10))
    series_truth = series_truth.astype(np.uint16)
    write_series(tmp_path / "acq", series_truth, name="cell", stored_pixels_row=2)
    return tmp_path, file_truth, series_truth


def run_recipes(
    folder: pathlib.Path, blocks: list[str], epilogue: str = EPILOGUE
) -> dict:
    """Run PRELUDE, ``blocks`` and ``epilogue`` in a fresh interpreter in
    ``folder``; return the JSON of its last line of output."""
    manifest = str(ROOT / "dcimg" / "napari.yaml")
    script = "\n\n".join([f"MANIFEST = {manifest!r}", PRELUDE, *blocks, epilogue])
    env = dict(os.environ)
    env["NAPARI_CONFIG"] = str(folder / "napari-settings.yaml")
    env.pop("DCIMG_NAPARI_LOAD", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_recipes_run_as_written(workspace):
    folder, file_truth, series_truth = workspace
    report = run_recipes(folder, recipe_blocks(PAGE.read_text(encoding="utf-8")))
    if report["headless"]:
        print("no Qt binding here: napari.Viewer replaced by ViewerModel")
    # The file, the folder by name, the folder by preference: three layers.
    assert report["layers"] == [
        ["run_01", [6, 16, 20], "ndarray"],
        ["acq", [3, 4, 8, 10], "ndarray"],
        ["acq [1]", [3, 4, 8, 10], "ndarray"],
    ]
    # npe2's last read was the folder, with every frame's time stamp.
    assert report["npe2_name"] == "acq"
    assert report["npe2_axis_labels"] == ["Z", "t", "y", "x"]
    assert report["npe2_stamps"] == [3, 4]
    np.testing.assert_array_equal(np.array(report["npe2_data"]), series_truth)
    # The preference was set for the session, not saved to the settings file.
    assert not (folder / "napari-settings.yaml").exists()


def test_why_the_preference_and_what_it_does_to_other_folders(workspace):
    """Without it napari cannot choose; with "*/" other folders are refused.

    Both in one interpreter: importing napari takes most of the time.
    """
    folder, _, _ = workspace
    (folder / "notes").mkdir()
    (folder / "notes" / "a.txt").write_text("not an image")
    block = textwrap.dedent(
        """
        import json
        from napari.errors import MultipleReaderError, ReaderPluginError
        from napari.settings import get_settings

        report = {}
        viewer = napari.Viewer()
        try:
            viewer.open("acq", plugin=None)
        except MultipleReaderError as error:
            report["readers"] = sorted(error.available_plugins)
        get_settings().plugins.extension2reader["*/"] = "dcimg"
        try:
            viewer.open("notes", plugin=None)
        except ReaderPluginError as error:
            report["plugin"] = error.reader_plugin
            report["cause"] = str(error.__cause__ or error)
        print(json.dumps(report))
        """
    )
    report = run_recipes(folder, [block], epilogue="")
    # napari's own reader claims the folder too: napari asks which.
    assert report["readers"] == ["dcimg", "napari"]
    # With every folder sent to this reader, a folder of other files fails.
    assert report["plugin"] == "dcimg"
    assert "refused the file" in report["cause"]
