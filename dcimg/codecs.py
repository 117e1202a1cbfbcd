"""Zarr codecs that turn a DCIMG file's stored bytes into corrected frames.

A reference file written by :func:`dcimg.write_references` points every Zarr
chunk at a byte range of the original DCIMG file: a block of whole frames,
with their row padding and (framed files) the trailer after each frame. The
codec defined here turns those bytes into the frames :func:`dcimg.imread`
returns -- padding dropped, the camera-overwritten pixels restored (or zeroed,
or left, as the reference file was written) -- with no DCIMG reader involved:
it needs only NumPy and the numbers in the array's metadata.

- :class:`DCIMGFramesCodec`, the Zarr v3 array-to-bytes codec
  ``"dcimg_frames"`` (entry point group ``zarr.codecs``);
- :class:`DCIMGFramesNumcodec`, the same for Zarr v2 (``numcodecs.codecs``).

Both are registered by entry points of the installed package, so
``zarr.open_group("reference://...")`` finds them without ``import dcimg``.
See :doc:`/zarr` for the design, in particular how a packed file's stored
pixels (kept in its footer, away from the frames) reach the codec.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np
from numcodecs.abc import Codec as _NumcodecsCodec  # type: ignore[import-untyped]
from numcodecs.compat import ndarray_copy  # type: ignore[import-untyped]
from zarr.abc.codec import ArrayBytesCodec

from dcimg._frame_blocks import CODEC_NAME, FrameBlocks, field_error

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["CODEC_NAME", "DCIMGFramesCodec", "DCIMGFramesNumcodec", "FrameBlocks"]


class DCIMGFramesCodec(ArrayBytesCodec):
    """Zarr v3 array-to-bytes codec ``"dcimg_frames"``: DCIMG bytes to frames.

    Decoding only (the store is the original file, read-only).

    Parameters
    ----------
    configuration : dict
        The settings of :class:`FrameBlocks`, as written by
        :func:`dcimg.write_references`.
    """

    is_fixed_size = False

    def __init__(self, **configuration: Any) -> None:
        object.__setattr__(self, "blocks", FrameBlocks.from_config(configuration))

    blocks: FrameBlocks

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DCIMGFramesCodec) and other.blocks == self.blocks

    def __hash__(self) -> int:
        return hash(self.blocks)

    def __repr__(self) -> str:
        b = self.blocks
        return (
            f"DCIMGFramesCodec(frames={b.frames}, chunk_frames={b.chunk_frames}, "
            f"correction={b.correction!r})"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build the codec from its Zarr v3 metadata ``{"name", "configuration"}``."""
        if data.get("name") != CODEC_NAME:
            raise field_error("name", data.get("name"), f"is not {CODEC_NAME!r}")
        configuration = data.get("configuration")
        if not isinstance(configuration, dict):
            raise field_error("configuration", configuration, "must be an object")
        return cls(**configuration)

    def to_dict(self) -> dict[str, Any]:
        """Return the codec's Zarr v3 metadata."""
        return {"name": CODEC_NAME, "configuration": self.blocks.to_config()}

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        dtype = chunk_spec.dtype.to_native_dtype()
        frames = self.blocks.decode(chunk_bytes.as_numpy_array(), dtype)
        if frames.shape[-3:] != tuple(chunk_spec.shape[-3:]) or any(
            n != 1 for n in chunk_spec.shape[:-3]
        ):
            raise field_error(
                "chunk_frames",
                self.blocks.chunk_frames,
                f"and the frame size give chunks of {frames.shape}, but the "
                f"array's chunks are {tuple(chunk_spec.shape)}",
            )
        shaped: Any = frames.reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(shaped)

    async def _decode_single(
        self, chunk_bytes: Buffer, chunk_spec: ArraySpec
    ) -> NDBuffer:
        # Off the event loop: the copy releases the GIL, so chunks decode
        # in parallel and while other chunks' bytes arrive.
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(
        self, chunk_array: NDBuffer, chunk_spec: ArraySpec
    ) -> Buffer | None:
        raise NotImplementedError(
            f"the {CODEC_NAME} codec only decodes: the array is a view of a "
            "DCIMG file, which is never written"
        )

    def compute_encoded_size(
        self, input_byte_length: int, chunk_spec: ArraySpec
    ) -> int:
        """Not known in advance (the codec only decodes)."""
        raise NotImplementedError(f"the {CODEC_NAME} codec only decodes")


class DCIMGFramesNumcodec(_NumcodecsCodec):  # type: ignore[misc]
    """The same decoding for Zarr v2 (numcodecs id ``"dcimg_frames"``).

    Used as the array's ``compressor``: it turns a chunk's DCIMG bytes into
    the C-ordered pixels of ``(chunk_frames, height, width)``.

    Parameters
    ----------
    **configuration
        The settings of :class:`FrameBlocks`, plus ``dtype`` (``"<u2"`` or
        ``"|u1"``).
    """

    codec_id = CODEC_NAME

    def __init__(self, dtype: str = "<u2", **configuration: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.blocks = FrameBlocks.from_config(configuration)

    def get_config(self) -> dict[str, Any]:
        """Return the codec's numcodecs configuration (with its ``id``)."""
        return {"id": CODEC_NAME, "dtype": self.dtype.str, **self.blocks.to_config()}

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode one chunk's bytes into its pixels (into ``out`` if given)."""
        frames = self.blocks.decode(memoryview(buf).cast("B"), self.dtype)
        return ndarray_copy(frames, out)

    def encode(self, buf: Any) -> Any:
        """Refuse: the codec only decodes."""
        raise NotImplementedError(f"the {CODEC_NAME} codec only decodes")
