"""Small helpers shared by several test modules."""

from __future__ import annotations

import os
import pathlib

import pytest


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
