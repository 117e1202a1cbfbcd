"""Fast, correct reading of Hamamatsu DCIMG files.

The main entry points are :class:`DCIMGFile` (NumPy-style indexing of a
memory-mapped file) and :func:`imread` (the whole stack, or a lazy Dask array).
"""

from __future__ import annotations

import os
from typing import Any

from dcimg._convert import convert
from dcimg._version import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGFormatError, DCIMGWarning
from dcimg.metadata import Camera, Metadata, StoredPixels, SubArray

__all__ = [
    "DCIMGError",
    "DCIMGFile",
    "DCIMGFormatError",
    "DCIMGWarning",
    "Camera",
    "Metadata",
    "StoredPixels",
    "SubArray",
    "__version__",
    "convert",
    "imread",
]


def imread(
    path: str | os.PathLike[str],
    index: Any = Ellipsis,
    *,
    dtype: Any = None,
    dask: bool = False,
    chunks: Any = "auto",
    first_4px_correction_enabled: bool | None = True,
) -> Any:
    """Read a DCIMG file (or part of it) into memory, or as a Dask array.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    index : index, default ``...``
        NumPy basic index applied to the ``(frames, height, width)`` stack.
    dtype : numpy dtype, optional
        Type of the result; default the file's (``uint8`` or ``uint16``).
    dask : bool, default False
        Return a lazy :class:`dask.array.Array` instead (needs ``dask``).
    chunks : optional
        Dask chunking, with ``dask=True`` (see :meth:`DCIMGFile.as_dask_array`).
    first_4px_correction_enabled : bool or None, default True
        See :attr:`DCIMGFile.first_4px_correction_enabled`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The corrected pixels.

    Examples
    --------
    >>> stack = dcimg.imread(path)
    >>> stack.shape
    (20, 64, 80)
    """
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
