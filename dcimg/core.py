"""`DCIMGFile`: NumPy-style access to the frames of a Hamamatsu DCIMG file."""

from __future__ import annotations

import mmap
import operator
import os
import stat
import sys
import warnings
from functools import cached_property
from typing import Any

import numpy as np

from dcimg import _format, _kernels
from dcimg.errors import DCIMGFormatError, DCIMGWarning
from dcimg.metadata import Camera, Metadata, StoredPixels, SubArray

__all__ = ["DCIMGFile"]

# Large copies are split across this many threads inside the kernel (which
# releases the GIL); small ones run on the calling thread.
_MAX_THREADS = max(1, min(8, os.cpu_count() or 1))
# What the kernel does with the overwritten pixels, per correction setting.
_PATCH_MODE = {
    True: _kernels.PATCH_RESTORE,
    False: _kernels.PATCH_ZERO,
    None: _kernels.PATCH_LEAVE,
}
# Result types the kernel writes directly, by dtype.
_KERNEL_KINDS = {np.dtype(name): kind for name, kind in _kernels.DST_KINDS.items()}


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


class DCIMGFile:
    """A Hamamatsu DCIMG file, memory-mapped and read on demand.

    Pixels are read with NumPy basic indexing (integers, slices with any step,
    ``...`` and ``None``); every read returns the image as the camera saw it,
    with the pixels that some cameras overwrite put back (see
    :attr:`first_4px_correction_enabled`).

    Parameters
    ----------
    file_path : str or os.PathLike, optional
        The file to open.  When omitted, call :meth:`open` later.
    first_4px_correction_enabled : bool or None, default True
        Initial value of :attr:`first_4px_correction_enabled`.

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
    >>> from dcimg.testing import write_example
    >>> path = write_example(tmp_path / "example.dcimg")
    >>> with dcimg.DCIMGFile(path) as f:
    ...     f.shape, f.dtype
    ((20, 64, 80), dtype('uint16'))
    """

    FILE_HDR_DTYPE = _format.FILE_HDR_DTYPE
    """Structured dtype of the file header at offset 0."""
    SESS_HDR_DTYPE = _format.SESS_HDR_DTYPE
    """Structured dtype of the session header of packed (0x7) files."""
    NEW_SESSION_HEADER_DTYPE = _format.NEW_SESSION_HEADER_DTYPE
    """Structured dtype of the session header of framed files."""
    SESSION_FOOTER2_DTYPE = _format.SESSION_FOOTER2_DTYPE
    """Structured dtype of the second footer structure of packed files."""
    NEW_CROP_INFO = _format.NEW_CROP_INFO
    """Structured dtype of the sensor sub-array record (four ``uint16``)."""
    FMT_OLD = _format.FMT_OLD
    """Layout code of packed files (version 0x7)."""
    FMT_NEW = _format.FMT_NEW
    """Layout code of framed files (versions 0x1000000 and 0x2000000)."""

    def __init__(
        self,
        file_path: str | os.PathLike[str] | None = None,
        *,
        first_4px_correction_enabled: bool | None = True,
    ) -> None:
        self.file_path = None if file_path is None else os.fspath(file_path)
        self._layout: Any = None
        self._map: mmap.mmap | None = None
        self._image: Any = None
        self._mma: np.ndarray | None = None
        self._mm: np.memmap | None = None
        self._deep_copy_enabled = True
        self.first_4px_correction_enabled = first_4px_correction_enabled
        if self.file_path is not None:
            self.open()

    # ------------------------------------------------------------------
    # Opening and closing

    def open(self, file_path: str | os.PathLike[str] | None = None) -> None:
        """Open (or reopen) a file, closing any file already open.

        Parameters
        ----------
        file_path : str or os.PathLike, optional
            The file to open; defaults to the path given at construction.

        Raises
        ------
        FileNotFoundError
            If the path does not exist.
        dcimg.DCIMGFormatError
            If the file is not DCIMG or its header is corrupt.
        """
        self.close()
        if file_path is not None:
            self.file_path = os.fspath(file_path)
        if self.file_path is None:
            raise ValueError("no file path given")
        # Clear cached per-file values from a previous open.
        for name in ("metadata", "framestamps", "_timestamps_us"):
            self.__dict__.pop(name, None)
        fd = os.open(self.file_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DCIMGFormatError(f"{self.file_path!r} is not a regular file")
            if info.st_size == 0:
                raise DCIMGFormatError(
                    f"magic: {self.file_path!r} is empty (0 bytes), not a DCIMG file",
                    "magic",
                )
            # A read-only shared mapping: the file on disk can never be written.
            file_map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            self._identity = (info.st_dev, info.st_ino, info.st_size)
            self._mtime_ns = info.st_mtime_ns
        finally:
            os.close(fd)
        try:
            layout = _format.parse_layout(file_map)
        except BaseException:
            file_map.close()
            raise
        self._map = file_map
        self._layout = layout
        for note in layout.notes:
            warnings.warn(f"{self.file_path}: {note}", DCIMGWarning, stacklevel=3)
        # Built only now that every offset has been validated.
        self._mma = np.ndarray(
            (layout.frames, layout.height, layout.width),
            dtype=np.dtype("<u2" if layout.byte_depth == 2 else "u1"),
            buffer=file_map,
            offset=layout.data_offset,
            strides=(layout.frame_stride, layout.bytes_per_row, layout.byte_depth),
        )
        patch = None
        if layout.stored_bytes:
            patch = (
                layout.stored_row,
                layout.stored_column,
                layout.stored_pixels,
                layout.stored_offset,
                layout.stored_stride,
            )
        self._image = _kernels.StridedImage(
            file_map,
            layout.data_offset,
            (layout.frames, layout.height, layout.width),
            (layout.frame_stride, layout.bytes_per_row, layout.byte_depth),
            layout.byte_depth,
            patch,
            max_threads=_MAX_THREADS,
        )
        self._native_kind = _KERNEL_KINDS[self.dtype]

    def close(self) -> None:
        """Release the memory mapping.  Safe to call more than once.

        Arrays returned earlier with ``copy=False`` stay valid: the mapping is
        then released when the last of them is garbage-collected.
        """
        self._mma = None
        self._mm = None
        self._layout = None
        self._image = None
        file_map, self._map = self._map, None
        # NumPy arrays built on the mapping keep a reference to the mmap
        # object but no buffer export, so mmap.close() would succeed under
        # them and leave them dangling.  Unmap now only when nothing else
        # refers to the mapping (the local name and getrefcount's argument
        # are the two references counted); otherwise the views handed out
        # with copy=False keep it alive and it is unmapped with the last one.
        if file_map is not None and sys.getrefcount(file_map) <= 2:
            file_map.close()

    @property
    def closed(self) -> bool:
        """True when no file is open."""
        return self._layout is None

    def _require_open(self) -> Any:
        layout = self._layout
        if layout is None:
            raise ValueError(
                f"I/O operation on a closed DCIMG file ({self.file_path!r}); "
                "call open() first"
            )
        return layout

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
        return {
            "file_path": self.file_path,
            "first_4px_correction_enabled": self.first_4px_correction_enabled,
            "deep_copy_enabled": self._deep_copy_enabled,
            "open": not self.closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            None, first_4px_correction_enabled=state["first_4px_correction_enabled"]
        )
        self.file_path = state["file_path"]
        self._deep_copy_enabled = state["deep_copy_enabled"]
        if state["open"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DCIMGWarning)
                self.open()

    def __repr__(self) -> str:
        if self.closed:
            return f"<DCIMGFile {self.file_path!r} closed>"
        shape = "x".join(str(n) for n in self.shape)
        return f"<DCIMGFile {self.file_path!r} shape={shape} dtype={self.dtype}>"

    # ------------------------------------------------------------------
    # Geometry

    @property
    def layout(self) -> Any:
        """The parsed header (:class:`dcimg._format.Layout`): offsets, strides."""
        return self._require_open()

    @property
    def fmt_version(self) -> int:
        """Layout code: :attr:`FMT_OLD` (packed) or :attr:`FMT_NEW` (framed)."""
        return self._require_open().fmt

    @property
    def byte_depth(self) -> int:
        """Bytes per pixel: 1 or 2."""
        return self._require_open().byte_depth

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the file: ``uint8`` or ``uint16``."""
        return np.dtype(np.uint16 if self._require_open().byte_depth == 2 else np.uint8)

    @property
    def xsize(self) -> int:
        """Frame width in pixels."""
        return self._require_open().width

    @property
    def ysize(self) -> int:
        """Frame height in pixels."""
        return self._require_open().height

    @property
    def nfrms(self) -> int:
        """Number of readable frames (complete frames in the file)."""
        return self._require_open().frames

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
    def bytes_per_row(self) -> int:
        """Stored bytes per row, including any padding."""
        return self._require_open().bytes_per_row

    @property
    def bytes_per_img(self) -> int:
        """Stored bytes per frame image (``bytes_per_row * ysize``)."""
        return self._require_open().bytes_per_image

    @property
    def file_size(self) -> int:
        """Size of the file on disk, in bytes."""
        return self._require_open().file_size

    @property
    def identity(self) -> tuple[str, int, int]:
        """``(absolute path, size in bytes, modification time in ns)``.

        Taken from the file that was opened (not from the path now), so a
        program can tell later whether the path still holds the same data;
        the Dask graph uses it.
        """
        self._require_open()
        return (os.path.abspath(self.file_path), self._identity[2], self._mtime_ns)

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
        return self._correction

    @first_4px_correction_enabled.setter
    def first_4px_correction_enabled(self, value: bool | None) -> None:
        if value is not None and value is not True and value is not False:
            raise TypeError(
                "first_4px_correction_enabled must be True, False or None, "
                f"not {value!r}"
            )
        self._correction = value
        self._patch_mode = _PATCH_MODE[value]

    @property
    def mm(self) -> np.memmap:
        """Read-only :class:`numpy.memmap` (``uint8``) of the whole raw file."""
        self._require_open()
        if self._mm is None:
            # A memmap over the mapping already open (no second mapping).
            raw = np.ndarray.__new__(
                np.memmap, (self._layout.file_size,), np.uint8, buffer=self._map
            )
            raw._mmap = self._map
            raw.filename = os.path.abspath(self.file_path)
            raw.offset = 0
            raw.mode = "r"
            self._mm = raw
        return self._mm

    @property
    def mma(self) -> np.ndarray:
        """Read-only memory-mapped view of the frames, *without* correction.

        Shape :attr:`shape`; the overwritten pixels show the camera's
        placeholder pattern.
        """
        self._require_open()
        return self._mma

    # ------------------------------------------------------------------
    # Per-frame data

    @cached_property
    def framestamps(self) -> np.ndarray:
        """The camera's frame counter of every frame (``uint32``).

        Empty when the counters were lost (a cut packed file).
        """
        layout = self._require_open()
        if not layout.has_frame_data:
            return np.empty(0, np.uint32)
        view = np.ndarray(
            (layout.frames,),
            np.dtype("<u4"),
            buffer=self._map,
            offset=layout.counter_offset,
            strides=(layout.counter_stride,),
        )
        return view.astype(np.uint32)

    @cached_property
    def _timestamps_us(self) -> np.ndarray:
        layout = self._require_open()
        if not layout.has_frame_data:
            return np.empty(0, np.int64)

        def column(offset: int) -> np.ndarray:
            return np.ndarray(
                (layout.frames,),
                np.dtype("<u4"),
                buffer=self._map,
                offset=offset,
                strides=(layout.time_stride,),
            ).astype(np.int64)

        seconds = column(layout.seconds_offset)
        micro = column(layout.microseconds_offset)
        return seconds * 1_000_000 + micro

    @property
    def timestamps(self) -> np.ndarray:
        """Time stamp of every frame as ``datetime64[us]`` (UTC).

        Empty when the time stamps were lost (a cut packed file).
        """
        return self._timestamps_us.astype("datetime64[us]")

    def ts(self, index: int | None = None) -> float | np.ndarray:
        """Frame time stamps as seconds since the Unix epoch (``float64``).

        Parameters
        ----------
        index : int, optional
            A frame index (negative counts from the end); all frames when
            omitted.

        Returns
        -------
        float or numpy.ndarray
            Seconds since 1970-01-01T00:00Z, with microsecond resolution.
        """
        micro = self._timestamps_us
        if index is None:
            return micro / 1e6
        if not micro.size and self.nfrms:
            raise ValueError(
                f"{self.file_path}: the time stamps were lost with the footer of "
                "this interrupted acquisition"
            )
        return float(micro[self._frame_index(index)]) / 1e6

    def compute_target_line(self) -> int | None:
        """Return the row that holds the overwritten pixels, or None.

        The row comes from the file's own metadata (packed footer, framed
        kind-4 block) or, without it, from the historical fallback rules.
        """
        row = self._require_open().stored_row
        return None if row < 0 else row

    @cached_property
    def metadata(self) -> Metadata:
        """Typed description of the file (:class:`dcimg.Metadata`)."""
        layout = self._require_open()
        counters = self.framestamps.astype(np.int64)
        jumps = np.diff(counters) if counters.size > 1 else np.empty(0, np.int64)
        dropped = np.flatnonzero(jumps > 1)
        micro = self._timestamps_us
        first = last = interval = None
        if micro.size:
            first = str(micro[:1].astype("datetime64[us]")[0]) + "Z"
            last = str(micro[-1:].astype("datetime64[us]")[0]) + "Z"
        if micro.size > 1:
            interval = float(np.median(np.diff(micro))) / 1e6
        sub = layout.sub_array
        stored = None
        if layout.stored_bytes or layout.stored_lost:
            stored = StoredPixels(
                row=layout.stored_row,
                column=layout.stored_column,
                count=layout.stored_pixels,
                source=layout.stored_source or "lost with the footer",
                available=not layout.stored_lost,
            )
        return Metadata(
            path=self.file_path,
            format_version=layout.version,
            layout="packed" if layout.fmt == self.FMT_OLD else "framed",
            shape=self.shape,
            dtype=self.dtype.name,
            byte_depth=layout.byte_depth,
            bytes_per_row=layout.bytes_per_row,
            bytes_per_image=layout.bytes_per_image,
            trailer_size=layout.trailer_size,
            declared_frames=layout.declared_frames,
            frames=layout.frames,
            truncated=layout.truncated,
            file_size=layout.file_size,
            recorded_file_size=layout.recorded_file_size,
            nsessions=layout.nsessions,
            camera=Camera(
                model=layout.camera_model,
                serial=layout.camera_serial,
                versions=tuple(layout.camera_versions),
            ),
            sub_array=None
            if sub is None
            else SubArray(
                x0=sub[0],
                y0=sub[1],
                width=sub[2],
                height=sub[3],
                source=layout.sub_array_source,
            ),
            binning=layout.binning,
            stored_pixels=stored,
            frame_data_available=layout.has_frame_data,
            dropped_frames=tuple(int(i) for i in dropped),
            dropped_frame_count=int((jumps[dropped] - 1).sum()),
            first_timestamp=first,
            last_timestamp=last,
            frame_interval_s=interval,
            notes=tuple(layout.notes),
        )

    # ------------------------------------------------------------------
    # Reading pixels

    def _frame_index(self, index: int) -> int:
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

    def read(
        self,
        key: Any = Ellipsis,
        *,
        dtype: Any = None,
        out: np.ndarray | None = None,
        copy: bool = True,
    ) -> np.ndarray:
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
            C-contiguous, writable array of the result's shape to fill instead
            of allocating; its dtype is used when ``dtype`` is not given.
        copy : bool, default True
            When False and no conversion is asked for, return a read-only
            view instead of a copy: of the shared mapping where no pixel needs
            correcting, else of a private copy-on-write mapping in which only
            the page holding each selected frame's stored pixels is copied.

        Returns
        -------
        numpy.ndarray or numpy scalar
            Equal to NumPy's indexing of the corrected image.

        Raises
        ------
        IndexError
            For an index NumPy would refuse on an array of this shape, and for
            advanced (array or boolean) indices.
        """
        self._require_open()
        image = self._image
        mode = _PATCH_MODE[self._correction]
        if out is not None:
            if dtype is not None and np.dtype(dtype) != out.dtype:
                raise ValueError(
                    f"dtype {np.dtype(dtype)} differs from out.dtype {out.dtype}"
                )
            dtype = out.dtype
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if not copy and out is None and dtype == self.dtype:
            if mode == _kernels.PATCH_LEAVE or not image.touches_patch(key):
                return self._mma[key]
            view = self._corrected_view(key, mode)
            if view is not None:
                return view
        kind = _KERNEL_KINDS.get(dtype)
        if kind is not None:
            return image.take(key, kind, out, mode)
        # Types the kernel does not write: read natively, let NumPy cast.
        native = np.asarray(image.take(key, self._native_kind, None, mode))
        if out is None:
            result = native.astype(dtype)
            return result[()] if result.ndim == 0 else result
        if out.shape != native.shape:
            raise ValueError(f"out has shape {out.shape}, expected {native.shape}")
        np.copyto(out, native, casting="unsafe")
        return out

    def _corrected_view(self, key: Any, mode: int) -> Any:
        """Return a read-only view of ``key`` with the stored pixels written in.

        The view lies on a private copy-on-write mapping of just the selected
        frames' bytes: writing the stored values copies only the page that
        holds them in each selected frame, never the rest of the pixels, and
        never reaches the file.  (Mapping only that range keeps the kernel's
        memory accounting to the selection, not to a 100 GB file.)  Returns
        None when the file on disk is no longer the one opened; the caller
        then copies from the mapping already open.
        """
        layout = self._layout
        axes, shape = self._image.selection(key)
        (f0, fstep, nf), (r0, rstep, nr), (c0, cstep, nc) = axes
        if not (nf and nr and nc):
            return self._mma[key]
        first = min(f0, f0 + fstep * (nf - 1))
        last = max(f0, f0 + fstep * (nf - 1))
        start = layout.data_offset + first * layout.frame_stride
        end = layout.data_offset + last * layout.frame_stride + layout.bytes_per_image
        base = start - start % mmap.ALLOCATIONGRANULARITY
        try:
            fd = os.open(self.file_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino, info.st_size) != self._identity:
                return None
            private = mmap.mmap(fd, end - base, access=mmap.ACCESS_COPY, offset=base)
        except OSError:
            return None
        finally:
            os.close(fd)
        s0, s1, s2 = self._mma.strides
        frames = np.ndarray(
            (last - first + 1, layout.height, layout.width),
            dtype=self._mma.dtype,
            buffer=private,
            offset=start - base,
            strides=(s0, s1, s2),
        )
        selected = np.arange(f0, f0 + fstep * nf, fstep)
        row = layout.stored_row
        columns = slice(
            layout.stored_column, layout.stored_column + layout.stored_pixels
        )
        if mode == _kernels.PATCH_ZERO:
            frames[selected - first, row, columns] = 0
        else:
            stored = np.ndarray(
                (layout.frames, layout.stored_pixels),
                dtype=self._mma.dtype,
                buffer=self._map,
                offset=layout.stored_offset,
                strides=(layout.stored_stride, layout.byte_depth),
            )
            frames[selected - first, row, columns] = stored[selected]
        view = np.ndarray(
            (nf, nr, nc),
            dtype=self._mma.dtype,
            buffer=private,
            offset=start - base + (f0 - first) * s0 + r0 * s1 + c0 * s2,
            strides=(fstep * s0, rstep * s1, cstep * s2),
        ).reshape(shape)
        view.flags.writeable = False
        return view[()] if not shape else view

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read pixels with NumPy basic indexing; see :meth:`read`."""
        image = self._image
        if image is not None and self._deep_copy_enabled:
            # The common case, kept short: one call into the kernel.
            return image.take(key, self._native_kind, None, self._patch_mode)
        return self.read(key, copy=self._deep_copy_enabled)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
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

    def as_dask_array(self, chunks: Any = "auto", dtype: Any = None) -> Any:
        """Return the stack as a lazy :class:`dask.array.Array`.

        See :func:`dcimg._dask.as_dask_array` for the parameters.
        """
        from dcimg._dask import as_dask_array

        return as_dask_array(self, chunks=chunks, dtype=dtype)

    def to_xarray(self, *, dask: bool = True, **kwargs: Any) -> Any:
        """Return the stack as an :class:`xarray.DataArray` with time stamps.

        See :func:`dcimg._dask.to_xarray` for the parameters.
        """
        from dcimg._dask import to_xarray

        return to_xarray(self, dask=dask, **kwargs)
