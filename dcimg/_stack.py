"""The protocol that one file and a series of files share: :class:`Stack`.

Code that takes "a DCIMG recording" -- viewers, converters, analysis -- can
accept either a :class:`dcimg.DCIMGFile` or a :class:`dcimg.DCIMGSeries`
through it, without asking which it holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, overload, runtime_checkable

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np
    import numpy.typing as npt
    import ome_types
    import pandas as pd
    import xarray as xr
    from typing_extensions import TypedDict, Unpack
    from zarr.abc.store import Store

    from dcimg.metadata import Metadata
    from dcimg.series import SeriesMetadata

    class ReadOptions(TypedDict, total=False):
        """The keyword arguments of ``read`` besides ``out``, for every stack."""

        dtype: npt.DTypeLike | None
        copy: bool
        threads: int | None


__all__ = ["Stack"]


#: Bytes per chunk that ``chunks="auto"`` aims for (whole frames, at least
#: one).  Smaller than Dask's usual 128 MiB on purpose: every chunk is a
#: fresh array, and an allocation this size is served from memory the
#: allocator reuses, while a 128 MiB one is a new mapping whose pages the
#: system must zero first.  On 2 cores, ``sum()`` of a 800 MiB stack took
#: 1.4x the time of ``whole()`` with 16 MiB chunks and 2.1x with 128 MiB.
#: It also keeps a viewer's one-frame look-ups from reading many frames.
AUTO_CHUNK_BYTES = 16 << 20


@runtime_checkable
class Stack(Protocol):
    """What :class:`dcimg.DCIMGFile` and :class:`dcimg.DCIMGSeries` share.

    A stack is an array of frames: ``shape`` ends with the frames' axes
    ``(t, y, x)``, and ``axes`` names the axes before them (none for a
    file; one per counter of the file names for a series). Both classes
    implement it, with the same names and types; ``isinstance(x, Stack)``
    tells at run time, and type checkers check it statically.

    Attributes
    ----------
    shape : tuple of int
        ``(*grid, frames, height, width)``.
    ndim : int
        ``len(shape)``.
    dtype : numpy.dtype
        The pixel type: ``uint8`` or ``uint16``.
    axes : str
        One letter per axis before ``(t, y, x)``.
    token : str
        A digest of what determines the pixels: equal for the same data
        opened again, different after it changed.
    timestamps : numpy.ndarray
        Time stamp of every frame, ``datetime64[us]``, shape ``shape[:-2]``.
    framestamps : numpy.ndarray
        The camera's frame counter of every frame, shape ``shape[:-2]``.
    metadata : dcimg.Metadata or dcimg.series.SeriesMetadata
        Typed description of the recording.
    closed : bool
        Whether :meth:`close` was called.
    sizes : dict of str to int
        Length of every axis by name (the dimensions of :meth:`to_xarray`:
        the grid axes' letters, then ``t``, ``y``, ``x``).
    """

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def axes(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def timestamps(self) -> np.ndarray[Any, Any]: ...
    @property
    def framestamps(self) -> np.ndarray[Any, Any]: ...
    @property
    def metadata(self) -> Metadata | SeriesMetadata: ...
    @property
    def closed(self) -> bool: ...
    @property
    def sizes(self) -> dict[str, int]: ...

    def read(
        self,
        key: Any = ...,
        *,
        out: npt.NDArray[Any] | None = ...,
        **options: Unpack[ReadOptions],
    ) -> Any:
        """Read a basic-index selection (see :meth:`dcimg.DCIMGFile.read`)."""
        ...

    def asarray(
        self,
        key: Any = ...,
        *,
        dtype: npt.DTypeLike | None = ...,
        out: npt.NDArray[Any] | None = ...,
        threads: int | None = ...,
    ) -> npt.NDArray[Any]:
        """Read a selection into a NumPy array (:meth:`read`, tifffile's name)."""
        ...

    def as_dask_array(
        self, chunks: Any = ..., dtype: npt.DTypeLike | None = ..., *, copy: bool = ...
    ) -> da.Array:
        """Return the stack as a lazy Dask array."""
        ...

    def to_dask(
        self, chunks: Any = ..., dtype: npt.DTypeLike | None = ..., *, copy: bool = ...
    ) -> da.Array:
        """Return the stack as a lazy Dask array (:meth:`as_dask_array`, nd2's name)."""
        ...

    def aszarr(self, chunks: int | str = ..., *, group: bool = ...) -> Store:
        """Return the stack as a read-only Zarr v3 store, without converting."""
        ...

    def ome_metadata(
        self,
        *,
        pixel_size: float | tuple[float, float] | None = ...,
        z_step: float | None = ...,
    ) -> ome_types.OME:
        """Return the OME metadata, as the converter writes it."""
        ...

    @overload
    def frame_table(
        self, *, as_frame: Literal[False] = ...
    ) -> np.ndarray[Any, Any]: ...
    @overload
    def frame_table(self, *, as_frame: Literal[True]) -> pd.DataFrame: ...
    def frame_table(
        self, *, as_frame: bool = ...
    ) -> np.ndarray[Any, Any] | pd.DataFrame:
        """Return one row per frame: place, counter, time stamp, interval, drops."""
        ...

    def to_xarray(
        self,
        *,
        dask: bool = ...,
        chunks: Any = ...,
        dtype: npt.DTypeLike | None = ...,
        name: str | None = ...,
        pixel_size: float | tuple[float, float] | None = ...,
        z_step: float | None = ...,
    ) -> xr.DataArray:
        """Return the stack as an xarray ``DataArray`` with its time stamps."""
        ...

    def close(self) -> None:
        """Release the file or files."""
        ...

    def __enter__(self) -> Stack:
        """Return the stack itself (``with`` closes it)."""
        ...

    def __exit__(self, *exc_info: object) -> None:
        """Close the stack."""
        ...
