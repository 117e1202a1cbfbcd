"""A read-only zarr-python 3 store over any :class:`dcimg.Stack`.

:class:`StackStore` presents a DCIMG file or series as a Zarr v3 hierarchy
without converting it: a group whose ``zarr.json`` carries OME-NGFF 0.5
``multiscales`` metadata, the image array ``0`` (chunks of whole frames),
and small coordinate arrays for the frames' time stamps and counters. Chunk
bytes are made on request by the stack's own :meth:`~dcimg.Stack.read` (the
same kernels, correction and range reader as every other read), so a URL is
read through the same requests as ``f[...]``.

The module knows nothing of files or series: it takes anything that
implements the :class:`~dcimg.Stack` protocol.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.store import (
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)

from dcimg._dask import AUTO_CHUNK_BYTES

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

    from dcimg._stack import Stack

__all__ = ["StackStore", "frames_per_chunk", "open_store"]

#: Name of the image array inside the group (the NGFF dataset path).
IMAGE = "0"
#: Dtype code of each pixel type, in Zarr v3 metadata.
_ZARR_DTYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}
#: CF encoding of the time stamps (xarray decodes it to datetime64).
TIME_UNITS = "microseconds since 1970-01-01T00:00:00"
#: Int64 value of NaT: a frame without a time stamp.
_NAT = int(np.iinfo(np.int64).min)


def frames_per_chunk(
    chunks: int | str, frame_bytes: int, frames: int, auto_bytes: int = AUTO_CHUNK_BYTES
) -> int:
    """How many whole frames one chunk holds.

    Parameters
    ----------
    chunks : int or "auto"
        ``"auto"``: as many frames as fit :data:`dcimg._dask.AUTO_CHUNK_BYTES`
        (16 MiB; at least one), the rule of ``as_dask_array(chunks="auto")``;
        a positive int: that many frames; -1: all frames in one chunk.
    frame_bytes : int
        Bytes of one frame.
    frames : int
        Frames along the frame axis.
    auto_bytes : int, optional
        The byte limit of ``"auto"``; default that of ``as_dask_array``.

    Returns
    -------
    int
        At least 1 (a chunk must have a size even when there are no frames).

    Raises
    ------
    ValueError
        If ``chunks`` is neither ``"auto"``, -1 nor a positive int.
    """
    if isinstance(chunks, str):
        if chunks != "auto":
            raise ValueError(f'chunks must be "auto" or a frame count, got {chunks!r}')
        return max(1, min(frames, auto_bytes // max(frame_bytes, 1)))
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)):
        raise ValueError(f'chunks must be "auto" or a frame count, got {chunks!r}')
    if chunks == -1:
        return max(1, frames)
    if chunks < 1:
        raise ValueError(f"chunks must be a positive frame count or -1, got {chunks}")
    return int(chunks)


def ngff_axes(axes: str) -> list[dict[str, str]]:
    """OME-NGFF ``axes`` for ``(*axes, t, y, x)``.

    The grid axes of a series get the NGFF type their letter names (``c``
    channel, ``z`` space, ``t`` time) and no type otherwise.
    """
    kinds = {"c": "channel", "z": "space", "t": "time"}
    described: list[dict[str, str]] = []
    for letter in axes:
        axis = {"name": letter}
        if letter in kinds:
            axis["type"] = kinds[letter]
        described.append(axis)
    described.append({"name": "t", "type": "time", "unit": "second"})
    described.append({"name": "y", "type": "space"})
    described.append({"name": "x", "type": "space"})
    return described


def frame_interval(stamps: np.ndarray) -> float:
    """Median interval between frames in seconds (1.0 when unknown)."""
    if stamps.ndim < 1 or stamps.shape[-1] < 2:
        return 1.0
    steps = np.diff(stamps.astype("datetime64[us]").astype(np.int64), axis=-1)
    valid = steps[(steps > 0) & (np.abs(steps) < 1 << 62)]
    return float(np.median(valid)) / 1e6 if valid.size else 1.0


def array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunk_shape: tuple[int, ...],
    dimension_names: list[str],
    codecs: list[dict[str, Any]],
    attributes: dict[str, Any] | None = None,
    fill_value: int = 0,
) -> dict[str, Any]:
    """Return the ``zarr.json`` document of a Zarr v3 array."""
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": _ZARR_DTYPES.get(dtype, dtype.name),
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": list(chunk_shape)},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value,
        "codecs": codecs,
        "attributes": attributes or {},
        "dimension_names": dimension_names,
        "storage_transformers": [],
    }


def little_endian_bytes(dtype: np.dtype[Any]) -> list[dict[str, Any]]:
    """Return the plain ``bytes`` codec (little-endian for multi-byte types)."""
    if dtype.itemsize == 1:
        return [{"name": "bytes"}]
    return [{"name": "bytes", "configuration": {"endian": "little"}}]


def coordinate_arrays(
    axes: str,
    timestamps: np.ndarray,
    framestamps: np.ndarray,
    frame_shape: tuple[int, ...],
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Return the time-stamp and frame-counter arrays: (metadata, values).

    One file gets ``t`` (the frames' dimension coordinate, so xarray indexes
    by time) and ``framestamp``; a series gets ``timestamp`` and
    ``framestamp`` over its grid axes and ``t``. Stamps a file lacks are
    left out.
    """
    dims = [*axes, "t"]
    found: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    if timestamps.shape == frame_shape:
        values = timestamps.astype("datetime64[us]").view(np.int64)
        name = "t" if len(dims) == 1 else "timestamp"
        attributes = {"units": TIME_UNITS, "calendar": "proleptic_gregorian"}
        found[name] = (
            array_metadata(
                values.shape,
                np.dtype(np.int64),
                tuple(max(1, n) for n in values.shape),
                dims,
                little_endian_bytes(np.dtype(np.int64)),
                attributes,
                fill_value=_NAT,
            ),
            np.ascontiguousarray(values, dtype="<i8"),
        )
    if framestamps.shape == frame_shape:
        counters = np.ascontiguousarray(framestamps, dtype="<u4")
        found["framestamp"] = (
            array_metadata(
                counters.shape,
                np.dtype(np.uint32),
                tuple(max(1, n) for n in counters.shape),
                dims,
                little_endian_bytes(np.dtype(np.uint32)),
            ),
            counters,
        )
    return found


def group_attributes(
    axes: str, name: str, interval: float, ndim: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """Return the group's attributes: OME-NGFF 0.5 ``multiscales``, ``dcimg``."""
    scale = [1.0] * ndim
    scale[-3] = interval
    return {
        "ome": {
            "version": "0.5",
            "multiscales": [
                {
                    "name": name,
                    "axes": ngff_axes(axes),
                    "datasets": [
                        {
                            "path": IMAGE,
                            "coordinateTransformations": [
                                {"type": "scale", "scale": scale}
                            ],
                        }
                    ],
                }
            ],
        },
        "dcimg": extra,
    }


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, default=str).encode()


def _select(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """Return the part of ``data`` a zarr byte request asks for."""
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte request {byte_range!r}")


class StackStore(Store):
    """A read-only Zarr v3 store whose chunks are frames of a stack."""

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self, stack: Stack, chunk_frames: int, group: bool, name: str = ""
    ) -> None:
        super().__init__(read_only=True)
        self._stack = stack
        self._group = group
        self._name = name
        self._chunk_frames = chunk_frames
        shape = stack.shape
        self._shape = shape
        self._chunk_shape = (*(1,) * (len(shape) - 3), chunk_frames, *shape[-2:])
        self._grid = tuple(
            math.ceil(n / c) for n, c in zip(shape, self._chunk_shape, strict=True)
        )
        self._documents: dict[str, bytes] = {}
        self._coordinates: dict[str, bytes] = {}
        self._build()

    def _build(self) -> None:
        stack = self._stack
        axes = stack.axes
        prefix = f"{IMAGE}/" if self._group else ""
        dims = [*axes, "t", "y", "x"]
        coordinates: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        if self._group:
            coordinates = coordinate_arrays(
                axes, stack.timestamps, stack.framestamps, self._shape[:-2]
            )
        attributes: dict[str, Any] = {
            "first_4px_correction_enabled": str(
                getattr(stack, "first_4px_correction_enabled", True)
            ),
        }
        if "framestamp" in coordinates or "timestamp" in coordinates:
            # CF: the other arrays along the frames are coordinates.
            attributes["coordinates"] = " ".join(
                n for n in ("timestamp", "framestamp") if n in coordinates
            )
        image = array_metadata(
            self._shape,
            stack.dtype,
            self._chunk_shape,
            dims,
            little_endian_bytes(stack.dtype),
            attributes,
        )
        self._documents[f"{prefix}zarr.json"] = _json_bytes(image)
        if not self._group:
            return
        metadata = stack.metadata.to_dict()
        group = {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": group_attributes(
                axes,
                self._name,
                frame_interval(stack.timestamps),
                len(self._shape),
                {"metadata": metadata, "token": stack.token},
            ),
        }
        self._documents["zarr.json"] = _json_bytes(group)
        for key, (document, values) in coordinates.items():
            self._documents[f"{key}/zarr.json"] = _json_bytes(document)
            chunk = "/".join(["c"] + ["0"] * max(1, values.ndim))
            self._coordinates[f"{key}/{chunk}"] = values.tobytes()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StackStore)
            and other._stack is self._stack
            and other._chunk_frames == self._chunk_frames
            and other._group == self._group
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StackStore({self._stack!r}, chunk frames={self._chunk_frames})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "stack": self._stack,
            "chunk_frames": self._chunk_frames,
            "group": self._group,
            "name": self._name,
            "documents": self._documents,
            "coordinates": self._coordinates,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Store.__init__(self, read_only=True)
        self._stack = state["stack"]
        self._group = state["group"]
        self._name = state["name"]
        self._chunk_frames = state["chunk_frames"]
        self._shape = self._stack.shape
        self._chunk_shape = (
            *(1,) * (len(self._shape) - 3),
            self._chunk_frames,
            *self._shape[-2:],
        )
        self._grid = tuple(
            math.ceil(n / c)
            for n, c in zip(self._shape, self._chunk_shape, strict=True)
        )
        self._documents = state["documents"]
        self._coordinates = state["coordinates"]

    def _chunk_index(self, key: str) -> tuple[int, ...] | None:
        """Return the chunk coordinates ``key`` names, or None."""
        prefix = f"{IMAGE}/c/" if self._group else "c/"
        if not key.startswith(prefix):
            return None
        parts = key[len(prefix) :].split("/")
        if len(parts) != len(self._grid):
            return None
        try:
            index = tuple(int(p) for p in parts)
        except ValueError:
            return None
        if any(str(i) != p for i, p in zip(index, parts, strict=True)):
            return None
        if all(0 <= i < n for i, n in zip(index, self._grid, strict=True)):
            return index
        return None

    def _chunk_bytes(self, index: tuple[int, ...]) -> bytes:
        """One chunk, whole frames, padded with zeros past the last."""
        *grid, block, _, _ = index
        first = block * self._chunk_frames
        last = min(first + self._chunk_frames, self._shape[-3])
        full = np.zeros(self._chunk_shape[-3:], dtype=self._stack.dtype)
        key = (*grid, slice(first, last))
        self._stack.read(key, out=full[: last - first], threads=1)
        return full.astype(full.dtype.newbyteorder("<"), copy=False).tobytes()

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        data = self._documents.get(key)
        if data is None:
            data = self._coordinates.get(key)
        if data is None:
            index = self._chunk_index(key)
            if index is None:
                return None
            # Reads block: off the event loop, so chunks read in parallel.
            data = await asyncio.to_thread(self._chunk_bytes, index)
        return prototype.buffer.from_bytes(_select(data, byte_range))

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(
            await asyncio.gather(
                *(self.get(key, prototype, part) for key, part in key_ranges)
            )
        )

    async def exists(self, key: str) -> bool:
        return (
            key in self._documents
            or key in self._coordinates
            or self._chunk_index(key) is not None
        )

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    def _keys(self) -> Iterable[str]:
        yield from self._documents
        yield from self._coordinates
        prefix = f"{IMAGE}/c/" if self._group else "c/"
        for index in np.ndindex(*self._grid):
            yield prefix + "/".join(str(int(i)) for i in index)

    async def list(self) -> AsyncIterator[str]:
        for key in self._keys():
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in self._keys():
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        start = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        for key in self._keys():
            if key.startswith(start):
                child = key[len(start) :].split("/", 1)[0]
                if child not in seen:
                    seen.add(child)
                    yield child


def open_store(
    stack: Stack, chunks: int | str = "auto", *, group: bool = True, name: str = ""
) -> StackStore:
    """Return a read-only :class:`zarr.abc.store.Store` over ``stack``.

    The implementation of :meth:`dcimg.DCIMGFile.aszarr` and
    :meth:`dcimg.DCIMGSeries.aszarr`, which document the parameters.
    """
    if stack.closed:
        raise ValueError(f"{stack!r} is closed; open it before aszarr()")
    frame_bytes = stack.shape[-1] * stack.shape[-2] * stack.dtype.itemsize
    chunk_frames = frames_per_chunk(chunks, frame_bytes, stack.shape[-3])
    return StackStore(stack, chunk_frames, group, name)
