"""The public function, :func:`dcimg.convert`, and one conversion."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcimg._convert.inputs import _inputs_of, _refuse_inputs
from dcimg._convert.options import _Options, _require, output_format
from dcimg._convert.plan import _make_plan
from dcimg._convert.staging import (
    _NO_SPACE,
    _disk_full,
    _Interrupt,
    _progress_bar,
    _staging,
)
from dcimg._convert.tiff import _tiff_compression, _write_tiff
from dcimg._convert.zarr_output import _write_zarr, _zarr_codec
from dcimg._stack import Stack
from dcimg.core import DCIMGFile
from dcimg.errors import (
    ConversionError,
)

# --------------------------------------------------------------------------
# The public function


def convert(
    source: Stack | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frames: slice | None = None,
    dtype: Any = None,
    axes: str = "T",
    z_size: int | None = None,
    frames_per_slice: int | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    pixel_size_x: float | None = None,
    pixel_size_y: float | None = None,
    z_step: float | None = None,
    channel_name: str | None = None,
    compression: str | None = None,
    chunks: Sequence[int] | str | None = None,
    pyramid: int = 0,
    ngff: str | None = None,
    zarr_format: int | None = None,
    shard_bytes: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write the corrected frames of a DCIMG file to TIFF, OME-TIFF or (OME-)Zarr.

    The format follows the name of ``out``: ``.tif``/``.tiff`` (TIFF, switched
    to BigTIFF when larger than 4 GiB), ``.btf``/``.tf8`` (BigTIFF),
    ``.ome.tif``/``.ome.tiff`` (OME-TIFF; ``.ome.btf``: OME-BigTIFF), ``.zarr``
    (one Zarr array, format 3) or ``.ome.zarr`` (OME-Zarr: NGFF 0.5 on Zarr
    format 3, sharded). Frames are read and written in blocks of at most
    64 MiB (TIFF) or one shard of about 512 MiB (Zarr format 3), so any size
    converts in bounded memory. Nothing is left behind if the conversion
    fails, fills the disk or is interrupted: Ctrl-C (``SIGINT``) stops it at
    the next block, removes the partial output and raises
    :class:`KeyboardInterrupt`.

    Parameters
    ----------
    source : dcimg.Stack or str or os.PathLike
        An open :class:`dcimg.DCIMGFile` or :class:`dcimg.DCIMGSeries` (any
        :class:`dcimg.Stack`), or the path of a file or series, which is
        opened and closed. Only the :class:`~dcimg.Stack` surface is used:
        ``shape`` (``(..., frames, height, width)``), ``dtype``, ``axes``
        (one letter per axis before the frames, e.g. ``"TZ"``),
        ``read(key, dtype=..., out=...)`` (``key``: an integer per leading
        axis then a slice of frames), ``timestamps``, ``framestamps`` and
        ``metadata``.
    out : str or os.PathLike
        Destination file (TIFF) or folder (Zarr).
    frames : slice, optional
        Frames to convert (any start, stop and step); default all.
    dtype : numpy dtype, optional
        Pixel type of the output; default the file's. It must hold every
        value of the file's type (those ``dcimg convert --help`` lists).
    axes : {"T", "Z", "C", "ZT", "TZ"}, default "T"
        What the frames are: time points, Z planes, channels (e.g. a series
        whose files each hold one frame per laser line), or time points and
        Z planes, the outer axis first. ``"ZT"``: ``frames_per_slice``
        consecutive frames at each Z
        position (as :meth:`dcimg.DCIMGFile.zslice_idx` numbers them);
        ``"TZ"``: one Z-stack after the other.
    z_size : int, optional
        Number of Z planes, with two-letter ``axes``.
    frames_per_slice : int, optional
        With ``axes="ZT"``: frames per Z plane (the number of time points).
    pixel_size : float or (float, float), optional
        Pixel size in µm in the sample: one value for X and Y, or ``(y, x)``.
    pixel_size_x, pixel_size_y : float, optional
        The pixel size along one axis (µm); they take precedence.
    z_step : float, optional
        Distance between Z planes (µm).
    channel_name : str, optional
        Name of the channel; default the file's name without extension.
    compression : str, optional
        Lossless compression: ``"none"`` (TIFF's default), ``"zlib"``,
        ``"zstd"`` or ``"lzw"`` for TIFF; ``"blosc-zstd"`` (Zarr's default),
        ``"zstd"``, ``"gzip"`` or ``"none"`` for Zarr.
    chunks : sequence of int or str, optional
        Zarr chunk shape: one size per array axis, or ``(y, x)`` only.
        Default: whole frames, about 8 MiB per chunk.
    pyramid : int, default 0
        Number of reduced-resolution levels (each the 2 x 2 mean in Y and X
        of the one before), as TIFF SubIFDs or OME-Zarr multiscales.
    ngff : {"0.5", "0.4"}, optional
        OME-NGFF version of ``.ome.zarr`` output: ``"0.5"`` (default; Zarr
        format 3 with shards) or ``"0.4"`` (Zarr format 2, one object per
        chunk, for tools that do not read 0.5 yet).
    zarr_format : {3, 2}, optional
        Zarr format of ``.zarr`` output (default 3, sharded); for
        ``.ome.zarr`` it must agree with ``ngff`` (2 alone means 0.4).
    shard_bytes : int, optional
        Target size (uncompressed) of a shard of Zarr format 3 output;
        default 512 MiB. Memory holds about four shards while converting.
    overwrite : bool, default False
        Replace ``out`` if it exists (only once the new output is complete).
        An input is never replaced, even so.
    progress : bool, optional
        Show a progress bar on standard error; default only when standard
        error is a terminal.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ConversionError
        For an unknown output name, an existing ``out`` without
        ``overwrite``, an empty frame selection, frames that do not split
        into ``z_size`` planes, or options the format cannot honour.
    InputCollisionError
        When ``out`` is an input (under any name: links, ``..``, letter
        case), a folder holding one, or lies inside the folder of a series
        being read, with or without ``overwrite``; nothing is written. A
        ``ConversionError`` (and ``ValueError``) naming both paths.
    MissingDependencyError
        When tifffile (TIFF), zarr-python 3 (Zarr) or imagecodecs (``zstd``,
        ``lzw`` TIFF compression) is not installed.
    OSError
        When the output cannot be written (``errno.ENOSPC``, "no space left
        on the device", when the disk is full); nothing is left behind.
    KeyboardInterrupt
        On Ctrl-C, once the partial output is removed.

    Examples
    --------
    >>> import tempfile
    >>> import tifffile
    >>> import dcimg
    >>> from dcimg.testing import write_example
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_example(f"{folder}/example.dcimg")
    ...     out = dcimg.convert(
    ...         path, f"{folder}/stack.ome.tif", frames=slice(0, 10), pixel_size=0.65
    ...     )
    ...     print(out.name, tifffile.imread(out).shape)
    stack.ome.tif (10, 64, 80)
    """
    options = _Options.checked(
        frames=frames,
        dtype=dtype,
        axes=axes,
        z_size=z_size,
        frames_per_slice=frames_per_slice,
        pixel_size=pixel_size,
        pixel_size_x=pixel_size_x,
        pixel_size_y=pixel_size_y,
        z_step=z_step,
        channel_name=channel_name,
        compression=compression,
        chunks=chunks,
        pyramid=pyramid,
        ngff=ngff,
        zarr_format=zarr_format,
        shard_bytes=shard_bytes,
    )
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    interrupt = _Interrupt()
    with interrupt.installed([signal.SIGINT]):
        return _convert_one(source, Path(out), options, overwrite, progress, interrupt)


def _convert_one(
    source: Stack | str | os.PathLike[str],
    out: Path,
    options: _Options,
    overwrite: bool,
    progress: bool | Callable[[int], Any],
    interrupt: _Interrupt,
) -> Path:
    """Convert one source; ``progress`` is a flag or a callback of frames."""
    fmt = output_format(out)
    options.for_format(fmt)
    if isinstance(source, (str, os.PathLike)):
        from dcimg.series import DCIMGSeries, names_series

        opener = DCIMGSeries if names_series(source) else DCIMGFile
        with opener(source) as opened:
            return _convert_one(opened, out, options, overwrite, progress, interrupt)
    # First of all, with or without overwrite: the output is no input.
    inputs = _inputs_of(source)
    _refuse_inputs(inputs, out)
    path = getattr(source, "file_path", None)
    # A series names its files in its metadata: the first one names it.
    files = getattr(getattr(source, "metadata", None), "files", None) or [None]
    name = Path(path or files[0] or "dcimg").name
    plan = _make_plan(source, name, fmt, options)
    plan.interrupt = interrupt
    plan.inputs = inputs
    if not out.parent.is_dir():
        raise ConversionError(f"the folder {str(out.parent)!r} does not exist")
    if os.path.lexists(out) and not overwrite:
        raise ConversionError(f"{str(out)!r} exists; add --overwrite to replace it")
    # Fail early, before any output exists, when a package is missing.
    if fmt.container == "tiff":
        _require("tifffile", fmt.name)
        _tiff_compression(plan)
        writer = _write_tiff
    else:
        _zarr_codec(plan)
        writer = _write_zarr
    if callable(progress):
        bar = contextlib.nullcontext(None)
        update = progress
    else:
        bar = _progress_bar(plan.planes, out.name, progress)
        update = _ignore
    with bar as shown:
        if shown is not None:
            update = shown.update
        try:
            with _staging(out, overwrite, interrupt, inputs) as target:
                writer(plan, target, update)
        except OSError as error:
            if _disk_full(error, out.parent):
                raise OSError(errno.ENOSPC, _NO_SPACE, str(out)) from None
            raise
    return out


def _ignore(_: int) -> None:
    return None
