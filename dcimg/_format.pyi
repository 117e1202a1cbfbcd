"""Type stubs for the compiled header parser :mod:`dcimg._format`."""

from typing import Any

FMT_OLD: int
FMT_NEW: int
VERSION_PACKED: int
VERSION_FRAMED: int
VERSION_FRAMED_2: int
MAGIC: bytes
FILE_HDR_DTYPE: list[tuple[str, str]]
SESS_HDR_DTYPE: list[tuple[str, str]]
NEW_SESSION_HEADER_DTYPE: list[tuple[str, str]]
SESSION_FOOTER2_DTYPE: list[tuple[str, str]]
NEW_CROP_INFO: list[tuple[str, str]]

class Layout:
    """Where everything in one DCIMG file lives (absolute offsets, strides)."""

    version: int
    fmt: int
    file_size: int
    recorded_file_size: int
    nsessions: int
    header_frames: int
    session_offset: int
    session_size: int
    declared_frames: int
    frames: int
    truncated: bool
    byte_depth: int
    width: int
    height: int
    bytes_per_row: int
    bytes_per_image: int
    data_offset: int
    frame_stride: int
    trailer_size: int
    footer_offset: int
    has_frame_data: bool
    counter_offset: int
    counter_stride: int
    seconds_offset: int
    microseconds_offset: int
    time_stride: int
    stored_bytes: int
    stored_offset: int
    stored_stride: int
    stored_row: int
    stored_column: int
    stored_source: str | None
    stored_lost: bool
    camera_model: str
    camera_serial: str
    camera_versions: tuple[str, ...]
    camera_block_offset: int
    sub_array: tuple[int, int, int, int] | None
    sub_array_source: str | None
    binning: int | None
    notes: tuple[str, ...]
    @property
    def stored_pixels(self) -> int: ...
    def as_dict(self) -> dict[str, Any]: ...

def parse_layout(buf: Any) -> Layout: ...
