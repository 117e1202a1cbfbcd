"""What a conversion writes: the source, the selected frames and their axes."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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


_Item = TypeVar("_Item")


class _BlockPool:
    """Arrays to read blocks into, each used again once nothing refers to it.

    A new array of tens of MiB costs a page fault per page the first time it
    is written; with a fresh array per block, the faults cost more than the
    read itself (1 GiB read in 64 MiB blocks: 0.10-0.37 s into new arrays,
    0.064 s into three reused ones, on this project's 2-core machine).

    :meth:`take` returns a view of a pooled array, so every array or
    memoryview a consumer still holds of a block refers to that array; an
    array is handed out again only when the pool's reference is its only
    one. A consumer that keeps blocks (tifffile holding strips to compress
    them together, say) never sees them overwritten: the pool makes new
    arrays instead, and keeps at most ``keep`` of them.
    """

    def __init__(self, keep: int = 3) -> None:
        self._arrays: list[np.ndarray] = []
        self._keep = keep
        # What sys.getrefcount reports for an array only the pool refers to,
        # measured the way take() measures (the count depends on the
        # interpreter: 3.14 borrows references CPython <= 3.13 takes).
        probe = [np.empty(0, np.uint8)]
        self._alone = self._references(probe, 0)

    @staticmethod
    def _references(arrays: list[np.ndarray], i: int) -> int:
        return sys.getrefcount(arrays[i])

    def take(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """Return an uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        nbytes = math.prod(shape) * dtype.itemsize
        chosen = None
        # By index, with no name bound to the arrays: a loop variable (or
        # the tuple enumerate() keeps for reuse) would count as a holder.
        for i in range(len(self._arrays)):
            if (
                self._arrays[i].nbytes >= nbytes
                and self._references(self._arrays, i) <= self._alone
            ):
                chosen = self._arrays[i]
                break
        if chosen is None:
            chosen = np.empty(nbytes, np.uint8)
            if len(self._arrays) < self._keep:
                self._arrays.append(chosen)
        return chosen[:nbytes].view(dtype).reshape(shape)


def read_ahead(items: Iterator[_Item]) -> Iterator[_Item]:
    """Yield what ``items`` yields, making the next one while the caller works.

    Reading (``items`` runs on one other thread) overlaps writing: the
    caller compresses and writes block ``k`` while block ``k + 1`` is read,
    and memory holds two blocks. Whatever stops the caller, the read under
    way ends before this returns, and ``items`` is closed.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="dcimg-convert-read") as pool:
        try:
            pending = pool.submit(next, items, None)
            while True:
                item = pending.result()
                if item is None:
                    return
                pending = pool.submit(next, items, None)
                yield item
        finally:
            # The pool's exit waits for the read under way; then nothing
            # runs ``items`` and it can be closed here.
            pool.shutdown(wait=True)
            close = getattr(items, "close", None)
            if close is not None:
                close()


@dataclass(frozen=True)
class _Frames:
    """The frames a conversion reads, and where each one is in the source.

    Each file's frames ``selected``; when ``join`` names an axis of the
    source's grid (the frames' letter is that axis' letter: files of several
    time points along a ``T`` axis of files, say), the files along it are
    joined end to end into one frame axis -- file ``g``'s frame ``i`` is
    frame ``g * len(selected) + i`` -- and the grid loses that axis.
    """

    source: Stack
    selected: range
    join: int | None = None

    @property
    def source_grid(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.source.shape[:-3])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """The grid of the frames: the source's, without the joined axis."""
        grid = self.source_grid
        if self.join is None:
            return grid
        return grid[: self.join] + grid[self.join + 1 :]

    @property
    def count(self) -> int:
        """Frames per cell of :attr:`grid_shape`."""
        files = 1 if self.join is None else self.source_grid[self.join]
        return files * len(self.selected)

    def runs(
        self, cell: tuple[int, ...], start: int, count: int
    ) -> Iterator[tuple[Any, int]]:
        """Source keys of frames ``start`` to ``start + count`` of ``cell``.

        Yields ``(key, frames)``: an integer per grid axis of the source
        and a slice of one file's frames, with the number of frames.
        """
        per = len(self.selected)
        at = start
        while at < start + count:
            file, first = divmod(at, per)
            take = min(per - first, start + count - at)
            part = self.selected[first : first + take]
            stop = part.stop if part.stop >= 0 else None
            frames = slice(part.start, stop, part.step)
            where = (
                cell
                if self.join is None
                else (cell[: self.join] + (file,) + cell[self.join :])
            )
            yield ((*where, frames) if where else frames), take
            at += take

    def arrange(self, values: np.ndarray) -> np.ndarray:
        """Per-frame values of the source (``shape[:-2]``) in frame order."""
        values = values[..., np.asarray(self.selected)]
        if self.join is None:
            return values
        values = np.moveaxis(values, self.join, -2)
        return values.reshape(*values.shape[:-2], -1)


@dataclass
class _Plan:
    """What to write: the source, the selected frames and their layout.

    ``axes`` names the leading (non-YX) axes of the output in the source's
    order: the source's own leading axes, then the axes the frames are split
    into. Planes are numbered in that order (C order), which is the order of
    the TIFF pages.
    """

    source: Stack
    name: str
    fmt: OutputFormat
    options: _Options
    dtype: np.dtype
    frames: _Frames
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
        return self.frames.selected

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
        runs = list(self.frames.runs(cell, start, count))
        if out is None and len(runs) == 1:
            ((key, _),) = runs
            pixels = np.asarray(self.source.read(key, dtype=self.dtype))
            return pixels.reshape(count, self.height, self.width)
        if out is None:
            out = np.empty((count, self.height, self.width), self.dtype)
        at = 0
        for key, frames in runs:
            place = out[at : at + frames]
            if isinstance(self.source, Stack):
                self.source.read(key, dtype=self.dtype, out=place)
            else:
                pixels = np.asarray(self.source.read(key, dtype=self.dtype))
                place[...] = pixels.reshape(place.shape)
            at += frames
        return out

    def pages(
        self, progress: Callable[[int], Any], block_bytes: int | None = None
    ) -> Iterator[np.ndarray]:
        """Every plane in order, read in blocks of at most ``block_bytes``."""
        block = max(1, (block_bytes or options.BLOCK_BYTES) // max(self.frame_bytes, 1))
        frames = self.frames.count

        pool = _BlockPool()
        shape = (self.height, self.width)

        def blocks() -> Iterator[np.ndarray]:
            for cell in np.ndindex(*self.grid_shape):
                for start in range(0, frames, block):
                    self.interrupt.check()
                    count = min(block, frames - start)
                    out = pool.take((count, *shape), self.dtype)
                    yield self.read_run(tuple(cell), start, count, out=out)
                    del out  # not held while the next block's memory is taken

        for pixels in read_ahead(blocks()):
            yield from pixels
            progress(len(pixels))
            del pixels  # the block after next may then reuse its memory

    def _first_stamp(self) -> np.datetime64 | None:
        """Return the earliest time stamp of all the source's frames (µs).

        The frames not converted count too: times are relative to the start
        of the acquisition, whatever the selection.
        """
        stamps = np.asarray(self.source.timestamps).astype("datetime64[us]")
        valid = stamps[~np.isnat(stamps)]
        return valid.min() if valid.size else None

    def stamps_us(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Time stamps (µs, int64) of every plane in lead shape, and a mask."""
        stamps = np.asarray(self.source.timestamps)
        if stamps.size == 0 or stamps.shape != tuple(self.source.shape[:-2]):
            return None
        stamps = stamps.astype("datetime64[us]")
        valid = ~np.isnat(stamps)
        first = self._first_stamp()
        if not valid.any() or first is None:
            return None
        micro = stamps.view(np.int64)
        origin = int(first.astype(np.int64))
        micro = (self.frames.arrange(micro) - origin).reshape(self.lead_shape)
        valid = self.frames.arrange(valid).reshape(self.lead_shape)
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
        out: dict[str, Any] = {"timestamps_us": None, "framestamps": None}
        full = tuple(self.source.shape[:-2])
        if stamps.shape == full and stamps.size:
            micro = self.frames.arrange(stamps.astype("datetime64[us]"))
            values = micro.view(np.int64).reshape(-1)
            nat = np.isnat(micro).reshape(-1)
            out["timestamps_us"] = [
                None if bad else int(v) for v, bad in zip(values, nat, strict=True)
            ]
        counters = np.asarray(getattr(self.source, "framestamps", np.empty(0)))
        if counters.shape == full and counters.size:
            out["framestamps"] = self.frames.arrange(counters).reshape(-1).tolist()
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


def _make_plan(source: Stack, name: str, fmt: OutputFormat, options: _Options) -> _Plan:
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
    if len(chosen) == 0:
        raise ConversionError(
            f"the frame selection selects none of the {shape[-3]} frames"
        )
    free = [letter for letter in "CZT" if letter not in grid_axes]
    join = None
    if len(options.axes) == 1 and options.axes in grid_axes:
        if len(chosen) == 1 and free:
            # One frame per file (a series of single images): its axis is of
            # length 1, so give it a letter the grid does not use.
            options = dataclasses.replace(options, axes=free[0])
        elif len(chosen) == 1:
            # ... and when the grid uses C, T and Z, its last axis is read
            # as the frames (one from each file), in the grid's order.
            join = len(grid_axes) - 1
            options = dataclasses.replace(options, axes=grid_axes[-1])
        else:
            # The frames are more of what the grid's axis of that letter
            # counts (time points of a T x Z run of multi-frame files): the
            # files along it are joined end to end.
            join = grid_axes.index(options.axes)
    frames = _Frames(source, chosen, join)
    if join is not None:
        grid_axes = grid_axes[:join] + grid_axes[join + 1 :]
    grid_shape = frames.grid_shape
    axes = grid_axes + options.axes
    if len(set(axes)) != len(axes):
        rename = f"name their axis with --axes {free[0]}, or " if free else ""
        raise ConversionError(
            f"{name}: the source's axes {grid_axes!r} and the frames' axes "
            f"{options.axes!r} repeat a letter; {len(chosen)} of each file's "
            f"{shape[-3]} frames are selected: {rename}select one frame per "
            "file with --frames (e.g. --frames 0), or give the frames one "
            "letter of the series' to join them along that axis (--axes T)"
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
    split = _split_frames(frames.count, options)
    plan = _Plan(
        source=source,
        name=name,
        fmt=fmt,
        options=options,
        dtype=dtype,
        frames=frames,
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
