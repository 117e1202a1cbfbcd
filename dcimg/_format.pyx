# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""DCIMG header parsing: the only code in the package that knows byte offsets.

:func:`parse_layout` reads a DCIMG file's headers through a ``fetch``
callable (which returns the bytes at a given offset, from a memory map or a
range reader alike) and returns one :class:`dcimg._layout.Layout` record that
describes where everything lives (frames, rows, per-frame counters, time
stamps and stored pixels) as offsets and strides.  Everything downstream
works from the record.  Only the headers are fetched: the start of the file
and, for packed files, the footer after the last frame.

Every offset is checked against the file size before it is read, and every
field is checked against the others; a failure raises
:class:`dcimg.errors.DCIMGFormatError` naming the field and its values.
Offsets follow :doc:`/format` (``docs/format.rst``).  Each header
structure is declared once, as a table of its fields (``FILE_HEADER_FIELDS``
and the others); the parser, the quick probe and the historical structured
dtypes (``FILE_HDR_DTYPE`` and the others) are all made from the tables.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport strncmp

import errno
import os
import sys

import numpy

from dcimg._layout import Layout
from dcimg._local import READ_ONLY_FLAGS, open_regular_file
from dcimg.errors import DCIMGFormatError

# How os.fsencode() encodes names, for encoding many at once.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()

# Layout kinds, numbered as the historical ``DCIMGFile.FMT_*`` constants.
FMT_OLD = 1  # packed: frames back to back, per-frame data in a footer
FMT_NEW = 2  # framed: every frame followed by a trailer

# Declared as C constants (for the nogil probe) that Python sees too.
cdef enum:
    _VERSION_PACKED = 0x7
    _VERSION_FRAMED = 0x1000000
    _VERSION_FRAMED_2 = 0x2000000
VERSION_PACKED = _VERSION_PACKED
VERSION_FRAMED = _VERSION_FRAMED
VERSION_FRAMED_2 = _VERSION_FRAMED_2

MAGIC = b"DCIMG\0\0\0"


# ----------------------------------------------------------------------
# The header structures, each declared once
#
# Each table lists one structure's fields in order as
# ``(name, offset, NumPy type code, label)``: ``name`` is the field's name
# in the historical structured dtype built from the table (FILE_HDR_DTYPE
# and the others below), ``label`` the name the parser's errors give the
# field, or None where the reader does not read it.  Every byte is listed,
# the gaps as the historical "skip" fields, so that the offsets are the
# dtype's.  The parser and the probe take their offsets and widths from
# here at import (``_field``, below): a format fix is one edit.  Offsets
# follow docs/format.rst.

#: The file header, at offset 0 (docs/format.rst, "The file header").
FILE_HEADER_FIELDS = (
    ("file_format", 0x00, "S8", "magic"),
    ("format_version", 0x08, "<u4", "format_version"),
    ("skip", 0x0C, "5<u4", None),
    ("nsess", 0x20, "<u4", "nsess"),
    ("nfrms", 0x24, "<u4", None),  # the session header's count is the one read
    ("header_size", 0x28, "<u4", "header_size"),
    ("skip2", 0x2C, "<u4", None),
    ("file_size", 0x30, "<u8", "file_size"),
    ("skip3", 0x38, "2<u4", None),
    ("file_size2", 0x40, "<u8", None),
)
#: The session header of a packed (version 0x7) file, at ``header_size``.
PACKED_SESSION_FIELDS = (
    ("session_size", 0x00, "<u8", "session_size"),
    ("skip1", 0x08, "6<u4", None),
    ("nfrms", 0x20, "<u4", "nfrms"),
    ("byte_depth", 0x24, "<u4", "byte_depth"),
    ("skip2", 0x28, "<u4", None),
    ("xsize", 0x2C, "<u4", "xsize"),
    ("bytes_per_row", 0x30, "<u4", "bytes_per_row"),
    ("ysize", 0x34, "<u4", "ysize"),
    ("bytes_per_img", 0x38, "<u4", "bytes_per_img"),
    ("skip3", 0x3C, "2<u4", None),
    ("offset_to_data", 0x44, "<u4", "offset_to_data"),
    ("session_data_size", 0x48, "<u8", "session_data_size"),
)
#: The session header of a framed file, at ``header_size``; height comes
#: before bytes per row here, and the data offset is a u64.
FRAMED_SESSION_FIELDS = (
    ("session_size", 0x00, "<u8", "session_size"),
    ("skip1", 0x08, "13<u4", None),
    ("nfrms", 0x3C, "<u4", "nfrms"),
    ("byte_depth", 0x40, "<u4", "byte_depth"),
    ("skip2", 0x44, "<u4", None),
    ("xsize", 0x48, "<u4", "xsize"),
    ("ysize", 0x4C, "<u4", "ysize"),
    ("bytes_per_row", 0x50, "<u4", "bytes_per_row"),
    ("bytes_per_img", 0x54, "<u4", "bytes_per_img"),
    ("skip3", 0x58, "2<u4", None),
    ("offset_to_data", 0x60, "<u8", "offset_to_data"),
    ("skip4", 0x68, "3<u4", None),
    ("bytes_per_frame", 0x74, "<u4", "frame_stride"),
    ("skip5", 0x78, "<u4", None),
    ("frame_footer_size", 0x7C, "<u4", "frame_footer_size"),
)
#: The footer of a packed file, after the frames (at ``S +
#: session_data_size``); names as the historical module gave them.
PACKED_FOOTER_FIELDS = (
    ("format_version", 0x00, "<u4", "footer marker"),
    ("skip0", 0x04, "<u4", None),
    ("offset_to_2nd_struct", 0x08, "<u8", "footer2_offset"),
    ("skip1", 0x10, "2<u4", None),
    ("offset_to_offset_to_end_of_data", 0x18, "<u8", None),
    ("skip2", 0x20, "2<u4", None),
    ("footer_size", 0x28, "<u4", None),
    ("skip3", 0x2C, "<u4", None),
    ("2nd_footer_size", 0x30, "<u4", None),
    ("skip4", 0x34, "19<u4", None),
    ("offset_to_end_of_data", 0x80, "<u8", None),
    ("skip5", 0x88, "<u8", None),
    ("offset_to_end_of_data_again", 0x90, "<u8", None),
    ("skip6", 0x98, "<u8", None),
)
#: The second footer structure of a packed file, at ``offset_to_2nd_struct``
#: from the footer; its table offsets count from the footer too.
PACKED_FOOTER2_FIELDS = (
    ("offset_to_offset_to_timestamps", 0x00, "<u8", None),
    ("skip0", 0x08, "2<u4", None),
    ("offset_to_offset_to_frame_counts", 0x10, "<u8", None),
    ("skip1", 0x18, "2<u4", None),
    ("offset_to_offset_to_4px", 0x20, "<u8", None),
    ("skip2", 0x28, "2<u4", None),
    ("offset_to_frame_counts", 0x30, "<u8", "framestamp_table_offset"),
    ("skip3", 0x38, "2<u4", None),
    ("offset_to_timestamps", 0x40, "<u8", "timestamp_table_offset"),
    ("skip4", 0x48, "4<u4", None),
    ("offset_to_4px", 0x58, "<u8", "stored_pixels_table_offset"),
    ("skip5", 0x60, "<u4", None),
    ("4px_offset_in_frame", 0x64, "<u4", "stored_pixels_offset"),
    ("4px_size", 0x68, "<u8", "stored_pixels_size"),
)
#: The trailer after each frame of a framed file, as written in 32-byte
#: trailers (16-byte ones end after the microseconds and their padding).
#: The historical module wrote the last field as "<u12", which NumPy
#: refuses: 3 x u4 here.
FRAME_TRAILER_FIELDS = (
    ("progressive_number", 0x00, "<u4", "frame counter"),
    ("timestamp", 0x04, "<u4", "seconds"),
    ("timestamp_frac", 0x08, "<u4", "microseconds"),
    ("4px", 0x0C, "<u8", "stored pixels"),
    ("zeros", 0x14, "3<u4", None),
)
#: The sensor sub-array, four u16 in sensor pixels, at ``_CAMERA_SUBARRAY``
#: in the camera block.
CROP_INFO_FIELDS = (
    ("x0", 0x00, "<u2", "sub-array x0"),
    ("xsize", 0x02, "<u2", "sub-array width"),
    ("y0", 0x04, "<u2", "sub-array y0"),
    ("ysize", 0x06, "<u2", "sub-array height"),
)
#: One entry of a framed file's block table, at ``S + BLOCK_TABLE``; the
#: block offset counts from ``S + BLOCK_BASE``.  (No historical dtype.)
BLOCK_ENTRY_FIELDS = (
    ("kind", 0x00, "<u4", "block kind"),
    ("size", 0x04, "<u4", "block size"),
    ("offset", 0x08, "<u8", "block offset"),
)
#: The kind-4 block: how many bytes of each frame the camera overwrote, and
#: where in the frame.  (No historical dtype.)
KIND4_BLOCK_FIELDS = (
    ("skip", 0x00, "3<u4", None),
    ("stored_pixels_size", 0x0C, "<u4", "stored_pixels_size"),
    ("stored_pixels_offset", 0x10, "<u4", "stored_pixels_offset"),
)


def _dtype_list(tuple table):
    """The structured-dtype list of ``table``, checked against its offsets.

    Run at import: a table whose offsets do not follow from the sizes of the
    fields before them (an edited offset, a gap without a skip field) is a
    programming error, refused before the reader can misread a file.
    """
    fields = []
    cdef Py_ssize_t at = 0
    for name, offset, code, _ in table:
        if offset != at:
            raise AssertionError(
                f"header table: field {name!r} is declared at {offset:#x}, "
                f"but the fields before it end at {at:#x}"
            )
        fields.append((name, code))
        at += numpy.dtype(code).itemsize
    return fields


# The historical structured dtypes of the headers (as exposed by earlier
# readers as ``DCIMGFile.*_DTYPE``), for users who decode headers themselves.
FILE_HDR_DTYPE = _dtype_list(FILE_HEADER_FIELDS)
SESS_HDR_DTYPE = _dtype_list(PACKED_SESSION_FIELDS)
NEW_SESSION_HEADER_DTYPE = _dtype_list(FRAMED_SESSION_FIELDS)
SESSION_FOOTER_DTYPE = _dtype_list(PACKED_FOOTER_FIELDS)
SESSION_FOOTER2_DTYPE = _dtype_list(PACKED_FOOTER2_FIELDS)
NEW_FRAME_FOOTER_DTYPE = _dtype_list(FRAME_TRAILER_FIELDS)
NEW_CROP_INFO = _dtype_list(CROP_INFO_FIELDS)


cdef struct Field:
    # One header field as the parser and the probe read it: the offset from
    # its structure's start, its width in bytes and (for error messages)
    # the index of its label in _LABELS.
    Py_ssize_t offset
    int nbytes
    Py_ssize_t label

# The labels of the fields below, in the order _field made them; the C
# struct cannot hold a Python string.
cdef list _LABELS = []


cdef Field _field(tuple table, str label) except *:
    """The field of ``table`` whose label is ``label``, for the reader.

    Integers must be little-endian and unsigned (the reader reads nothing
    else); text fields (``S``) give their length.
    """
    cdef Field f
    for name, offset, code, field_label in table:
        if field_label == label:
            dtype = numpy.dtype(code)
            if dtype.kind not in "uS" or dtype.shape or (
                    dtype.kind == "u" and dtype.byteorder == ">"):
                raise AssertionError(
                    f"header table: {name!r} ({code}) is not a little-endian "
                    "unsigned integer or text"
                )
            f.offset = offset
            f.nbytes = dtype.itemsize
            f.label = len(_LABELS)
            _LABELS.append(label)
            return f
    raise AssertionError(f"header table: no field labelled {label!r}")


cdef Py_ssize_t _end(tuple table, str name) except -1:
    """Where the field ``name`` of ``table`` ends (its offset + size)."""
    for field_name, offset, code, _ in table:
        if field_name == name:
            return offset + numpy.dtype(code).itemsize
    raise AssertionError(f"header table: no field named {name!r}")


cdef Py_ssize_t _size(tuple table) except -1:
    """The size of a structure: where its last field ends."""
    return _end(table, table[len(table) - 1][0])  # no wraparound here


# The fields the parser and the probe read, as C constants made once at
# import (reading one costs what reading a literal does).
cdef Field _FH_MAGIC = _field(FILE_HEADER_FIELDS, "magic")
cdef Field _FH_VERSION = _field(FILE_HEADER_FIELDS, "format_version")
cdef Field _FH_NSESS = _field(FILE_HEADER_FIELDS, "nsess")
cdef Field _FH_HEADER_SIZE = _field(FILE_HEADER_FIELDS, "header_size")
cdef Field _FH_FILE_SIZE = _field(FILE_HEADER_FIELDS, "file_size")

cdef Field _PS_SESSION_SIZE = _field(PACKED_SESSION_FIELDS, "session_size")
cdef Field _PS_NFRMS = _field(PACKED_SESSION_FIELDS, "nfrms")
cdef Field _PS_BYTE_DEPTH = _field(PACKED_SESSION_FIELDS, "byte_depth")
cdef Field _PS_XSIZE = _field(PACKED_SESSION_FIELDS, "xsize")
cdef Field _PS_BYTES_PER_ROW = _field(PACKED_SESSION_FIELDS, "bytes_per_row")
cdef Field _PS_YSIZE = _field(PACKED_SESSION_FIELDS, "ysize")
cdef Field _PS_BYTES_PER_IMG = _field(PACKED_SESSION_FIELDS, "bytes_per_img")
cdef Field _PS_OFFSET_TO_DATA = _field(PACKED_SESSION_FIELDS, "offset_to_data")
cdef Field _PS_DATA_SIZE = _field(PACKED_SESSION_FIELDS, "session_data_size")

cdef Field _NS_SESSION_SIZE = _field(FRAMED_SESSION_FIELDS, "session_size")
cdef Field _NS_NFRMS = _field(FRAMED_SESSION_FIELDS, "nfrms")
cdef Field _NS_BYTE_DEPTH = _field(FRAMED_SESSION_FIELDS, "byte_depth")
cdef Field _NS_XSIZE = _field(FRAMED_SESSION_FIELDS, "xsize")
cdef Field _NS_YSIZE = _field(FRAMED_SESSION_FIELDS, "ysize")
cdef Field _NS_BYTES_PER_ROW = _field(FRAMED_SESSION_FIELDS, "bytes_per_row")
cdef Field _NS_BYTES_PER_IMG = _field(FRAMED_SESSION_FIELDS, "bytes_per_img")
cdef Field _NS_OFFSET_TO_DATA = _field(FRAMED_SESSION_FIELDS, "offset_to_data")
cdef Field _NS_STRIDE = _field(FRAMED_SESSION_FIELDS, "frame_stride")
cdef Field _NS_TRAILER = _field(FRAMED_SESSION_FIELDS, "frame_footer_size")

cdef Field _PF_MARKER = _field(PACKED_FOOTER_FIELDS, "footer marker")
cdef Field _PF_FOOTER2 = _field(PACKED_FOOTER_FIELDS, "footer2_offset")
cdef Field _F2_COUNTERS = _field(PACKED_FOOTER2_FIELDS, "framestamp_table_offset")
cdef Field _F2_TIMES = _field(PACKED_FOOTER2_FIELDS, "timestamp_table_offset")
cdef Field _F2_STORED_TABLE = _field(PACKED_FOOTER2_FIELDS,
                                     "stored_pixels_table_offset")
cdef Field _F2_STORED_OFFSET = _field(PACKED_FOOTER2_FIELDS, "stored_pixels_offset")
cdef Field _F2_STORED_SIZE = _field(PACKED_FOOTER2_FIELDS, "stored_pixels_size")

cdef Field _TR_COUNTER = _field(FRAME_TRAILER_FIELDS, "frame counter")
cdef Field _TR_SECONDS = _field(FRAME_TRAILER_FIELDS, "seconds")
cdef Field _TR_MICROSECONDS = _field(FRAME_TRAILER_FIELDS, "microseconds")
cdef Field _TR_STORED = _field(FRAME_TRAILER_FIELDS, "stored pixels")

cdef Field _CROP_X0 = _field(CROP_INFO_FIELDS, "sub-array x0")
cdef Field _CROP_WIDTH = _field(CROP_INFO_FIELDS, "sub-array width")
cdef Field _CROP_Y0 = _field(CROP_INFO_FIELDS, "sub-array y0")
cdef Field _CROP_HEIGHT = _field(CROP_INFO_FIELDS, "sub-array height")

cdef Field _BE_KIND = _field(BLOCK_ENTRY_FIELDS, "block kind")
cdef Field _BE_SIZE = _field(BLOCK_ENTRY_FIELDS, "block size")
cdef Field _BE_OFFSET = _field(BLOCK_ENTRY_FIELDS, "block offset")
cdef Field _K4_SIZE = _field(KIND4_BLOCK_FIELDS, "stored_pixels_size")
cdef Field _K4_OFFSET = _field(KIND4_BLOCK_FIELDS, "stored_pixels_offset")

# The magic as one little-endian word, which the probe compares in one go.
if _FH_MAGIC.nbytes != 8 or len(MAGIC) != 8:
    raise AssertionError("header table: the magic is not the 8 bytes of MAGIC")
cdef uint64_t _MAGIC_WORD = int.from_bytes(MAGIC, "little")

# Structure sizes: what must be in the file before a structure is read.
cdef Py_ssize_t _FILE_HEADER_SIZE = _size(FILE_HEADER_FIELDS)
cdef Py_ssize_t _PACKED_SESSION_HEADER_SIZE = _size(PACKED_SESSION_FIELDS)
cdef Py_ssize_t _FRAMED_SESSION_HEADER_SIZE = _size(FRAMED_SESSION_FIELDS)
cdef Py_ssize_t _FOOTER2_SIZE = _size(PACKED_FOOTER2_FIELDS)
cdef Py_ssize_t _BLOCK_ENTRY_SIZE = _size(BLOCK_ENTRY_FIELDS)
cdef Py_ssize_t _KIND4_BLOCK_SIZE = _size(KIND4_BLOCK_FIELDS)
cdef Py_ssize_t _CROP_INFO_SIZE = _size(CROP_INFO_FIELDS)
# A packed footer shorter than its head (marker to footer_size, padded to
# 8 bytes) means the file was cut there.
cdef Py_ssize_t _FOOTER_HEAD = (_end(PACKED_FOOTER_FIELDS, "footer_size") + 7) & ~7
FILE_HEADER_SIZE = _FILE_HEADER_SIZE
PACKED_SESSION_HEADER_SIZE = _PACKED_SESSION_HEADER_SIZE
FRAMED_SESSION_HEADER_SIZE = _FRAMED_SESSION_HEADER_SIZE

# Framed files: the block table starts here, block offsets count from
# BLOCK_BASE (both relative to the session header).
BLOCK_TABLE = 0xF0
BLOCK_BASE = 0xA0
BLOCK_CAMERA = 3
BLOCK_STORED_PIXELS = 4
CAMERA_BLOCK_SIZE = 0xF8
# Where older readers expect the camera block when there is no block table.
FIXED_CAMERA_BLOCK = 0x200
# Fields of the camera block (relative to its start): text, then the
# sub-array (CROP_INFO_FIELDS).
_CAMERA_TEXT_FIELDS = {
    "version_0": (0x00, 0x20),
    "version_1": (0x20, 0x20),
    "model": (0x40, 0x40),
    "version_2": (0x80, 0x10),
    "serial": (0x90, 0x38),
}
_CAMERA_SUBARRAY = 0xC8
# Where the trailer after each frame of a framed file holds what; a trailer
# must hold the counter and time stamp, i.e. reach TRAILER_STORED_PIXELS.
TRAILER_COUNTER = _TR_COUNTER.offset
TRAILER_SECONDS = _TR_SECONDS.offset
TRAILER_MICROSECONDS = _TR_MICROSECONDS.offset
TRAILER_STORED_PIXELS = _TR_STORED.offset
#: The frame counter reported for a frame whose trailer was cut off.
MISSING_FRAMESTAMP = 0xFFFFFFFF
# The sensor row that ORCA-Flash cameras overwrite when the file does not say.
SENSOR_CENTRE_ROW = 1023
# A sanity bound for the block table walk; real files have three or four.
MAX_BLOCKS = 256
# Sizes recorded in u64 fields must fit the record's signed integers.
MAX_SIZE = 0x7FFFFFFFFFFFFFFF


def _reader_constants():
    """The fields and sizes that the parser and the probe read, as they are.

    For the tests, which check every one against the tables: a constant
    that stopped coming from its table (written in by hand, say) is caught
    there.

    Returns
    -------
    fields : dict
        ``{table name: [(label, offset, nbytes), ...]}``: each field read,
        with the offset and width the reader uses.
    sizes : dict
        ``{name: bytes}``: the structure sizes the reader checks against.
    """
    fields = {
        "FILE_HEADER_FIELDS": [_FH_MAGIC, _FH_VERSION, _FH_NSESS, _FH_HEADER_SIZE,
                               _FH_FILE_SIZE],
        "PACKED_SESSION_FIELDS": [
            _PS_SESSION_SIZE, _PS_NFRMS, _PS_BYTE_DEPTH, _PS_XSIZE,
            _PS_BYTES_PER_ROW, _PS_YSIZE, _PS_BYTES_PER_IMG, _PS_OFFSET_TO_DATA,
            _PS_DATA_SIZE],
        "FRAMED_SESSION_FIELDS": [
            _NS_SESSION_SIZE, _NS_NFRMS, _NS_BYTE_DEPTH, _NS_XSIZE, _NS_YSIZE,
            _NS_BYTES_PER_ROW, _NS_BYTES_PER_IMG, _NS_OFFSET_TO_DATA, _NS_STRIDE,
            _NS_TRAILER],
        "PACKED_FOOTER_FIELDS": [_PF_MARKER, _PF_FOOTER2],
        "PACKED_FOOTER2_FIELDS": [_F2_COUNTERS, _F2_TIMES, _F2_STORED_TABLE,
                                  _F2_STORED_OFFSET, _F2_STORED_SIZE],
        "FRAME_TRAILER_FIELDS": [_TR_COUNTER, _TR_SECONDS, _TR_MICROSECONDS,
                                 _TR_STORED],
        "CROP_INFO_FIELDS": [_CROP_X0, _CROP_WIDTH, _CROP_Y0, _CROP_HEIGHT],
        "BLOCK_ENTRY_FIELDS": [_BE_KIND, _BE_SIZE, _BE_OFFSET],
        "KIND4_BLOCK_FIELDS": [_K4_SIZE, _K4_OFFSET],
    }
    sizes = {
        "FILE_HEADER_FIELDS": _FILE_HEADER_SIZE,
        "PACKED_SESSION_FIELDS": _PACKED_SESSION_HEADER_SIZE,
        "FRAMED_SESSION_FIELDS": _FRAMED_SESSION_HEADER_SIZE,
        "PACKED_FOOTER2_FIELDS": _FOOTER2_SIZE,
        "BLOCK_ENTRY_FIELDS": _BLOCK_ENTRY_SIZE,
        "KIND4_BLOCK_FIELDS": _KIND4_BLOCK_SIZE,
        "CROP_INFO_FIELDS": _CROP_INFO_SIZE,
        "footer head": _FOOTER_HEAD,
    }
    return (
        {table: [(_LABELS[f["label"]], f["offset"], f["nbytes"]) for f in read]
         for table, read in fields.items()},
        sizes,
    )


cdef class _Bytes:
    """Bounds-checked little-endian reads of a file known by its size.

    The bytes come from ``fetch(offset, length)``, which returns at least
    ``length`` bytes starting at ``offset`` (more is welcome: they are kept
    and serve later reads).  Only what the headers need is ever fetched.
    """

    cdef Py_ssize_t size
    cdef object fetch
    cdef list segments  # (start, bytes) pairs fetched so far
    cdef const uint8_t[::1] seg
    cdef int64_t seg_start

    def __cinit__(self, Py_ssize_t size, object fetch):
        self.size = size
        self.fetch = fetch
        self.segments = []
        self.seg_start = -1

    cdef bint has(self, int64_t pos, int64_t nbytes) noexcept:
        return pos >= 0 and nbytes >= 0 and pos <= self.size - nbytes

    cdef _need(self, int64_t pos, int64_t nbytes, str what):
        if not self.has(pos, nbytes):
            raise DCIMGFormatError(
                f"{what}: bytes {pos:#x}..{pos + nbytes:#x} lie outside the "
                f"file ({self.size} bytes)",
                what,
            )

    cdef const uint8_t* at(self, int64_t pos, int64_t nbytes) except NULL:
        """Pointer to ``nbytes`` bytes at ``pos`` (inside the file)."""
        cdef int64_t start
        if not (self.seg_start >= 0 and pos >= self.seg_start
                and pos + nbytes <= self.seg_start + self.seg.shape[0]):
            for start, data in self.segments:
                if pos >= start and pos + nbytes <= start + len(data):
                    break
            else:
                data = bytes(self.fetch(pos, nbytes))
                if len(data) < nbytes:
                    raise DCIMGFormatError(
                        f"file size: {nbytes} bytes at {pos:#x} could not be "
                        f"read; the file (said to be {self.size} bytes) "
                        f"ends after {pos + len(data)}",
                        "file_size",
                    )
                start = pos
                self.segments.append((start, data))
            self.seg = data
            self.seg_start = start
        if nbytes == 0:
            return <const uint8_t*>"" if self.seg.shape[0] == 0 else &self.seg[0]
        return &self.seg[pos - self.seg_start]

    cdef uint64_t uint(
            self, int64_t pos, int nbytes, str what) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t v = 0
        cdef int i
        cdef const uint8_t* p
        self._need(pos, nbytes, what)
        p = self.at(pos, nbytes)
        for i in range(nbytes):
            v |= (<uint64_t>p[i]) << (8 * i)
        return v

    cdef uint64_t get(
            self, int64_t base, Field field) except? 0xFFFFFFFFFFFFFFFF:
        """The integer ``field`` of the structure that starts at ``base``."""
        return self.uint(base + field.offset, field.nbytes,
                         <str>_LABELS[field.label])

    cdef bytes raw(self, int64_t pos, int64_t length):
        """The bytes at ``pos`` (fewer where the file ends)."""
        length = max(0, min(length, self.size - pos))
        return (<const char*>self.at(pos, length))[:length]

    cdef str text(self, int64_t pos, int64_t length):
        """NUL-terminated ASCII text of at most ``length`` bytes, or ''."""
        if not self.has(pos, length):
            return ""
        raw = self.raw(pos, length).split(b"\0", 1)[0]
        return raw.decode("ascii", errors="replace").strip()


cdef int64_t _offset(uint64_t value, str what, Py_ssize_t size) except -1:
    """An offset or size field as a signed integer no larger than the file."""
    if value > <uint64_t>size:
        raise DCIMGFormatError(
            f"{what} = {value} ({value:#x}) is larger than the file "
            f"({size} bytes)",
            what,
        )
    return <int64_t>value


def _fail(str what, str message):
    raise DCIMGFormatError(f"{what}: {message}", what)


def parse_layout(Py_ssize_t size, fetch):
    """Parse a DCIMG file's headers into a :class:`~dcimg._layout.Layout`.

    Parameters
    ----------
    size : int
        The file's size in bytes.
    fetch : callable
        ``fetch(offset, length)`` returns at least ``length`` bytes of the
        file from ``offset`` (or fewer only where the file ends); a few
        kilobytes more than asked saves later calls.

    Returns
    -------
    Layout
        The validated description of the file.

    Raises
    ------
    dcimg.errors.DCIMGFormatError
        If the file is not DCIMG or any header field is inconsistent.
    """
    cdef _Bytes b = _Bytes(size, fetch)
    f = {}
    notes = []

    head = b.raw(_FH_MAGIC.offset, _FH_MAGIC.nbytes)
    if head != MAGIC[:len(head)] or not head:
        raise DCIMGFormatError(
            f"magic: not a DCIMG file (starts with {head!r}, "
            f"expected {MAGIC!r})",
            "magic",
        )
    if size < FILE_HEADER_SIZE:
        raise DCIMGFormatError(
            f"file header: incomplete header (file still being written or "
            f"cut): the file is {size} bytes, shorter than the "
            f"{FILE_HEADER_SIZE}-byte DCIMG file header",
            "file_header",
        )

    version = b.get(0, _FH_VERSION)
    if version not in (VERSION_PACKED, VERSION_FRAMED, VERSION_FRAMED_2):
        raise DCIMGFormatError(
            f"format_version: unsupported DCIMG format version {version:#x} "
            f"(this reader knows 0x7, 0x1000000 and 0x2000000)",
            "format_version",
        )
    f["version"] = version
    f["file_size"] = size

    nsess = b.get(0, _FH_NSESS)
    if nsess == 0:
        _fail("nsess", "the file header declares 0 sessions")
    if nsess > size // PACKED_SESSION_HEADER_SIZE:
        _fail("nsess", f"the file header declares {nsess} sessions; a {size}-byte "
              "file cannot hold that many session headers")
    if nsess > 1:
        notes.append(
            f"the file declares {nsess} sessions; only the first is read "
            "(the layout of further sessions is unknown)"
        )
    f["nsessions"] = nsess
    recorded = b.get(0, _FH_FILE_SIZE)
    if recorded > MAX_SIZE:
        _fail("file_size", f"{recorded} ({recorded:#x}) is not a possible file size")
    f["recorded_file_size"] = recorded
    # A file shorter than the camera software wrote is an interrupted
    # acquisition or an incomplete copy: keep what is whole.
    truncated = recorded > <uint64_t>size
    f["truncated"] = truncated

    s = b.get(0, _FH_HEADER_SIZE)
    if s < FILE_HEADER_SIZE:
        _fail("header_size", f"{s} is smaller than the {FILE_HEADER_SIZE}-byte "
              "file header")

    if version == VERSION_PACKED:
        _parse_packed(b, s, f, notes)
    else:
        _parse_framed(b, s, f, notes)

    f.setdefault("stored_frames", f["frames"])
    f["notes"] = tuple(notes)
    return Layout(**f)


cdef _need_header(_Bytes b, dict f, int64_t pos, int64_t nbytes, str what):
    """Like ``b._need``, for a header that the file should hold whole.

    When the header lies within the size the file header records, the file
    is not corrupt but incomplete: still being written, or cut.
    """
    if (pos >= 0 and not b.has(pos, nbytes)
            and <uint64_t>(pos + nbytes) <= <uint64_t>f["recorded_file_size"]):
        raise DCIMGFormatError(
            f"{what}: incomplete header (file still being written or cut): "
            f"bytes {pos:#x}..{pos + nbytes:#x} reach past the end of the "
            f"file ({b.size} bytes)",
            what,
        )
    b._need(pos, nbytes, what)


cdef _check_geometry(_Bytes b, dict f, int64_t s, int64_t header_len):
    """Checks common to both layouts; fills byte depth and image geometry."""
    cdef int64_t size = b.size
    session_size = f.pop("session_size")
    if session_size > MAX_SIZE:
        _fail("session_size", f"{session_size} ({session_size:#x}) is "
              "not a possible session size")
    depth = f["byte_depth"]
    width = f["width"]
    height = f["height"]
    bpr = f["bytes_per_row"]
    bpi = f["bytes_per_image"]
    if depth not in (1, 2):
        _fail("byte_depth", f"{depth} bytes per pixel (expected 1 or 2)")
    if width == 0 or height == 0:
        _fail("xsize/ysize", f"the image is {width} x {height} pixels")
    if bpr < width * depth:
        _fail("bytes_per_row", f"{bpr} is less than width {width} x byte "
              f"depth {depth} = {width * depth}")
    if bpi != bpr * height:
        _fail("bytes_per_img", f"{bpi} differs from bytes_per_row {bpr} x "
              f"height {height} = {bpr * height}")
    # No check of bytes_per_img against the file size: a file whose headers
    # are whole but whose first frame is not (recording just started, or a
    # cut) holds zero frames, and is read as such.
    data = f["data_offset"]
    if data < s + header_len:
        _fail("offset_to_data", f"{data - s} ({data - s:#x}) puts the frame data "
              f"at {data:#x}, inside the {header_len:#x}-byte session header "
              f"at {s:#x}")
    if data > size:
        _fail("offset_to_data", f"{data - s} ({data - s:#x}) puts the frame data "
              f"at {data:#x}, past the end of the file ({size} bytes)")


cdef _no_frame_data(dict f):
    f["has_frame_data"] = False
    f["stamped_frames"] = 0
    f["counter_offset"] = 0
    f["counter_stride"] = 0
    f["seconds_offset"] = 0
    f["microseconds_offset"] = 0
    f["time_stride"] = 0


cdef _no_stored(dict f, bint lost=False):
    f["stored_bytes"] = 0
    f["stored_offset"] = 0
    f["stored_stride"] = 0
    f["stored_row"] = -1
    f["stored_column"] = -1
    f["stored_source"] = None
    f["stored_lost"] = lost


cdef _stored_position(dict f, uint64_t count, uint64_t in_frame, str source):
    """Validate and record where the overwritten pixels sit in each frame."""
    depth = f["byte_depth"]
    bpr = f["bytes_per_row"]
    if count % depth or count > f["width"] * depth:
        _fail("stored_pixels_size", f"{count} stored bytes do not fit a row of "
              f"{f['width']} pixels of {depth} bytes")
    row = in_frame // bpr
    within = in_frame % bpr
    if row >= f["height"] or within % depth or within + count > f["width"] * depth:
        _fail("stored_pixels_offset", f"in-frame byte offset {in_frame} "
              f"(row {row}, byte {within} of the row) with {count} stored "
              f"bytes lies outside the {f['height']} x {f['width']} image")
    f["stored_bytes"] = count
    f["stored_row"] = row
    f["stored_column"] = within // depth
    f["stored_source"] = source
    f["stored_lost"] = False


cdef _parse_packed(_Bytes b, int64_t s, dict f, list notes):
    cdef int64_t size = b.size
    _need_header(b, f, s, PACKED_SESSION_HEADER_SIZE, "session header")
    f["session_size"] = b.get(s, _PS_SESSION_SIZE)
    nframes = b.get(s, _PS_NFRMS)
    f["byte_depth"] = b.get(s, _PS_BYTE_DEPTH)
    f["width"] = b.get(s, _PS_XSIZE)
    f["bytes_per_row"] = b.get(s, _PS_BYTES_PER_ROW)
    f["height"] = b.get(s, _PS_YSIZE)
    f["bytes_per_image"] = b.get(s, _PS_BYTES_PER_IMG)
    f["data_offset"] = s + b.get(s, _PS_OFFSET_TO_DATA)
    f["frame_stride"] = f["bytes_per_image"]
    f["trailer_size"] = 0
    f["declared_frames"] = nframes
    _check_geometry(b, f, s, PACKED_SESSION_HEADER_SIZE)
    cdef int64_t data = f["data_offset"]
    cdef int64_t bpi = f["bytes_per_image"]
    data_size = b.get(s, _PS_DATA_SIZE)
    if data_size < <uint64_t>(data - s) + <uint64_t>nframes * <uint64_t>bpi:
        _fail("session_data_size", f"{data_size} bytes cannot hold the "
              f"{nframes} frames of {bpi} bytes that start {data - s} bytes "
              "into the session")
    complete = min(nframes, (size - data) // bpi)
    f["frames"] = complete
    footer = s + <int64_t>min(data_size, <uint64_t>size + 1)
    _no_frame_data(f)
    _no_stored(f)
    f["camera_model"] = ""
    f["camera_serial"] = ""
    f["camera_versions"] = ()
    f["sub_array"] = None
    f["sub_array_source"] = None
    f["binning"] = None
    cut = f["truncated"]
    if complete < nframes or not b.has(footer, _FOOTER_HEAD):
        # Interrupted: the footer tables that follow the last frame are gone.
        _footer_lost(f, notes, f"interrupted acquisition: the file holds "
                     f"{complete} complete frames of the {nframes} its header "
                     "declares, and its footer is missing")
        return
    f["truncated"] = False
    marker = b.get(footer, _PF_MARKER)
    if marker != VERSION_PACKED:
        _fail("footer marker", f"found {marker:#x} at {footer:#x}, expected 0x7 "
              f"(session_data_size {data_size} may be wrong)")
    f2 = footer + _offset(b.get(footer, _PF_FOOTER2),
                          "footer2_offset", size)
    cdef int64_t n = nframes
    if cut and not b.has(f2, _FOOTER2_SIZE):
        _footer_lost(f, notes, f"the file holds all {nframes} complete frames "
                     "its header declares but is cut inside its footer")
        return
    counters = footer + _offset(b.get(f2, _F2_COUNTERS),
                                "framestamp_table_offset", size)
    times = footer + _offset(b.get(f2, _F2_TIMES),
                             "timestamp_table_offset", size)
    if cut and not (b.has(counters, 4 * n) and b.has(times, 8 * n)):
        _footer_lost(f, notes, f"the file holds all {nframes} complete frames "
                     "its header declares but is cut inside its footer tables")
        return
    b._need(counters, 4 * n, "framestamp table")
    b._need(times, 8 * n, "timestamp table")
    f["has_frame_data"] = True
    f["stamped_frames"] = complete
    f["counter_offset"] = counters
    f["counter_stride"] = 4
    f["seconds_offset"] = times
    f["microseconds_offset"] = times + 4
    f["time_stride"] = 8
    stored_size = b.get(f2, _F2_STORED_SIZE)
    if stored_size:
        in_frame = b.get(f2, _F2_STORED_OFFSET)
        _stored_position(f, stored_size, in_frame, "footer")
        table = footer + _offset(b.get(f2, _F2_STORED_TABLE),
                                 "stored_pixels_table_offset", size)
        if cut and not b.has(table, <int64_t>stored_size * n):
            # Counters and time stamps survived; the stored pixels did not.
            f["truncated"] = True
            _no_stored(f, lost=True)
            notes.append(
                f"the file holds all {nframes} complete frames its header "
                "declares, with their frame counters and time stamps, but is cut "
                "inside its stored-pixel table: the stored pixels are lost, so "
                "pixels are returned as stored"
            )
            return
        b._need(table, <int64_t>stored_size * n, "stored pixels table")
        f["stored_offset"] = table
        f["stored_stride"] = stored_size


cdef _footer_lost(dict f, list notes, str what):
    """Record that a packed file lost its footer (an interrupted acquisition)."""
    f["truncated"] = True
    _no_frame_data(f)
    _no_stored(f, lost=True)
    notes.append(
        f"{what}: frame counters, time stamps and the stored pixels are lost, "
        "so pixels are returned as stored"
    )


cdef _parse_framed(_Bytes b, int64_t s, dict f, list notes):
    cdef int64_t size = b.size
    _need_header(b, f, s, FRAMED_SESSION_HEADER_SIZE, "session header")
    f["session_size"] = b.get(s, _NS_SESSION_SIZE)
    nframes = b.get(s, _NS_NFRMS)
    f["byte_depth"] = b.get(s, _NS_BYTE_DEPTH)
    f["width"] = b.get(s, _NS_XSIZE)
    f["height"] = b.get(s, _NS_YSIZE)
    f["bytes_per_row"] = b.get(s, _NS_BYTES_PER_ROW)
    f["bytes_per_image"] = b.get(s, _NS_BYTES_PER_IMG)
    to_data = b.get(s, _NS_OFFSET_TO_DATA)
    if size < s + to_data <= f["recorded_file_size"]:
        # Where the file header's own size says the headers end: the file is
        # not corrupt, only short (being written, or cut inside its headers).
        raise DCIMGFormatError(
            f"offset_to_data: incomplete header (file still being written or "
            f"cut): the frame data would start at {s + to_data:#x} "
            f"({to_data:#x} into the session), past the end of the file "
            f"({size} bytes)",
            "offset_to_data",
        )
    f["data_offset"] = s + _offset(to_data, "offset_to_data", size)
    stride = b.get(s, _NS_STRIDE)
    trailer = b.get(s, _NS_TRAILER)
    f["frame_stride"] = stride
    f["trailer_size"] = trailer
    f["declared_frames"] = nframes
    _check_geometry(b, f, s, FRAMED_SESSION_HEADER_SIZE)
    cdef int64_t bpi = f["bytes_per_image"]
    if trailer < TRAILER_STORED_PIXELS:
        _fail("frame_footer_size", f"{trailer} bytes cannot hold a frame "
              f"counter and a time stamp ({TRAILER_STORED_PIXELS} bytes)")
    if stride != bpi + trailer:
        _fail("frame_stride", f"{stride} differs from bytes_per_img {bpi} + "
              f"frame_footer_size {trailer} = {bpi + trailer}")
    _read_blocks(b, s, f, notes)

    # Where the overwritten pixels are, if anywhere.
    version = f["version"]
    kind4 = f.pop("_kind4", None)
    _no_stored(f)
    fallback = None
    if kind4 is not None:
        count, in_frame = kind4
        if count:
            if TRAILER_STORED_PIXELS + count > trailer:
                _fail("stored_pixels_size", f"the kind-4 block declares "
                      f"{count} stored bytes but the {trailer}-byte trailer "
                      f"has room for {trailer - TRAILER_STORED_PIXELS}")
            _stored_position(f, count, in_frame, "kind-4 block")
    elif trailer == 32 or trailer >= 512:
        # No kind-4 block: the historical rules (docs/format.rst, "Stored pixels").
        if version == VERSION_FRAMED_2:
            row = 0
            fallback = "fallback: row 0 (version 0x2000000)"
        else:
            y0 = f["sub_array"][1] if f["sub_array"] else 0
            binning = f["binning"] or 1
            row = (SENSOR_CENTRE_ROW - y0) // binning
            fallback = "fallback: sensor row 1023"
        if 0 <= row < f["height"] and 8 <= f["width"] * f["byte_depth"]:
            _stored_position(f, 8, row * f["bytes_per_row"], fallback)
        else:
            fallback = None

    # Frames whose pixels lie wholly inside the file; of those, the ones
    # whose trailer holds the counter and time stamp too, and the stored
    # pixels.  Only the last frame of a cut file can lack (part of) its
    # trailer: its pixels are as stored, its stamps and stored values lost.
    cdef int64_t data = f["data_offset"]
    complete = min(nframes, _whole_frames(size - data, bpi, stride))
    stamped = min(nframes, _whole_frames(size - data, bpi + TRAILER_STORED_PIXELS,
                                         stride))
    if fallback is not None:
        _check_fallback(b, f, complete, notes)
    valued = complete
    if f["stored_bytes"]:
        valued = min(nframes, _whole_frames(
            size - data, bpi + TRAILER_STORED_PIXELS + f["stored_bytes"], stride))
    f["frames"] = complete
    f["stamped_frames"] = stamped
    f["stored_frames"] = valued
    lost = []
    if stamped < complete:
        lost.append(
            f"its frame counter and time stamp are lost (framestamps "
            f"{MISSING_FRAMESTAMP:#x}, timestamp NaT)"
        )
    if valued < complete:
        lost.append(
            f"the stored values of its {f['stored_bytes'] // f['byte_depth']} "
            "overwritten pixels are lost (those pixels are returned as stored, "
            "or 0 when first_4px_correction_enabled is False)"
        )
    cut_trailer = ""
    if lost:
        cut_trailer = "; the trailer of the last one is cut, so " + " and ".join(lost)
    if complete < nframes:
        f["truncated"] = True
        notes.append(
            f"interrupted acquisition: the file holds {complete} complete "
            f"frames of the {nframes} its header declares{cut_trailer}"
        )
    elif f["truncated"] or cut_trailer:
        f["truncated"] = True
        notes.append(
            f"the file is {size} bytes, shorter than the "
            f"{f['recorded_file_size']} bytes its header records, but it holds "
            f"all {nframes} complete frames its header declares{cut_trailer}"
        )
    trailer0 = data + bpi
    f["has_frame_data"] = True
    f["counter_offset"] = trailer0 + TRAILER_COUNTER
    f["counter_stride"] = stride
    f["seconds_offset"] = trailer0 + TRAILER_SECONDS
    f["microseconds_offset"] = trailer0 + TRAILER_MICROSECONDS
    f["time_stride"] = stride
    if f["stored_bytes"]:
        f["stored_offset"] = trailer0 + TRAILER_STORED_PIXELS
        f["stored_stride"] = stride
    if complete == 0:
        # No frame in the file, so no trailer either: no counters or time
        # stamps (their offsets would lie past the end of the file).
        _no_frame_data(f)


cdef int64_t _whole_frames(int64_t room, int64_t need, int64_t stride):
    """Frames ``k`` whose first ``need`` bytes lie in ``room`` bytes."""
    return 0 if room < need else (room - need) // stride + 1


# Frames whose data are checked for the camera's pattern before a fallback
# row is trusted: all of them in files of up to this many frames, else this
# many spread evenly from the first to the last.
PATTERN_CHECKS = 16


cdef _check_fallback(_Bytes b, dict f, int64_t frames, list notes):
    """Keep a fallback stored-pixel position only where the pattern is.

    The fallback rows are guesses (docs/format.rst, "Stored pixels"): the position is
    used only when every checked frame holds the camera's ``0, max, 0, max``
    bytes there.  Otherwise the pixels are returned as stored, and the
    record says why.
    """
    cdef int64_t depth = f["byte_depth"]
    cdef int64_t count = f["stored_bytes"]
    cdef int64_t first = (f["data_offset"] + f["stored_row"] * f["bytes_per_row"]
                          + f["stored_column"] * depth)
    cdef int64_t stride = f["frame_stride"]
    if frames == 0:
        return  # nothing to check yet, nothing to correct either
    pattern = (b"\0" * depth + b"\xff" * depth) * (count // (2 * depth))
    if frames <= PATTERN_CHECKS:
        checked = range(frames)
    else:
        checked = sorted({(i * (frames - 1)) // (PATTERN_CHECKS - 1)
                          for i in range(PATTERN_CHECKS)})
    found = sum(b.raw(first + k * stride, count) == pattern for k in checked)
    if found == len(checked):
        return
    source = (f"{f['stored_source']} not applied: the camera's 0, max, 0, max "
              f"pattern is in {found} of the {len(checked)} frames checked there")
    row, column = f["stored_row"], f["stored_column"]
    _no_stored(f, lost=True)
    f["stored_row"] = row
    f["stored_column"] = column
    f["stored_source"] = source


cdef _read_blocks(_Bytes b, int64_t s, dict f, list notes):
    """Walk the block table; fill camera fields, sub-array and ``_kind4``."""
    cdef int64_t size = b.size
    cdef int64_t table = s + BLOCK_TABLE
    cdef int64_t data = f["data_offset"]
    cdef int64_t end = data
    cdef int64_t pos = table
    cdef int64_t start
    camera = -1
    kind4 = None
    nblocks = 0
    while pos + _BLOCK_ENTRY_SIZE <= end and b.has(pos, _BLOCK_ENTRY_SIZE):
        kind = b.get(pos, _BE_KIND)
        bsize = b.get(pos, _BE_SIZE)
        boff = b.get(pos, _BE_OFFSET)
        if kind == 0 and bsize == 0 and boff == 0:
            break
        nblocks += 1
        if nblocks > MAX_BLOCKS:
            _fail("block table", f"more than {MAX_BLOCKS} entries")
        start = s + BLOCK_BASE + _offset(boff, "block offset", size)
        if start < pos + _BLOCK_ENTRY_SIZE or start + <int64_t>bsize > data:
            _fail("block table", f"block {nblocks} (kind {kind}, {bsize} "
                  f"bytes) at {start:#x} overlaps the table or the frame data "
                  f"at {data:#x}")
        # The table ends where the first block begins.
        end = min(end, start)
        if kind == BLOCK_CAMERA and bsize >= _CAMERA_SUBARRAY + _CROP_INFO_SIZE:
            camera = start
        elif kind == BLOCK_STORED_PIXELS and bsize >= _KIND4_BLOCK_SIZE:
            kind4 = (b.get(start, _K4_SIZE), b.get(start, _K4_OFFSET))
        pos += _BLOCK_ENTRY_SIZE
    f["_kind4"] = kind4
    source = "block table"
    if nblocks == 0:
        # No table: older writers put the camera block at a fixed place.
        source = "fixed offset"
        if s + FIXED_CAMERA_BLOCK + CAMERA_BLOCK_SIZE <= data:
            camera = s + FIXED_CAMERA_BLOCK
    if camera < 0:
        f["camera_model"] = ""
        f["camera_serial"] = ""
        f["camera_versions"] = ()
        f["sub_array"] = None
        f["sub_array_source"] = None
        f["binning"] = None
        return
    text = {name: b.text(camera + off, length)
            for name, (off, length) in _CAMERA_TEXT_FIELDS.items()}
    serial = text["serial"]
    if serial.upper().startswith("S/N:"):
        serial = serial[4:].strip()
    f["camera_model"] = text["model"]
    f["camera_serial"] = serial
    f["camera_versions"] = (text["version_0"], text["version_1"],
                            text["version_2"])
    crop = camera + _CAMERA_SUBARRAY
    x0 = b.get(crop, _CROP_X0)
    sw = b.get(crop, _CROP_WIDTH)
    y0 = b.get(crop, _CROP_Y0)
    sh = b.get(crop, _CROP_HEIGHT)
    if sw == 0 or sh == 0:
        f["sub_array"] = None
        f["sub_array_source"] = None
        f["binning"] = None
        return
    f["sub_array"] = (x0, y0, sw, sh)
    f["sub_array_source"] = source
    width = f["width"]
    height = f["height"]
    if sw % width == 0 and sh % height == 0 and sw // width == sh // height:
        f["binning"] = sw // width
    else:
        f["binning"] = None
        notes.append(
            f"the sub-array ({sw} x {sh} sensor pixels) is not a whole "
            f"multiple of the frame ({width} x {height}): binning unknown"
        )


# ----------------------------------------------------------------------
# A quick look at a file's geometry, for series of many small files

cdef extern from *:
    """
    #include <fcntl.h>
    #include <sys/stat.h>
    #ifdef _WIN32
    #include <io.h>
    #else
    #include <unistd.h>
    #endif
    #ifndef O_CLOEXEC
    #define O_CLOEXEC 0
    #endif
    #ifndef O_BINARY
    #define O_BINARY 0
    #endif
    #ifndef O_NONBLOCK
    #define O_NONBLOCK 0
    #endif
    /* Files of one folder are opened by name relative to the folder
       (openat); not on Windows, nor for macOS before 10.10. */
    #if defined(_WIN32) || !defined(O_DIRECTORY)
    #define DCIMG_OPENAT 0
    #elif defined(__APPLE__)
    #include <AvailabilityMacros.h>
    #if MAC_OS_X_VERSION_MIN_REQUIRED >= 101000
    #define DCIMG_OPENAT 1
    #else
    #define DCIMG_OPENAT 0
    #endif
    #else
    #define DCIMG_OPENAT 1
    #endif
    #include <errno.h>
    /* A folder opened once, so that the files in it are opened by name
       alone (openat): the kernel then walks one path component per file,
       not every folder above it.  -1 where there is no openat. */
    static int dcimg_open_folder(const char *path) {
    #if DCIMG_OPENAT
        return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    #else
        (void)path;
        return -1;
    #endif
    }
    static void dcimg_close_folder(int folder) {
        if (folder >= 0) close(folder);
    }
    static int dcimg_open(int folder, const char *path, int flags) {
    #if DCIMG_OPENAT
        return folder >= 0 ? openat(folder, path, flags) : open(path, flags);
    #else
        (void)folder;
        return open(path, flags);
    #endif
    }
    /* Read up to n bytes from the start of a file (a name in folder, or a
       path when folder is -1) opened with flags (as dcimg._local opens
       files), with its size, modification time, device and inode (-1 for
       these two on Windows, whose C library has no inode); -1 when it
       cannot be opened or read, or is not a regular file. */
    static long long dcimg_head(int folder, const char *path, int flags,
                                unsigned char *buf, long long n,
                                long long *size, long long *mtime_ns,
                                long long *device, long long *inode) {
        struct stat info;
        long long got = 0, r;
        int fd = dcimg_open(folder, path, flags);
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            /* A write lease held elsewhere: wait for it, as Python does. */
            fd = dcimg_open(folder, path, flags & ~O_NONBLOCK);
        if (fd < 0) return -1;
        if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
            close(fd);
            return -1;
        }
        *size = (long long)info.st_size;
    #if defined(_WIN32)
        *device = -1;
        *inode = -1;
    #else
        *device = (long long)info.st_dev;
        *inode = (long long)info.st_ino;
    #endif
    #if defined(__APPLE__)
        *mtime_ns = (long long)info.st_mtimespec.tv_sec * 1000000000LL
                    + info.st_mtimespec.tv_nsec;
    #elif defined(_WIN32)
        *mtime_ns = (long long)info.st_mtime * 1000000000LL;
    #else
        *mtime_ns = (long long)info.st_mtim.tv_sec * 1000000000LL
                    + info.st_mtim.tv_nsec;
    #endif
        while (got < n) {
            r = read(fd, buf + got, (size_t)(n - got));
            if (r <= 0) break;
            got += r;
        }
        close(fd);
        return got;
    }
    """
    int DCIMG_OPENAT
    int dcimg_open_folder(const char* path) nogil
    void dcimg_close_folder(int folder) nogil
    long long dcimg_head(int folder, const char* path, int flags,
                         unsigned char* buf, long long n, long long* size,
                         long long* mtime_ns, long long* device,
                         long long* inode) nogil

#: Whether the probe opens the files of one folder by name in it (openat).
OPENS_BY_FOLDER = bool(DCIMG_OPENAT)

cdef enum:
    PROBE_BYTES = 4096


cdef inline uint64_t _le(const unsigned char* p, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


# The probe reads its fields at literal offsets and widths, which the
# compiler folds into single loads: reading them from the Field constants
# costs about 1% of a probe (measured), and a series probes thousands of
# files.  So these copy the tables, and _PROBE_LITERALS below is checked
# against the tables at import (and by tests/test_format_fields.py): a
# copy that drifts stops the import.
cdef enum:
    _PR_MAGIC = 0x00  # 8 bytes
    _PR_VERSION = 0x08  # file header, u32
    _PR_NSESS = 0x20  # u32
    _PR_HEADER_SIZE = 0x28  # u32
    _PR_FILE_HEADER_SIZE = 0x48
    _PR_PS_NFRMS = 0x20  # packed session header, u32 unless said
    _PR_PS_BYTE_DEPTH = 0x24
    _PR_PS_XSIZE = 0x2C
    _PR_PS_BYTES_PER_ROW = 0x30
    _PR_PS_YSIZE = 0x34
    _PR_PS_BYTES_PER_IMG = 0x38
    _PR_PS_OFFSET_TO_DATA = 0x44
    _PR_PS_DATA_SIZE = 0x48  # u64
    _PR_PS_SIZE = 0x50
    _PR_FOOTER_HEAD = 0x30
    _PR_NS_NFRMS = 0x3C  # framed session header, u32 unless said
    _PR_NS_BYTE_DEPTH = 0x40
    _PR_NS_XSIZE = 0x48
    _PR_NS_YSIZE = 0x4C
    _PR_NS_BYTES_PER_ROW = 0x50
    _PR_NS_BYTES_PER_IMG = 0x54
    _PR_NS_OFFSET_TO_DATA = 0x60  # u64
    _PR_NS_STRIDE = 0x74
    _PR_NS_TRAILER = 0x7C
    _PR_NS_SIZE = 0x80
    _PR_TRAILER_STORED = 0x0C

# (table, label): (offset, width) as _probe_parse reads them; sizes by name.
_PROBE_LITERALS = {
    ("FILE_HEADER_FIELDS", "magic"): (_PR_MAGIC, 8),
    ("FILE_HEADER_FIELDS", "format_version"): (_PR_VERSION, 4),
    ("FILE_HEADER_FIELDS", "nsess"): (_PR_NSESS, 4),
    ("FILE_HEADER_FIELDS", "header_size"): (_PR_HEADER_SIZE, 4),
    ("PACKED_SESSION_FIELDS", "nfrms"): (_PR_PS_NFRMS, 4),
    ("PACKED_SESSION_FIELDS", "byte_depth"): (_PR_PS_BYTE_DEPTH, 4),
    ("PACKED_SESSION_FIELDS", "xsize"): (_PR_PS_XSIZE, 4),
    ("PACKED_SESSION_FIELDS", "bytes_per_row"): (_PR_PS_BYTES_PER_ROW, 4),
    ("PACKED_SESSION_FIELDS", "ysize"): (_PR_PS_YSIZE, 4),
    ("PACKED_SESSION_FIELDS", "bytes_per_img"): (_PR_PS_BYTES_PER_IMG, 4),
    ("PACKED_SESSION_FIELDS", "offset_to_data"): (_PR_PS_OFFSET_TO_DATA, 4),
    ("PACKED_SESSION_FIELDS", "session_data_size"): (_PR_PS_DATA_SIZE, 8),
    ("FRAMED_SESSION_FIELDS", "nfrms"): (_PR_NS_NFRMS, 4),
    ("FRAMED_SESSION_FIELDS", "byte_depth"): (_PR_NS_BYTE_DEPTH, 4),
    ("FRAMED_SESSION_FIELDS", "xsize"): (_PR_NS_XSIZE, 4),
    ("FRAMED_SESSION_FIELDS", "ysize"): (_PR_NS_YSIZE, 4),
    ("FRAMED_SESSION_FIELDS", "bytes_per_row"): (_PR_NS_BYTES_PER_ROW, 4),
    ("FRAMED_SESSION_FIELDS", "bytes_per_img"): (_PR_NS_BYTES_PER_IMG, 4),
    ("FRAMED_SESSION_FIELDS", "offset_to_data"): (_PR_NS_OFFSET_TO_DATA, 8),
    ("FRAMED_SESSION_FIELDS", "frame_stride"): (_PR_NS_STRIDE, 4),
    ("FRAMED_SESSION_FIELDS", "frame_footer_size"): (_PR_NS_TRAILER, 4),
    ("FRAME_TRAILER_FIELDS", "stored pixels"): (_PR_TRAILER_STORED, 8),
}
_PROBE_SIZES = {
    "FILE_HEADER_FIELDS": _PR_FILE_HEADER_SIZE,
    "PACKED_SESSION_FIELDS": _PR_PS_SIZE,
    "FRAMED_SESSION_FIELDS": _PR_NS_SIZE,
    "footer head": _PR_FOOTER_HEAD,
}


def _check_probe_literals():
    """Raise AssertionError where a literal of the probe differs from its table."""
    fields, sizes = _reader_constants()
    read = {(table, label): (offset, nbytes)
            for table, found in fields.items() for label, offset, nbytes in found}
    for key, value in _PROBE_LITERALS.items():
        if read[key] != value:
            raise AssertionError(f"probe: {key} is read as (offset, width) "
                                 f"{value}, the table says {read[key]}")
    for key, value in _PROBE_SIZES.items():
        if sizes[key] != value:
            raise AssertionError(f"probe: {key} is taken as {value} bytes, "
                                 f"the table says {sizes[key]}")


_check_probe_literals()


cdef struct Probe:
    long long got, size, mtime_ns, device, inode
    uint64_t version, frames, height, width, depth
    int ok


cdef int _probe_parse(const unsigned char* buf, Probe* r) noexcept nogil:
    """Fill ``r`` from the first bytes of a file; 1 when it vouches for it."""
    cdef const unsigned char* p
    cdef uint64_t version, s, n, depth, width, height, bpr, bpi, data, stride
    cdef uint64_t trailer, data_size
    cdef uint64_t size = <uint64_t>r.size
    if r.got < _PR_FILE_HEADER_SIZE:
        return 0
    if _le(buf + _PR_MAGIC, 8) != _MAGIC_WORD:
        return 0
    version = _le(buf + _PR_VERSION, 4)
    s = _le(buf + _PR_HEADER_SIZE, 4)
    if _le(buf + _PR_NSESS, 4) != 1 or s < _PR_FILE_HEADER_SIZE:
        return 0
    if version == _VERSION_PACKED:
        if s + _PR_PS_SIZE > <uint64_t>r.got:
            return 0
        p = buf + s
        n = _le(p + _PR_PS_NFRMS, 4)
        depth = _le(p + _PR_PS_BYTE_DEPTH, 4)
        width = _le(p + _PR_PS_XSIZE, 4)
        bpr = _le(p + _PR_PS_BYTES_PER_ROW, 4)
        height = _le(p + _PR_PS_YSIZE, 4)
        bpi = _le(p + _PR_PS_BYTES_PER_IMG, 4)
        data = s + _le(p + _PR_PS_OFFSET_TO_DATA, 4)
        data_size = _le(p + _PR_PS_DATA_SIZE, 8)
        # Every frame, and a footer after them (its tables are not checked
        # here: the full parse does when the file is read).
        if data + n * bpi + _PR_FOOTER_HEAD > size or data_size < n * bpi:
            return 0
        if s + data_size + _PR_FOOTER_HEAD > size:
            return 0
    elif version == _VERSION_FRAMED or version == _VERSION_FRAMED_2:
        if s + _PR_NS_SIZE > <uint64_t>r.got:
            return 0
        p = buf + s
        n = _le(p + _PR_NS_NFRMS, 4)
        depth = _le(p + _PR_NS_BYTE_DEPTH, 4)
        width = _le(p + _PR_NS_XSIZE, 4)
        height = _le(p + _PR_NS_YSIZE, 4)
        bpr = _le(p + _PR_NS_BYTES_PER_ROW, 4)
        bpi = _le(p + _PR_NS_BYTES_PER_IMG, 4)
        data = s + _le(p + _PR_NS_OFFSET_TO_DATA, 8)
        stride = _le(p + _PR_NS_STRIDE, 4)
        trailer = _le(p + _PR_NS_TRAILER, 4)
        if trailer < _PR_TRAILER_STORED or stride != bpi + trailer:
            return 0
        # Every frame with its whole trailer.
        if n == 0 or data + n * stride > size:
            return 0
    else:
        return 0
    if (depth != 1 and depth != 2) or width == 0 or height == 0 or n == 0:
        return 0
    if bpr < width * depth or bpi != bpr * height or data > size or data < s:
        return 0
    r.version = version
    r.frames = n
    r.height = height
    r.width = width
    r.depth = depth
    return 1


#: Columns of :func:`probe_many`'s table.
PROBE_COLUMNS = ("version", "frames", "height", "width", "byte_depth", "size",
                 "mtime_ns", "device", "inode")


def probe_many(paths):
    """Geometry of complete DCIMG files from their first 4 KiB each.

    For checking many small files quickly (a series): each file costs one
    ``open``, ``fstat``, ``read`` and ``close`` done in C, without the GIL,
    on several threads (OpenMP) when there are many, and the answers land
    in one array, so that the caller checks thousands of files with a few
    NumPy comparisons.  Files of one folder are opened by name in it
    (``openat`` on the folder, opened once; see :data:`OPENS_BY_FOLDER`),
    with the flags of :data:`dcimg._local.READ_ONLY_FLAGS`.  A row's
    version is -1 whenever the quick look cannot vouch for the file -- it is
    not DCIMG, a field is out of range, the headers reach past the first
    4 KiB, or the file does not hold every frame its header declares -- so
    that the caller opens it fully (and gets the full parser's error).

    Parameters
    ----------
    paths : sequence of str
        The files.

    Returns
    -------
    numpy.ndarray
        ``int64``, shape ``(len(paths), 9)``: the :data:`PROBE_COLUMNS`
        ``(version, frames, height, width, byte_depth, size, mtime_ns,
        device, inode)`` of each file (the last four are its identity;
        device and inode are -1 on Windows).

    Raises
    ------
    OSError
        If a file cannot be opened or read (naming it).
    dcimg.DCIMGFormatError
        If a path is not a regular file (a folder, a FIFO), naming it.
    ValueError
        If a path holds a NUL character.
    """
    cdef Py_ssize_t n = len(paths), i, start = 0, at = 0
    # One encoded string for all the names, NUL between them: one call
    # instead of one os.fsencode() per file.  The bytes object also ends in
    # a NUL, so pointers into it are C strings.
    cdef bytes blob = "\0".join(paths).encode(_FS_ENCODING, _FS_ERRORS)
    cdef const char* chars = blob
    cdef Py_ssize_t length = len(blob)
    if n and blob.count(b"\0") != n - 1:
        for path in paths:
            if "\0" in path:
                raise ValueError(f"embedded null byte in the path {path!r}")
    table = numpy.full((n, len(PROBE_COLUMNS)), -1, dtype=numpy.int64)
    cdef int64_t[:, ::1] rows = table
    cdef const char** cnames = <const char**>malloc(max(n, 1) * sizeof(char*))
    cdef long long* got = <long long*>malloc(max(n, 1) * sizeof(long long))
    cdef Probe found
    cdef int threads = 2 if n >= 64 else 1
    cdef int folder = -1
    cdef int flags = READ_ONLY_FLAGS
    cdef Py_ssize_t common = 0
    cdef bytes folder_name
    if cnames == NULL or got == NULL:
        free(cnames)
        free(got)
        raise MemoryError()
    try:
        for i in range(length + 1):
            if i == length or chars[i] == 0:
                if at < n:
                    cnames[at] = chars + start
                at += 1
                start = i + 1
        # Files of one folder (a series) are opened by name in that folder.
        common = _common_folder(cnames, n, c"/")  # POSIX; no openat on Windows
        if common > 0 and n > 1:
            folder_name = chars[:common]
            folder = dcimg_open_folder(folder_name)
            if folder >= 0:
                for i in range(n):
                    cnames[i] += common
        with nogil:
            for i in prange(n, num_threads=threads, schedule="static"):
                found = _probe_one(folder, cnames[i], flags)
                got[i] = found.got
                if found.ok:
                    rows[i, 0] = <int64_t>found.version
                    rows[i, 1] = <int64_t>found.frames
                    rows[i, 2] = <int64_t>found.height
                    rows[i, 3] = <int64_t>found.width
                    rows[i, 4] = <int64_t>found.depth
                    rows[i, 5] = found.size
                    rows[i, 6] = found.mtime_ns
                    rows[i, 7] = found.device
                    rows[i, 8] = found.inode
        for i in range(n):
            if got[i] < 0:
                _refuse(paths[i])
        return table
    finally:
        dcimg_close_folder(folder)
        free(cnames)
        free(got)


def _refuse(path):
    """Raise the error that says why ``path`` could not be probed."""
    fd, _ = open_regular_file(path)  # missing, no permission, not a file
    os.close(fd)
    raise OSError(errno.EIO, "could not be read", path)


cdef Py_ssize_t _common_folder(const char** names, Py_ssize_t n, char sep) noexcept:
    """Length of the first name's folder (separator included), if every name
    starts with it; else 0 (also for a first name without a folder).

    What follows the folder must not start with a separator: openat() would
    take ``folder + "/x"`` as the absolute path ``/x``.
    """
    cdef Py_ssize_t length = 0, i, j = 0
    if n == 0:
        return 0
    while names[0][j] != 0:
        if names[0][j] == sep:
            length = j + 1
        j += 1
    for i in range(n if length else 0):
        if strncmp(names[i], names[0], length) != 0:  # stops at a shorter name's end
            return 0
        if names[i][length] == sep:
            return 0
    return length


cdef Probe _probe_one(int folder, const char* name, int flags) noexcept nogil:
    cdef unsigned char buf[PROBE_BYTES]
    cdef Probe r
    r.ok = 0
    r.got = dcimg_head(folder, name, flags, buf, PROBE_BYTES, &r.size, &r.mtime_ns,
                       &r.device, &r.inode)
    if r.got >= 0:
        r.ok = _probe_parse(buf, &r)
    return r


def probe(path):
    """Geometry of one complete DCIMG file, or None (see :func:`probe_many`).

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    tuple or None
        ``(version, frames, height, width, byte_depth, size, mtime_ns)``.
    """
    row = probe_many([path])[0, :7]
    return None if row[0] < 0 else tuple(row.tolist())
