"""Sphinx configuration of the dcimg documentation.

Build the site with ``sphinx-build -W -b html docs docs/_build/html`` and run
every example with ``sphinx-build -W -b doctest docs docs/_build/doctest``.
The pictures are drawn during the build from synthetic files (matplotlib's
``plot`` directive), so the documentation needs no data files.
"""

from __future__ import annotations

import datetime
import doctest
import os

# Documentation builds are deterministic and need no display.
os.environ.setdefault("MPLBACKEND", "Agg")

import dcimg  # noqa: E402  (the installed package, compiled reader included)

project = "dcimg"
author = "The dcimg developers"
copyright = f"{datetime.date.today().year}, {author}"  # noqa: A001
version = release = dcimg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "code"

# -- HTML ---------------------------------------------------------------------

html_theme = "furo"
html_title = f"dcimg {release}"
html_show_sourcelink = False

# -- API reference ------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc sections already give the types
numpydoc_show_class_members = False  # members are listed by the templates
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Pictures drawn by the build ------------------------------------------------

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True, "font.size": 9}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"

# -- Doctests -----------------------------------------------------------------
# Every ``>>>`` example, in these pages and in the docstrings pulled in by
# autodoc, runs with these names defined: ``tmp_path`` (a fresh folder),
# ``path`` (the built-in example acquisition, 20 frames of 64 x 80 uint16),
# ``dcimg`` and ``np``.

doctest_global_setup = """
import pathlib
import shutil
import tempfile
import warnings

import numpy as np

import dcimg
from dcimg.testing import write_example

tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="dcimg-doctest-"))
path = write_example(tmp_path / "example.dcimg")
"""
doctest_global_cleanup = """
shutil.rmtree(tmp_path, ignore_errors=True)
"""
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)
