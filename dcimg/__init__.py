"""Fast, correct reading of Hamamatsu DCIMG files.

The main entry points are :class:`DCIMGFile` (NumPy-style indexing of a
memory-mapped file), :class:`DCIMGSeries` (numbered files read as one array)
and :func:`imread` (the whole stack, or a lazy Dask array).
"""

from __future__ import annotations

try:
    from dcimg._version import __version__
except ModuleNotFoundError as _missing:  # pragma: no cover - source checkout
    raise ImportError(
        f"dcimg is being imported from its source folder "
        f"({__path__[0]}), which holds no compiled modules (and no "
        f"_version.py): {_missing}.  Install the package first "
        "(pip install . , or pip install --no-build-isolation -e . for "
        "development) and run Python from another folder, or use pytest, "
        "which imports the installed package."
    ) from None

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import cast as _cast
from typing import overload as _overload

from dcimg._stack import Stack
from dcimg._urls import redact as _redact
from dcimg.core import DCIMGFile
from dcimg.errors import (
    ConversionError,
    DCIMGChangedError,
    DCIMGError,
    DCIMGFormatError,
    DCIMGReadError,
    DCIMGSeriesError,
    DCIMGWarning,
    InputCollisionError,
    MissingDependencyError,
)
from dcimg.metadata import Camera, Metadata, StoredPixels, SubArray
from dcimg.series import DCIMGSeries
from dcimg.series import names_series as _names_series

if _TYPE_CHECKING:
    import logging
    from collections.abc import Sequence
    from typing import Any, BinaryIO, Literal

    # As ``da``: inside imread, the name ``dask`` is the keyword argument.
    import dask.array as da
    import numpy.typing as npt
    import xarray as xr
    from typing_extensions import TypedDict, Unpack

    from dcimg._convert import convert
    from dcimg.core import StrOrBytesPath
    from dcimg.references import write_references

    class _ReadOptions(TypedDict, total=False):
        """The keyword arguments of :func:`imread` besides dask and xarray."""

        dtype: npt.DTypeLike | None
        chunks: Any
        first_4px_correction_enabled: bool | None
        mmap: bool
        storage_options: dict[str, Any] | None
        pattern: str | None
        axes: str | None
        concat: bool
        missing: Literal["raise", "fill"]
        fill_value: int

    logger: logging.Logger

__all__ = [
    "ConversionError",
    "DCIMGChangedError",
    "DCIMGError",
    "DCIMGFile",
    "DCIMGFormatError",
    "DCIMGReadError",
    "DCIMGSeries",
    "DCIMGSeriesError",
    "DCIMGWarning",
    "InputCollisionError",
    "MissingDependencyError",
    "Stack",
    "Camera",
    "Metadata",
    "StoredPixels",
    "SubArray",
    "__version__",
    "convert",
    "imread",
    "logger",
    "write_references",
]


# The return type follows ``dask`` and ``xarray``: a NumPy array in memory, a
# lazy Dask array (a plain ``bool`` gives the union), or a DataArray.  The
# other keyword arguments are declared once, in _ReadOptions.
@_overload
def imread(
    path: StrOrBytesPath | BinaryIO | Sequence[StrOrBytesPath],
    index: Any = ...,
    *,
    dask: Literal[False] = ...,
    xarray: Literal[False] = ...,
    **options: Unpack[_ReadOptions],
) -> npt.NDArray[Any]: ...
@_overload
def imread(
    path: StrOrBytesPath | BinaryIO | Sequence[StrOrBytesPath],
    index: Any = ...,
    *,
    dask: Literal[True],
    xarray: Literal[False] = ...,
    **options: Unpack[_ReadOptions],
) -> da.Array: ...
@_overload
def imread(
    path: StrOrBytesPath | BinaryIO | Sequence[StrOrBytesPath],
    index: Any = ...,
    *,
    dask: bool,
    xarray: Literal[False] = ...,
    **options: Unpack[_ReadOptions],
) -> npt.NDArray[Any] | da.Array: ...
@_overload
def imread(
    path: StrOrBytesPath | BinaryIO | Sequence[StrOrBytesPath],
    index: Any = ...,
    *,
    dask: bool = ...,
    xarray: Literal[True],
    **options: Unpack[_ReadOptions],
) -> xr.DataArray: ...
def imread(
    path: StrOrBytesPath | BinaryIO | Sequence[StrOrBytesPath],
    index: Any = Ellipsis,
    *,
    dtype: npt.DTypeLike | None = None,
    dask: bool = False,
    chunks: Any = "auto",
    first_4px_correction_enabled: bool | None = True,
    mmap: bool = True,
    storage_options: dict[str, Any] | None = None,
    pattern: str | None = None,
    axes: str | None = None,
    concat: bool = False,
    missing: Literal["raise", "fill"] = "raise",
    fill_value: int = 0,
    xarray: bool = False,
) -> npt.NDArray[Any] | da.Array | xr.DataArray:
    """Read a DCIMG file or series (or part of it) into memory, or as Dask.

    Parameters
    ----------
    path : str, bytes, os.PathLike, URL, file object or sequence of paths
        A file: a local path, an fsspec URL (``s3://...``) or a binary file
        object (see :class:`DCIMGFile`); or a folder, a glob pattern or a
        sequence of files, read as one :class:`DCIMGSeries`.
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
    mmap, storage_options
        How to read the bytes (see :class:`DCIMGFile`).
    pattern, axes, concat, missing, fill_value : optional
        For a series only: see :class:`DCIMGSeries` (``missing="fill"``
        reads a grid with missing files).
    xarray : bool, default False
        Return an :class:`xarray.DataArray` with the time stamps and
        metadata (:meth:`DCIMGFile.to_xarray`, :meth:`DCIMGSeries.to_xarray`;
        needs xarray): lazy with ``dask=True``, else in memory.  ``index``
        then selects by position, as ``DataArray[index]`` does (integers,
        slices, ``...``; not ``None``); with Dask installed, only the
        selected pixels are read.

    Returns
    -------
    numpy.ndarray, dask.array.Array or xarray.DataArray
        The corrected pixels: a :class:`numpy.ndarray` (a NumPy scalar when
        ``index`` picks a single pixel), with ``dask=True`` a lazy
        :class:`dask.array.Array`, with ``xarray=True`` a
        :class:`xarray.DataArray`.

    Raises
    ------
    ValueError
        If ``pattern``, ``axes`` or ``concat`` is given with a single file.

    Examples
    --------
    >>> import dcimg
    >>> from dcimg.testing import example_file
    >>> with example_file() as path:
    ...     stack = dcimg.imread(path)
    ...     every_other = dcimg.imread(path, slice(None, None, 2), dtype="float32")
    ...     lazy_mean = dcimg.imread(path, dask=True).mean(axis=0).compute()
    >>> stack.shape, every_other.shape, every_other.dtype, lazy_mean.shape
    ((20, 64, 80), (10, 64, 80), dtype('float32'), (64, 80))
    """
    if _names_series(path):
        stack: DCIMGFile | DCIMGSeries = DCIMGSeries(
            path,
            pattern=pattern,
            axes=axes,
            concat=concat,
            first_4px_correction_enabled=first_4px_correction_enabled,
            storage_options=storage_options,
            missing=missing,
            fill_value=fill_value,
        )
    else:
        if pattern is not None or axes is not None or concat or missing != "raise":
            raise ValueError(
                "pattern, axes, concat and missing apply to a series of files, and "
                f"{_redact(repr(path))} is one file; give a folder, a glob "
                "pattern or a list of files"
            )
        stack = DCIMGFile(
            # names_series() is False only for one path or a file object.
            _cast("StrOrBytesPath | BinaryIO", path),
            first_4px_correction_enabled=first_4px_correction_enabled,
            mmap=mmap,
            storage_options=storage_options,
        )
    if dask and isinstance(stack, DCIMGFile) and stack.file_object is not None:
        # The graph reads through this very file object: keep it open.
        return _imread_from(stack, index, dtype, dask, chunks, xarray)
    # The Dask graph holds paths, not the open stack: it may be closed.
    with stack:
        return _imread_from(stack, index, dtype, dask, chunks, xarray)


def _imread_from(
    stack: Stack,
    index: Any,
    dtype: npt.DTypeLike | None,
    dask: bool,
    chunks: Any,
    xarray: bool,
) -> npt.NDArray[Any] | da.Array | xr.DataArray:
    """Return what :func:`imread` returns, from the open file or series."""
    if xarray:
        if dask:
            return stack.to_xarray(dask=True, chunks=chunks, dtype=dtype)[index]
        if index is Ellipsis:
            return stack.to_xarray(dask=False, dtype=dtype)
        if chunks != "auto":
            raise ValueError("chunks is only used with dask=True")
        from importlib.util import find_spec

        if find_spec("dask") is None:
            # Without Dask: everything is read, then selected.
            return stack.to_xarray(dask=False, dtype=dtype)[index]
        # A lazy array, sliced, then read: only the selection's pixels.
        return stack.to_xarray(dask=True, dtype=dtype)[index].compute()
    if dask:
        lazy: da.Array = stack.as_dask_array(chunks=chunks, dtype=dtype)
        return lazy if index is Ellipsis else lazy[index]
    pixels: npt.NDArray[Any] = stack.read(index, dtype=dtype)
    return pixels


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


def __getattr__(name: str) -> object:
    # The converter (and what it imports) and the logging module load on
    # first use, not with the package: most programs only read.
    if name == "convert":
        from dcimg._convert import convert

        return convert
    if name == "write_references":
        # Loads zarr and numcodecs (the codec): on first use only.
        from dcimg.references import write_references

        return write_references
    if name == "logger":
        # The package's logger, as the historical ``dcimg`` module named it:
        # silent unless the application configures logging.
        import logging

        log = logging.getLogger(__name__)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())
        globals()["logger"] = log
        return log
    raise AttributeError(f"module 'dcimg' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public API and nothing else: no helpers, no submodules.
    return sorted(__all__)
