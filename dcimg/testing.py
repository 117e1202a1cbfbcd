"""Write synthetic DCIMG files, for tests and demonstrations.

The writer produces the layouts described in the project's format notes: the
packed layout of format version ``0x7`` (frames back to back, per-frame data in
footer tables) and the framed layout of versions ``0x1000000`` and
``0x2000000`` (a trailer after every frame, a block table and a camera block).
It stores images the way a camera does: when the frames carry stored pixels,
8 bytes of one row are overwritten in every frame with the pattern
``0, max, 0, max, ...`` and the true bytes are kept in the footer table
(packed) or in the frame trailer (framed).

Frames are streamed to disk a block at a time, so the stack may be larger
than memory (a memory map, a Dask array, or any object that returns one frame
per index), and the file appears complete or not at all.

Only NumPy and the standard library are used, so this module can be imported
even when the compiled reader is not available.

Examples
--------
>>> import pathlib, tempfile
>>> from dcimg.testing import example_stack, write_dcimg
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = pathlib.Path(tmp.name)
>>> stack = example_stack(nframes=4, height=16, width=24)
>>> path = write_dcimg(folder / "a.dcimg", stack, stored_pixels_row=3)
>>> path.stat().st_size
4144
>>> tmp.cleanup()
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import math
import mmap
import operator
import os
import pathlib
import secrets
import struct
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_T0_US",
    "FIXED_CAMERA_BLOCK_OFFSET",
    "FRAMED_VERSIONS",
    "FRAME_PERIOD_US",
    "MIN_FOOTER_TABLE_OFFSET",
    "PACKED_VERSION",
    "example_file",
    "example_stack",
    "fallback_stored_pixels_row",
    "write_dcimg",
    "write_example",
    "write_sparse_dcimg",
    "write_series",
]

# The byte offsets below are declared here, from the format notes, and not
# imported from the parser (dcimg._format) or the reader (dcimg.core): the
# writer is the parser's independent check, so the two must not share a
# mistake. This module imports nothing from dcimg.

#: Format version of the packed layout.
PACKED_VERSION = 0x7
#: Format versions of the framed layout.
FRAMED_VERSIONS = (0x1000000, 0x2000000)
#: Time stamp of frame 0 written by default, in microseconds since the epoch.
DEFAULT_T0_US = 1725555197250000
#: Frame period used for the default time stamps, in microseconds.
FRAME_PERIOD_US = 33333.33

_MAGIC = b"DCIMG\0\0\0"
_UINT32_MAX = 0xFFFFFFFF
# Filler written into row padding: non-zero, so a reader that forgets the
# padding returns visibly wrong pixels.
_PAD_BYTE = 0xA5
# Number of bytes the camera overwrites in one row of every frame.
_STORED_BYTES = 8
# Frames are laid out in a buffer of about this many bytes, then written:
# large enough for few system calls, small enough to bound the memory used.
_BLOCK_BYTES = 32 << 20
# A chunk of a Dask array up to this size is computed once and kept while
# its frames are written (Dask's own default chunk size).
_CHUNK_BYTES = 128 << 20

# File header (absolute offsets).
_FH_VERSION = 0x08
_FH_NSESS = 0x20
_FH_NFRAMES = 0x24
_FH_HEADER_SIZE = 0x28
_FH_FILE_SIZE = 0x30
_FH_FILE_SIZE2 = 0x40
_FH_UNKNOWN_54 = 0x54  # 0x400 in every file seen; meaning unknown
_FH_END = 0x58
_PACKED_HEADER_SIZE = 0x78
_FRAMED_HEADER_SIZE = 0x70

# Session header fields (relative to S): their struct format and offset in
# the packed and in the framed layout, ``None`` where a layout has no such field.
_SESSION_FIELDS: dict[str, tuple[tuple[str, int] | None, tuple[str, int] | None]] = {
    "size": (("Q", 0x00), ("Q", 0x00)),
    "nframes": (("I", 0x20), ("I", 0x3C)),
    "byte_depth": (("I", 0x24), ("I", 0x40)),
    "unknown": (("I", 0x28), ("I", 0x44)),  # 1 in every file seen
    "width": (("I", 0x2C), ("I", 0x48)),
    "bytes_per_row": (("I", 0x30), ("I", 0x50)),
    "height": (("I", 0x34), ("I", 0x4C)),
    "bytes_per_image": (("I", 0x38), ("I", 0x54)),
    "data_offset": (("I", 0x44), ("Q", 0x60)),
    "data_size": (("Q", 0x48), None),
    "stride": (None, ("I", 0x74)),
    "trailer_size": (None, ("I", 0x7C)),
}
_PACKED_DATA_OFFSET = 0x70

# Packed footer (relative to F), and its second structure (relative to F2).
_PF_MARKER = 0x00
_PF_F2_OFFSET = 0x08
_PF_SIZE = 0x28
_PF_UNKNOWN_30 = 0x30  # 32 * frames in every file seen
_PF_F2 = 0xA0
_F2_COUNTERS = 0x30
_F2_TIMESTAMPS = 0x40
_F2_STORED = 0x58
_F2_STORED_OFFSET = 0x64
_F2_STORED_SIZE = 0x68
_F2_END = 0x70
#: Smallest ``footer_table_offset``: the tables follow the second structure.
MIN_FOOTER_TABLE_OFFSET = _PF_F2 + _F2_END

# Framed session header: the block table and its blocks (relative to S).
_BLOCK_TABLE = 0xF0
_BLOCK_BASE = 0xA0
_BLOCK_ENTRY = 16
_KIND1, _KIND1_SIZE = 1, 0x10
_KIND3, _CAMERA_SIZE = 3, 0xF8
_KIND4, _KIND4_SIZE = 4, 0x38
_K4_STORED_SIZE = 0x0C
_K4_STORED_OFFSET = 0x10
#: Where the camera block must sit when there is no block table (relative to S).
FIXED_CAMERA_BLOCK_OFFSET = 0x200
# Camera block text fields: (offset, capacity including the terminating NUL).
_CAM_VERSION0 = (0x00, 0x20)
_CAM_VERSION1 = (0x20, 0x20)
_CAM_MODEL = (0x40, 0x40)
_CAM_VERSION2 = (0x80, 0x10)
_CAM_SERIAL = (0x90, 0x38)
_CAM_VERSIONS = (_CAM_VERSION0, _CAM_VERSION1, _CAM_VERSION2)
_CAM_SUBARRAY = 0xC8
# Frame data start at the first multiple of this after the camera block.
_DATA_ALIGN = 0x100
# Trailer fields: counter, seconds, microseconds, then the stored bytes.
_TR_STORED = 12
# Zero bytes after the last frame of framed files.
_FRAMED_TAIL = 64

# The sensor row an ORCA-Flash camera overwrites, in sensor coordinates.
_SENSOR_CENTRE_ROW = 1023


def _put(buf: bytearray, offset: int, fmt: str, *values: int) -> None:
    """Pack little-endian `values` into `buf` at `offset`."""
    struct.pack_into("<" + fmt, buf, offset, *values)


def _put_text(buf: bytearray, offset: int, field: tuple[int, int], text: str) -> None:
    """Store NUL-padded ASCII `text` in a camera-block field."""
    start = offset + field[0]
    raw = text.encode("ascii")
    buf[start : start + len(raw)] = raw


def _as_int(name: str, value: Any) -> int:
    """Return `value` as an ``int`` or raise ``ValueError`` naming `name`."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _check_u32(name: str, value: int) -> None:
    """Raise ``ValueError`` when a header field does not fit in a u32."""
    if value > _UINT32_MAX:
        raise ValueError(f"{name} ({value}) does not fit in its 32-bit field")


def _check_text(name: str, text: str, capacity: int) -> None:
    """Check that `text` is ASCII and fits a NUL-terminated field."""
    try:
        raw = text.encode("ascii")
    except (AttributeError, UnicodeEncodeError):
        raise ValueError(f"{name} must be an ASCII str, got {text!r}") from None
    if len(raw) >= capacity or b"\0" in raw:
        raise ValueError(
            f"{name} {text!r} does not fit its {capacity}-byte NUL-terminated field"
        )


def _sensor_centre_row(sub_array_y0: int, height: int, binning: int) -> int | None:
    """Return the frame row of sensor row 1023, or ``None`` outside the frame."""
    if sub_array_y0 <= _SENSOR_CENTRE_ROW < sub_array_y0 + height * binning:
        return (_SENSOR_CENTRE_ROW - sub_array_y0) // binning
    return None


def fallback_stored_pixels_row(
    version: int, sub_array_y0: int, height: int, binning: int = 1
) -> int | None:
    """Return the stored-pixel row a reader assumes when there is no kind-4 block.

    Parameters
    ----------
    version : int
        Format version (``0x1000000`` or ``0x2000000``).
    sub_array_y0 : int
        First sensor row of the sub-array.
    height : int
        Frame height in (binned) pixels.
    binning : int, optional
        Binning factor.

    Returns
    -------
    int or None
        Row ``(1023 - y0) // binning`` for version ``0x1000000`` when that
        sensor row lies inside the frame, ``None`` when it does not, and row 0
        for version ``0x2000000``.

    Examples
    --------
    >>> from dcimg.testing import fallback_stored_pixels_row
    >>> fallback_stored_pixels_row(0x1000000, sub_array_y0=940, height=168)
    83
    >>> fallback_stored_pixels_row(0x1000000, sub_array_y0=0, height=512) is None
    True
    >>> fallback_stored_pixels_row(0x2000000, sub_array_y0=940, height=168)
    0
    """
    if version == FRAMED_VERSIONS[1]:
        return 0
    return _sensor_centre_row(sub_array_y0, height, binning)


def _default_timestamps(n: int) -> np.ndarray:
    """Return the default time stamps (microseconds) of `n` frames."""
    k = np.arange(n, dtype=np.float64)
    return DEFAULT_T0_US + np.round(k * FRAME_PERIOD_US).astype(np.int64)


def _stored_pattern(dtype: np.dtype) -> bytes:
    """Return the 8 bytes a camera writes over the stored pixels: 0, max, ..."""
    little = np.dtype(dtype).newbyteorder("<")
    pattern = np.zeros(_STORED_BYTES // little.itemsize, dtype=little)
    pattern[1::2] = np.iinfo(little).max
    return pattern.tobytes()


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where every part of one file goes: everything but pixels and frame values.

    Built and checked once by :func:`_layout`; the header writers, the frame
    streamer and the sparse writer read this record and nothing else. Offsets
    named ``*_offset`` are relative to the session header ``S``
    (``header_size``), as in the file.
    """

    version: int
    nframes: int  # frames laid out and declared in both headers
    nsessions: int
    header_size: int
    depth: int
    width: int
    height: int
    bytes_per_row: int
    sub_array: tuple[int, int, int, int]  # x0, y0, width, height
    binning: int
    stored_offset: int | None  # in-frame byte offset of the 8 stored bytes
    # Framed layout only (0 or empty in the packed layout).
    trailer_size: int = 0
    blocks: tuple[tuple[int, int, int], ...] = ()  # (kind, size, offset)
    camera_block_offset: int = 0
    camera_model: str = ""
    camera_serial: str = ""  # as stored: "S/N: <serial>"
    camera_versions: tuple[str, str, str] = ("", "", "")
    # Packed layout only.
    footer_table_offset: int = 0

    @property
    def framed(self) -> bool:
        """Whether this is the framed layout (a trailer after every frame)."""
        return self.version in FRAMED_VERSIONS

    @property
    def row_bytes(self) -> int:
        """Bytes of pixels in a row, without padding."""
        return self.width * self.depth

    @property
    def bytes_per_image(self) -> int:
        """Bytes of one image, padding included."""
        return self.bytes_per_row * self.height

    @property
    def stride(self) -> int:
        """Distance between the starts of consecutive frames."""
        return self.bytes_per_image + self.trailer_size

    @property
    def data_offset(self) -> int:
        """Start of frame 0 relative to ``S``."""
        if not self.framed:
            return _PACKED_DATA_OFFSET
        end_of_blocks = self.camera_block_offset + _CAMERA_SIZE
        return -(-end_of_blocks // _DATA_ALIGN) * _DATA_ALIGN

    @property
    def first_frame(self) -> int:
        """Absolute offset of frame 0: the size of everything before it."""
        return self.header_size + self.data_offset

    @property
    def footer_size(self) -> int:
        """Size of the packed footer; its tables hold 12 or 20 bytes a frame."""
        per_frame = 12 + (0 if self.stored_offset is None else _STORED_BYTES)
        return self.footer_table_offset + per_frame * self.nframes

    @property
    def tail_size(self) -> int:
        """Bytes after the last frame."""
        return _FRAMED_TAIL if self.framed else self.footer_size

    @property
    def file_size(self) -> int:
        """Size of the complete file."""
        return self.first_frame + self.nframes * self.stride + self.tail_size


def _layout(
    shape: tuple[int, int, int],
    depth: int,
    *,
    version: int,
    bytes_per_row: int | None,
    trailer_size: int | Literal["auto"],
    stored_pixels_row: int | Literal["auto"] | None,
    stored_pixels_column: int,
    kind4_block: bool,
    block_table: bool,
    camera_block_offset: int,
    camera_model: str,
    camera_serial: str,
    camera_versions: Sequence[str],
    sub_array: tuple[int, int, int, int] | None,
    binning: int,
    header_size: int | None,
    footer_table_offset: int,
    nsessions: int,
    follow_fallback_rule: bool = True,
) -> _Layout:
    """Check the writer's options (see :func:`write_dcimg`) and place everything.

    `shape` is ``(frames in the file, height, width)``. This is the one place
    that turns options into a :class:`_Layout`; the writers only read it.
    """
    nframes, height, width = shape
    _check_u32("number of frames", nframes)
    version = _as_int("version", version)
    framed = version in FRAMED_VERSIONS
    if version != PACKED_VERSION and not framed:
        raise ValueError(
            f"version must be 0x7, 0x1000000 or 0x2000000, got {version:#x}"
        )
    nsessions = _as_int("nsessions", nsessions)
    if not 1 <= nsessions <= _UINT32_MAX:
        raise ValueError(f"nsessions must be at least 1, got {nsessions}")

    row_bytes = width * depth
    if bytes_per_row is None:
        bytes_per_row = row_bytes
    bytes_per_row = _as_int("bytes_per_row", bytes_per_row)
    if bytes_per_row < row_bytes:
        raise ValueError(
            f"bytes_per_row ({bytes_per_row}) must be at least width * byte "
            f"depth ({width} * {depth} = {row_bytes})"
        )
    _check_u32("bytes per image", bytes_per_row * height)

    binning = _as_int("binning", binning)
    if binning < 1:
        raise ValueError(f"binning must be at least 1, got {binning}")
    sub_array = _sub_array(sub_array, width * binning, height * binning, binning)

    if header_size is None:
        header_size = _FRAMED_HEADER_SIZE if framed else _PACKED_HEADER_SIZE
    header_size = _as_int("header_size", header_size)
    if header_size < _FH_END or header_size % 8:
        raise ValueError(
            f"header_size must be a multiple of 8 and at least {_FH_END:#x}, "
            f"got {header_size:#x}"
        )

    # Where a reader looks for the stored pixels when the file does not say
    # (framed files without a kind-4 block), and where an ORCA-Flash camera
    # puts them (sensor row 1023) in either layout.
    y0 = sub_array[1]
    rule_row = (
        fallback_stored_pixels_row(version, y0, height, binning)
        if framed
        else _sensor_centre_row(y0, height, binning)
    )
    common = _Layout(
        version=version,
        nframes=nframes,
        nsessions=nsessions,
        header_size=header_size,
        depth=depth,
        width=width,
        height=height,
        bytes_per_row=bytes_per_row,
        sub_array=sub_array,
        binning=binning,
        stored_offset=None,
    )
    no_room = framed and trailer_size == 16  # USB cameras store no pixels
    stored_offset = _stored_offset(
        common, stored_pixels_row, stored_pixels_column, rule_row, no_room
    )
    common = dataclasses.replace(common, stored_offset=stored_offset)
    if not framed:
        packed = dataclasses.replace(
            common, footer_table_offset=_footer_table_offset(footer_table_offset)
        )
        _check_u32("footer size", packed.footer_size)
        return packed
    return _framed_layout(
        common,
        rule_row,
        trailer_size=trailer_size,
        kind4_block=kind4_block,
        block_table=block_table,
        camera_block_offset=camera_block_offset,
        camera_texts=(camera_model, camera_serial, tuple(camera_versions)),
        follow_fallback_rule=follow_fallback_rule,
    )


def _sub_array(
    sub_array: tuple[int, int, int, int] | None, width: int, height: int, binning: int
) -> tuple[int, int, int, int]:
    """Check the sensor sub-array of a frame of `width` x `height` sensor pixels."""
    if sub_array is None:
        return (0, 0, width, height)
    if len(sub_array) != 4:
        raise ValueError(f"sub_array must be (x0, y0, width, height), got {sub_array}")
    x0, y0, sub_w, sub_h = (_as_int("sub_array", v) for v in sub_array)
    if min(x0, y0, sub_w, sub_h) < 0 or max(x0, y0, sub_w, sub_h) > 0xFFFF:
        raise ValueError(f"sub_array values must fit in uint16, got {sub_array}")
    if (sub_w, sub_h) != (width, height):
        raise ValueError(
            f"sub_array size {sub_w}x{sub_h} must equal the frame size "
            f"{width // binning}x{height // binning} times binning {binning}"
        )
    return (x0, y0, sub_w, sub_h)


def _stored_offset(
    layout: _Layout,
    row: int | Literal["auto"] | None,
    column: int,
    rule_row: int | None,
    no_room: bool,
) -> int | None:
    """Return the in-frame byte offset of the stored pixels, or ``None``.

    The default row (``"auto"``) is `rule_row`, unless the 8 bytes do not fit
    there or the trailers have `no_room` for them.
    """
    g = layout
    column = _as_int("stored_pixels_column", column)
    fits = 0 <= column and column * g.depth + _STORED_BYTES <= g.row_bytes
    if isinstance(row, str):
        if row != "auto":
            raise ValueError(
                f'stored_pixels_row must be an integer, None or "auto", got {row!r}'
            )
        row = None if no_room or not fits else rule_row
    if row is None:
        return None
    row = _as_int("stored_pixels_row", row)
    if not 0 <= row < g.height:
        raise ValueError(
            f"stored_pixels_row {row} is outside the frame (height {g.height})"
        )
    if not fits:
        raise ValueError(
            f"stored_pixels_column {column}: the {_STORED_BYTES} stored bytes "
            f"must fit in a row of {g.width} pixels of {g.depth} byte(s)"
        )
    return row * g.bytes_per_row + column * g.depth


def _framed_layout(
    layout: _Layout,
    rule_row: int | None,
    *,
    trailer_size: int | Literal["auto"],
    kind4_block: bool,
    block_table: bool,
    camera_block_offset: int,
    camera_texts: tuple[str, str, tuple[str, ...]],
    follow_fallback_rule: bool = True,
) -> _Layout:
    """Check the framed layout's options and add them to `layout`."""
    g = layout
    if trailer_size == "auto":
        # Without stored pixels a 32-byte trailer would send a reader to the
        # fallback rule's row; a 16-byte trailer (a USB camera's) does not.
        no_stored = g.stored_offset is None and rule_row is not None
        trailer_size = 16 if no_stored else 32
    trailer_size = _as_int("trailer_size", trailer_size)
    if trailer_size not in (16, 32) and (trailer_size < 512 or trailer_size % 4):
        raise ValueError(
            "trailer_size must be 16, 32, or a multiple of 4 of at least 512, "
            f"got {trailer_size}"
        )
    if trailer_size == 16 and g.stored_offset is not None:
        raise ValueError(
            "16-byte trailers (USB cameras) have no room for stored pixels; "
            "use stored_pixels_row=None or a larger trailer_size"
        )
    _check_u32("frame stride", g.bytes_per_image + trailer_size)

    model, serial, versions = camera_texts
    if len(versions) != 3:
        raise ValueError(f"camera_versions must hold 3 strings, got {versions!r}")
    for i, (text, field) in enumerate(zip(versions, _CAM_VERSIONS, strict=True)):
        _check_text(f"camera_versions[{i}]", text, field[1])
    _check_text("camera_model", model, _CAM_MODEL[1])
    serial_text = f"S/N: {serial}"
    _check_text("camera_serial", serial_text, _CAM_SERIAL[1])

    has_kind4 = block_table and kind4_block and g.stored_offset is not None
    if not has_kind4 and trailer_size != 16 and follow_fallback_rule:
        # Without a kind-4 block a reader falls back to the historical rule
        # (this includes files without stored pixels): make the file obey it.
        row = col = None
        if g.stored_offset is not None:
            row = g.stored_offset // g.bytes_per_row
            col = g.stored_offset % g.bytes_per_row // g.depth
        if row != rule_row or col not in (None, 0):
            if not block_table:
                why = "without a block table"
            elif g.stored_offset is None:
                why = "without stored pixels there is no kind-4 block, so"
            else:
                why = "with kind4_block=False"
            raise ValueError(
                f"{why} a reader assumes the stored pixels at row {rule_row}, "
                f"column 0 (the rule for version {g.version:#x}, sub-array y0 "
                f"{g.sub_array[1]}, binning {g.binning}); got "
                f"stored_pixels_row={row}, column {col}. Use trailer_size=16 "
                "for a file without stored pixels"
            )

    camera_block_offset = _as_int("camera_block_offset", camera_block_offset)
    blocks: tuple[tuple[int, int, int], ...] = ()
    if block_table:
        entries = [(_KIND1, _KIND1_SIZE)]
        if has_kind4:
            entries.append((_KIND4, _KIND4_SIZE))
        # The table is followed by the small blocks, then (at the requested
        # offset) the camera block.
        position = _BLOCK_TABLE + _BLOCK_ENTRY * (len(entries) + 1)
        for kind, size in entries:
            blocks += ((kind, size, position),)
            position += size
        if camera_block_offset < position or camera_block_offset % 8:
            raise ValueError(
                "camera_block_offset must be a multiple of 8 and at least "
                f"{position:#x} (the end of the blocks before it), got "
                f"{camera_block_offset:#x}"
            )
        blocks += ((_KIND3, _CAMERA_SIZE, camera_block_offset),)
    elif camera_block_offset != FIXED_CAMERA_BLOCK_OFFSET:
        raise ValueError(
            "without a block table the camera block must sit at the fixed "
            f"offset {FIXED_CAMERA_BLOCK_OFFSET:#x}, got {camera_block_offset:#x}"
        )
    return dataclasses.replace(
        g,
        trailer_size=trailer_size,
        blocks=blocks,
        camera_block_offset=camera_block_offset,
        camera_model=model,
        camera_serial=serial_text,
        camera_versions=(versions[0], versions[1], versions[2]),
    )


def _footer_table_offset(value: int) -> int:
    """Check the packed layout's ``footer_table_offset``."""
    value = _as_int("footer_table_offset", value)
    if value < MIN_FOOTER_TABLE_OFFSET or value % 4:
        raise ValueError(
            "footer_table_offset must be a multiple of 4 and at least "
            f"{MIN_FOOTER_TABLE_OFFSET}, got {value}"
        )
    return value


def _head(layout: _Layout) -> bytearray:
    """Return the file's bytes up to frame 0: file and session header, blocks."""
    g = layout
    buf = bytearray(g.first_frame)
    buf[: len(_MAGIC)] = _MAGIC
    _put(buf, _FH_VERSION, "I", g.version)
    _put(buf, _FH_NSESS, "I", g.nsessions)
    _put(buf, _FH_NFRAMES, "I", g.nframes)
    _put(buf, _FH_HEADER_SIZE, "I", g.header_size)
    _put(buf, _FH_FILE_SIZE, "Q", g.file_size)
    _put(buf, _FH_FILE_SIZE2, "Q", g.file_size)
    _put(buf, _FH_UNKNOWN_54, "I", 0x400)
    if g.framed:
        _put_framed_session(buf, g)
    else:
        _put_packed_session(buf, g)
    return buf


def _put_session_fields(
    buf: bytearray, layout: _Layout, size: int, data_size: int
) -> None:
    """Fill the fields of `layout`'s session header (see ``_SESSION_FIELDS``).

    `size` is the session's size; `data_size` (packed layout only) the size of
    its frames and the header before them.
    """
    g = layout
    values = {
        "size": size,
        "nframes": g.nframes,
        "byte_depth": g.depth,
        "unknown": 1,
        "width": g.width,
        "bytes_per_row": g.bytes_per_row,
        "height": g.height,
        "bytes_per_image": g.bytes_per_image,
        "data_offset": g.data_offset,
        "data_size": data_size,
        "stride": g.stride,
        "trailer_size": g.trailer_size,
    }
    for name, places in _SESSION_FIELDS.items():
        place = places[1 if g.framed else 0]
        if place is not None:
            fmt, offset = place
            _put(buf, g.header_size + offset, fmt, values[name])


def _put_packed_session(buf: bytearray, layout: _Layout) -> None:
    """Fill the packed (version 0x7) session header into `buf`."""
    g = layout
    data_size = _PACKED_DATA_OFFSET + g.nframes * g.bytes_per_image
    _put_session_fields(buf, g, data_size + g.footer_size, data_size)


def _put_framed_session(buf: bytearray, layout: _Layout) -> None:
    """Fill the framed session header, block table and blocks into `buf`."""
    g = layout
    s = g.header_size
    session_size = g.data_offset + g.nframes * g.stride + _FRAMED_TAIL
    _put_session_fields(buf, g, session_size, data_size=0)  # no such field

    # The kind-1 block is all zeros in every file seen.
    for i, (kind, size, where) in enumerate(g.blocks):
        entry = s + _BLOCK_TABLE + _BLOCK_ENTRY * i
        _put(buf, entry, "IIQ", kind, size, where - _BLOCK_BASE)
        if kind == _KIND4:
            assert g.stored_offset is not None  # a kind-4 block needs them
            _put(buf, s + where + _K4_STORED_SIZE, "I", _STORED_BYTES)
            _put(buf, s + where + _K4_STORED_OFFSET, "I", g.stored_offset)

    camera = s + g.camera_block_offset
    for text, field in zip(g.camera_versions, _CAM_VERSIONS, strict=True):
        _put_text(buf, camera, field, text)
    _put_text(buf, camera, _CAM_MODEL, g.camera_model)
    _put_text(buf, camera, _CAM_SERIAL, g.camera_serial)
    x0, y0, sub_w, sub_h = g.sub_array
    _put(buf, camera + _CAM_SUBARRAY, "4H", x0, sub_w, y0, sub_h)


def _tail(layout: _Layout, table: np.ndarray, stored: np.ndarray | None) -> bytes:
    """Return the bytes after the last frame.

    That is the packed footer (its tables: `table` of counters, seconds and
    microseconds, ``(n, 3)`` ``<u4``, and the true `stored` bytes, ``(n,
    8)``), or the framed layout's zero bytes.
    """
    g = layout
    if g.framed:
        return bytes(_FRAMED_TAIL)
    n = g.nframes
    buf = bytearray(g.footer_size)
    counters_at = g.footer_table_offset
    stamps_at = counters_at + 4 * n
    stored_at = stamps_at + 8 * n
    # Offsets below are relative to the footer F; F2 is its second structure.
    _put(buf, _PF_MARKER, "I", PACKED_VERSION)
    _put(buf, _PF_F2_OFFSET, "Q", _PF_F2)
    _put(buf, _PF_SIZE, "I", g.footer_size)
    _put(buf, _PF_UNKNOWN_30, "I", (32 * n) & _UINT32_MAX)
    _put(buf, _PF_F2 + _F2_COUNTERS, "Q", counters_at)
    _put(buf, _PF_F2 + _F2_TIMESTAMPS, "Q", stamps_at)
    buf[counters_at:stamps_at] = table[:, 0].tobytes()
    buf[stamps_at:stored_at] = table[:, 1:].tobytes()
    if g.stored_offset is not None:
        assert stored is not None
        _put(buf, _PF_F2 + _F2_STORED, "Q", stored_at)
        _put(buf, _PF_F2 + _F2_STORED_OFFSET, "I", g.stored_offset)
        _put(buf, _PF_F2 + _F2_STORED_SIZE, "Q", _STORED_BYTES)
        buf[stored_at:] = stored.tobytes()
    return bytes(buf)


def _per_frame_integers(
    name: str, values: Sequence[int] | np.ndarray, count: int
) -> np.ndarray:
    """Return `values` as an array of `count` integers or raise ``ValueError``."""
    array = np.asarray(values)
    if array.shape != (count,):
        raise ValueError(
            f"{name} must hold one value per frame ({count}), got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array


def _frame_table(
    nframes: int,
    count: int,
    framestamps: Sequence[int] | np.ndarray | None,
    timestamps_us: Sequence[int] | np.ndarray | None,
) -> np.ndarray:
    """Return every frame's counter, seconds and microseconds, ``(nframes, 3)``.

    `framestamps` and `timestamps_us` describe the `count` frames of the
    data; frames declared beyond them continue the counter and the period.
    """
    if framestamps is None:
        framestamps = np.arange(count)
    counters = _per_frame_integers("framestamps", framestamps, count)
    if counters.min() < 0 or counters.max() > _UINT32_MAX:
        raise ValueError("framestamps must fit in uint32")
    if timestamps_us is None:
        timestamps_us = _default_timestamps(count)
    stamps = _per_frame_integers("timestamps_us", timestamps_us, count)
    stamps = stamps.astype(np.int64)
    if stamps.min() < 0 or stamps.max() // 1_000_000 > _UINT32_MAX:
        raise ValueError("timestamps_us must lie between 1970 and 2106")

    table = np.empty((nframes, 3), dtype="<u4")
    table[:count, 0] = counters
    table[:count, 1] = stamps // 1_000_000
    table[:count, 2] = stamps % 1_000_000
    if nframes > count:
        # Frames declared but not supplied continue the counter and period.
        more = np.arange(1, nframes - count + 1)
        table[count:, 0] = (int(counters[-1]) + more) & _UINT32_MAX
        late = stamps[-1] + np.round(more * FRAME_PERIOD_US).astype(np.int64)
        table[count:, 1] = late // 1_000_000
        table[count:, 2] = late % 1_000_000
    return table


class _Frames:
    """The images to store, read a block at a time.

    The first `count` frames come from `data`; frames declared beyond them
    (an interrupted acquisition) are pseudo-random filler. NumPy arrays
    (memory maps included) and array types that implement NumPy's array
    protocol (Dask, ...) are read in slices of frames; anything else one
    frame at a time, ``numpy.asarray(data[k])``.

    A Dask array computes whole chunks: a slice that crossed a chunk boundary
    would compute two chunks at once, and a chunk sliced block by block
    would be computed once per block. So reads follow its chunks along the
    frame axis: a chunk of at most `_CHUNK_BYTES` is computed once and kept
    while the writer consumes it; a larger one is read in pieces that stay
    inside it.
    """

    def __init__(self, data: Any, count: int, dtype: np.dtype, seed: int) -> None:
        self.data = data
        self.count = count
        self.dtype = dtype
        self.sliceable = isinstance(data, np.ndarray) or hasattr(
            data, "__array_function__"
        )
        self.rng = np.random.default_rng(seed)
        self.mapping = _shared_mapping(data)
        # Frame indices where the source's chunks start (Dask: ``chunks`` is
        # a tuple of block sizes per axis), and the chunk read last.
        self.bounds: list[int] | None = None
        chunks = getattr(data, "chunks", None) if self.sliceable else None
        if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], tuple):
            self.bounds = [0, *itertools.accumulate(int(c) for c in chunks[0])]
        self.frame_bytes = dtype.itemsize * math.prod(data.shape[1:])
        self.kept: tuple[int, int, np.ndarray] | None = None

    def fill(self, out: np.ndarray, start: int) -> None:
        """Store frames ``start, start + 1, ...`` into `out` ``(m, height, width)``."""
        stop = start + len(out)
        end = min(stop, self.count)
        if self.sliceable:
            k = start
            while k < end:
                first, block = self._read(k, end)
                n = min(first + len(block), end) - k
                self._copy(out[k - start : k - start + n], block[k - first :][:n], k)
                if self.mapping is not None:
                    self.mapping.release(block)  # copied: the map's pages can go
                k += n
        else:
            for k in range(start, end):
                self._copy(out[k - start], np.asarray(self.data[k]), k)
        if end < stop:
            native = self.dtype.newbyteorder("=")
            junk = out[max(end - start, 0) :]
            junk[...] = self.rng.integers(
                0, np.iinfo(native).max, junk.shape, dtype=native, endpoint=True
            )
        self.kept = self.kept if self.kept and self.kept[1] > stop else None

    def _read(self, k: int, end: int) -> tuple[int, np.ndarray]:
        """Return the index of the first frame read, and frames from `k` on."""
        if self.kept is not None and self.kept[0] <= k < self.kept[1]:
            return self.kept[0], self.kept[2]
        first, last = k, end
        if self.bounds is not None:
            i = bisect.bisect_right(self.bounds, k) - 1
            first, last = self.bounds[i], self.bounds[i + 1]
            if (last - first) * self.frame_bytes > _CHUNK_BYTES:
                first, last = k, min(end, last)
        block = np.asarray(self.data[first:last])
        # A chunk that reaches beyond this request serves the next one too.
        self.kept = (first, last, block) if last > end else None
        return first, block

    def _copy(self, out: np.ndarray, frames: np.ndarray, first: int) -> None:
        """Copy `frames` into `out` after checking they are what was declared."""
        if frames.shape != out.shape:
            raise ValueError(
                f"data frame {first} has shape {frames.shape}, expected {out.shape} "
                "(the shape data declared)"
            )
        if frames.dtype.kind != "u" or frames.dtype.itemsize != self.dtype.itemsize:
            raise ValueError(
                f"data frame {first} has dtype {frames.dtype}, expected {self.dtype}"
            )
        np.copyto(out, frames, casting="equiv")  # at most a byte swap


class _SharedMapping:
    """The shared memory map under a NumPy memory map given as `data`.

    Pages of a memory map that have been read stay in the process's resident
    set until the kernel needs the memory: streaming a 20 GB map would show
    20 GB of resident memory although the writer holds one block. Once a
    block is copied, its pages are unmapped (``MADV_DONTNEED``); they stay in
    the page cache and a later access maps them again. Only shared maps
    qualify: there the page cache holds any change, while a private
    (copy-on-write) map would lose its changes.
    """

    def __init__(self, mapped: mmap.mmap) -> None:
        self.mapped = mapped
        view = np.frombuffer(mapped, dtype=np.uint8, count=1)
        self.address = view.__array_interface__["data"][0]
        del view  # release the buffer export at once

    def release(self, block: np.ndarray) -> None:
        """Unmap the pages of `block`, a view into the map."""
        low = high = block.__array_interface__["data"][0]
        for size, step in zip(block.shape, block.strides, strict=True):
            if step < 0:
                low += (size - 1) * step
            else:
                high += (size - 1) * step
        high += block.itemsize
        start = max(low - self.address, 0) // mmap.PAGESIZE * mmap.PAGESIZE
        stop = min(high - self.address, len(self.mapped))
        if start < stop:
            with contextlib.suppress(OSError, ValueError):
                self.mapped.madvise(mmap.MADV_DONTNEED, start, stop - start)


def _shared_mapping(data: object) -> _SharedMapping | None:
    """Return the shared map under `data` when it is a NumPy memory map."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None  # madvise is missing on Windows
    base, modes = data, set()
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            modes.add(base.mode)
        base = base.base
    # Only maps that NumPy made, and says are shared: "c" is copy-on-write.
    if not isinstance(base, mmap.mmap) or base.closed or not modes:
        return None
    if not modes <= {"r", "r+", "w+"}:
        return None
    try:
        return _SharedMapping(base)
    except (TypeError, ValueError):
        return None


def _write_frames(
    fh: BinaryIO,
    layout: _Layout,
    frames: _Frames,
    table: np.ndarray,
    stored: np.ndarray | None,
) -> None:
    """Write every frame and its trailer, one bounded block at a time.

    The block buffer is laid out once (row padding, zero trailers) and each
    block then only rewrites the pixels, the camera's pattern over the stored
    pixels and the start of every trailer. In the packed layout the true
    stored bytes go to `stored` ``(n, 8)`` for the footer.
    """
    g = layout
    bpi = g.bytes_per_image
    per_block = max(1, min(g.nframes, _BLOCK_BYTES // g.stride))
    body = np.zeros((per_block, g.stride), dtype=np.uint8)
    rows = body[:, :bpi].reshape(per_block, g.height, g.bytes_per_row)
    rows[:, :, g.row_bytes :] = _PAD_BYTE
    little = frames.dtype.newbyteorder("<")
    pixels = rows[:, :, : g.row_bytes].view(little)
    pattern = np.frombuffer(_stored_pattern(little), dtype=np.uint8)
    stamps = table.view(np.uint8)  # (n, 12): counter, seconds, microseconds
    for start in range(0, g.nframes, per_block):
        stop = min(start + per_block, g.nframes)
        m = stop - start
        frames.fill(pixels[:m], start)
        if g.stored_offset is not None:
            span = body[:m, g.stored_offset : g.stored_offset + _STORED_BYTES]
            true = span.copy()
            span[...] = pattern
            if g.framed:
                body[:m, bpi + _TR_STORED : bpi + _TR_STORED + _STORED_BYTES] = true
            else:
                assert stored is not None
                stored[start:stop] = true
        if g.framed:
            body[:m, bpi : bpi + _TR_STORED] = stamps[start:stop]
        fh.write(body[:m].data)  # a leading slice: contiguous, no copy


@contextlib.contextmanager
def _atomic_output(path: pathlib.Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path`; on success it replaces `path`.

    On any error the temporary file is removed, so `path` is either the
    complete new file or left as it was.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - a 32-bit name collision
            continue
        break
    try:
        with open(fd, "wb") as fh:
            yield fh
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _as_frames(data: Any) -> tuple[Any, tuple[int, int, int], np.dtype]:
    """Check the image stack given to the writer; return it, its shape and dtype."""
    if not all(hasattr(data, a) for a in ("shape", "dtype", "__getitem__")):
        data = np.asarray(data)
    try:
        dtype = np.dtype(data.dtype)
    except TypeError:
        raise ValueError(f"data has no NumPy dtype, got {data.dtype!r}") from None
    if dtype.kind != "u" or dtype.itemsize not in (1, 2):
        raise ValueError(f"data must be uint8 or uint16, got dtype {dtype}")
    shape = tuple(data.shape)
    if len(shape) != 3:
        raise ValueError(
            f"data must have 3 dimensions (frames, height, width), got {len(shape)}"
        )
    try:
        n, height, width = (operator.index(s) for s in shape)
    except TypeError:
        raise ValueError(f"data must have a known shape, got {shape}") from None
    if min(n, height, width) < 1:
        raise ValueError(f"data must not be empty, got shape {shape}")
    return data, (n, height, width), dtype


def write_dcimg(
    path: str | os.PathLike[str],
    data: npt.ArrayLike,
    *,
    version: int = 0x1000000,
    bytes_per_row: int | None = None,
    trailer_size: int | Literal["auto"] = "auto",
    stored_pixels_row: int | Literal["auto"] | None = "auto",
    stored_pixels_column: int = 0,
    kind4_block: bool = True,
    block_table: bool = True,
    camera_block_offset: int = FIXED_CAMERA_BLOCK_OFFSET,
    camera_model: str = "C11440-22C",
    camera_serial: str = "301234",
    camera_versions: Sequence[str] = ("4.11.523", "1.0", "2.0"),
    sub_array: tuple[int, int, int, int] | None = None,
    binning: int = 1,
    framestamps: Sequence[int] | np.ndarray | None = None,
    timestamps_us: Sequence[int] | np.ndarray | None = None,
    header_size: int | None = None,
    footer_table_offset: int = 272,
    declared_frames: int | None = None,
    truncate_to: int | None = None,
    nsessions: int = 1,
    follow_fallback_rule: bool = True,
) -> pathlib.Path:
    """Write an image stack as a DCIMG file, the way a camera would.

    With only `path` and `data` the file is what an ORCA-Flash camera
    streaming to disk writes: framed layout (version 0x1000000), and when the
    frame holds the sensor's centre row 1023 (full frames of 2048 rows, say)
    the camera's overwritten pixels there, with their true values in 32-byte
    trailers. Frames are streamed to disk a block of about 32 MB at a time,
    through a temporary file in the same folder that replaces `path` only
    once it is complete: a stack larger than memory can be written, and an
    error leaves nothing behind.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; it is replaced.
    data : array_like
        The true image stack, shape ``(n, height, width)``, dtype uint8 or
        uint16. This is what a correct reader returns for the file. Any
        object with ``shape``, ``dtype`` and ``data[k]`` (frame `k`) will do:
        a NumPy array or memory map, a Dask array (computed a block of frames
        at a time), or a class that makes frames on demand.
    version : int, optional
        ``0x7`` (packed layout), ``0x1000000`` (default) or ``0x2000000``
        (framed).
    bytes_per_row : int, optional
        Row stride in bytes; default ``width * byte_depth``. Extra bytes are
        row padding, filled with the non-zero byte ``0xa5``.
    trailer_size : int or "auto", optional
        Framed layout only: size of the trailer after every frame, 16 (no
        stored pixels), 32, or a multiple of 4 that is at least 512. The
        default ``"auto"`` gives 32, or 16 when the frames carry no stored
        pixels but a reader's fallback rule (see `kind4_block`) would look
        for them in a 32-byte trailer.
    stored_pixels_row : int, None or "auto", optional
        Row whose 8 bytes the camera overwrote with ``0, max, 0, max, ...``;
        ``None`` means no pixels are overwritten. The default ``"auto"``
        follows the format's rules: the frame row of sensor row 1023,
        ``(1023 - y0) // binning``, when the frame holds it (versions 0x7 and
        0x1000000) and row 0 for version 0x2000000 -- the rows a reader
        assumes without a kind-4 block; ``None`` when that row does not
        exist, the 8 bytes do not fit in a row, or the trailers are 16 bytes.
    stored_pixels_column : int, optional
        Pixel column where the 8 overwritten bytes start.
    kind4_block : bool, optional
        Framed layout only: write the kind-4 block that records the position of
        the stored pixels (only when there are stored pixels). A file without
        that block (``False``, no block table, or no stored pixels) forces a
        reader onto the historical rule, so unless the trailers are 16 bytes
        `stored_pixels_row` must equal that rule's row (see
        :func:`fallback_stored_pixels_row`; ``None`` when the rule gives no
        row) and the column must be 0; otherwise ``ValueError`` is raised.
    block_table : bool, optional
        Framed layout only: write the block table at ``S + 0xf0``. With
        ``False`` there is no table (so no kind-1 or kind-4 block either) and
        the camera block sits at the fixed ``S + 0x200``.
    camera_block_offset : int, optional
        Framed layout only: start of the camera block relative to the session
        header ``S``. Frame data start at the next multiple of 0x100 after it.
    camera_model, camera_serial : str, optional
        Text of the camera block; the serial is stored as ``"S/N: <serial>"``.
    camera_versions : sequence of 3 str, optional
        Version strings stored at camera-block offsets 0x00, 0x20 and 0x80.
    sub_array : tuple of 4 int, optional
        ``(x0, y0, width, height)`` in sensor pixels; default
        ``(0, 0, width * binning, height * binning)``.
    binning : int, optional
        Binning factor; the sub-array size must equal the frame size times it.
    framestamps : array_like of int, optional
        Camera frame counter of every frame (uint32); default ``arange(n)``.
    timestamps_us : array_like of int, optional
        Time stamp of every frame in microseconds since the Unix epoch; default
        ``DEFAULT_T0_US + round(k * FRAME_PERIOD_US)``.
    header_size : int, optional
        Absolute offset of the session header; default 0x78 for version 0x7
        and 0x70 for the framed versions.
    footer_table_offset : int, optional
        Packed layout only: offset of the frame-counter table relative to the
        footer; the time stamps and stored pixels follow it.
    declared_frames : int, optional
        Frame count written into the headers, at least ``len(data)``; frames
        beyond ``len(data)`` are filled with pseudo-random pixels. Use it with
        `truncate_to` to imitate an interrupted acquisition.
    truncate_to : int, optional
        Cut the finished file to this many bytes. The headers keep the size of
        the complete file.
    nsessions : int, optional
        Session count written into the file header (only one session is
        written).
    follow_fallback_rule : bool, optional
        Framed layout only. With ``True`` (default), a file without a kind-4
        block must put its stored pixels where the historical rule says (see
        `kind4_block`). ``False`` lifts that: the file may have 32-byte or
        larger trailers, no kind-4 block, and no overwritten pixels at all
        (``stored_pixels_row=None``) or overwritten pixels in another row --
        files whose fallback row does *not* show the camera's ``0, max, 0,
        max`` pattern. A reader must then return the pixels as stored.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If an argument is invalid, the options contradict each other, or a
        frame of `data` does not have the declared shape and dtype. Nothing
        is written then.

    See Also
    --------
    write_sparse_dcimg : A huge all-zero file in a few megabytes of disk.

    Examples
    --------
    A full ORCA-Flash frame, with the defaults: the camera's pattern sits in
    row 1023 and a reader puts the true values back.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcimg.testing import write_dcimg
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> stack = np.full((3, 2048, 2048), 100, dtype=np.uint16)
    >>> path = write_dcimg(folder / "full.dcimg", stack)
    >>> path.stat().st_size == 0x70 + 0x300 + 3 * (2048 * 2048 * 2 + 32) + 64
    True
    >>> from dcimg import DCIMGFile
    >>> with DCIMGFile(path) as f:
    ...     print(f.shape, f.metadata.stored_pixels.row, f[0, 1023, :5])
    (3, 2048, 2048) 1023 [100 100 100 100 100]

    Frames made on demand, never all in memory (any object with ``shape``,
    ``dtype`` and ``[k]`` will do), in the packed layout:

    >>> class Ramp:
    ...     shape, dtype = (1000, 64, 64), np.dtype(np.uint8)
    ...
    ...     def __getitem__(self, k):
    ...         return np.full(self.shape[1:], k % 256, self.dtype)
    >>> path = write_dcimg(folder / "ramp.dcimg", Ramp(), version=0x7)
    >>> path.stat().st_size
    4108504
    >>> tmp.cleanup()
    """
    frames_in, (count, height, width), dtype = _as_frames(data)
    if declared_frames is None:
        declared_frames = count
    declared_frames = _as_int("declared_frames", declared_frames)
    if declared_frames < count:
        raise ValueError(
            f"declared_frames ({declared_frames}) must be at least the number "
            f"of frames in data ({count})"
        )
    layout = _layout(
        (declared_frames, height, width),
        dtype.itemsize,
        version=version,
        bytes_per_row=bytes_per_row,
        trailer_size=trailer_size,
        stored_pixels_row=stored_pixels_row,
        stored_pixels_column=stored_pixels_column,
        kind4_block=kind4_block,
        block_table=block_table,
        camera_block_offset=camera_block_offset,
        camera_model=camera_model,
        camera_serial=camera_serial,
        camera_versions=camera_versions,
        sub_array=sub_array,
        binning=binning,
        header_size=header_size,
        footer_table_offset=footer_table_offset,
        nsessions=nsessions,
        follow_fallback_rule=follow_fallback_rule,
    )
    table = _frame_table(declared_frames, count, framestamps, timestamps_us)
    if truncate_to is not None:
        truncate_to = _as_int("truncate_to", truncate_to)
        if not 0 < truncate_to <= layout.file_size:
            raise ValueError(
                f"truncate_to must lie in 1..{layout.file_size} (the complete "
                f"file size), got {truncate_to}"
            )

    stored = None
    if not layout.framed and layout.stored_offset is not None:
        stored = np.empty((declared_frames, _STORED_BYTES), dtype=np.uint8)
    source = _Frames(frames_in, count, dtype, seed=declared_frames)
    path = pathlib.Path(path)
    with _atomic_output(path) as fh:
        fh.write(_head(layout))
        _write_frames(fh, layout, source, table, stored)
        fh.write(_tail(layout, table, stored))
        if truncate_to is not None:
            fh.truncate(truncate_to)
    return path


def _check_stack(
    dtype: npt.DTypeLike, nframes: int, height: int, width: int
) -> np.dtype:
    """Return `dtype` as a NumPy dtype; raise ``ValueError`` for a bad stack.

    The stack must be uint8 or uint16 and have at least one frame, row and
    column.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    for name, value in (("nframes", nframes), ("height", height), ("width", width)):
        if _as_int(name, value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    return dtype


def example_stack(
    nframes: int = 20,
    height: int = 64,
    width: int = 80,
    dtype: npt.DTypeLike = np.uint16,
    seed: int = 0,
) -> np.ndarray:
    """Return a reproducible synthetic image stack.

    The frames show a smooth diagonal gradient, a few Gaussian spots that
    drift and blink from frame to frame, and Gaussian noise. The same
    arguments always give the same array.

    Parameters
    ----------
    nframes, height, width : int, optional
        Shape of the stack.
    dtype : numpy dtype, optional
        ``numpy.uint16`` (values up to about 4000, like a 12-bit camera) or
        ``numpy.uint8`` (values up to about 250).
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(nframes, height, width)`` and the requested dtype.

    Examples
    --------
    >>> from dcimg.testing import example_stack
    >>> stack = example_stack(nframes=5, height=32, width=40)
    >>> stack.shape, stack.dtype
    ((5, 32, 40), dtype('uint16'))
    """
    dtype = _check_stack(dtype, nframes, height, width)
    rng = np.random.default_rng(seed)
    scale = 4000.0 if dtype == np.uint16 else 250.0

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    gradient = 0.1 + 0.15 * (xx / max(width - 1, 1) + yy / max(height - 1, 1))
    nspots = 4
    centre_y = rng.uniform(0, height, nspots)
    centre_x = rng.uniform(0, width, nspots)
    step_y = rng.normal(0, 0.4, nspots)
    step_x = rng.normal(0, 0.4, nspots)
    sigma = rng.uniform(1.5, 1.5 + min(height, width) / 10, nspots)
    brightness = rng.uniform(0.3, 0.6, nspots)
    phase = rng.uniform(0, 2 * np.pi, nspots)

    stack = np.empty((nframes, height, width), dtype=dtype)
    for k in range(nframes):
        image = gradient.copy()
        for s in range(nspots):
            dist2 = (yy - centre_y[s] - k * step_y[s]) ** 2 + (
                xx - centre_x[s] - k * step_x[s]
            ) ** 2
            blink = 0.75 + 0.25 * np.sin(phase[s] + 0.5 * k)
            image += brightness[s] * blink * np.exp(-dist2 / (2 * sigma[s] ** 2))
        image = image * scale + rng.normal(0, 0.01 * scale, image.shape)
        stack[k] = np.clip(np.round(image), 0, np.iinfo(dtype).max)
    return stack


def write_example(path: str | os.PathLike[str]) -> pathlib.Path:
    """Write a small, realistic example acquisition.

    The file holds 20 frames of 64 x 80 uint16 pixels from
    :func:`example_stack`, in the framed layout (version 0x1000000, 32-byte
    trailers) of a camera cropped to the sensor sub-array x0=984, y0=992, so
    the overwritten pixels lie in row 1023 - 992 = 31. One frame was dropped
    after frame index 11 (the frame counter jumps from 11 to 13).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; it is replaced.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from dcimg.testing import write_example
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> write_example(folder / "example.dcimg").stat().st_size
    206384
    >>> tmp.cleanup()
    """
    nframes, height, width = 20, 64, 80
    x0, y0 = 984, 992
    counters = np.arange(nframes)
    counters[12:] += 1
    return write_dcimg(
        path,
        example_stack(nframes, height, width),
        version=0x1000000,
        trailer_size=32,
        stored_pixels_row=_SENSOR_CENTRE_ROW - y0,
        sub_array=(x0, y0, width, height),
        framestamps=counters,
        timestamps_us=DEFAULT_T0_US
        + np.round(counters * FRAME_PERIOD_US).astype(np.int64),
    )


@contextlib.contextmanager
def example_file(name: str = "example.dcimg") -> Iterator[pathlib.Path]:
    """Write :func:`write_example` to a temporary folder, for a ``with`` block.

    The folder and the file are removed when the block ends: for examples
    and tests that need a real file and nothing left behind.

    Parameters
    ----------
    name : str, default "example.dcimg"
        File name inside the temporary folder.

    Yields
    ------
    pathlib.Path
        The example file.

    Examples
    --------
    >>> from dcimg.testing import example_file
    >>> with example_file() as path:
    ...     print(path.name, path.stat().st_size)
    example.dcimg 206384
    >>> path.exists()
    False
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dcimg-example-") as folder:
        yield write_example(pathlib.Path(folder) / name)


def write_sparse_dcimg(
    path: str | os.PathLike[str],
    nframes: int,
    height: int,
    width: int,
    *,
    dtype: npt.DTypeLike = np.uint16,
    version: int = 0x1000000,
    trailer_size: int | Literal["auto"] = "auto",
    stored_pixels_row: int | None = None,
    stored_pixels_column: int = 0,
    bytes_per_row: int | None = None,
    sub_array: tuple[int, int, int, int] | None = None,
    binning: int = 1,
) -> pathlib.Path:
    """Write a large DCIMG file whose pixels are holes: all zero, no disk space.

    The headers, blocks, per-frame trailers (framed layout) and footer
    (packed layout) are laid out exactly as :func:`write_dcimg` lays them out
    for an all-zero stack; only the bytes that are not zero are written, at
    their offsets, and the file is extended to its full size with
    ``truncate``. On file systems with sparse files (ext4, XFS, Btrfs, APFS,
    tmpfs) a file of hundreds of gigabytes then occupies a few megabytes: one
    block per frame for each trailer and for the overwritten pixels. Elsewhere
    (NTFS without the sparse flag, FAT) the file takes its full size. Like
    :func:`write_dcimg` it writes a temporary file that replaces `path` once
    complete.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; it is replaced.
    nframes, height, width : int
        Shape of the stack.
    dtype : numpy dtype, optional
        ``numpy.uint16`` (default) or ``numpy.uint8``.
    version : int, optional
        ``0x7`` (packed), ``0x1000000`` (default) or ``0x2000000`` (framed).
    trailer_size : int or "auto", optional
        Framed layout only: 16, 32, or a multiple of 4 of at least 512. The
        default ``"auto"`` gives 32, or 16 when there are no stored pixels but
        a reader's fallback rule would look for them (see
        :func:`write_dcimg`).
    stored_pixels_row : int, optional
        Row whose 8 bytes the camera overwrote with ``0, max, 0, max, ...``
        in every frame (the true values, zeros, go to the trailer or footer);
        ``None`` (default) for none.
    stored_pixels_column : int, optional
        Pixel column where the overwritten bytes start.
    bytes_per_row : int, optional
        Row stride in bytes; the padding is zero here (holes), unlike the
        ``0xa5`` bytes of :func:`write_dcimg`.
    sub_array : tuple of 4 int, optional
        ``(x0, y0, width, height)`` on the sensor (see :func:`write_dcimg`).
    binning : int, optional
        Binning factor.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If an argument is invalid (the same rules as :func:`write_dcimg`).

    Notes
    -----
    Frame ``k`` has frame counter ``k`` and the default time stamps of
    :func:`write_dcimg`. A correct reader returns zeros for every pixel
    (with ``first_4px_correction_enabled`` True or False); with the
    correction off (``None``) the overwritten pixels show the camera's
    pattern.

    Examples
    --------
    A 1 GB acquisition that takes a few kilobytes of disk:

    >>> import pathlib, tempfile
    >>> from dcimg.testing import write_sparse_dcimg
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> path = write_sparse_dcimg(
    ...     folder / "big.dcimg", 128, 2048, 2048, stored_pixels_row=1023
    ... )
    >>> path.stat().st_size
    1073746864
    >>> tmp.cleanup()
    """
    dtype = _check_stack(dtype, nframes, height, width)
    nframes, height, width = int(nframes), int(height), int(width)
    layout = _layout(
        (nframes, height, width),
        dtype.itemsize,
        version=version,
        bytes_per_row=bytes_per_row,
        trailer_size=trailer_size,
        stored_pixels_row=stored_pixels_row,
        stored_pixels_column=stored_pixels_column,
        kind4_block=True,
        block_table=True,
        camera_block_offset=FIXED_CAMERA_BLOCK_OFFSET,
        camera_model="C11440-22C",
        camera_serial="301234",
        camera_versions=("4.11.523", "1.0", "2.0"),
        sub_array=sub_array,
        binning=binning,
        header_size=None,
        footer_table_offset=272,
        nsessions=1,
    )
    table = _frame_table(nframes, nframes, None, None)
    offset = layout.stored_offset
    stored = None
    if not layout.framed and offset is not None:
        stored = np.zeros((nframes, _STORED_BYTES), dtype=np.uint8)
    tail = _tail(layout, table, stored)
    # (offset in the frame, bytes) written into every frame besides holes.
    pieces = [] if offset is None else [(offset, _stored_pattern(dtype))]
    path = pathlib.Path(path)
    with _atomic_output(path) as fh:
        fh.truncate(layout.file_size)
        fh.write(_head(layout))
        if pieces or layout.framed:
            for k in range(nframes):
                frame = layout.first_frame + k * layout.stride
                for at, piece in pieces:
                    fh.seek(frame + at)
                    fh.write(piece)
                if layout.framed:
                    # Counter and time stamp; the true stored bytes are zero.
                    fh.seek(frame + layout.bytes_per_image)
                    fh.write(table[k].tobytes())
        fh.seek(layout.file_size - len(tail))
        fh.write(tail)
    return path


def write_series(
    folder: str | os.PathLike[str],
    data: np.ndarray,
    *,
    name: str = "image",
    axes: str | None = None,
    separator: str = "_",
    digits: int = 3,
    start: int = 0,
    **write_dcimg_options: object,
) -> np.ndarray:
    """Write an image grid as numbered DCIMG files, the way HCImage names them.

    Every file is named ``<name><sep><i><sep><j>...dcimg`` with one
    zero-padded counter per grid axis, e.g. ``cell_000_012.dcimg``; this is
    the naming :class:`dcimg.DCIMGSeries` parses.

    Parameters
    ----------
    folder : str or os.PathLike
        Existing folder that receives the files; files of the same names are
        overwritten.
    data : numpy.ndarray
        The true pixels, uint8 or uint16.  Its leading axes are the grid of
        files and the rest is each file's stack.
    name : str, default "image"
        Start of every file name.
    axes : str, optional
        One letter per grid axis.  Only its length is used: the leading
        ``len(axes)`` dimensions of `data` are the grid and every file holds
        the remaining ``(frames, height, width)`` or, with two dimensions
        left, one frame ``(height, width)``.  By default the grid is every
        dimension but the last three.
    separator : str, default "_"
        Text between the name and the counters (``"_"`` or ``"-"``).
    digits : int, default 3
        Counters are zero-padded to this many digits (``1``: no padding, so
        ``_9`` is followed by ``_10``).
    start : int, default 0
        Value of the first counter along every axis.
    **write_dcimg_options
        Passed to :func:`write_dcimg` for every file.  Unless given, the
        frame counters and time stamps run on from file to file (in counter
        order), as in one acquisition split into files.

    Returns
    -------
    numpy.ndarray
        The paths written (:class:`pathlib.Path` objects), shaped like the
        grid.

    Raises
    ------
    ValueError
        If `data` has the wrong number of dimensions for `axes`, or an
        option is invalid.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from dcimg.testing import write_series
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_series(folder, np.zeros((2, 3, 1, 8, 8), np.uint16))
    ...     print(paths.shape, paths[1, 2].name)
    (2, 3) image_001_002.dcimg
    """
    data = np.asarray(data)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if separator not in ("_", "-"):
        raise ValueError(f"separator must be '_' or '-', not {separator!r}")
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)):
        raise ValueError(f"digits must be an integer, got {digits!r}")
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise ValueError(f"start must be an integer, got {start!r}")
    if start < 0:
        raise ValueError(f"start must not be negative, got {start}")
    ngrid = data.ndim - 3 if axes is None else len(axes)
    per_file = data.ndim - ngrid
    if ngrid < 0 or per_file not in (2, 3):
        raise ValueError(
            f"data of shape {data.shape} does not split into a grid of "
            f"{ngrid} axes (axes={axes!r}) and per-file stacks of 2 or 3 axes"
        )
    grid = data.shape[:ngrid]
    nframes = 1 if per_file == 2 else data.shape[-3]
    paths = np.empty(grid, dtype=object)
    for flat, position in enumerate(np.ndindex(*grid)):
        stem = name + "".join(f"{separator}{start + i:0{digits}d}" for i in position)
        frames = data[position]
        if per_file == 2:
            frames = frames[np.newaxis]
        options: dict[str, Any] = dict(write_dcimg_options)
        # One acquisition split into files: counters and time run on.
        counters = np.arange(flat * nframes, (flat + 1) * nframes, dtype=np.int64)
        options.setdefault("framestamps", counters)
        options.setdefault(
            "timestamps_us",
            DEFAULT_T0_US + np.round(counters * FRAME_PERIOD_US).astype(np.int64),
        )
        paths[position] = write_dcimg(folder / f"{stem}.dcimg", frames, **options)
    return paths
