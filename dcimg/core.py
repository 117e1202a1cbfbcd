"""`DCIMGFile`: NumPy-style access to the frames of a Hamamatsu DCIMG file."""

from __future__ import annotations

import operator
import os
import warnings
from collections.abc import Sequence
from types import EllipsisType
from typing import (
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Literal,
    SupportsIndex,
    TypeAlias,
    overload,
)

import numpy as np
import numpy.typing as npt

from dcimg import _format, _kernels
from dcimg._dask import FileReader, StackViews, flat_attributes, frame_blocks
from dcimg._layout import Layout
from dcimg._source import Source, open_source
from dcimg._urls import display_url, is_url
from dcimg.errors import (
    DCIMGWarning,
    MissingDependencyError,
    quiet_warnings,
    warnings_quieted,
)
from dcimg.metadata import Metadata

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Unpack

    from dcimg._stack import ReadOptions

__all__ = ["DCIMGFile"]

#: What a path may be: anything :func:`os.open` takes (text or bytes).
StrOrBytesPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
# A basic index (what read() and [] accept), and the ones that name a single
# pixel, for which they return a NumPy scalar instead of an array.
_Item: TypeAlias = SupportsIndex | slice | EllipsisType | None
_Key: TypeAlias = _Item | tuple[_Item, ...]
_Pixel: TypeAlias = (
    tuple[SupportsIndex, SupportsIndex, SupportsIndex]
    | tuple[EllipsisType, SupportsIndex, SupportsIndex, SupportsIndex]
)

# What the kernel does with the overwritten pixels, per correction setting.
_CORRECTION_MODES = {
    True: _kernels.RESTORE,
    False: _kernels.ZERO,
    None: _kernels.LEAVE,
}
_CORRECTIONS = {mode: setting for setting, mode in _CORRECTION_MODES.items()}
# Result types the kernel writes directly, by dtype.
_KERNEL_KINDS = {np.dtype(name): kind for name, kind in _kernels.DST_KINDS.items()}


def check_threads(threads: int | None) -> int | None:
    """Check a ``threads=`` argument: None (the default), or 1 or more.

    The one rule for files and series.

    Raises
    ------
    ValueError
        If it is below 1.
    TypeError
        If it is not an integer.
    """
    if threads is None:
        return None
    count = operator.index(threads)
    if count < 1:
        raise ValueError(f"threads must be 1 or more, not {threads}")
    return count


def check_out(out: Any, dtype: npt.DTypeLike | None, shape: tuple[int, ...]) -> None:
    """Refuse an ``out`` array that a read of ``shape`` cannot fill.

    The one check of ``out=`` for every byte source (and for series).

    Parameters
    ----------
    out : object
        The array the caller passed.
    dtype : numpy dtype or None
        The ``dtype`` the caller passed, if any.
    shape : tuple of int
        The shape of the selection.

    Raises
    ------
    TypeError
        If ``out`` is not a :class:`numpy.ndarray`.
    ValueError
        Naming what is wrong: the shape, the dtype (not numeric, or not
        ``dtype``), or that it is read-only.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
    if dtype is not None and np.dtype(dtype) != out.dtype:
        raise ValueError(f"dtype {np.dtype(dtype)} differs from out.dtype {out.dtype}")
    if out.dtype.kind not in "biufc":
        raise ValueError(f"out has dtype {out.dtype}; pixels need a numeric type")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only (its writeable flag is False)")


def _writes_directly(out: np.ndarray) -> bool:
    """Whether the copy kernel can write ``out`` itself (no temporary)."""
    # "carray": C-contiguous, aligned and writeable, in one flag lookup.
    return out.flags.carray and out.dtype.isnative


def _is_file_object(origin: Any) -> bool:
    return hasattr(origin, "read") and hasattr(origin, "seek")


def frame_table_of(
    leading: list[tuple[str, np.ndarray]],
    frame: np.ndarray,
    framestamps: np.ndarray,
    timestamps: np.ndarray,
) -> np.ndarray:
    """Build the per-frame table of :meth:`DCIMGFile.frame_table` (and series').

    Parameters
    ----------
    leading : list of (str, numpy.ndarray)
        Columns put first (a series' grid position or file), one row per frame.
    frame : numpy.ndarray
        The frame index of every row.
    framestamps : numpy.ndarray
        The camera's frame counters, ``int64``; -1 where unknown.
    timestamps : numpy.ndarray
        ``datetime64[us]``; ``NaT`` where unknown.

    Returns
    -------
    numpy.ndarray
        The structured array described in :meth:`DCIMGFile.frame_table`.
    """
    rows = frame.size
    fields = [(name, np.int64) for name, _ in leading] + [
        ("frame", np.int64),
        ("framestamp", np.int64),
        ("timestamp", "datetime64[us]"),
        ("interval", "timedelta64[us]"),
        ("dropped", np.int64),
    ]
    table = np.zeros(rows, dtype=fields)
    for name, column in leading:
        table[name] = column
    table["frame"] = frame
    table["framestamp"] = framestamps
    table["timestamp"] = timestamps
    # NaT - anything is NaT, so a frame without a time stamp, and the one
    # after it, have no interval.
    table["interval"][0:1] = np.timedelta64("NaT", "us")
    if rows > 1:
        table["interval"][1:] = timestamps[1:] - timestamps[:-1]
        jump = framestamps[1:] - framestamps[:-1]
        known = (framestamps[1:] >= 0) & (framestamps[:-1] >= 0)
        # As Metadata.dropped_frames counts them: a jump of n > 1 is n - 1
        # frames the camera counted but the file does not hold.
        table["dropped"][1:] = np.where(known & (jump > 1), jump - 1, 0)
    return table


def import_pandas(path: str | None) -> Any:
    """Import pandas, or raise :class:`~dcimg.MissingDependencyError`."""
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependencyError(
            "as_frame=True returns a pandas DataFrame, which needs pandas: "
            'pip install pandas (the "xarray" extra brings it: pip install '
            '"dcimg[xarray]"), or leave as_frame False for a NumPy structured '
            "array",
            "pandas",
            path,
        ) from exc
    return pandas


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


class _State:
    """Everything one version of an open file reads from, swapped as a whole.

    :meth:`DCIMGFile.refresh` builds a new state and puts it in place with
    one assignment; a read takes the state once, at its start, and uses
    nothing else, so it sees the file before or after a refresh, never half
    of each.  Nothing in a state is ever torn down: the old one (and its
    map or reader) lives on while a read still holds it.  ``cache`` holds
    what is computed once per version (counters, time stamps, metadata,
    raw views); two threads may compute an entry at once, and both get the
    same values.
    """

    __slots__ = ("cache", "layout", "native_kind", "source", "take")

    def __init__(self, source: Source, layout: Layout) -> None:
        self.source = source
        self.layout = layout
        self.take = source.take
        depth = np.dtype(np.uint16 if layout.byte_depth == 2 else np.uint8)
        self.native_kind = _KERNEL_KINDS[depth]
        self.cache: dict[str, Any] = {}


class _LayoutField:
    """A read-only ``int`` attribute of an open file: a field of its layout.

    Declares once which public attribute reads which :class:`Layout` field
    (``xsize`` is ``width``); reading it from a closed file raises
    ``ValueError``, as every other attribute does.
    """

    def __init__(self, field: str, doc: str) -> None:
        self.field = field
        self.__doc__ = doc

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _LayoutField: ...
    @overload
    def __get__(self, obj: DCIMGFile, owner: type[Any] | None = None) -> int: ...
    def __get__(
        self, obj: DCIMGFile | None, owner: type[Any] | None = None
    ) -> _LayoutField | int:
        if obj is None:
            return self
        value: int = getattr(obj._require_open(), self.field)
        return value

    def __set__(self, obj: DCIMGFile, value: object) -> None:
        # A data descriptor, as a property is: read-only.
        raise AttributeError("this attribute of a DCIMG file cannot be set")


class DCIMGFile(StackViews):
    """A Hamamatsu DCIMG file, memory-mapped and read on demand.

    Pixels are read with NumPy basic indexing (integers, slices with any step,
    ``...`` and ``None``); every read returns the image as the camera saw it,
    with the pixels that some cameras overwrite put back (see
    :attr:`first_4px_correction_enabled`).

    Parameters
    ----------
    file_path : str, bytes, os.PathLike, URL or file object, optional
        The file to open: a local path (memory-mapped), an fsspec URL
        (``s3://``, ``gs://``, ``https://``, ``memory://``, chained URLs, ...;
        needs ``pip install "dcimg[remote]"`` and the protocol's package), or
        a binary file object with ``seek`` and ``read``.  When omitted, call
        :meth:`open` later.  The attribute ``file_path`` holds it for display:
        a URL without its user name, password and query string.
    first_4px_correction_enabled : bool or None, default True
        Initial value of :attr:`first_4px_correction_enabled`.
    mmap : bool, default True
        Memory-map local files.  False reads them with ``pread`` instead
        (for network shares and files that may change); URLs and file
        objects are always read that way, through a range reader.  Without
        a map there are no views: ``copy=False`` returns copies.
    storage_options : dict, optional
        Options of a URL's file system (credentials, endpoint, ...).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    dcimg.DCIMGFormatError
        If the file is not DCIMG or its header is corrupt (a
        :class:`ValueError`).

    Warns
    -----
    dcimg.DCIMGWarning
        When the acquisition was interrupted (fewer complete frames than
        declared), has more than one session, or lost its footer.

    Examples
    --------
    >>> import dcimg
    >>> from dcimg.testing import example_file
    >>> with example_file() as path, dcimg.DCIMGFile(path) as f:
    ...     print(f.shape, f.dtype)
    ...     print(f[0, 31, :4], f.timestamps[0])
    (20, 64, 80) uint16
    [666 728 696 705] 2024-09-05T16:53:17.250000
    """

    FILE_HDR_DTYPE = _format.FILE_HDR_DTYPE
    """Structured dtype of the file header at offset 0."""
    SESS_HDR_DTYPE = _format.SESS_HDR_DTYPE
    """Structured dtype of the session header of packed (0x7) files."""
    NEW_SESSION_HEADER_DTYPE = _format.NEW_SESSION_HEADER_DTYPE
    """Structured dtype of the session header of framed files."""
    SESSION_FOOTER_DTYPE = _format.SESSION_FOOTER_DTYPE
    """Structured dtype of the session footer of packed files."""
    SESSION_FOOTER2_DTYPE = _format.SESSION_FOOTER2_DTYPE
    """Structured dtype of the second footer structure of packed files."""
    NEW_FRAME_FOOTER_DTYPE = _format.NEW_FRAME_FOOTER_DTYPE
    """Structured dtype of the 32-byte trailer of each frame of framed files."""
    NEW_CROP_INFO = _format.NEW_CROP_INFO
    """Structured dtype of the sensor sub-array record (four ``uint16``)."""
    FMT_OLD = _format.FMT_OLD
    """Layout code of packed files (version 0x7)."""
    FMT_NEW = _format.FMT_NEW
    """Layout code of framed files (versions 0x1000000 and 0x2000000)."""

    def __init__(
        self,
        file_path: StrOrBytesPath | BinaryIO | None = None,
        *,
        first_4px_correction_enabled: bool | None = True,
        mmap: bool = True,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.file_path: str | None = None
        self._origin: Any = None
        self._mmap = bool(mmap)
        self._storage_options = dict(storage_options) if storage_options else None
        self._set_origin(file_path)
        self._state: _State | None = None
        self._deep_copy_enabled = True
        self.first_4px_correction_enabled = first_4px_correction_enabled
        if self._origin is not None:
            self.open()

    # ------------------------------------------------------------------
    # Opening and closing

    def open(self, file_path: StrOrBytesPath | None = None) -> None:
        """Open (or reopen) a file, closing any file already open.

        Parameters
        ----------
        file_path : str, bytes or os.PathLike, optional
            The file to open; defaults to the path given at construction.

        Raises
        ------
        FileNotFoundError
            If the path does not exist.
        dcimg.DCIMGFormatError
            If the file is not DCIMG or its header is corrupt.
        """
        self.close()
        if file_path is None and self.file_path is not None:
            if not _is_file_object(self._origin) and self.file_path != self._shown:
                # Historical scripts assign ``f.file_path`` and call open().
                file_path = self.file_path
        if file_path is not None:
            self._set_origin(file_path)
        if self._origin is None:
            raise ValueError("no file path given")
        source = open_source(
            self._origin, mmap=self._mmap, storage_options=self._storage_options
        )
        if _is_file_object(self._origin):
            self.file_path = source.name
        try:
            layout = source.parse()
        except BaseException:
            source.close()
            raise
        self._use(source, layout)
        if warnings_quieted():
            return
        for note in layout.notes:
            warnings.warn(f"{self.file_path}: {note}", DCIMGWarning, stacklevel=3)

    def _set_origin(self, origin: Any) -> None:
        """Remember what to open: a path or URL (as text), or a file object."""
        if origin is None or _is_file_object(origin):
            self._origin = origin
            self.file_path = self._shown = None
            return
        # Bytes paths are kept as text (os.fsdecode round-trips any name), so
        # messages, metadata and Dask graphs see one kind of path. What is
        # shown is the URL without its secrets; what is opened, the URL.
        text = os.fsdecode(origin)
        self.file_path = self._shown = display_url(text)
        # A local path is opened (and reopened by refresh(), Dask, pickles,
        # conversions judging what they must not replace) as it was meant
        # when given: relative to the working folder of that moment, which
        # may change.  Joined, not normalised: ".." after a linked folder is
        # the system's to resolve.
        self._origin = text if is_url(text) else os.path.join(os.getcwd(), text)

    def _use(self, source: Source, layout: Any) -> None:
        """Read from ``source`` (parsed as ``layout``) from now on."""
        # One assignment: reads on other threads see the old state or the
        # new one (with its own, empty cache), never a mix.
        self._state = _State(source, layout)

    @property
    def _source(self) -> Source | None:
        # The byte source of the current state (tests and tools look at it).
        state = self._state
        return None if state is None else state.source

    def refresh(self) -> int:
        """Read the header and size again, for a file that is still growing.

        A framed file grows frame by frame while it is written, each frame
        with its trailer, so every complete frame becomes readable with its
        counter and time stamp.  A packed file keeps its counters, time
        stamps and stored pixels in a footer written after the last frame:
        until then its complete frames are readable as stored, without them.

        Returns
        -------
        int
            The number of complete frames now (:attr:`nfrms`).

        Raises
        ------
        dcimg.DCIMGChangedError
            If the path now holds another file.
        dcimg.DCIMGFormatError
            If the header is (now) corrupt.
        """
        state = self._require_state()
        # The new source shares nothing a read of the old one could lose:
        # a new map (the old one stays until its last read is done), or the
        # same reader (never closed here), so reads on other threads go on.
        source = state.source.reopen()
        # Fewer frames than declared is expected while writing; parse()
        # itself only collects notes, which this does not show.
        layout = source.parse()
        if self._state is state:
            self._use(source, layout)
        return layout.frames

    def close(self) -> None:
        """Release the file.  Safe to call more than once.

        Arrays returned earlier with ``copy=False`` stay valid: the memory
        map is released when the last of them is garbage-collected.
        """
        state, self._state = self._state, None
        if state is not None:
            state.source.close()

    @property
    def closed(self) -> bool:
        """True when no file is open."""
        return self._state is None

    def _require_state(self) -> _State:
        state = self._state
        if state is None:
            raise ValueError(
                f"I/O operation on a closed DCIMG file ({self.file_path!r}); "
                "call open() first"
            )
        return state

    def _require_open(self) -> Layout:
        return self._require_state().layout

    def __enter__(self) -> DCIMGFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        # Pickles carry the path and options, never the mapping: a dask
        # worker reopens the file itself.
        if _is_file_object(self._origin):
            raise TypeError(
                f"a DCIMGFile reading a file object ({self.file_path}) cannot be "
                "pickled; open it by path or URL instead"
            )
        return {
            "file_path": self._origin,
            "first_4px_correction_enabled": self.first_4px_correction_enabled,
            "deep_copy_enabled": self._deep_copy_enabled,
            "mmap": self._mmap,
            "storage_options": self._storage_options,
            "open": not self.closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(
            self,
            None,
            first_4px_correction_enabled=state["first_4px_correction_enabled"],
            mmap=state.get("mmap", True),
            storage_options=state.get("storage_options"),
        )
        self._set_origin(state["file_path"])
        self._deep_copy_enabled = state["deep_copy_enabled"]
        if state["open"]:
            with quiet_warnings():
                self.open()

    def __repr__(self) -> str:
        if self.closed:
            return f"<DCIMGFile {self.file_path!r} closed>"
        shape = "x".join(str(n) for n in self.shape)
        return f"<DCIMGFile {self.file_path!r} shape={shape} dtype={self.dtype}>"

    # ------------------------------------------------------------------
    # Geometry

    @property
    def layout(self) -> Layout:
        """The parsed header (a ``dcimg._format.Layout``): offsets, strides."""
        return self._require_open()

    @property
    def fmt_version(self) -> int:
        """Layout code: :attr:`FMT_OLD` (packed) or :attr:`FMT_NEW` (framed)."""
        return self.FMT_OLD if self._require_open().packed else self.FMT_NEW

    byte_depth = _LayoutField("byte_depth", "Bytes per pixel: 1 or 2.")

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the file: ``uint8`` or ``uint16``."""
        return np.dtype(np.uint16 if self._require_open().byte_depth == 2 else np.uint8)

    xsize = _LayoutField("width", "Frame width in pixels.")

    ysize = _LayoutField("height", "Frame height in pixels.")

    nfrms = _LayoutField(
        "frames", "Number of readable frames (complete frames in the file)."
    )

    @property
    def zsize(self) -> int:
        """Same as :attr:`nfrms`."""
        return self.nfrms

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(frames, height, width)`` of the stack."""
        layout = self._require_open()
        return (layout.frames, layout.height, layout.width)

    @property
    def ndim(self) -> int:
        """Always 3."""
        return 3

    @property
    def size(self) -> int:
        """Number of pixels in the stack."""
        frames, height, width = self.shape
        return frames * height * width

    @property
    def nbytes(self) -> int:
        """Bytes the whole stack occupies once read (without padding)."""
        return self.size * self.byte_depth

    def __len__(self) -> int:
        return self.nfrms

    @property
    def x0(self) -> int:
        """First sensor column of the frame (0 without a sub-array)."""
        sub_array = self._require_open().sub_array
        return sub_array[0] if sub_array else 0

    @property
    def y0(self) -> int:
        """First sensor row of the frame (0 without a sub-array)."""
        sub_array = self._require_open().sub_array
        return sub_array[1] if sub_array else 0

    @property
    def binning(self) -> int:
        """Sensor pixels per frame pixel along each axis (1 when unknown)."""
        return self._require_open().binning or 1

    bytes_per_row = _LayoutField(
        "bytes_per_row", "Stored bytes per row, including any padding."
    )

    bytes_per_img = _LayoutField(
        "bytes_per_image", "Stored bytes per frame image (``bytes_per_row * ysize``)."
    )

    file_size = _LayoutField("file_size", "Size of the file on disk, in bytes.")

    @property
    def identity(self) -> tuple[str, int, int]:
        """``(absolute path, size in bytes, modification time in ns)``.

        Taken from the file that was opened (not from the path now), so a
        program can tell later whether the path still holds the same data;
        the Dask graph uses it.  For a URL: the URL as shown (without
        secrets), the object's size, and a number derived from its ETag,
        version or Last-Modified (0 when the storage reports none).
        """
        return self._require_state().source.identity()

    @property
    def axes(self) -> str:
        """Letters of the axes before the frames' ``(t, y, x)``: none here.

        A file is one stack of frames; :attr:`dcimg.DCIMGSeries.axes` names
        the grid axes a series puts before them. Read by code that takes
        either (see :class:`dcimg.Stack`).
        """
        self._require_open()
        return ""

    @property
    def token(self) -> str:
        """A digest of everything that determines the pixels read.

        Derived from :attr:`identity` (path or URL, size, modification time
        or version) and :attr:`first_4px_correction_enabled`: the same for
        the same file opened again the same way, another once it changed.
        """
        import hashlib

        identity = self.identity
        digest = hashlib.sha256(
            repr((identity, self.first_4px_correction_enabled, self.shape)).encode()
        )
        return digest.hexdigest()

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments that open this file again the same way.

        ``first_4px_correction_enabled``, ``mmap`` and ``storage_options``
        (None when none were given); used by the Dask graph to reopen the
        file on workers.
        """
        return {
            "first_4px_correction_enabled": self.first_4px_correction_enabled,
            "mmap": self._mmap,
            "storage_options": self._storage_options,
        }

    @property
    def file_object(self) -> Any:
        """The file object being read, or None for paths and URLs."""
        return self._origin if _is_file_object(self._origin) else None

    @property
    def location(self) -> str | None:
        """What the file is opened from: an absolute path, or the URL as given.

        ``file_path`` is the name as given, for people (a URL without
        its secrets); this is what :meth:`refresh`, Dask workers and pickles
        open again: a relative path made absolute when the file was opened
        (the working folder may change since), and a URL with its query and
        credentials, not to be shown.  None for a file object.
        """
        return self._origin if isinstance(self._origin, str) else None

    @property
    def deep_copy_enabled(self) -> bool:
        """Whether ``f[...]`` always returns a copy (default True).

        When False, indexing returns read-only views of the mapping wherever
        no pixel has to be corrected (see ``copy`` in :meth:`zslice`).
        """
        return self._deep_copy_enabled

    @deep_copy_enabled.setter
    def deep_copy_enabled(self, value: bool) -> None:
        self._deep_copy_enabled = bool(value)

    @property
    def first_4px_correction_enabled(self) -> bool | None:
        """What to do with the pixels the camera overwrote.

        Some cameras overwrite 8 bytes of one row of every frame (4 pixels at
        16 bit, 8 at 8 bit) and store the real values elsewhere in the file.
        ``True`` (default) puts each frame's stored values back; ``False``
        sets those pixels to 0; ``None`` leaves the bytes as stored.
        """
        return _CORRECTIONS[self._mode]

    @first_4px_correction_enabled.setter
    def first_4px_correction_enabled(self, value: bool | None) -> None:
        # The historical module took any true or false value here; scripts
        # (and MATLAB, through py.dcimg) pass 1 and 0 or NumPy booleans.
        # Other types (a string "False" is true) are refused, not guessed.
        if value is not None and not isinstance(value, bool):
            if isinstance(value, (int, np.integer, np.bool_)) and value in (0, 1):
                value = bool(value)
            else:
                raise TypeError(
                    "first_4px_correction_enabled must be True, False or None "
                    f"(or 1, 0), not {value!r}"
                )
        self._mode = _CORRECTION_MODES[value]

    def _raw_map(self) -> tuple[_State, Any]:
        state = self._require_state()
        raw = state.source.raw
        if raw is None:
            raise ValueError(
                f"{self.file_path}: no memory map: this file is read through a "
                "range reader; use read() or indexing"
            )
        return state, raw

    @property
    def mm(self) -> np.memmap:
        """Read-only :class:`numpy.memmap` (``uint8``) of the whole raw file.

        Not protected against the file shrinking under it (reading a lost
        page kills the process with ``SIGBUS``); :meth:`read` is.
        """
        state, file_map = self._raw_map()
        raw: np.memmap | None = state.cache.get("mm")
        if raw is None:
            # A memmap over the mapping already open (no second mapping).
            raw = np.ndarray.__new__(
                np.memmap, (state.layout.file_size,), np.uint8, buffer=file_map
            )
            raw.flags.writeable = False
            # numpy's stubs leave out memmap's private attribute, which its
            # methods read: None, as the map is not the memmap's own.
            raw._mmap = None  # type: ignore[attr-defined]
            raw.filename = (
                None if self.file_path is None else os.path.abspath(self.file_path)
            )
            raw.offset = 0
            raw.mode = "r"
            raw = state.cache.setdefault("mm", raw)
        return raw

    @property
    def mma(self) -> np.ndarray:
        """Read-only memory-mapped view of the frames, *without* correction.

        Shape :attr:`shape`; the overwritten pixels show the camera's
        placeholder pattern.  Like every view of the map, it is not protected
        against the file shrinking under it (reading a lost page kills the
        process with ``SIGBUS``); :meth:`read` and indexing are.
        """
        state, file_map = self._raw_map()
        view: np.ndarray | None = state.cache.get("mma")
        if view is None:
            layout = state.layout
            view = np.ndarray(
                (layout.frames, layout.height, layout.width),
                dtype=np.dtype("<u2" if layout.byte_depth == 2 else "u1"),
                buffer=file_map,
                offset=layout.data_offset,
                strides=(layout.frame_stride, layout.bytes_per_row, layout.byte_depth),
            )
            view.flags.writeable = False
            view = state.cache.setdefault("mma", view)
        return view

    # ------------------------------------------------------------------
    # Per-frame data

    @property
    def framestamps(self) -> np.ndarray:
        """The camera's frame counter of every frame (``uint32``).

        Empty when the counters were lost (a cut packed file).  A last frame
        whose trailer was cut off has the counter
        :data:`dcimg.metadata.MISSING_FRAMESTAMP` (``0xffffffff``).  Read
        once per version of the file (again after :meth:`refresh`); each
        access returns the same array.
        """
        return self._framestamps(self._require_state())

    @staticmethod
    def _framestamps(state: _State) -> np.ndarray:
        counters: np.ndarray | None = state.cache.get("framestamps")
        if counters is not None:
            return counters
        layout = state.layout
        if not layout.has_frame_data:
            counters = np.empty(0, np.uint32)
        else:
            # One array of the final size; the gathered bytes are the only
            # other per-frame memory (files of millions of frames).
            counters = np.full(layout.frames, _format.MISSING_FRAMESTAMP, np.uint32)
            raw = state.source.column(layout.counter_offset, layout.counter_stride, 4)
            counters[: len(raw) // 4] = np.frombuffer(raw, "<u4")
        counters = state.cache.setdefault("framestamps", counters)
        return counters

    @property
    def _timestamps_us(self) -> np.ndarray:
        return self._stamps_us(self._require_state())

    @staticmethod
    def _stamps_us(state: _State) -> np.ndarray:
        stamps: np.ndarray | None = state.cache.get("timestamps_us")
        if stamps is None:
            stamps = state.cache.setdefault(
                "timestamps_us", DCIMGFile._read_stamps_us(state)
            )
        return stamps

    @staticmethod
    def _read_stamps_us(state: _State) -> np.ndarray:
        layout = state.layout
        if not layout.has_frame_data:
            return np.empty(0, np.int64)
        source = state.source
        # Frames without a time stamp (a cut last trailer) get NaT.
        micro = np.full(layout.frames, np.iinfo(np.int64).min, np.int64)
        stamped = micro[: layout.stamped_frames]
        adjacent = layout.microseconds_offset == layout.seconds_offset + 4
        if adjacent and source.raw is None:
            # Both halves in one gather: one set of requests.
            raw = source.column(layout.seconds_offset, layout.time_stride, 8)
            pairs = np.frombuffer(raw, "<u4").reshape(-1, 2)
            np.multiply(pairs[:, 0], 1_000_000, out=stamped, dtype=np.int64)
            np.add(stamped, pairs[:, 1], out=stamped, dtype=np.int64)
            return micro
        # A map costs no request: one half at a time, so that the gathered
        # bytes never exceed 4 per frame (files of millions of frames).
        # In place, without int64 copies of the columns.
        seconds = source.column(layout.seconds_offset, layout.time_stride, 4)
        np.multiply(
            np.frombuffer(seconds, "<u4"), 1_000_000, out=stamped, dtype=np.int64
        )
        del seconds
        fraction = source.column(layout.microseconds_offset, layout.time_stride, 4)
        np.add(stamped, np.frombuffer(fraction, "<u4"), out=stamped, dtype=np.int64)
        return micro

    @property
    def timestamps(self) -> np.ndarray:
        """Time stamp of every frame as ``datetime64[us]`` (UTC).

        Empty when the time stamps were lost (a cut packed file); ``NaT`` for
        a last frame whose trailer was cut off.
        """
        return self._timestamps_us.astype("datetime64[us]")

    # The parameter keeps the historical module's name, ``frame``.
    @overload
    def ts(self, frame: None = None) -> npt.NDArray[np.datetime64]: ...
    @overload
    def ts(self, frame: SupportsIndex) -> np.datetime64: ...
    def ts(
        self, frame: SupportsIndex | None = None
    ) -> npt.NDArray[np.datetime64] | np.datetime64:
        """Frame time stamps as :class:`numpy.datetime64` (microseconds, UTC).

        Parameters
        ----------
        frame : int, optional
            A frame index (negative counts from the end); all frames when
            omitted (the same as :attr:`timestamps`).

        Returns
        -------
        numpy.datetime64 or numpy.ndarray
            One time stamp, or an array of them (``datetime64[us]``).  For
            seconds since the epoch, use
            ``f.timestamps.astype("int64") / 1e6``.

        Raises
        ------
        ValueError
            If the time stamps were lost (an interrupted packed file).
        """
        if frame is None:
            return self.timestamps
        state = self._require_state()
        micro = self._stamps_us(state)
        if not micro.size and state.layout.frames:
            raise ValueError(
                f"{self.file_path}: the time stamps were lost with the footer of "
                "this interrupted acquisition"
            )
        return np.datetime64(
            int(micro[self._frame_index(frame, state.layout.frames)]), "us"
        )

    def compute_target_line(self) -> int | None:
        """Return the row that holds the overwritten pixels, or None.

        The row comes from the file's own metadata (packed footer, framed
        kind-4 block) or, without it, from the historical fallback rules.
        """
        layout = self._require_open()
        # A fallback row that the frames do not confirm is not used.
        return layout.stored_row if layout.stored_bytes else None

    @property
    def metadata(self) -> Metadata:
        """Typed description of the file (:class:`dcimg.Metadata`)."""
        state = self._require_state()
        meta: Metadata | None = state.cache.get("metadata")
        if meta is None:
            meta = Metadata.from_layout(
                state.layout,
                path=self.file_path,
                framestamps=self._framestamps(state),
                timestamps_us=self._stamps_us(state),
            )
            meta = state.cache.setdefault("metadata", meta)
        return meta

    @overload
    def frame_table(self, *, as_frame: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def frame_table(self, *, as_frame: Literal[True]) -> pd.DataFrame: ...
    def frame_table(self, *, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
        """Return one row per frame: counter, time stamp, interval, drops.

        The per-frame data of :attr:`framestamps` and :attr:`timestamps` as
        a table, with what is derived from them (like nd2's ``events()``).

        Parameters
        ----------
        as_frame : bool, default False
            Return a :class:`pandas.DataFrame` (needs pandas) instead of a
            NumPy structured array; its columns are the fields below.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            One row per frame, with the fields

            ``frame`` (``int64``)
                The frame's index.
            ``framestamp`` (``int64``)
                The camera's frame counter; -1 where it is unknown (lost
                with a packed file's footer, or a cut last trailer).
            ``timestamp`` (``datetime64[us]``, UTC)
                The frame's time stamp; ``NaT`` where unknown.
            ``interval`` (``timedelta64[us]``)
                Time since the previous frame's time stamp, exact to the
                microsecond; ``NaT`` for the first frame and next to an
                unknown time stamp.
            ``dropped`` (``int64``)
                Frames the camera counted but did not save just before this
                one: the counter's jump minus one when it jumps by more than
                one, else 0 (the frames of the metadata's
                ``dropped_frame_count``, at the frame after each gap).

        Raises
        ------
        dcimg.MissingDependencyError
            With ``as_frame=True`` when pandas is not installed.

        Examples
        --------
        >>> import tempfile
        >>> import dcimg
        >>> from dcimg.testing import write_example
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_example(f"{folder}/example.dcimg")
        ...     with dcimg.DCIMGFile(path) as f:
        ...         table = f.frame_table()
        >>> table.dtype.names
        ('frame', 'framestamp', 'timestamp', 'interval', 'dropped')
        >>> print(table["interval"][1], table["dropped"].sum())
        33333 microseconds 1
        """
        state = self._require_state()
        pandas = import_pandas(self.file_path) if as_frame else None
        frames = state.layout.frames
        counters = np.full(frames, -1, np.int64)
        known = self._framestamps(state)
        if known.size == frames:
            counters[known != _format.MISSING_FRAMESTAMP] = known[
                known != _format.MISSING_FRAMESTAMP
            ]
        stamps = np.full(frames, np.datetime64("NaT", "us"))
        micro = self._stamps_us(state)
        if micro.size == frames:
            stamps = micro.astype("datetime64[us]")
        table = frame_table_of([], np.arange(frames), counters, stamps)
        if pandas is None:
            return table
        frame: pd.DataFrame = pandas.DataFrame(table)
        return frame

    # ------------------------------------------------------------------
    # Reading pixels

    def _frame_index(self, index: SupportsIndex, frames: int | None = None) -> int:
        if frames is None:
            frames = self.nfrms
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(
                f"frame index must be an integer, not {type(index).__name__}"
            ) from None
        if not -frames <= i < frames:
            raise IndexError(
                f"index {i} is out of bounds for axis 0 with size {frames}"
            )
        return i % frames

    # One pixel gives a NumPy scalar, any other basic index an array.  (mypy
    # calls the overloads overlapping because a pixel is also a basic index;
    # the first that matches wins, as intended.)
    @overload
    def read(  # type: ignore[overload-overlap]
        self, key: _Pixel, *, out: None = ..., **options: Unpack[ReadOptions]
    ) -> np.generic: ...
    @overload
    def read(
        self,
        key: _Key = ...,
        *,
        out: npt.NDArray[Any] | None = ...,
        **options: Unpack[ReadOptions],
    ) -> npt.NDArray[Any]: ...
    def read(
        self,
        key: _Key = Ellipsis,
        *,
        dtype: npt.DTypeLike | None = None,
        out: npt.NDArray[Any] | None = None,
        copy: bool = True,
        threads: int | None = None,
    ) -> Any:
        """Read a basic-index selection, converted to ``dtype`` in one pass.

        ``f.read(key)`` equals ``f[key]``; it also takes ``dtype`` and ``out``.

        Parameters
        ----------
        key : index, default ``...``
            Any NumPy basic index: integers, slices (any step, negative
            values), ``...`` and ``None``.
        dtype : numpy dtype, optional
            Type of the result; default the file's (``uint8``/``uint16``).
            Conversion happens inside the copy (``uint8``, ``uint16``,
            ``int16``, ``int32``, ``uint32``, ``int64``, ``uint64``,
            ``float32`` and ``float64`` natively; others via NumPy).
        out : numpy.ndarray, optional
            Writable array of the result's shape to fill instead of
            allocating, in any memory layout (C-contiguous arrays are
            written directly, others through a temporary); its dtype is used
            when ``dtype`` is not given.
        copy : bool, default True
            When False, no conversion is asked for and the file is memory
            mapped, return a read-only view of the map where the selection
            covers no overwritten pixel to correct; otherwise (and for files
            read through a range reader) a copy.  Views are not protected
            against the file shrinking under them (reading a lost page kills
            the process with ``SIGBUS``); copies are.
        threads : int, optional
            Most threads the copy may be split across.  By default a copy of
            32 MiB or more uses up to ``min(8, os.cpu_count())`` threads and a
            smaller one the calling thread.  Pass 1 when your own code already
            reads in parallel (a thread pool, Dask tasks): teams of copy
            threads inside each of them only compete for the same cores.

        Returns
        -------
        numpy.ndarray or numpy.generic
            Equal to NumPy's indexing of the corrected image: a NumPy scalar
            when ``key`` picks one pixel (and ``out`` is not given).

        Raises
        ------
        IndexError
            For an index NumPy would refuse on an array of this shape, and for
            advanced (array or boolean) indices.
        TypeError
            If ``out`` is not a NumPy array.
        ValueError
            If ``out`` has the wrong shape, is read-only, has a non-numeric
            dtype, or a dtype other than ``dtype``.
        dcimg.DCIMGChangedError
            If the file shrank (or was replaced) since it was opened and the
            selection's bytes are gone.
        """
        # One state for the whole read (see _State): a refresh on another
        # thread cannot change what this read reads from half-way.
        state = self._require_state()
        source = state.source
        layout = state.layout
        mode = self._mode
        threads = check_threads(threads) or 0
        if out is not None:
            # One check for every byte source; a layout the kernel cannot
            # write (strided, reversed, Fortran, unaligned, byte-swapped)
            # is filled from a fresh array.  A C-contiguous out costs one
            # more parse of the index (about a microsecond), no copy.
            shape = (layout.frames, layout.height, layout.width)
            check_out(out, dtype, _kernels.select(key, shape)[1])
            if not _writes_directly(out):
                result = self.read(key, dtype=out.dtype, threads=threads or None)
                np.copyto(out, result, casting="equiv")
                return out
            dtype = out.dtype
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if not copy and out is None and dtype == self.dtype:
            view = source.view(key, mode == _kernels.LEAVE)
            if view is not None:
                return view
        kind = _KERNEL_KINDS.get(dtype)
        if kind is not None:
            return self._guarded(state, key, kind, out, mode, threads)
        # Types the kernel does not write: read natively, let NumPy cast.
        native = np.asarray(
            self._guarded(state, key, state.native_kind, None, mode, threads)
        )
        if out is None:
            result = native.astype(dtype)
            return result[()] if result.ndim == 0 else result
        np.copyto(out, native, casting="unsafe")
        return out

    @staticmethod
    def _guarded(state: _State, *args: Any) -> Any:
        """Copy with ``state``'s kernel; a lost page raises DCIMGChangedError.

        The copy is also confirmed afterwards (see :mod:`dcimg._source`):
        bytes the file no longer holds raise the same error.
        """
        try:
            return state.take(*args)
        except _kernels.BufferFault:
            raise state.source.changed() from None

    @overload
    def __getitem__(self, key: _Pixel) -> np.generic: ...  # type: ignore[overload-overlap]
    @overload
    def __getitem__(self, key: _Key) -> npt.NDArray[Any]: ...
    def __getitem__(self, key: _Key) -> Any:
        """Read pixels with NumPy basic indexing; see :meth:`read`."""
        state = self._state
        if state is not None and self._deep_copy_enabled:
            # The common case, kept short: one call into the kernel.
            try:
                return state.take(key, state.native_kind, None, self._mode)
            except _kernels.BufferFault:
                raise state.source.changed() from None
        return self.read(key, copy=self._deep_copy_enabled)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            # NumPy 2: copy=False must not copy, or raise.
            view = None
            if dtype is None or np.dtype(dtype) == self.dtype:
                view = self.read(..., copy=False)
            if view is None or view.flags.owndata:
                raise ValueError(
                    f"{self.file_path}: the pixels cannot be returned without a "
                    "copy (they need correcting or converting, or the file is "
                    "not memory mapped); use np.asarray(f) or f.read()"
                )
            return view
        return self.read(..., dtype=dtype)

    def zslice(
        self,
        arg1: int | None,
        arg2: int | None = None,
        step: int | None = None,
        dtype: Any = None,
        copy: bool = True,
        *,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return a range of frames, like ``f[slice(...)]``.

        With only ``arg1``, it is the stop (``slice(arg1)``); otherwise the
        frames are ``slice(arg1, arg2, step)``.

        Parameters
        ----------
        arg1 : int or None
            Stop frame when alone; otherwise the start frame.
        arg2 : int, optional
            Stop frame (exclusive).
        step : int, optional
            Step between frames (negative to go backwards).
        dtype : numpy dtype, optional
            Type of the result (see :meth:`read`).
        copy : bool, default True
            False allows a read-only view where no correction is needed.
        out : numpy.ndarray, optional
            Array to fill (see :meth:`read`).

        Returns
        -------
        numpy.ndarray
            Shape ``(frames, ysize, xsize)``.
        """
        frames = (
            slice(arg1) if arg2 is None and step is None else slice(arg1, arg2, step)
        )
        return self.read(frames, dtype=dtype, copy=copy, out=out)

    def zslice_idx(
        self,
        index: int,
        frames_per_slice: int = 1,
        dtype: Any = None,
        copy: bool = True,
        *,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return block ``index`` of ``frames_per_slice`` consecutive frames.

        Frames ``index * frames_per_slice`` up to (excluding)
        ``(index + 1) * frames_per_slice``; the last block may be shorter.
        A negative ``index`` counts blocks from the end.

        Parameters
        ----------
        index : int
            Block number.
        frames_per_slice : int, default 1
            Frames per block.
        dtype, copy, out
            As in :meth:`zslice`.

        Returns
        -------
        numpy.ndarray
            Shape ``(frames_per_slice, ysize, xsize)`` (fewer frames for a
            short last block).
        """
        fps = operator.index(frames_per_slice)
        if fps < 1:
            raise ValueError(f"frames_per_slice must be >= 1, not {fps}")
        blocks = _ceil_div(self.nfrms, fps)
        i = operator.index(index)
        if not -blocks <= i < blocks:
            raise IndexError(
                f"slice index {i} is out of range for {blocks} slices of {fps} frames"
            )
        start = (i % blocks) * fps
        return self.read(slice(start, start + fps), dtype=dtype, copy=copy, out=out)

    def frame(
        self,
        index: int,
        dtype: Any = None,
        copy: bool = True,
        *,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return one frame (negative indices count from the end).

        Parameters
        ----------
        index : int
            Frame index.
        dtype, copy, out
            As in :meth:`zslice`.

        Returns
        -------
        numpy.ndarray
            Shape ``(ysize, xsize)``.
        """
        return self.read(self._frame_index(index), dtype=dtype, copy=copy, out=out)

    def whole(
        self,
        dtype: Any = None,
        copy: bool = True,
        *,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the whole stack.

        Parameters
        ----------
        dtype, copy, out
            As in :meth:`zslice`.

        Returns
        -------
        numpy.ndarray
            Shape :attr:`shape`.
        """
        return self.read(..., dtype=dtype, copy=copy, out=out)

    # ------------------------------------------------------------------
    # Dask and xarray: as_dask_array and to_xarray come from StackViews,
    # which asks the class what only it knows.

    def _chunk_reader(self) -> FileReader:
        self._require_open()
        return FileReader.of(self)

    _chunk_blocks = staticmethod(frame_blocks)

    def _xarray_parts(self) -> tuple[str | None, dict[str, Any], Sequence[Any]]:
        attrs = flat_attributes(self.metadata.to_dict())
        attrs["first_4px_correction_enabled"] = str(self.first_4px_correction_enabled)
        return self.file_path, attrs, ()

    # ------------------------------------------------------------------
    # Familiar names (nd2, tifffile, xarray)

    @property
    def sizes(self) -> dict[str, int]:
        """Length of every axis by name: ``{"t": frames, "y": height, "x": width}``.

        The names are the dimensions of :meth:`to_xarray` (the frame axis is
        ``"t"``), as nd2's ``sizes`` and xarray's ``DataArray.sizes`` give
        them.
        """
        return dict(zip(("t", "y", "x"), self.shape, strict=True))
