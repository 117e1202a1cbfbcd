"""What a conversion writes: the source, the selected frames and their axes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcimg._convert import options
from dcimg._convert.inputs import _Inputs
from dcimg._convert.options import (
    _NGFF_ORDER,
    OutputFormat,
    _check_dtype,
    _Options,
)
from dcimg._convert.staging import _Interrupt
from dcimg._ome import (
    OME_PIXEL_TYPES,
    OMEImage,
    camera_annotations,
)
from dcimg._stack import Stack
from dcimg._version import __version__
from dcimg.errors import (
    ConversionError,
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

    def read_run(
        self,
        cell: tuple[int, ...],
        start: int,
        count: int,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Read ``count`` selected frames of one grid cell from ``start``.

        With ``out`` (C-contiguous, ``(count, height, width)``), the frames
        are read into it.
        """
        part = self.indices[start : start + count]
        stop = part.stop if part.stop >= 0 else None
        frames = slice(part.start, stop, part.step)
        key: Any = (*cell, frames) if cell else frames
        if out is not None and isinstance(self.source, Stack):
            self.source.read(key, dtype=self.dtype, out=out)
            return out
        pixels = np.asarray(self.source.read(key, dtype=self.dtype))
        pixels = pixels.reshape(count, self.height, self.width)
        if out is not None:
            out[...] = pixels
            return out
        return pixels

    def pages(
        self, progress: Callable[[int], Any], block_bytes: int | None = None
    ) -> Iterator[np.ndarray]:
        """Every plane in order, read in blocks of at most ``block_bytes``."""
        block = max(1, (block_bytes or options.BLOCK_BYTES) // max(self.frame_bytes, 1))
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
