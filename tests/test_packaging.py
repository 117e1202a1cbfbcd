"""Packaging stays consistent: pyproject.toml, meson.build, the conda recipe.

The version is defined once, in meson.build; everything else that names it or
repeats a requirement is compared here. ``DCIMG_DIST_DIR`` (a folder holding
the sdist and wheel that ``python -m build`` made) turns on the checks of
their contents.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
RECIPE_PATH = ROOT / "tools" / "conda" / "recipe.yaml"

# PyPI names whose conda-forge package is called differently.
CONDA_NAMES = {"dask[array]": "dask-core"}
# Extras that are optional features of the package (not tooling).
FEATURE_EXTRAS = ("convert", "imageio", "dask", "xarray")


def parse_requirement(text: str) -> tuple[str, str]:
    """Split ``"name[extra]>=1.0"`` or ``"name >=1.0"`` into name and bound."""
    text = text.split(";")[0].strip()
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)\s*(.*)", text)
    assert match, text
    name, spec = match.groups()
    name = CONDA_NAMES.get(name.lower(), name.lower())
    return name, spec.replace(" ", "")


def plain_items(items: list) -> list[str]:
    """Recipe requirement lists without their ``if:`` selector entries."""
    return [item for item in items if isinstance(item, str)]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recipe() -> dict:
    return yaml.safe_load(RECIPE_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def version() -> str:
    """The version, from meson.build's ``project(... version: '...')``."""
    text = (ROOT / "meson.build").read_text(encoding="utf-8")
    project = text[text.index("project(") :]
    match = re.search(r"\bversion\s*:\s*'([^']+)'", project)
    assert match, "no version in meson.build's project()"
    return match.group(1)


def test_version_is_defined_only_in_meson_build(pyproject, version):
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    template = (ROOT / "dcimg" / "_version.py.in").read_text(encoding="utf-8")
    assert "@VERSION@" in template
    for path in (ROOT / "dcimg").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert f'"{version}"' not in text, f"{path.name} hard-codes the version"


def test_installed_version_matches_meson_build(version):
    import dcimg

    assert dcimg.__version__ == version


def test_recipe_version_matches_meson_build(recipe, version):
    assert recipe["context"]["version"] == version
    assert recipe["package"]["version"] == "${{ version }}"


def test_changelog_has_the_current_version(version):
    # One changelog, docs/changelog.rst; CHANGELOG.md points to it.
    changelog = (ROOT / "docs" / "changelog.rst").read_text(encoding="utf-8")
    title = re.escape(version)
    assert re.search(rf"^{title}\n-{{{len(version)}}}\n", changelog, re.MULTILINE)
    assert "docs/changelog.rst" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_version_is_above_the_historical_module(version):
    """1.0 succeeds the pure-Python dcimg 0.6.0.post1 on the package index."""
    pytest.importorskip("packaging")
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    assert Version(version) >= Version("1.0.0")
    assert Version(version) > Version("0.6.0.post1")
    # ZetaStitcher's requirement is met: pip keeps this package for it.
    assert Version(version) in SpecifierSet(">=0.4.0")


def test_python_classifiers_follow_the_wheels(pyproject):
    """One classifier per CPython the wheels are built (and tested) for."""
    project = pyproject["project"]
    built = [
        f"{tag[2]}.{tag[3:].rstrip('-*')}"
        for tag in pyproject["tool"]["cibuildwheel"]["build"]
    ]
    listed = [
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert listed == built
    assert project["requires-python"] == f">={built[0]}"
    assert "Programming Language :: Python :: 3 :: Only" in project["classifiers"]


def test_metadata_urls_and_description(pyproject):
    project = pyproject["project"]
    # The project has no public address yet: no URL that leads nowhere.
    assert "urls" not in project
    assert "DCIMG" in project["description"] and "Hamamatsu" in project["description"]
    assert project["license"] == "MIT"


def test_recipe_name_and_about(recipe, pyproject):
    project = pyproject["project"]
    assert recipe["context"]["name"] == project["name"]
    assert recipe["about"]["summary"] == project["description"]
    assert recipe["about"]["license"] == project["license"]
    assert recipe["about"]["license_file"] in project["license-files"]
    assert (ROOT / recipe["about"]["license_file"]).is_file()
    urls = project.get("urls", {})
    for key in ("homepage", "documentation", "repository"):
        assert recipe["about"].get(key) in (None, *urls.values()), key


def test_recipe_python_floor(recipe, pyproject):
    floor = re.fullmatch(r">=\s*(\d+\.\d+)", pyproject["project"]["requires-python"])
    assert floor, pyproject["project"]["requires-python"]
    assert recipe["context"]["python_min"] == floor.group(1)
    assert f'match(python, "<{floor.group(1)}")' in recipe["build"]["skip"]
    classifiers = pyproject["project"]["classifiers"]
    assert "Programming Language :: Python :: 3" in classifiers


def test_recipe_run_requirements(recipe, pyproject):
    run = dict(map(parse_requirement, plain_items(recipe["requirements"]["run"])))
    assert run.pop("python") == ""
    wanted = dict(map(parse_requirement, pyproject["project"]["dependencies"]))
    assert run == wanted


def test_recipe_optional_packages(recipe, pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    wanted = dict(
        parse_requirement(requirement)
        for extra in FEATURE_EXTRAS
        for requirement in extras[extra]
    )
    constraints = recipe["requirements"]["run_constraints"]
    assert dict(map(parse_requirement, constraints)) == wanted
    # "all" is exactly the feature extras, so the recipe covers all of them.
    (everything,) = extras["all"]
    inside = re.fullmatch(r"dcimg\[(.*)\]", everything).group(1)
    assert sorted(inside.split(",")) == sorted(FEATURE_EXTRAS)


def test_recipe_build_requirements(recipe, pyproject):
    host = dict(map(parse_requirement, plain_items(recipe["requirements"]["host"])))
    for requirement in pyproject["build-system"]["requires"]:
        name, bound = parse_requirement(requirement)
        if name == "numpy":
            # conda-forge's global pinning chooses the NumPy to build with.
            assert host.get(name) == "", "host: numpy must be unpinned"
            continue
        assert host.get(name) == bound, f"host: {name} {bound}"
    assert "pip" in host and "python" in host
    build = recipe["requirements"]["build"]
    assert "${{ compiler('c') }}" in build
    assert pyproject["build-system"]["build-backend"] == "mesonpy"
    # One pip command, with the meson cross file when cross-compiling.
    (script,) = recipe["build"]["script"]
    assert script["if"] == "build_platform != host_platform"
    for command in (script["then"], script["else"]):
        assert "-m pip install . " in command and "--no-build-isolation" in command
    cross = "-Csetup-args=--cross-file=$BUILD_PREFIX/meson_cross_file.txt"
    assert cross in script["then"] and cross not in script["else"]


def test_recipe_entry_point(recipe, pyproject):
    scripts = pyproject["project"]["scripts"]
    declared = recipe["build"]["python"]["entry_points"]
    assert declared == [f"{name} = {target}" for name, target in scripts.items()]


def test_recipe_tests_import_and_run_the_command(recipe, pyproject):
    tests = recipe["tests"]
    imports = [
        name for test in tests if "python" in test for name in test["python"]["imports"]
    ]
    assert "dcimg" in imports
    commands = [line for test in tests for line in test.get("script", [])]
    for script in pyproject["project"]["scripts"]:
        assert f"{script} --help" in commands
        assert f"{script} info --example" in commands
    assert any("__version__ == '${{ version }}'" in line for line in commands)
    # Every compiled module is imported (dcimg/meson.build lists them).
    build = (ROOT / "dcimg" / "meson.build").read_text(encoding="utf-8")
    compiled = re.findall(r"extension_module\(\s*'(\w+)'", build)
    assert {"_format", "_kernels", "_names", "_mapping"} <= set(compiled)
    text = yaml.safe_dump(tests)
    for module in compiled:
        assert f"dcimg.{module}" in text, module


def test_cibuildwheel_configuration(pyproject):
    config = pyproject["tool"]["cibuildwheel"]
    floor = pyproject["project"]["requires-python"].removeprefix(">=")
    assert config["build"][0] == f"cp{floor.replace('.', '')}-*"
    assert "pytest" in config["test-command"]
    assert "{project}/tests" in config["test-command"]
    assert config["test-extras"] == ["test"]
    for platform in ("linux", "windows"):
        assert platform in config


def test_extras_are_consistent(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    assert extras["convert"] and all(
        any(name in item for item in extras["convert"])
        for name in ("tifffile", "zarr", "tqdm")
    )
    # The documentation's examples (run as doctests) convert files, read
    # through imageio, Dask, xarray and Zarr, and build OME metadata: the docs
    # need every optional feature.
    assert "dcimg[all,ome,zarr]" in extras["docs"]
    for feature in ("imageio", "dask", "xarray", "convert"):
        assert feature in extras["all"][0]
    for tool in ("sphinx", "numpydoc", "furo", "matplotlib"):
        assert any(item.startswith(tool) for item in extras["docs"])


# --------------------------------------------------------------------------
# Built distributions (only with DCIMG_DIST_DIR)

DIST = os.environ.get("DCIMG_DIST_DIR")
needs_dist = pytest.mark.skipif(not DIST, reason="set DCIMG_DIST_DIR to check dists")


@needs_dist
def test_sdist_contents(version):
    (sdist,) = Path(DIST).glob(f"dcimg-{version}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in (
        "pyproject.toml",
        "meson.build",
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "dcimg/_format.pyx",
        "dcimg/_kernels.pyx",
        "tests/data/manifest.json",
        "tests/test_cli.py",
        "docs/conf.py",
        "docs/index.rst",
        "docs/changelog.rst",
        "docs/migration.rst",
        "tools/conda/recipe.yaml",
        "tools/conda/render.py",
    ):
        assert required in names, required
    assert any(
        name.startswith("tests/data/") and name.endswith(".dcimg") for name in names
    )


@needs_dist
def test_wheel_contents(version):
    wheels = sorted(Path(DIST).glob(f"dcimg-{version}-*.whl"))
    assert wheels
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
        for required in (
            "dcimg/py.typed",
            "dcimg/_format.pyi",
            "dcimg/_kernels.pyi",
            "dcimg/_names.pyi",
            "dcimg/_version.py",
            "dcimg/cli.py",
            "dcimg/_convert/__init__.py",
            "dcimg/_convert/zarr_output.py",
        ):
            assert required in names, required
        for module in ("_format", "_kernels", "_names"):
            assert any(re.match(rf"dcimg/{module}\..*(so|pyd)$", n) for n in names)
        entry_points = next(
            n for n in names if n.endswith(".dist-info/entry_points.txt")
        )
        with zipfile.ZipFile(wheel) as archive:
            assert "dcimg = dcimg.cli:main" in archive.read(entry_points).decode()
