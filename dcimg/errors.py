"""Exception and warning types raised by :mod:`dcimg`."""

from __future__ import annotations

__all__ = ["DCIMGError", "DCIMGFormatError", "DCIMGWarning"]


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
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DCIMGWarning(UserWarning):
    """Something about the file is unusual but it can still be read.

    Examples: an interrupted acquisition (fewer complete frames than
    declared), more than one session, a lost footer.
    """
