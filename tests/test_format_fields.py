"""The header tables of :mod:`dcimg._format`: one declaration, three readers.

Each header structure is declared once in ``dcimg/_format.pyx`` as a table of
``(name, offset, type code, label)``; the parser, the quick probe and the
historical structured dtypes are made from it.  These tests hold them to
that:

- the dtype lists are the tables (names, offsets, sizes);
- every offset, width and size the parser and the probe read (as the
  module reports them, ``_reader_constants``, and the probe's literal
  copies, ``_PROBE_LITERALS``) is the table's;
- a round trip: files written by :func:`dcimg.testing.write_dcimg` (its own
  writer, with offsets of its own) in every version and layout it writes,
  decoded through the dtypes, say what :func:`~dcimg._format.parse_layout`
  and the probe report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcimg import _format
from dcimg.testing import example_stack, write_dcimg

# Each table, the historical dtype made from it (None: no historical dtype)
# and the structure's size as FORMAT.md and the historical module give it.
TABLES: dict[str, tuple[str | None, int]] = {
    "FILE_HEADER_FIELDS": ("FILE_HDR_DTYPE", 0x48),
    "PACKED_SESSION_FIELDS": ("SESS_HDR_DTYPE", 0x50),
    "FRAMED_SESSION_FIELDS": ("NEW_SESSION_HEADER_DTYPE", 0x80),
    "PACKED_FOOTER_FIELDS": ("SESSION_FOOTER_DTYPE", 0xA0),
    "PACKED_FOOTER2_FIELDS": ("SESSION_FOOTER2_DTYPE", 0x70),
    "FRAME_TRAILER_FIELDS": ("NEW_FRAME_FOOTER_DTYPE", 0x20),
    "CROP_INFO_FIELDS": ("NEW_CROP_INFO", 8),
    "BLOCK_ENTRY_FIELDS": (None, 0x10),
    "KIND4_BLOCK_FIELDS": (None, 0x14),
}


def table(name: str) -> tuple[tuple[str, int, str, str | None], ...]:
    return getattr(_format, name)  # type: ignore[no-any-return]


def dtype_of(name: str) -> np.dtype[Any]:
    """The structured dtype of a table, made here from the table alone."""
    return np.dtype([(field, code) for field, _, code, _ in table(name)])


def labelled(name: str) -> dict[str, tuple[int, str]]:
    """``{label: (offset, code)}`` of the fields of a table the reader reads."""
    return {
        label: (offset, code)
        for _, offset, code, label in table(name)
        if label is not None
    }


# ----------------------------------------------------------------------
# The tables and the dtypes


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_is_contiguous(name):
    """Offsets follow from the sizes before them: every byte is declared."""
    at = 0
    for field, offset, code, _ in table(name):
        assert offset == at, (name, field)
        at += np.dtype(code).itemsize
    assert at == TABLES[name][1]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_names_and_labels_are_unique(name):
    names = [field for field, _, _, _ in table(name)]
    labels = [label for _, _, _, label in table(name) if label is not None]
    assert len(set(names)) == len(names)
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize("name", sorted(n for n, (d, _) in TABLES.items() if d))
def test_dtype_list_is_the_table(name):
    """The public dtype lists: names, type codes, offsets and size."""
    dtype_name, size = TABLES[name]
    declared = getattr(_format, dtype_name)
    assert declared == [(field, code) for field, _, code, _ in table(name)]
    dtype = np.dtype(declared)
    assert dtype.itemsize == size
    for field, offset, code, _ in table(name):
        assert dtype.fields[field][1] == offset, (name, field)
        assert dtype.fields[field][0] == np.dtype(code), (name, field)


# ----------------------------------------------------------------------
# The parser's and the probe's constants


def test_every_field_read_is_the_tables():
    """Offsets and widths the reader uses are the tables', and it reads
    every field the tables label (a label nobody reads would be a stale
    fact)."""
    fields, _ = _format._reader_constants()
    assert set(fields) == set(TABLES)
    for name, read in fields.items():
        declared = labelled(name)
        assert sorted(label for label, _, _ in read) == sorted(declared), name
        for label, offset, nbytes in read:
            assert offset == declared[label][0], (name, label)
            assert nbytes == np.dtype(declared[label][1]).itemsize, (name, label)


def test_probe_literals_are_the_tables():
    """The probe reads at literal offsets (for speed): each is the table's."""
    fields, sizes = _format._reader_constants()
    read = {
        (name, label): (offset, nbytes)
        for name, found in fields.items()
        for label, offset, nbytes in found
    }
    assert _format._PROBE_LITERALS
    for key, literal in _format._PROBE_LITERALS.items():
        assert literal == read[key], key
    for name, size in _format._PROBE_SIZES.items():
        assert size == sizes[name], name


def test_structure_sizes_are_the_tables():
    _, sizes = _format._reader_constants()
    for name, size in sizes.items():
        if name in TABLES:
            assert size == dtype_of(name).itemsize == TABLES[name][1], name
    assert _format.FILE_HEADER_SIZE == np.dtype(_format.FILE_HDR_DTYPE).itemsize
    assert (
        _format.PACKED_SESSION_HEADER_SIZE == np.dtype(_format.SESS_HDR_DTYPE).itemsize
    )
    assert (
        _format.FRAMED_SESSION_HEADER_SIZE
        == np.dtype(_format.NEW_SESSION_HEADER_DTYPE).itemsize
    )


def test_footer_head_covers_the_footer_fields():
    """A packed footer is taken as whole from its first 0x30 bytes: through
    footer_size, padded to 8 bytes, so past every field the parser reads."""
    _, sizes = _format._reader_constants()
    head = sizes["footer head"]
    footer = np.dtype(_format.SESSION_FOOTER_DTYPE)
    dtype, offset = footer.fields["footer_size"]
    assert head == 0x30
    assert offset + dtype.itemsize <= head < offset + dtype.itemsize + 8
    for _, offset, code, label in table("PACKED_FOOTER_FIELDS"):
        if label is not None:
            assert offset + np.dtype(code).itemsize <= head, label


def test_trailer_constants_are_the_table():
    trailer = labelled("FRAME_TRAILER_FIELDS")
    assert _format.TRAILER_COUNTER == trailer["frame counter"][0]
    assert _format.TRAILER_SECONDS == trailer["seconds"][0]
    assert _format.TRAILER_MICROSECONDS == trailer["microseconds"][0]
    assert _format.TRAILER_STORED_PIXELS == trailer["stored pixels"][0]


def test_magic_is_the_file_format_field():
    assert labelled("FILE_HEADER_FIELDS")["magic"] == (0, f"S{len(_format.MAGIC)}")


# ----------------------------------------------------------------------
# Round trip: written files, decoded through the dtypes

STORED_ROW = 5

# Every version and layout write_dcimg writes: name -> (dtype, its options).
CASES: dict[str, tuple[type, dict[str, Any]]] = {
    "packed-stored": (np.uint16, dict(version=0x7, stored_pixels_row=STORED_ROW)),
    "packed-plain-padded-u8": (
        np.uint8,
        dict(version=0x7, stored_pixels_row=None, bytes_per_row=40),
    ),
    "framed-trailer32-kind4": (
        np.uint16,
        dict(version=0x1000000, stored_pixels_row=STORED_ROW, stored_pixels_column=2),
    ),
    "framed-trailer16": (
        np.uint16,
        dict(version=0x1000000, trailer_size=16, stored_pixels_row=None),
    ),
    "framed-trailer512-binned": (
        np.uint16,
        dict(
            version=0x1000000,
            trailer_size=512,
            stored_pixels_row=STORED_ROW,
            sub_array=(64, 940, 64, 48),
            binning=2,
        ),
    ),
    "framed-no-block-table": (
        np.uint16,
        dict(
            version=0x1000000,
            block_table=False,
            trailer_size=16,
            stored_pixels_row=None,
            sub_array=(8, 100, 32, 24),
        ),
    ),
    "framed2-u8-kind4": (
        np.uint8,
        dict(version=0x2000000, stored_pixels_row=STORED_ROW, bytes_per_row=36),
    ),
}

FRAMES = 6


@pytest.fixture(scope="module", params=sorted(CASES))
def written(request, tmp_path_factory):
    """A file as written, its bytes, what was written into it and its layout."""
    dtype, options = CASES[request.param]
    data = example_stack(FRAMES, 24, 32, dtype=dtype, seed=7)
    framestamps = np.arange(40, 40 + FRAMES, dtype=np.uint32) * 3
    timestamps_us = 1_700_000_000_000_000 + np.arange(FRAMES) * 12_345_678
    path = tmp_path_factory.mktemp("fields") / f"{request.param}.dcimg"
    write_dcimg(
        path, data, framestamps=framestamps, timestamps_us=timestamps_us, **options
    )
    buf = path.read_bytes()
    layout = _format.parse_layout(len(buf), lambda offset, n: buf[offset : offset + n])
    return path, buf, data, framestamps, timestamps_us, layout


def record(buf: bytes, dtype_list: Any, offset: int) -> np.void:
    return np.frombuffer(buf, np.dtype(dtype_list), count=1, offset=offset)[0]


def test_headers_through_the_dtypes(written):
    """File and session header fields, decoded by hand, are the layout's."""
    path, buf, data, _, _, layout = written
    header = record(buf, _format.FILE_HDR_DTYPE, 0)
    assert header["file_format"] == _format.MAGIC.rstrip(b"\0")
    assert header["format_version"] == layout.version
    assert header["nsess"] == layout.nsessions == 1
    assert header["file_size"] == layout.recorded_file_size == len(buf)
    s = int(header["header_size"])
    packed = layout.version == _format.VERSION_PACKED
    session = record(
        buf,
        _format.SESS_HDR_DTYPE if packed else _format.NEW_SESSION_HEADER_DTYPE,
        s,
    )
    assert session["nfrms"] == layout.declared_frames == layout.frames == len(data)
    assert session["byte_depth"] == layout.byte_depth == data.dtype.itemsize
    assert (session["ysize"], session["xsize"]) == (layout.height, layout.width)
    assert (layout.height, layout.width) == data.shape[1:]
    assert session["bytes_per_row"] == layout.bytes_per_row
    assert session["bytes_per_img"] == layout.bytes_per_image
    assert s + session["offset_to_data"] == layout.data_offset
    if not packed:
        assert session["bytes_per_frame"] == layout.frame_stride
        assert session["frame_footer_size"] == layout.trailer_size
    # The probe reads the same fields.
    assert _format.probe(str(path))[:6] == (
        layout.version,
        layout.frames,
        layout.height,
        layout.width,
        layout.byte_depth,
        len(buf),
    )


def test_packed_footer_through_the_dtypes(written):
    _, buf, _, framestamps, timestamps_us, layout = written
    if layout.version != _format.VERSION_PACKED:
        pytest.skip("framed file: no footer")
    s = int(record(buf, _format.FILE_HDR_DTYPE, 0)["header_size"])
    session = record(buf, _format.SESS_HDR_DTYPE, s)
    footer_at = s + int(session["session_data_size"])
    footer = record(buf, _format.SESSION_FOOTER_DTYPE, footer_at)
    assert footer["format_version"] == _format.VERSION_PACKED
    footer2 = record(
        buf,
        _format.SESSION_FOOTER2_DTYPE,
        footer_at + int(footer["offset_to_2nd_struct"]),
    )
    assert layout.counter_offset == footer_at + footer2["offset_to_frame_counts"]
    assert layout.seconds_offset == footer_at + footer2["offset_to_timestamps"]
    counters = np.frombuffer(buf, "<u4", FRAMES, layout.counter_offset)
    np.testing.assert_array_equal(counters, framestamps)
    times = np.frombuffer(buf, "<u4", 2 * FRAMES, layout.seconds_offset)
    np.testing.assert_array_equal(times[0::2], timestamps_us // 1_000_000)
    np.testing.assert_array_equal(times[1::2], timestamps_us % 1_000_000)
    assert footer2["4px_size"] == layout.stored_bytes
    if layout.stored_bytes:
        assert layout.stored_offset == footer_at + footer2["offset_to_4px"]
        assert footer2["4px_offset_in_frame"] == (
            layout.stored_row * layout.bytes_per_row
            + layout.stored_column * layout.byte_depth
        )


def trailer_dtype(size: int) -> np.dtype[Any]:
    """NEW_FRAME_FOOTER_DTYPE cut to the fields a ``size``-byte trailer holds."""
    full = np.dtype(_format.NEW_FRAME_FOOTER_DTYPE)
    kept = [
        name
        for name in full.names or ()
        if full.fields[name][1] + full.fields[name][0].itemsize <= size
    ]
    return np.dtype(
        {
            "names": kept,
            "formats": [full.fields[name][0] for name in kept],
            "offsets": [full.fields[name][1] for name in kept],
            "itemsize": min(size, full.itemsize),
        }
    )


def test_frame_trailers_through_the_dtype(written):
    _, buf, data, framestamps, timestamps_us, layout = written
    if layout.version == _format.VERSION_PACKED:
        pytest.skip("packed file: no trailers")
    dtype = trailer_dtype(layout.trailer_size)
    trailers = np.ndarray(
        (FRAMES,),
        dtype,
        buf,
        layout.data_offset + layout.bytes_per_image,
        (layout.frame_stride,),
    )
    first = layout.data_offset + layout.bytes_per_image
    assert layout.counter_offset == first + dtype.fields["progressive_number"][1]
    assert layout.seconds_offset == first + dtype.fields["timestamp"][1]
    assert layout.microseconds_offset == first + dtype.fields["timestamp_frac"][1]
    assert layout.counter_stride == layout.time_stride == layout.frame_stride
    np.testing.assert_array_equal(trailers["progressive_number"], framestamps)
    np.testing.assert_array_equal(trailers["timestamp"], timestamps_us // 1_000_000)
    np.testing.assert_array_equal(trailers["timestamp_frac"], timestamps_us % 1_000_000)
    if layout.stored_bytes:
        assert layout.stored_offset == first + dtype.fields["4px"][1]
        assert layout.stored_bytes == dtype.fields["4px"][0].itemsize
        # The stored values are the true pixels the camera overwrote.
        row = data[:, layout.stored_row, layout.stored_column :]
        row = np.ascontiguousarray(row, data.dtype.newbyteorder("<"))
        stored = row.view(np.uint8)[:, : layout.stored_bytes]
        np.testing.assert_array_equal(
            np.ascontiguousarray(trailers["4px"]).view(np.uint8).reshape(FRAMES, -1),
            stored,
        )


def blocks(buf: bytes, s: int) -> dict[int, int]:
    """``{kind: absolute offset}`` of a framed file's blocks, by the table."""
    entry = dtype_of("BLOCK_ENTRY_FIELDS")
    found = {}
    at = s + _format.BLOCK_TABLE
    while True:
        kind, size, offset = record(buf, entry, at).tolist()
        if kind == size == offset == 0:
            return found
        found[kind] = s + _format.BLOCK_BASE + offset
        at += entry.itemsize


def test_framed_blocks_through_the_dtypes(written):
    """The camera block's sub-array and the kind-4 block, decoded by hand."""
    _, buf, _, _, _, layout = written
    if layout.version == _format.VERSION_PACKED:
        pytest.skip("packed file: no blocks")
    s = int(record(buf, _format.FILE_HDR_DTYPE, 0)["header_size"])
    table = blocks(buf, s)
    camera = table.get(_format.BLOCK_CAMERA, s + _format.FIXED_CAMERA_BLOCK)
    assert layout.sub_array_source == ("block table" if table else "fixed offset")
    crop = record(buf, _format.NEW_CROP_INFO, camera + _format._CAMERA_SUBARRAY)
    assert (crop["x0"], crop["y0"], crop["xsize"], crop["ysize"]) == layout.sub_array
    if _format.BLOCK_STORED_PIXELS in table:
        kind4 = record(
            buf, dtype_of("KIND4_BLOCK_FIELDS"), table[_format.BLOCK_STORED_PIXELS]
        )
        assert layout.stored_source == "kind-4 block"
        assert kind4["stored_pixels_size"] == layout.stored_bytes
        assert kind4["stored_pixels_offset"] == (
            layout.stored_row * layout.bytes_per_row
            + layout.stored_column * layout.byte_depth
        )


def test_every_case_was_read(written):
    """The cases cover what they are named for (a guard on the table above)."""
    path, _, _, _, _, layout = written
    name = Path(path).stem
    assert (layout.version == _format.VERSION_PACKED) == name.startswith("packed")
    assert (layout.version == _format.VERSION_FRAMED_2) == name.startswith("framed2")
    if "trailer" in name:
        assert layout.trailer_size == int(name.split("trailer")[1].split("-")[0])
    assert bool(layout.stored_bytes) == (
        "stored" in name or "kind4" in name or "512" in name
    )
