"""Convert DCIMG files to TIFF, BigTIFF, OME-TIFF, Zarr and OME-Zarr.

This module backs :func:`dcimg.convert` and ``dcimg convert``. It reads its
source only through a small duck-typed surface (see :func:`convert`), so a
:class:`dcimg.DCIMGFile` and any N-dimensional source of frames (a series of
files) convert alike. Frames are read in blocks of a bounded size and written
out one block at a time: files larger than the memory of the machine convert
with a small, constant footprint, pyramids included.

The output is first written to a hidden temporary folder beside the
destination and renamed into place only when it is complete: a conversion that
fails, is interrupted or fills the disk leaves nothing behind, and an existing
destination is only replaced (with ``overwrite=True``) by a complete result.

Inputs are never deleted, truncated or replaced: one check,
:func:`_refuse_inputs`, compares what would be replaced, removed or created
with the files being read by device and inode (so links, ``..`` and letter
case on case-insensitive file systems cannot hide an input), and runs before
every rename and removal; files are created with ``"x"``, never truncated.

Zarr output (format 2, as OME-NGFF 0.4 requires) is written by this module
itself, chunk by chunk and in order, with the codecs of ``numcodecs``: no
background thread can still be writing when a failed or interrupted
conversion removes its temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from dcimg._ome import (
    OME_PIXEL_TYPES,
    OMEImage,
    camera_annotations,
    ome_xml,
)
from dcimg._urls import chain_parts, is_url
from dcimg._version import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import (
    ConversionError,
    InputCollisionError,
    MissingDependencyError,
)
from dcimg.metadata import physical_size

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

#: Bytes read from the source (and held in memory) per block, at most.
BLOCK_BYTES = 64 << 20
#: Target size of one Zarr chunk along the frames; chunks hold whole frames
#: unless ``chunks`` says otherwise.
CHUNK_BYTES = 8 << 20
# Classic TIFF stores 32-bit offsets: beyond this, switch to BigTIFF.
_CLASSIC_TIFF_LIMIT = 2**32 - 2**25

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
        return cls(**values)

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
        if self.pyramid and fmt.container != "tiff" and not fmt.ome:
            # A plain Zarr output is one array: no place for other levels.
            raise ConversionError(
                f"pyramid levels need OME-Zarr (.ome.zarr) or TIFF; {fmt.name} "
                "holds one array"
            )


# --------------------------------------------------------------------------
# Inputs are never touched


# What ``os.stat`` says a file is: (device, inode), or its resolved path
# where the file system has no inode numbers (0 on some Windows volumes).
_Identity = tuple[int, int] | tuple[str, str]


@dataclass(frozen=True)
class _Inputs:
    """The local files a conversion reads, known by identity, not by name.

    Different names can be one file (symbolic and hard links, ``..``, letter
    case on a case-insensitive file system); the device and inode numbers of
    ``os.stat`` cannot differ, so that is what is compared, file system by
    file system, with no guess about how a file system compares names.
    """

    #: Each input file (and the link, when it is reached through one).
    files: dict[_Identity, str] = field(default_factory=dict)
    #: Every folder an input lies in, at any depth, named and resolved.
    holders: dict[_Identity, str] = field(default_factory=dict)
    #: The folders of a series being read: no output may lie inside them.
    folders: dict[_Identity, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files or self.holders or self.folders)

    def add(self, other: _Inputs) -> None:
        """Protect ``other``'s inputs too (a batch of conversions)."""
        self.files.update(other.files)
        self.holders.update(other.holders)
        self.folders.update(other.folders)


def _identity(path: str, follow: bool = True) -> _Identity | None:
    """Return what ``path`` is on disk, or None when nothing is there."""
    try:
        status = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    if status.st_ino:
        return (status.st_dev, status.st_ino)
    return ("path", os.path.normcase(os.path.realpath(path)))


def _chain(folder: str) -> list[_Identity]:
    """Identify ``folder`` and each folder above it, walking up its name.

    The name keeps its ``..`` and links: each step is a folder the system
    passes through (or, resolved first, one the path really lies in).
    """
    found = []
    while True:
        identity = _identity(folder)
        if identity is not None:
            found.append(identity)
        parent = os.path.dirname(folder)
        if parent == folder:
            return found
        folder = parent


def _local_path(name: Any) -> str | None:
    """Return the local path an input names (None: a remote URL, no path)."""
    if not isinstance(name, (str, bytes, os.PathLike)):
        return None
    text = os.fsdecode(name)
    if not is_url(text):
        return os.path.join(os.getcwd(), text)
    # A chain ("simplecache::file:///data/a.dcimg") reads its last part.
    last = chain_parts(text)[-1]
    for scheme in ("file://", "local://"):
        # fsspec's local file system reads these: they are local files.
        if last.lower().startswith(scheme):
            return os.path.join(os.getcwd(), last[len(scheme) :])
    if "://" in last or "::" not in text or re.fullmatch(r"[A-Za-z]+", last):
        return None  # a remote object cannot be a local output
    # fsspec reads a chain's last part without a protocol as a local path
    # ("simplecache::/data/a.dcimg").
    return os.path.join(os.getcwd(), last)


def _inputs_of(source: Any) -> _Inputs:
    """Identify the local files ``source`` reads (and its series' folders).

    A series (whose metadata list its ``files``) is read from folders that
    outputs must stay out of; a single file (``file_path``) only protects
    itself and the folders holding it.
    """
    members = getattr(getattr(source, "metadata", None), "files", None)
    # A file's own path as it opened it (a relative name was made absolute
    # then: the working folder may have changed since).
    origin = getattr(source, "_origin", None)
    own = origin if isinstance(origin, str) else getattr(source, "file_path", None)
    names = list(members) if members else [own]
    inputs = _Inputs()
    opened = _descriptor_identity(origin)
    if opened is not None:
        # A file object (its name may be no path: os.fdopen gives an int):
        # the file it reads is protected by identity, and its folders by
        # the path the system gives for the descriptor, where it does.
        identity, path = opened
        inputs.files.setdefault(identity, str(getattr(source, "file_path", path)))
        if path is not None and _identity(path) == identity:
            names.append(path)
    seen: set[str] = set()
    for name in names:
        path = _local_path(name)
        if path is None:
            continue
        shown = path if name is None else os.fsdecode(name)
        link = _identity(path, follow=False)
        target = _identity(path)
        for found in (link, target):
            if found is not None:
                inputs.files.setdefault(found, shown)
        parents = [os.path.dirname(path)]
        if link != target:  # a symbolic link: where it leads is read too
            parents.append(os.path.dirname(os.path.realpath(path)))
        for parent in parents:
            if parent in seen:
                continue  # the members of a series share their folder
            seen.add(parent)
            # Every folder passed through to reach the input, and every
            # folder it really lies in: replacing any would remove it.
            for identity in _chain(parent) + _chain(os.path.realpath(parent)):
                inputs.holders.setdefault(identity, shown)
            if members:
                for folder in (parent, os.path.realpath(parent)):
                    held = _identity(folder)
                    if held is not None:
                        inputs.folders.setdefault(held, parent)
    return inputs


def _descriptor_identity(origin: Any) -> tuple[_Identity, str | None] | None:
    """Identify the file a file object reads, and find its path if possible.

    Returns None for anything but an open file with a descriptor.
    """
    if origin is None or isinstance(origin, (str, bytes, os.PathLike)):
        return None
    try:
        fd = origin.fileno()
        status = os.fstat(fd)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation too
        return None
    if not status.st_ino:
        return None
    path = None
    for link in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
        with contextlib.suppress(OSError):
            path = os.readlink(link)
            break
    if path is None:
        name = getattr(origin, "name", None)
        path = os.path.abspath(name) if isinstance(name, str) else None
    return (status.st_dev, status.st_ino), path


def _existing(path: str) -> str:
    """Return the deepest existing folder (or file) on the way to ``path``."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _refuse_inputs(inputs: _Inputs, path: Path, output: Path | None = None) -> None:
    """Refuse to replace, remove or create ``path`` if that touches an input.

    Every place where the converter replaces, removes, truncates or creates
    something calls this check, and only this one: ``path`` must not be an
    input, hold one at any depth, or lie inside the folder of a series
    being read.

    Raises
    ------
    InputCollisionError
        Naming ``output`` (default ``path``) and the input.
    """
    if not inputs:
        return
    shown = os.fspath(path if output is None else output)
    text = os.path.join(os.getcwd(), os.fspath(path))
    for follow in (False, True):
        identity = _identity(text, follow)
        if identity in inputs.files:
            raise InputCollisionError(shown, inputs.files[identity], "it is the input")
        if identity in inputs.holders:
            raise InputCollisionError(
                shown, inputs.holders[identity], "it is a folder holding the input"
            )
    # Where it is (or would be) created: the folders it really lies in.
    for identity in _chain(os.path.realpath(_existing(text))):
        if identity in inputs.folders:
            raise InputCollisionError(
                shown,
                inputs.folders[identity],
                "it lies inside the folder of the series",
            )


# --------------------------------------------------------------------------
# The source and the shape of the output


def _file_metadata(meta: Any) -> Any:
    """Return the per-file metadata (camera...) of a file or a series."""
    if hasattr(meta, "camera"):
        return meta
    return getattr(meta, "first", None)


@dataclass
class _Plan:
    """What to write: the source, the selected frames and their layout.

    ``axes`` names the leading (non-YX) axes of the output in the source's
    order: the source's own leading axes, then the axes the frames are split
    into. Planes are numbered in that order (C order), which is the order of
    the TIFF pages.
    """

    source: Any
    name: str
    fmt: OutputFormat
    options: _Options
    dtype: np.dtype
    indices: range
    grid_axes: str
    grid_shape: tuple[int, ...]
    split_shape: tuple[int, ...]
    height: int
    width: int
    interrupt: _Interrupt = field(default_factory=lambda: _Interrupt())
    inputs: _Inputs = field(default_factory=_Inputs)

    @property
    def axes(self) -> str:
        return self.grid_axes + self.options.axes

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return self.grid_shape + self.split_shape

    @property
    def planes(self) -> int:
        return math.prod(self.lead_shape)

    @property
    def file_frames(self) -> range:
        """The frames converted from each file (or of the one file)."""
        if isinstance(self.source, _GridAxisAsFrames):
            return range(self.source.frame, self.source.frame + 1)
        return self.indices

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * self.dtype.itemsize

    @property
    def levels(self) -> list[tuple[int, int]]:
        """(height, width) of every resolution level, full size first."""
        sizes = [(self.height, self.width)]
        for _ in range(self.options.pyramid):
            height, width = sizes[-1]
            sizes.append(((height + 1) // 2, (width + 1) // 2))
        return sizes

    def read_run(self, cell: tuple[int, ...], start: int, count: int) -> np.ndarray:
        """Read ``count`` selected frames of one grid cell from ``start``."""
        part = self.indices[start : start + count]
        stop = part.stop if part.stop >= 0 else None
        frames = slice(part.start, stop, part.step)
        key: Any = (*cell, frames) if cell else frames
        pixels = np.asarray(self.source.read(key, dtype=self.dtype))
        return pixels.reshape(count, self.height, self.width)

    def pages(
        self, progress: Callable[[int], Any], block_bytes: int | None = None
    ) -> Iterator[np.ndarray]:
        """Every plane in order, read in blocks of at most ``block_bytes``."""
        block = max(1, (block_bytes or BLOCK_BYTES) // max(self.frame_bytes, 1))
        frames = len(self.indices)
        for cell in np.ndindex(*self.grid_shape):
            for start in range(0, frames, block):
                self.interrupt.check()
                count = min(block, frames - start)
                pixels = self.read_run(tuple(cell), start, count)
                yield from pixels
                progress(count)

    def _first_stamp(self) -> np.datetime64 | None:
        """Return the earliest time stamp of all the source's frames (µs).

        The frames not converted count too: times are relative to the start
        of the acquisition, whatever the selection.
        """
        source = self.source
        if isinstance(source, _GridAxisAsFrames):
            source = source.series
        stamps = np.asarray(source.timestamps).astype("datetime64[us]")
        valid = stamps[~np.isnat(stamps)]
        return valid.min() if valid.size else None

    def stamps_us(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Time stamps (µs, int64) of every plane in lead shape, and a mask."""
        stamps = np.asarray(self.source.timestamps)
        full = self.grid_shape + (self.source.shape[-3],)
        if stamps.size == 0 or stamps.shape != full:
            return None
        stamps = stamps.astype("datetime64[us]")
        valid = ~np.isnat(stamps)
        first = self._first_stamp()
        if not valid.any() or first is None:
            return None
        micro = stamps.view(np.int64)
        origin = int(first.astype(np.int64))
        selected = np.asarray(self.indices)
        micro = (micro[..., selected] - origin).reshape(self.lead_shape)
        valid = valid[..., selected].reshape(self.lead_shape)
        return micro, valid

    def acquisition_date(self) -> str | None:
        first = self._first_stamp()
        return None if first is None else f"{first}"

    def time_increment(self) -> float | None:
        """Seconds between time points: the median step of the time stamps."""
        if "T" not in self.axes or self.lead_shape[self.axes.index("T")] < 2:
            return None
        found = self.stamps_us()
        if found is None:
            return None
        micro, valid = found
        axis = self.axes.index("T")
        steps = np.diff(micro, axis=axis)
        ok = (
            valid[(slice(None),) * axis + (slice(1, None),)]
            & valid[(slice(None),) * axis + (slice(None, -1),)]
        )
        if not ok.any():
            return None
        return int(np.median(steps[ok])) / 1e6

    def channel_name(self) -> str:
        return self.options.channel_name or Path(self.name).stem

    def summary(self) -> dict[str, Any]:
        """Provenance and camera metadata, as JSON-serialisable values."""
        frames = self.file_frames
        info: dict[str, Any] = {
            "converter": f"dcimg {__version__}",
            "source": self.name,
            "axes": self.axes,
            "frames": {"start": frames.start, "stop": frames.stop, "step": frames.step},
            "stored_pixels_corrected": True,
            "metadata": self.source.metadata.to_dict(),
        }
        return info

    def per_frame(self) -> dict[str, Any]:
        """Time stamps (µs since the epoch) and counters of every plane."""
        stamps = np.asarray(self.source.timestamps)
        selected = np.asarray(self.indices)
        out: dict[str, Any] = {"timestamps_us": None, "framestamps": None}
        full = self.grid_shape + (self.source.shape[-3],)
        if stamps.shape == full and stamps.size:
            micro = stamps.astype("datetime64[us]")[..., selected]
            values = micro.view(np.int64).reshape(-1)
            nat = np.isnat(micro).reshape(-1)
            out["timestamps_us"] = [
                None if bad else int(v) for v, bad in zip(values, nat, strict=True)
            ]
        counters = np.asarray(getattr(self.source, "framestamps", np.empty(0)))
        if counters.shape == full and counters.size:
            out["framestamps"] = counters[..., selected].reshape(-1).tolist()
        return out

    def annotations(self) -> dict[str, str]:
        """Camera metadata as key-value strings (an OME MapAnnotation)."""
        frames = self.file_frames
        return {
            "source file": self.name,
            "converter": f"dcimg {__version__}",
            "selected frames": f"{frames.start}:{frames.stop}:{frames.step}",
            "axes": self.axes,
            **camera_annotations(_file_metadata(self.source.metadata)),
        }

    def ome_image(self) -> OMEImage:
        """Describe the OME image the output holds (OME-XML, OME-NGFF)."""
        meta = _file_metadata(self.source.metadata)
        stamps = self.stamps_us()
        return OMEImage(
            name=Path(self.name).stem,
            description=f"Converted by dcimg {__version__} from {self.name}; "
            "pixels overwritten by the camera are restored.",
            axes=self.axes,
            lead_shape=self.lead_shape,
            height=self.height,
            width=self.width,
            dtype=self.dtype,
            pixel_size_y=self.options.pixel_size_y,
            pixel_size_x=self.options.pixel_size_x,
            z_step=self.options.z_step,
            channel_name=self.channel_name(),
            times_us=None if stamps is None else stamps[0],
            times_valid=None if stamps is None else stamps[1],
            acquisition_date=self.acquisition_date(),
            camera_model=meta.camera.model if meta is not None else None,
            camera_serial=meta.camera.serial if meta is not None else None,
            binning=meta.binning if meta is not None else None,
            annotations=self.annotations(),
        )


def _make_plan(source: Any, name: str, fmt: OutputFormat, options: _Options) -> _Plan:
    """Check the source against the options; say what will be written."""
    shape = tuple(int(n) for n in source.shape)
    if len(shape) < 3:
        raise ConversionError(
            f"{name}: the source has shape {shape}; expected (..., frames, height, "
            "width)"
        )
    grid_shape = shape[:-3]
    grid_axes = str(getattr(source, "axes", "") or "").upper()
    if len(grid_axes) != len(grid_shape):
        raise ConversionError(
            f"{name}: the source has {len(grid_shape)} axes before the frames but "
            f"names {len(grid_axes)} ({grid_axes!r}); give it an 'axes' attribute"
        )
    chosen = range(shape[-3])[options.frames or slice(None)]
    free = [letter for letter in "CZT" if letter not in grid_axes]
    if len(options.axes) == 1 and options.axes in grid_axes and len(chosen) == 1:
        # One frame per file (a series of single images): its axis is of
        # length 1, so give it any letter the grid does not use; when the
        # grid uses them all, the grid's last axis becomes the frame axis.
        if free:
            options = dataclasses.replace(options, axes=free[0])
        else:
            source = _GridAxisAsFrames(source, chosen[0])
            options = dataclasses.replace(options, axes=grid_axes[-1], frames=None)
            shape, grid_shape, grid_axes = source.shape, grid_shape[:-1], source.axes
    axes = grid_axes + options.axes
    if len(set(axes)) != len(axes):
        rename = f"name their axis with --axes {free[0]}, or " if free else ""
        raise ConversionError(
            f"{name}: the source's axes {grid_axes!r} and the frames' axes "
            f"{options.axes!r} repeat a letter; {len(chosen)} of each file's "
            f"{shape[-3]} frames are selected: {rename}select one frame per "
            "file with --frames (e.g. --frames 0)"
        )
    if fmt.ome and set(axes) - set(_NGFF_ORDER):
        extra = "".join(sorted(set(axes) - set(_NGFF_ORDER)))
        raise ConversionError(
            f"{name}: {fmt.name} stores the axes T, C and Z only, not {extra!r}; "
            "convert each position separately, or write plain TIFF or Zarr"
        )
    dtype = _check_dtype(np.dtype(source.dtype), options.dtype)
    if fmt.container == "tiff" and fmt.ome and dtype.name not in OME_PIXEL_TYPES:
        raise ConversionError(
            f"{fmt.name} cannot store {dtype.name} pixels; choose one of "
            f"{', '.join(OME_PIXEL_TYPES)}"
        )
    nframes = shape[-3]
    indices = range(nframes)[options.frames or slice(None)]
    if len(indices) == 0:
        raise ConversionError(
            f"the frame selection selects none of the {nframes} frames"
        )
    split = _split_frames(len(indices), options)
    plan = _Plan(
        source=source,
        name=name,
        fmt=fmt,
        options=options,
        dtype=dtype,
        indices=indices,
        grid_axes=grid_axes,
        grid_shape=grid_shape,
        split_shape=split,
        height=shape[-2],
        width=shape[-1],
    )
    if options.chunks is not None and len(options.chunks) not in (
        2,
        len(plan.lead_shape) + 2,
    ):
        raise ConversionError(
            f"chunks {options.chunks}: give 2 sizes (Y, X) or "
            f"{len(plan.lead_shape) + 2}, one per axis of the array "
            f"({_array_axes(plan)}YX)"
        )
    return plan


class _GridAxisAsFrames:
    """A series of single frames, seen with its last grid axis as the frames.

    An OME image has only C, T and Z besides Y and X.  A grid of one-frame
    files over all three (C x T x Z) leaves no letter for its frame axis, of
    length 1; seen this way, the files along the grid's last axis are the
    frames, and the writers need nothing new.
    """

    def __init__(self, series: Any, frame: int) -> None:
        #: The series seen this way.
        self.series = series
        #: The frame taken from every file.
        self.frame = frame
        shape = tuple(int(n) for n in series.shape)
        self.shape = (*shape[:-4], shape[-4], *shape[-2:])
        self.axes = str(series.axes).upper()[:-1]
        self.dtype = series.dtype
        self.metadata = series.metadata

    @property
    def timestamps(self) -> np.ndarray:
        return np.asarray(self.series.timestamps)[..., self.frame]

    @property
    def framestamps(self) -> np.ndarray:
        return np.asarray(self.series.framestamps)[..., self.frame]

    def read(self, key: Any, dtype: Any = None) -> np.ndarray:
        *cell, files = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.series.read((*cell, files, self.frame), dtype=dtype))


def _split_frames(count: int, options: _Options) -> tuple[int, ...]:
    """Sizes of the axes the selected frames are split into (outer first)."""
    axes = options.axes
    if len(axes) == 1:
        return (count,)
    if options.z_size is not None:
        z_size = options.z_size
    else:
        assert options.frames_per_slice is not None
        if count % options.frames_per_slice:
            raise ConversionError(
                f"{count} frames are not a whole number of Z slices of "
                f"frames_per_slice={options.frames_per_slice} frames; select "
                f"{count - count % options.frames_per_slice} with frames="
            )
        z_size = count // options.frames_per_slice
    if count % z_size:
        raise ConversionError(
            f"{count} frames do not split into z_size={z_size} Z planes "
            f"({count % z_size} frames left over); select "
            f"{count - count % z_size} frames with frames="
        )
    other = count // z_size
    if options.frames_per_slice is not None and axes == "ZT":
        if other != options.frames_per_slice:
            raise ConversionError(
                f"z_size={z_size} and frames_per_slice={options.frames_per_slice} "
                f"disagree for {count} frames"
            )
    return (z_size, other) if axes == "ZT" else (other, z_size)


def _array_axes(plan: _Plan) -> str:
    """Leading axes of the Zarr array: NGFF order for OME-Zarr."""
    if plan.fmt.ome:
        return "".join(a for a in _NGFF_ORDER if a in plan.axes)
    return plan.axes


# --------------------------------------------------------------------------
# Interruption: signals stop the conversion between blocks


class _Interrupt:
    """Turn SIGINT (and SIGTERM) into a stop at the next block boundary.

    While a conversion runs, the first signal only records that it came: the
    block being written is completed (no writer is left half-way through a
    file), then :meth:`check` raises :class:`KeyboardInterrupt` and the
    temporary output is removed. A second signal raises at once.
    """

    def __init__(self) -> None:
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    @contextlib.contextmanager
    def installed(self, signals: Sequence[int]) -> Iterator[_Interrupt]:
        """Install the handler (main thread only) for the given signals."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {}
        try:
            for signum in signals:
                previous[signum] = signal.signal(signum, self._handler)
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


# --------------------------------------------------------------------------
# Pyramids


def _halve(pixels: np.ndarray) -> np.ndarray:
    """Mean of every 2 x 2 block of the last two axes (same dtype).

    An odd last row or column is averaged with itself, so every level is
    ``ceil(size / 2)`` and edge pixels keep their value. Integers round half
    up.
    """
    height, width = pixels.shape[-2:]
    if height % 2 or width % 2:
        pad = [(0, 0)] * (pixels.ndim - 2) + [(0, height % 2), (0, width % 2)]
        pixels = np.pad(pixels, pad, mode="edge")
    if pixels.dtype.kind == "f":
        wide: Any = np.float64
    elif pixels.dtype.itemsize <= 2:
        # Four 16-bit values sum exactly in 32 bits: half the memory traffic
        # of 64-bit sums, which matters on 100 GB inputs.
        wide = np.int32
    else:
        wide = np.int64
    # Rows first (contiguous halves), then columns of the half-height sums.
    rows = pixels[..., 0::2, :].astype(wide)
    rows += pixels[..., 1::2, :]
    total = rows[..., 0::2] + rows[..., 1::2]
    if pixels.dtype.kind == "f":
        total /= 4
    else:
        total += 2
        total >>= 2  # floor division by 4: halves round up
    return np.asarray(total.astype(pixels.dtype))


def _levels_of(pixels: np.ndarray, count: int) -> list[np.ndarray]:
    """``pixels`` and its ``count`` successive halvings."""
    levels = [pixels]
    for _ in range(count):
        levels.append(_halve(levels[-1]))
    return levels


# --------------------------------------------------------------------------
# TIFF and OME-TIFF


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


# --------------------------------------------------------------------------
# Zarr and OME-Zarr (format 2), written chunk by chunk


def _zarr_codec(plan: _Plan) -> Any:
    """Return the numcodecs compressor for the compression (None: raw)."""
    name = plan.options.compression or "blosc-zstd"
    if name == "none":
        return None
    numcodecs = _require("numcodecs", plan.fmt.name)
    if name == "blosc-zstd":
        shuffle = (
            numcodecs.Blosc.BITSHUFFLE
            if plan.dtype.itemsize == 1
            else (numcodecs.Blosc.SHUFFLE)
        )
        return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=shuffle)
    if name == "zstd":
        return numcodecs.Zstd(level=5)
    return numcodecs.GZip(level=5)


@dataclass
class _ZarrArray:
    """One Zarr (format 2) array being written: geometry and codec."""

    folder: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    codec: Any

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        header = {
            "zarr_format": 2,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": self.dtype.str,
            "compressor": None if self.codec is None else self.codec.get_config(),
            "fill_value": 0,
            "order": "C",
            "filters": None,
            "dimension_separator": "/",
        }
        _write_json(self.folder / ".zarray", header)

    def write_region(self, start: tuple[int, ...], pixels: np.ndarray) -> None:
        """Write ``pixels`` at ``start``: whole chunks (edge chunks padded).

        ``start`` and the region must fall on chunk boundaries (or end at the
        array's edge), so every chunk is written once, whole.
        """
        ranges = [
            range(s // c, (s + n + c - 1) // c)
            for s, n, c in zip(start, pixels.shape, self.chunks, strict=True)
        ]
        unsigned = np.dtype(f"u{self.dtype.itemsize}")
        for index in itertools.product(*ranges):
            lo = [i * c - s for i, c, s in zip(index, self.chunks, start, strict=True)]
            part = pixels[
                tuple(slice(a, a + c) for a, c in zip(lo, self.chunks, strict=True))
            ]
            # All-zero chunks are left out: readers return the fill value.
            if not part.view(unsigned).any():
                continue
            if part.shape != self.chunks:
                chunk = np.zeros(self.chunks, self.dtype)
                chunk[tuple(slice(0, n) for n in part.shape)] = part
            else:
                chunk = np.ascontiguousarray(part)
            data = chunk.tobytes() if self.codec is None else self.codec.encode(chunk)
            path = self.folder.joinpath(*map(str, index))
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": every chunk is a new file; nothing existing is truncated.
            with open(path, "xb") as handle:
                handle.write(data)


def _write_json(path: Path, value: Any) -> None:
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, allow_nan=False)
        handle.write("\n")


def _zarr_chunks(plan: _Plan, lead: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk shape of the full-size array (leading axes in array order)."""
    requested = plan.options.chunks
    array_axes = _array_axes(plan)
    if requested is not None and len(requested) == len(lead) + 2:
        sizes = [min(c, n) for c, n in zip(requested[:-2], lead, strict=True)]
        return (
            *sizes,
            min(requested[-2], plan.height),
            min(requested[-1], plan.width),
        )
    height, width = plan.height, plan.width
    if requested is not None:
        height, width = min(requested[0], height), min(requested[1], width)
    # Whole frames; as many frames of the innermost source axis as fit.
    inner = plan.axes[-1]
    per = max(1, CHUNK_BYTES // max(plan.frame_bytes, 1))
    sizes = [
        min(per, n) if axis == inner else 1
        for axis, n in zip(array_axes, lead, strict=True)
    ]
    return (*sizes, height, width)


def _write_zarr(plan: _Plan, target: Path, progress: Callable[[int], Any]) -> None:
    codec = _zarr_codec(plan)
    array_axes = _array_axes(plan)
    # Where each array axis sits among the source's axes.
    order = [plan.axes.index(axis) for axis in array_axes]
    lead = tuple(plan.lead_shape[i] for i in order)
    chunks = _zarr_chunks(plan, lead)
    levels = plan.levels
    target.mkdir()
    arrays = []
    for level, (height, width) in enumerate(levels):
        folder = target / str(level) if plan.fmt.ome else target
        level_chunks = (*chunks[:-2], min(chunks[-2], height), min(chunks[-1], width))
        array = _ZarrArray(
            folder, lead + (height, width), level_chunks, plan.dtype, codec
        )
        array.create()
        arrays.append(array)
    if plan.fmt.ome:
        _write_json(target / ".zgroup", {"zarr_format": 2})
    low = np.full(_channel_count(plan), np.inf)
    high = np.full(_channel_count(plan), -np.inf)
    inner = len(plan.axes) - 1
    frames_per_cell = len(plan.indices)
    split = plan.split_shape
    grid_ndim = len(plan.grid_shape)
    # Regions: one chunk along every leading axis, whole frames.
    region_grid = [range(0, n, c) for n, c in zip(lead, chunks[:-2], strict=True)]
    for start in itertools.product(*region_grid):
        plan.interrupt.check()
        stop = [min(s + c, n) for s, c, n in zip(start, chunks[:-2], lead, strict=True)]
        # The same region in the source's axis order.
        src_lo = [0] * len(plan.axes)
        src_hi = [0] * len(plan.axes)
        for position, source_axis in enumerate(order):
            src_lo[source_axis] = start[position]
            src_hi[source_axis] = stop[position]
        shape = [hi - lo for lo, hi in zip(src_lo, src_hi, strict=True)]
        outer = [
            range(lo, hi) for lo, hi in zip(src_lo[:inner], src_hi[:inner], strict=True)
        ]
        runs = math.prod(len(r) for r in outer)
        # One run of frames fills the region: use the read array itself.
        buffer = (
            None
            if runs == 1
            else np.empty((*shape, plan.height, plan.width), plan.dtype)
        )
        for index in itertools.product(*outer):
            cell = tuple(index[:grid_ndim])
            split_index = (*index[grid_ndim:], src_lo[inner])
            first = int(np.ravel_multi_index(split_index, split))
            count = src_hi[inner] - src_lo[inner]
            assert first + count <= frames_per_cell
            place = tuple(i - lo for i, lo in zip(index, src_lo, strict=False))
            pixels = plan.read_run(cell, first, count)
            if buffer is None:
                buffer = pixels.reshape(*shape, plan.height, plan.width)
            else:
                buffer[place] = pixels
            progress(count)
        assert buffer is not None
        region = np.transpose(buffer, (*order, len(order), len(order) + 1))
        _track_range(plan, region, array_axes, start, low, high)
        for array, pixels in zip(
            arrays, _levels_of(region, len(levels) - 1), strict=True
        ):
            array.write_region(tuple(start) + (0, 0), pixels)
    summary = plan.summary()
    summary.update(plan.per_frame())
    if not plan.fmt.ome:
        _write_json(target / ".zattrs", {"dcimg": summary})
        return
    _write_json(
        target / ".zattrs",
        {
            "multiscales": [_multiscale(plan, array_axes)],
            "omero": _omero(plan, low, high),
            "dcimg": summary,
        },
    )


def _channel_count(plan: _Plan) -> int:
    return plan.lead_shape[plan.axes.index("C")] if "C" in plan.axes else 1


def _track_range(
    plan: _Plan,
    region: np.ndarray,
    array_axes: str,
    start: Sequence[int],
    low: np.ndarray,
    high: np.ndarray,
) -> None:
    """Update each channel's smallest and largest value (display window)."""
    if region.size == 0:
        return
    if "C" not in array_axes:
        low[0] = min(low[0], float(region.min()))
        high[0] = max(high[0], float(region.max()))
        return
    axis = array_axes.index("C")
    others = tuple(i for i in range(region.ndim) if i != axis)
    first = start[axis]
    mins = region.min(axis=others)
    maxs = region.max(axis=others)
    for i in range(region.shape[axis]):
        low[first + i] = min(low[first + i], float(mins[i]))
        high[first + i] = max(high[first + i], float(maxs[i]))


def _multiscale(plan: _Plan, array_axes: str) -> dict[str, Any]:
    """Return the NGFF 0.4 ``multiscales`` entry: axes, units, scales."""
    opts = plan.options
    axes: list[dict[str, Any]] = []
    scale: list[float] = []
    increment = plan.time_increment()
    for axis in array_axes:
        entry: dict[str, Any] = {"name": axis.lower(), "type": _NGFF_TYPES[axis]}
        value = 1.0
        if axis == "T" and increment is not None:
            entry["unit"] = "second"
            value = increment
        elif axis == "Z" and opts.z_step is not None:
            entry["unit"] = "micrometer"
            value = opts.z_step
        axes.append(entry)
        scale.append(value)
    for name, size in (("y", opts.pixel_size_y), ("x", opts.pixel_size_x)):
        entry = {"name": name, "type": "space"}
        if size is not None:
            entry["unit"] = "micrometer"
        axes.append(entry)
    datasets = []
    for level in range(len(plan.levels)):
        factor = 2**level
        yx = [
            (opts.pixel_size_y or 1.0) * factor,
            (opts.pixel_size_x or 1.0) * factor,
        ]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [*scale, *yx]}
                ],
            }
        )
    return {
        "version": "0.4",
        "name": Path(plan.name).stem,
        "axes": axes,
        "datasets": datasets,
        "type": "mean" if plan.options.pyramid else "none",
        "metadata": {
            "description": "2 x 2 mean in Y and X per level",
            "method": "dcimg._convert._halve",
            "version": __version__,
        }
        if plan.options.pyramid
        else {},
    }


def _omero(plan: _Plan, low: np.ndarray, high: np.ndarray) -> dict[str, Any]:
    """Channel names and display windows (the transitional ``omero`` block)."""
    if plan.dtype.kind == "f":
        limits = (float(np.finfo(plan.dtype).min), float(np.finfo(plan.dtype).max))
    else:
        info = np.iinfo(plan.dtype)
        limits = (float(info.min), float(info.max))
    channels = []
    name = plan.channel_name()
    for c in range(len(low)):
        lo = float(low[c]) if np.isfinite(low[c]) else 0.0
        hi = float(high[c]) if np.isfinite(high[c]) else lo
        channels.append(
            {
                "label": name if len(low) == 1 else f"{name} {c}",
                "color": "FFFFFF",
                "active": True,
                "window": {"min": limits[0], "max": limits[1], "start": lo, "end": hi},
            }
        )
    return {"channels": channels, "rdefs": {"model": "greyscale"}}


# --------------------------------------------------------------------------
# Staging, errors, progress


@contextlib.contextmanager
def _staging(
    out: Path, overwrite: bool, interrupt: _Interrupt, inputs: _Inputs
) -> Iterator[Path]:
    """Give a temporary path beside ``out``; move it into place on success.

    Whatever happens inside (an error, ``KeyboardInterrupt``, a full disk),
    the temporary folder is removed; ``out`` is only touched once the new
    output is whole. Before the folder is made, before ``out`` is moved away
    or replaced and before the folder is removed, :func:`_refuse_inputs`
    checks that no input is touched (``out`` may have changed meanwhile).
    """
    _refuse_inputs(inputs, out)
    folder = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    )
    try:
        target = folder / out.name
        _refuse_inputs(inputs, target, out)
        yield target
        interrupt.check()
        _refuse_inputs(inputs, out)
        if os.path.lexists(out):
            if not overwrite:
                raise ConversionError(f"{out} appeared during the conversion")
            # Move the old output into the folder that is removed below.
            os.replace(out, folder / "previous")
        os.replace(target, out)
    finally:
        # Raising here keeps the folder: better left behind than an input
        # removed with it.
        _refuse_inputs(inputs, folder, out)
        shutil.rmtree(folder, ignore_errors=True)


# NumPy's ``tofile`` reports a short write without an errno.
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")
_NO_SPACE = "no space left on the device"


def _disk_full(error: OSError, folder: Path) -> bool:
    """Whether a failed write means the file system (or quota) is full."""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    if error.errno is None and _SHORT_WRITE.search(str(error)):
        # A short write to a regular file: out of space unless the device
        # still has room (then it was a quota or a file size limit).
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < BLOCK_BYTES
        return True
    return False


def _progress_bar(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: convert silently without it
        return contextlib.nullcontext(None)
    return tqdm(
        total=total,
        unit="frame",
        desc=label,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )


def _planes_of(source: Any, options: _Options) -> int:
    """How many planes a conversion of ``source`` writes (for progress)."""
    shape = tuple(int(n) for n in source.shape)
    frames = len(range(shape[-3])[options.frames or slice(None)])
    return math.prod(shape[:-3]) * frames


# --------------------------------------------------------------------------
# The public function


def convert(
    source: Any,
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
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write the corrected frames of a DCIMG file to TIFF, OME-TIFF or (OME-)Zarr.

    The format follows the name of ``out``: ``.tif``/``.tiff`` (TIFF, switched
    to BigTIFF when larger than 4 GiB), ``.btf``/``.tf8`` (BigTIFF),
    ``.ome.tif``/``.ome.tiff`` (OME-TIFF; ``.ome.btf``: OME-BigTIFF), ``.zarr``
    (one Zarr array) or ``.ome.zarr`` (OME-Zarr, NGFF 0.4). Frames are read
    and written in blocks of at most 64 MiB, so any size converts in bounded
    memory. Nothing is left behind if the conversion fails, fills the disk or
    is interrupted: Ctrl-C (``SIGINT``) stops it at the next block, removes
    the partial output and raises :class:`KeyboardInterrupt`.

    Parameters
    ----------
    source : DCIMGFile or str or os.PathLike or array-like source
        An open file, the path of one, or any object with ``shape``
        (``(..., frames, height, width)``), ``dtype``,
        ``read(key, dtype=...)`` (``key``: an integer per leading axis then a
        slice of frames), ``timestamps`` (``datetime64``, shape
        ``shape[:-2]``, ``NaT`` where unknown, or empty), ``metadata`` (with
        ``to_dict()``, and ``camera`` etc. as in :class:`dcimg.Metadata` or
        under ``first``) and, when it has axes before the frames, ``axes``
        (one letter per such axis, e.g. ``"TZ"``); ``framestamps`` and
        ``file_path`` are used when present.
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
        When tifffile (TIFF), numcodecs (Zarr) or imagecodecs (``zstd``,
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
    )
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    interrupt = _Interrupt()
    with interrupt.installed([signal.SIGINT]):
        return _convert_one(source, Path(out), options, overwrite, progress, interrupt)


def _convert_one(
    source: Any,
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
