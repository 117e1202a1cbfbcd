# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""File names of a series: which are DCIMG, and their counters, in C.

A series of thousands of files is opened in a few milliseconds, and doing
this per name in Python (a regular expression, a few objects and an
``int()`` per counter) would cost about as much as reading every file's
header.  These loops walk the names' characters directly.  They hold the
GIL: they touch ``str`` objects, and take microseconds per thousand names.
Each name is read at most twice (back to its last separator, then forward
once against the template, never backtracking), so the time is linear in
its length whatever it holds.
Which names count as members, and what a counter is, is decided in
:mod:`dcimg.series`; this module only applies it.
"""

import numpy

from cpython.unicode cimport PyUnicode_DATA, PyUnicode_KIND, PyUnicode_READ
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

cdef enum:
    # int64 holds every 18-digit number; no camera counts further.
    MAX_DIGITS = 18

#: Digits a counter may have (:func:`split_counters` rejects longer ones).
COUNTER_DIGITS = MAX_DIGITS


cdef inline bint _ascii_lower_is(Py_UCS4 c, Py_UCS4 lower) noexcept:
    # ASCII case folding only: 'İ' or 'ı' do not make a name DCIMG.
    cdef unsigned int code = c
    return code < 128 and (code | 0x20) == <unsigned int>lower


cdef inline bint _ends_in_dcimg(str name) noexcept:
    cdef Py_ssize_t n = len(name)
    if n < 6 or name[n - 6] != u".":
        return False
    return (_ascii_lower_is(name[n - 5], u"d") and _ascii_lower_is(name[n - 4], u"c")
            and _ascii_lower_is(name[n - 3], u"i")
            and _ascii_lower_is(name[n - 2], u"m")
            and _ascii_lower_is(name[n - 1], u"g"))


def dcimg_names(list names, str folder="", bint hidden=True):
    """The names ending in ``.dcimg`` (any ASCII letter case), after ``folder``.

    Parameters
    ----------
    names : list of str
        File names, e.g. from :func:`os.listdir`.
    folder : str, default ""
        Prepended to every name kept (a folder ending in its separator).
    hidden : bool, default True
        Whether to keep names that start with ``.`` (False: skip them, as
        the glob ``*.dcimg`` does; e.g. the ``._`` files macOS leaves).

    Returns
    -------
    list of str
        ``folder + name`` for every name kept, in the given order.
    """
    cdef list kept = []
    cdef str name
    for item in names:
        if not isinstance(item, str):
            raise TypeError(f"names must be str, not {type(item).__name__}")
        name = item
        if not hidden and len(name) and name[0] == u".":
            continue
        if _ends_in_dcimg(name):
            kept.append(folder + name if folder else name)
    return kept


cdef inline bint _is_digit(Py_UCS4 c) noexcept:
    cdef unsigned int code = c
    return 0x30 <= code <= 0x39  # ASCII '0' to '9' only


cdef struct Text:
    # A str's characters as CPython stores them (1, 2 or 4 bytes each).
    int kind
    const char* data
    Py_ssize_t length


cdef inline Text _text(str s) noexcept:
    cdef Text t
    t.kind = PyUnicode_KIND(s)
    t.data = <const char*>PyUnicode_DATA(s)
    t.length = len(s)
    return t


cdef inline Py_UCS4 _at(Text t, Py_ssize_t i) noexcept:
    return PyUnicode_READ(t.kind, <void*>t.data, i)


cdef inline bint _holds_at(Text t, Py_ssize_t at, Text piece) noexcept:
    """Whether ``piece`` is ``t[at:at + len(piece)]``."""
    cdef Py_ssize_t i
    if t.length - at < piece.length:
        return False
    if t.kind == piece.kind:  # nearly always: both ASCII
        return memcmp(t.data + at * t.kind, piece.data, piece.length * t.kind) == 0
    for i in range(piece.length):
        if _at(t, at + i) != _at(piece, i):
            return False
    return True


def split_counters(list paths, tuple pieces, str separators):
    """Match every file name against one template and read its counters.

    A name matches when it is ``pieces[0]``, a counter, ``pieces[1]``, a
    counter, ... ``pieces[-1]``, exactly; a counter is 1 to
    :data:`COUNTER_DIGITS` ASCII digits.  Every piece after a counter must
    start with something other than a digit, so that a counter is the whole
    run of digits (as a regular expression would take it).

    Parameters
    ----------
    paths : list of str
        Paths or names; the name is what follows the last separator.
    pieces : tuple of str
        The template's literal text around its counters (at least two).
    separators : str
        The characters that end a folder (``os.sep``, and ``os.altsep``).

    Returns
    -------
    matched : numpy.ndarray
        ``bool``, one per path: whether its name follows the template.
    values : numpy.ndarray
        ``int64``, shape ``(len(pieces) - 1, len(paths))``: the counters
        (0 where the name does not match).

    Raises
    ------
    ValueError
        If fewer than two pieces are given, a piece after a counter is
        empty or starts with a digit, or ``separators`` is not one or two
        characters.
    TypeError
        If a path or piece is not a ``str``.
    """
    cdef Py_ssize_t n = len(paths), k = len(pieces) - 1
    cdef Py_ssize_t i, j, p, digits
    cdef Py_UCS4 sep, altsep, c
    cdef int64_t value
    cdef bint ok
    cdef Text path
    if k < 1:
        raise ValueError(f"a template needs at least two pieces, not {pieces!r}")
    for item in pieces:
        if not isinstance(item, str):
            raise TypeError(f"pieces must be str, not {type(item).__name__}")
    for j in range(1, k + 1):
        if len(pieces[j]) == 0 or _is_digit(pieces[j][0]):
            raise ValueError(
                f"piece {j} of {pieces!r} follows a counter: it must start "
                "with a non-digit"
            )
    if not 1 <= len(separators) <= 2:
        raise ValueError(f"separators must be 1 or 2 characters, not {separators!r}")
    sep = separators[0]
    altsep = separators[len(separators) - 1]
    for item in paths:
        if not isinstance(item, str):
            raise TypeError(f"paths must be str, not {type(item).__name__}")
    cdef Text* texts = <Text*>malloc((k + 1) * sizeof(Text))
    if texts == NULL:
        raise MemoryError()
    matched = numpy.zeros(n, dtype=numpy.uint8)
    values = numpy.zeros((k, n), dtype=numpy.int64)
    cdef uint8_t[::1] matched_view = matched
    cdef int64_t[:, ::1] values_view = values
    try:
        for j in range(k + 1):
            texts[j] = _text(pieces[j])  # the tuple keeps them alive
        for i in range(n):
            path = _text(<str>paths[i])
            # The name starts after the last separator.
            p = path.length
            while p > 0:
                c = _at(path, p - 1)
                if c == sep or c == altsep:
                    break
                p -= 1
            ok = True
            for j in range(k + 1):
                if not _holds_at(path, p, texts[j]):
                    ok = False
                    break
                p += texts[j].length
                if j == k:
                    break
                value = 0
                digits = 0
                while p < path.length and _is_digit(_at(path, p)):
                    digits += 1
                    if digits > MAX_DIGITS:
                        break
                    value = value * 10 + <int64_t>(<unsigned int>_at(path, p) - 0x30)
                    p += 1
                if digits == 0 or digits > MAX_DIGITS:
                    ok = False
                    break
                values_view[j, i] = value
            if ok and p == path.length:
                matched_view[i] = 1
            else:
                for j in range(k):
                    values_view[j, i] = 0
    finally:
        free(texts)
    return matched.view(numpy.bool_), values
