"""Opening local files for reading: the one place that calls ``os.open``.

Both the byte sources (:mod:`dcimg._source`, :mod:`dcimg._ranges`) and the
C header probe of :func:`dcimg._format.probe_many` open files the same way:
read-only, not inherited by child processes, and without waiting on a FIFO
or device named like a DCIMG file.
"""

from __future__ import annotations

import os
import stat

from dcimg.errors import DCIMGFormatError

__all__ = ["HOST", "READ_ONLY_FLAGS", "open_regular_file"]

#: How files are opened for reading (here, and by the C header probe of
#: :func:`dcimg._format.probe_many`).  O_NONBLOCK: a FIFO (or device) named
#: like a DCIMG file opens at once and is then refused as not a regular
#: file, instead of waiting for a writer.
READ_ONLY_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

#: The name of this machine.  Device and inode numbers, which tell a file
#: from another put in its place, mean something on the machine that took
#: them only: a Dask worker elsewhere numbers the same network files
#: differently, so they are recorded with this name.
HOST = (
    os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
)


def open_regular_file(path: str) -> tuple[int, os.stat_result]:
    """Open a regular file for reading; return its descriptor and status.

    Raises
    ------
    OSError
        If it cannot be opened (missing, no permission), naming it.
    dcimg.DCIMGFormatError
        If it is not a regular file (a folder, a FIFO, a device), naming it
        and what it is.
    """
    try:
        fd = os.open(path, READ_ONLY_FLAGS)
    except BlockingIOError:
        # Another process holds a write lease (Samba oplocks, NFS
        # delegations): wait for it to be broken, as a blocking open does.
        fd = os.open(path, READ_ONLY_FLAGS & ~_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DCIMGFormatError(
                f"{path}: {_file_kind(info.st_mode)}, not a regular file (a DCIMG "
                "file)",
                None,
                path,
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)  # reads through it wait, as usual
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
