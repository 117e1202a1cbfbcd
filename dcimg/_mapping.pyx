# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Read-only memory maps that hold no file descriptor.

Python's :class:`mmap.mmap` keeps a duplicate of the file's descriptor for
as long as the mapping (or any array built on it) lives, so every open file
and every view costs a descriptor (before Python 3.13's ``trackfd``).  A
POSIX mapping does not need the descriptor once it is made: :class:`ReadOnlyMap`
maps the file, closes the descriptor at once, and unmaps when the last
buffer exported from it is gone.  (POSIX only; Windows uses :mod:`mmap`.)
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_FillInfo
from libc.errno cimport errno
from posix.mman cimport (
    MAP_FAILED, MAP_SHARED, MADV_NORMAL, MADV_RANDOM, PROT_READ, madvise, mmap,
    munmap,
)

import os

#: ``advise()`` values: random access (no read-ahead) and the default.
RANDOM = MADV_RANDOM
NORMAL = MADV_NORMAL


cdef class ReadOnlyMap:
    """A read-only shared mapping of a whole file.

    Parameters
    ----------
    fd : int
        An open descriptor of the file; the caller keeps (and may close) it
        once the map is made.
    length : int
        Bytes to map (the file's size, at least 1).

    Raises
    ------
    OSError
        If the file cannot be mapped.
    """

    cdef void* addr
    cdef readonly Py_ssize_t length
    cdef Py_ssize_t page

    def __cinit__(self, int fd, Py_ssize_t length):
        self.addr = NULL
        if length <= 0:
            raise ValueError(f"cannot map {length} bytes")
        self.addr = mmap(NULL, length, PROT_READ, MAP_SHARED, fd, 0)
        if self.addr == MAP_FAILED:
            self.addr = NULL
            raise OSError(errno, f"could not map {length} bytes: "
                          f"{os.strerror(errno)}")
        self.length = length
        self.page = os.sysconf("SC_PAGE_SIZE")

    def __dealloc__(self):
        if self.addr != NULL:
            munmap(self.addr, self.length)
            self.addr = NULL

    def __len__(self):
        return self.length

    def __getbuffer__(self, Py_buffer* view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("the map is read-only")
        PyBuffer_FillInfo(view, self, self.addr, self.length, 1, flags)

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def advise(self, Py_ssize_t offset, Py_ssize_t length, int advice):
        """Tell the kernel how a byte range will be read (``madvise``).

        Parameters
        ----------
        offset, length : int
            The byte range (widened to whole pages).
        advice : int
            :data:`RANDOM` (no read-ahead) or :data:`NORMAL`.
        """
        cdef Py_ssize_t start = offset - offset % self.page
        cdef Py_ssize_t end = min(self.length, offset + length)
        if end > start:
            madvise(<char*>self.addr + start, end - start, advice)
