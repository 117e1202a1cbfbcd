"""Byte ranges of a DCIMG file read without a memory map.

A memory map serves any byte of a local file at memory speed. Everything
else — objects in S3, Google Cloud Storage or Azure, files behind HTTP, file
objects, and local files opened with ``mmap=False`` — is read here, as lists
of byte ranges:

- :func:`plan_requests` turns the ranges a selection needs into few requests:
  it merges neighbours separated by small gaps and caps the size of each
  request, so that a run of consecutive frames costs one or a few requests
  and the small trailers of small frames come in a handful, while the
  trailers of large frames are fetched alone, without the pixels between
  them.
- a :class:`RangeReader` issues the planned requests, concurrently when
  there are several, and hands back exactly the bytes asked for, in the
  order asked for (:meth:`RangeReader.read_ranges`) or straight into the
  caller's buffers (:meth:`RangeReader.readinto_ranges`). Its subclasses
  here are :class:`FileObjectReader` (a binary file object) and
  :class:`PreadReader` (a local file through ``os.pread``, one descriptor);
  :class:`dcimg._remote.FsspecReader` (any fsspec URL) has a module of its
  own, so that local reads never import asyncio and fsspec.
- :func:`dcimg._source.open_reader` picks the reader for a source.

Every reader counts the requests it made and the bytes it received
(:attr:`RangeReader.requests`, :attr:`RangeReader.bytes_read`), checks that
each request returned exactly the bytes asked for, and names its source
(without credentials) in every error.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, NamedTuple

from dcimg._local import open_regular_file
from dcimg._urls import (
    display_url,
)
from dcimg.errors import (
    DCIMGReadError,
)

__all__ = [
    "FileObjectReader",
    "PreadReader",
    "RangeReader",
    "RequestPlan",
    "plan_requests",
]

#: A byte range ``(start, stop)``, half-open like a slice.
Range = tuple[int, int]
#: Where each request of a batch may be read into: a view, a list of views
#: (a vectored read) or None (the reader allocates).
Targets = list[memoryview | list[memoryview] | None]
#: What receives each request's bytes: ``sink(index of the request, data)``.
Sink = Callable[[int, Any], None]


class RequestPlan(NamedTuple):
    """The requests that fetch a list of byte ranges, and how to cut them.

    Attributes
    ----------
    requests : list of (int, int)
        The ``(start, stop)`` byte ranges to request, sorted and disjoint
        (the pieces of a stretch longer than the cap follow back to back).
    pieces : list of tuple of (int, int, int)
        One entry per range asked for, in the order asked for: the pieces
        ``(request index, offset in that request, length)`` whose bytes,
        concatenated, are the range. Empty ranges have no pieces.
    """

    requests: list[Range]
    pieces: list[tuple[tuple[int, int, int], ...]]


def plan_requests(
    ranges: Sequence[Range], *, max_gap: int, max_request: int
) -> RequestPlan:
    """Plan the fewest requests that fetch `ranges` under the merge rule.

    The rule: a request never holds more than `max_request` bytes, and never
    spans a gap (bytes that no range needs) longer than `max_gap`. Within it
    the plan is greedy from the lowest offset — each request reaches as far
    as the rule lets it — which makes the number of requests minimal.
    Overlapping and repeated ranges are fetched once.

    Parameters
    ----------
    ranges : sequence of (int, int)
        Half-open byte ranges ``(start, stop)`` with ``0 <= start <= stop``,
        in any order.
    max_gap : int
        Longest run of unneeded bytes a request may read through, to save a
        request (0: only touching or overlapping ranges are merged).
    max_request : int
        Largest request, in bytes (at least 1); longer stretches are split.

    Returns
    -------
    RequestPlan
        The requests, and for every range the pieces of them that make it up.

    Raises
    ------
    ValueError
        If a range is not a pair of integers with ``0 <= start <= stop``, or
        `max_gap` is negative, or `max_request` is less than 1.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be at least 0, got {max_gap}")
    if max_request < 1:
        raise ValueError(f"max_request must be at least 1, got {max_request}")
    checked = [_check_range(r) for r in ranges]
    spans = sorted((start, stop) for start, stop in checked if stop > start)

    requests: list[Range] = []
    open_start = open_stop = -1  # the request being built; -1: none yet
    for start, stop in spans:
        if stop <= open_stop:
            continue  # inside what is already requested
        # Continue the open request if the gap to this range is short enough
        # and the request still has room; reaching as far as allowed never
        # costs an extra request later.
        if (
            open_stop >= 0
            and start - open_stop <= max_gap
            and max(start, open_stop) < open_start + max_request
        ):
            open_stop = min(stop, open_start + max_request)
        else:
            if open_stop >= 0:
                requests.append((open_start, open_stop))
            start = max(start, open_stop)
            open_start, open_stop = start, min(stop, start + max_request)
        # What the cap cut off continues in new requests, back to back.
        while open_stop < stop:
            requests.append((open_start, open_stop))
            open_start, open_stop = open_stop, min(stop, open_stop + max_request)
    if open_stop >= 0:
        requests.append((open_start, open_stop))

    starts = [start for start, _ in requests]
    pieces: list[tuple[tuple[int, int, int], ...]] = []
    for start, stop in checked:
        parts = []
        k = bisect.bisect_right(starts, start) - 1
        position = start
        while position < stop:
            request_start, request_stop = requests[k]
            end = min(stop, request_stop)
            parts.append((k, position - request_start, end - position))
            position = end
            k += 1
        pieces.append(tuple(parts))
    return RequestPlan(requests, pieces)


def _check_range(item: Any) -> Range:
    """Return ``item`` as a pair of ints ``(start, stop)``; ValueError if bad."""
    try:
        start, stop = item
        start, stop = int(start), int(stop)
    except (TypeError, ValueError):
        raise ValueError(
            f"a byte range must be a pair of integers (start, stop), got {item!r}"
        ) from None
    if not 0 <= start <= stop:
        raise ValueError(
            f"a byte range needs 0 <= start <= stop, got ({start}, {stop})"
        )
    return start, stop


# Most buffers one vectored read takes (IOV_MAX; POSIX guarantees 16, Linux
# and macOS allow 1024).
try:
    _IOV_MAX = max(16, os.sysconf("SC_IOV_MAX"))
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _IOV_MAX = 16


def _scatter_list(
    views: list[memoryview], users: list[tuple[int, int, int, int]], length: int
) -> list[memoryview] | None:
    """Return the buffers to read one merged request in place, or None.

    ``users`` are the pieces of ranges the request serves: ``(range, offset
    in range, offset in request, length)``.  Each piece goes to its range's
    own buffer and each gap between pieces to one scratch buffer, so a
    vectored read fills the results with no copy.  None (read through a
    temporary buffer instead) when pieces overlap or there are more pieces
    than one system call takes.
    """
    pieces = sorted(users, key=lambda u: u[2])
    gaps = []
    at = 0
    for _, _, offset, size in pieces:
        if offset < at:
            return None  # overlapping ranges share bytes
        gaps.append(offset - at)
        at = offset + size
    gaps.append(length - at)
    if len(pieces) + sum(1 for g in gaps if g) > _IOV_MAX:
        return None
    scratch = memoryview(bytearray(max(gaps)))
    buffers = []
    for (i, into, _, size), gap in zip(pieces, gaps, strict=False):
        if gap:
            buffers.append(scratch[:gap])
        buffers.append(views[i][into : into + size])
    if gaps[-1]:
        buffers.append(scratch[: gaps[-1]])
    return buffers


def _writable(buffer: Any, length: int, index: int) -> memoryview:
    """Return a flat, writable byte view of `buffer` holding `length` bytes."""
    view = memoryview(buffer)
    if view.readonly:
        raise ValueError(f"buffer {index} is read-only")
    if not view.c_contiguous:
        raise ValueError(f"buffer {index} is not C-contiguous")
    view = view.cast("B")
    if view.nbytes != length:
        raise ValueError(
            f"buffer {index} holds {view.nbytes} bytes, its range {length}"
        )
    return view


class RangeReader:
    """Reads byte ranges of one file or object; the base of the readers.

    Subclasses provide :meth:`_read_one` (and may replace :meth:`_run`, the
    way a batch of requests is issued). Requests run concurrently on up to
    :attr:`max_concurrency` threads.

    Parameters
    ----------
    name : str
        The file or URL, for messages (without credentials).
    size : int
        The size of the file or object in bytes.
    max_gap, max_request, max_concurrency : int, optional
        The planning and concurrency limits (see the attributes); the
        subclass's defaults when ``None``.

    Attributes
    ----------
    name : str
        The file or URL, for messages; never holds credentials.
    size : int
        Size of the file or object in bytes, as found when it was opened (or
        by the last :meth:`refresh_size`).
    requests : int
        Number of read requests made so far (one per planned request).
    bytes_read : int
        Number of bytes those requests returned.
    max_gap : int
        Longest run of unneeded bytes a request reads through to save a
        request (see :func:`plan_requests`).
    max_request : int
        Largest request in bytes.
    max_concurrency : int
        Largest number of requests in flight at once.
    """

    #: Default of :attr:`max_gap` for this kind of reader.
    default_max_gap = 64 * 1024
    #: Default of :attr:`max_request` for this kind of reader.
    default_max_request = 16 * 1024 * 1024
    #: Default of :attr:`max_concurrency` for this kind of reader.
    default_max_concurrency = 1
    #: Whether :meth:`_read_one` takes a list of buffers for one request
    #: (a vectored read: merged ranges land in their own buffers, the gaps
    #: between them in scratch space, with no copy afterwards).
    vectored = False

    def __init__(
        self,
        name: str,
        size: int,
        *,
        max_gap: int | None = None,
        max_request: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.name = name
        self.size = int(size)
        self.max_gap = self.default_max_gap if max_gap is None else int(max_gap)
        self.max_request = (
            self.default_max_request if max_request is None else int(max_request)
        )
        self.max_concurrency = (
            self.default_max_concurrency
            if max_concurrency is None
            else int(max_concurrency)
        )
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be at least 0, got {self.max_gap}")
        if self.max_request < 1:
            raise ValueError(f"max_request must be at least 1, got {self.max_request}")
        if self.max_concurrency < 1:
            raise ValueError(
                f"max_concurrency must be at least 1, got {self.max_concurrency}"
            )
        self.requests = 0
        self.bytes_read = 0
        self.closed = False
        self._count_lock = threading.Lock()

    # -- public interface -------------------------------------------------

    def read_ranges(self, ranges: Sequence[Range]) -> list[memoryview]:
        """Return the bytes of every range, in the order asked for.

        Parameters
        ----------
        ranges : sequence of (int, int)
            Half-open byte ranges ``(start, stop)`` within the object.

        Returns
        -------
        list of memoryview
            One read-only byte view per range, exactly ``stop - start`` long.
            A view may share memory with its neighbours' (they came in one
            request); it stays valid as long as it is referenced.

        Raises
        ------
        DCIMGReadError
            If a range reaches past the end of the object, a request fails or
            returns a different number of bytes than asked for.
        FileNotFoundError
            If the object disappeared.
        ValueError
            If a range is not ``0 <= start <= stop``, or the reader is closed.
        """
        plan = self._plan(ranges)
        received: list[Any] = [None] * len(plan.requests)

        def keep(index: int, data: Any) -> None:
            received[index] = data

        self._run(plan.requests, [None] * len(plan.requests), keep)
        out = []
        for parts in plan.pieces:
            if len(parts) == 1:
                k, offset, length = parts[0]
                view = memoryview(received[k]).cast("B")
                out.append(view[offset : offset + length].toreadonly())
            else:
                joined = b"".join(
                    memoryview(received[k]).cast("B")[offset : offset + length]
                    for k, offset, length in parts
                )
                out.append(memoryview(joined))
        return out

    def readinto_ranges(
        self,
        ranges: Sequence[Range],
        buffers: Sequence[Any],
        *,
        max_gap: int | None = None,
    ) -> None:
        """Read every range into its buffer.

        A request that serves a single range (the usual case for large reads)
        is read straight into that range's buffer where the source allows it
        (local files, file objects with ``readinto``); merged requests go
        through a temporary buffer.

        Parameters
        ----------
        ranges : sequence of (int, int)
            Half-open byte ranges ``(start, stop)`` within the object.
        buffers : sequence of writable buffers
            One per range, C-contiguous, exactly ``stop - start`` bytes long
            (for example NumPy arrays, ``bytearray`` or ``memoryview``).
        max_gap : int, optional
            Instead of :attr:`max_gap` for this call: 0 keeps large ranges
            apart, so that each goes straight into its buffer.

        Raises
        ------
        DCIMGReadError
            As :meth:`read_ranges`.
        ValueError
            If the buffers do not match the ranges, or are read-only.
        """
        if len(buffers) != len(ranges):
            raise ValueError(
                f"{len(ranges)} ranges but {len(buffers)} buffers were given"
            )
        plan = self._plan(ranges, max_gap)
        views = [
            _writable(buffer, stop - start, i)
            for i, (buffer, (start, stop)) in enumerate(
                zip(buffers, (_check_range(r) for r in ranges), strict=True)
            )
        ]
        # Which ranges each request serves: (range, offset in range, offset in
        # request, length).
        served: list[list[tuple[int, int, int, int]]] = [[] for _ in plan.requests]
        for i, parts in enumerate(plan.pieces):
            at = 0
            for k, offset, length in parts:
                served[k].append((i, at, offset, length))
                at += length
        outs: Targets = []
        for (start, stop), users in zip(plan.requests, served, strict=True):
            if len(users) == 1 and users[0][3] == stop - start:
                i, at, _, length = users[0]
                outs.append(views[i][at : at + length])
            elif self.vectored:
                outs.append(_scatter_list(views, users, stop - start))
            else:
                outs.append(None)

        def scatter(index: int, data: Any) -> None:
            if outs[index] is not None:
                if data is not outs[index]:
                    outs[index][:] = data  # type: ignore[index]
                return
            source = memoryview(data).cast("B")
            for i, at, offset, length in served[index]:
                views[i][at : at + length] = source[offset : offset + length]

        self._run(plan.requests, outs, scatter)

    def read(self, start: int, stop: int) -> memoryview:
        """Return the bytes ``[start, stop)``; see :meth:`read_ranges`.

        Parameters
        ----------
        start, stop : int
            The half-open byte range.

        Returns
        -------
        memoryview
            ``stop - start`` bytes.
        """
        return self.read_ranges([(start, stop)])[0]

    def refresh_size(self, *, renew: bool = False) -> int:
        """Look up the size of the file or object again, and return it.

        Parameters
        ----------
        renew : bool, default False
            Also take the object's identity as it is now, where the reader
            records one (URLs); local files and file objects have none.

        Returns
        -------
        int
            The new :attr:`size`.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the file descriptor, file system or file object; idempotent."""
        self.closed = True

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed " if self.closed else ""
        return f"<{state}{type(self).__name__} {self.name!r} size={self.size}>"

    # -- machinery --------------------------------------------------------

    def _plan(self, ranges: Sequence[Range], max_gap: int | None = None) -> RequestPlan:
        """Check the ranges against the reader's state and size, and plan them."""
        if self.closed:
            raise ValueError(f"{self.name}: read from a closed reader")
        plan = plan_requests(
            ranges,
            max_gap=self.max_gap if max_gap is None else max_gap,
            max_request=self.max_request,
        )
        if plan.requests and plan.requests[-1][1] > self.size:
            worst = max((_check_range(r) for r in ranges), key=lambda r: r[1])
            raise DCIMGReadError(
                f"{self.name}: bytes [{worst[0]}, {worst[1]}) were asked for but "
                f"the object holds only {self.size} bytes",
                self.name,
            )
        return plan

    def _count(self, nbytes: int) -> None:
        with self._count_lock:
            self.requests += 1
            self.bytes_read += nbytes

    def _short(self, start: int, stop: int, got: int) -> DCIMGReadError:
        return DCIMGReadError(
            f"{self.name}: asked for bytes [{start}, {stop}) ({stop - start} "
            f"bytes) but got {got}; the object is shorter than when it was "
            f"opened ({self.size} bytes), or it changed",
            self.name,
        )

    def _read_failed(self, start: int, stop: int, error: OSError) -> DCIMGReadError:
        return DCIMGReadError(
            f"{self.name}: reading bytes [{start}, {stop}) failed: {error}", self.name
        )

    @contextlib.contextmanager
    def _request(self, start: int, stop: int) -> Iterator[_Tally]:
        """Account for one request of bytes ``[start, stop)``.

        The block adds what it reads to the tally's ``got``.  The request is
        counted whatever happens, an ``OSError`` becomes a
        :class:`DCIMGReadError` that says which bytes, and fewer bytes than
        asked for raise one too (see :meth:`_short`).
        """
        tally = _Tally()
        try:
            yield tally
        except OSError as error:
            raise self._read_failed(start, stop, error) from error
        finally:
            self._count(tally.got)
        if tally.got != stop - start:
            raise self._short(start, stop, tally.got)

    def _read_one(self, start: int, stop: int, out: Any) -> Any:
        """Fetch bytes ``[start, stop)``: into `out` if given (returning it).

        `out` is a byte view of ``stop - start`` bytes, or (for a
        :attr:`vectored` reader) a list of views that add up to that many.
        Implementations return exactly ``stop - start`` bytes or raise
        :class:`DCIMGReadError` (see :meth:`_short`), and call
        :meth:`_count` once.
        """
        raise NotImplementedError

    def _run(self, requests: list[Range], outs: Targets, sink: Sink) -> None:
        """Issue `requests` and hand each result to ``sink(index, data)``.

        ``outs[i]``, when not ``None``, is where request ``i`` may be read
        directly. Results are handed over as they arrive, so that at most
        :attr:`max_concurrency` of them are held at once.
        """
        workers = min(self.max_concurrency, len(requests))
        if workers <= 1:
            for i, (start, stop) in enumerate(requests):
                sink(i, self._read_one(start, stop, outs[i]))
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="dcimg-read") as pool:
            futures = {
                pool.submit(self._read_one, start, stop, outs[i]): i
                for i, (start, stop) in enumerate(requests)
            }
            try:
                for future in as_completed(futures):
                    sink(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


# ---------------------------------------------------------------------------
# Local files through os.pread


class PreadReader(RangeReader):
    """Reads a local file with ``os.pread`` on one descriptor, without a map.

    For files on network shares, and files that may change while they are
    open (a map of a file that shrinks crashes the process on access; a read
    just returns fewer bytes, which is reported). Reads run on up to
    :attr:`max_concurrency` threads, each a plain ``pread`` on the same
    descriptor; large requests go straight into the caller's buffer.

    Parameters
    ----------
    path : str or os.PathLike
        The local file.
    max_gap, max_request, max_concurrency : int, optional
        See :class:`RangeReader`. Defaults: 16 KiB, 32 MiB, up to 4 threads.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the file cannot be opened; the message names it.
    dcimg.DCIMGFormatError
        If it is not a regular file (a folder, a FIFO).

    Notes
    -----
    On systems without ``os.pread`` (Windows) the reads take turns on one
    unbuffered file object. A pickled reader (for Dask workers) holds the
    path and the size; it opens the file again when it first reads.
    """

    default_max_gap = 16 * 1024
    # Large requests: the system's copy out of the page cache costs less per
    # byte in big pieces (a warm 500 MB read ran 5% faster with 32 MiB than
    # with 8 MiB requests, 14% faster than with 4 MiB).  Merged ones are read
    # in place (vectored), so their size costs no temporary memory.
    default_max_request = 32 * 1024 * 1024
    default_max_concurrency = max(1, min(4, os.cpu_count() or 1))
    vectored = hasattr(os, "preadv")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_gap: int | None = None,
        max_request: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.path = os.fsdecode(os.fspath(path))
        self._fd: int | None = None
        self._file: io.FileIO | None = None
        self._lock = threading.Lock()
        size = self._open()
        super().__init__(
            self.path,
            size,
            max_gap=max_gap,
            max_request=max_request,
            max_concurrency=max_concurrency,
        )

    def _open(self) -> int:
        """Open the descriptor; return the file's size."""
        if hasattr(os, "pread"):
            self._fd, info = open_regular_file(self.path)
            return info.st_size
        file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (kept open)
        self._file = file
        return os.fstat(file.fileno()).st_size

    def _opened(self) -> io.FileIO:
        """Return the file object read without a descriptor (see _ensure_open)."""
        file = self._file
        if file is None:  # pragma: no cover - closed by another thread
            raise ValueError("I/O operation on closed file")
        return file

    def _ensure_open(self) -> None:
        if self._fd is None and self._file is None:
            with self._lock:
                if self._fd is None and self._file is None:
                    self._open()

    def refresh_size(self, *, renew: bool = False) -> int:
        """Look up the file's size again (``fstat``), and return it.

        Returns
        -------
        int
            The new :attr:`size`.
        """
        self._ensure_open()
        fileno = self._fd if self._fd is not None else self._opened().fileno()
        self.size = os.fstat(fileno).st_size
        return self.size

    def _read_one(self, start: int, stop: int, out: Any) -> Any:
        self._ensure_open()
        length = stop - start
        if isinstance(out, list):  # a vectored read (see RangeReader.vectored)
            target = None
            pending = list(out)
        else:
            target = memoryview(bytearray(length)) if out is None else out
            pending = [target]
        with self._request(start, stop) as tally:
            while tally.got < length:
                if self._fd is not None:
                    n = _preadv(self._fd, pending, start + tally.got)
                else:
                    with self._lock:
                        file = self._opened()
                        file.seek(start + tally.got)
                        n = file.readinto(pending[0])
                if not n:
                    break
                tally.got += n
                # A short read (signals, huge requests): resume where it ended.
                while pending and n >= pending[0].nbytes:
                    n -= pending.pop(0).nbytes
                if n:
                    pending[0] = pending[0][n:]
        if target is None:
            return out
        return target if out is not None else target.obj

    def close(self) -> None:
        """Close the descriptor; idempotent."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._file is not None:
                self._file.close()
                self._file = None
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        if self.closed:
            raise ValueError(f"{self.name}: cannot pickle a closed reader")
        state = self.__dict__.copy()
        state.update(_fd=None, _file=None, _lock=None, _count_lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


if not hasattr(os, "preadv"):  # pragma: no cover - macOS < 11 and others

    def _preadv(fd: int, buffers: list[memoryview], offset: int, /) -> int:
        data = os.pread(fd, buffers[0].nbytes, offset)
        buffers[0][: len(data)] = data
        return len(data)

else:
    _preadv = os.preadv


# ---------------------------------------------------------------------------
# Binary file objects


class FileObjectReader(RangeReader):
    """Reads a binary file object through ``seek`` and ``readinto``/``read``.

    Any object with ``seek`` and ``read`` works: an open file, ``io.BytesIO``,
    a file of fsspec, a member of a zip archive opened in binary mode. The
    reads take turns under a lock, and each one seeks first, so the object's
    position is not to be relied on while the reader uses it. The reader
    does not close the object: it belongs to the caller.

    Parameters
    ----------
    fileobj : binary file object
        Positioned anywhere; it must stay open while the reader is used.
    max_gap, max_request : int, optional
        See :class:`RangeReader`. Defaults: 64 KiB and 16 MiB.

    Raises
    ------
    TypeError
        If `fileobj` has no ``seek`` and ``read``, is opened in text mode, or
        is not seekable.

    Notes
    -----
    A file object cannot be sent to another process, so this reader cannot
    be pickled (a ``TypeError`` says so): give Dask a path or a URL instead.
    """

    def __init__(
        self,
        fileobj: Any,
        *,
        max_gap: int | None = None,
        max_request: int | None = None,
    ) -> None:
        if not (hasattr(fileobj, "read") and hasattr(fileobj, "seek")):
            raise TypeError(
                f"a file object needs seek() and read(), got {type(fileobj).__name__}"
            )
        if isinstance(fileobj, io.TextIOBase):
            raise TypeError(
                f"{_fileobj_name(fileobj)} is opened in text mode; open it in "
                "binary mode ('rb')"
            )
        seekable = getattr(fileobj, "seekable", None)
        if seekable is not None and not seekable():
            raise TypeError(
                f"{_fileobj_name(fileobj)} is not seekable; read it into memory "
                "or a temporary file first"
            )
        self._fileobj = fileobj
        self._lock = threading.Lock()
        self._readinto = getattr(fileobj, "readinto", None)
        name = _fileobj_name(fileobj)
        with self._lock:
            size = fileobj.seek(0, io.SEEK_END)
        if size is None:  # some objects return nothing from seek()
            size = fileobj.tell()
        super().__init__(name, size, max_gap=max_gap, max_request=max_request)

    def refresh_size(self, *, renew: bool = False) -> int:
        """Look up the object's size again (seek to its end), and return it.

        Returns
        -------
        int
            The new :attr:`size`.
        """
        with self._lock:
            size = self._fileobj.seek(0, io.SEEK_END)
            self.size = self._fileobj.tell() if size is None else size
        return self.size

    def _read_one(self, start: int, stop: int, out: memoryview | None) -> Any:
        if self._fileobj is None:
            raise ValueError(f"{self.name}: read from a closed reader")
        length = stop - start
        with self._request(start, stop) as tally, self._lock:
            self._fileobj.seek(start)
            result: Any = None
            if out is not None and self._readinto is not None:
                try:
                    while tally.got < length:
                        n = _count_of(
                            self._readinto(out[tally.got :]),
                            length - tally.got,
                            self.name,
                        )
                        if not n:
                            break
                        tally.got += n
                    result = out
                except (NotImplementedError, io.UnsupportedOperation):
                    # A class that inherits readinto without providing it
                    # (io.RawIOBase's raises): use read() from now on.
                    if tally.got:
                        raise
                    self._readinto = None
            if result is None:
                chunks = []
                while tally.got < length:
                    chunk = self._fileobj.read(length - tally.got)
                    if chunk is None:
                        raise _nothing_ready(self.name, "read")
                    if not chunk:
                        break
                    if len(chunk) > length - tally.got:
                        raise DCIMGReadError(
                            f"{self.name}: read({length - tally.got}) returned "
                            f"{len(chunk)} bytes, more than asked for",
                            self.name,
                        )
                    chunks.append(chunk)
                    tally.got += len(chunk)
                result = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if not isinstance(result, bytes | bytearray | memoryview):
                    raise TypeError(
                        f"{self.name}: read() returned "
                        f"{type(result).__name__}, not bytes; open the file "
                        "in binary mode ('rb')"
                    )
        return result

    def close(self) -> None:
        """Forget the file object (without closing it: it is the caller's)."""
        self._fileobj = None
        self._readinto = None
        super().close()

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self.name}: a reader of a file object cannot be pickled (sent to "
            "another process, such as a Dask worker); open the file by path or "
            "URL instead"
        )


class _Tally:
    """Bytes one request has read so far (see ``RangeReader._request``)."""

    __slots__ = ("got",)

    def __init__(self) -> None:
        self.got = 0


def _count_of(n: Any, asked: int, name: str) -> int:
    """Check what ``readinto`` returned: a count of bytes from 0 to `asked`.

    Anything else would make the reading loop spin for ever (-1), or take
    bytes that are not there (more than asked): a clear error instead.
    """
    if n is None:
        raise _nothing_ready(name, "readinto")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= asked:
        raise DCIMGReadError(
            f"{name}: readinto() of a {asked}-byte buffer returned {n!r}, not "
            f"a count of bytes from 0 to {asked}; the file object is broken",
            name,
        )
    return n


def _nothing_ready(name: str, method: str) -> DCIMGReadError:
    return DCIMGReadError(
        f"{name}: {method}() returned None: the file object is non-blocking "
        "and had no data ready; give a blocking file object",
        name,
    )


def _fileobj_name(fileobj: Any) -> str:
    """Return the file object's name for messages, or a description of it."""
    name = getattr(fileobj, "name", None)
    if isinstance(name, str | os.PathLike):
        return os.fsdecode(os.fspath(name))
    path = getattr(fileobj, "path", None)  # fsspec's files
    if isinstance(path, str):
        return display_url(path)
    return f"<{type(fileobj).__name__} file object>"
