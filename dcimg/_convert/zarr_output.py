"""Zarr and OME-Zarr output."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcimg._convert.options import _NGFF_TYPES, _require
from dcimg._convert.plan import _array_axes, _Plan
from dcimg._convert.pyramid import _levels_of
from dcimg._version import __version__

# --------------------------------------------------------------------------
# Zarr and OME-Zarr (format 2), written chunk by chunk


#: Target size of one Zarr chunk along the frames; chunks hold whole frames
#: unless ``chunks`` says otherwise.
CHUNK_BYTES = 8 << 20


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
