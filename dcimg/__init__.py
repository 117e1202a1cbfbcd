"""Fast, correct reading of Hamamatsu DCIMG files.

The main entry points are :class:`DCIMGFile` (NumPy-style indexing of a
memory-mapped file), :class:`DCIMGSeries` (numbered files read as one array)
and :func:`imread` (the whole stack, or a lazy Dask array).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from dcimg._version import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGFormatError, DCIMGWarning
from dcimg.metadata import Camera, Metadata, StoredPixels, SubArray
from dcimg.series import DCIMGSeries

__all__ = [
    "DCIMGError",
    "DCIMGFile",
    "DCIMGFormatError",
    "DCIMGSeries",
    "DCIMGWarning",
    "Camera",
    "Metadata",
    "StoredPixels",
    "SubArray",
    "__version__",
    "imread",
]


def _is_series(path: Any) -> bool:
    """Whether ``imread``'s argument names several files (see DCIMGSeries)."""
    if isinstance(path, (str, bytes, os.PathLike)):
        text = os.fsdecode(path)
        if os.path.isdir(text):
            return True
        return glob.has_magic(text) and not os.path.exists(text)
    return True


def imread(
    path: Any,
    index: Any = Ellipsis,
    *,
    dtype: Any = None,
    dask: bool = False,
    chunks: Any = "auto",
    first_4px_correction_enabled: bool | None = True,
    pattern: Any = None,
    axes: str | None = None,
    concat: bool = False,
) -> Any:
    """Read a DCIMG file or series (or part of it) into memory, or as Dask.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        A file; or a folder, a glob pattern or a sequence of files, read as
        one :class:`DCIMGSeries`.
    index : index, default ``...``
        NumPy basic index applied to the ``(frames, height, width)`` stack
        (for a series, to :attr:`DCIMGSeries.shape`).
    dtype : numpy dtype, optional
        Type of the result; default the file's (``uint8`` or ``uint16``).
    dask : bool, default False
        Return a lazy :class:`dask.array.Array` instead (needs ``dask``).
    chunks : optional
        Dask chunking, with ``dask=True`` (see :meth:`DCIMGFile.as_dask_array`
        and :meth:`DCIMGSeries.as_dask_array`).
    first_4px_correction_enabled : bool or None, default True
        See :attr:`DCIMGFile.first_4px_correction_enabled`.
    pattern, axes, concat : optional
        For a series only: see :class:`DCIMGSeries`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The corrected pixels.

    Raises
    ------
    ValueError
        If ``pattern``, ``axes`` or ``concat`` is given with a single file.

    Examples
    --------
    >>> stack = dcimg.imread(path)
    >>> stack.shape
    (20, 64, 80)
    """
    if _is_series(path):
        with DCIMGSeries(
            path,
            pattern=pattern,
            axes=axes,
            concat=concat,
            first_4px_correction_enabled=first_4px_correction_enabled,
        ) as series:
            if dask:
                array = series.as_dask_array(chunks=chunks, dtype=dtype)
                return array if index is Ellipsis else array[index]
            return series.read(index, dtype=dtype)
    if pattern is not None or axes is not None or concat:
        raise ValueError(
            f"pattern, axes and concat apply to a series of files, and {path!r} "
            "is one file; give a folder, a glob pattern or a list of files"
        )
    with DCIMGFile(
        path, first_4px_correction_enabled=first_4px_correction_enabled
    ) as f:
        if dask:
            array = f.as_dask_array(chunks=chunks, dtype=dtype)
            return array if index is Ellipsis else array[index]
        return f.read(index, dtype=dtype)


def _register_imageio_plugin() -> None:
    """Let imageio read ``.dcimg`` files (``plugin="DCIMG"``).

    Registers the plugin now if imageio is loaded, else when it is imported;
    imageio itself is never imported here (it is an optional dependency).
    """
    try:
        import _dcimg_imageio_hook
    except ImportError:  # pragma: no cover - installed without the hook module
        return
    _dcimg_imageio_hook.install(force=True)


_register_imageio_plugin()
