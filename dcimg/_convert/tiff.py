"""TIFF, BigTIFF and OME-TIFF output, through tifffile."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dcimg._convert.inputs import _refuse_inputs
from dcimg._convert.options import _require
from dcimg._convert.plan import _Plan
from dcimg._convert.pyramid import _levels_of
from dcimg._ome import (
    ome_xml,
)
from dcimg.errors import (
    MissingDependencyError,
)

# --------------------------------------------------------------------------
# TIFF and OME-TIFF


# Classic TIFF stores 32-bit offsets: beyond this, switch to BigTIFF.
_CLASSIC_TIFF_LIMIT = 2**32 - 2**25


def _ome_xml(plan: _Plan, pages: int) -> str:
    """Return the OME-XML (2016-06 schema) describing the TIFF pages."""
    return ome_xml(plan.ome_image(), pages)


def _tiff_compression(plan: _Plan) -> dict[str, Any]:
    """Return tifffile's ``compression`` and ``predictor`` arguments."""
    name = plan.options.compression or "none"
    if name == "none":
        return {}
    have_codecs = importlib.util.find_spec("imagecodecs") is not None
    if name in ("zstd", "lzw") and not have_codecs:
        raise MissingDependencyError(
            f"{name} compression of TIFF needs the imagecodecs package; install "
            "it with pip install imagecodecs",
            "imagecodecs",
        )
    # Horizontal differencing shrinks camera images further, still lossless.
    predictor = have_codecs and plan.dtype.kind in "ui"
    return {"compression": name, "predictor": predictor or None}


def _write_tiff(plan: _Plan, target: Path, progress: Callable[[int], Any]) -> None:
    tifffile = _require("tifffile", plan.fmt.name)
    nbytes = plan.frame_bytes * plan.planes
    # Pyramid levels add a third of the full size at most.
    bigtiff = plan.fmt.bigtiff or nbytes * 4 // 3 > _CLASSIC_TIFF_LIMIT
    levels = plan.levels
    codec = _tiff_compression(plan)
    common: dict[str, Any] = {"photometric": "minisblack", "dtype": plan.dtype, **codec}
    if codec:
        # Every core compresses: tifffile splits each page's strips among
        # them (by default it compresses a page of strips on one thread).
        common["maxworkers"] = os.cpu_count() or 1
    if plan.fmt.ome:
        description = _ome_xml(plan, plan.planes)
        first: dict[str, Any] = {
            "shape": (plan.planes, plan.height, plan.width),
            "description": description,
            "metadata": None,
        }
    else:
        meta: dict[str, Any] = {"dcimg": plan.summary()}
        first = {"shape": plan.lead_shape + (plan.height, plan.width), "metadata": meta}
    spool: list[Any] = []
    folder = target.parent

    def full_pages() -> Iterator[np.ndarray]:
        for page in plan.pages(progress):
            if len(levels) > 1:
                # Lower levels go to raw files beside the output, in page
                # order, to be copied in after the full-size pages.
                for level, small in enumerate(_levels_of(page, len(levels) - 1)[1:]):
                    small.tofile(spool[level])
            yield page

    def spooled(level: int) -> Iterator[np.ndarray]:
        height, width = levels[level]
        size = height * width
        with open(folder / f"level{level}.raw", "rb") as handle:
            for _ in range(plan.planes):
                plan.interrupt.check()
                page = np.fromfile(handle, plan.dtype, size)
                yield page.reshape(height, width)

    with contextlib.ExitStack() as stack:
        for level in range(1, len(levels)):
            # "x": a file that exists (it cannot, in a new folder) is never
            # truncated.
            spool.append(stack.enter_context(open(folder / f"level{level}.raw", "xb")))
        writer = stack.enter_context(
            tifffile.TiffWriter(target, bigtiff=bigtiff, ome=False)
        )
        writer.write(
            full_pages(),
            subifds=len(levels) - 1 or None,
            **first,
            **common,
        )
        for handle in spool:
            handle.close()
        for level in range(1, len(levels)):
            height, width = levels[level]
            writer.write(
                spooled(level),
                shape=(plan.planes, height, width),
                subfiletype=1,
                **common,
            )
    for level in range(1, len(levels)):
        _refuse_inputs(plan.inputs, folder / f"level{level}.raw")
        os.unlink(folder / f"level{level}.raw")
