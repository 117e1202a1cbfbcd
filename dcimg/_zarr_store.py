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

from dcimg._zarr_metadata import (
    IMAGE,
    array_metadata,
    coordinate_arrays,
    frame_interval,
    frames_per_chunk,
    group_attributes,
    little_endian_bytes,
)

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

    from dcimg._stack import Stack

__all__ = ["StackStore", "open_store"]


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
