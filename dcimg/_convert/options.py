"""Options of a conversion: output formats, frame selections, chunks, dtypes."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcimg.errors import (
    ConversionError,
    MissingDependencyError,
)
from dcimg.metadata import physical_size

#: Bytes read from the source (and held in memory) per block, at most.
BLOCK_BYTES = 64 << 20

#: Output types ``dtype`` accepts (each must hold every input value).
DTYPES = ("uint8", "uint16", "int16", "int32", "uint32", "int64", "float32", "float64")
#: What the frames of a file are: time points, Z planes, channels, or T and
#: Z (outer first).
AXES = ("T", "Z", "C", "ZT", "TZ")
#: Lossless compressions of TIFF output (``None`` or ``"none"``: uncompressed).
TIFF_COMPRESSIONS = ("none", "zlib", "zstd", "lzw")
#: Lossless compressions of Zarr output; the default is ``"blosc-zstd"``.
ZARR_COMPRESSIONS = ("none", "blosc-zstd", "zstd", "gzip")

# OME-NGFF 0.4 orders axes: time, channel, then space.
_NGFF_ORDER = "TCZ"
#: OME-NGFF versions of OME-Zarr output; the default is ``"0.5"``.
NGFF_VERSIONS = ("0.5", "0.4")
# The Zarr format each NGFF version is stored in.
_NGFF_ZARR = {"0.4": 2, "0.5": 3}
_NGFF_TYPES = {"T": "time", "C": "channel", "Z": "space"}


@dataclass(frozen=True)
class OutputFormat:
    """One kind of output file.

    Attributes
    ----------
    name : str
        Human-readable name, e.g. ``"OME-TIFF"``.
    suffixes : tuple of str
        File-name endings (lower case) that select this format.
    container : str
        ``"tiff"`` or ``"zarr"``.
    ome : bool
        Whether OME metadata (OME-XML or OME-NGFF) are written.
    bigtiff : bool
        For TIFF: always write BigTIFF (otherwise only when the data need it).
    """

    name: str
    suffixes: tuple[str, ...]
    container: str
    ome: bool
    bigtiff: bool = False


#: Supported outputs; the longest matching suffix wins.
FORMATS = (
    OutputFormat("OME-TIFF", (".ome.tif", ".ome.tiff"), "tiff", ome=True),
    OutputFormat("OME-BigTIFF", (".ome.btf", ".ome.tf8"), "tiff", True, True),
    OutputFormat("TIFF", (".tif", ".tiff"), "tiff", ome=False),
    OutputFormat("BigTIFF", (".btf", ".tf8"), "tiff", ome=False, bigtiff=True),
    OutputFormat("OME-Zarr", (".ome.zarr",), "zarr", ome=True),
    OutputFormat("Zarr", (".zarr",), "zarr", ome=False),
)


def output_format(path: str | os.PathLike[str]) -> OutputFormat:
    """Return the output format that a destination's name asks for.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; only its name is looked at.

    Returns
    -------
    OutputFormat
        The format whose suffix ends the name (the longest match).

    Raises
    ------
    ConversionError
        If the name ends in no known suffix.

    Examples
    --------
    >>> from dcimg._convert import output_format
    >>> output_format("stack.ome.tif").name
    'OME-TIFF'
    >>> output_format("stack.zarr").name
    'Zarr'
    """
    name = Path(path).name.lower()
    matches = [
        (len(suffix), fmt)
        for fmt in FORMATS
        for suffix in fmt.suffixes
        if name.endswith(suffix) and len(name) > len(suffix)
    ]
    if not matches:
        known = ", ".join(s for fmt in FORMATS for s in fmt.suffixes)
        raise ConversionError(
            f"cannot tell the output format from the name {Path(path).name!r}; "
            f"end it with one of {known}"
        )
    return max(matches, key=lambda match: match[0])[1]


def parse_frames(text: str) -> slice:
    """Parse a ``START:STOP:STEP`` frame selection (Python slice syntax).

    Parameters
    ----------
    text : str
        ``"START:STOP:STEP"`` with any part optional (``"10:"``, ``"::2"``,
        ``"-5:"``), or a single frame index ``"N"``.

    Returns
    -------
    slice
        The selection along the frame axis.

    Raises
    ------
    ConversionError
        If the text is not of that form or the step is 0.

    Examples
    --------
    >>> from dcimg._convert import parse_frames
    >>> parse_frames("10:100:2")
    slice(10, 100, 2)
    >>> parse_frames("3")
    slice(3, 4, None)
    """
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3:
        raise ConversionError(f"--frames {text!r}: expected START:STOP:STEP")
    try:
        values = [int(part) if part.strip() else None for part in parts]
    except ValueError:
        raise ConversionError(
            f"--frames {text!r}: expected integers in START:STOP:STEP"
        ) from None
    if len(values) == 1:
        index = values[0]
        if index is None:
            raise ConversionError("--frames: empty selection")
        return slice(index, index + 1 if index != -1 else None)
    if len(values) == 3 and values[2] == 0:
        raise ConversionError(f"--frames {text!r}: the step cannot be 0")
    return slice(*values)


def parse_chunks(text: str) -> tuple[int, ...]:
    """Parse a ``--chunks`` value: comma-separated positive integers.

    Parameters
    ----------
    text : str
        E.g. ``"1,512,512"`` (one size per axis of the array) or ``"512,512"``
        (Y and X only; the leading axes keep their default chunking).

    Returns
    -------
    tuple of int
        The chunk sizes.

    Raises
    ------
    ConversionError
        If a size is not a positive integer.

    Examples
    --------
    >>> from dcimg._convert import parse_chunks
    >>> parse_chunks("1, 256,256")
    (1, 256, 256)
    """
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConversionError(
            f"--chunks {text!r}: expected comma-separated integers, e.g. 1,512,512"
        ) from None
    if not sizes or min(sizes) < 1:
        raise ConversionError(f"--chunks {text!r}: sizes must be at least 1")
    return sizes


def _check_dtype(source: np.dtype, dtype: Any) -> np.dtype:
    target = np.dtype(source if dtype is None else dtype)
    if target.name not in DTYPES:
        raise ConversionError(f"dtype {target.name}: choose one of {', '.join(DTYPES)}")
    if not np.can_cast(source, target, casting="safe"):
        fits = ", ".join(name for name in DTYPES if np.can_cast(source, name, "safe"))
        raise ConversionError(
            f"dtype {target.name} cannot hold every {source.name} value of this "
            f"file; choose one of {fits}"
        )
    return target


def _require(module: str, what: str, extra: str = "convert") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"writing {what} needs the {module} package; install it with "
            f"pip install 'dcimg[{extra}]'",
            module,
        ) from None


def _positive(name: str, value: Any) -> float | None:
    """Check a physical size (µm): a finite number above 0, or None."""
    try:
        size: float | None = physical_size(name, value)
    except ValueError as error:
        raise ConversionError(str(error)) from None
    return size


# --------------------------------------------------------------------------
# Options shared by every file of a conversion


@dataclass(frozen=True)
class _Options:
    """The checked options of a conversion (the same for every file)."""

    frames: slice | None = None
    dtype: Any = None
    axes: str = "T"
    z_size: int | None = None
    frames_per_slice: int | None = None
    pixel_size_y: float | None = None
    pixel_size_x: float | None = None
    z_step: float | None = None
    channel_name: str | None = None
    compression: str | None = None
    chunks: tuple[int, ...] | None = None
    pyramid: int = 0
    ngff: str | None = None
    zarr_format: int | None = None
    shard_bytes: int | None = None

    @classmethod
    def checked(cls, **values: Any) -> _Options:
        axes = str(values.get("axes") or "T").upper()
        if axes not in AXES:
            raise ConversionError(
                f"axes={values.get('axes')!r}: the frames are one of {', '.join(AXES)}"
                " (time points, Z planes, or Z planes of time points, outer first)"
            )
        values["axes"] = axes
        for name in ("z_size", "frames_per_slice"):
            size = values.get(name)
            if size is None:
                continue
            if isinstance(size, bool) or int(size) != size or size < 1:
                raise ConversionError(f"{name} must be a whole number >= 1, not {size}")
            if len(axes) == 1:
                raise ConversionError(
                    f"{name} splits the frames into Z and T: use it with axes "
                    f"'ZT' or 'TZ', not {axes!r}"
                )
            values[name] = int(size)
        if len(axes) == 2 and values.get("z_size") is None:
            if axes == "TZ" or values.get("frames_per_slice") is None:
                need = "z_size" if axes == "TZ" else "z_size or frames_per_slice"
                raise ConversionError(f"axes={axes!r} needs {need}")
        if axes == "TZ" and values.get("frames_per_slice") not in (None, 1):
            raise ConversionError(
                "frames_per_slice counts consecutive frames at one Z position "
                "(axes 'ZT'); with axes 'TZ' every frame is its own Z plane: "
                "give z_size instead"
            )
        pixel = values.pop("pixel_size", None)
        if isinstance(pixel, (tuple, list)):
            if len(pixel) != 2:
                raise ConversionError(
                    f"pixel_size takes one size or (y, x), not {pixel!r}"
                )
            pixel_y, pixel_x = pixel
        else:
            pixel_y = pixel_x = pixel
        if values.get("pixel_size_y") is not None:
            pixel_y = values["pixel_size_y"]
        if values.get("pixel_size_x") is not None:
            pixel_x = values["pixel_size_x"]
        values["pixel_size_y"] = _positive("pixel_size_y", pixel_y)
        values["pixel_size_x"] = _positive("pixel_size_x", pixel_x)
        values["z_step"] = _positive("z_step", values.get("z_step"))
        pyramid = values.get("pyramid") or 0
        if isinstance(pyramid, bool) or int(pyramid) != pyramid or pyramid < 0:
            raise ConversionError(f"pyramid must be a whole number >= 0, not {pyramid}")
        values["pyramid"] = int(pyramid)
        compression = values.get("compression")
        if compression is not None:
            compression = str(compression).lower()
            if compression not in {*TIFF_COMPRESSIONS, *ZARR_COMPRESSIONS}:
                raise ConversionError(
                    f"compression {compression!r}: choose one of "
                    f"{', '.join(TIFF_COMPRESSIONS)} for TIFF or "
                    f"{', '.join(ZARR_COMPRESSIONS)} for Zarr"
                )
            values["compression"] = compression
        chunks = values.get("chunks")
        if chunks is not None:
            if isinstance(chunks, str):
                chunks = parse_chunks(chunks)
            chunks = tuple(int(size) for size in chunks)
            if not chunks or min(chunks) < 1:
                raise ConversionError(f"chunks must be sizes >= 1, not {chunks}")
            values["chunks"] = chunks
        if values.get("channel_name") is not None:
            values["channel_name"] = str(values["channel_name"])
        ngff = values.get("ngff")
        if ngff is not None:
            ngff = str(ngff)
            if ngff not in NGFF_VERSIONS:
                raise ConversionError(
                    f"ngff {ngff!r}: choose one of {', '.join(NGFF_VERSIONS)}"
                )
            values["ngff"] = ngff
        version = values.get("zarr_format")
        if version is not None:
            if isinstance(version, bool) or version not in (2, 3, "2", "3"):
                raise ConversionError(f"zarr_format {version!r}: choose 2 or 3")
            values["zarr_format"] = int(version)
        shard = values.get("shard_bytes")
        if shard is not None:
            if isinstance(shard, bool) or int(shard) != shard or shard < 1 << 20:
                raise ConversionError(
                    f"shard_bytes must be at least 1 MiB (1048576 bytes), not {shard}"
                )
            values["shard_bytes"] = int(shard)
        if (
            values.get("ngff") is not None
            and values.get("zarr_format") is not None
            and _NGFF_ZARR[values["ngff"]] != values["zarr_format"]
        ):
            raise ConversionError(
                f"ngff {values['ngff']} is stored in Zarr format "
                f"{_NGFF_ZARR[values['ngff']]}, not zarr_format "
                f"{values['zarr_format']}"
            )
        return cls(**values)

    def zarr_version(self, fmt: OutputFormat) -> int:
        """Return the Zarr format of ``fmt``'s output: 3 unless 0.4 or asked."""
        if self.zarr_format is not None:
            return self.zarr_format
        if fmt.ome and self.ngff is not None:
            return _NGFF_ZARR[self.ngff]
        return 3

    def for_format(self, fmt: OutputFormat) -> None:
        """Refuse options that the output format cannot honour."""
        compression = self.compression
        if fmt.container == "tiff":
            if compression is not None and compression not in TIFF_COMPRESSIONS:
                raise ConversionError(
                    f"compression {compression!r} is for Zarr; {fmt.name} takes "
                    f"{', '.join(TIFF_COMPRESSIONS)}"
                )
            if self.chunks is not None:
                raise ConversionError(f"chunks apply to Zarr output, not {fmt.name}")
        elif compression is not None and compression not in ZARR_COMPRESSIONS:
            raise ConversionError(
                f"compression {compression!r} is for TIFF; {fmt.name} takes "
                f"{', '.join(ZARR_COMPRESSIONS)}"
            )
        if fmt.container == "tiff" and (
            self.ngff is not None or self.zarr_format is not None
        ):
            raise ConversionError(
                f"ngff and zarr_format apply to Zarr output, not {fmt.name}"
            )
        if self.shard_bytes is not None and (
            fmt.container == "tiff" or self.zarr_version(fmt) != 3
        ):
            raise ConversionError(
                f"shard_bytes applies to Zarr format 3 output, not {fmt.name}"
                + ("" if fmt.container == "tiff" else " in Zarr format 2")
            )
        if self.ngff is not None and not fmt.ome:
            raise ConversionError(
                f"ngff applies to OME-Zarr (.ome.zarr), not {fmt.name}; plain "
                "Zarr takes zarr_format"
            )
        if self.pyramid and fmt.container != "tiff" and not fmt.ome:
            # A plain Zarr output is one array: no place for other levels.
            raise ConversionError(
                f"pyramid levels need OME-Zarr (.ome.zarr) or TIFF; {fmt.name} "
                "holds one array"
            )
