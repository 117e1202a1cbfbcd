"""The parsed description of one DCIMG file: where everything lives.

:class:`Layout` is the only declaration of these fields.  The header parser
(:mod:`dcimg._format`, the one module that knows the format's byte offsets)
fills it; :class:`dcimg.DCIMGFile` reads pixels and per-frame data through it
and :meth:`dcimg.Metadata.from_layout` describes it to users.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Layout", "PACKED_VERSION"]

#: Format version of the packed layout (frames back to back, per-frame data
#: in footer tables); every other supported version is framed.
PACKED_VERSION = 0x7


class Layout(NamedTuple):
    """Where everything in one DCIMG file lives.

    Offsets are absolute byte offsets in the file and strides are in bytes.
    Built by :func:`dcimg._format.parse_layout`; immutable.  (A named tuple
    rather than a frozen dataclass: it is built on every open, and a series
    opens thousands of files.)
    """

    #: The header's format version (0x7, 0x1000000 or 0x2000000).
    version: int
    #: Size of the file when it was parsed, and the size its header records.
    file_size: int
    recorded_file_size: int
    #: Sessions the header declares (only the first is read).
    nsessions: int
    #: Frames the header declares, and frames wholly present in the file.
    declared_frames: int
    frames: int
    #: Frames whose counter and time stamp are in the file: ``frames``, or
    #: one fewer when the trailer of the last frame was cut off (its pixels
    #: are whole); 0 when the file has no per-frame data.
    stamped_frames: int
    #: The file is shorter than the camera software wrote it.
    truncated: bool
    #: Image geometry: bytes per pixel (1 or 2), pixels, bytes per row (with
    #: any padding) and per image.
    byte_depth: int
    width: int
    height: int
    bytes_per_row: int
    bytes_per_image: int
    #: Pixel [0, 0, 0], the distance between frames and the bytes after each
    #: frame (framed files; 0 for packed files).
    data_offset: int
    frame_stride: int
    trailer_size: int
    #: Per-frame counters and time stamps (seconds and microseconds, each a
    #: little-endian uint32): first offset and stride of each column.
    has_frame_data: bool
    counter_offset: int
    counter_stride: int
    seconds_offset: int
    microseconds_offset: int
    time_stride: int
    #: The stored pixels: bytes overwritten per frame (0 when none), where the
    #: true values of frame 0 are and the stride between frames, the row and
    #: first column overwritten, where the position came from, and whether
    #: the values were lost (an interrupted packed file); see also
    #: ``stored_frames`` below.
    stored_bytes: int
    stored_offset: int
    stored_stride: int
    stored_row: int
    stored_column: int
    stored_source: str | None
    stored_lost: bool
    #: Frames whose stored values are in the file: ``frames``, or one fewer
    #: when the trailer of the last frame (a framed file) was cut inside them;
    #: that frame's overwritten pixels are returned as stored.
    stored_frames: int
    #: The camera block, when the file has one.
    camera_model: str
    camera_serial: str
    camera_versions: tuple[str, ...]
    #: Sensor sub-array ``(x0, y0, width, height)``, where it came from, and
    #: the binning it implies.
    sub_array: tuple[int, int, int, int] | None
    sub_array_source: str | None
    binning: int | None
    #: Remarks about unusual content (issued as warnings on opening).
    notes: tuple[str, ...]

    @property
    def packed(self) -> bool:
        """True for the packed layout (version 0x7), False for framed files."""
        return self.version == PACKED_VERSION

    @property
    def stored_pixels(self) -> int:
        """Overwritten pixels per frame; 0 when none."""
        return self.stored_bytes // self.byte_depth

    def as_dict(self) -> dict[str, Any]:
        """Return every field as a plain ``dict``."""
        return self._asdict()
