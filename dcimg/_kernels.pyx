# cython: language_level=3
"""Pixel kernels: strided copies with dtype conversion, and the stored-pixel fix.

The kernels know buffers, offsets and strides, never files.  A *source* is a
read-only byte buffer (the mapped file) with a start offset, three byte
strides (frames, rows, columns; any sign) and three counts.  A *destination*
is the raw bytes of a C-contiguous array whose element type is given by a
:data:`DST_KINDS` code.

Bounds are checked once per call, before the loops: the lowest and highest
byte a call can touch must lie inside the source buffer and the destination
must have exactly the right size.  The loops then run without the GIL and
without Python objects.
"""

from libc.stdint cimport (
    int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.string cimport memcpy

# Element types the kernels can write, by code.  The numpy names are given so
# the Python layer can map dtypes to codes without importing anything here.
DST_KINDS = {
    "uint8": 0, "uint16": 1, "int16": 2, "int32": 3, "uint32": 4,
    "int64": 5, "uint64": 6, "float32": 7, "float64": 8,
}
cdef Py_ssize_t[9] _ITEMSIZE = [1, 2, 2, 4, 4, 8, 8, 4, 8]

ctypedef fused src_t:
    uint8_t
    uint16_t

ctypedef fused dst_t:
    uint8_t
    uint16_t
    int16_t
    int32_t
    uint32_t
    int64_t
    uint64_t
    float
    double


cdef inline src_t _load(const uint8_t* p, src_t kind) noexcept nogil:
    # memcpy keeps unaligned reads defined (rows may start at odd offsets).
    cdef src_t v
    memcpy(&v, p, sizeof(src_t))
    return v


cdef void _copy_typed(
    const uint8_t* src, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2, dst_t* dst, src_t kind,
) noexcept nogil:
    cdef Py_ssize_t i, j, k
    cdef const uint8_t* frame
    cdef const uint8_t* row
    cdef const src_t* contiguous
    cdef bint same = (dst_t is uint8_t and src_t is uint8_t) or (
        dst_t is uint16_t and src_t is uint16_t)
    for i in range(n0):
        frame = src + i * s0
        for j in range(n1):
            row = frame + j * s1
            if s2 == sizeof(src_t) and same:
                memcpy(dst, row, n2 * sizeof(src_t))
            elif s2 == sizeof(src_t) and (<size_t>row) % sizeof(src_t) == 0:
                # Aligned unit-stride rows: a plain loop the compiler vectorises.
                contiguous = <const src_t*>row
                for k in range(n2):
                    dst[k] = <dst_t>contiguous[k]
            else:
                for k in range(n2):
                    dst[k] = <dst_t>_load(row + k * s2, kind)
            dst += n2


cdef void _copy_dispatch(
    const uint8_t* src, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2, int depth,
    uint8_t* dst, int kind,
) noexcept nogil:
    if depth == 1:
        _copy_u8(src, n0, n1, n2, s0, s1, s2, dst, kind)
    else:
        _copy_u16(src, n0, n1, n2, s0, s1, s2, dst, kind)


cdef void _copy_u8(
    const uint8_t* src, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2, uint8_t* dst, int kind,
) noexcept nogil:
    cdef uint8_t s = 0
    if kind == 0:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint8_t*>dst, s)
    elif kind == 1:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint16_t*>dst, s)
    elif kind == 2:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int16_t*>dst, s)
    elif kind == 3:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int32_t*>dst, s)
    elif kind == 4:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint32_t*>dst, s)
    elif kind == 5:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int64_t*>dst, s)
    elif kind == 6:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint64_t*>dst, s)
    elif kind == 7:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <float*>dst, s)
    else:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <double*>dst, s)


cdef void _copy_u16(
    const uint8_t* src, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2, uint8_t* dst, int kind,
) noexcept nogil:
    cdef uint16_t s = 0
    if kind == 0:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint8_t*>dst, s)
    elif kind == 1:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint16_t*>dst, s)
    elif kind == 2:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int16_t*>dst, s)
    elif kind == 3:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int32_t*>dst, s)
    elif kind == 4:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint32_t*>dst, s)
    elif kind == 5:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <int64_t*>dst, s)
    elif kind == 6:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <uint64_t*>dst, s)
    elif kind == 7:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <float*>dst, s)
    else:
        _copy_typed(src, n0, n1, n2, s0, s1, s2, <double*>dst, s)


cdef int _check_source(
    Py_ssize_t size, Py_ssize_t offset, Py_ssize_t n0, Py_ssize_t n1,
    Py_ssize_t n2, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2, int depth,
) except -1:
    """Raise unless every byte the strided source can touch is in the buffer."""
    cdef Py_ssize_t lo = offset, hi = offset
    cdef Py_ssize_t n[3]
    cdef Py_ssize_t s[3]
    cdef int a
    if depth != 1 and depth != 2:
        raise ValueError(f"byte depth must be 1 or 2, not {depth}")
    if n0 < 0 or n1 < 0 or n2 < 0:
        raise ValueError(f"negative count ({n0}, {n1}, {n2})")
    if n0 == 0 or n1 == 0 or n2 == 0:
        return 0
    n[0] = n0
    n[1] = n1
    n[2] = n2
    s[0] = s0
    s[1] = s1
    s[2] = s2
    for a in range(3):
        # Counts and strides come from a validated layout, far below the
        # overflow limit; this guards against misuse of the kernel.
        if n[a] > 0x7FFFFFFF or s[a] > 0x7FFFFFFFFF or s[a] < -0x7FFFFFFFFF:
            raise ValueError("count or stride out of range")
        if s[a] > 0:
            hi += (n[a] - 1) * s[a]
        else:
            lo += (n[a] - 1) * s[a]
    if lo < 0 or hi + depth > size:
        raise IndexError(
            f"read of bytes {lo}..{hi + depth} outside the {size}-byte buffer"
        )
    return 0


def copy_convert(
    const uint8_t[::1] src, Py_ssize_t offset,
    Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2,
    int depth, uint8_t[::1] dst, int kind,
):
    """Copy a strided block of pixels into a C-contiguous destination.

    Parameters
    ----------
    src : buffer
        Read-only source bytes.
    offset : int
        Byte offset of the first pixel copied.
    n0, n1, n2 : int
        Number of frames, rows and columns to copy.
    s0, s1, s2 : int
        Byte strides between consecutive frames, rows and columns (any sign).
    depth : int
        Bytes per source pixel, 1 (uint8) or 2 (little-endian uint16).
    dst : buffer
        Writable bytes of a C-contiguous array of ``n0 * n1 * n2`` elements.
    kind : int
        Destination element type, a value of :data:`DST_KINDS`.
    """
    if kind < 0 or kind > 8:
        raise ValueError(f"unknown destination kind {kind}")
    _check_source(src.shape[0], offset, n0, n1, n2, s0, s1, s2, depth)
    if dst.shape[0] != n0 * n1 * n2 * _ITEMSIZE[kind]:
        raise ValueError(
            f"destination has {dst.shape[0]} bytes, expected "
            f"{n0 * n1 * n2 * _ITEMSIZE[kind]}"
        )
    if n0 == 0 or n1 == 0 or n2 == 0:
        return
    cdef const uint8_t* base = &src[0]
    cdef uint8_t* out = &dst[0]
    with nogil:
        _copy_dispatch(base + offset, n0, n1, n2, s0, s1, s2, depth, out, kind)


cdef void _put_typed(
    dst_t* dst, Py_ssize_t n0, Py_ssize_t frame_size, Py_ssize_t n2,
    const uint8_t* stored, Py_ssize_t stored_stride, Py_ssize_t p0,
    Py_ssize_t pstep, Py_ssize_t count, src_t kind, bint zero,
) noexcept nogil:
    cdef Py_ssize_t i, t
    cdef dst_t* row
    for i in range(n0):
        row = dst + i * frame_size
        for t in range(count):
            if zero:
                row[t] = 0
            else:
                row[t] = <dst_t>_load(
                    stored + i * stored_stride + (p0 + t * pstep) * sizeof(src_t),
                    kind,
                )


cdef void _put_dispatch(
    uint8_t* dst, int kind, Py_ssize_t n0, Py_ssize_t frame_size, Py_ssize_t n2,
    const uint8_t* stored, Py_ssize_t stored_stride, Py_ssize_t p0,
    Py_ssize_t pstep, Py_ssize_t count, int depth, bint zero,
) noexcept nogil:
    cdef uint8_t a = 0
    cdef uint16_t b = 0
    if depth == 1:
        if kind == 0:
            _put_typed(<uint8_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 1:
            _put_typed(<uint16_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 2:
            _put_typed(<int16_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 3:
            _put_typed(<int32_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 4:
            _put_typed(<uint32_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 5:
            _put_typed(<int64_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 6:
            _put_typed(<uint64_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        elif kind == 7:
            _put_typed(<float*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
        else:
            _put_typed(<double*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, a, zero)
    else:
        if kind == 0:
            _put_typed(<uint8_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 1:
            _put_typed(<uint16_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 2:
            _put_typed(<int16_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 3:
            _put_typed(<int32_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 4:
            _put_typed(<uint32_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 5:
            _put_typed(<int64_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 6:
            _put_typed(<uint64_t*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        elif kind == 7:
            _put_typed(<float*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)
        else:
            _put_typed(<double*>dst, n0, frame_size, n2, stored, stored_stride,
                       p0, pstep, count, b, zero)


def put_stored_pixels(
    uint8_t[::1] dst, int kind, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
    Py_ssize_t out_row, Py_ssize_t out_col, Py_ssize_t count,
    const uint8_t[::1] src, Py_ssize_t stored_offset, Py_ssize_t stored_stride,
    Py_ssize_t p0, Py_ssize_t pstep, Py_ssize_t npx, int depth, bint zero,
):
    """Write each frame's stored pixels (or zeros) into a copied block.

    The destination is a C-contiguous ``(n0, n1, n2)`` block.  For every
    frame ``i`` and ``t < count`` it sets ``dst[i, out_row, out_col + t]`` to
    stored pixel ``p0 + t * pstep`` of that frame, read from ``src`` at
    ``stored_offset + i * stored_stride`` (``depth`` bytes per pixel), or to
    zero when ``zero`` is true.

    Parameters
    ----------
    dst : buffer
        Writable bytes of the destination array.
    kind : int
        Destination element type, a value of :data:`DST_KINDS`.
    n0, n1, n2 : int
        Shape of the destination block.
    out_row, out_col, count : int
        First destination row/column written and how many columns.
    src : buffer
        Read-only source bytes holding the stored pixels.
    stored_offset, stored_stride : int
        Byte offset of the first selected frame's stored pixels and the byte
        stride between consecutive selected frames (any sign).
    p0, pstep : int
        Index of the first stored pixel used and the step between them.
    npx : int
        Number of stored pixels per frame (for the bounds check).
    depth : int
        Bytes per stored pixel.
    zero : bool
        Write zeros instead of the stored values.
    """
    if kind < 0 or kind > 8:
        raise ValueError(f"unknown destination kind {kind}")
    if n0 < 0 or n1 < 0 or n2 < 0 or count < 0:
        raise ValueError("negative count")
    if dst.shape[0] != n0 * n1 * n2 * _ITEMSIZE[kind]:
        raise ValueError("destination size does not match its shape")
    if n0 == 0 or count == 0:
        return
    if not (0 <= out_row < n1 and 0 <= out_col and out_col + count <= n2):
        raise IndexError("stored pixels fall outside the destination block")
    last = p0 + (count - 1) * pstep
    if not (0 <= p0 < npx and 0 <= last < npx):
        raise IndexError("stored pixel index out of range")
    if not zero:
        _check_source(src.shape[0], stored_offset, n0, 1, npx,
                      stored_stride, 0, depth, depth)
    cdef const uint8_t* stored = NULL
    if not zero:
        stored = &src[0] + stored_offset
    cdef uint8_t* out = &dst[0] + (out_row * n2 + out_col) * _ITEMSIZE[kind]
    with nogil:
        _put_dispatch(out, kind, n0, n1 * n2, n2, stored, stored_stride, p0,
                      pstep, count, depth, zero)
