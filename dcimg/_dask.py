"""Lazy access to stacks (files and series) with Dask and xarray.

:meth:`StackViews.as_dask_array` turns a stack into a :class:`dask.array.Array` whose
graph holds nothing but a :class:`StackSource`: the stack's shape, token and
the :class:`ChunkReader` it hands over (a file's :class:`FileReader`, a
series' record of its members), which pickles to paths, versions and
options.  Every chunk task reads its block through the reader, which opens
the files itself (once per process) and refuses them if they changed, so
the stored-pixel correction and any dtype conversion happen inside the copy
kernel.  The graph has exactly one task per chunk and Dask pushes basic
slices of the array into the read: ``arr[5, 100:200].compute()`` reads 100
rows of frame 5 only.

:meth:`StackViews.to_xarray` wraps the same array (or the pixels in memory) in an
:class:`xarray.DataArray` with time stamps and the stack's metadata.
Both are written once, in :class:`StackViews`, which files and series mix
in; neither knows which it serves: each class says what only it knows (its
chunk rule and reader, its name and attributes).
"""

from __future__ import annotations

import operator
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from dcimg._local import HOST
from dcimg._stack import AUTO_CHUNK_BYTES, Stack
from dcimg._urls import display_url, local_path
from dcimg.errors import (
    DCIMGChangedError,
    MissingDependencyError,
    quiet_warnings,
)
from dcimg.metadata import physical_size

if TYPE_CHECKING:
    import dask.array as da
    import numpy.typing as npt
    import ome_types
    import xarray as xr
    from zarr.abc.store import Store

    from dcimg.core import DCIMGFile

__all__ = ["ChunkReader", "FileReader", "StackViews", "StackSource", "clear_cache"]

#: Files kept open per process by the chunk tasks (least recently used first
#: out).  Each open file costs a memory mapping and a file header parse.
CACHE_SIZE = 32


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
    replaced = inode is not None and inode[0] == HOST and _inode_of(f) != inode
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


def _inode_of(f: DCIMGFile) -> tuple[str, int, int] | None:
    """``(host, st_dev, st_ino)`` of the local file ``f`` opened, or None."""
    inode = getattr(f._source, "_inode", None)
    return None if inode is None else (HOST, *inode)


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
            raise IndexError(
                f"too many indices for a {len(shape)}-dimensional DCIMG stack"
            )
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


class ChunkReader(Protocol):
    """What a stack hands its Dask graph: reads chunks, reopening its files.

    A file's is a :class:`FileReader`; a series' is the record of its
    members.  Either pickles to paths and options, so that any process can
    read, and is given keys that are basic indices over the stack's shape.
    """

    def read_chunk(
        self, key: tuple[Any, ...], dtype: np.dtype[Any], copy: bool
    ) -> np.ndarray: ...


class FileReader:
    """Reopens one file version in any process, to read chunks of it.

    It holds the file's path, size and modification time (version), the
    options it was opened with, nothing else: no mapping, no open file.  The
    first read in a process opens the file (cached, see :func:`clear_cache`)
    and refuses it if it is no longer the same version.

    Parameters
    ----------
    path : str
        Absolute path or URL of the file.
    size, mtime_ns : int
        Size and modification time (or version stamp) of the file; reading
        a file that no longer matches raises
        :class:`dcimg.DCIMGChangedError`.
    correction : bool or None
        ``first_4px_correction_enabled`` of the reads.
    options : dict, optional
        The other keyword arguments of the file's class (``mmap``,
        ``storage_options``).
    file : DCIMGFile, optional
        An open file read from a file object, which cannot be opened again
        elsewhere: the reader then reads it (threaded scheduler only).
    inode : (str, int, int), optional
        ``(host name, st_dev, st_ino)`` of a local file: on that host a
        file put in its place is refused even with the same size and
        modification time.
    opener : callable, optional
        The class that opens the file again (that of the file described).
    """

    __slots__ = (
        "correction",
        "file",
        "inode",
        "mtime_ns",
        "opener",
        "options",
        "path",
        "size",
    )

    def __init__(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        correction: bool | None,
        options: dict[str, Any] | None = None,
        file: DCIMGFile | None = None,
        inode: tuple[str, int, int] | None = None,
        opener: Callable[..., DCIMGFile] | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self.mtime_ns = mtime_ns
        self.correction = correction
        # mmap and storage_options of the file; shipped to workers in the
        # pickled graph (never shown in the repr).
        self.options = dict(options or {})
        self.file = file
        self.inode = inode
        self.opener = type(file) if opener is None and file is not None else opener

    @classmethod
    def of(cls, f: DCIMGFile) -> FileReader:
        """Describe the version of an open file that ``f`` reads.

        Parameters
        ----------
        f : dcimg.DCIMGFile
            An open file.

        Returns
        -------
        FileReader
            The description.
        """
        # The identity of the file that was opened, not a new stat of the
        # path, which could already name another file.
        path, size, mtime_ns = f.identity
        options = f.options
        if local_path(f.file_path) is None or options["storage_options"]:
            # A URL: reopen what was given (with its options), not the name
            # shown in messages (which has any credentials taken out).
            path = f.location or path
        return cls(
            path,
            size,
            mtime_ns,
            options.pop("first_4px_correction_enabled"),
            options,
            f if f.file_object is not None else None,
            _inode_of(f),
            type(f),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        if self.file is not None:
            raise TypeError(
                f"the Dask array of {display_url(self.path)} reads a file object, "
                "which cannot be sent to other processes; use the threaded "
                "scheduler, or open the file by path or URL"
            )
        return (
            type(self),
            (
                self.path,
                self.size,
                self.mtime_ns,
                self.correction,
                self.options,
                None,
                self.inode,
                self.opener,
            ),
        )

    def __repr__(self) -> str:
        return f"FileReader({display_url(self.path)!r}, correction={self.correction})"

    def read_chunk(
        self, key: tuple[Any, ...], dtype: np.dtype[Any], copy: bool
    ) -> np.ndarray:
        """Read ``f.read(key, dtype=dtype, copy=copy)`` of the file, reopened.

        One thread per copy: the scheduler runs the chunks in parallel, and
        a team of copy threads inside each task would only compete with the
        other tasks for the cores.
        """
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
        return np.asarray(f.read(key, dtype=dtype, copy=copy, threads=1))


class StackSource:
    """A picklable, array-like stand-in for a stack, for Dask graphs.

    What :func:`dask.array.from_array` wraps, for files and series alike:
    the stack's shape and token, the dtype of the result and the
    :class:`ChunkReader` that reads it.  Index arrays are turned into the
    basic read of their bounding box, then applied to it with NumPy.

    Parameters
    ----------
    reader : ChunkReader
        Reads basic-index selections of the stack in any process.
    shape : tuple of int
        Shape of the stack.
    dtype : numpy.dtype
        Type of the pixels returned.
    token : str
        The stack's :attr:`~dcimg.Stack.token`.
    copy : bool, default True
        Guarded copies (True) or, where possible, read-only views of the
        map, unguarded (see ``as_dask_array``).
    """

    __slots__ = ("copy", "dtype", "reader", "shape", "token")

    def __init__(
        self,
        reader: ChunkReader,
        shape: tuple[int, ...],
        dtype: npt.DTypeLike,
        token: str,
        copy: bool = True,
    ) -> None:
        self.reader = reader
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.token = token
        self.copy = copy

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("dcimg", self.token, self.dtype.str)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.reader, self.shape, self.dtype, self.token, self.copy),
        )

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        return f"StackSource({self.reader!r}, shape={shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        # With copy=True, a copy, never a view of the map: the copy kernel is
        # guarded, so a file truncated during a computation fails the task
        # with DCIMGChangedError instead of killing the worker with SIGBUS.
        if any(_is_fancy(item) for item in key):
            basic, post = _split_fancy(key, self.shape)
            box = self.reader.read_chunk(basic, self.dtype, self.copy)
            return np.asarray(box[post])
        return self.reader.read_chunk(key, self.dtype, self.copy)


def chunk_limit(chunks: Any) -> int | None:
    """Bytes per chunk that ``chunks`` asks for: ``"auto"``, None or a size.

    None for any other value (a count or a Dask chunk specification).
    """
    if chunks is None or (isinstance(chunks, str) and chunks == "auto"):
        return AUTO_CHUNK_BYTES
    if isinstance(chunks, str):
        from dask.utils import parse_bytes

        try:
            return int(parse_bytes(chunks))
        except ValueError as exc:
            raise ValueError(f"invalid chunks {chunks!r}: {exc}") from None
    return None


def frame_blocks(
    chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> tuple[tuple[int, ...], ...]:
    """Block sizes of a file's ``(frames, height, width)``, whole frames by default.

    The ``chunks`` rule of :meth:`dcimg.DCIMGFile.as_dask_array`, which
    documents it.
    """
    from dask.array.core import normalize_chunks

    limit = chunk_limit(chunks)
    if limit is not None:
        spec: Any = ("auto", -1, -1)
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


def result_dtype(stack: Stack, dtype: npt.DTypeLike | None) -> np.dtype[Any]:
    """Return the dtype of a lazy array of ``stack``: ``dtype``, or its own."""
    result = stack.dtype if dtype is None else np.dtype(dtype)
    if result.kind not in "biufc":
        raise TypeError(f"dtype must be a numeric NumPy type, not {result}")
    return result


BlockRule = Callable[[Any, tuple[int, ...], np.dtype[Any]], tuple[tuple[int, ...], ...]]


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


def flat_attributes(metadata: dict[str, Any]) -> dict[str, Any]:
    """Flatten metadata to ``name: simple value`` pairs that netCDF can store."""
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

    walk("", metadata)
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


class _Viewed(Stack, Protocol):
    """What :class:`StackViews` needs of the class it is mixed into."""

    _inline_graph: bool

    def _chunk_reader(self) -> ChunkReader: ...

    def _chunk_blocks(
        self, chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[tuple[int, ...], ...]: ...

    def _xarray_parts(self) -> tuple[str | None, dict[str, Any], Sequence[Any]]: ...


class StackViews:
    """Views of a stack, written once for files and series.

    ``as_dask_array`` and ``to_xarray`` (with ``to_dask`` and ``asarray``,
    their names in other libraries), ``aszarr`` (:mod:`dcimg._zarr_store`)
    and ``ome_metadata`` (:mod:`dcimg._ome`).

    Mixed into :class:`dcimg.DCIMGFile` and :class:`dcimg.DCIMGSeries`, which
    say what only they know: what reads their chunks in another process
    (``_chunk_reader``), how ``chunks`` cuts them (``_chunk_blocks``: frames
    of a file, whole files of a series), whether the graph's source is small
    enough to copy into every task (``_inline_graph``), and the default
    name, attributes and grid coordinates of their DataArray
    (``_xarray_parts``).
    """

    #: Whether the source is copied into every task (one file: a few hundred
    #: bytes) or is one key of the graph, shipped once per worker (a series
    #: holds every member's path).
    _inline_graph = True

    def as_dask_array(
        self: _Viewed,
        chunks: Any = "auto",
        dtype: npt.DTypeLike | None = None,
        *,
        copy: bool = True,
    ) -> da.Array:
        """Return the pixels as a lazy :class:`dask.array.Array`.

        The array reads the same pixels as ``stack[...]`` (with the stack's
        ``first_4px_correction_enabled``), chunk by chunk.  Its graph holds
        only paths, versions (size and modification time) and options, so it
        pickles small and runs on ``dask.distributed`` workers in other
        processes; each process opens the files itself (memory-mapped, kept
        open in a bounded cache) and refuses one that changed.

        Parameters
        ----------
        chunks : "auto", str, int, tuple or dict, default "auto"
            For a file: ``"auto"``, whole frames per chunk, as many as fit
            16 MiB (at least one; less than Dask's usual 128 MiB, see
            :doc:`/dask`); a byte size such as ``"128 MiB"``, the same with
            that limit; an int ``n``, ``n`` frames per chunk (``-1``: one
            chunk); anything else is a Dask chunk specification for the
            three axes ``(t, y, x)``, e.g. ``(10, 512, 512)`` or
            ``{0: 10}`` (splitting rows and columns is exact too).
            For a series: whole files per chunk, grouped along the last grid
            axis (with ``concat=True``, consecutive files along the frame
            axis); an int is a number of files, and ``"auto"`` or a size
            takes as many files as fit 16 MiB or that size (at least one).
        dtype : numpy dtype, optional
            Type of the pixels; default the stack's.  The conversion happens
            in the chunk read, in one pass.
        copy : bool, default True
            False: chunks are zero-copy views where possible (see Notes); in
            a series, a chunk that is one file (``chunks=1``).

        Returns
        -------
        dask.array.Array
            Shape :attr:`shape`; one task per chunk.  Its name is the same
            for the same files and options, so it is deterministic.  The
            stack may be closed once the array is made.

        Raises
        ------
        dcimg.MissingDependencyError
            If Dask is not installed (an ``ImportError``).
        ValueError
            If the stack is closed or ``chunks`` is invalid.
        TypeError
            If ``dtype`` is not a numeric type.

        Notes
        -----
        With ``copy=True`` (the default) every chunk is a copy made by the
        guarded kernel: a file truncated during a computation fails the task
        with :class:`dcimg.DCIMGChangedError`.  ``copy=False`` makes chunks
        that need no conversion and no correction read-only views of the
        memory map (zero-copy: a reduction then reads the file's pages
        directly, about twice as fast), which are not protected: a file
        truncated under them kills the worker with ``SIGBUS``.  Use it only
        for files that cannot change.

        The files must not change while the array is in use: a chunk task
        that finds a different size or modification time raises
        :class:`dcimg.DCIMGChangedError` instead of returning pixels of
        another file.

        Slicing is pushed into the reads: once Dask optimises the graph (as
        ``compute`` does by default), ``arr[5]`` reads frame 5 alone and
        ``arr[:, 100:200, 300]`` reads only those pixels of every frame.
        Steps with a negative sign, ``None`` and index arrays still read
        whole chunks, then slice.

        Examples
        --------
        >>> import dcimg
        >>> from dcimg.testing import example_file
        >>> with example_file() as path:
        ...     with dcimg.DCIMGFile(path) as f:
        ...         arr = f.as_dask_array(chunks=8, dtype="float32")
        ...     print(arr.chunksize, arr.dtype)
        ...     print(arr.mean(axis=0).compute().shape)  # while the file exists
        (8, 64, 80) float32
        (64, 80)
        """
        dask_array = _import_dask_array()
        from dask.base import tokenize

        reader = self._chunk_reader()  # raises ValueError on a closed stack
        result = result_dtype(self, dtype)
        shape = self.shape
        sizes = self._chunk_blocks(chunks, shape, result)
        source = StackSource(reader, shape, result, self.token, copy)
        lazy: da.Array = dask_array.from_array(
            source,
            chunks=sizes,
            name="dcimg-" + tokenize(self.token, result.str, sizes),
            lock=False,
            asarray=False,
            # ``getter`` (fancy=True) is the getter whose index Dask fuses
            # with later slices, so slices reach StackSource.__getitem__.
            fancy=True,
            meta=np.empty((0,) * len(shape), result),
            inline_array=self._inline_graph,
        )
        return lazy

    def to_xarray(
        self: _Viewed,
        *,
        dask: bool = True,
        chunks: Any = "auto",
        dtype: npt.DTypeLike | None = None,
        name: str | None = None,
        pixel_size: float | tuple[float, float] | None = None,
        z_step: float | None = None,
    ) -> xr.DataArray:
        """Return the pixels as an :class:`xarray.DataArray` with time stamps.

        Parameters
        ----------
        dask : bool, default True
            Wrap a lazy Dask array (see :meth:`as_dask_array`); False reads
            the pixels into memory now.
        chunks : optional
            Chunking of the Dask array (only with ``dask=True``).
        dtype : numpy dtype, optional
            Type of the pixels; default the stack's.
        name : str, optional
            Name of the array; default the file name (a series: the first
            file's) without its extension.
        pixel_size : float or (float, float), optional
            Pixel size in the sample, in µm (one value, or ``(y, x)``): adds
            coordinates ``y`` and ``x`` in µm.
        z_step : float, optional
            Distance in µm between the frames (of each file), when they are
            z-planes: their dimension is then ``z`` (coordinate in µm)
            instead of ``t``, and the time stamps stay as coordinates.

        Returns
        -------
        xarray.DataArray
            A file: dimensions ``("t", "y", "x")`` (``("z", "y", "x")``
            with ``z_step``).  Coordinate ``t`` holds the frame time stamps
            (``datetime64[us]``, UTC) or, when the file lost them, the frame
            indices (with ``z_step``, the time stamps are the coordinate
            ``time``); coordinate ``framestamp`` holds the camera's frame
            counters when available.  ``attrs`` holds the metadata
            flattened to strings, numbers and lists of numbers (nested names
            joined with ``_``, e.g. ``camera_model``; booleans as 0/1;
            missing values left out), so it can be written to netCDF.

            A series: one dimension per grid axis first (named by
            :attr:`axes`, coordinate the counter values), then the frames'
            ``"t"`` (the frame index in each file) or ``"z"``, ``"y"``,
            ``"x"``; coordinates ``timestamp`` and ``framestamp`` (over the
            grid axes and the frames) hold every frame's time stamp and
            counter.  With ``concat=True``, as a file.  ``attrs``: the
            number of ``files``, ``axes``, ``concat`` and the correction.

        Raises
        ------
        dcimg.MissingDependencyError
            If xarray (or, with ``dask=True``, Dask) is not installed.
        ValueError
            If a grid axis and the frames would both be named ``z``.

        Examples
        --------
        >>> import dcimg
        >>> from dcimg.testing import example_file
        >>> with example_file() as path, dcimg.DCIMGFile(path) as f:
        ...     frames = f.to_xarray(dask=False)
        >>> frames.dims
        ('t', 'y', 'x')
        >>> frames.sel(t=slice("2024-09-05T16:53:17.3", None)).mean("t").shape
        (64, 80)
        """
        try:
            import xarray as xr
        except ImportError as exc:
            raise MissingDependencyError(_XARRAY_HINT, "xarray") from exc
        path, attrs, grid_coords = self._xarray_parts()
        data: da.Array | np.ndarray
        if dask:
            data = self.as_dask_array(chunks=chunks, dtype=dtype)
        else:
            if chunks != "auto":
                raise ValueError("chunks is only used with dask=True")
            data = self.read(..., dtype=dtype)
        nframes, height, width = self.shape[-3:]
        # One check of physical sizes for the package (a ValueError subclass).
        frame_dim, coords = frame_coords(
            nframes, height, width, z_step=z_step, pixel_size=pixel_size
        )
        axes = self.axes
        dims = (*axes, frame_dim, "y", "x")
        if len(set(dims)) != len(dims):
            raise ValueError(
                f"the grid axis {frame_dim!r} and the frames' z (z_step) would "
                "be two dimensions of one name; name the grid axes otherwise"
            )
        times, counters = self.timestamps, self.framestamps
        if axes:
            for letter, values in zip(axes, grid_coords, strict=True):
                coords[letter] = (letter, values)
            if frame_dim == "t":
                coords["t"] = ("t", np.arange(nframes))
            coords["timestamp"] = (dims[:-2], times)
            coords["framestamp"] = (dims[:-2], counters)
        else:
            # The time stamps are the frames' coordinate unless every one
            # was lost (NaT stands for a frame whose stamp alone was cut).
            stamped = times.shape == (nframes,) and not np.isnat(times).all()
            if frame_dim == "t":
                coords["t"] = ("t", times if stamped else np.arange(nframes))
            elif stamped:
                coords["time"] = (frame_dim, times)
            if counters.shape == (nframes,):
                coords["framestamp"] = (frame_dim, counters)
        if name is None:
            name = os.path.splitext(os.path.basename(path or "dcimg"))[0]
        return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs=attrs)

    # ------------------------------------------------------------------
    # Familiar names (nd2, tifffile)

    def to_dask(
        self: _Viewed,
        chunks: Any = "auto",
        dtype: npt.DTypeLike | None = None,
        *,
        copy: bool = True,
    ) -> da.Array:
        """Return the pixels as a lazy Dask array: :meth:`as_dask_array` by nd2's name.

        Parameters
        ----------
        chunks, dtype, copy
            As in :meth:`as_dask_array`.

        Returns
        -------
        dask.array.Array
            The same array as :meth:`as_dask_array` (the same name too).
        """
        return self.as_dask_array(chunks=chunks, dtype=dtype, copy=copy)

    def asarray(
        self: _Viewed,
        key: Any = Ellipsis,
        *,
        dtype: npt.DTypeLike | None = None,
        out: npt.NDArray[Any] | None = None,
        threads: int | None = None,
    ) -> npt.NDArray[Any]:
        """Read pixels into a NumPy array: :meth:`read` by its tifffile/nd2 name.

        ``stack.asarray()`` is ``stack.read()``: all of it;
        ``stack.asarray(key)`` reads a basic-index selection.  Unlike
        :meth:`read`, a single pixel comes back as a 0-d array, never a
        NumPy scalar.

        Parameters
        ----------
        key : index, default ``...``
            NumPy basic index over :attr:`shape` (see :meth:`read`).
        dtype, out, threads
            As in :meth:`read`.

        Returns
        -------
        numpy.ndarray
            The corrected pixels (a copy).
        """
        return np.asarray(self.read(key, dtype=dtype, out=out, threads=threads))

    # ------------------------------------------------------------------
    # Zarr without converting (dcimg._zarr_store, beside this module)

    def aszarr(
        self: _Viewed, chunks: int | str = "auto", *, group: bool = True
    ) -> Store:
        """Return the pixels as a read-only Zarr v3 store, without converting.

        The store makes every chunk on request from :meth:`read` (the same
        correction, kernels and, for a URL, range reader), so Zarr-native
        tools read the original files: ``zarr.open_group``,
        ``xarray.open_zarr``, ``dask.array.from_zarr`` and OME-NGFF readers.
        See :doc:`/zarr`.

        Parameters
        ----------
        chunks : int or "auto", default "auto"
            Whole frames (of one file, in a series) per chunk: ``"auto"`` as
            many as fit 16 MiB (the rule of :meth:`as_dask_array` for a
            file), an int that many, -1 all.
        group : bool, default True
            True: an OME-NGFF 0.5 image group, with the pixels in array
            ``"0"`` (dimensions ``t, y, x``; a series' grid axes first) and
            the time stamps (``t`` for a file, ``timestamp`` for a series:
            ``datetime64`` for xarray) and frame counters (``framestamp``)
            as coordinate arrays.  False: the pixel array alone at the root,
            for ``zarr.open_array(store)``.

        Returns
        -------
        zarr.abc.store.Store
            Read-only; it reads through this file or series, which must stay
            open while the store is used.

        Raises
        ------
        dcimg.MissingDependencyError
            If zarr 3 is not installed.
        ValueError
            If the stack is closed or ``chunks`` is invalid.

        Examples
        --------
        >>> import zarr
        >>> import dcimg
        >>> from dcimg.testing import example_file
        >>> with example_file() as path, dcimg.DCIMGFile(path) as f:
        ...     image = zarr.open_array(f.aszarr(), path="0", mode="r")
        ...     print(image.shape, image.chunks, (image[3] == f[3]).all())
        (20, 64, 80) (20, 64, 80) True
        """
        try:
            from dcimg._zarr_store import open_store
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "zarr":
                raise
            raise MissingDependencyError(
                'Zarr support needs zarr 3: pip install "dcimg[zarr]"', "zarr"
            ) from exc
        path = self._xarray_parts()[0]
        name = os.path.splitext(os.path.basename(path or "dcimg"))[0]
        return open_store(self, chunks, group=group, name=name)

    # ------------------------------------------------------------------
    # OME metadata (dcimg._ome, the converter's own builder)

    def ome_metadata(
        self: _Viewed,
        *,
        pixel_size: float | tuple[float, float] | None = None,
        z_step: float | None = None,
    ) -> ome_types.OME:
        """Return the OME metadata, as the converter writes it.

        The frames of a file are the image's T axis; a series' grid axes
        (``T``, ``C``, ``Z``) are the image's, and each file's frames are
        its T axis or -- one frame per file -- take a letter the grid leaves
        free.  The same builder writes the OME-XML of :func:`dcimg.convert`.

        Parameters
        ----------
        pixel_size : float or (float, float), optional
            Pixel size in µm in the sample: one value for X and Y, or
            ``(y, x)``; ``PhysicalSizeX``/``Y`` are left out without it.
        z_step : float, optional
            Distance between Z planes in µm (``PhysicalSizeZ``).

        Returns
        -------
        ome_types.OME
            One image: its size and pixel type, one plane per frame with its
            exact ``DeltaT`` (seconds from the first frame) where the camera
            recorded a time stamp, the detector (camera model and serial),
            the channel with the binning, and the camera metadata as a map
            annotation.  ``ome_types.to_xml()`` writes it as OME-XML.

        Raises
        ------
        dcimg.MissingDependencyError
            When ome-types is not installed (``pip install "dcimg[ome]"``).
        dcimg.ConversionError
            For a series whose grid has an axis OME has no place for (not T,
            C or Z), or a T axis while each file holds several frames.
        ValueError
            For a physical size that is not a finite number above 0.

        Examples
        --------
        >>> import dcimg
        >>> from dcimg.testing import example_file
        >>> with example_file() as path, dcimg.DCIMGFile(path) as f:
        ...     ome = f.ome_metadata(pixel_size=0.65)
        >>> pixels = ome.images[0].pixels
        >>> pixels.size_t, pixels.size_y, pixels.size_x, pixels.physical_size_x
        (20, 64, 80, 0.65)
        """
        from dcimg._ome import ome_metadata

        return ome_metadata(self, pixel_size=pixel_size, z_step=z_step)
