"""Convert DCIMG files to TIFF, BigTIFF, OME-TIFF, Zarr and OME-Zarr.

This package backs :func:`dcimg.convert` and ``dcimg convert``, one module
per job:

- :mod:`~dcimg._convert.options`: the output formats and the checked options
  of a conversion;
- :mod:`~dcimg._convert.inputs`: the files a conversion reads, known by
  identity, which nothing may replace, remove or hold;
- :mod:`~dcimg._convert.plan`: what is written -- the source (any
  :class:`~dcimg._stack.Stack`), the selected frames and their axes, the OME
  image (built by :mod:`dcimg._ome`);
- :mod:`~dcimg._convert.pyramid`: reduced-resolution levels;
- :mod:`~dcimg._convert.tiff` and :mod:`~dcimg._convert.zarr_output`: one
  writer per container;
- :mod:`~dcimg._convert.staging`: signals, the temporary folder beside the
  output that is renamed into place only when complete, full disks,
  progress;
- :mod:`~dcimg._convert.run`: :func:`convert` itself.

Frames are read in blocks of a bounded size and written out one block at a
time: files larger than the memory of the machine convert with a small,
constant footprint, pyramids included. A conversion that fails, is
interrupted or fills the disk leaves nothing behind, and inputs are never
deleted, truncated or replaced.
"""

from __future__ import annotations

# The public names, then (as explicit re-exports) what the command line,
# dcimg.cli, uses besides them.
from dcimg._convert.inputs import _Inputs as _Inputs
from dcimg._convert.inputs import _inputs_of as _inputs_of
from dcimg._convert.inputs import _local_path as _local_path
from dcimg._convert.inputs import _refuse_inputs as _refuse_inputs
from dcimg._convert.options import (
    AXES,
    DTYPES,
    FORMATS,
    TIFF_COMPRESSIONS,
    ZARR_COMPRESSIONS,
    OutputFormat,
    output_format,
    parse_chunks,
    parse_frames,
)
from dcimg._convert.options import _Options as _Options
from dcimg._convert.run import _convert_one as _convert_one
from dcimg._convert.run import _ignore as _ignore
from dcimg._convert.run import convert
from dcimg._convert.staging import _Interrupt as _Interrupt
from dcimg._convert.staging import _planes_of as _planes_of
from dcimg._convert.staging import _progress_bar as _progress_bar
from dcimg.errors import ConversionError, InputCollisionError, MissingDependencyError

__all__ = [
    "AXES",
    "DTYPES",
    "FORMATS",
    "TIFF_COMPRESSIONS",
    "ZARR_COMPRESSIONS",
    "ConversionError",
    "InputCollisionError",
    "MissingDependencyError",
    "OutputFormat",
    "convert",
    "output_format",
    "parse_chunks",
    "parse_frames",
]
