"""Convert DCIMG files to TIFF, BigTIFF, OME-TIFF, Zarr and OME-Zarr.

This module backs ``dcimg convert``. It is an adapter over the public surface
of :class:`dcimg.DCIMGFile` only (``shape``, ``dtype``, ``read``,
``timestamps``, ``framestamps``, ``metadata``): frames are read in blocks of a
bounded size and written out one block at a time, so files larger than the
memory of the machine convert with a small, constant footprint.

The output is first written to a hidden temporary folder beside the
destination and renamed into place only when it is complete: a conversion that
fails or is interrupted leaves nothing behind, and an existing destination is
only replaced (with ``overwrite=True``) by a complete result.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcimg._version import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError

__all__ = [
    "DTYPES",
    "FORMATS",
    "ConversionError",
    "MissingDependencyError",
    "OutputFormat",
    "convert",
    "output_format",
    "parse_frames",
]

#: Bytes read from the DCIMG file (and held in memory) per block, at most.
BLOCK_BYTES = 64 << 20
#: Target size of one Zarr chunk; chunks always hold whole frames.
CHUNK_BYTES = 8 << 20
# Classic TIFF stores 32-bit offsets: beyond this, switch to BigTIFF.
_CLASSIC_TIFF_LIMIT = 2**32 - 2**25

#: Output types ``--dtype`` accepts (each must hold every input value).
DTYPES = ("uint8", "uint16", "int16", "int32", "uint32", "int64", "float32", "float64")


class ConversionError(DCIMGError):
    """The conversion cannot be done as asked (bad name, frames, type...)."""


class MissingDependencyError(ConversionError):
    """An optional package needed for the requested output is not installed."""


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


def _require(module: str, fmt: OutputFormat) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"writing {fmt.name} needs the {module} package; install it with "
            "pip install 'dcimg[convert]'"
        ) from None


def _frame_ranges(indices: range, block: int) -> Iterator[tuple[int, slice]]:
    """Split the selected frames into slices of at most ``block`` frames.

    Yields the position of each block in the output and the slice to read.
    """
    for start in range(0, len(indices), block):
        part = indices[start : start + block]
        stop = part.stop if part.stop >= 0 else None
        yield start, slice(part.start, stop, part.step)


@dataclass
class _Plan:
    """What to write: selected frames, output type, per-frame data."""

    source: DCIMGFile
    indices: range
    dtype: np.dtype
    fmt: OutputFormat
    name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        _, height, width = self.source.shape
        return (len(self.indices), height, width)

    @property
    def frame_bytes(self) -> int:
        _, height, width = self.shape
        return height * width * self.dtype.itemsize

    def blocks(
        self, block_frames: int, progress: Callable[[int], Any]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Read the selection block by block (output position, pixels).

        Every block is read into the same buffer, so memory use stays at one
        block; consumers must be done with a block before asking for the next.
        """
        _, height, width = self.shape
        block_frames = min(block_frames, len(self.indices))
        buffer = np.empty((block_frames, height, width), self.dtype)
        for position, frames in _frame_ranges(self.indices, block_frames):
            count = min(block_frames, len(self.indices) - position)
            pixels = self.source.read(frames, out=buffer[:count])
            yield position, pixels
            progress(count)

    def timestamps_us(self) -> np.ndarray | None:
        stamps = self.source.timestamps
        if stamps.size == 0:
            return None
        return stamps.astype("datetime64[us]").astype(np.int64)

    def delta_t(self) -> list[float] | None:
        """Seconds from the file's first frame to each selected frame."""
        stamps = self.timestamps_us()
        if stamps is None:
            return None
        return [float(value) for value in (stamps[self.indices] - stamps[0]) / 1e6]

    def summary(self, per_frame: bool) -> dict[str, Any]:
        """Provenance and camera metadata, as JSON-serialisable values."""
        frames = self.indices
        info: dict[str, Any] = {
            "converter": f"dcimg {__version__}",
            "source": self.name,
            "frames": {"start": frames.start, "stop": frames.stop, "step": frames.step},
            "stored_pixels_corrected": True,
            "metadata": self.source.metadata.to_dict(),
        }
        if per_frame:
            stamps = self.timestamps_us()
            counters = self.source.framestamps
            info["timestamps_us"] = None if stamps is None else stamps[frames].tolist()
            info["framestamps"] = counters[frames].tolist() if counters.size else None
        return info

    def annotations(self) -> dict[str, str]:
        """Camera metadata as key-value strings (an OME MapAnnotation)."""
        meta = self.source.metadata
        values = {
            "source file": self.name,
            "converter": f"dcimg {__version__}",
            "DCIMG format version": f"{meta.format_version:#x} ({meta.layout})",
            "camera model": meta.camera.model or "unknown",
            "camera serial": meta.camera.serial or "unknown",
            "frames in source": str(meta.frames),
            "selected frames": f"{self.indices.start}:{self.indices.stop}:"
            f"{self.indices.step}",
            "first timestamp": meta.first_timestamp or "unknown",
            "dropped frames (after index)": ", ".join(map(str, meta.dropped_frames))
            or "none",
        }
        if meta.sub_array is not None:
            sub = meta.sub_array
            values["sensor sub-array"] = (
                f"x0={sub.x0} y0={sub.y0} width={sub.width} height={sub.height}"
            )
        if meta.binning is not None:
            values["binning"] = str(meta.binning)
        if meta.stored_pixels is not None:
            stored = meta.stored_pixels
            values["overwritten pixels"] = (
                f"{stored.count} at row {stored.row}, column {stored.column}; "
                + ("restored" if stored.available else "values lost, as stored")
            )
        return values


def _write_tiff(plan: _Plan, target: Path, progress: Callable[[int], Any]) -> None:
    tifffile = _require("tifffile", plan.fmt)
    nbytes = plan.frame_bytes * len(plan.indices)
    bigtiff = plan.fmt.bigtiff or nbytes > _CLASSIC_TIFF_LIMIT
    block = max(1, BLOCK_BYTES // max(plan.frame_bytes, 1))
    meta = plan.source.metadata
    metadata: dict[str, Any] = {"axes": "TYX"}
    if plan.fmt.ome:
        metadata["Name"] = Path(plan.name).stem
        metadata["Description"] = (
            f"Converted by dcimg {__version__} from {plan.name}; pixels "
            "overwritten by the camera are restored."
        )
        if meta.first_timestamp:
            metadata["AcquisitionDate"] = meta.first_timestamp
        if meta.frame_interval_s:
            step = abs(plan.indices.step)
            metadata["TimeIncrement"] = meta.frame_interval_s * step
            metadata["TimeIncrementUnit"] = "s"
        delta = plan.delta_t()
        if delta is not None:
            metadata["Plane"] = {"DeltaT": delta, "DeltaTUnit": ["s"] * len(delta)}
        metadata["MapAnnotation"] = plan.annotations()
    else:
        metadata["dcimg"] = plan.summary(per_frame=False)

    def pages() -> Iterator[np.ndarray]:
        for _, pixels in plan.blocks(block, progress):
            yield from pixels

    with tifffile.TiffWriter(target, bigtiff=bigtiff, ome=plan.fmt.ome) as writer:
        writer.write(
            pages(),
            shape=plan.shape,
            dtype=plan.dtype,
            photometric="minisblack",
            metadata=metadata,
        )


def _zarr_major(zarr: Any) -> int:
    try:
        return int(str(zarr.__version__).split(".")[0])
    except ValueError:
        return 3


def _write_zarr(plan: _Plan, target: Path, progress: Callable[[int], Any]) -> None:
    zarr = _require("zarr", plan.fmt)
    v3 = _zarr_major(zarr) >= 3
    frames, height, width = plan.shape
    chunk = max(1, min(frames, CHUNK_BYTES // max(plan.frame_bytes, 1)))
    # Blocks hold whole chunks, so every chunk is written exactly once.
    block = chunk * max(1, BLOCK_BYTES // max(chunk * plan.frame_bytes, 1))
    geometry = {
        "shape": plan.shape,
        "chunks": (chunk, height, width),
        "dtype": plan.dtype,
    }
    if plan.fmt.ome:
        # OME-NGFF 0.4 (Zarr format 2): read by every OME-Zarr viewer and by
        # zarr-python 2 and 3 alike.
        group_args = {"zarr_format": 2} if v3 else {}
        group = zarr.open_group(str(target), mode="w", **group_args)
        create = getattr(group, "create_array", None) or group.create_dataset
        array = create("0", **geometry)
        interval = plan.source.metadata.frame_interval_s
        t_axis: dict[str, Any] = {"name": "t", "type": "time"}
        t_scale = 1.0
        if interval:
            t_axis["unit"] = "second"
            t_scale = interval * abs(plan.indices.step)
        group.attrs.update(
            {
                "multiscales": [
                    {
                        "version": "0.4",
                        "name": Path(plan.name).stem,
                        "axes": [
                            t_axis,
                            {"name": "y", "type": "space"},
                            {"name": "x", "type": "space"},
                        ],
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [
                                    {"type": "scale", "scale": [t_scale, 1.0, 1.0]}
                                ],
                            }
                        ],
                        "type": "none",
                    }
                ],
                "dcimg": plan.summary(per_frame=True),
            }
        )
    else:
        array = zarr.create(store=str(target), overwrite=True, **geometry)
        array.attrs.update({"dcimg": plan.summary(per_frame=True)})
    for position, pixels in plan.blocks(block, progress):
        array[position : position + len(pixels)] = pixels


@contextlib.contextmanager
def _staging(out: Path, overwrite: bool) -> Iterator[Path]:
    """Give a temporary path beside ``out``; move it into place on success.

    Whatever happens inside (an error, ``KeyboardInterrupt``), the temporary
    folder is removed; ``out`` is only touched once the new output is whole.
    """
    folder = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    )
    try:
        target = folder / out.name
        yield target
        if os.path.lexists(out):
            if not overwrite:
                raise ConversionError(f"{out} appeared during the conversion")
            # Move the old output into the folder that is removed below.
            os.replace(out, folder / "previous")
        os.replace(target, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def convert(
    source: DCIMGFile | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frames: slice | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write the corrected frames of a DCIMG file to TIFF or Zarr.

    The format follows the name of ``out``: ``.tif``/``.tiff`` (TIFF, switched
    to BigTIFF when larger than 4 GiB), ``.btf``/``.tf8`` (BigTIFF),
    ``.ome.tif``/``.ome.tiff`` (OME-TIFF), ``.zarr`` (one Zarr array) or
    ``.ome.zarr`` (OME-Zarr 0.4). Frames are read and written in blocks of at
    most 64 MiB; Zarr chunks hold whole frames.

    Parameters
    ----------
    source : DCIMGFile or str or os.PathLike
        An open file, or the path of one.
    out : str or os.PathLike
        Destination file (TIFF) or folder (Zarr).
    frames : slice, optional
        Frames to convert (any start, stop and step); default all.
    dtype : numpy dtype, optional
        Pixel type of the output; default the file's. It must hold every
        value of the file's type (those ``dcimg convert --help`` lists).
    overwrite : bool, default False
        Replace ``out`` if it exists (only once the new output is complete).
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
        ``overwrite``, an empty frame selection or an unsuitable ``dtype``.
    MissingDependencyError
        When tifffile (TIFF) or zarr (Zarr) is not installed.
    OSError
        When the output cannot be written; nothing is left behind.

    Examples
    --------
    >>> import tempfile
    >>> import tifffile
    >>> import dcimg
    >>> from dcimg.testing import write_example
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_example(f"{folder}/example.dcimg")
    ...     out = dcimg.convert(path, f"{folder}/stack.ome.tif", frames=slice(0, 10))
    ...     print(out.name, tifffile.imread(out).shape)
    stack.ome.tif (10, 64, 80)
    """
    out = Path(out)
    fmt = output_format(out)
    if isinstance(source, DCIMGFile):
        return _convert(source, out, fmt, frames, dtype, overwrite, progress)
    with DCIMGFile(source) as opened:
        return _convert(opened, out, fmt, frames, dtype, overwrite, progress)


def _convert(
    source: DCIMGFile,
    out: Path,
    fmt: OutputFormat,
    frames: slice | None,
    dtype: Any,
    overwrite: bool,
    progress: bool | None,
) -> Path:
    target_dtype = _check_dtype(source.dtype, dtype)
    indices = range(source.nfrms)[frames if frames is not None else slice(None)]
    if len(indices) == 0:
        raise ConversionError(
            f"the frame selection selects none of the {source.nfrms} frames"
        )
    if not out.parent.is_dir():
        raise ConversionError(f"the folder {str(out.parent)!r} does not exist")
    if os.path.lexists(out):
        if not overwrite:
            raise ConversionError(f"{str(out)!r} exists; add --overwrite to replace it")
        if source.file_path and os.path.exists(source.file_path):
            if os.path.samefile(out, source.file_path):
                raise ConversionError("the output would replace the input file")
    writer = _write_tiff if fmt.container == "tiff" else _write_zarr
    # Fail early, before any output exists, when the writer is missing.
    _require("tifffile" if fmt.container == "tiff" else "zarr", fmt)
    name = Path(source.file_path or "dcimg").name
    plan = _Plan(source, indices, target_dtype, fmt, name)
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    with _progress_bar(len(indices), out.name, progress) as bar:
        update = bar.update if bar is not None else _ignore
        with _staging(out, overwrite) as target:
            writer(plan, target, update)
    return out


def _ignore(_: int) -> None:
    return None
