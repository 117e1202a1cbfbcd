"""Signals, staging beside the output, full disks and progress."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from dcimg._convert import options
from dcimg._convert.inputs import _Inputs, _refuse_inputs
from dcimg._convert.options import _Options
from dcimg._stack import Stack
from dcimg.errors import (
    ConversionError,
)

# --------------------------------------------------------------------------
# Interruption: signals stop the conversion between blocks


class _Interrupt:
    """Turn SIGINT (and SIGTERM) into a stop at the next block boundary.

    While a conversion runs, the first signal only records that it came: the
    block being written is completed (no writer is left half-way through a
    file), then :meth:`check` raises :class:`KeyboardInterrupt` and the
    temporary output is removed. A second signal raises at once.
    """

    def __init__(self) -> None:
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    @contextlib.contextmanager
    def installed(self, signals: Sequence[int]) -> Iterator[_Interrupt]:
        """Install the handler (main thread only) for the given signals."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {}
        try:
            for signum in signals:
                previous[signum] = signal.signal(signum, self._handler)
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


# --------------------------------------------------------------------------
# Staging, errors, progress


@contextlib.contextmanager
def _staging(
    out: Path, overwrite: bool, interrupt: _Interrupt, inputs: _Inputs
) -> Iterator[Path]:
    """Give a temporary path beside ``out``; move it into place on success.

    Whatever happens inside (an error, ``KeyboardInterrupt``, a full disk),
    the temporary folder is removed; ``out`` is only touched once the new
    output is whole. Before the folder is made, before ``out`` is moved away
    or replaced and before the folder is removed, :func:`_refuse_inputs`
    checks that no input is touched (``out`` may have changed meanwhile).
    """
    _refuse_inputs(inputs, out)
    folder = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    )
    try:
        target = folder / out.name
        _refuse_inputs(inputs, target, out)
        yield target
        interrupt.check()
        _refuse_inputs(inputs, out)
        if os.path.lexists(out):
            if not overwrite:
                raise ConversionError(f"{out} appeared during the conversion")
            # Move the old output into the folder that is removed below.
            os.replace(out, folder / "previous")
        os.replace(target, out)
    finally:
        # Raising here keeps the folder: better left behind than an input
        # removed with it.
        _refuse_inputs(inputs, folder, out)
        shutil.rmtree(folder, ignore_errors=True)


# NumPy's ``tofile`` reports a short write without an errno.
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")
_NO_SPACE = "no space left on the device"


def _disk_full(error: OSError, folder: Path) -> bool:
    """Whether a failed write means the file system (or quota) is full."""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    if error.errno is None and _SHORT_WRITE.search(str(error)):
        # A short write to a regular file: out of space unless the device
        # still has room (then it was a quota or a file size limit).
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < options.BLOCK_BYTES
        return True
    return False


def _progress_bar(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: convert silently without it
        return contextlib.nullcontext(None)
    return tqdm(
        total=total,
        unit="frame",
        desc=label,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )


def _planes_of(source: Stack, options: _Options) -> int:
    """How many planes a conversion of ``source`` writes (for progress)."""
    shape = tuple(int(n) for n in source.shape)
    frames = len(range(shape[-3])[options.frames or slice(None)])
    return math.prod(shape[:-3]) * frames
