"""Render tools/conda/recipe.yaml with rattler-build for conda-forge's platforms.

Needs ``pip install py-rattler-build`` (rattler-build's own Python package,
from the package index). Renders the recipe as conda-forge would, for every
platform it builds and two Python versions, natively and cross-compiled, and
checks what the conventions ask of a compiled meson-python package: NumPy
unpinned in ``host`` (conda-forge's pinning chooses it) with the package's
own floor under ``run``, the meson cross file passed exactly when
cross-compiling, and tests that import every compiled module and run
``dcimg info --example``. Prints one line per variant; exits 1 on a problem.

    python tools/conda/render.py

Building (``rattler-build build --recipe tools/conda/recipe.yaml -c
conda-forge``) needs the conda-forge channel, which this checker does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rattler_build import PlatformConfig, RenderConfig, VariantConfig
from rattler_build.stage0 import Stage0Recipe

RECIPE = Path(__file__).resolve().parent / "recipe.yaml"
COMPILED = ("dcimg._format", "dcimg._kernels", "dcimg._names")
CROSS_FILE = "--cross-file=$BUILD_PREFIX/meson_cross_file.txt"

# (target, build): conda-forge builds these natively, and cross-compiles
# linux-aarch64 and linux-ppc64le on linux-64 and osx-arm64 on osx-64.
PLATFORMS = [
    ("linux-64", "linux-64"),
    ("linux-aarch64", "linux-64"),
    ("linux-ppc64le", "linux-64"),
    ("osx-64", "osx-64"),
    ("osx-arm64", "osx-64"),
    ("win-64", "win-64"),
]
VARIANTS = {
    "python": ["3.10.* *_cpython", "3.13.* *_cp313"],
    "numpy": ["2"],
    "c_compiler": ["gcc"],
    "c_stdlib": ["sysroot"],
    "c_stdlib_version": ["2.17"],
}


def as_text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def check(target: str, build: str) -> list[str]:
    recipe = Stage0Recipe.from_file(str(RECIPE))
    config = RenderConfig(
        platform=PlatformConfig(
            target_platform=target, build_platform=build, host_platform=target
        )
    )
    variants = dict(VARIANTS)
    if target.startswith("osx"):
        variants.update(c_compiler=["clang"], c_stdlib=["macosx_deployment_target"])
        variants["c_stdlib_version"] = ["10.13" if target == "osx-64" else "11.0"]
    elif target.startswith("win"):
        variants.update(c_compiler=["vs2022"], c_stdlib=["vs"])
        variants["c_stdlib_version"] = ["2022"]
    rendered = recipe.render(VariantConfig(variants), config)
    problems = []
    for variant in rendered:
        stage1 = variant.recipe.to_dict()
        requirements = stage1["requirements"]
        host = [as_text(item) for item in requirements.get("host", [])]
        run = [as_text(item) for item in requirements.get("run", [])]
        build_reqs = [as_text(item) for item in requirements.get("build", [])]
        script = as_text(stage1["build"]["script"])
        tests = as_text(stage1.get("tests", []))
        python = variant.variant.get("python", "?")
        label = f"{target:14} (build {build:9}) python {python}"
        cross = target != build
        if not any(item.split()[0] == "numpy" for item in host):
            problems.append(f"{label}: numpy missing from host {host}")
        if not any(item.startswith("numpy >=1.25") for item in run):
            problems.append(f"{label}: run lacks numpy >=1.25: {run}")
        if (CROSS_FILE in script) != cross:
            problems.append(f"{label}: cross file {'missing' if cross else 'given'}")
        if cross and not any(item.startswith("cross-python") for item in build_reqs):
            problems.append(f"{label}: no cross-python in build {build_reqs}")
        for module in COMPILED:
            if module not in tests:
                problems.append(f"{label}: tests do not import {module}")
        if ("dcimg._mapping" in tests) == target.startswith("win"):
            problems.append(f"{label}: _mapping test on the wrong platforms")
        if "dcimg info --example" not in tests:
            problems.append(f"{label}: tests do not run 'dcimg info --example'")
        print(f"{label}: {len(host)} host, {len(run)} run requirements, ok")
    return problems


def main() -> int:
    problems = [p for target, build in PLATFORMS for p in check(target, build)]
    for problem in problems:
        print("PROBLEM", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
