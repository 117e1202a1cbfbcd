"""Write synthetic DCIMG files, for tests and demonstrations.

The writer produces the layouts described in the project's format notes: the
packed layout of format version ``0x7`` (frames back to back, per-frame data in
footer tables) and the framed layout of versions ``0x1000000`` and
``0x2000000`` (a trailer after every frame, a block table and a camera block).
It stores images the way a camera does: when a stored-pixel row is requested,
8 bytes of that row are overwritten in every frame with the pattern
``0, max, 0, max, ...`` and the true bytes are kept in the footer table
(packed) or in the frame trailer (framed).

Only NumPy and the standard library are used, so this module can be imported
even when the compiled reader is not available.

Examples
--------
>>> from dcimg.testing import example_stack, write_dcimg
>>> stack = example_stack(nframes=4, height=16, width=24)
>>> write_dcimg("a.dcimg", stack, stored_pixels_row=3)  # doctest: +SKIP
PosixPath('a.dcimg')
"""

from __future__ import annotations

import dataclasses
import operator
import os
import pathlib
import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_T0_US",
    "FIXED_CAMERA_BLOCK_OFFSET",
    "FRAMED_VERSIONS",
    "FRAME_PERIOD_US",
    "MIN_FOOTER_TABLE_OFFSET",
    "PACKED_VERSION",
    "example_stack",
    "fallback_stored_pixels_row",
    "write_dcimg",
    "write_example",
    "write_sparse_dcimg",
    "write_series",
]

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

# Packed session header (relative to S).
_PS_SIZE = 0x00
_PS_NFRAMES = 0x20
_PS_BYTE_DEPTH = 0x24
_PS_UNKNOWN_28 = 0x28  # 1 in every file seen
_PS_WIDTH = 0x2C
_PS_BYTES_PER_ROW = 0x30
_PS_HEIGHT = 0x34
_PS_BYTES_PER_IMAGE = 0x38
_PS_DATA_OFFSET = 0x44
_PS_DATA_SIZE = 0x48
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

# Framed session header (relative to S).
_NS_SIZE = 0x00
_NS_NFRAMES = 0x3C
_NS_BYTE_DEPTH = 0x40
_NS_UNKNOWN_44 = 0x44  # 1 in every file seen
_NS_WIDTH = 0x48
_NS_HEIGHT = 0x4C
_NS_BYTES_PER_ROW = 0x50
_NS_BYTES_PER_IMAGE = 0x54
_NS_DATA_OFFSET = 0x60
_NS_STRIDE = 0x74
_NS_TRAILER = 0x7C
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
_CAM_SUBARRAY = 0xC8
# Frame data start at the first multiple of this after the camera block.
_DATA_ALIGN = 0x100
# Trailer fields.
_TR_STORED = 12
# Zero bytes after the last frame of framed files.
_FRAMED_TAIL = 64

_SENSOR_CENTRE_ROW = 1023


def _put(buf: bytearray, offset: int, fmt: str, *values: int) -> None:
    """Pack little-endian `values` into `buf` at `offset`."""
    struct.pack_into("<" + fmt, buf, offset, *values)


def _put_text(buf: bytearray, offset: int, field: tuple[int, int], text: str) -> None:
    """Store NUL-padded ASCII `text` in a camera-block field."""
    start = offset + field[0]
    raw = text.encode("ascii")
    buf[start : start + len(raw)] = raw


def _as_int(name: str, value: object) -> int:
    """Return `value` as an ``int`` or raise ``ValueError`` naming `name`."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


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
    """
    if version == FRAMED_VERSIONS[1]:
        return 0
    if sub_array_y0 <= _SENSOR_CENTRE_ROW < sub_array_y0 + height * binning:
        return (_SENSOR_CENTRE_ROW - sub_array_y0) // binning
    return None


def _default_timestamps(n: int) -> np.ndarray:
    """Return the default time stamps (microseconds) of `n` frames."""
    k = np.arange(n, dtype=np.float64)
    return DEFAULT_T0_US + np.round(k * FRAME_PERIOD_US).astype(np.int64)


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


def _frame_bytes(
    images: np.ndarray,
    bytes_per_row: int,
    stored_offset: int | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Lay images out as the camera stores them.

    Parameters
    ----------
    images : numpy.ndarray
        True images, shape ``(n, height, width)``, uint8 or uint16.
    bytes_per_row : int
        Row stride in bytes; bytes beyond the pixels are filled with junk.
    stored_offset : int or None
        In-frame byte offset of the 8 overwritten bytes, or ``None``.

    Returns
    -------
    frames : numpy.ndarray
        ``uint8`` array of shape ``(n, height * bytes_per_row)``.
    stored : numpy.ndarray or None
        ``uint8`` array of shape ``(n, 8)`` with the true overwritten bytes.
    """
    n, height, width = images.shape
    depth = images.dtype.itemsize
    little = images.astype(images.dtype.newbyteorder("<"), copy=False)
    pixels = np.ascontiguousarray(little).view(np.uint8)
    frames = np.full((n, height, bytes_per_row), _PAD_BYTE, dtype=np.uint8)
    frames[:, :, : width * depth] = pixels.reshape(n, height, width * depth)
    frames = frames.reshape(n, height * bytes_per_row)
    if stored_offset is None:
        return frames, None
    span = slice(stored_offset, stored_offset + _STORED_BYTES)
    stored = frames[:, span].copy()
    frames[:, span] = np.frombuffer(_stored_pattern(images.dtype), dtype=np.uint8)
    return frames, stored


def _stored_pattern(dtype: np.dtype) -> bytes:
    """Return the 8 bytes a camera writes over the stored pixels: 0, max, ..."""
    little = np.dtype(dtype).newbyteorder("<")
    pattern = np.zeros(_STORED_BYTES // little.itemsize, dtype=little)
    pattern[1::2] = np.iinfo(little).max
    return pattern.tobytes()


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """Validated image geometry and header placement shared by the writers."""

    version: int
    framed: bool
    depth: int
    width: int
    height: int
    bytes_per_row: int
    bytes_per_image: int
    sub_array: tuple[int, int, int, int]
    binning: int
    stored_offset: int | None
    header_size: int


def _geometry(
    height: int,
    width: int,
    depth: int,
    *,
    version: int,
    bytes_per_row: int | None,
    binning: int,
    sub_array: tuple[int, int, int, int] | None,
    stored_pixels_row: int | None,
    stored_pixels_column: int,
    header_size: int | None,
) -> _Geometry:
    """Validate the geometry options of the writers (see :func:`write_dcimg`)."""
    version = _as_int("version", version)
    framed = version in FRAMED_VERSIONS
    if version != PACKED_VERSION and not framed:
        raise ValueError(
            f"version must be 0x7, 0x1000000 or 0x2000000, got {version:#x}"
        )

    row_bytes = width * depth
    if bytes_per_row is None:
        bytes_per_row = row_bytes
    bytes_per_row = _as_int("bytes_per_row", bytes_per_row)
    if bytes_per_row < row_bytes:
        raise ValueError(
            f"bytes_per_row ({bytes_per_row}) must be at least width * byte "
            f"depth ({width} * {depth} = {row_bytes})"
        )
    bytes_per_image = bytes_per_row * height

    binning = _as_int("binning", binning)
    if binning < 1:
        raise ValueError(f"binning must be at least 1, got {binning}")
    if sub_array is None:
        sub_array = (0, 0, width * binning, height * binning)
    if len(sub_array) != 4:
        raise ValueError(f"sub_array must be (x0, y0, width, height), got {sub_array}")
    x0, y0, sub_w, sub_h = (_as_int("sub_array", v) for v in sub_array)
    if min(x0, y0, sub_w, sub_h) < 0 or max(x0, y0, sub_w, sub_h) > 0xFFFF:
        raise ValueError(f"sub_array values must fit in uint16, got {sub_array}")
    if (sub_w, sub_h) != (width * binning, height * binning):
        raise ValueError(
            f"sub_array size {sub_w}x{sub_h} must equal the frame size "
            f"{width}x{height} times binning {binning}"
        )

    # Stored ("4px") pixels.
    stored_offset = None
    if stored_pixels_row is not None:
        row = _as_int("stored_pixels_row", stored_pixels_row)
        col = _as_int("stored_pixels_column", stored_pixels_column)
        if not 0 <= row < height:
            raise ValueError(
                f"stored_pixels_row {row} is outside the frame (height {height})"
            )
        if col < 0 or col * depth + _STORED_BYTES > row_bytes:
            raise ValueError(
                f"stored_pixels_column {col}: the {_STORED_BYTES} stored bytes "
                f"must fit in a row of {width} pixels of {depth} byte(s)"
            )
        stored_offset = row * bytes_per_row + col * depth

    if header_size is None:
        header_size = _FRAMED_HEADER_SIZE if framed else _PACKED_HEADER_SIZE
    header_size = _as_int("header_size", header_size)
    if header_size < _FH_END or header_size % 8:
        raise ValueError(
            f"header_size must be a multiple of 8 and at least {_FH_END:#x}, "
            f"got {header_size:#x}"
        )

    return _Geometry(
        version=version,
        framed=framed,
        depth=depth,
        width=width,
        height=height,
        bytes_per_row=bytes_per_row,
        bytes_per_image=bytes_per_image,
        sub_array=(x0, y0, sub_w, sub_h),
        binning=binning,
        stored_offset=stored_offset,
        header_size=header_size,
    )


def write_dcimg(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    version: int = 0x1000000,
    bytes_per_row: int | None = None,
    trailer_size: int = 32,
    stored_pixels_row: int | None = None,
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
) -> pathlib.Path:
    """Write an image stack as a DCIMG file, the way a camera would.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; it is overwritten.
    data : numpy.ndarray
        The true image stack, shape ``(n, height, width)``, dtype uint8 or
        uint16. This is what a correct reader returns for the file.
    version : int, optional
        ``0x7`` (packed layout), ``0x1000000`` or ``0x2000000`` (framed).
    bytes_per_row : int, optional
        Row stride in bytes; default ``width * byte_depth``. Extra bytes are
        row padding, filled with the non-zero byte ``0xa5``.
    trailer_size : int, optional
        Framed layout only: size of the trailer after every frame, 16 (no
        stored pixels), 32, or a multiple of 4 that is at least 512.
    stored_pixels_row : int, optional
        Row whose 8 bytes the camera overwrote with ``0, max, 0, max, ...``;
        ``None`` (default) means no pixels are overwritten.
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
        For example a version 0x2000000 file without stored pixels needs
        ``trailer_size=16``.
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

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If an argument is invalid or the options contradict each other.
    """
    data = np.asarray(data)
    if data.dtype.kind != "u" or data.dtype.itemsize not in (1, 2):
        raise ValueError(f"data must be uint8 or uint16, got dtype {data.dtype}")
    if data.ndim != 3:
        raise ValueError(
            f"data must have 3 dimensions (frames, height, width), got {data.ndim}"
        )
    n, height, width = data.shape
    if min(n, height, width) < 1:
        raise ValueError(f"data must not be empty, got shape {data.shape}")
    depth = data.dtype.itemsize

    geometry = _geometry(
        height,
        width,
        depth,
        version=version,
        bytes_per_row=bytes_per_row,
        binning=binning,
        sub_array=sub_array,
        stored_pixels_row=stored_pixels_row,
        stored_pixels_column=stored_pixels_column,
        header_size=header_size,
    )
    if declared_frames is None:
        declared_frames = n
    declared_frames = _as_int("declared_frames", declared_frames)
    if declared_frames < n:
        raise ValueError(
            f"declared_frames ({declared_frames}) must be at least the number "
            f"of frames in data ({n})"
        )
    nsessions = _as_int("nsessions", nsessions)
    if nsessions < 1:
        raise ValueError(f"nsessions must be at least 1, got {nsessions}")

    # Per-frame counters and time stamps.
    if framestamps is None:
        framestamps = np.arange(n)
    counters = np.asarray(framestamps)
    if counters.shape != (n,):
        raise ValueError(
            f"framestamps must hold one value per frame ({n}), got shape "
            f"{counters.shape}"
        )
    if not np.issubdtype(counters.dtype, np.integer):
        raise ValueError(f"framestamps must be integers, got dtype {counters.dtype}")
    if counters.min() < 0 or counters.max() > _UINT32_MAX:
        raise ValueError("framestamps must fit in uint32")
    counters = counters.astype(np.int64)
    if timestamps_us is None:
        timestamps_us = _default_timestamps(n)
    stamps = np.asarray(timestamps_us)
    if stamps.shape != (n,):
        raise ValueError(
            f"timestamps_us must hold one value per frame ({n}), got shape "
            f"{stamps.shape}"
        )
    if not np.issubdtype(stamps.dtype, np.integer):
        raise ValueError(f"timestamps_us must be integers, got dtype {stamps.dtype}")
    stamps = stamps.astype(np.int64)
    if stamps.min() < 0 or stamps.max() // 1_000_000 > _UINT32_MAX:
        raise ValueError("timestamps_us must lie between 1970 and 2106")

    # Frames declared but not supplied: junk pixels, counters and time
    # stamps that continue those of the real frames.
    extra = declared_frames - n
    images = data
    if extra:
        rng = np.random.default_rng(declared_frames)
        junk = rng.integers(
            0,
            np.iinfo(data.dtype).max,
            (extra, height, width),
            dtype=data.dtype,
            endpoint=True,
        )
        images = np.concatenate([data, junk])
        counters = np.concatenate([counters, counters[-1] + 1 + np.arange(extra)])
        counters &= _UINT32_MAX
        period = np.round(np.arange(1, extra + 1) * FRAME_PERIOD_US)
        stamps = np.concatenate([stamps, stamps[-1] + period.astype(np.int64)])
    seconds = stamps // 1_000_000
    micros = stamps % 1_000_000

    frames, stored = _frame_bytes(
        images, geometry.bytes_per_row, geometry.stored_offset
    )
    plan = _plan(
        geometry,
        nframes=len(images),
        stored=stored,
        counters=counters,
        seconds=seconds,
        micros=micros,
        declared_frames=declared_frames,
        nsessions=nsessions,
        trailer_size=trailer_size,
        kind4_block=kind4_block,
        block_table=block_table,
        camera_block_offset=camera_block_offset,
        camera_texts=(camera_model, camera_serial, tuple(camera_versions)),
        footer_table_offset=footer_table_offset,
    )
    buf = plan.assemble(frames)
    file_size = len(buf)

    if truncate_to is not None:
        truncate_to = _as_int("truncate_to", truncate_to)
        if not 0 < truncate_to <= file_size:
            raise ValueError(
                f"truncate_to must lie in 1..{file_size} (the complete file "
                f"size), got {truncate_to}"
            )
        del buf[truncate_to:]

    path = pathlib.Path(path)
    path.write_bytes(buf)
    return path


@dataclasses.dataclass
class _Plan:
    """Where every part of a file goes, without the pixels.

    The file is ``head`` (file header, session header and blocks, up to the
    first frame), then ``nframes`` frames ``stride`` bytes apart, each an
    image of ``bytes_per_image`` bytes followed by its row of ``trailers``
    (framed layout; zero-padded to the stride), then ``tail`` (the packed
    footer, or the framed layout's zero bytes).
    """

    head: bytearray
    first: int
    stride: int
    nframes: int
    bytes_per_image: int
    trailers: np.ndarray | None
    tail: bytearray

    @property
    def size(self) -> int:
        """Size of the complete file in bytes."""
        return self.first + self.nframes * self.stride + len(self.tail)

    def assemble(self, frames: np.ndarray) -> bytearray:
        """Return the whole file given the stored frames ``(n, bytes per image)``."""
        buf = bytearray(self.size)
        buf[: len(self.head)] = self.head
        end = self.first + self.nframes * self.stride
        if self.trailers is None and self.stride == self.bytes_per_image:
            body = np.ascontiguousarray(frames)
        else:
            body = np.zeros((self.nframes, self.stride), dtype=np.uint8)
            body[:, : self.bytes_per_image] = frames
            if self.trailers is not None:
                at = self.bytes_per_image
                body[:, at : at + self.trailers.shape[1]] = self.trailers
        buf[self.first : end] = body.tobytes()
        buf[end:] = self.tail
        return buf


def _plan(
    geometry: _Geometry,
    *,
    nframes: int,
    stored: np.ndarray | None,
    counters: np.ndarray,
    seconds: np.ndarray,
    micros: np.ndarray,
    declared_frames: int,
    nsessions: int,
    trailer_size: int,
    kind4_block: bool,
    block_table: bool,
    camera_block_offset: int,
    camera_texts: tuple[str, str, tuple[str, ...]],
    footer_table_offset: int,
) -> _Plan:
    """Lay out a file (session and file header) for `nframes` frames."""
    g = geometry
    # What both layouts' session writers need.
    common = {
        "header_size": g.header_size,
        "nframes": nframes,
        "stored": stored,
        "stored_offset": g.stored_offset,
        "counters": counters,
        "seconds": seconds,
        "micros": micros,
        "depth": g.depth,
        "width": g.width,
        "height": g.height,
        "bytes_per_row": g.bytes_per_row,
        "bytes_per_image": g.bytes_per_image,
    }
    if g.framed:
        plan = _framed_session(
            **common,
            version=g.version,
            trailer_size=trailer_size,
            kind4_block=kind4_block,
            block_table=block_table,
            camera_block_offset=camera_block_offset,
            camera_texts=camera_texts,
            sub_array=g.sub_array,
            binning=g.binning,
        )
    else:
        plan = _packed_session(**common, footer_table_offset=footer_table_offset)
    buf = plan.head
    file_size = plan.size
    buf[: len(_MAGIC)] = _MAGIC
    _put(buf, _FH_VERSION, "I", g.version)
    _put(buf, _FH_NSESS, "I", nsessions)
    _put(buf, _FH_NFRAMES, "I", declared_frames)
    _put(buf, _FH_HEADER_SIZE, "I", g.header_size)
    _put(buf, _FH_FILE_SIZE, "Q", file_size)
    _put(buf, _FH_FILE_SIZE2, "Q", file_size)
    _put(buf, _FH_UNKNOWN_54, "I", 0x400)
    return plan


def _check_u32(name: str, value: int) -> None:
    """Raise ``ValueError`` when a header field does not fit in a u32."""
    if value > _UINT32_MAX:
        raise ValueError(f"{name} ({value}) does not fit in its 32-bit field")


def _packed_session(
    *,
    header_size: int,
    nframes: int,
    stored: np.ndarray | None,
    stored_offset: int | None,
    counters: np.ndarray,
    seconds: np.ndarray,
    micros: np.ndarray,
    depth: int,
    width: int,
    height: int,
    bytes_per_row: int,
    bytes_per_image: int,
    footer_table_offset: int,
) -> _Plan:
    """Lay out a packed (version 0x7) file; the file header is left blank."""
    footer_table_offset = _as_int("footer_table_offset", footer_table_offset)
    if footer_table_offset < MIN_FOOTER_TABLE_OFFSET or footer_table_offset % 4:
        raise ValueError(
            "footer_table_offset must be a multiple of 4 and at least "
            f"{MIN_FOOTER_TABLE_OFFSET}, got {footer_table_offset}"
        )
    _check_u32("bytes per image", bytes_per_image)
    start = header_size
    data_size = _PACKED_DATA_OFFSET + nframes * bytes_per_image
    counters_at = footer_table_offset
    stamps_at = counters_at + 4 * nframes
    stored_at = stamps_at + 8 * nframes
    footer_size = stored_at + (0 if stored is None else _STORED_BYTES * nframes)
    _check_u32("footer size", footer_size)
    first = start + _PACKED_DATA_OFFSET
    head = bytearray(first)
    buf = head
    _put(buf, start + _PS_SIZE, "Q", start + data_size + footer_size - start)
    _put(buf, start + _PS_NFRAMES, "I", nframes)
    _put(buf, start + _PS_BYTE_DEPTH, "I", depth)
    _put(buf, start + _PS_UNKNOWN_28, "I", 1)
    _put(buf, start + _PS_WIDTH, "I", width)
    _put(buf, start + _PS_BYTES_PER_ROW, "I", bytes_per_row)
    _put(buf, start + _PS_HEIGHT, "I", height)
    _put(buf, start + _PS_BYTES_PER_IMAGE, "I", bytes_per_image)
    _put(buf, start + _PS_DATA_OFFSET, "I", _PACKED_DATA_OFFSET)
    _put(buf, start + _PS_DATA_SIZE, "Q", data_size)

    # The footer, at F = S + data size; offsets below are relative to F.
    buf = bytearray(footer_size)
    foot = 0
    _put(buf, foot + _PF_MARKER, "I", PACKED_VERSION)
    _put(buf, foot + _PF_F2_OFFSET, "Q", _PF_F2)
    _put(buf, foot + _PF_SIZE, "I", footer_size)
    _put(buf, foot + _PF_UNKNOWN_30, "I", 32 * nframes)
    second = foot + _PF_F2
    _put(buf, second + _F2_COUNTERS, "Q", counters_at)
    _put(buf, second + _F2_TIMESTAMPS, "Q", stamps_at)
    if stored is not None:
        _put(buf, second + _F2_STORED, "Q", stored_at)
        _put(buf, second + _F2_STORED_OFFSET, "I", stored_offset)
        _put(buf, second + _F2_STORED_SIZE, "Q", _STORED_BYTES)

    table = np.empty((nframes, 3), dtype="<u4")
    table[:, 0] = counters
    table[:, 1] = seconds
    table[:, 2] = micros
    buf[foot + counters_at : foot + stamps_at] = table[:, 0].tobytes()
    buf[foot + stamps_at : foot + stored_at] = table[:, 1:].tobytes()
    if stored is not None:
        buf[foot + stored_at :] = stored.tobytes()
    return _Plan(
        head=head,
        first=first,
        stride=bytes_per_image,
        nframes=nframes,
        bytes_per_image=bytes_per_image,
        trailers=None,
        tail=buf,
    )


def _framed_session(
    *,
    header_size: int,
    version: int,
    nframes: int,
    stored: np.ndarray | None,
    stored_offset: int | None,
    counters: np.ndarray,
    seconds: np.ndarray,
    micros: np.ndarray,
    depth: int,
    width: int,
    height: int,
    bytes_per_row: int,
    bytes_per_image: int,
    trailer_size: int,
    kind4_block: bool,
    block_table: bool,
    camera_block_offset: int,
    camera_texts: tuple[str, str, tuple[str, ...]],
    sub_array: tuple[int, int, int, int],
    binning: int,
) -> _Plan:
    """Lay out a framed (version 0x1000000/0x2000000) file; file header blank."""
    trailer_size = _as_int("trailer_size", trailer_size)
    if trailer_size not in (16, 32) and (trailer_size < 512 or trailer_size % 4):
        raise ValueError(
            "trailer_size must be 16, 32, or a multiple of 4 of at least 512, "
            f"got {trailer_size}"
        )
    if trailer_size == 16 and stored_offset is not None:
        raise ValueError(
            "16-byte trailers (USB cameras) have no room for stored pixels; "
            "use stored_pixels_row=None or a larger trailer_size"
        )
    model, serial, versions = camera_texts
    if len(versions) != 3:
        raise ValueError(f"camera_versions must hold 3 strings, got {versions!r}")
    for i, (text, field) in enumerate(
        zip(versions, (_CAM_VERSION0, _CAM_VERSION1, _CAM_VERSION2), strict=True)
    ):
        _check_text(f"camera_versions[{i}]", text, field[1])
    _check_text("camera_model", model, _CAM_MODEL[1])
    serial_text = f"S/N: {serial}"
    _check_text("camera_serial", serial_text, _CAM_SERIAL[1])

    x0, y0, sub_w, sub_h = sub_array
    has_kind4 = block_table and kind4_block and stored_offset is not None
    if not has_kind4 and trailer_size != 16:
        # Without a kind-4 block a reader falls back to the historical rule
        # (this includes files without stored pixels): make the file obey it.
        rule_row = fallback_stored_pixels_row(version, y0, height, binning)
        row = column = None
        if stored_offset is not None:
            row = stored_offset // bytes_per_row
            column = stored_offset % bytes_per_row // depth
        if row != rule_row or column not in (None, 0):
            if not block_table:
                why = "without a block table"
            elif stored_offset is None:
                why = "without stored pixels there is no kind-4 block, so"
            else:
                why = "with kind4_block=False"
            raise ValueError(
                f"{why} a reader assumes the stored pixels at row {rule_row}, "
                f"column 0 (the rule for version {version:#x}, sub-array y0 {y0}, "
                f"binning {binning}); got stored_pixels_row={row}, column "
                f"{column}. Use trailer_size=16 for a file without stored pixels"
            )

    camera_block_offset = _as_int("camera_block_offset", camera_block_offset)
    entries = [(_KIND1, _KIND1_SIZE)]
    if has_kind4:
        entries.append((_KIND4, _KIND4_SIZE))
    entries.append((_KIND3, _CAMERA_SIZE))
    if block_table:
        # The table is followed by the small blocks, then (at the requested
        # offset) the camera block.
        position = _BLOCK_TABLE + _BLOCK_ENTRY * len(entries)
        positions = []
        for _, size in entries[:-1]:
            positions.append(position)
            position += size
        if camera_block_offset < position or camera_block_offset % 8:
            raise ValueError(
                "camera_block_offset must be a multiple of 8 and at least "
                f"{position:#x} (the end of the blocks before it), got "
                f"{camera_block_offset:#x}"
            )
        positions.append(camera_block_offset)
    elif camera_block_offset != FIXED_CAMERA_BLOCK_OFFSET:
        raise ValueError(
            "without a block table the camera block must sit at the fixed "
            f"offset {FIXED_CAMERA_BLOCK_OFFSET:#x}, got {camera_block_offset:#x}"
        )
    end_of_blocks = camera_block_offset + _CAMERA_SIZE
    data_offset = -(-end_of_blocks // _DATA_ALIGN) * _DATA_ALIGN

    stride = bytes_per_image + trailer_size
    _check_u32("bytes per image", bytes_per_image)
    _check_u32("frame stride", stride)
    start = header_size
    first = start + data_offset
    buf = bytearray(first)

    _put(buf, start + _NS_SIZE, "Q", first + nframes * stride + _FRAMED_TAIL - start)
    _put(buf, start + _NS_NFRAMES, "I", nframes)
    _put(buf, start + _NS_BYTE_DEPTH, "I", depth)
    _put(buf, start + _NS_UNKNOWN_44, "I", 1)
    _put(buf, start + _NS_WIDTH, "I", width)
    _put(buf, start + _NS_HEIGHT, "I", height)
    _put(buf, start + _NS_BYTES_PER_ROW, "I", bytes_per_row)
    _put(buf, start + _NS_BYTES_PER_IMAGE, "I", bytes_per_image)
    _put(buf, start + _NS_DATA_OFFSET, "Q", data_offset)
    _put(buf, start + _NS_STRIDE, "I", stride)
    _put(buf, start + _NS_TRAILER, "I", trailer_size)

    if block_table:
        for i, ((kind, size), where) in enumerate(zip(entries, positions, strict=True)):
            entry = start + _BLOCK_TABLE + _BLOCK_ENTRY * i
            _put(buf, entry, "IIQ", kind, size, where - _BLOCK_BASE)
        if has_kind4:
            kind4 = start + positions[1]
            _put(buf, kind4 + _K4_STORED_SIZE, "I", _STORED_BYTES)
            _put(buf, kind4 + _K4_STORED_OFFSET, "I", stored_offset)
        # The kind-1 block is all zeros in every file seen.

    camera = start + camera_block_offset
    for text, field in zip(
        versions, (_CAM_VERSION0, _CAM_VERSION1, _CAM_VERSION2), strict=True
    ):
        _put_text(buf, camera, field, text)
    _put_text(buf, camera, _CAM_MODEL, model)
    _put_text(buf, camera, _CAM_SERIAL, serial_text)
    _put(buf, camera + _CAM_SUBARRAY, "4H", x0, sub_w, y0, sub_h)

    # The used start of every trailer: counter, seconds, microseconds and
    # (when there are stored pixels) the true bytes; the rest stays zero.
    used = _TR_STORED + (0 if stored is None else _STORED_BYTES)
    trailers = np.zeros((nframes, used), dtype=np.uint8)
    stamps = np.zeros((nframes, 3), dtype="<u4")
    stamps[:, 0] = counters
    stamps[:, 1] = seconds
    stamps[:, 2] = micros
    trailers[:, :_TR_STORED] = stamps.view(np.uint8)
    if stored is not None:
        trailers[:, _TR_STORED:] = stored
    return _Plan(
        head=buf,
        first=first,
        stride=stride,
        nframes=nframes,
        bytes_per_image=bytes_per_image,
        trailers=trailers,
        tail=bytearray(_FRAMED_TAIL),
    )


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
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    for name, value in (("nframes", nframes), ("height", height), ("width", width)):
        if _as_int(name, value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
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
        Destination file; it is overwritten.

    Returns
    -------
    pathlib.Path
        The path written.
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


def write_sparse_dcimg(
    path: str | os.PathLike[str],
    nframes: int,
    height: int,
    width: int,
    *,
    dtype: npt.DTypeLike = np.uint16,
    version: int = 0x1000000,
    trailer_size: int = 32,
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
    (NTFS without the sparse flag, FAT) the file takes its full size.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; it is overwritten.
    nframes, height, width : int
        Shape of the stack.
    dtype : numpy dtype, optional
        ``numpy.uint16`` (default) or ``numpy.uint8``.
    version : int, optional
        ``0x7`` (packed), ``0x1000000`` (default) or ``0x2000000`` (framed).
    trailer_size : int, optional
        Framed layout only: 16, 32 (default), or a multiple of 4 of at least
        512.
    stored_pixels_row : int, optional
        Row whose 8 bytes the camera overwrote with ``0, max, 0, max, ...``
        in every frame (the true values, zeros, go to the trailer or footer);
        ``None`` for none.
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
    >>> from dcimg.testing import write_sparse_dcimg
    >>> write_sparse_dcimg(
    ...     "big.dcimg", 12_800, 2048, 2048, stored_pixels_row=1023
    ... )  # doctest: +SKIP
    PosixPath('big.dcimg')
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    for name, value in (("nframes", nframes), ("height", height), ("width", width)):
        if _as_int(name, value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    nframes, height, width = int(nframes), int(height), int(width)
    if nframes > _UINT32_MAX:
        raise ValueError(f"nframes ({nframes}) does not fit in its 32-bit field")
    geometry = _geometry(
        height,
        width,
        dtype.itemsize,
        version=version,
        bytes_per_row=bytes_per_row,
        binning=binning,
        sub_array=sub_array,
        stored_pixels_row=stored_pixels_row,
        stored_pixels_column=stored_pixels_column,
        header_size=None,
    )
    stamps = _default_timestamps(nframes)
    offset = geometry.stored_offset
    plan = _plan(
        geometry,
        nframes=nframes,
        stored=None if offset is None else np.zeros((nframes, 8), np.uint8),
        counters=np.arange(nframes, dtype=np.int64),
        seconds=stamps // 1_000_000,
        micros=stamps % 1_000_000,
        declared_frames=nframes,
        nsessions=1,
        trailer_size=trailer_size,
        kind4_block=True,
        block_table=True,
        camera_block_offset=FIXED_CAMERA_BLOCK_OFFSET,
        camera_texts=("C11440-22C", "301234", ("4.11.523", "1.0", "2.0")),
        footer_table_offset=272,
    )
    pattern = None if offset is None else _stored_pattern(dtype)
    path = pathlib.Path(path)
    with open(path, "wb") as fh:
        fh.truncate(plan.size)
        fh.write(plan.head)
        if pattern is not None or plan.trailers is not None:
            for k in range(nframes):
                frame = plan.first + k * plan.stride
                if pattern is not None:
                    fh.seek(frame + offset)
                    fh.write(pattern)
                if plan.trailers is not None:
                    fh.seek(frame + plan.bytes_per_image)
                    fh.write(plan.trailers[k].tobytes())
        fh.seek(plan.size - len(plan.tail))
        fh.write(plan.tail)
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
    >>> folder = tempfile.mkdtemp(dir=tmp_path)
    >>> paths = write_series(folder, np.zeros((2, 3, 1, 8, 8), np.uint16))
    >>> paths.shape, paths[1, 2].name
    ((2, 3), 'image_001_002.dcimg')
    """
    data = np.asarray(data)
    folder = pathlib.Path(folder)
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
        options = dict(write_dcimg_options)
        # One acquisition split into files: counters and time run on.
        counters = np.arange(flat * nframes, (flat + 1) * nframes, dtype=np.int64)
        options.setdefault("framestamps", counters)
        options.setdefault(
            "timestamps_us",
            DEFAULT_T0_US + np.round(counters * FRAME_PERIOD_US).astype(np.int64),
        )
        paths[position] = write_dcimg(folder / f"{stem}.dcimg", frames, **options)
    return paths
