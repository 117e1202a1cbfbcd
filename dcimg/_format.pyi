"""Type stubs for the compiled header parser :mod:`dcimg._format`."""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from dcimg._layout import Layout

FMT_OLD: int
FMT_NEW: int
VERSION_PACKED: int
VERSION_FRAMED: int
VERSION_FRAMED_2: int
MAGIC: bytes
# One header structure: (name, offset, NumPy type code, label or None).
_Fields = tuple[tuple[str, int, str, str | None], ...]

FILE_HEADER_FIELDS: _Fields
PACKED_SESSION_FIELDS: _Fields
FRAMED_SESSION_FIELDS: _Fields
PACKED_FOOTER_FIELDS: _Fields
PACKED_FOOTER2_FIELDS: _Fields
FRAME_TRAILER_FIELDS: _Fields
CROP_INFO_FIELDS: _Fields
BLOCK_ENTRY_FIELDS: _Fields
KIND4_BLOCK_FIELDS: _Fields
FILE_HEADER_SIZE: int
PACKED_SESSION_HEADER_SIZE: int
FRAMED_SESSION_HEADER_SIZE: int
TRAILER_COUNTER: int
TRAILER_SECONDS: int
TRAILER_MICROSECONDS: int
TRAILER_STORED_PIXELS: int
FILE_HDR_DTYPE: list[tuple[str, str]]
SESS_HDR_DTYPE: list[tuple[str, str]]
NEW_SESSION_HEADER_DTYPE: list[tuple[str, str]]
SESSION_FOOTER_DTYPE: list[tuple[str, str]]
SESSION_FOOTER2_DTYPE: list[tuple[str, str]]
NEW_FRAME_FOOTER_DTYPE: list[tuple[str, str]]
NEW_CROP_INFO: list[tuple[str, str]]
MISSING_FRAMESTAMP: int
PATTERN_CHECKS: int
BLOCK_BASE: int
BLOCK_CAMERA: int
BLOCK_STORED_PIXELS: int
BLOCK_TABLE: int
CAMERA_BLOCK_SIZE: int
FIXED_CAMERA_BLOCK: int
MAX_BLOCKS: int
MAX_SIZE: int
READ_ONLY_FLAGS: int
SENSOR_CENTRE_ROW: int

_PROBE_LITERALS: dict[tuple[str, str], tuple[int, int]]
_PROBE_SIZES: dict[str, int]

def _reader_constants() -> tuple[
    dict[str, list[tuple[str, int, int]]], dict[str, int]
]: ...
def parse_layout(size: int, fetch: Callable[[int, int], bytes]) -> Layout: ...
def probe(path: str) -> tuple[int, int, int, int, int, int, int] | None: ...

PROBE_COLUMNS: tuple[str, ...]
OPENS_BY_FOLDER: bool

def probe_many(paths: Sequence[str]) -> npt.NDArray[np.int64]: ...
