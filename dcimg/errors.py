"""The exceptions and warnings :mod:`dcimg` raises, in one place.

Every error derives from :class:`DCIMGError` and carries ``path``, the file
(path or URL, without credentials) it is about -- for a series, the member at
fault. Below the base, each error also derives from the built-in exception a
caller would naturally catch:

- bad content (not DCIMG, a corrupt header, files that do not make a series,
  a conversion asked wrongly) is a :class:`ValueError`, so a program that
  tries several readers catches ``ValueError`` and moves on;
- a file that could not be read, or changed under the reader, is an
  :class:`OSError`: the same file may read fine later, so it is not "bad";
- a missing optional package is an :class:`ImportError`.

::

    DCIMGError
    ├── DCIMGFormatError           (ValueError)
    ├── DCIMGSeriesError           (ValueError)
    ├── ConversionError            (ValueError)
    │   └── InputCollisionError
    ├── DCIMGReadError             (OSError)
    │   └── DCIMGChangedError
    └── MissingDependencyError     (ImportError)
    DCIMGWarning                   (UserWarning)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = [
    "ConversionError",
    "DCIMGChangedError",
    "DCIMGError",
    "DCIMGFormatError",
    "DCIMGReadError",
    "DCIMGSeriesError",
    "DCIMGWarning",
    "InputCollisionError",
    "MissingDependencyError",
]


class DCIMGError(Exception):
    """Base class of every error this package raises.

    Parameters
    ----------
    message : str
        What went wrong; it names the file too.
    path : str, optional
        The file (path or URL, without credentials) the error is about.

    Attributes
    ----------
    path : str or None
        The file the error is about, for programs that react to it; for a
        series, the member at fault.
    """

    path: str | None

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DCIMGFormatError(DCIMGError, ValueError):
    """The file is not DCIMG, or its header is corrupt.

    The message names the header field at fault and the values found.

    Parameters
    ----------
    message : str
        What is wrong, naming the field and its values.
    field : str, optional
        The name of the offending header field, for programs that react to it.
    path : str, optional
        The file (path or URL) at fault; the message names it too.
    """

    def __init__(
        self, message: str, field: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(message, path)
        self.field = field


class DCIMGSeriesError(DCIMGError, ValueError):
    """The files given do not make a series.

    Raised when no file matches, when the names do not fit the pattern or
    leave gaps in the grid of counters, or when the members disagree (frame
    shape, pixel type). Errors about one member's own content are that
    member's :class:`DCIMGFormatError`, with its ``path``.
    """


class ConversionError(DCIMGError, ValueError):
    """A conversion cannot be done as asked (bad output name, frames, type...)."""


class InputCollisionError(ConversionError):
    """An output would replace, contain, or lie inside what is being read.

    Raised before anything is written, with or without ``overwrite``: a
    conversion never deletes, truncates or replaces a file it reads.

    Parameters
    ----------
    output : str
        The output as given.
    input : str
        The input file, or the folder of the series, it collides with.
    relation : str
        How they collide, as words of the message (for example ``"it is"``).

    Attributes
    ----------
    output : str
        The output as given.
    input : str
        The input file, or the folder of the series, it collides with; also
        ``path``.
    relation : str
        How they collide, as given.
    """

    def __init__(self, output: str, input: str, relation: str) -> None:
        super().__init__(
            f"refusing to write {output!r}: {relation} {input!r}, which is "
            "being read (inputs are never replaced, even with overwrite); "
            "choose another output",
            input,
        )
        self.output = output
        self.input = input
        self.relation = relation

    def __reduce__(self) -> tuple[type[InputCollisionError], tuple[str, str, str]]:
        # Rebuilt from its parts (the message alone does not give them back),
        # so that it crosses process boundaries like the others.
        return type(self), (self.output, self.input, self.relation)


class DCIMGReadError(DCIMGError, OSError):
    """Reading a file, object or URL failed, or gave too few bytes.

    Raised when a request fails (the connection dropped, the server answered
    with an error, no answer arrived in time, the server ignores range
    requests) or returns a different number of bytes than asked for. The
    message names the source, without credentials, and the byte offsets.
    """


class DCIMGChangedError(DCIMGReadError):
    """The file changed under the reader: it shrank, was replaced or removed.

    Raised by reads (instead of a crash or wrong pixels) when the bytes they
    need are no longer those of the file that was opened, e.g. after the file
    was overwritten with a shorter one or a remote object was replaced. Open
    the file again to read what it holds now, or call
    :meth:`dcimg.DCIMGFile.refresh` for a file that is still growing.

    Parameters
    ----------
    message : str
        What changed, with the sizes before and now.
    path : str, optional
        The file (path or URL).
    """


class MissingDependencyError(DCIMGError, ImportError):
    """An optional package needed for what was asked is not installed.

    The message says which extra of ``dcimg`` to install.

    Parameters
    ----------
    message : str
        What needs the package, and how to install it.
    package : str, optional
        The name of the missing package (also ``name``, as for any
        :class:`ImportError`).
    path : str, optional
        The file the operation was about, if any.
    """

    def __init__(
        self, message: str, package: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(message, path)
        self.name = package


class DCIMGWarning(UserWarning):
    """Something about the file is unusual but it can still be read.

    Examples: an interrupted acquisition (fewer complete frames than
    declared), more than one session, a lost footer.
    """


# Threads that open files without warning (see quiet_warnings).
_QUIET = threading.local()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Open files on this thread without issuing :class:`DCIMGWarning`.

    For files whose warnings were already shown (a Dask task or a series
    opening a file again). Unlike :func:`warnings.catch_warnings`, which
    swaps the process-wide filter list, it affects only the calling thread,
    so threads reading at the same time cannot undo each other's filters.
    """
    before = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = before


def warnings_quieted() -> bool:
    """Whether :func:`quiet_warnings` is in effect on the calling thread."""
    return getattr(_QUIET, "on", False)
