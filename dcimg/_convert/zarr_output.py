"""Zarr and OME-Zarr output, through zarr-python 3.

``.ome.zarr`` is OME-NGFF 0.5 on Zarr format 3 by default (``ngff="0.4"``:
NGFF 0.4 on Zarr format 2, for older tools); plain ``.zarr`` is one Zarr
array, format 3 unless ``zarr_format=2``. Format 3 arrays are sharded: chunks
of whole frames (or the ``chunks`` given) gathered into shards of about
:data:`SHARD_BYTES`, so that an acquisition of 20 GiB is some 40 objects per
resolution level, not thousands -- what object stores (S3, GCS, Azure) and
file systems holding millions of files want.

The converter writes one region -- whole shards (format 3) or whole chunks
(format 2) along the frames' axes, whole frames in Y and X -- at a time, so
zarr-python never reads a shard back to change part of it, and memory holds
one region (and its pyramid levels) at most. zarr-python compresses the
chunks of a region concurrently on its thread pool.

zarr-python writes from its own event-loop thread. The store the arrays are
written through, :class:`_StagedStore`, counts the writes under way and,
once the conversion stops for any reason, refuses new ones and waits for
those under way: nothing can still be writing when the temporary folder is
removed.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcimg._convert import options
from dcimg._convert.options import _NGFF_TYPES, _require
from dcimg._convert.plan import _array_axes, _BlockPool, _Plan, read_ahead
from dcimg._convert.pyramid import _levels_of
from dcimg._version import __version__
from dcimg.errors import MissingDependencyError

#: Target size of one Zarr chunk along the frames; chunks hold whole frames
#: unless ``chunks`` says otherwise.
CHUNK_BYTES = 8 << 20
#: Target size (uncompressed) of one shard of a Zarr format 3 array: 512 MiB,
#: at most 40 objects per resolution level for 20 GiB, each large enough for
#: object storage to move at full speed and small enough to hold in memory.
SHARD_BYTES = 512 << 20


def _zarr(what: str) -> Any:
    """Import zarr-python 3 (MissingDependencyError for none or an older one)."""
    zarr = _require("zarr", what)
    if int(str(zarr.__version__).split(".")[0]) < 3:
        raise MissingDependencyError(
            f"writing {what} needs zarr-python 3 (found {zarr.__version__}); "
            "install it with pip install 'dcimg[convert]' (Python 3.11 or later)",
            "zarr",
        )
    return zarr


def _zarr_format(plan: _Plan) -> int:
    """Return the Zarr format written: 2 for NGFF 0.4 or when asked, else 3."""
    return plan.options.zarr_version(plan.fmt)


def _zarr_codec(plan: _Plan) -> Any:
    """Return the compressor of the output (None: raw), checking packages."""
    name = plan.options.compression or "blosc-zstd"
    if _zarr_format(plan) == 3:
        codecs = _zarr(plan.fmt.name).codecs
        if name == "none":
            return None
        if name == "blosc-zstd":
            # Byte shuffling suits 16-bit camera pixels; bits, 8-bit ones.
            shuffle = "bitshuffle" if plan.dtype.itemsize == 1 else "shuffle"
            return codecs.BloscCodec(cname="zstd", clevel=5, shuffle=shuffle)
        if name == "zstd":
            return codecs.ZstdCodec(level=5)
        return codecs.GzipCodec(level=5)
    _zarr(plan.fmt.name)
    if name == "none":
        return None
    numcodecs = _require("numcodecs", plan.fmt.name)
    if name == "blosc-zstd":
        shuffle = (
            numcodecs.Blosc.BITSHUFFLE
            if plan.dtype.itemsize == 1
            else numcodecs.Blosc.SHUFFLE
        )
        return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=shuffle)
    if name == "zstd":
        return numcodecs.Zstd(level=5)
    return numcodecs.GZip(level=5)


def _staged_store(zarr: Any, root: Path) -> Any:
    """Return a :class:`_StagedStore` (a zarr-python ``LocalStore``) at ``root``."""

    class _StagedStore(zarr.storage.LocalStore):  # type: ignore[misc]
        """A local store that can stop writing and wait for its writes.

        zarr-python writes from its event-loop thread, several keys at once;
        when one write fails, the others of the same call go on. After
        :meth:`settle`, no write starts and none is under way.
        """

        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self._lock = threading.Lock()
            self._busy = 0
            self._stopped = False

        async def set(self, key: str, value: Any) -> None:
            with self._lock:
                if self._stopped:
                    raise RuntimeError(
                        "the conversion stopped; nothing more is written"
                    )
                self._busy += 1
            try:
                await super().set(key, value)
            except BaseException:
                with self._lock:
                    self._stopped = True  # the rest of the call is not written
                raise
            finally:
                with self._lock:
                    self._busy -= 1

        def settle(self) -> None:
            """Refuse new writes; wait for those under way to end."""
            with self._lock:
                self._stopped = True
            while True:
                with self._lock:
                    if not self._busy:
                        return
                time.sleep(0.001)

    return _StagedStore(root)


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


def _zarr_shards(
    plan: _Plan, lead: tuple[int, ...], chunks: tuple[int, ...]
) -> tuple[int, ...]:
    """Shard shape of the full-size array: whole chunks, about SHARD_BYTES.

    A shard holds whole frames (Y and X rounded up to whole chunks) and
    grows along the source's axes from the innermost out -- the order the
    frames are read in -- each taken whole before the next one grows.
    """
    array_axes = _array_axes(plan)
    height = math.ceil(plan.height / chunks[-2]) * chunks[-2]
    width = math.ceil(plan.width / chunks[-1]) * chunks[-1]
    shard = [*chunks[:-2], height, width]
    target = plan.options.shard_bytes or SHARD_BYTES
    budget = max(1, target // max(math.prod(shard) * plan.dtype.itemsize, 1))
    for axis in reversed(plan.axes):
        position = array_axes.index(axis)
        count = math.ceil(lead[position] / chunks[position])
        take = min(count, budget)
        shard[position] = chunks[position] * take
        budget //= take
        if take < count or budget < 2:
            break
    return tuple(shard)


def _dimension_names(plan: _Plan) -> list[str]:
    return [axis.lower() for axis in _array_axes(plan)] + ["y", "x"]


def _write_zarr(plan: _Plan, target: Path, progress: Callable[[int], Any]) -> None:
    zarr = _zarr(plan.fmt.name)
    version = _zarr_format(plan)
    codec = _zarr_codec(plan)
    array_axes = _array_axes(plan)
    # Where each array axis sits among the source's axes.
    order = [plan.axes.index(axis) for axis in array_axes]
    lead = tuple(plan.lead_shape[i] for i in order)
    chunks = _zarr_chunks(plan, lead)
    shards = _zarr_shards(plan, lead, chunks) if version == 3 else None
    # What one write covers along the leading axes: whole shards (format 3)
    # or whole chunks (format 2), never part of one.
    step = (shards or chunks)[:-2]
    levels = plan.levels
    store = _staged_store(zarr, target)
    try:
        if plan.fmt.ome:
            root = zarr.create_group(store, zarr_format=version)
        arrays = []
        for level, (height, width) in enumerate(levels):
            level_chunks = (
                *chunks[:-2],
                min(chunks[-2], height),
                min(chunks[-1], width),
            )
            options: dict[str, Any] = {
                "shape": lead + (height, width),
                "chunks": level_chunks,
                "dtype": plan.dtype,
                "compressors": codec,
                "fill_value": 0,
                # Every chunk is written, all-zero ones too: leaving them out
                # makes zarr-python compare each chunk with the fill value
                # first, which took four fifths of an uncompressed write
                # (5.3 s, not 1.0 s, for 1 GiB), and an archive is whole.
                "config": {"write_empty_chunks": True},
            }
            if version == 3:
                assert shards is not None
                options["shards"] = (
                    *shards[:-2],
                    math.ceil(height / level_chunks[-2]) * level_chunks[-2],
                    math.ceil(width / level_chunks[-1]) * level_chunks[-1],
                )
                options["dimension_names"] = _dimension_names(plan)
            else:
                # NGFF 0.4 asks for "/" between the chunk indices.
                options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
                options["filters"] = None
            if plan.fmt.ome:
                arrays.append(root.create_array(str(level), **options))
            else:
                arrays.append(zarr.create_array(store, zarr_format=version, **options))
        low = np.full(_channel_count(plan), np.inf)
        high = np.full(_channel_count(plan), -np.inf)
        regions = _regions(plan, order, lead, step, progress)
        for start, region in read_ahead(regions):
            _track_range(plan, region, array_axes, start, low, high)
            for array, pixels in zip(
                arrays, _levels_of(region, len(levels) - 1), strict=True
            ):
                where = tuple(
                    slice(s, s + n) for s, n in zip(start, pixels.shape, strict=False)
                )
                array[where] = pixels
            # Let go of the region before the next one is asked for: the
            # read after it can then reuse its memory (see _BlockPool).
            del region, pixels
            plan.interrupt.check()
        summary = plan.summary()
        summary.update(plan.per_frame())
        if not plan.fmt.ome:
            arrays[0].attrs.update({"dcimg": summary})
        elif version == 2:
            root.attrs.update(
                {
                    "multiscales": [_multiscale(plan, array_axes, "0.4")],
                    "omero": _omero(plan, low, high),
                    "dcimg": summary,
                }
            )
        else:
            root.attrs.update(
                {
                    "ome": {
                        "version": "0.5",
                        "multiscales": [_multiscale(plan, array_axes, "0.5")],
                        "omero": _omero(plan, low, high),
                    },
                    "dcimg": summary,
                }
            )
    finally:
        # Whatever stopped the conversion, nothing writes once this returns.
        store.settle()


def _regions(
    plan: _Plan,
    order: list[int],
    lead: tuple[int, ...],
    step: tuple[int, ...],
    progress: Callable[[int], Any],
) -> Any:
    """Yield ``(start, pixels)`` of every region, in array axis order."""
    inner = len(plan.axes) - 1
    frames_per_cell = plan.frames.count
    split = plan.split_shape
    grid_ndim = len(plan.grid_shape)
    region_grid = [range(0, n, c) for n, c in zip(lead, step, strict=True)]
    pool = _BlockPool()
    for start in itertools.product(*region_grid):
        plan.interrupt.check()
        stop = [min(s + c, n) for s, c, n in zip(start, step, lead, strict=True)]
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
        buffer = pool.take((*shape, plan.height, plan.width), plan.dtype)
        # Blocks of at most BLOCK_BYTES per read, straight into the region;
        # a signal stops the conversion between them.
        block = max(1, options.BLOCK_BYTES // max(plan.frame_bytes, 1))
        for index in itertools.product(*outer):
            cell = tuple(index[:grid_ndim])
            place = tuple(i - lo for i, lo in zip(index, src_lo, strict=False))
            for at in range(src_lo[inner], src_hi[inner], block):
                plan.interrupt.check()
                count = min(block, src_hi[inner] - at)
                first = int(np.ravel_multi_index((*index[grid_ndim:], at), split))
                assert first + count <= frames_per_cell
                offset = at - src_lo[inner]
                plan.read_run(
                    cell, first, count, out=buffer[place][offset : offset + count]
                )
                progress(count)
        yield start, np.transpose(buffer, (*order, len(order), len(order) + 1))
        del buffer  # not held while the next region's memory is taken


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


def _multiscale(plan: _Plan, array_axes: str, version: str) -> dict[str, Any]:
    """Return the NGFF ``multiscales`` entry: axes, units, scales.

    The same for 0.4 and 0.5, but that 0.5 gives the version once, in the
    ``ome`` attribute that holds the entry.
    """
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
    versioned = {"version": version} if version == "0.4" else {}
    return {
        **versioned,
        "name": Path(plan.name).stem,
        "axes": axes,
        "datasets": datasets,
        "type": "mean" if plan.options.pyramid else "none",
        "metadata": {
            "description": "2 x 2 mean in Y and X per level",
            "method": "dcimg._convert.pyramid._halve",
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
