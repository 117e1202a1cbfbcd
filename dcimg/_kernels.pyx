# cython: language_level=3
"""Pixel kernels: NumPy basic indexing of a strided image in a byte buffer.

:class:`StridedImage` describes a 3-D image that lives in a read-only byte
buffer (a start offset, three positive byte strides, a pixel size of 1 or 2
bytes) plus an optional *patch*: a short run of pixels of one row whose true
values are kept elsewhere in the buffer, one run per frame.  It knows buffers,
offsets and strides, never files.

:meth:`StridedImage.take` reads any NumPy basic index in one pass: it parses
the index, allocates (or checks) the C-contiguous result, copies with dtype
conversion, and then puts the patch back (or zeros it) where the selection
covers it.  The geometry is checked against the buffer once, when the object
is built; every selection parsed afterwards lies inside that geometry, so the
loops run without bounds checks, without Python objects and without the GIL.
Large copies are split across OpenMP threads when the module is built with
OpenMP.
"""

cimport numpy as cnp
from cpython.number cimport PyIndex_Check, PyNumber_AsSsize_t
from cpython.slice cimport PySlice_AdjustIndices, PySlice_Unpack
from cython.parallel cimport prange
from libc.stdint cimport (
    int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.string cimport memcpy

import numpy as np

cnp.import_array()

# Element types the kernels write, by code (dtype name -> code).
DST_KINDS = {
    "uint8": 0, "uint16": 1, "int16": 2, "int32": 3, "uint32": 4,
    "int64": 5, "uint64": 6, "float32": 7, "float64": 8,
}
cdef Py_ssize_t[9] _ITEMSIZE = [1, 2, 2, 4, 4, 8, 8, 4, 8]
cdef int[9] _TYPENUM = [
    cnp.NPY_UINT8, cnp.NPY_UINT16, cnp.NPY_INT16, cnp.NPY_INT32,
    cnp.NPY_UINT32, cnp.NPY_INT64, cnp.NPY_UINT64, cnp.NPY_FLOAT32,
    cnp.NPY_FLOAT64,
]

# What to do with the patch: leave the stored bytes, restore, or zero.
cdef enum:
    _LEAVE = 0
    _RESTORE = 1
    _ZERO = 2
PATCH_LEAVE = _LEAVE
PATCH_RESTORE = _RESTORE
PATCH_ZERO = _ZERO

# Result dimensions allowed (``None`` in an index adds one each).
DEF MAX_OUT_DIMS = 32

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


cdef struct Selection:
    Py_ssize_t start[3]
    Py_ssize_t step[3]
    Py_ssize_t count[3]
    int out_ndim
    cnp.npy_intp out_shape[MAX_OUT_DIMS]


cdef inline Py_ssize_t _floordiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t q = a / b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline Py_ssize_t _ceildiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return -_floordiv(-a, b)


cdef inline src_t _load(const uint8_t* p, src_t kind) noexcept nogil:
    # memcpy keeps unaligned reads defined (rows may start at odd offsets).
    cdef src_t v
    memcpy(&v, p, sizeof(src_t))
    return v


cdef void _rows_typed(
    const uint8_t* src, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n1,
    Py_ssize_t n2, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t s2,
    dst_t* dst, src_t kind,
) noexcept nogil:
    """Copy output rows r0..r1 (row r = frame r // n1, row r % n1)."""
    cdef Py_ssize_t r, k
    cdef const uint8_t* row
    cdef const src_t* unit
    cdef bint same = (dst_t is uint8_t and src_t is uint8_t) or (
        dst_t is uint16_t and src_t is uint16_t)
    cdef Py_ssize_t run
    dst += r0 * n2
    if same and s2 == sizeof(src_t) and s1 == n2 * <Py_ssize_t>sizeof(src_t):
        # Rows without padding follow each other: one copy per frame part
        # (much faster than a copy per row when source and result are not
        # equally aligned).
        r = r0
        while r < r1:
            run = min(r1 - r, n1 - r % n1)
            memcpy(dst, src + (r // n1) * s0 + (r % n1) * s1,
                   run * n2 * sizeof(src_t))
            dst += run * n2
            r += run
        return
    for r in range(r0, r1):
        row = src + (r // n1) * s0 + (r % n1) * s1
        if s2 == sizeof(src_t) and same:
            memcpy(dst, row, n2 * sizeof(src_t))
        elif s2 == sizeof(src_t) and (<size_t>row) % sizeof(src_t) == 0:
            # Aligned unit-stride rows: a plain loop the compiler vectorises.
            unit = <const src_t*>row
            for k in range(n2):
                dst[k] = <dst_t>unit[k]
        else:
            for k in range(n2):
                dst[k] = <dst_t>_load(row + k * s2, kind)
        dst += n2


cdef void _patch_typed(
    dst_t* dst, Py_ssize_t n0, Py_ssize_t frame_size, const uint8_t* stored,
    Py_ssize_t stored_stride, Py_ssize_t p0, Py_ssize_t pstep,
    Py_ssize_t count, bint zero, src_t kind,
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


cdef struct Plan:
    # The copy: source of output pixel [0, 0, 0], counts and byte strides.
    const uint8_t* src
    Py_ssize_t n0, n1, n2, s0, s1, s2
    int threads
    # The patch, when it applies: where it lands in the output, where its
    # values are (per output frame), and whether to write zeros instead.
    bint patch
    Py_ssize_t out_row, first, count
    const uint8_t* stored
    Py_ssize_t stored_stride, p0, pstep
    bint zero


cdef void _run_typed(Plan* p, dst_t* dst, src_t kind) noexcept nogil:
    """Copy the rows (split across threads if asked), then put the patch."""
    cdef Py_ssize_t rows = p.n0 * p.n1, part
    if p.threads <= 1:
        _rows_typed(p.src, 0, rows, p.n1, p.n2, p.s0, p.s1, p.s2, dst, kind)
    else:
        for part in prange(p.threads, num_threads=p.threads, schedule="static"):
            _rows_typed(p.src, rows * part // p.threads,
                        rows * (part + 1) // p.threads, p.n1, p.n2, p.s0, p.s1,
                        p.s2, dst, kind)
    if p.patch:
        _patch_typed(dst + p.out_row * p.n2 + p.first, p.n0, p.n1 * p.n2,
                     p.stored, p.stored_stride, p.p0, p.pstep, p.count, p.zero,
                     kind)


cdef void _run_src(Plan* p, uint8_t* dst, int kind, src_t s) noexcept nogil:
    # The one place that turns a result-type code into a C type.
    if kind == 0:
        _run_typed(p, <uint8_t*>dst, s)
    elif kind == 1:
        _run_typed(p, <uint16_t*>dst, s)
    elif kind == 2:
        _run_typed(p, <int16_t*>dst, s)
    elif kind == 3:
        _run_typed(p, <int32_t*>dst, s)
    elif kind == 4:
        _run_typed(p, <uint32_t*>dst, s)
    elif kind == 5:
        _run_typed(p, <int64_t*>dst, s)
    elif kind == 6:
        _run_typed(p, <uint64_t*>dst, s)
    elif kind == 7:
        _run_typed(p, <float*>dst, s)
    else:
        _run_typed(p, <double*>dst, s)


cdef void _run(Plan* p, uint8_t* dst, int kind, int depth) noexcept nogil:
    cdef uint8_t byte = 0
    cdef uint16_t word = 0
    if depth == 1:
        _run_src(p, dst, kind, byte)
    else:
        _run_src(p, dst, kind, word)


cdef inline object _finish(cnp.ndarray result, object out, int ndim):
    # A full integer index gives a NumPy scalar, as NumPy's own indexing does.
    if out is None and ndim == 0:
        return result[()]
    return result


cdef class StridedImage:
    """A 3-D image in a read-only byte buffer, read with NumPy basic indexing.

    Parameters
    ----------
    buffer : buffer
        Read-only bytes (e.g. an ``mmap``) holding the image.
    offset : int
        Byte offset of pixel ``[0, 0, 0]``.
    shape : tuple of 3 int
        ``(frames, rows, columns)``.
    strides : tuple of 3 int
        Positive byte strides between frames, rows and columns.
    depth : int
        Bytes per pixel: 1 (``uint8``) or 2 (little-endian ``uint16``).
    patch : tuple of 5 int, optional
        ``(row, column, count, offset, stride)``: in every frame ``i``,
        pixels ``[i, row, column:column + count]`` hold placeholders and their
        true values are ``count`` pixels at byte ``offset + i * stride``.
    max_threads : int, default 1
        Threads a large copy may be split across.
    parallel_bytes : int, default 32 MiB
        Result size from which a copy is split across threads.

    Raises
    ------
    ValueError
        If the geometry or the patch does not fit inside the buffer.
    """

    cdef const uint8_t[::1] buf
    cdef const uint8_t* base
    cdef readonly Py_ssize_t offset
    cdef Py_ssize_t shape[3]
    cdef Py_ssize_t strides[3]
    cdef readonly int depth
    cdef Py_ssize_t patch_row, patch_col, patch_count, patch_offset, patch_stride
    cdef int max_threads
    cdef Py_ssize_t parallel_bytes

    def __cinit__(
        self, const uint8_t[::1] buffer, Py_ssize_t offset, tuple shape,
        tuple strides, int depth, tuple patch=None, int max_threads=1,
        Py_ssize_t parallel_bytes=32 << 20,
    ):
        cdef int a
        cdef Py_ssize_t last = offset
        if depth != 1 and depth != 2:
            raise ValueError(f"pixel size must be 1 or 2 bytes, not {depth}")
        if len(shape) != 3 or len(strides) != 3:
            raise ValueError("shape and strides need 3 values")
        for a in range(3):
            self.shape[a] = shape[a]
            self.strides[a] = strides[a]
            if self.shape[a] < 0 or self.strides[a] <= 0:
                raise ValueError(f"bad shape {shape} or strides {strides}")
        if offset < 0 or offset > buffer.shape[0]:
            raise ValueError(f"offset {offset} outside the buffer")
        if self.shape[0] and self.shape[1] and self.shape[2]:
            for a in range(3):
                # Division first, so a corrupt stride cannot overflow.
                if self.shape[a] > 1:
                    if self.strides[a] > (buffer.shape[0] - last) // (
                            self.shape[a] - 1):
                        raise ValueError("the image does not fit in the buffer")
                    last += (self.shape[a] - 1) * self.strides[a]
            if last + depth > buffer.shape[0]:
                raise ValueError("the image does not fit in the buffer")
        self.buf = buffer
        self.base = &buffer[0] if buffer.shape[0] else NULL
        self.offset = offset
        self.depth = depth
        self.patch_count = 0
        self.patch_row = -1
        if patch is not None and patch[2] > 0 and self.shape[0] > 0:
            row, col, count, poffset, pstride = patch
            if not (0 <= row < self.shape[1] and 0 <= col
                    and col + count <= self.shape[2]):
                raise ValueError(f"patch {patch} lies outside the image")
            if (poffset < 0 or pstride < 0 or poffset + (self.shape[0] - 1)
                    * pstride + count * depth > buffer.shape[0]):
                raise ValueError(f"patch values {patch} lie outside the buffer")
            self.patch_row = row
            self.patch_col = col
            self.patch_count = count
            self.patch_offset = poffset
            self.patch_stride = pstride
        self.max_threads = max(1, max_threads)
        self.parallel_bytes = parallel_bytes

    @property
    def shape(self):
        """``(frames, rows, columns)``."""
        return (self.shape[0], self.shape[1], self.shape[2])

    cdef int _parse(self, object key, Selection* sel) except -1:
        """Fill ``sel`` from a basic index, raising as NumPy does."""
        cdef tuple items = key if isinstance(key, tuple) else (key,)
        cdef Py_ssize_t n_items = len(items)
        cdef Py_ssize_t i, start, stop, step, index, size
        cdef int axis = 0, n_axes = 0, n_ellipsis = 0
        for i in range(n_items):
            item = items[i]
            if item is Ellipsis:
                n_ellipsis += 1
            elif item is not None:
                n_axes += 1
        if n_ellipsis > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_axes > 3:
            raise IndexError(
                "too many indices for array: array is 3-dimensional, but "
                f"{n_axes} were indexed"
            )
        sel.out_ndim = 0
        for i in range(n_items):
            item = items[i]
            if item is None:
                self._add_dim(sel, 1)
            elif item is Ellipsis:
                for _ in range(3 - n_axes):
                    self._full_axis(sel, axis)
                    axis += 1
            elif isinstance(item, slice):
                size = self.shape[axis]
                PySlice_Unpack(item, &start, &stop, &step)
                sel.count[axis] = PySlice_AdjustIndices(size, &start, &stop, step)
                sel.start[axis] = start
                sel.step[axis] = step
                self._add_dim(sel, sel.count[axis])
                axis += 1
            elif isinstance(item, (bool, np.bool_)):
                raise IndexError(
                    "boolean indices are not supported here; read the frames "
                    "first (f[...]) and index the array"
                )
            elif PyIndex_Check(item) and not (
                    isinstance(item, np.ndarray) and item.ndim):
                size = self.shape[axis]
                index = PyNumber_AsSsize_t(item, IndexError)
                if index < -size or index >= size:
                    raise IndexError(
                        f"index {index} is out of bounds for axis {axis} with "
                        f"size {size}"
                    )
                sel.start[axis] = index + size if index < 0 else index
                sel.step[axis] = 1
                sel.count[axis] = 1
                axis += 1
            else:
                raise IndexError(
                    "only integers, slices (`:`), ellipsis (`...`) and "
                    "numpy.newaxis (`None`) are valid indices here, not "
                    f"{type(item).__name__}; for fancy indexing read the "
                    "frames first (f[...]) and index the array"
                )
        while axis < 3:
            self._full_axis(sel, axis)
            axis += 1
        return 0

    cdef int _add_dim(self, Selection* sel, Py_ssize_t n) except -1:
        if sel.out_ndim >= MAX_OUT_DIMS:
            raise IndexError(f"an index may add at most {MAX_OUT_DIMS} dimensions")
        sel.out_shape[sel.out_ndim] = n
        sel.out_ndim += 1
        return 0

    cdef int _full_axis(self, Selection* sel, int axis) except -1:
        sel.start[axis] = 0
        sel.step[axis] = 1
        sel.count[axis] = self.shape[axis]
        return self._add_dim(sel, self.shape[axis])

    cdef bint _patch_hit(
        self, Selection* sel, Py_ssize_t* out_row, Py_ssize_t* first,
        Py_ssize_t* count,
    ) noexcept nogil:
        """Where the patch lands in the selection's output, if anywhere."""
        cdef Py_ssize_t d, lo, hi, j_lo, j_hi
        cdef Py_ssize_t c0 = sel.start[2], cstep = sel.step[2]
        if self.patch_count == 0 or sel.count[0] == 0:
            return False
        if sel.count[1] == 0 or sel.count[2] == 0:
            return False
        d = self.patch_row - sel.start[1]
        if d % sel.step[1] != 0:
            return False
        out_row[0] = d / sel.step[1]
        if out_row[0] < 0 or out_row[0] >= sel.count[1]:
            return False
        lo = self.patch_col
        hi = lo + self.patch_count - 1
        # Output column j reads column c0 + j * cstep; keep those in [lo, hi].
        if cstep > 0:
            j_lo = _ceildiv(lo - c0, cstep)
            j_hi = _floordiv(hi - c0, cstep)
        else:
            j_lo = _ceildiv(hi - c0, cstep)
            j_hi = _floordiv(lo - c0, cstep)
        if j_lo < 0:
            j_lo = 0
        if j_hi > sel.count[2] - 1:
            j_hi = sel.count[2] - 1
        if j_lo > j_hi:
            return False
        first[0] = j_lo
        count[0] = j_hi - j_lo + 1
        return True

    cdef void _fill(
        self, Selection* sel, uint8_t* dst, int kind, int mode, int threads,
    ) noexcept nogil:
        """Copy the selection into ``dst`` and apply the patch per ``mode``."""
        cdef Plan p
        cdef Py_ssize_t out_row, first, count
        p.n0 = sel.count[0]
        p.n1 = sel.count[1]
        p.n2 = sel.count[2]
        p.s0 = sel.step[0] * self.strides[0]
        p.s1 = sel.step[1] * self.strides[1]
        p.s2 = sel.step[2] * self.strides[2]
        p.src = self.base + self.offset + (
            sel.start[0] * self.strides[0] + sel.start[1] * self.strides[1]
            + sel.start[2] * self.strides[2])
        p.threads = threads
        p.patch = mode != _LEAVE and self._patch_hit(sel, &out_row, &first, &count)
        if p.patch:
            p.out_row = out_row
            p.first = first
            p.count = count
            p.stored = self.base + self.patch_offset + (
                sel.start[0] * self.patch_stride)
            p.stored_stride = sel.step[0] * self.patch_stride
            p.p0 = sel.start[2] + first * sel.step[2] - self.patch_col
            p.pstep = sel.step[2]
            p.zero = mode == _ZERO
        _run(&p, dst, kind, self.depth)

    def take(self, key, int kind, out=None, int mode=_RESTORE):
        """Read a basic index into a new array (or ``out``) in one pass.

        Parameters
        ----------
        key : index
            Integers, slices (any step), ``...`` and ``None``.
        kind : int
            Result element type, a value of :data:`DST_KINDS`.
        out : numpy.ndarray, optional
            Native-endian, C-contiguous, writable array of the result's shape
            and type to fill.
        mode : int, default PATCH_RESTORE
            :data:`PATCH_RESTORE`, :data:`PATCH_ZERO` or :data:`PATCH_LEAVE`.

        Returns
        -------
        numpy.ndarray or numpy scalar
            ``out`` when given; a scalar when every axis is an integer.
        """
        cdef Selection sel
        cdef cnp.ndarray result
        cdef int a, threads = 1
        if kind < 0 or kind > 8:
            raise ValueError(f"unknown element kind {kind}")
        self._parse(key, &sel)
        if out is None:
            result = cnp.PyArray_EMPTY(sel.out_ndim, sel.out_shape, _TYPENUM[kind], 0)
        else:
            if not isinstance(out, np.ndarray):
                raise TypeError("out must be a numpy.ndarray")
            result = out
            if (cnp.PyArray_TYPE(result) != _TYPENUM[kind]
                    or not cnp.PyArray_ISNOTSWAPPED(result)):
                raise ValueError(f"out has dtype {out.dtype}, which does not "
                                 "match the requested type")
            if not cnp.PyArray_ISCARRAY(result):
                raise ValueError("out must be a writable C-contiguous array")
            if result.ndim != sel.out_ndim or any(
                    result.shape[a] != sel.out_shape[a] for a in range(sel.out_ndim)):
                raise ValueError(
                    f"out has shape {out.shape}, expected "
                    f"{tuple(sel.out_shape[a] for a in range(sel.out_ndim))}"
                )
        cdef Py_ssize_t n = sel.count[0] * sel.count[1] * sel.count[2]
        cdef uint8_t* dst = <uint8_t*>cnp.PyArray_DATA(result)
        if n == 0:
            return _finish(result, out, sel.out_ndim)
        if n * _ITEMSIZE[kind] >= self.parallel_bytes:
            threads = min(self.max_threads, sel.count[0] * sel.count[1])
        with nogil:
            self._fill(&sel, dst, kind, mode, threads)
        return _finish(result, out, sel.out_ndim)

    def selection(self, key):
        """Per-axis ``(start, step, count)`` that a basic index selects.

        Parameters
        ----------
        key : index
            A basic index, as for :meth:`take`.

        Returns
        -------
        axes : tuple of 3 tuples
            ``(start, step, count)`` for frames, rows and columns.
        shape : tuple of int
            Shape of the result (integer axes dropped, ``None`` axes added).
        """
        cdef Selection sel
        self._parse(key, &sel)
        axes = tuple((sel.start[a], sel.step[a], sel.count[a]) for a in range(3))
        return axes, tuple(sel.out_shape[a] for a in range(sel.out_ndim))

    def touches_patch(self, key):
        """Whether reading ``key`` covers any patched pixel.

        Parameters
        ----------
        key : index
            A basic index, as for :meth:`take`.

        Returns
        -------
        bool
        """
        cdef Selection sel
        cdef Py_ssize_t out_row, first, count
        self._parse(key, &sel)
        return self._patch_hit(&sel, &out_row, &first, &count)
