"""Exception and warning types raised by :mod:`dcimg`."""

from __future__ import annotations

__all__ = ["DCIMGChangedError", "DCIMGError", "DCIMGFormatError", "DCIMGWarning"]


class DCIMGError(ValueError):
    """Base class of the errors this package raises about a file's contents.

    It derives from :class:`ValueError`, so ``except ValueError`` catches it.
    """


class DCIMGFormatError(DCIMGError):
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
        super().__init__(message)
        self.field = field
        self.path = path


class DCIMGChangedError(DCIMGError):
    """The file changed under the reader: it shrank, was replaced or removed.

    Raised by reads (instead of a crash) when the bytes they need are no
    longer in the file that was opened, e.g. after the file was overwritten
    with a shorter one.  Open the file again to read what it holds now, or
    call :meth:`dcimg.DCIMGFile.refresh` for a file that is still growing.

    Parameters
    ----------
    message : str
        What changed, with the sizes before and now.
    path : str, optional
        The file (path or URL).
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DCIMGWarning(UserWarning):
    """Something about the file is unusual but it can still be read.

    Examples: an interrupted acquisition (fewer complete frames than
    declared), more than one session, a lost footer.
    """
