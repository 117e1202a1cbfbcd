# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Pixel kernels: NumPy basic indexing of a strided image in a byte buffer.

:class:`StridedImage` describes a 3-D image that lives in a read-only byte
buffer (a start offset, three positive byte strides, a pixel size of 1 or 2
bytes) plus, optionally, the *stored pixels*: a short run of pixels of one row
that the camera overwrote in every frame, whose true values are kept elsewhere
in the buffer, one run per frame.  It knows buffers, offsets and strides, never
files.

:meth:`StridedImage.take` reads any NumPy basic index in one pass: it parses
the index, allocates (or checks) the C-contiguous result, copies with dtype
conversion, and then restores (or zeros) the overwritten pixels where the
selection covers them.  The geometry is checked against the buffer once, when
the object is built; every selection parsed afterwards lies inside that
geometry, so the loops run without bounds checks, without Python objects and
without the GIL.  Large copies are split across OpenMP threads when the module
is built with OpenMP.

Fault guard
-----------
A buffer that maps a file can lose pages under the reader: when the file is
truncated, touching a page past its new end raises ``SIGBUS``, which kills the
process.  Every read of the buffer here runs under a per-thread guard: a
``SIGBUS`` raised while the guard is armed on that thread jumps back out of the
copy, and the call raises :class:`BufferFault` instead.  The handler is
installed when the module is imported, and put back in front whenever a
buffer is wrapped if somebody (``faulthandler.enable()``) replaced it since;
a ``SIGBUS`` outside a guarded copy is handed, once, to the handler that was
in place before ours (Python's faulthandler, or the default action).  When
that handler calls ours again -- faulthandler restores its own previous
handler, which is ours when it was enabled after this module, and raises the
signal again -- ours gives the signal to the system's default action, so the
process dies of ``SIGBUS`` after exactly one report, instead of the handlers
calling each other until the stack overflows.  The handler is installed
with ``SA_NODEFER`` so the jump needs no signal-mask save or restore, which
keeps an armed guard to a few nanoseconds.  (Windows cannot truncate a
mapped file, so there is no guard there.)

The guard alone is not enough: the last page of a truncated file stays
mapped, and its bytes past the new end read as zeros, without a fault.  An
image or gather given a ``confirm`` callback therefore *confirms* every
copy: still under the guard, it reads one byte of the page after the last
byte copied.  That byte is there only while the file is longer than
everything copied; when it faults (or lies past the buffer, for reads near
the end of the file), ``confirm`` decides by looking at the file itself.

Integer division in this module is written ``//``; with ``cdivision`` it is
C's truncating division, used only on non-negative values except in
:func:`_floordiv`, which corrects the sign itself.
"""

cimport numpy as cnp
from cpython.number cimport PyIndex_Check, PyNumber_AsSsize_t
from cpython.slice cimport PySlice_AdjustIndices, PySlice_Unpack
from cython.parallel cimport prange, threadid
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

# What to do with the overwritten pixels: leave them as stored, restore the
# stored values, or set them to zero.
cdef enum:
    _LEAVE = 0
    _RESTORE = 1
    _ZERO = 2
LEAVE = _LEAVE
RESTORE = _RESTORE
ZERO = _ZERO

# Result dimensions allowed (``None`` in an index adds one each).
cdef enum:
    MAX_OUT_DIMS = 32
# Threads one copy may be split across.
cdef enum:
    MAX_THREADS = 64

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
    # C division truncates towards zero; step down when the signs differ.
    cdef Py_ssize_t q = a // b
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


cdef void _stored_typed(
    dst_t* dst, Py_ssize_t n0, Py_ssize_t frame_size, const uint8_t* stored,
    Py_ssize_t stored_stride, Py_ssize_t p0, Py_ssize_t pstep,
    Py_ssize_t count, bint zero, Py_ssize_t f0, Py_ssize_t fstep,
    Py_ssize_t limit, src_t kind,
) noexcept nogil:
    """Write each output frame's stored values (or zeros) over its row.

    Output frame ``i`` is source frame ``f0 + i * fstep``; source frames from
    ``limit`` on have no stored values (they were cut off with the file's
    end): their pixels stay as stored, unless zeros are asked for.
    """
    cdef Py_ssize_t i, t
    cdef dst_t* row
    for i in range(n0):
        if not zero and f0 + i * fstep >= limit:
            continue
        row = dst + i * frame_size
        for t in range(count):
            if zero:
                row[t] = 0
            else:
                row[t] = <dst_t>_load(
                    stored + i * stored_stride + (p0 + t * pstep) * sizeof(src_t),
                    kind,
                )


cdef extern from *:
    """
    /* The fault guard (see the module docstring). */
    #if defined(_WIN32)
    static int dcimg_guard_install(void) { return 0; }
    static int dcimg_guarded(void (*fn)(void *), void *arg) { fn(arg); return 0; }
    #else
    #include <setjmp.h>
    #include <signal.h>
    #include <string.h>

    static _Thread_local sigjmp_buf *dcimg_jump = NULL;
    /* Set on a thread while it hands an unguarded fault to the handler that
       was installed before ours.  That handler may end up calling ours again
       (faulthandler restores its own previous handler -- ours, when it was
       enabled after dcimg -- and raises the signal again): ours then gives
       the fault to the system's default action instead of handing it over
       a second time, so handlers never call each other in a loop. */
    static _Thread_local int dcimg_handing_over = 0;
    static struct sigaction dcimg_previous;

    static void dcimg_on_sigbus(int sig, siginfo_t *info, void *context) {
        struct sigaction fallback;
        sigjmp_buf *jump = dcimg_jump;
        if (jump != NULL) {
            dcimg_jump = NULL;
            siglongjmp(*jump, 1);
        }
        if (dcimg_handing_over
                || (!(dcimg_previous.sa_flags & SA_SIGINFO)
                    && (dcimg_previous.sa_handler == SIG_DFL
                        || dcimg_previous.sa_handler == SIG_IGN))) {
            /* The default action: on return the faulting access runs again
               and the system ends the process with SIGBUS. */
            memset(&fallback, 0, sizeof fallback);
            fallback.sa_handler = SIG_DFL;
            sigemptyset(&fallback.sa_mask);
            sigaction(sig, &fallback, NULL);
            return;
        }
        /* Not a guarded read: hand over to the handler installed before. */
        dcimg_handing_over = 1;
        if (dcimg_previous.sa_flags & SA_SIGINFO) {
            dcimg_previous.sa_sigaction(sig, info, context);
        } else {
            dcimg_previous.sa_handler(sig);
        }
        dcimg_handing_over = 0;
    }

    /* Install the handler unless it is in place already (somebody, e.g.
       faulthandler.enable(), may have replaced it since). */
    static int dcimg_guard_install(void) {
        struct sigaction now, ours;
        if (sigaction(SIGBUS, NULL, &now) != 0) return -1;
        if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == dcimg_on_sigbus)
            return 0;  /* in front already: the chain behind it stays */
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = dcimg_on_sigbus;
        ours.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
        sigemptyset(&ours.sa_mask);
        dcimg_previous = now;
        return sigaction(SIGBUS, &ours, NULL);
    }

    /* Run fn(arg); return 0, or -1 when it hit a SIGBUS. */
    static int dcimg_guarded(void (*fn)(void *), void *arg) {
        sigjmp_buf jump;
        sigjmp_buf *volatile outer = dcimg_jump;
        if (sigsetjmp(jump, 0) != 0) {
            dcimg_jump = outer;
            return -1;
        }
        dcimg_jump = &jump;
        fn(arg);
        dcimg_jump = outer;
        return 0;
    }
    #endif
    """
    int dcimg_guard_install() noexcept nogil
    int dcimg_guarded(void (*fn)(void*) noexcept nogil, void* arg) noexcept nogil


cdef extern from *:
    """
    /* Volatile accesses: the compiler keeps them, and keeps them in order. */
    static void dcimg_touch(const unsigned char *p) {
        (void)*(const volatile unsigned char *)p;
    }
    static void dcimg_set_stage(int *stage, int value) {
        *(volatile int *)stage = value;
    }
    static int dcimg_get_stage(int *stage) {
        return *(volatile int *)stage;
    }
    """
    void dcimg_touch(const uint8_t* p) noexcept nogil
    void dcimg_set_stage(int* stage, int value) noexcept nogil
    int dcimg_get_stage(int* stage) noexcept nogil

import mmap as _mmap

# Pages of a mapped file are present or missing as a whole: the probe that
# confirms a copy (see _fill) reads the first byte of the page after it.
cdef Py_ssize_t _PAGE = _mmap.PAGESIZE


cdef extern from *:
    """
    #ifdef _OPENMP
    #define DCIMG_OPENMP 1
    #else
    #define DCIMG_OPENMP 0
    #endif
    """
    int DCIMG_OPENMP

#: Whether this build splits large copies across threads (OpenMP).
OPENMP = bool(DCIMG_OPENMP)

# What the calling thread's last copy did: how many threads ran it, and
# whether it held the GIL.  Per thread (no copy sees another's), written
# once per copy on the calling thread, outside the parallel region; the test
# suite reads it to check that copies are split and release the GIL.
cdef extern from *:
    """
    #if defined(_MSC_VER)
    #define DCIMG_THREAD_LOCAL __declspec(thread)
    #else
    #define DCIMG_THREAD_LOCAL _Thread_local
    #endif
    static DCIMG_THREAD_LOCAL int dcimg_last_threads = 0;
    static DCIMG_THREAD_LOCAL int dcimg_last_gil = -1;
    static void dcimg_note_threads(int n) { dcimg_last_threads = n; }
    static void dcimg_note_gil(int held) { dcimg_last_gil = held; }
    static int dcimg_get_last_threads(void) { return dcimg_last_threads; }
    static int dcimg_get_last_gil(void) { return dcimg_last_gil; }
    """
    void dcimg_note_threads(int n) noexcept nogil
    void dcimg_note_gil(int held) noexcept nogil
    int dcimg_get_last_threads() noexcept nogil
    int dcimg_get_last_gil() noexcept nogil


cdef extern from "Python.h":
    int PyGILState_Check() noexcept nogil


def last_copy_threads():
    """Return how many threads ran this thread's last copy (0: none yet)."""
    return dcimg_get_last_threads()


def last_copy_held_gil():
    """Return whether this thread's last copy held the GIL (None: none yet)."""
    cdef int held = dcimg_get_last_gil()
    return None if held < 0 else bool(held)


class BufferFault(OSError):
    """The buffer could not be read: pages of a mapped file went missing.

    Raised instead of a fatal ``SIGBUS`` when the file behind a mapping was
    truncated while it was being read.  The caller knows which file it was.
    """


def install_fault_guard():
    """(Re)install the ``SIGBUS`` handler behind the fault guard.

    Called whenever a buffer is wrapped or gathered from, not on import: a
    process that never maps a file keeps its signal handlers as they were.
    It does nothing while the handler is in front; a handler installed
    later by somebody else (``faulthandler.enable()``) is put behind ours,
    and ours passes every fault it does not guard on to it.
    """
    if dcimg_guard_install() != 0:
        raise OSError("could not install the SIGBUS handler of the fault guard")


cdef struct Plan:
    # The copy: source of output pixel [0, 0, 0], counts and byte strides.
    const uint8_t* src
    Py_ssize_t n0, n1, n2, s0, s1, s2
    int threads
    # The stored pixels, when the selection covers overwritten ones: where
    # they land in the output, where their values are (per output frame),
    # and whether to write zeros instead.
    bint stored
    Py_ssize_t out_row, first, count
    const uint8_t* values
    Py_ssize_t values_stride, p0, pstep
    bint zero
    # Output frame i is source frame f0 + i * fstep; frames from limit on
    # have no stored values.
    Py_ssize_t f0, fstep, limit
    # A byte to read once the copy is done (or NULL), to confirm that the
    # buffer still holds every byte copied (see StridedImage._fill).
    const uint8_t* probe


cdef struct Job:
    # One guarded piece of work: output rows r0..r1 of a plan (rows), the
    # stored pixels of every output frame (stored), then the probe (probe).
    Plan* plan
    uint8_t* dst
    int kind, depth
    bint rows, stored, probe
    Py_ssize_t r0, r1
    int thread  # which thread ran it (for last_copy_threads)
    int stage  # 1 once the probe is being read: a fault then is the probe's


cdef void _job_typed(Job* job, dst_t* dst, src_t kind) noexcept nogil:
    cdef Plan* p = job.plan
    if job.rows:
        _rows_typed(p.src, job.r0, job.r1, p.n1, p.n2, p.s0, p.s1, p.s2, dst,
                    kind)
    if job.stored:
        _stored_typed(dst + p.out_row * p.n2 + p.first, p.n0, p.n1 * p.n2,
                      p.values, p.values_stride, p.p0, p.pstep, p.count, p.zero,
                      p.f0, p.fstep, p.limit, kind)


cdef void _job_src(Job* job, src_t s) noexcept nogil:
    # The one place that turns a result-type code into a C type.
    cdef int kind = job.kind
    if kind == 0:
        _job_typed(job, <uint8_t*>job.dst, s)
    elif kind == 1:
        _job_typed(job, <uint16_t*>job.dst, s)
    elif kind == 2:
        _job_typed(job, <int16_t*>job.dst, s)
    elif kind == 3:
        _job_typed(job, <int32_t*>job.dst, s)
    elif kind == 4:
        _job_typed(job, <uint32_t*>job.dst, s)
    elif kind == 5:
        _job_typed(job, <int64_t*>job.dst, s)
    elif kind == 6:
        _job_typed(job, <uint64_t*>job.dst, s)
    elif kind == 7:
        _job_typed(job, <float*>job.dst, s)
    else:
        _job_typed(job, <double*>job.dst, s)


cdef void _job_entry(void* arg) noexcept nogil:
    cdef Job* job = <Job*>arg
    cdef uint8_t byte = 0
    cdef uint16_t word = 0
    if job.rows or job.stored:
        if job.depth == 1:
            _job_src(job, byte)
        else:
            _job_src(job, word)
    if job.probe:
        dcimg_set_stage(&job.stage, 1)
        dcimg_touch(job.plan.probe)


cdef void _count_threads(Job* parts, int n) noexcept nogil:
    cdef int i, j, distinct = 0
    for i in range(n):
        for j in range(i):
            if parts[j].thread == parts[i].thread:
                break
        else:
            distinct += 1
    dcimg_note_threads(distinct)


cdef int _run(Plan* p, uint8_t* dst, int kind, int depth) noexcept nogil:
    """Copy the rows (split across threads if asked), the stored pixels, probe.

    On one thread all three run in one guarded call (arming the guard is
    the cost of a ``sigsetjmp``, which a small read notices).  Returns 0,
    -1 when a page of the buffer could not be read during the copy, or 1
    when only the probe could not be read (the copy is complete).
    """
    cdef Py_ssize_t rows = p.n0 * p.n1
    cdef int part, faults = 0
    cdef Job whole
    cdef Job[MAX_THREADS] parts
    whole.plan = p
    whole.dst = dst
    whole.kind = kind
    whole.depth = depth
    whole.rows = True
    whole.stored = p.stored
    whole.probe = p.probe != NULL
    whole.stage = 0
    whole.r0 = 0
    whole.r1 = rows
    if p.threads <= 1:
        dcimg_note_threads(1)
        if dcimg_guarded(_job_entry, &whole) == 0:
            return 0
        return 1 if dcimg_get_stage(&whole.stage) else -1
    for part in range(p.threads):
        parts[part] = whole
        parts[part].stored = False
        parts[part].probe = False
        parts[part].r0 = rows * part // p.threads
        parts[part].r1 = rows * (part + 1) // p.threads
    # Each thread arms its own guard around its own part.
    for part in prange(p.threads, num_threads=p.threads, schedule="static"):
        parts[part].thread = threadid()
        faults += dcimg_guarded(_job_entry, &parts[part])
    _count_threads(parts, p.threads)
    if faults:
        return -1
    if not (whole.stored or whole.probe):
        return 0
    whole.rows = False
    if dcimg_guarded(_job_entry, &whole) == 0:
        return 0
    return 1 if dcimg_get_stage(&whole.stage) else -1


cdef inline Py_ssize_t _reach(Py_ssize_t count, Py_ssize_t step) noexcept nogil:
    # How far past the first item the farthest of ``count`` items lies.
    return (count - 1) * step if count > 1 and step > 0 else 0


cdef Py_ssize_t _last_below(
    Py_ssize_t f0, Py_ssize_t fstep, Py_ssize_t n, Py_ssize_t limit,
) noexcept nogil:
    # The largest of frames f0 + i * fstep (0 <= i < n) below limit, or -1.
    cdef Py_ssize_t i, frame, best = -1
    for i in range(n):
        frame = f0 + i * fstep
        if frame < limit and frame > best:
            best = frame
    return best


cdef const uint8_t* _probe_after(
    const uint8_t* base, Py_ssize_t length, Py_ssize_t end,
) noexcept nogil:
    """The first byte of the page after byte ``end - 1``, or NULL.

    When that byte can be read, the file behind a map is longer than
    ``end`` now: every byte before it is still the file's.  (A truncated
    file's last page stays mapped, its tail reading as zeros; only the
    pages after it fault.)  NULL when the page lies outside the buffer.
    """
    cdef Py_ssize_t at = ((end - 1) // _PAGE + 1) * _PAGE
    return base + at if at < length else NULL


cdef inline object _finish(cnp.ndarray result, object out, int ndim):
    # A full integer index gives a NumPy scalar, as NumPy's own indexing does.
    if out is None and ndim == 0:
        return result[()]
    return result


cdef int _parse(const Py_ssize_t* shape, object key, Selection* sel) except -1:
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
            _add_dim(sel, 1)
        elif item is Ellipsis:
            for _ in range(3 - n_axes):
                _full_axis(shape, sel, axis)
                axis += 1
        elif isinstance(item, slice):
            size = shape[axis]
            PySlice_Unpack(item, &start, &stop, &step)
            sel.count[axis] = PySlice_AdjustIndices(size, &start, &stop, step)
            sel.start[axis] = start
            sel.step[axis] = step
            _add_dim(sel, sel.count[axis])
            axis += 1
        elif isinstance(item, (bool, np.bool_)):
            raise IndexError(
                "boolean indices are not supported here; read the frames "
                "first (f[...]) and index the array"
            )
        elif PyIndex_Check(item) and not (
                isinstance(item, np.ndarray) and item.ndim):
            size = shape[axis]
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
        _full_axis(shape, sel, axis)
        axis += 1
    return 0

cdef int _add_dim(Selection* sel, Py_ssize_t n) except -1:
    if sel.out_ndim >= MAX_OUT_DIMS:
        raise IndexError(f"an index may add at most {MAX_OUT_DIMS} dimensions")
    sel.out_shape[sel.out_ndim] = n
    sel.out_ndim += 1
    return 0

cdef int _full_axis(const Py_ssize_t* shape, Selection* sel, int axis) except -1:
    sel.start[axis] = 0
    sel.step[axis] = 1
    sel.count[axis] = shape[axis]
    return _add_dim(sel, shape[axis])


def select(key, tuple shape):
    """Per-axis ``(start, step, count)`` that a basic index selects.

    Parameters
    ----------
    key : index
        Integers, slices (any step), ``...`` and ``None``.
    shape : tuple of 3 int
        The shape indexed.

    Returns
    -------
    axes : tuple of 3 tuples
        ``(start, step, count)`` for frames, rows and columns.
    shape : tuple of int
        Shape of the result (integer axes dropped, ``None`` axes added).

    Raises
    ------
    IndexError
        As NumPy's basic indexing would.
    """
    cdef Selection sel
    cdef Py_ssize_t dims[3]
    cdef int a
    for a in range(3):
        dims[a] = shape[a]
    _parse(dims, key, &sel)
    axes = tuple((sel.start[a], sel.step[a], sel.count[a]) for a in range(3))
    return axes, tuple(sel.out_shape[a] for a in range(sel.out_ndim))


cdef class StridedImage:
    """A 3-D image in a read-only byte buffer, read with NumPy basic indexing.

    Parameters
    ----------
    buffer : buffer
        Read-only bytes (e.g. a memory map) holding the image.
    offset : int
        Byte offset of pixel ``[0, 0, 0]``.
    shape : tuple of 3 int
        ``(frames, rows, columns)``.
    strides : tuple of 3 int
        Positive byte strides between frames, rows and columns.
    depth : int
        Bytes per pixel: 1 (``uint8``) or 2 (little-endian ``uint16``).
    stored : tuple of 5 int, optional
        ``(row, column, count, offset, stride)``: in every frame ``i``,
        pixels ``[i, row, column:column + count]`` were overwritten and their
        true values are ``count`` pixels at byte ``offset + i * stride``.
    stored_frames : int, optional
        Frames ``i`` whose stored values are in the buffer: those below this
        (all when negative).  The others (the last frame of a file cut inside
        its trailer) keep their pixels as stored, or get zeros in that mode;
        their values are never read.
    max_threads : int, default 1
        Threads a large copy may be split across.
    parallel_bytes : int, default 32 MiB
        Result size from which a copy is split across threads.
    confirm : callable, optional
        For a buffer that maps a file that may shrink: after every copy the
        kernel reads one byte of the page that follows the last byte copied
        (under the guard).  When that byte is there, the file still holds
        every byte copied; when it faults or lies outside the buffer,
        ``confirm(end, faulted)`` is called (``end``: one past the last byte
        read; ``faulted``: whether the probe faulted) and must raise if the
        buffer no longer holds bytes ``[0, end)``.
        Without it nothing is checked after the copy.

    Raises
    ------
    ValueError
        If the geometry or the stored pixels do not fit inside the buffer.
    """

    cdef const uint8_t[::1] buf
    cdef const uint8_t* base
    cdef readonly Py_ssize_t offset
    cdef Py_ssize_t shape[3]
    cdef Py_ssize_t strides[3]
    cdef readonly int depth
    cdef Py_ssize_t stored_row, stored_col, stored_count
    cdef Py_ssize_t stored_offset, stored_stride, stored_frames
    # Where the stored values are: the image's buffer, or (after
    # use_values) a copy of their own, which no read needs to confirm.
    # values_base + stored_offset is the first value; it is one pointer,
    # so a read on another thread sees the old place or the new one.
    cdef const uint8_t[::1] values_buf
    cdef const uint8_t* values_base
    cdef int max_threads
    cdef Py_ssize_t parallel_bytes
    cdef object confirm
    cdef bint confirming

    def __cinit__(
        self, const uint8_t[::1] buffer, Py_ssize_t offset, tuple shape,
        tuple strides, int depth, tuple stored=None, int max_threads=1,
        Py_ssize_t parallel_bytes=32 << 20, object confirm=None,
        Py_ssize_t stored_frames=-1,
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
        self.values_buf = buffer
        self.values_base = self.base
        self.offset = offset
        self.depth = depth
        self.stored_count = 0
        self.stored_row = -1
        if stored_frames < 0 or stored_frames > self.shape[0]:
            stored_frames = self.shape[0]
        self.stored_frames = stored_frames
        if stored is not None and stored[2] > 0 and self.shape[0] > 0:
            row, col, count, soffset, sstride = stored
            if not (0 <= row < self.shape[1] and 0 <= col
                    and col + count <= self.shape[2]):
                raise ValueError(f"stored pixels {stored} lie outside the image")
            if soffset < 0 or sstride < 0 or (stored_frames and soffset + (
                    stored_frames - 1) * sstride + count * depth
                    > buffer.shape[0]):
                raise ValueError(
                    f"stored pixel values {stored} lie outside the buffer")
            self.stored_row = row
            self.stored_col = col
            self.stored_count = count
            self.stored_offset = soffset
            self.stored_stride = sstride
        self.max_threads = max(1, min(max_threads, MAX_THREADS))
        self.parallel_bytes = parallel_bytes
        self.confirm = confirm
        self.confirming = confirm is not None
        install_fault_guard()

    @property
    def shape(self):
        """``(frames, rows, columns)``."""
        return (self.shape[0], self.shape[1], self.shape[2])

    def use_values(self, values):
        """Read the stored values from a copy of their bytes from now on.

        For a buffer that maps a file whose stored values sit in its last
        page(s) (a packed file's footer): reads that restore them would
        each need ``confirm``.  Done once; later calls do nothing.

        Parameters
        ----------
        values : buffer
            The bytes from the stored values' offset on, laid out as in the
            image's buffer (the same stride).

        Returns
        -------
        bool
            Whether the copy is used from now on (False: one already is, or
            the image has no stored values).
        """
        cdef const uint8_t[::1] copy = values
        if self.stored_count == 0 or self.values_base != self.base:
            return False
        cdef Py_ssize_t need = 0
        if self.stored_frames:
            need = ((self.stored_frames - 1) * self.stored_stride
                    + self.stored_count * self.depth)
        if need > copy.shape[0]:
            raise ValueError("the copy of the stored values is too short")
        self.values_buf = copy  # kept for as long as the image lives
        # One store: values_base + stored_offset is the copy's first byte.
        self.values_base = &copy[0] - self.stored_offset
        return True

    cdef bint _stored_hit(
        self, Selection* sel, Py_ssize_t* out_row, Py_ssize_t* first,
        Py_ssize_t* count,
    ) noexcept nogil:
        """Where the overwritten pixels land in the selection's output."""
        cdef Py_ssize_t d, lo, hi, j_lo, j_hi
        cdef Py_ssize_t c0 = sel.start[2], cstep = sel.step[2]
        if self.stored_count == 0 or sel.count[0] == 0:
            return False
        if sel.count[1] == 0 or sel.count[2] == 0:
            return False
        d = self.stored_row - sel.start[1]
        if d % sel.step[1] != 0:
            return False
        out_row[0] = d // sel.step[1]
        if out_row[0] < 0 or out_row[0] >= sel.count[1]:
            return False
        lo = self.stored_col
        hi = lo + self.stored_count - 1
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

    cdef int _fill(
        self, Selection* sel, uint8_t* dst, int kind, int mode, int threads,
        Py_ssize_t* end_out,
    ) noexcept nogil:
        """Copy the selection into ``dst``, then handle the stored pixels.

        Returns 0; -1 when the buffer could not be read (see the guard); 1
        when the copy is complete but the probe after it (the byte after the
        page of the last byte read, ``end_out``) faulted; 2 when that byte
        lies outside the buffer.
        """
        cdef Plan p
        cdef int status
        cdef Py_ssize_t out_row, first, count, last
        cdef const uint8_t* values_base = self.values_base  # one read
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
        p.stored = mode != _LEAVE and self._stored_hit(
            sel, &out_row, &first, &count)
        if p.stored:
            p.out_row = out_row
            p.first = first
            p.count = count
            p.values = values_base + self.stored_offset + (
                sel.start[0] * self.stored_stride)
            p.values_stride = sel.step[0] * self.stored_stride
            p.p0 = sel.start[2] + first * sel.step[2] - self.stored_col
            p.pstep = sel.step[2]
            p.zero = mode == _ZERO
            p.f0 = sel.start[0]
            p.fstep = sel.step[0]
            p.limit = self.stored_frames
        dcimg_note_gil(PyGILState_Check())
        cdef Py_ssize_t end = (p.src - self.base) + _reach(p.n0, p.s0) + _reach(
            p.n1, p.s1) + _reach(p.n2, p.s2) + self.depth
        if p.stored and values_base == self.base and not p.zero:
            # The values read: those of the last selected frame that has any.
            last = _last_below(p.f0, p.fstep, p.n0, p.limit)
            if last >= 0:
                end = max(end, self.stored_offset + last * self.stored_stride
                          + (p.p0 + _reach(p.count, p.pstep) + 1) * self.depth)
        end_out[0] = end
        p.probe = NULL
        if not self.confirming:
            return _run(&p, dst, kind, self.depth)
        p.probe = _probe_after(self.base, self.buf.shape[0], end)
        status = _run(&p, dst, kind, self.depth)
        if status == 0 and p.probe == NULL:
            return 2  # nothing after these bytes to probe: the caller checks
        return status

    def take(self, key, int kind, out=None, int mode=_RESTORE, int threads=0):
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
        mode : int, default RESTORE
            :data:`RESTORE`, :data:`ZERO` or :data:`LEAVE`.
        threads : int, default 0
            Most threads this copy may be split across; 0 means the
            ``max_threads`` the image was made with.  Callers that already
            run copies in parallel pass 1 (nested thread teams only compete
            for the same cores).

        Returns
        -------
        numpy.ndarray or numpy scalar
            ``out`` when given; a scalar when every axis is an integer.

        Raises
        ------
        BufferFault
            If pages of the buffer went missing during the copy (a mapped
            file was truncated); ``out`` is then partly written.
        Exception
            Whatever ``confirm`` raises when the copy could not be confirmed
            (``out`` is then written, but not with bytes to trust).
        """
        cdef Selection sel
        cdef cnp.ndarray result
        cdef int a, status
        cdef Py_ssize_t end = 0
        cdef int team = self.max_threads if threads == 0 else min(threads, MAX_THREADS)
        if kind < 0 or kind > 8:
            raise ValueError(f"unknown element kind {kind}")
        if threads < 0:
            raise ValueError(f"threads must be 0 or more, not {threads}")
        _parse(self.shape, key, &sel)
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
        threads = 1
        if n * _ITEMSIZE[kind] >= self.parallel_bytes:
            threads = min(team, sel.count[0] * sel.count[1])
        with nogil:
            status = self._fill(&sel, dst, kind, mode, threads, &end)
        if status < 0:
            raise BufferFault("pages of the buffer could not be read")
        if status > 0:
            self.confirm(end, status == 1)
        return _finish(result, out, sel.out_ndim)

    def view(self, key, bint keep_overwritten=False):
        """Return a read-only view of ``key`` in the buffer, or None.

        The view shows the pixels as stored; unless ``keep_overwritten``, it
        is None when the selection covers overwritten pixels (the caller then
        copies with :meth:`take`).  Built from the same parse of the index as
        :meth:`take`, so every step that NumPy accepts works.  A view is not
        guarded: reading it after the mapped file shrank raises ``SIGBUS``.

        Parameters
        ----------
        key : index
            A basic index, as for :meth:`take`.
        keep_overwritten : bool, default False
            Return the view even where it shows overwritten pixels.

        Returns
        -------
        numpy.ndarray or None
        """
        cdef Selection sel
        cdef Py_ssize_t out_row, first, count, start = self.offset
        cdef int a
        _parse(self.shape, key, &sel)
        if not keep_overwritten and self._stored_hit(
                &sel, &out_row, &first, &count):
            return None
        shape = []
        strides = []
        for a in range(3):
            if sel.count[a]:
                start += sel.start[a] * self.strides[a]
            shape.append(sel.count[a])
            # A single element needs no real stride (and a huge step times
            # the stride could overflow one).
            strides.append(sel.step[a] * self.strides[a] if sel.count[a] > 1
                           else self.strides[a])
        dtype = np.dtype("<u2" if self.depth == 2 else "u1")
        if sel.count[0] * sel.count[1] * sel.count[2] == 0:
            start = self.offset
        result = np.ndarray(tuple(shape), dtype=dtype, buffer=self.buf,
                            offset=start, strides=tuple(strides))
        result.flags.writeable = False
        result = result.reshape(
            tuple(sel.out_shape[a] for a in range(sel.out_ndim)))
        return result[()] if sel.out_ndim == 0 else result


cdef struct Gather:
    const uint8_t* src
    uint8_t* dst
    Py_ssize_t count, stride, itemsize
    const uint8_t* probe  # as Plan.probe
    int stage  # as Job.stage


cdef void _gather_entry(void* arg) noexcept nogil:
    cdef Gather* g = <Gather*>arg
    cdef Py_ssize_t i
    for i in range(g.count):
        memcpy(g.dst + i * g.itemsize, g.src + i * g.stride, g.itemsize)
    if g.probe != NULL:
        dcimg_set_stage(&g.stage, 1)
        dcimg_touch(g.probe)


def gather(const uint8_t[::1] buffer, Py_ssize_t offset, Py_ssize_t stride,
           Py_ssize_t count, Py_ssize_t itemsize, object confirm=None):
    """Copy ``count`` items of ``itemsize`` bytes, ``stride`` bytes apart.

    Parameters
    ----------
    buffer : buffer
        Read-only bytes.
    offset, stride, count, itemsize : int
        Where the first item is, the distance between items, how many there
        are and how long each is, in bytes.
    confirm : callable, optional
        As for :class:`StridedImage`: called with the end of the bytes read
        when the probe after them faults or lies outside the buffer.

    Returns
    -------
    bytes
        The items back to back (``count * itemsize`` bytes).

    Raises
    ------
    ValueError
        If the items do not lie inside the buffer.
    BufferFault
        If pages of the buffer went missing during the copy.
    """
    cdef Gather g
    cdef int status
    if count < 0 or itemsize < 0 or stride < 0 or offset < 0:
        raise ValueError("negative offset, stride, count or item size")
    if count and (offset + (count - 1) * stride + itemsize > buffer.shape[0]):
        raise ValueError("the items do not lie inside the buffer")
    result = bytearray(count * itemsize)
    if not count or not itemsize:
        return bytes(result)
    cdef uint8_t[::1] dst = result
    g.src = &buffer[offset]
    g.dst = &dst[0]
    g.count = count
    g.stride = stride
    g.itemsize = itemsize
    g.stage = 0
    g.probe = NULL
    cdef Py_ssize_t end = offset + (count - 1) * stride + itemsize
    cdef bint confirming = confirm is not None
    if confirming:
        g.probe = _probe_after(&buffer[0], buffer.shape[0], end)
    install_fault_guard()
    with nogil:
        status = dcimg_guarded(_gather_entry, &g)
    if status != 0 and not dcimg_get_stage(&g.stage):
        raise BufferFault("pages of the buffer could not be read")
    if confirming and (status != 0 or g.probe == NULL):
        confirm(end, status != 0)
    return bytes(result)
