"""Corrected frames from the bytes of a block of frames in a DCIMG file.

:class:`FrameBlocks` holds the settings of the ``dcimg_frames`` codec
(:mod:`dcimg.codecs`) and decodes a chunk's bytes with NumPy alone: rows
without their padding, the camera-overwritten pixels restored, zeroed or
left. Needs neither zarr nor a DCIMG reader.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from dcimg.errors import DCIMGFormatError

__all__ = ["CODEC_NAME", "Correction", "FrameBlocks", "field_error"]

#: The codec's name in Zarr v3 metadata and its numcodecs id.
CODEC_NAME = "dcimg_frames"

Correction = Literal["restore", "zero", "none"]


def field_error(name: str, value: object, why: str) -> DCIMGFormatError:
    return DCIMGFormatError(
        f"{CODEC_NAME} codec: configuration {name}={value!r} {why}", field=name
    )


@dataclass(frozen=True)
class FrameBlocks:
    """Where the pixels lie in the bytes of one chunk: the codec's settings.

    A chunk is a block of ``chunk_frames`` consecutive frames (the last
    block: ``last_chunk_frames``), stored ``frame_stride`` bytes apart, each
    ``height`` rows of ``bytes_per_row`` bytes (``width`` pixels of
    ``byte_depth`` bytes, then padding).

    Parameters
    ----------
    byte_depth : int
        1 (uint8) or 2 (uint16, little-endian).
    height, width, bytes_per_row : int
        Rows, pixels per row, and bytes per row with its padding.
    frame_stride : int
        Bytes from one frame to the next (the image and, for framed files,
        its trailer).
    frames : int
        Frames in the array.
    chunk_frames : int
        Frames per chunk (every chunk but the last is full).
    last_chunk_bytes : int
        Exact length of the last chunk's byte range (a file ends where its
        last trailer, or the frame itself, ends). Any other length than a
        full chunk's or this is refused.
    correction : {"restore", "zero", "none"}
        What happens to the camera-overwritten pixels: their true values put
        back, set to 0, or left as stored (the file's ``0, max, 0, max``).
    stored_row, stored_column, stored_bytes : int
        The overwritten pixels: row, first column, and bytes (0: none).
    stored_offset : int
        Framed files: where each frame's true values are, in bytes from the
        frame's first byte (in its trailer). -1 for a packed file, whose
        values are in ``stored_table``.
    stored_frames : int
        Frames whose true values the file holds (all, or all but the last
        when the file was cut inside the last trailer: that frame is left as
        stored, as :class:`dcimg.DCIMGFile` does).
    stored_table : str
        Packed files with ``correction="restore"``: base64 of every frame's
        true values, ``stored_bytes`` each; then every chunk's byte range is
        longer than its frames by the chunk's index (see :doc:`/zarr`), which
        tells the codec which values are its own. Empty otherwise.
    """

    byte_depth: int
    height: int
    width: int
    bytes_per_row: int
    frame_stride: int
    frames: int
    chunk_frames: int
    last_chunk_bytes: int
    correction: Correction = "restore"
    stored_row: int = 0
    stored_column: int = 0
    stored_bytes: int = 0
    stored_offset: int = -1
    stored_frames: int = 0
    stored_table: str = ""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "int" and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                raise field_error(item.name, value, "must be an integer")
            if item.type == "str" and not isinstance(value, str):
                raise field_error(item.name, value, "must be a string")
        if self.byte_depth not in (1, 2):
            raise field_error("byte_depth", self.byte_depth, "must be 1 or 2")
        if min(self.height, self.width, self.chunk_frames) < 1 or self.frames < 0:
            raise field_error(
                "shape",
                (self.frames, self.height, self.width, self.chunk_frames),
                "must be positive",
            )
        if self.bytes_per_row < self.width * self.byte_depth:
            raise field_error(
                "bytes_per_row", self.bytes_per_row, "is shorter than a row of pixels"
            )
        if self.frame_stride < self.image_bytes:
            raise field_error(
                "frame_stride", self.frame_stride, "is shorter than an image"
            )
        if self.correction not in ("restore", "zero", "none"):
            raise field_error(
                "correction", self.correction, 'must be "restore", "zero" or "none"'
            )
        if self.stored_bytes:
            end = self.stored_column * self.byte_depth + self.stored_bytes
            if (
                not 0 <= self.stored_row < self.height
                or self.stored_column < 0
                or self.stored_bytes % self.byte_depth
                or end > self.width * self.byte_depth
            ):
                raise field_error(
                    "stored_bytes",
                    (self.stored_row, self.stored_column, self.stored_bytes),
                    "lie outside the image",
                )
            if self.stored_offset >= 0 and (
                self.stored_offset + self.stored_bytes > self.frame_stride
            ):
                raise field_error(
                    "stored_offset", self.stored_offset, "lies past the frame"
                )
            if self.restores_from_table:
                table = self.table()
                if table.shape[0] < self.stored_frames:
                    raise field_error(
                        "stored_table",
                        f"{table.shape[0]} frames",
                        f"holds fewer than stored_frames={self.stored_frames}",
                    )
            elif self.correction == "restore" and self.stored_offset < 0:
                raise field_error(
                    "stored_offset",
                    self.stored_offset,
                    "is missing: a restoring codec needs the values in each "
                    "frame (stored_offset) or a stored_table",
                )

    @property
    def image_bytes(self) -> int:
        """Bytes of one image (rows with their padding)."""
        return self.height * self.bytes_per_row

    @property
    def chunks(self) -> int:
        """Chunks along the frames."""
        return -(-self.frames // self.chunk_frames)

    @property
    def last_chunk_frames(self) -> int:
        """Frames in the last chunk."""
        return self.frames - (self.chunks - 1) * self.chunk_frames

    @property
    def restores_from_table(self) -> bool:
        """Whether the true values come from ``stored_table`` (packed files)."""
        return (
            self.correction == "restore"
            and self.stored_bytes > 0
            and self.stored_offset < 0
            and self.stored_frames > 0
        )

    @property
    def full_chunk_bytes(self) -> int:
        """Length of a full chunk's byte range (chunk 0 of a packed table)."""
        return self.chunk_frames * self.frame_stride

    def table(self) -> np.ndarray:
        """Return the packed file's true values, ``(frames, stored_bytes)``."""
        try:
            raw = base64.b64decode(self.stored_table, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise field_error("stored_table", "...", f"is not base64: {exc}") from None
        if len(raw) % self.stored_bytes:
            raise field_error(
                "stored_table",
                f"{len(raw)} bytes",
                f"is not a whole number of {self.stored_bytes}-byte entries",
            )
        return np.frombuffer(raw, np.uint8).reshape(-1, self.stored_bytes)

    def chunk_range(self, index: int) -> tuple[int, int]:
        """Return ``(first byte, length)`` of chunk ``index``, from frame 0."""
        start = index * self.full_chunk_bytes
        if index == self.chunks - 1:
            length = self.last_chunk_bytes
        else:
            length = self.full_chunk_bytes
        if self.restores_from_table:
            length += index
        return start, length

    def which_chunk(self, length: int) -> tuple[int, int]:
        """Return ``(chunk index or -1, frames)`` a byte range's length means.

        Raises
        ------
        dcimg.DCIMGFormatError
            If no chunk of this array has that length (the reference file and
            the file it points at do not match).
        """
        last = self.chunks - 1
        if self.restores_from_table:
            if length == self.last_chunk_bytes + last:
                return last, self.last_chunk_frames
            index = length - self.full_chunk_bytes
            if 0 <= index < last:
                return index, self.chunk_frames
        else:
            if length == self.last_chunk_bytes:
                return last, self.last_chunk_frames
            if length == self.full_chunk_bytes and self.chunks > 1:
                return -1, self.chunk_frames
        raise DCIMGFormatError(
            f"{CODEC_NAME} codec: a chunk of {length} bytes matches no chunk "
            f"of this array (full chunks are {self.full_chunk_bytes} bytes, "
            f"the last {self.last_chunk_bytes}); the file changed since the "
            "references were written, or they point at another file",
            field="chunk length",
        )

    def decode(self, data: Any, dtype: np.dtype[Any]) -> np.ndarray:
        """Turn one chunk's bytes into ``(chunk_frames, height, width)`` pixels.

        Parameters
        ----------
        data : bytes-like
            The chunk's byte range in the DCIMG file.
        dtype : numpy.dtype
            The array's pixel type (its byte order is the result's).

        Returns
        -------
        numpy.ndarray
            The corrected frames; frames past the end of the array are 0.
        """
        stored_dtype = np.dtype("<u2" if self.byte_depth == 2 else "u1")
        if np.dtype(dtype).itemsize != self.byte_depth:
            raise field_error(
                "byte_depth",
                self.byte_depth,
                f"does not match the array's data type {np.dtype(dtype)}",
            )
        raw = np.frombuffer(data, np.uint8)
        index, count = self.which_chunk(raw.size)
        need = count * self.frame_stride
        if raw.size < need:
            # The last chunk of a framed file: its last trailer ends the file.
            padded = np.zeros(need, np.uint8)
            padded[: raw.size] = raw
            raw = padded
        frames = raw[:need].reshape(count, self.frame_stride)
        rows = frames[:, : self.image_bytes].reshape(
            count, self.height, self.bytes_per_row
        )
        pixels = rows[:, :, : self.width * self.byte_depth]
        out = np.empty((self.chunk_frames, self.height, self.width), dtype)
        out[:count] = pixels.view(stored_dtype)
        out[count:] = 0
        if not self.stored_bytes or self.correction == "none":
            return out
        row = self.stored_row
        first = self.stored_column
        end = first + self.stored_bytes // self.byte_depth
        if self.correction == "zero":
            out[:count, row, first:end] = 0
            return out
        if self.restores_from_table:
            start = (index if index >= 0 else 0) * self.chunk_frames
            values = self.table()[start : min(start + count, self.stored_frames)]
        elif self.stored_offset >= 0:
            if index == -1 or index < self.chunks - 1:
                valued = count
            else:
                valued = max(0, self.stored_frames - index * self.chunk_frames)
            values = frames[
                :valued, self.stored_offset : self.stored_offset + self.stored_bytes
            ]
        else:
            return out
        valued = values.shape[0]
        out[:valued, row, first:end] = np.ascontiguousarray(values).view(stored_dtype)
        return out

    def to_config(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready ``dict``."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FrameBlocks:
        """Build the settings from :meth:`to_config`'s ``dict``.

        Raises
        ------
        dcimg.DCIMGFormatError
            If a setting is missing, unknown or out of range.
        """
        names = {item.name for item in fields(cls)}
        unknown = set(config) - names
        if unknown:
            raise field_error(
                sorted(unknown)[0], config[sorted(unknown)[0]], "is not a setting"
            )
        try:
            return cls(**config)
        except TypeError as exc:
            raise field_error("configuration", sorted(config), str(exc)) from None
