"""Sphinx configuration of the dcimg documentation.

Build the site with ``sphinx-build -n -W -b html docs docs/_build/html`` and
run every example with ``sphinx-build -n -W -b doctest docs
docs/_build/doctest``. ``-n`` (nitpicky) makes every cross-reference that
finds no target a warning, and ``-W`` makes warnings fail the build.

The pictures are drawn during the build from synthetic files (matplotlib's
``plot`` directive), and every example writes its own file with
:func:`dcimg.testing.write_example`, so the documentation needs no data files.
It builds without network access too (see "Links to other projects" below).
"""

from __future__ import annotations

import datetime
import doctest
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "code"
nitpicky = True  # the same as -n: a reference without a target is a warning

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

# -- Links to other projects ----------------------------------------------------
# Names of Python, NumPy, Dask, xarray and imageio link to their documentation
# through the projects' inventories (objects.inv), which Sphinx downloads.
# Builds without network access (CI, machines that reach only the package
# index) must pass too, and Sphinx reports an inventory it cannot fetch as a
# warning without a category, which suppress_warnings cannot silence and -W
# turns into a failure. So each inventory is first probed with one short HEAD
# request: a project whose inventory answers is linked (and every reference
# into it is checked against it); one that does not answer is left out of
# intersphinx_mapping, and only then are references to its names, which now
# have no target, excused from nitpicky mode by the pattern beside it.

_EXTERNAL = {
    # name: (documentation root, pattern of the names it documents)
    "python": (
        "https://docs.python.org/3/",
        # Modules of the standard library (Sphinx itself resolves the
        # built-in types and exceptions, with or without the inventory).
        r"(os|sys|io|datetime|pathlib|tempfile|warnings|typing|collections|logging"
        r"|faulthandler)(\..+)?",
    ),
    "numpy": ("https://numpy.org/doc/stable/", r"numpy(\..+)?"),
    "dask": ("https://docs.dask.org/en/stable/", r"dask(\..+)?"),
    "xarray": ("https://docs.xarray.dev/en/stable/", r"xarray(\..+)?"),
    "pandas": ("https://pandas.pydata.org/docs/", r"pandas(\..+)?"),
    "imageio": ("https://imageio.readthedocs.io/en/stable/", r"imageio(\..+)?"),
    "fsspec": ("https://filesystem-spec.readthedocs.io/en/latest/", r"fsspec(\..+)?"),
}


def _inventory_answers(root: str) -> bool:
    """Return whether ``root``'s ``objects.inv`` can be fetched right now."""
    request = urllib.request.Request(root + "objects.inv", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except (OSError, ValueError):  # no network, no DNS, HTTP error, time-out
        return False


with ThreadPoolExecutor(len(_EXTERNAL)) as _pool:
    _roots = [root for root, _ in _EXTERNAL.values()]
    _answers = dict(zip(_EXTERNAL, _pool.map(_inventory_answers, _roots), strict=True))

_offline = [name for name in _EXTERNAL if not _answers[name]]
intersphinx_mapping = {
    name: (root, None) for name, (root, _) in _EXTERNAL.items() if _answers[name]
}
intersphinx_timeout = 30
nitpick_ignore_regex = [(r"py:.*", _EXTERNAL[name][1]) for name in _offline]
if _offline:
    print(f"dcimg docs: no inventory reachable for {', '.join(_offline)}; unlinked")

# -- Doctests -----------------------------------------------------------------
# Every example is self-contained: it imports what it uses and writes its own
# file (usually with dcimg.testing.write_example in a temporary folder), so it
# runs as copied. Nothing is defined behind the reader's back.

doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)
