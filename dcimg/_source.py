"""Where the bytes of a DCIMG file come from.

This is the one module that knows it.  A :class:`MappedSource` reads a local
file through a read-only memory map; a :class:`RangeSource` reads any other
byte source (object stores, URLs, file objects, ``pread`` on a local path)
through a range reader from :mod:`dcimg._ranges`, fetching just the byte
ranges a selection needs.  Both offer the same small surface to
:class:`dcimg.DCIMGFile`:

- :meth:`Source.parse` fetches and parses the headers (the start of the file,
  and the footer of packed files) into a :class:`~dcimg._layout.Layout`;
- :meth:`Source.take` reads a basic index with the copy kernel
  (:class:`dcimg._kernels.StridedImage`), converted and corrected;
- :meth:`Source.column` gathers one small field of every frame (counters,
  time stamps);
- :meth:`Source.view` returns a zero-copy view where there is a map.

Never silently wrong
--------------------
Every read returns the bytes the file held when it was opened, or raises
:class:`dcimg.DCIMGChangedError` naming the file:

- A map: every copy runs under the kernel's fault guard (a page past the
  end of a truncated file raises ``SIGBUS``, which the guard turns into an
  error), and is *confirmed* afterwards: the last page of a truncated file
  stays mapped with its tail reading as zeros, so the guard alone would let
  those zeros through.  The kernel reads one byte of the page after the
  last byte copied; when it is there the file is still longer than the
  bytes copied.  When it faults or lies past the map (reads near the end
  of the file), :meth:`MappedSource.confirm` looks at the file by path
  (``stat``): same device and inode as opened, and at least as long as the
  bytes copied.  The map keeps reading the inode that was opened, so a file
  replaced by another one (``os.replace``, a new file under the same name)
  goes on reading the old file's bytes, which are what the file held when
  it was opened; a replaced path is therefore no error for a map.
- A range reader on a descriptor or a file object (``pread``, ``open()``,
  ``io.BytesIO``): after every read the file's size now (``fstat``, or a
  seek to the end) must still cover the bytes read.  A pread reader holds
  the descriptor opened, so it too reads the old inode after a
  replacement; one that had to open the path again (a pickled reader)
  compares device and inode with those recorded when it was opened.
- URLs: a short response raises; the object's identity (ETag) is the
  range reader's business (:mod:`dcimg._ranges`).

What is not caught: a file rewritten *in place* (same inode) that is at
least as long again by the time of the check -- bytes read from it while it
was short, or its new bytes, are indistinguishable from a file still being
written.  Writers that replace files (write elsewhere, then rename) are safe.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dcimg import _format, _kernels
from dcimg._layout import Layout
from dcimg._local import open_regular_file
from dcimg._urls import is_url, local_path
from dcimg.errors import DCIMGChangedError, DCIMGFormatError, DCIMGReadError

if TYPE_CHECKING:
    from dcimg._ranges import RangeReader

try:  # POSIX: maps that hold no file descriptor
    from dcimg._mapping import NORMAL, RANDOM, ReadOnlyMap
except ImportError:  # pragma: no cover - Windows
    ReadOnlyMap = None  # type: ignore[assignment,misc]

__all__ = ["MappedSource", "RangeSource", "Source", "open_reader", "open_source"]

# Bytes fetched for the headers in one go: the file header, the session
# header, the block table and the camera block of every file seen fit well
# inside it, so a framed file's headers cost one fetch and a packed file's
# two (its footer follows the frames).
HEADER_FETCH = 64 * 1024
MAP_FETCH = 4096
# Large copies are split across this many threads inside the kernel (which
# releases the GIL); small ones run on the calling thread.
MAX_THREADS = max(1, min(8, os.cpu_count() or 1))


class Source:
    """Bytes of one DCIMG file, read by offset (the interface).

    Attributes
    ----------
    name : str
        The path or URL, for messages.
    size : int
        The file's size in bytes when it was opened.
    layout : Layout or None
        The parsed headers, after :meth:`parse`.
    """

    name: str
    size: int
    layout: Layout | None = None

    def fetch(self, offset: int, length: int) -> bytes:
        """Return at least ``length`` bytes from ``offset`` (fewer at the end)."""
        raise NotImplementedError

    def parse(self) -> Layout:
        """Fetch and parse the headers; make the source ready for reads.

        Returns
        -------
        Layout
            The file's layout.

        Raises
        ------
        dcimg.DCIMGFormatError
            If the file is not DCIMG or its headers are corrupt; the message
            starts with the file's name.
        """
        if self.size == 0:
            raise DCIMGFormatError(
                f"{self.name}: magic: the file is empty (0 bytes), not a DCIMG file",
                "magic",
                self.name,
            )
        try:
            layout = _format.parse_layout(self.size, self.fetch)
        except DCIMGFormatError as exc:
            raise DCIMGFormatError(
                f"{self.name}: {exc}", exc.field, self.name
            ) from None
        self.layout = layout
        self._attach(layout)
        return layout

    def _attach(self, layout: Layout) -> None:
        raise NotImplementedError

    def _parsed(self) -> Layout:
        """Return :attr:`layout`; raise if :meth:`parse` has not run yet."""
        layout = self.layout
        if layout is None:  # pragma: no cover - readers parse on opening
            raise RuntimeError(f"{self.name}: read before the headers were parsed")
        return layout

    def take(
        self, key: Any, kind: int, out: np.ndarray | None, mode: int, threads: int = 0
    ) -> Any:
        """Read a basic index, converted to result kind ``kind``.

        See :meth:`dcimg._kernels.StridedImage.take` (``threads`` bounds the
        copy kernel's threads; 0 leaves it to the source); raises
        :class:`dcimg._kernels.BufferFault` when the bytes are gone (the
        caller turns it into :meth:`changed`'s error).
        """
        raise NotImplementedError

    def changed(self) -> Exception:
        """Describe how the file differs from the one opened."""
        raise NotImplementedError

    def view(self, key: Any, keep_overwritten: bool) -> np.ndarray | None:
        """Return a zero-copy view of ``key``, or None where there is none.

        Parameters
        ----------
        key : index
            A basic index.
        keep_overwritten : bool
            Whether the view may show overwritten pixels as stored.
        """
        return None

    def column(self, offset: int, stride: int, itemsize: int) -> bytes | memoryview:
        """Gather ``itemsize`` bytes at ``offset + i * stride`` for every frame."""
        raise NotImplementedError

    @property
    def raw(self) -> Any:
        """The memory map of the whole file, or None without one."""
        return None

    def identity(self) -> tuple[str, int, int]:
        """``(absolute path or URL, size, modification time in ns)``."""
        raise NotImplementedError

    def reopen(self) -> Source:
        """Return a new source for the same file as it is now."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the bytes (views handed out keep the map alive)."""


#: Frames whose far-apart fields a range reader gathers per call (bounds
#: the per-frame range and buffer objects of one call: see RangeSource.column).
COLUMN_BATCH = 8192

#: Whether reads of the files opened from now on are confirmed after the
#: copy (False only to show that the detection tests fail without it, and
#: to measure what it costs: tools/bench.py).
CONFIRM = True


def _confirmer(ref: Any) -> Any:
    """Return ``confirm(end, faulted)`` for the source that ``ref`` refers to."""

    def confirm(end: int, faulted: bool) -> None:
        source = ref()
        if source is None:  # pragma: no cover - reads hold their source
            raise DCIMGChangedError("the file was closed while it was read")
        source._confirm(end, faulted)

    return confirm


def _map_file(fd: int, size: int) -> Any:
    """Map an open file read-only; the caller may close ``fd`` afterwards."""
    if ReadOnlyMap is not None:
        return ReadOnlyMap(fd, size)
    # Windows: a mapped file cannot be truncated there, and mmap is the
    # only map there is (it keeps a duplicate of the descriptor).
    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)  # pragma: no cover


class MappedSource(Source):
    """A local file read through a read-only shared memory map.

    The map holds no file descriptor (on POSIX): opening costs one
    descriptor for a moment, and any number of open files and views cost
    none.  The file is never written.

    Parameters
    ----------
    path : str
        The file.
    """

    def __init__(self, path: str) -> None:
        self.name = path
        self.path = path
        self._image: _kernels.StridedImage | None = None
        self._footer_values: tuple[int, int] | None = None
        # What the kernel calls to confirm a copy: a function that refers
        # to this source weakly, so that source -> image -> confirm makes
        # no reference cycle (a cycle would keep the map until the next
        # garbage collection, not until the file is closed).
        self.confirm = _confirmer(weakref.ref(self)) if CONFIRM else None
        fd = None
        try:
            fd, info = open_regular_file(path)
            self.size = info.st_size
            self._inode = (info.st_dev, info.st_ino)
            self._mtime_ns = info.st_mtime_ns
            self._ctime_ns = info.st_ctime_ns
            self._map = _map_file(fd, info.st_size) if info.st_size else None
        except OSError as exc:
            if exc.errno == getattr(os, "EMFILE", None):
                raise OSError(
                    exc.errno,
                    f"{path}: too many open files (the process limit is `ulimit -n`)",
                ) from exc
            raise
        finally:
            if fd is not None:
                os.close(fd)

    def changed(self) -> DCIMGChangedError:
        """Describe how the file differs from the one opened."""
        try:
            info = os.stat(self.path)
        except OSError:
            return DCIMGChangedError(
                f"{self.path}: the file was removed since it was opened "
                f"({self.size} bytes) and its pages could not be read",
                self.path,
            )
        if (info.st_dev, info.st_ino) != self._inode:
            return DCIMGChangedError(
                f"{self.path}: the file was replaced since it was opened "
                f"({self.size} bytes) and its pages could not be read",
                self.path,
            )
        return DCIMGChangedError(
            f"{self.path}: file changed/shrank since it was opened: "
            f"{info.st_size} bytes, was {self.size}; open it again "
            "(or call refresh()) to read what it holds now",
            self.path,
        )

    def _confirm(self, end: int, faulted: bool) -> None:
        """Check that the file opened still holds bytes ``[0, end)``.

        Called by the kernel after a copy it could not confirm by itself:
        the page after the bytes copied faulted (``faulted``: the file
        shrank to less than that page) or lies past the map (reads near
        the end of the file).

        Raises
        ------
        dcimg.DCIMGChangedError
            If the file is now shorter than ``end``, or, when the path no
            longer names the file opened (removed or replaced), if the probe
            faulted: the inode mapped was truncated, by how much is unknown.
        """
        if not CONFIRM:
            return
        try:
            info = os.stat(self.path)
        except OSError:
            info = None
        if info is None or (info.st_dev, info.st_ino) != self._inode:
            # The map still reads the inode opened, which a new file under
            # its name (or none) does not change (see the module notes) --
            # unless that inode itself was cut, as a faulted probe says.
            if faulted:
                raise self.changed()
            return
        if info.st_size < end:
            raise self.changed()
        if self._footer_values is not None:
            self._copy_footer_values()

    def _copy_footer_values(self) -> None:
        """Give the kernel a copy of a packed file's stored values, once.

        Every read that restores the overwritten pixels of a packed file
        reads its footer, in the file's last page: each would need a
        ``stat`` to be confirmed (a small read would cost twice as much).
        The copy is taken the first time, confirmed like any read, and the
        kernel reads it from then on -- what the file held when opened.
        """
        footer = self._footer_values
        self._footer_values = None
        image = self._image
        if image is None or footer is None:
            return
        offset, length = footer
        try:
            values = _kernels.gather(self._map, offset, 0, 1, length)
            info = os.stat(self.path)
        except (_kernels.BufferFault, OSError):
            return  # reads go on confirming each time (and raise if cut)
        if (
            info.st_dev,
            info.st_ino,
        ) == self._inode and info.st_size >= offset + length:
            image.use_values(values)

    def fetch(self, offset: int, length: int) -> bytes:
        """Return the bytes at ``offset`` (a page or more)."""
        # A map costs no request: read a page ahead, not HEADER_FETCH.
        length = max(0, min(max(length, MAP_FETCH), self.size - offset))
        try:
            return _kernels.gather(self._map, offset, 0, 1, length, self.confirm)
        except _kernels.BufferFault:
            raise self.changed() from None

    def _attach(self, layout: Layout) -> None:
        stored = None
        self._footer_values = None
        if layout.stored_bytes:
            stored = (
                layout.stored_row,
                layout.stored_column,
                layout.stored_pixels,
                layout.stored_offset,
                layout.stored_stride,
            )
            pixels_end = layout.data_offset + layout.frames * layout.frame_stride
            if layout.frames and layout.stored_offset >= pixels_end:
                # A packed file keeps them in its footer, in the file's last
                # page(s): see confirm().
                self._footer_values = (
                    layout.stored_offset,
                    (layout.frames - 1) * layout.stored_stride + layout.stored_bytes,
                )
        self._image = image = _kernels.StridedImage(
            self._map,
            layout.data_offset,
            (layout.frames, layout.height, layout.width),
            (layout.frame_stride, layout.bytes_per_row, layout.byte_depth),
            layout.byte_depth,
            stored,
            max_threads=MAX_THREADS,
            confirm=self.confirm,
            stored_frames=layout.stored_frames,
        )
        # The kernel's own method: no Python frame between the caller and
        # the copy on the hot path.
        self.take = image.take  # type: ignore[method-assign]

    def take(
        self, key: Any, kind: int, out: np.ndarray | None, mode: int, threads: int = 0
    ) -> Any:
        """Read a basic index with the copy kernel (see :class:`Source`)."""
        return self._strided().take(key, kind, out, mode, threads)

    def view(self, key: Any, keep_overwritten: bool) -> np.ndarray | None:
        """Return a read-only view of the map, or None (see :class:`Source`)."""
        return self._strided().view(key, keep_overwritten)

    def _strided(self) -> _kernels.StridedImage:
        """Return the kernel's image of the file; raise before :meth:`parse`."""
        image = self._image
        if image is None:  # pragma: no cover - readers parse on opening
            raise RuntimeError(f"{self.name}: read before the headers were parsed")
        return image

    def column(self, offset: int, stride: int, itemsize: int) -> bytes:
        """Gather one field of every frame (see :class:`Source`)."""
        frames = self.layout.stamped_frames if self.layout is not None else 0
        file_map = self._map
        # One small field per page or more: read just those pages, not the
        # pixels around them that read-ahead would bring in.
        spread = (
            file_map if stride > mmap.PAGESIZE and ReadOnlyMap is not None else None
        )
        if spread is not None:
            spread.advise(offset, frames * stride, RANDOM)
        try:
            return _kernels.gather(
                file_map, offset, stride, frames, itemsize, self.confirm
            )
        except _kernels.BufferFault:
            raise self.changed() from None
        finally:
            if spread is not None:
                spread.advise(offset, frames * stride, NORMAL)

    @property
    def raw(self) -> Any:
        """The read-only map of the whole file."""
        return self._map

    def identity(self) -> tuple[str, int, int]:
        """``(absolute path, size, modification time in ns)`` when opened."""
        return (os.path.abspath(self.path), self.size, self._mtime_ns)

    def reopen(self) -> MappedSource:
        """Map the same path again (it must still be the same file).

        Raises
        ------
        dcimg.DCIMGChangedError
            If the path now holds another file.
        """
        source = MappedSource(self.path)
        if source._inode != self._inode:
            source.close()
            raise DCIMGChangedError(
                f"{self.path}: the file was replaced since it was opened; "
                "open it again",
                self.path,
            )
        return source

    def close(self) -> None:
        """Let go of the map.

        Nothing is torn down here: the map is unmapped when the last object
        that uses it is gone -- this source, the views handed out, and any
        read still running on another thread (which holds this source), so
        closing or refreshing never pulls the bytes from under a read.
        """


class RangeSource(Source):
    """Any other byte source, read through a range reader.

    Headers cost one request (two for packed files); a read fetches just
    the rows of the selected frames (and their stored pixels), in few,
    merged, size-capped requests, into a window buffer that the copy kernel
    then reads like a map.  There are no views: every read is a copy.

    Parameters
    ----------
    reader : dcimg._ranges.RangeReader
        The open reader.
    """

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.name = reader.name
        self.size = reader.size
        # Local reads (pread, file objects) cost little per request: large
        # frames go straight into the result, one request each.  Remote ones
        # (object stores, HTTP) cost a round trip per request: every whole
        # frame goes into the result through merged, capped requests, several
        # in flight (one copy out of each request, against the network).
        from dcimg._remote import FsspecReader

        self._remote = isinstance(reader, FsspecReader)
        self.direct_frame_bytes = 0 if self._remote else DIRECT_FRAME_BYTES
        self._mtime_ns = 0
        self._inode: tuple[int, int] | None = None
        path = getattr(reader, "path", None)
        if isinstance(path, str) and not self._remote:  # pread on a local file
            try:
                info = os.stat(path)
            except OSError:
                pass
            else:
                self._mtime_ns = info.st_mtime_ns
                self._inode = (info.st_dev, info.st_ino)

    def changed(self) -> Exception:
        """Describe how the file or object differs from the one opened."""
        try:
            now = self.reader.refresh_size()
        except Exception as exc:  # noqa: BLE001 - reported in the message
            return DCIMGChangedError(
                f"{self.name}: the file could not be read any more ({exc})",
                self.name,
            )
        return DCIMGChangedError(
            f"{self.name}: file changed/shrank since it was opened: {now} bytes, "
            f"was {self.size}; open it again to read what it holds now",
            self.name,
        )

    def _read_into(
        self,
        ranges: list[tuple[int, int]],
        buffers: list[Any],
        max_gap: int | None = None,
    ) -> None:
        for attempt in range(3):
            try:
                self.reader.readinto_ranges(ranges, buffers, max_gap=max_gap)
                break
            except DCIMGChangedError:
                raise  # the reader saw another object: no retry can help
            except DCIMGReadError as exc:
                try:
                    now = self.reader.refresh_size()
                except Exception:  # noqa: BLE001 - the read's own error says more
                    now = None
                if now is None:
                    raise
                if now < self.size:
                    raise self.changed() from exc
                if attempt == 2 or not ranges or now < max(s for _, s in ranges):
                    raise
                # The reader is shared with the sources of other versions
                # (see reopen), and a size looked up by one of them may be
                # older than this version's: looked up again, it is current.
        if self._remote or not CONFIRM or not ranges:
            return
        # Confirm (see the module notes): a read racing a truncation can
        # copy the zeroed tail of the file's last page and still return
        # every byte asked for; the size now says whether that can be.
        end = max(stop for _, stop in ranges)
        if self.reader.refresh_size() < end:
            raise self.changed()

    def fetch(self, offset: int, length: int) -> bytes:
        """Return the bytes at ``offset`` (one request, read ahead)."""
        length = max(0, min(max(length, HEADER_FETCH), self.size - offset))
        out = bytearray(length)
        if length:
            self._read_into([(offset, offset + length)], [out])
        return bytes(out)

    def _attach(self, layout: Layout) -> None:
        self._shape = (layout.frames, layout.height, layout.width)
        self._depth = layout.byte_depth

    def take(
        self, key: Any, kind: int, out: np.ndarray | None, mode: int, threads: int = 0
    ) -> Any:
        """Fetch what ``key`` needs, then copy it with the kernel.

        ``threads`` bounds the copy kernel only: the requests run on the
        reader's own threads, which mostly wait for the storage.
        """
        layout = self._parsed()
        spans, result_shape = _kernels.select(key, self._shape)
        (f0, fstep, nf), (r0, rstep, nr), (c0, cstep, nc) = spans
        if out is None:
            dtype = np.dtype(_RESULT_DTYPES[kind])
            result = np.empty(result_shape, dtype)
        else:
            result = out
            if tuple(out.shape) != result_shape:
                raise ValueError(f"out has shape {out.shape}, expected {result_shape}")
        if not (nf and nr and nc):
            return result[()] if out is None and not result_shape else result
        block = result.reshape((nf, nr, nc))
        if (
            _RESULT_DTYPES[kind] == ("uint16" if layout.byte_depth == 2 else "uint8")
            and (r0, rstep, nr, c0, cstep, nc)
            == (0, 1, layout.height, 0, 1, layout.width)
            and layout.bytes_per_row == layout.width * layout.byte_depth
            and layout.bytes_per_image >= self.direct_frame_bytes
        ):
            # Whole, unpadded, large frames without conversion: each goes
            # straight from its request into the result (no window).
            self._frames_into(block, [f0 + fstep * i for i in range(nf)], mode)
            return result[()] if out is None and not result_shape else result
        rows = (min(r0, r0 + rstep * (nr - 1)), max(r0, r0 + rstep * (nr - 1)))
        span = (rows[1] - rows[0] + 1) * layout.bytes_per_row
        stored_row = layout.stored_row - rows[0]
        stored = (
            mode != _kernels.LEAVE
            and layout.stored_bytes
            and 0 <= stored_row < rows[1] - rows[0] + 1
        )
        per_frame = span + (layout.stored_bytes if stored else 0)
        batch = max(1, WINDOW_BYTES // per_frame)
        row_key = _as_slice(r0 - rows[0], rstep, nr)
        col_key = _as_slice(c0, cstep, nc)
        for i0 in range(0, nf, batch):
            i1 = min(nf, i0 + batch)
            frames = sorted(f0 + fstep * i for i in range(i0, i1))
            n = len(frames)
            window = np.empty(n * per_frame, np.uint8)
            ranges = []
            buffers = []
            for j, frame in enumerate(frames):
                start = layout.data_offset + frame * layout.frame_stride
                start += rows[0] * layout.bytes_per_row
                ranges.append((start, start + span))
                buffers.append(window[j * span : (j + 1) * span])
            values = None
            # The frames (sorted) whose stored values are in the file: the
            # last frame's may have been cut off with its trailer.
            valued = n
            if stored:
                values = n * span
                valued = sum(frame < layout.stored_frames for frame in frames)
                for j, frame in enumerate(frames[:valued]):
                    start = layout.stored_offset + frame * layout.stored_stride
                    ranges.append((start, start + layout.stored_bytes))
                    at = values + j * layout.stored_bytes
                    buffers.append(window[at : at + layout.stored_bytes])
            self._read_into(ranges, buffers)
            image = _kernels.StridedImage(
                window,
                0,
                (n, rows[1] - rows[0] + 1, layout.width),
                (span, layout.bytes_per_row, layout.byte_depth),
                layout.byte_depth,
                None
                if values is None
                else (
                    stored_row,
                    layout.stored_column,
                    layout.stored_pixels,
                    values,
                    layout.stored_bytes,
                ),
                max_threads=MAX_THREADS,
                stored_frames=valued,
            )
            frame_key = slice(0, n) if fstep > 0 else slice(n - 1, None, -1)
            image.take((frame_key, row_key, col_key), kind, block[i0:i1], mode, threads)
        return result[()] if out is None and not result_shape else result

    def _frames_into(self, block: np.ndarray, frames: list[int], mode: int) -> None:
        """Read whole frames into ``block`` (one per frame), then fix them.

        The stored pixels are fetched in the same call, so that a framed
        file's (which follow each frame) ride in the frames' own requests.
        """
        layout = self._parsed()
        size = layout.bytes_per_image
        ranges = []
        for frame in frames:
            start = layout.data_offset + frame * layout.frame_stride
            ranges.append((start, start + size))
        buffers = [block[i].reshape(-1).view(np.uint8) for i in range(len(frames))]
        restore = mode == _kernels.RESTORE and layout.stored_bytes
        # Frames whose stored values are in the file (not the last frame of
        # a file cut inside its trailer: its pixels stay as stored).
        valued = [i for i, frame in enumerate(frames) if frame < layout.stored_frames]
        if restore:
            values = np.empty((len(valued), layout.stored_bytes), np.uint8)
            for i in valued:
                start = layout.stored_offset + frames[i] * layout.stored_stride
                ranges.append((start, start + layout.stored_bytes))
            buffers.extend(values)
        # Merging frames with their neighbours (and a framed file's stored
        # pixels) saves requests; readers that cannot read a merged request
        # in place would copy it, so they read every frame on its own.
        merge = self._remote or self.reader.vectored
        self._read_into(ranges, buffers, max_gap=None if merge else 0)
        if mode == _kernels.LEAVE or not layout.stored_bytes:
            return
        row, first = layout.stored_row, layout.stored_column
        columns = slice(first, first + layout.stored_pixels)
        if restore:
            block[valued, row, columns] = values.view(block.dtype)
        else:
            block[:, row, columns] = 0

    def column(self, offset: int, stride: int, itemsize: int) -> memoryview:
        """Gather one field of every frame in few requests (see :class:`Source`).

        Fields the reader would join into one request anyway (the gaps
        between them no longer than its ``max_gap``) are read as spans of
        whole strides, a request's size at a time, and picked out with NumPy;
        fields far apart are read one range each, a batch of frames at a
        time. Either way the memory is the result and one span or batch,
        never Python objects for every frame (a range and a buffer cost
        about 950 bytes a frame: 2 GB for a file of two million frames).
        """
        frames = self.layout.stamped_frames if self.layout is not None else 0
        out = np.empty((frames, itemsize), np.uint8)
        reader = self.reader
        if stride - itemsize <= reader.max_gap:
            per = max(1, reader.max_request // stride)
            for first in range(0, frames, per):
                count = min(per, frames - first)
                start = offset + first * stride
                span = np.empty((count - 1) * stride + itemsize, np.uint8)
                self._read_into([(start, start + span.size)], [span])
                out[first : first + count] = np.lib.stride_tricks.as_strided(
                    span, (count, itemsize), (stride, 1), writeable=False
                )
        else:
            for first in range(0, frames, COLUMN_BATCH):
                last = min(first + COLUMN_BATCH, frames)
                ranges = [(offset + i * stride, offset + i * stride + itemsize)
                          for i in range(first, last)]  # fmt: skip
                self._read_into(ranges, list(out[first:last]))
        return out.reshape(-1).data

    def identity(self) -> tuple[str, int, int]:
        """``(name, size, modification time in ns)``; 0 when not known (URLs)."""
        path = getattr(self.reader, "path", None)
        if self._mtime_ns and isinstance(path, str):
            return (os.path.abspath(path), self.size, self._mtime_ns)
        # URLs: a number derived from the ETag, version or Last-Modified.
        return (self.name, self.size, getattr(self.reader, "version_stamp", 0))

    def reopen(self) -> RangeSource:
        """Read the same file or object again, with its size now.

        The new source shares the reader (its descriptor or file object):
        this one stays usable for reads still running.

        Raises
        ------
        dcimg.DCIMGChangedError
            If a local file's path now names another file (the reader's
            descriptor would go on reading the old one).
        """
        # renew: a URL's later reads ask for the object as it is now (its
        # new ETag), the one whose header the refreshed file parses.
        self.reader.refresh_size(renew=True)
        source = RangeSource(self.reader)
        if self._inode is not None and source._inode != self._inode:
            raise DCIMGChangedError(
                f"{self.name}: the file was replaced since it was opened; "
                "open it again",
                self.name,
            )
        return source

    def close(self) -> None:
        """Close the reader (shared with sources made by :meth:`reopen`)."""
        self.reader.close()


def _as_slice(start: int, step: int, count: int) -> slice:
    """Return the slice that selects ``count`` items from ``start`` by ``step``."""
    stop = start + step * count
    return slice(start, stop if stop >= 0 else None, step)


# Result types by the kernel's kind code.
_RESULT_DTYPES = {code: name for name, code in _kernels.DST_KINDS.items()}
# Bytes a range source fetches into one window before copying out of it.
WINDOW_BYTES = 64 * 1024 * 1024
# Frames from this size on are read straight into the result, one request
# (or more) each, rather than through a window.
DIRECT_FRAME_BYTES = 256 * 1024


def open_source(
    source: Any, *, mmap: bool = True, storage_options: Any = None
) -> Source:
    """Return the byte source for a path, a URL or a file object.

    Parameters
    ----------
    source : str, os.PathLike or file object
        A local path (memory-mapped unless ``mmap=False``), an fsspec URL,
        or a binary file object with ``seek`` and ``read``.
    mmap : bool, default True
        Map local files; False reads them with ``pread`` instead.
    storage_options : dict, optional
        Options of the URL's file system (credentials, endpoint, ...).

    Returns
    -------
    Source
        A :class:`MappedSource` or a :class:`RangeSource`.
    """
    path = None if storage_options else local_path(source)
    if path is not None and mmap:
        return MappedSource(path)
    return RangeSource(open_reader(source, storage_options))


def open_reader(
    source: Any,
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_gap: int | None = None,
    max_request: int | None = None,
    max_concurrency: int | None = None,
    timeout: float | None = 120.0,
) -> RangeReader:
    """Open the range reader for a file object, a URL or a local path.

    Parameters
    ----------
    source : file object, str or os.PathLike
        An object with ``seek`` and ``read`` gives a
        :class:`~dcimg._ranges.FileObjectReader`; a URL (see
        :func:`dcimg._urls.is_url`) a :class:`~dcimg._remote.FsspecReader`,
        except a plain ``file://`` URL without `storage_options`, which,
        like a local path, gives a
        :class:`~dcimg._ranges.PreadReader`.
    storage_options : mapping, optional
        File-system options for URLs (credentials, endpoint, ...); an error
        for other sources.
    max_gap, max_request, max_concurrency : int, optional
        The reader's limits (see :class:`RangeReader`); its defaults when
        ``None``. A file object's reader runs one request at a time.
    timeout : float, optional
        Seconds a request of a URL may take (see :class:`FsspecReader`).

    Returns
    -------
    RangeReader
        The open reader; close it when done.

    Raises
    ------
    TypeError
        If `source` is none of these.
    ValueError
        If `storage_options` are given for a source that is not a URL.
    ImportError
        If a URL needs fsspec or a protocol package that is missing.
    FileNotFoundError
        If the file or object does not exist.
    """
    # Each reader's module is imported only when it is needed: asyncio and
    # fsspec are not, for local files.
    from dcimg._ranges import FileObjectReader, PreadReader

    if hasattr(source, "read") and hasattr(source, "seek"):
        if storage_options:
            raise ValueError("storage_options apply to URLs, not to file objects")
        return FileObjectReader(source, max_gap=max_gap, max_request=max_request)
    if isinstance(source, bytes | os.PathLike):
        source = os.fsdecode(os.fspath(source))
    if not isinstance(source, str):
        raise TypeError(
            "expected a path, a URL or a binary file object with seek() and "
            f"read(), got {type(source).__name__}"
        )
    if is_url(source) and (storage_options or local_path(source) is None):
        from dcimg._remote import FsspecReader

        return FsspecReader(
            source,
            storage_options,
            timeout=timeout,
            max_gap=max_gap,
            max_request=max_request,
            max_concurrency=max_concurrency,
        )
    if storage_options:
        raise ValueError(f"{source}: storage_options apply to URLs, not to local paths")
    return PreadReader(
        local_path(source),  # type: ignore[arg-type]
        max_gap=max_gap,
        max_request=max_request,
        max_concurrency=max_concurrency,
    )
