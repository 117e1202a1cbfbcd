"""Lazy access to DCIMG files with Dask and xarray.

:func:`as_dask_array` turns a file into a :class:`dask.array.Array` whose
graph holds nothing but the file's path, its size and modification time, and
the reading options.  Every chunk task opens the file itself (once per
process, see :func:`_cached_file`) and reads its block with
:meth:`dcimg.DCIMGFile.read`, so the stored-pixel correction and any dtype
conversion happen inside the copy kernel.  The graph is built with
:func:`dask.array.from_array` around the tiny :class:`DCIMGSource`, so it has
exactly one task per chunk and Dask pushes basic slices of the array into
the read: ``arr[5, 100:200].compute()`` reads 100 rows of frame 5 only.

:func:`to_xarray` wraps the same array (or the pixels in memory) in an
:class:`xarray.DataArray` with a time coordinate and the file's metadata.
"""

from __future__ import annotations

import operator
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dcimg._urls import display_url, local_path
from dcimg.errors import (
    DCIMGChangedError,
    MissingDependencyError,
    quiet_warnings,
)
from dcimg.metadata import physical_size

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

    from dcimg.core import DCIMGFile

__all__ = ["DCIMGSource", "as_dask_array", "clear_cache", "to_xarray"]

#: Files kept open per process by the chunk tasks (least recently used first
#: out).  Each open file costs a memory mapping and a file header parse.
CACHE_SIZE = 32

#: Bytes per chunk that ``chunks="auto"`` aims for (whole frames, at least
#: one).  Smaller than Dask's usual 128 MiB on purpose: every chunk is a
#: fresh array, and an allocation this size is served from memory the
#: allocator reuses, while a 128 MiB one is a new mapping whose pages the
#: system must zero first.  On 2 cores, ``sum()`` of a 800 MiB stack took
#: 1.4x the time of ``whole()`` with 16 MiB chunks and 2.1x with 128 MiB.
#: It also keeps a viewer's one-frame look-ups from reading many frames.
AUTO_CHUNK_BYTES = 16 << 20

_CACHE: OrderedDict[tuple[Any, ...], DCIMGFile] = OrderedDict()
_CACHE_LOCK = threading.Lock()

_DASK_HINT = 'Dask support needs the optional dependency: pip install "dcimg[dask]"'
_XARRAY_HINT = (
    'xarray support needs the optional dependency: pip install "dcimg[xarray]"'
)


def _import_dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:
        raise MissingDependencyError(_DASK_HINT, "dask") from exc
    return da


def _cached_file(
    opener: Callable[..., DCIMGFile],
    path: str,
    size: int,
    mtime_ns: int,
    correction: bool | None,
    options: dict[str, Any] | None = None,
    inode: tuple[str, int, int] | None = None,
) -> DCIMGFile:
    """Return this process's open :class:`DCIMGFile` for one file version.

    Parameters
    ----------
    opener : callable
        The class of the file (:class:`dcimg.DCIMGFile`), called as
        ``opener(path, first_4px_correction_enabled=..., **options)``; passed
        in, so that this module never imports the classes that use it.
    path : str
        Absolute path of the file.
    size, mtime_ns : int
        Size and modification time the file had when the Dask array was
        made; a file that no longer matches them is refused.
    correction : bool or None
        The file's ``first_4px_correction_enabled``.
    options : dict, optional
        The other keyword arguments of :class:`dcimg.DCIMGFile` (``mmap``,
        ``storage_options``): a URL is opened with its storage options.
    inode : (str, int, int), optional
        ``(host name, st_dev, st_ino)`` of the file when the array was made:
        on that host, a file put in its place with the same size and
        modification time is told apart too.

    Returns
    -------
    dcimg.DCIMGFile
        An open file, shared by the tasks of this process (reads are
        thread-safe: they never change the object).

    Raises
    ------
    dcimg.DCIMGChangedError
        If the file was modified or replaced since the array was made.
    """
    options = options or {}
    local = not options.get("storage_options") and local_path(path) is not None
    if local:
        info = os.stat(path)
        if info.st_size != size or info.st_mtime_ns != mtime_ns:
            raise _changed(path, size, mtime_ns, info.st_size, info.st_mtime_ns)
    key = (path, size, mtime_ns, correction, repr(sorted(options.items())))
    with _CACHE_LOCK:
        f = _CACHE.get(key)
        if f is not None:
            _CACHE.move_to_end(key)
            return f
    with quiet_warnings():  # the warnings were shown when the array was made
        f = opener(path, first_4px_correction_enabled=correction, **options)
    # The file opened, not the path looked at above: another file may have
    # been put in its place in between.  For a URL the third number is the
    # version stamp (from its ETag, version id or Last-Modified; 0 when the
    # storage reports none), for a local file its mtime_ns.
    _, now_size, now_mtime = f.identity
    replaced = inode is not None and inode[0] == _HOST and _inode_of(f) != inode
    if now_size != size or now_mtime != mtime_ns or replaced:
        f.close()
        raise _changed(path, size, mtime_ns, now_size, now_mtime, replaced)
    with _CACHE_LOCK:
        other = _CACHE.get(key)
        if other is not None:
            # Another thread opened it meanwhile: keep one (the other is
            # released when this frame drops it).
            _CACHE.move_to_end(key)
            return other
        _CACHE[key] = f
        while len(_CACHE) > CACHE_SIZE:
            # Only forget it: a task on another thread may still be reading
            # it, and the file is released once nobody refers to it.
            _CACHE.popitem(last=False)
    return f


_HOST = socket.gethostname()


def _inode_of(f: DCIMGFile) -> tuple[str, int, int] | None:
    """``(host, st_dev, st_ino)`` of the local file ``f`` opened, or None."""
    inode = getattr(f._source, "_inode", None)
    return None if inode is None else (_HOST, *inode)


def _changed(
    path: str,
    size: int,
    mtime_ns: int,
    now_size: int,
    now_mtime: int,
    replaced: bool = False,
) -> DCIMGChangedError:
    other = "; another file (inode) is in its place" if replaced else ""
    shown = display_url(path)
    return DCIMGChangedError(
        f"{shown!r} changed since the Dask array was made (size {size} -> "
        f"{now_size}, mtime_ns or version {mtime_ns} -> {now_mtime}{other}); "
        "make a new array from the file",
        shown,
    )


def clear_cache() -> None:
    """Forget the files that Dask tasks opened in this process.

    Chunk tasks keep the files they read open (at most :data:`CACHE_SIZE`),
    so that the next chunk of the same file costs no header parse.  Each
    file is released as soon as no running task refers to it any more; open
    files hold no file descriptor (on POSIX), only a memory map.
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def _is_fancy(item: Any) -> bool:
    return isinstance(item, (list, np.ndarray)) and not (
        isinstance(item, np.ndarray) and item.ndim == 0
    )


def _split_fancy(key: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Split an index with integer/boolean arrays into basic + relative parts.

    The basic part reads the bounding box of the selection; the second part,
    applied to that box with NumPy, has the same structure as ``key`` (so
    NumPy places the fancy axes the same way) with positions made relative.
    """
    n_axes = sum(
        np.asarray(item).ndim
        if isinstance(item, np.ndarray) and item.dtype == bool
        else 1
        for item in key
        if item is not None and item is not Ellipsis
    )
    basic: list[Any] = []
    post: list[Any] = []
    axis = 0
    for item in key:
        if item is None:
            post.append(None)
            continue
        if item is Ellipsis:
            for _ in range(len(shape) - n_axes):
                basic.append(slice(None))
                post.append(slice(None))
                axis += 1
            continue
        if axis >= len(shape):
            raise IndexError("too many indices for a 3-dimensional DCIMG stack")
        size = shape[axis]
        if isinstance(item, slice):
            basic.append(item)
            post.append(slice(None))
        elif _is_fancy(item):
            arr = np.asarray(item)
            if arr.dtype == bool:
                if arr.ndim != 1 or arr.shape[0] != size:
                    raise IndexError(
                        f"boolean index of shape {arr.shape} does not match axis "
                        f"{axis} of size {size}"
                    )
                arr = np.flatnonzero(arr)
            elif arr.size and arr.dtype.kind not in "iu":
                raise IndexError(
                    f"arrays used as indices must be integers, not {arr.dtype}"
                )
            arr = arr.astype(np.intp)
            if arr.size and (arr.min() < -size or arr.max() >= size):
                raise IndexError(
                    f"index out of bounds for axis {axis} with size {size}"
                )
            arr = arr % size if size else arr
            lo = int(arr.min()) if arr.size else 0
            hi = int(arr.max()) + 1 if arr.size else 0
            basic.append(slice(lo, hi))
            post.append(arr - lo)
        else:
            i = operator.index(item)
            if not -size <= i < size:
                raise IndexError(
                    f"index {i} is out of bounds for axis {axis} with size {size}"
                )
            i %= size
            basic.append(slice(i, i + 1))
            post.append(0)
        axis += 1
    return tuple(basic), tuple(post)


class DCIMGSource:
    """A picklable, array-like stand-in for a DCIMG file, for Dask graphs.

    It holds the file's absolute path, size and modification time, the
    stored-pixel correction mode and the output dtype, nothing else: no
    mapping, no open file.  Indexing it opens the file in the current process
    (cached, see :func:`clear_cache`) and returns
    ``DCIMGFile.read(key, dtype=dtype)``.

    Parameters
    ----------
    path : str
        Absolute path of the file.
    size, mtime_ns : int
        ``st_size`` and ``st_mtime_ns`` of the file; reading a file that no
        longer matches raises :class:`dcimg.DCIMGChangedError`.
    correction : bool or None
        ``first_4px_correction_enabled`` of the reads.
    shape : tuple of int
        ``(frames, height, width)``.
    dtype : numpy.dtype
        Type of the pixels returned.
    options, file, copy
        See :meth:`from_file`.
    opener : callable
        The class that opens the file again in a task (that of the file
        described, :class:`dcimg.DCIMGFile`).
    inode : (str, int, int), optional
        ``(host name, st_dev, st_ino)`` of a local file: on that host a
        file put in its place is refused even with the same size and
        modification time.
    """

    __slots__ = (
        "copy",
        "correction",
        "dtype",
        "file",
        "inode",
        "mtime_ns",
        "opener",
        "options",
        "path",
        "shape",
        "size",
    )

    def __init__(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        correction: bool | None,
        shape: tuple[int, int, int],
        dtype: Any,
        options: dict[str, Any] | None = None,
        file: DCIMGFile | None = None,
        copy: bool = True,
        inode: tuple[str, int, int] | None = None,
        opener: Callable[..., DCIMGFile] | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self.mtime_ns = mtime_ns
        self.correction = correction
        self.shape = cast("tuple[int, int, int]", tuple(shape))
        self.dtype = np.dtype(dtype)
        # mmap and storage_options of the DCIMGFile; shipped to workers in
        # the pickled graph (never shown in the repr).
        self.options = dict(options or {})
        # A file read from a file object cannot be reopened elsewhere: the
        # source then holds the open file (threaded scheduler only).
        self.file = file
        self.copy = copy
        self.inode = inode
        self.opener = type(file) if opener is None and file is not None else opener

    @classmethod
    def from_file(
        cls, f: DCIMGFile, dtype: Any = None, *, copy: bool = True
    ) -> DCIMGSource:
        """Describe an open :class:`dcimg.DCIMGFile` (its current version).

        Parameters
        ----------
        f : dcimg.DCIMGFile
            An open file.
        dtype : numpy dtype, optional
            Type of the pixels returned; default the file's.
        copy : bool, default True
            Guarded copies (True) or, where possible, views of the map.

        Returns
        -------
        DCIMGSource
            The description.
        """
        shape = f.shape  # raises ValueError on a closed file
        # The identity of the file that was opened, not a new stat of the
        # path, which could already name another file.
        path, size, mtime_ns = f.identity
        dtype = f.dtype if dtype is None else np.dtype(dtype)
        if dtype.kind not in "biufc":
            raise TypeError(f"dtype must be a numeric NumPy type, not {dtype}")
        options = f.options
        if local_path(f.file_path) is None or options["storage_options"]:
            # A URL: reopen what was given (with its options), not the name
            # shown in messages (which has any credentials taken out).
            path = f._origin if isinstance(f._origin, str) else path
        return cls(
            path,
            size,
            mtime_ns,
            options.pop("first_4px_correction_enabled"),
            shape,
            dtype,
            options,
            f if f.file_object is not None else None,
            copy,
            _inode_of(f),
            type(f),
        )

    @property
    def ndim(self) -> int:
        """Always 3."""
        return 3

    @property
    def token(self) -> tuple[Any, ...]:
        """What identifies the pixels this source returns."""
        return (
            "dcimg",
            self.path,
            self.size,
            self.mtime_ns,
            self.correction,
            self.shape,
            self.dtype.str,
        )

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return self.token

    def __reduce__(self) -> tuple[Any, ...]:
        if self.file is not None:
            raise TypeError(
                f"the Dask array of {self.path} reads a file object, which cannot "
                "be sent to other processes; use the threaded scheduler, or open "
                "the file by path or URL"
            )
        return (
            type(self),
            (
                self.path,
                self.size,
                self.mtime_ns,
                self.correction,
                self.shape,
                self.dtype,
                self.options,
                None,
                self.copy,
                self.inode,
                self.opener,
            ),
        )

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        return (
            f"DCIMGSource({display_url(self.path)!r}, shape={shape}, "
            f"dtype={self.dtype}, "
            f"correction={self.correction})"
        )

    def __getitem__(self, key: Any) -> np.ndarray:
        f = self.file
        if f is None:
            if self.opener is None:
                raise TypeError(f"{self!r} does not say how to open the file")
            f = _cached_file(
                self.opener,
                self.path,
                self.size,
                self.mtime_ns,
                self.correction,
                self.options,
                self.inode,
            )
        if not isinstance(key, tuple):
            key = (key,)
        # A copy, never a view of the map: the copy kernel is guarded, so a
        # file truncated during a computation fails the task with
        # DCIMGChangedError instead of killing the worker with SIGBUS.  One
        # thread per copy: the scheduler runs the chunks in parallel, and a
        # team of copy threads inside each task would only compete with the
        # other tasks for the cores.
        if any(_is_fancy(item) for item in key):
            basic, post = _split_fancy(key, self.shape)
            return np.asarray(
                f.read(basic, dtype=self.dtype, copy=self.copy, threads=1)[post]
            )
        return np.asarray(f.read(key, dtype=self.dtype, copy=self.copy, threads=1))


def _normalize_chunks(
    chunks: Any, shape: tuple[int, int, int], dtype: np.dtype
) -> tuple[tuple[int, ...], ...]:
    """Turn the ``chunks`` argument of :func:`as_dask_array` into block sizes."""
    from dask.array.core import normalize_chunks
    from dask.utils import parse_bytes

    limit = None
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        spec: Any = ("auto", -1, -1)
        limit = AUTO_CHUNK_BYTES
    elif isinstance(chunks, str):
        spec = ("auto", -1, -1)
        limit = parse_bytes(chunks)
    elif isinstance(chunks, (bool, np.bool_)):
        raise TypeError(f"chunks must be a frame count or a chunk spec, not {chunks!r}")
    elif isinstance(chunks, (int, np.integer)):
        if chunks < 1 and chunks != -1:
            raise ValueError(
                f"chunks must be a positive frame count or -1, got {chunks}"
            )
        spec = (int(chunks), -1, -1)
    else:
        spec = chunks
    try:
        blocks: tuple[tuple[int, ...], ...] = normalize_chunks(
            spec, shape, limit=limit, dtype=dtype
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"invalid chunks {chunks!r} for a stack of shape {shape}: {exc}"
        ) from exc
    return blocks


def as_dask_array(
    f: DCIMGFile, chunks: Any = "auto", dtype: Any = None, copy: bool = True
) -> da.Array:
    """Return the frames of ``f`` as a lazy Dask array.

    The implementation of :meth:`dcimg.DCIMGFile.as_dask_array`, which
    documents the parameters and the behaviour.
    """
    dask_array = _import_dask_array()
    from dask.base import tokenize

    source = DCIMGSource.from_file(f, dtype, copy=copy)
    blocks = _normalize_chunks(chunks, source.shape, source.dtype)
    name = "dcimg-" + tokenize(*source.token, blocks)
    lazy: da.Array = dask_array.from_array(
        source,
        chunks=blocks,
        name=name,
        lock=False,
        asarray=False,
        # ``getter`` (fancy=True) is the getter whose index Dask fuses with
        # later slices, so slices reach DCIMGSource.__getitem__.
        fancy=True,
        meta=np.empty((0, 0, 0), source.dtype),
        inline_array=True,
    )
    return lazy


def _simple(value: Any) -> Any:
    """Turn a metadata value into an attribute netCDF can store, or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        if all(isinstance(v, str) for v in value):
            return "; ".join(value)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return list(value)
    return str(value)


def _attributes(f: DCIMGFile) -> dict[str, Any]:
    """Flatten the metadata to ``name: simple value`` pairs."""
    attrs: dict[str, Any] = {}

    def walk(prefix: str, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(name + "_", value)
                continue
            simple = _simple(value)
            if simple is not None:
                attrs[name] = simple

    walk("", f.metadata.to_dict())
    attrs["first_4px_correction_enabled"] = str(f.first_4px_correction_enabled)
    return attrs


def frame_coords(
    nframes: int,
    height: int,
    width: int,
    *,
    z_step: float | None = None,
    pixel_size: float | tuple[float, float] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Name the frames' dimension and give the physical coordinates.

    Shared by the ``to_xarray`` of files and series: the frames are ``t``,
    or ``z`` (at ``z_step`` µm apart) when ``z_step`` is given; ``y`` and
    ``x`` are in µm when ``pixel_size`` (one size, or ``(y, x)``) is given.

    Returns
    -------
    (str, dict)
        The frames' dimension name, and the coordinates ``z``, ``y`` and
        ``x`` that the sizes given define (``{name: (dim, values, attrs)}``).
    """
    coords: dict[str, Any] = {}
    frame_dim = "t"
    if z_step is not None:
        frame_dim = "z"
        step = physical_size("z_step", z_step)
        coords["z"] = ("z", np.arange(nframes) * step, {"units": "µm"})
    if pixel_size is not None:
        if isinstance(pixel_size, (tuple, list)):
            size_y, size_x = pixel_size
        else:
            size_y = size_x = pixel_size
        coords["y"] = ("y", np.arange(height) * physical_size("pixel_size", size_y),
                       {"units": "µm"})  # fmt: skip
        coords["x"] = ("x", np.arange(width) * physical_size("pixel_size", size_x),
                       {"units": "µm"})  # fmt: skip
    return frame_dim, coords


def to_xarray(
    f: DCIMGFile,
    *,
    dask: bool = True,
    chunks: Any = "auto",
    dtype: Any = None,
    name: str | None = None,
    pixel_size: float | tuple[float, float] | None = None,
    z_step: float | None = None,
) -> xr.DataArray:
    """Return the frames of ``f`` as an xarray DataArray with time stamps.

    The implementation of :meth:`dcimg.DCIMGFile.to_xarray`, which documents
    the parameters and the result.
    """
    try:
        import xarray as xr
    except ImportError as exc:
        raise MissingDependencyError(_XARRAY_HINT, "xarray") from exc
    data: da.Array | np.ndarray
    if dask:
        data = as_dask_array(f, chunks=chunks, dtype=dtype)
    else:
        if chunks != "auto":
            raise ValueError("chunks is only used with dask=True")
        data = f.read(..., dtype=dtype)
    # One check of physical sizes for the package (a ValueError subclass).
    nframes, height, width = f.shape
    frame_dim, coords = frame_coords(
        nframes, height, width, z_step=z_step, pixel_size=pixel_size
    )
    stamps = f.timestamps
    if stamps.shape == (nframes,):
        coords["time" if z_step is not None else "t"] = (frame_dim, stamps)
    elif z_step is None:
        coords["t"] = ("t", np.arange(nframes))
    counters = f.framestamps
    if counters.shape == (nframes,):
        coords["framestamp"] = (frame_dim, counters)
    if name is None:
        name = os.path.splitext(os.path.basename(f.file_path or "dcimg"))[0]
    return xr.DataArray(
        data,
        dims=(frame_dim, "y", "x"),
        coords=coords,
        name=name,
        attrs=_attributes(f),
    )
