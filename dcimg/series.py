"""`DCIMGSeries`: an acquisition saved as many numbered DCIMG files.

Camera programs save Z-stacks, time-lapses and multi-position runs as sibling
files whose names end in counters (``cell_000_012.dcimg``).  A
:class:`DCIMGSeries` parses those counters, checks that the files make a
complete grid of identical geometry, and reads the grid as one N-dimensional
array: the counters' axes followed by each file's ``(frames, height, width)``.

Files are opened through one function, :func:`_open_member`, and kept in a
small least-recently-used cache, so a series of any number of files holds at
most :attr:`DCIMGSeries.cache_size` memory mappings (and as many descriptors
at most, where a mapping keeps one).
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import math
import operator
import os
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from dcimg import _format, _names
from dcimg._dask import StackViews
from dcimg._local import HOST
from dcimg._urls import display_url, is_glob, is_url, redact, url_path
from dcimg.core import (
    DCIMGFile,
    _Key,
    check_out,
    check_threads,
    frame_table_of,
    import_pandas,
)
from dcimg.errors import (
    DCIMGChangedError,
    DCIMGFormatError,
    DCIMGSeriesError,
    quiet_warnings,
)
from dcimg.metadata import Metadata

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pandas as pd
    from typing_extensions import Unpack

    from dcimg._stack import ReadOptions

__all__ = ["DEFAULT_AXES", "DCIMGSeries", "SeriesMetadata"]

#: Default axis names: the last ``n`` letters name ``n`` varying counters, so
#: one counter is ``"Z"``, two are ``"TZ"``, three ``"CTZ"``.
DEFAULT_AXES = "SRQPCTZ"

#: Open files a series keeps by default.
DEFAULT_CACHE_SIZE = 64

# Trailing counters: groups of digits each led by "_" or "-", just before the
# extension, as many as there are.  Matched on the name reversed, from its
# start: one pass over the counters, so the time is linear in the name's
# length.  (A forward pattern, "(.*?)((?:[_-][0-9]+)+)\.dcimg", tries every
# start of the stem and takes quadratic time on names like "_1_1_..._1x.dcimg":
# minutes for 80,000 characters.)  ASCII letter case only, like
# dcimg._names.dcimg_names().
_TRAILING_COUNTERS_REVERSED = re.compile(
    r"gmicd\.((?:[0-9]+[_-])+)", re.IGNORECASE | re.ASCII
)
_EXTENSION = len(".dcimg")
_COUNTER = re.compile(r"[0-9]+")
# The characters that end a folder in a path.
_SEPARATORS = os.sep + (os.altsep or "")
_SEPARATORS_RE = re.compile(f"[{re.escape(_SEPARATORS)}]")
# Dimension names of each file's stack in to_xarray(); series axes may not
# reuse them.
_FRAME_DIMS = ("t", "y", "x")
# How many file names an error message lists before summarising.
_LIST_AT_MOST = 10
# Reads of at least this many bytes spread over several files use threads.
_PARALLEL_BYTES = 8 << 20
# Threads of such reads: more than cores pays, since opening a file (GIL held)
# and the page faults of its fresh mapping overlap with copies elsewhere.
_READ_THREADS = 4
# Remote files opened at a time when a series is made.
_REMOTE_OPENS = 16
#: Most places of a grid that ``missing="fill"`` makes (present or filled).
FILL_PLACES = 1_000_000
# What missing= may be.
_MISSING_MODES = ("raise", "fill")


def names_series(source: Any) -> bool:
    """Tell whether an argument names several files rather than one.

    A folder, a glob pattern that is not itself a file's name, or a sequence
    of paths names a series; a path, a URL or a file object names one file.

    Parameters
    ----------
    source : object
        What a user gave (``dcimg.imread``'s or ``dcimg info``'s argument).

    Returns
    -------
    bool
    """
    if hasattr(source, "read") and hasattr(source, "seek"):
        return False  # a file object
    if isinstance(source, (str, bytes, os.PathLike)):
        text = os.fsdecode(source)
        if is_url(text):
            # A URL: a glob or a folder (ending in "/") names a series.
            return is_glob(text) or url_path(text).endswith("/")
        if os.path.isdir(text):
            return True
        return glob.has_magic(text) and not os.path.exists(text)
    return True


def _open_member(
    path: str, correction: bool | None, storage_options: dict[str, Any] | None = None
) -> DCIMGFile:
    """Open one file of a series.

    Every member is opened here and nowhere else, so other sources (remote
    URLs, archives) can be added in one place.

    Parameters
    ----------
    path : str
        The file.
    correction : bool or None
        Its ``first_4px_correction_enabled``.
    storage_options : dict, optional
        For URLs: the file system's options.

    Returns
    -------
    dcimg.DCIMGFile
        The open file.

    Raises
    ------
    dcimg.DCIMGFormatError
        If the file is not a readable DCIMG file; the message names it.
    OSError
        If it cannot be opened.
    """
    try:
        return DCIMGFile(
            path,
            first_4px_correction_enabled=correction,
            storage_options=storage_options,
        )
    except DCIMGFormatError as exc:
        message = str(exc)
        shown = display_url(path)
        if shown not in message:
            message = f"{shown!r}: {message}"
        raise DCIMGFormatError(
            f"series member {message}",
            getattr(exc, "field", None),
            getattr(exc, "path", None) or path,
        ) from exc


# Columns of the table _probe_members() returns: the probe's, with the
# version replaced by the layout (0 packed, 1 framed).
_COLUMNS = {name: i for i, name in enumerate(_format.PROBE_COLUMNS)}
_LAYOUT = _COLUMNS["version"]
_FRAMES, _HEIGHT, _WIDTH = _COLUMNS["frames"], _COLUMNS["height"], _COLUMNS["width"]
_DEPTH, _SIZE, _MTIME = _COLUMNS["byte_depth"], _COLUMNS["size"], _COLUMNS["mtime_ns"]
_DEVICE, _INODE = _COLUMNS["device"], _COLUMNS["inode"]
_LAYOUT_NAMES = ("packed", "framed")
# A member's identity: these columns, in this order.
_IDENTITY = [_SIZE, _MTIME, _DEVICE, _INODE]


def _signed64(number: int) -> int:
    """Return ``number`` (an inode: unsigned) as the C probe stores it, int64."""
    return number - (1 << 64) if number >= 1 << 63 else number


def _identity_of(f: DCIMGFile) -> tuple[int, int, int, int]:
    """``(size, mtime_ns, device, inode)`` of the file ``f`` opened.

    Device and inode are those of the file that was mapped (kept by its
    source when it was opened); -1 where there are none (URLs, file
    objects).
    """
    _, size, mtime_ns = f.identity
    numbers = getattr(getattr(f, "_source", None), "_inode", None)
    device, inode = numbers if numbers is not None else (-1, -1)
    return (size, mtime_ns, _signed64(device), _signed64(inode))


def _probe_members(
    paths: Sequence[str],
    correction: bool | None,
    storage_options: dict[str, Any] | None = None,
    keep: int = DEFAULT_CACHE_SIZE,
) -> tuple[np.ndarray, list[tuple[int, DCIMGFile]]]:
    """Read what a series checks about its files: geometry, type, layout, identity.

    All a series needs from its files' headers passes through here.  A quick
    look at the first 4 KiB of every file (:func:`dcimg._format.probe_many`:
    open, read and close in C, on several threads) vouches for the complete
    files; the others are opened fully, so that a damaged one is reported by
    the full parser, naming itself.

    Parameters
    ----------
    paths : sequence of str
        The files.
    correction : bool or None
        Their ``first_4px_correction_enabled``.
    storage_options : dict, optional
        For URLs: the file system's options.
    keep : int
        How many of the files opened here stay open (the last ones); the
        others are closed as the check goes, so that a series of thousands
        of remote files never holds thousands of connections.

    Returns
    -------
    table : numpy.ndarray
        ``int64``, one row per file: layout (0 packed, 1 framed), frames,
        height, width, byte depth, and the file's identity (size,
        ``mtime_ns``, device and inode; -1 for the last two where there are
        none), in the columns named by this module's ``_LAYOUT`` ...
        ``_INODE``.
    opened : list of (int, dcimg.DCIMGFile)
        The files that had to be opened, by position (the series caches the
        most recent ones); the others are opened when first read.
    """
    local = not storage_options and not any(is_url(p) for p in paths[:1])
    if local:
        table = _format.probe_many(paths)
        version = table[:, _LAYOUT]  # replaced in place by the layout
        table[:, _LAYOUT] = np.where(version < 0, -1, version != _format.VERSION_PACKED)
        # Windows: its C library gives no inode; ask Python's stat.
        for index in np.flatnonzero((version >= 0) & (table[:, _INODE] < 0)).tolist():
            info = os.stat(paths[index])
            table[index, _DEVICE] = _signed64(info.st_dev)
            table[index, _INODE] = _signed64(info.st_ino)
    else:
        table = np.full((len(paths), len(_COLUMNS)), -1, dtype=np.int64)
    opened: deque[tuple[int, DCIMGFile]] = deque()
    todo = np.flatnonzero(table[:, _LAYOUT] < 0).tolist()
    # A remote file's open waits on a round trip or two: several at a time.
    workers = 1 if local else min(_REMOTE_OPENS, len(todo))

    def open_one(index: int) -> DCIMGFile:
        return _open_member(paths[index], correction, storage_options)

    for index, f in _opened_in_order(todo, open_one, workers):
        table[index] = (
            f.fmt_version != DCIMGFile.FMT_OLD,
            *f.shape,
            f.dtype.itemsize,
            *_identity_of(f),
        )
        opened.append((index, f))
        if len(opened) > keep:
            opened.popleft()[1].close()
    return table, list(opened)


def _opened_in_order(
    indices: list[int], open_one: Callable[[int], DCIMGFile], workers: int
) -> Iterator[tuple[int, DCIMGFile]]:
    """Open files on up to ``workers`` threads; yield them in ``indices`` order.

    At most ``2 * workers`` files are opened ahead of the one yielded, so a
    series of thousands of remote files never holds thousands of
    connections.  The first failure in order is raised; files opened ahead
    of it are closed.
    """
    if workers <= 1:
        for index in indices:
            yield index, open_one(index)
        return
    pending = iter(indices)
    # Thread pools (and the logging module they import) load when first used.
    from concurrent.futures import ThreadPoolExecutor

    window: deque[tuple[int, Future[DCIMGFile]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="dcimg-open") as pool:
        try:
            for index in itertools.islice(pending, 2 * workers):
                window.append((index, pool.submit(open_one, index)))
            while window:
                index, future = window.popleft()
                f = future.result()
                following = next(pending, None)
                if following is not None:
                    window.append((following, pool.submit(open_one, following)))
                yield index, f
        finally:
            for _, future in window:
                if not future.cancel() and future.exception() is None:
                    future.result().close()


def _listing(names: Sequence[str]) -> str:
    """Join names for an error message, summarising long lists."""
    shown = ", ".join(repr(n) for n in names[:_LIST_AT_MOST])
    if len(names) > _LIST_AT_MOST:
        shown += f" and {len(names) - _LIST_AT_MOST} more"
    return shown


# ----------------------------------------------------------------------
# Finding and naming the files


def _remote_candidates(
    text: str, storage_options: dict[str, Any] | None
) -> tuple[list[str], bool]:
    """List the ``*.dcimg`` URLs of a URL glob or URL folder (ending in ``/``)."""
    from dcimg._remote import _import_fsspec

    fsspec = _import_fsspec()
    if not is_glob(text) and not url_path(text).endswith("/"):
        return [text], True  # one object (a "?" starts its query string)
    fs, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    if is_glob(text):
        found = fs.glob(root)
    elif text.endswith("/"):
        found = fs.glob(root.rstrip("/") + "/*")
    else:
        return [text], True
    urls = sorted(
        fs.unstrip_protocol(p) for p in found if str(p).lower().endswith(".dcimg")
    )
    if not urls:
        raise DCIMGSeriesError(
            f"no *.dcimg file matches {display_url(text)!r}", display_url(text)
        )
    return urls, False


def _absolute(path: str) -> str:
    """Return ``path`` made absolute the way the system resolves it.

    :func:`os.path.abspath` also removes ``..`` as text, which changes the
    file meant when the folder before it is a symbolic link
    (``link/../x.dcimg``); such paths keep their ``..``.
    """
    parts = _SEPARATORS_RE.split(path)
    if ".." not in parts:
        return os.path.abspath(path)
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
        parts = _SEPARATORS_RE.split(path)
    # Empty and "." parts are dropped (that is safe), ".." ones kept; a
    # Windows network path keeps its leading pair of separators.
    lead = 2 if os.altsep and path[:2] in ("\\\\", "//") else 1
    kept = parts[:lead] + [p for p in parts[lead:] if p not in ("", ".")]
    return os.sep.join(kept)


def _candidates(
    files: Any, storage_options: dict[str, Any] | None = None
) -> tuple[list[str], bool]:
    """Return the absolute paths ``files`` designates, and whether it listed them.

    A directory gives every ``*.dcimg`` in it (any ASCII letter case), a string
    with glob characters the files it matches, anything else iterable the
    paths in it.  The flag is True for an explicit list (names that do not
    match the pattern are then errors instead of being skipped).
    """
    if is_url(files):
        return _remote_candidates(files, storage_options)
    if isinstance(files, (str, bytes, os.PathLike)):
        text = os.fsdecode(files)
        if os.path.isdir(text):
            # Names only (no stat per entry): a folder that carries a
            # member's name is refused when the member is opened.
            folder = os.path.join(_absolute(text), "")
            # Hidden files are skipped, as by the glob "*.dcimg".
            paths = _names.dcimg_names(os.listdir(folder), folder, hidden=False)
            if not paths:
                raise DCIMGSeriesError(f"no *.dcimg file in the folder {text!r}", text)
            return paths, False
        if glob.has_magic(text) and not os.path.exists(text):
            paths = [_absolute(p) for p in _names.dcimg_names(glob.glob(text))]
            if not paths:
                raise DCIMGSeriesError(f"no *.dcimg file matches {text!r}", text)
            return paths, False
        return [_absolute(text)], True
    if isinstance(files, np.ndarray):  # e.g. another series' files grid
        files = files.ravel().tolist()
    if not isinstance(files, Iterable):
        raise TypeError(
            "files must be a folder, a glob pattern or a sequence of paths, "
            f"not {type(files).__name__}"
        )
    paths = [p if is_url(p) else _absolute(os.fsdecode(p)) for p in files]
    if not paths:
        raise DCIMGSeriesError("the series is empty: no file given")
    return paths, True


class _Name(NamedTuple):
    """A file name split into its counters."""

    path: str
    template: str  # the name with "{}" in place of each counter
    texts: tuple[str, ...]  # the counters as written (_grid reads the numbers)


def _parse_name(path: str, regex: re.Pattern[str] | None) -> _Name | None:
    """Split a file name into counters, or return None if it has none."""
    if is_url(path):
        path = url_path(path)  # the name is in the path, not the query string
    name = os.path.basename(path) if os.altsep else path.rpartition(os.sep)[2]
    if regex is None:
        match = _TRAILING_COUNTERS_REVERSED.match(name[::-1])
        if match is None:
            return None
        base = len(name) - match.end()  # where the counters start
        head, tail = name[:base], name[len(name) - _EXTENSION :]
        counters = name[base : len(name) - _EXTENSION]
        if "{" not in name and "}" not in name:
            # The common case, in a few C calls.
            texts = _COUNTER.findall(counters)
            if all(len(t) <= _names.COUNTER_DIGITS for t in texts):
                return _Name(
                    path,
                    head + _COUNTER.sub("{}", counters) + tail,
                    tuple(texts),
                )
        spans = [
            (base + m.start(), base + m.end()) for m in _COUNTER.finditer(counters)
        ]
    else:
        match = regex.fullmatch(name)
        if match is None:
            return None
        spans = []
        for group in range(1, (regex.groups or 0) + 1):
            text = match.group(group)
            if text is None or not text.isdigit() or not text.isascii():
                raise DCIMGSeriesError(
                    f"{path!r}: group {group} of pattern {regex.pattern!r} is "
                    f"{text!r}, not a counter (decimal digits)",
                    display_url(path),
                )
            spans.append(match.span(group))
    pieces, texts, last = [], [], 0
    for start, end in spans:
        if start < last:
            raise DCIMGSeriesError(
                f"pattern {regex.pattern if regex else ''!r}: counter groups "
                f"overlap in {name!r}",
                display_url(path),
            )
        if end - start > _names.COUNTER_DIGITS:
            # Beyond what int64 positions hold; no camera counts this far.
            raise DCIMGSeriesError(
                f"{path!r}: the counter {name[start:end]!r} has more than "
                f"{_names.COUNTER_DIGITS} digits",
                display_url(path),
            )
        pieces.append(name[last:start].replace("{", "{{").replace("}", "}}"))
        texts.append(name[start:end])
        last = end
    pieces.append(name[last:].replace("{", "{{").replace("}", "}}"))
    return _Name(
        path=path,
        template="{}".join(pieces),
        texts=tuple(texts),
    )


def _named(path: str, regex: re.Pattern[str] | None) -> _Name:
    """:func:`_parse_name` of a name already known to parse."""
    name = _parse_name(path, regex)
    if name is None:  # pragma: no cover - callers pass parsed names only
        raise RuntimeError(f"{path!r} is not a series member's name")
    return name


@dataclass(frozen=True)
class _Grid:
    """Where every file sits: paths in C order, the axes' counter values."""

    paths: tuple[str, ...]
    shape: tuple[int, ...]
    counters: tuple[np.ndarray, ...]
    # Places (C order) with no file, named as their neighbours are
    # (missing="fill" only).
    missing: tuple[int, ...] = ()


class _Counted(NamedTuple):
    """Named files that do not fill their grid, as the grid rule saw them.

    The files, their counter values, the axes that vary (index and
    ``(values, place of each file)``), the name template and the pattern.
    """

    named: list[str]
    values: np.ndarray
    axes: list[tuple[int, tuple[np.ndarray, np.ndarray]]]
    template: str
    regex: re.Pattern[str] | None


def _parse_alike(
    paths: list[str], first: _Name
) -> tuple[list[str], np.ndarray, list[str]] | None:
    """Parse every name that follows ``first``'s template in one pass, in C.

    The default naming for a series of thousands: every name is matched
    against the first name's template and its counters read as numbers by
    :func:`dcimg._names.split_counters`, instead of a regex and a few
    objects per file.  The names that do not match must have no counters at
    all (they are skipped or refused like in :func:`_parse_name`); when one
    has counters of another template, returns None and the caller parses
    name by name, which says which series the folder holds.

    Returns
    -------
    matched : list of str
        The paths that follow the template, in the given order.
    values : numpy.ndarray
        Their counters, ``int64`` of shape ``(counters, len(matched))``.
    unmatched : list of str
        The paths without counters.
    """
    if any(brace in first.template.replace("{}", "") for brace in "{}"):
        return None  # braces are escaped in the template: name by name
    names = [url_path(p) for p in paths] if is_url(paths[0]) else paths
    found, values = _names.split_counters(
        names, tuple(first.template.split("{}")), _SEPARATORS
    )
    if found.all():
        return paths, values, []
    # Longer counters than split_counters reads fall through to
    # _parse_name, which says why they are refused.
    unmatched = [paths[i] for i in np.flatnonzero(~found).tolist()]
    if any(_parse_name(p, None) is not None for p in unmatched):
        return None
    matched = [paths[i] for i in np.flatnonzero(found).tolist()]
    return matched, values[:, found], unmatched


def _axis(counter: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return one counter's sorted distinct values, and each file's place in them.

    Returns None for a counter that never varies (it makes no axis).
    """
    low, high = int(counter.min()), int(counter.max())
    if low == high:
        return None
    if high - low < 4 * counter.size:
        # Counters are nearly always dense runs (0, 1, 2, ...): a table of
        # the values present beats sorting.
        offset = counter - low
        present = np.zeros(high - low + 1, dtype=bool)
        present[offset] = True
        if present.all():
            return np.arange(low, high + 1, dtype=np.int64), offset
        return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[offset]
    values, places = np.unique(counter, return_inverse=True)
    return values, places.reshape(-1)


def _grid(
    paths: list[str],
    listed: bool,
    regex: re.Pattern[str] | None,
    source: Any,
    fill: bool = False,
) -> _Grid:
    """Sort files into the grid of their varying counters.

    With ``fill``, places without a file are named as their neighbours are
    and listed in the grid's ``missing`` instead of being an error.
    """
    # The folder or pattern the files came from, for the errors' ``path``.
    origin = display_url(source) if isinstance(source, str) else None
    what = (
        "the default naming (counters like _001 or -001 before .dcimg)"
        if regex is None
        else f"pattern {regex.pattern!r}"
    )
    alike = None
    first: _Name | None = None
    if regex is None and len(paths) > 1:
        first = next(filter(None, (_parse_name(p, None) for p in paths)), None)
        if first is not None:
            alike = _parse_alike(paths, first)
    if alike is not None and first is not None:
        named, values, unmatched = alike
        template = first.template
    else:
        parsed: list[_Name] = []
        unmatched = []
        for path in paths:
            name = _parse_name(path, regex)
            if name is None:
                unmatched.append(path)
            else:
                parsed.append(name)
        if not parsed:
            if len(paths) == 1:
                # One file without counters: a series of one.
                return _Grid(tuple(paths), (), ())
            raise DCIMGSeriesError(
                f"no file name of {redact(repr(source))} matches {what}: "
                f"{_listing([os.path.basename(display_url(p)) for p in unmatched])}; "
                "pass pattern= with one regex group per counter",
                origin,
            )
        groups: dict[str, list[_Name]] = {}
        for name in parsed:
            groups.setdefault(name.template, []).append(name)
        if len(groups) > 1:
            kinds = sorted(groups.items(), key=lambda item: -len(item[1]))
            described = "; ".join(
                f"{t.replace('{}', '*')!r} ({len(g)} files)" for t, g in kinds
            )
            raise DCIMGSeriesError(
                f"{source!r} holds more than one series: {described}; choose one "
                "with a glob (e.g. 'folder/name_*.dcimg') or pattern=",
                origin,
            )
        ((template, names),) = groups.items()
        named = [n.path for n in names]
        counts = (len(names), len(names[0].texts))  # one template: same count
        values = (
            np.array([[int(t) for t in n.texts] for n in names], dtype=np.int64)
            .reshape(counts)
            .T
        )
    if unmatched and listed and len(paths) > 1:
        raise DCIMGSeriesError(
            f"file names do not match {what}: {_listing(unmatched)}; "
            "pass pattern= with one regex group per counter",
            origin,
        )
    axes = [(j, found) for j, c in enumerate(values) if (found := _axis(c))]
    shape = tuple(axis.size for _, (axis, _) in axes)
    # A Python int: the product of many axes overflows int64.
    total = math.prod(shape)
    if len(named) == total:
        # As many files as grid places (so the flat positions fit int64): a
        # permutation unless two share one.
        flat = np.zeros(len(named), dtype=np.int64)
        for _, (axis, places) in axes:
            flat = flat * axis.size + places
        order = np.full(total, -1, dtype=np.int64)
        order[flat] = np.arange(total)
        if not (order < 0).any():
            return _Grid(
                tuple(map(named.__getitem__, order.tolist())),
                shape,
                tuple(axis for _, (axis, _) in axes),
            )
    counted = _Counted(named, values, axes, template, regex)
    if fill:
        filled = _filled_grid(counted, origin)
        if filled is not None:
            return filled
    # Fewer files than places (names alone can make a grid of 10**20), or two
    # files in one place: the error is worked out from the files, never from
    # an array of the grid's size.
    raise _grid_error(counted)


def _filled_grid(counted: _Counted, origin: str | None) -> _Grid | None:
    """Name the empty places of the files' grid; None if two files share one.

    Raises
    ------
    dcimg.DCIMGSeriesError
        If the grid has more than :data:`FILL_PLACES` places: counters far
        apart (a stray file) would otherwise make a grid of millions of
        places to fill.
    """
    named, values, axes, template, regex = counted
    shape = tuple(axis.size for _, (axis, _) in axes)
    total = math.prod(shape)
    if total > FILL_PLACES:
        raise DCIMGSeriesError(
            f"the series {template.replace('{}', '*')!r} has {len(named)} files "
            f"in a grid of {'x'.join(map(str, shape))} = {total} places, more "
            f"than missing='fill' fills ({FILL_PLACES}); check for a stray "
            "file with a far-off counter, or choose the files with a glob",
            origin,
        )
    flat = np.zeros(len(named), dtype=np.int64)
    for _, (axis, places) in axes:
        flat = flat * axis.size + places
    order = np.full(total, -1, dtype=np.int64)
    order[flat] = np.arange(len(named))
    if np.count_nonzero(order >= 0) != len(named):
        return None  # two files in one place: _grid_error says which
    # Missing files are named the way their neighbours are written: the
    # counters that do not vary as in the first file, the others as the
    # files with that value write it.
    first = _named(named[0], regex)
    texts = list(zip(*(_named(p, regex).texts for p in named), strict=True))
    written = [dict(zip(values[j].tolist(), texts[j], strict=True)) for j, _ in axes]
    # The name is the end of the path (before a URL's query string).
    shown_name = template.format(*first.texts)
    prefix = named[0][: named[0].rfind(shown_name)]
    paths = []
    missing = []
    for place, (member, position) in enumerate(
        zip(order.tolist(), itertools.product(*map(range, shape)), strict=True)
    ):
        if member >= 0:
            paths.append(named[member])
            continue
        counter = list(first.texts)
        for axis_index, (j, (axis, _)) in enumerate(axes):
            counter[j] = written[axis_index][int(axis[position[axis_index]])]
        paths.append(prefix + template.format(*counter))
        missing.append(place)
    return _Grid(
        tuple(paths), shape, tuple(axis for _, (axis, _) in axes), tuple(missing)
    )


def _grid_error(counted: _Counted) -> DCIMGSeriesError:
    """Say why files do not fill their grid: two share counters, or gaps.

    Time and memory grow with the number of files and counters, not with
    the size of the grid: the missing files are found by walking the grid's
    places in order, and at most ``len(files) + _LIST_AT_MOST + 1`` of them
    are visited before the gaps listed are found.
    """
    named, values, axes, template, regex = counted
    shape = tuple(axis.size for _, (axis, _) in axes)
    total = math.prod(shape)
    # Every file's place, one column per file (no axis: all in one place).
    places = np.array([p for _, (_, p) in axes], dtype=np.int64).reshape(
        len(axes), len(named)
    )
    # C order of the places; stable, so the first of two files comes first.
    order = np.lexsort(places[::-1]) if axes else np.arange(len(named))
    ordered = places[:, order]
    same = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).all(axis=0))
    if same.size:
        a, b = order[same[0]], order[same[0] + 1]
        return DCIMGSeriesError(
            f"two files have the same counters {tuple(values[:, a].tolist())}: "
            f"{named[a]!r} and {named[b]!r}",
            display_url(named[b]),
        )
    # No two files share a place, so there are fewer files than places.
    taken = set(map(tuple, places.T.tolist()))
    # Name the missing files the way their neighbours are written.
    texts = list(zip(*(_named(p, regex).texts for p in named), strict=True))
    written = [dict(zip(values[j].tolist(), texts[j], strict=True)) for j, _ in axes]
    missing = []
    for position in itertools.product(*map(range, shape)):
        if position in taken:
            continue
        counter = [column[order[0]] for column in texts]
        for axis_index, (j, (axis, _)) in enumerate(axes):
            counter[j] = written[axis_index][int(axis[position[axis_index]])]
        missing.append(template.format(*counter))
        if len(missing) > _LIST_AT_MOST:
            break
    count = total - len(named)
    shown = ", ".join(repr(m) for m in missing[:_LIST_AT_MOST])
    if count > _LIST_AT_MOST:
        shown += f" and {count - _LIST_AT_MOST} more"
    folder = os.path.dirname(named[0])
    return DCIMGSeriesError(
        f"the series {template.replace('{}', '*')!r} in {folder!r} has gaps: "
        f"{count} of {total} files of its {'x'.join(map(str, shape))} grid "
        f"are missing: {shown}",
        display_url(folder),
    )


def _axis_names(axes: str | None, count: int) -> str:
    """Check the ``axes`` argument, or return the default names."""
    if axes is None:
        if count > len(DEFAULT_AXES):
            raise ValueError(
                f"the series has {count} varying counters; name them with axes="
            )
        return DEFAULT_AXES[len(DEFAULT_AXES) - count :]
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string of letters, not {axes!r}")
    if len(axes) != count:
        raise ValueError(
            f"axes={axes!r} names {len(axes)} axes but the file names have "
            f"{count} varying counters"
        )
    for letter in axes:
        if not (letter.isascii() and letter.isalpha()):
            raise ValueError(f"axes={axes!r}: {letter!r} is not an ASCII letter")
        if letter in _FRAME_DIMS:
            raise ValueError(
                f"axes={axes!r}: {letter!r} names a dimension of every file "
                f"({', '.join(_FRAME_DIMS)}); use another letter"
            )
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes={axes!r} repeats a letter")
    return axes


# ----------------------------------------------------------------------
# Indexing


def _to_slice(r: range) -> slice:
    """Return the slice that selects ``r`` of an axis (``r`` normalised)."""
    stop: int | None = r.stop
    if r.step < 0 and r.stop < 0:
        stop = None
    return slice(r.start, stop, r.step)


def _normalize_key(
    key: Any, shape: tuple[int, ...]
) -> tuple[list[int | range], tuple[int, ...], tuple[int, ...]]:
    """Resolve a basic index against ``shape``.

    Returns
    -------
    selection : list of int or range
        One entry per axis of ``shape``: the index, or the positions kept.
    inner_shape : tuple of int
        Shape of the result without the axes ``None`` inserts.
    final_shape : tuple of int
        Shape of the result.
    """
    items = key if isinstance(key, tuple) else (key,)
    ellipses = sum(1 for item in items if item is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(1 for item in items if item is not None and item is not Ellipsis)
    if real > len(shape):
        raise IndexError(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {real} were indexed"
        )
    if not ellipses:
        items = (*items, Ellipsis)
    selection: list[int | range] = []
    inner: list[int] = []
    final: list[int] = []
    axis = 0
    for item in items:
        if item is None:
            final.append(1)
            continue
        if item is Ellipsis:
            for _ in range(len(shape) - real):
                size = shape[axis]
                selection.append(range(size))
                inner.append(size)
                final.append(size)
                axis += 1
            continue
        size = shape[axis]
        if isinstance(item, slice):
            kept = range(*item.indices(size))
            selection.append(kept)
            inner.append(len(kept))
            final.append(len(kept))
        else:
            if isinstance(item, (bool, np.bool_)) or (
                isinstance(item, np.ndarray) and item.dtype == bool
            ):
                raise IndexError(
                    "boolean indices are advanced indexing, which a DCIMG series "
                    "does not support; index the array it returns instead"
                )
            try:
                i = operator.index(item)
            except TypeError:
                raise IndexError(
                    "only integers, slices, '...' and None are valid indices of "
                    f"a DCIMG series, not {type(item).__name__}"
                ) from None
            if not -size <= i < size:
                raise IndexError(
                    f"index {i} is out of bounds for axis {axis} with size {size}"
                )
            selection.append(i % size)
        axis += 1
    return selection, tuple(inner), tuple(final)


# ----------------------------------------------------------------------
# Reading


class _Members:
    """The files of a validated series, opened on demand through a cache.

    Holds only paths, the files' identities and the geometry, so it pickles
    small; the cache of open files is per process and rebuilt on unpickling.
    Thread-safe: reads never change a :class:`~dcimg.DCIMGFile`, and the
    cache is guarded by a lock.

    A file's identity is ``(size, mtime_ns, device, inode)`` (device and
    inode -1 where there are none): a file put in a member's place has
    another inode, whatever its size and time stamp.  Device and inode
    are compared on the machine that recorded them (:attr:`host`) only;
    elsewhere (a Dask worker on another machine, which numbers the same
    network files differently) size and time stamp are.
    """

    def __init__(
        self,
        paths: tuple[str, ...],
        identities: tuple[tuple[int, int, int, int], ...],
        frames: tuple[int, ...],
        grid_shape: tuple[int, ...],
        image_shape: tuple[int, int],
        dtype: np.dtype,
        concat: bool,
        correction: bool | None,
        cache_size: int,
        storage_options: dict[str, Any] | None = None,
        missing: tuple[int, ...] = (),
        fill_value: int = 0,
    ) -> None:
        self.storage_options = storage_options
        # Places without a file (missing="fill"), read as fill_value, like
        # the frames a short file lacks.
        self.missing = frozenset(missing)
        self.fill_value = fill_value
        self.paths = paths
        self.identities = identities
        self.host = HOST
        self.frames = frames
        self.grid_shape = grid_shape
        self.image_shape = image_shape
        self.dtype = dtype
        self.concat = concat
        self.correction = correction
        self.cache_size = cache_size
        self._setup()

    def _setup(self) -> None:
        self._cache: OrderedDict[int, DCIMGFile] = OrderedDict()
        self._lock = threading.Lock()
        # What a series derives from these files once (time stamps,
        # metadata): per process, not pickled.
        self.derived: dict[str, Any] = {}
        self._token: str | None = None
        # First frame of every file along the joined frame axis.
        self.offsets = np.concatenate(([0], np.cumsum(self.frames, dtype=np.int64)))
        if self.concat:
            self.shape: tuple[int, ...] = (int(self.offsets[-1]), *self.image_shape)
        else:
            # All files have as many frames, but with missing="fill" a file
            # cut short (or still being written) has fewer: they read as
            # fill_value.
            nframes = max(self.frames) if self.frames else 0
            self.shape = (*self.grid_shape, nframes, *self.image_shape)
        self._filled = bool(self.missing) or (
            not self.concat and any(n != self.shape[-3] for n in self.frames)
        )

    def __getstate__(self) -> dict[str, Any]:
        # Paths and options only: a process that unpickles opens the files
        # itself.
        return {
            name: getattr(self, name)
            for name in (
                "paths",
                "identities",
                "host",
                "frames",
                "grid_shape",
                "image_shape",
                "dtype",
                "concat",
                "correction",
                "cache_size",
                "storage_options",
                "missing",
                "fill_value",
            )
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickles of versions without missing="fill" have nothing filled.
        self.missing = frozenset()
        self.fill_value = 0
        self.__dict__.update(state)
        self._setup()

    @property
    def token(self) -> str:
        """A digest of everything that determines the pixels read."""
        if self._token is None:
            import hashlib

            digest = hashlib.sha256()
            digest.update(repr((self.shape, self.dtype.str, self.concat)).encode())
            digest.update(repr(self.correction).encode())
            if self.missing:
                digest.update(repr((sorted(self.missing), self.fill_value)).encode())
            for path, identity in zip(self.paths, self.identities, strict=True):
                digest.update(f"{path}\0{identity}\0".encode())
            self._token = digest.hexdigest()
        return self._token

    def clear(self) -> None:
        """Forget every open file (each is released once nobody reads it)."""
        with self._lock:
            self._cache.clear()

    def open_count(self) -> int:
        """Return the number of files in the cache."""
        return len(self._cache)

    def file(self, index: int) -> DCIMGFile:
        """Return file ``index`` (C order of the grid), opening it if needed."""
        if index in self.missing:
            path = display_url(self.paths[index])
            raise DCIMGSeriesError(
                f"{path!r} is missing from the series (opened with "
                f"missing='fill': its place reads as {self.fill_value}); "
                "call refresh() once it exists",
                path,
            )
        with self._lock:
            f = self._cache.get(index)
            # A file handed out by DCIMGSeries.file() may have been closed.
            if f is not None and not f.closed:
                self._cache.move_to_end(index)
                return f
        path = self.paths[index]
        # Its warnings were shown when the series was made.
        with quiet_warnings():
            try:
                f = _open_member(path, self.correction, self.storage_options)
            except DCIMGFormatError as exc:
                # A member cut since the series looked at it is a changed
                # file, not a corrupt one.
                try:
                    info = os.stat(path)
                except (OSError, ValueError):
                    raise exc from None
                was_size, was_mtime = self.identities[index][:2]
                if (info.st_size, info.st_mtime_ns) == (was_size, was_mtime):
                    raise
                raise DCIMGChangedError(
                    f"{display_url(path)!r} changed since the series was made "
                    f"(size {was_size} -> {info.st_size}, mtime_ns {was_mtime} "
                    f"-> {info.st_mtime_ns}); make a new series",
                    display_url(path),
                ) from exc
        problem = self._differs(index, _identity_of(f))
        if problem:
            f.close()
            raise DCIMGChangedError(
                f"{display_url(path)!r} changed since the series was made "
                f"({problem}); make a new series",
                display_url(path),
            )
        self.put(index, f)
        return f

    def _differs(self, index: int, now: tuple[int, int, int, int]) -> str:
        """Say how file ``index`` now differs from when the series was made."""
        was = self.identities[index]
        names = ("size", "mtime_ns or version", "device", "inode")
        # Device and inode numbers mean something on the recording machine.
        compared = 4 if self.host == HOST else 2
        changes = [
            f"{name} {before} -> {after}"
            for name, before, after in zip(
                names[:compared], was[:compared], now[:compared], strict=True
            )
            if before != after
        ]
        if compared == 4 and was[2:] != now[2:]:
            changes.insert(0, "another file was put in its place")
        return ", ".join(changes)

    def put(self, index: int, f: DCIMGFile) -> None:
        """Cache an open file, dropping the least recently used ones."""
        with self._lock:
            self._cache[index] = f
            self._cache.move_to_end(index)
            while len(self._cache) > self.cache_size:
                # Only the reference is dropped: another thread may still be
                # reading that file, and it is unmapped once nobody uses it.
                self._cache.popitem(last=False)

    def read_chunk(
        self, key: tuple[Any, ...], dtype: np.dtype[Any], copy: bool
    ) -> np.ndarray:
        """Read a chunk of a Dask array of the series (a ``ChunkReader``).

        One thread per chunk (the scheduler runs chunks in parallel); with
        ``copy=False``, a chunk inside one file is that file's view.
        """
        if not copy:
            view = self.view_inside_one_file(key, dtype, threads=1)
            if view is not None:
                return np.asarray(view)
        return np.asarray(self.read(key, dtype=dtype, threads=1))

    def read(
        self,
        key: Any,
        dtype: Any = None,
        out: np.ndarray | None = None,
        threads: int = 1,
    ) -> Any:
        """Read a basic-index selection of the series (see DCIMGSeries.read)."""
        selection, inner_shape, final_shape = _normalize_key(key, self.shape)
        if out is not None:
            check_out(out, dtype, final_shape)  # the same check as DCIMGFile's
            if not out.flags.c_contiguous:
                np.copyto(out, self.read(key, out.dtype, None, threads))
                return out
            dtype = out.dtype
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if out is None:
            result = np.empty(inner_shape, dtype)
        else:
            # Drop the axes None added: a view, since out is contiguous.
            result = out.reshape(inner_shape)
        if result.size:
            if self.concat:
                jobs = self._concat_jobs(selection, result)
            else:
                jobs = self._grid_jobs(selection, result)
            self._run(jobs, threads)
        if out is not None:
            return out
        result = result.reshape(final_shape)
        return result[()] if result.ndim == 0 else result

    def view_inside_one_file(
        self, key: Any, dtype: Any, threads: int | None = None
    ) -> npt.NDArray[Any] | np.generic | None:
        """Read a selection inside one file with ``copy=False``, else None.

        A selection that picks one grid place (an integer, or a slice of one
        element, on every grid axis) is read by that file with
        ``copy=False``: a read-only view of its map where no overwritten
        pixel needs restoring. Anything else returns None (read it whole).
        """
        grid = len(self.grid_shape)
        items = key if isinstance(key, tuple) else (key,)
        if self.concat or not grid or len(items) < grid or self.filled:
            return None
        position, kept = [], 0
        for item, n in zip(items[:grid], self.grid_shape, strict=True):
            if isinstance(item, slice):
                places = range(*item.indices(n))
                if len(places) != 1:
                    return None
                position.append(places[0])
                kept += 1
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not -n <= item < n:
                    return None  # the usual read says which index is wrong
                position.append(int(item) % n)
            else:
                return None
        flat = int(np.ravel_multi_index(tuple(position), self.grid_shape))
        pixels = self.file(flat).read(
            items[grid:] or Ellipsis, dtype=dtype, copy=False, threads=threads
        )
        if not kept:
            return pixels
        return np.asarray(pixels).reshape((1,) * kept + np.shape(pixels))

    def _grid_jobs(
        self, selection: list[int | range], result: np.ndarray
    ) -> list[tuple[int, Any, np.ndarray]]:
        """Split a read into (file, key inside the file, part of the result)."""
        ngrid = len(self.grid_shape)
        grid, inside = selection[:ngrid], selection[ngrid:]
        key = tuple(_to_slice(s) if isinstance(s, range) else s for s in inside)
        kept = [s for s in grid if isinstance(s, range)]
        per_axis = [s if isinstance(s, range) else (s,) for s in grid]
        strides = np.cumprod((1, *self.grid_shape[::-1]))[-2::-1] if ngrid else ()
        positions = itertools.product(*(range(len(r)) for r in kept))
        jobs = []
        for position, indices in zip(
            positions, itertools.product(*per_axis), strict=True
        ):
            flat = int(sum(i * s for i, s in zip(indices, strides, strict=True)))
            # Each file writes straight into its part of the result.
            part: tuple[int | EllipsisType, ...] = (*position, Ellipsis)
            jobs.append((flat, key, result[part]))
        return jobs

    def _concat_jobs(
        self, selection: list[int | range], result: np.ndarray
    ) -> list[tuple[int, Any, np.ndarray]]:
        """Split a read of joined frames into per-file reads."""
        frames, rows, columns = selection
        inside = tuple(
            _to_slice(s) if isinstance(s, range) else s for s in (rows, columns)
        )
        offsets = self.offsets
        if not isinstance(frames, range):
            k = int(np.searchsorted(offsets, frames, side="right")) - 1
            return [(k, (frames - int(offsets[k]), *inside), result)]
        wanted = np.arange(frames.start, frames.stop, frames.step, dtype=np.int64)
        owner = np.searchsorted(offsets, wanted, side="right") - 1
        starts = np.flatnonzero(np.diff(owner, prepend=-1))
        ends = np.append(starts[1:], wanted.size)
        jobs = []
        for j0, j1 in zip(starts.tolist(), ends.tolist(), strict=True):
            k = int(owner[j0])
            local = range(
                int(wanted[j0] - offsets[k]),
                int(wanted[j0] - offsets[k]) + frames.step * (j1 - j0),
                frames.step,
            )
            jobs.append((k, (_to_slice(local), *inside), result[j0:j1]))
        return jobs

    def _run(self, jobs: list[tuple[int, Any, np.ndarray]], threads: int) -> None:
        """Read every job's file part into its view, on up to ``threads``.

        ``threads=1`` keeps everything on the calling thread, the copy kernel
        included (Dask tasks: the scheduler already runs them in parallel).
        """
        kernel_threads = 1 if threads == 1 else None

        def one(job: tuple[int, Any, np.ndarray], copy_threads: int | None) -> None:
            index, key, view = job
            if self.filled:
                self._read_filled(index, key, view, copy_threads)
                return
            self.file(index).read(key, out=view, threads=copy_threads)

        nbytes = sum(view.nbytes for _, _, view in jobs)
        threads = min(threads, len(jobs))
        if threads < 2 or nbytes < _PARALLEL_BYTES:
            for job in jobs:
                one(job, kernel_threads)
            return
        # Opening a file holds the GIL but copying its pixels does not, and
        # the page faults of fresh mappings are served in parallel: reading
        # several files at once overlaps them.
        # Files are read in parallel here, so each copy stays on its thread.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for done in pool.map(one, jobs, itertools.repeat(1)):
                del done

    @property
    def filled(self) -> bool:
        """Whether some places read as ``fill_value``: missing or short files."""
        return self._filled

    def _read_filled(
        self, index: int, key: tuple[Any, ...], view: np.ndarray, threads: int | None
    ) -> None:
        """Read file ``index``'s part of a read where places are filled.

        A missing file's part is ``fill_value``; so are the frames past the
        end of a file shorter than the others. The value is that of a
        pixel of the files' type, converted as their pixels are.
        """
        fill = np.asarray(self.fill_value, self.dtype).astype(view.dtype)
        if index in self.missing:
            view[...] = fill
            return
        have, nframes = self.frames[index], self.shape[-3]
        frames, inside = key[0], key[1:]
        f = self.file(index)
        if have >= nframes:
            f.read(key, out=view, threads=threads)
        elif not isinstance(frames, slice):
            if frames < have:
                f.read(key, out=view, threads=threads)
            else:
                view[...] = fill
        else:
            wanted = range(*frames.indices(nframes))
            positions = np.arange(wanted.start, wanted.stop, wanted.step)
            kept = np.flatnonzero(positions < have)
            # The frames a file has are one run of the wanted ones: the
            # first (step > 0) or the last (step < 0).
            start, stop = (int(kept[0]), int(kept[-1]) + 1) if kept.size else (0, 0)
            view[:start] = fill
            view[stop:] = fill
            if stop > start:
                part = _to_slice(wanted[start:stop])
                f.read((part, *inside), out=view[start:stop], threads=threads)


# ----------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class SeriesMetadata:
    """Description of a series: its first file's metadata and every file's losses.

    Attributes
    ----------
    first : dcimg.Metadata
        The metadata of the first file (camera, geometry, sub-array, ...);
        every file agrees with it on width, height, dtype and layout.
    files : tuple of str
        Every file, in counter order (C order of the grid).
    grid_shape : tuple of int
        Shape of the grid of files (one entry per axis).
    axes : str
        Names of the grid axes (empty with ``concat=True``).
    shape : tuple of int
        Shape of the series array.
    concat : bool
        Whether the files' frames are joined along one frame axis.
    frames : tuple of int
        Frames of every file.
    dropped_frames : tuple of tuple of int
        For every file, the frame indices after which its frame counter
        jumps (see ``dropped_frames`` of :class:`dcimg.Metadata`).
    dropped_frame_count : tuple of int
        For every file, the number of frames missing inside it.
    first_timestamp, last_timestamp : str or None
        Earliest and latest frame time stamp of the whole series (ISO 8601,
        UTC), or None when no file has time stamps.
    missing : tuple of str
        With ``missing="fill"``: the files absent from their places of the
        grid (named as their neighbours are), which read as ``fill_value``.
    incomplete : tuple of str
        With ``missing="fill"``: the files with fewer frames than the series
        (cut short, or still being written); their missing frames read as
        ``fill_value``.
    fill_value : int
        What the places of ``missing`` and ``incomplete`` read as.
    """

    first: Metadata
    files: tuple[str, ...]
    grid_shape: tuple[int, ...]
    axes: str
    shape: tuple[int, ...]
    concat: bool
    frames: tuple[int, ...]
    dropped_frames: tuple[tuple[int, ...], ...]
    dropped_frame_count: tuple[int, ...]
    first_timestamp: str | None
    last_timestamp: str | None
    missing: tuple[str, ...] = ()
    incomplete: tuple[str, ...] = ()
    fill_value: int = 0

    @property
    def total_dropped_frames(self) -> int:
        """Frames missing inside the files, summed over the series."""
        return sum(self.dropped_frame_count)

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as plain Python types (JSON-serialisable).

        Returns
        -------
        dict
            ``first`` is :meth:`dcimg.Metadata.to_dict` of the first file;
            tuples become lists.
        """
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "first":
                out["first"] = value.to_dict()
            elif isinstance(value, tuple):
                out[field.name] = [
                    list(v) if isinstance(v, tuple) else v for v in value
                ]
            else:
                out[field.name] = value
        out["total_dropped_frames"] = self.total_dropped_frames
        return out


# ----------------------------------------------------------------------
# The series


class DCIMGSeries(StackViews):
    """Numbered DCIMG files read as one N-dimensional array.

    The files' names end in counters (``name_000_012.dcimg``); the counters
    that vary make the leading axes of the array, each file's
    ``(frames, height, width)`` the last three.  Pixels are read on demand
    with NumPy basic indexing, exactly as :class:`dcimg.DCIMGFile` reads each
    file (stored-pixel correction included).

    Parameters
    ----------
    files : str, os.PathLike or sequence of them
        A folder (every ``*.dcimg`` in it, any ASCII letter case), a glob
        pattern (``"run/cell_*.dcimg"``), or the files themselves.  In a
        folder or glob, files whose names do not match the naming are
        skipped; in a sequence they are an error.
    pattern : str or re.Pattern, optional
        Regular expression that must match a whole file name (not the
        folder); each group captures one counter.  Default: the trailing
        groups of digits led by ``_`` or ``-`` before ``.dcimg``.
    axes : str, optional
        One letter per varying counter, in file-name order (e.g. ``"TZ"``).
        Default: the last letters of ``DEFAULT_AXES`` (``"Z"``,
        ``"TZ"``, ``"CTZ"``, ...).  Not used with ``concat=True``.
    concat : bool, default False
        Join the files' frames along one frame axis in counter order (an
        acquisition split into consecutive files): shape ``(total frames,
        height, width)``, and files may differ in frame count.
    first_4px_correction_enabled : bool or None, default True
        :attr:`dcimg.DCIMGFile.first_4px_correction_enabled` of every file.
    cache_size : int, default 64
        Files kept open (memory-mapped) at most.
    storage_options : dict, optional
        For URLs (``files`` may be an fsspec URL glob such as
        ``"s3://bucket/run3/*.dcimg"``, a URL folder ending in ``/``, or a
        list of URLs): the file system's options, as for
        :class:`dcimg.DCIMGFile`.
    missing : {"raise", "fill"}, default "raise"
        What to do when the grid has gaps (a run stopped early, or still
        running): ``"raise"`` refuses them (:class:`dcimg.DCIMGSeriesError`
        naming the missing files); ``"fill"`` reads each missing file's
        place, and the frames a file cut short lacks, as ``fill_value``
        (listed in :attr:`metadata` ``.missing`` and ``.incomplete``). Not
        with ``concat=True``. A grid of more than ``FILL_PLACES`` (10**6)
        places is refused.
    fill_value : int, default 0
        The pixel value of what ``missing="fill"`` fills, a value of the
        files' pixel type (``uint8`` or ``uint16``); reads with ``dtype=``
        convert it as they convert pixels.

    Raises
    ------
    dcimg.DCIMGSeriesError
        If no file is found, names do not parse, two files have the same
        counters, or the grid has gaps (the message names the missing files).
    dcimg.DCIMGFormatError
        If a file is not readable DCIMG, or disagrees with the first on
        width, height, dtype, layout or (unless ``concat``) frame count; the
        message names the files, the field and both values.
    OSError
        If a listed file cannot be opened (e.g. ``FileNotFoundError``).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from dcimg import DCIMGSeries
    >>> from dcimg.testing import write_series
    >>> truth = np.arange(2 * 3 * 1 * 4 * 5, dtype=np.uint16).reshape(2, 3, 1, 4, 5)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_series(folder, truth, name="cell")
    ...     with DCIMGSeries(folder) as series:
    ...         print(series.shape, series.axes)
    ...         print(np.array_equal(series[1, ::-1], truth[1, ::-1]))
    (2, 3, 1, 4, 5) TZ
    True
    """

    def __init__(
        self,
        files: Any,
        *,
        pattern: str | re.Pattern[str] | None = None,
        axes: str | None = None,
        concat: bool = False,
        first_4px_correction_enabled: bool | None = True,
        cache_size: int = DEFAULT_CACHE_SIZE,
        storage_options: dict[str, Any] | None = None,
        missing: Literal["raise", "fill"] = "raise",
        fill_value: int = 0,
    ) -> None:
        self._storage_options = dict(storage_options) if storage_options else None
        if missing not in _MISSING_MODES:
            raise ValueError(f"missing must be 'raise' or 'fill', not {missing!r}")
        if missing == "fill" and concat:
            raise ValueError(
                "missing='fill' fills places of a grid of files, which "
                "concat=True joins (a missing file's frame count is unknown)"
            )
        if isinstance(fill_value, (bool, np.bool_)):
            raise TypeError(f"fill_value must be an integer, not {fill_value!r}")
        try:
            fill = operator.index(fill_value)
        except TypeError:
            raise TypeError(
                f"fill_value must be an integer pixel value, not {fill_value!r}"
            ) from None
        if not 0 <= fill <= 0xFFFF:
            raise ValueError(
                f"fill_value={fill} is not a pixel value (uint8 or uint16: 0 to 65535)"
            )
        self._fill = missing == "fill"
        self._fill_value = fill
        if first_4px_correction_enabled not in (True, False, None):
            raise TypeError(
                "first_4px_correction_enabled must be True, False or None, not "
                f"{first_4px_correction_enabled!r}"
            )
        cache_size = operator.index(cache_size)
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, not {cache_size}")
        try:
            regex = None if pattern is None else re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"pattern={pattern!r} is not a regular expression: {exc}"
            ) from exc
        # What refresh() lists again.
        self._source = files
        self._regex = regex
        paths, listed = _candidates(files, self._storage_options)
        grid = self._located(paths, listed, files)
        if concat:
            if axes is not None:
                raise ValueError("axes= names grid axes, which concat=True joins")
            self._axes = ""
        else:
            self._axes = _axis_names(axes, len(grid.shape))
        # Whether refresh() may name axes that appear (see there).
        self._axes_given = axes is not None
        self._concat = bool(concat)
        self._counters = () if concat else grid.counters
        self._pattern = None if regex is None else regex.pattern
        self._closed = False
        self._members = self._check_members(
            grid, first_4px_correction_enabled, cache_size
        )

    def _located(self, paths: list[str], listed: bool, source: Any) -> _Grid:
        """Sort ``paths`` into a grid; with missing="fill", mark absent listed files."""
        grid = _grid(paths, listed, self._regex, source, fill=self._fill)
        if not (self._fill and listed):
            return grid
        # Files named in a list may not exist (yet): their places are filled.
        absent = [
            i
            for i, path in enumerate(grid.paths)
            if not is_url(path) and not os.path.lexists(path)
        ]
        if not absent:
            return grid
        missing = tuple(sorted({*grid.missing, *absent}))
        if len(missing) == len(grid.paths):
            raise DCIMGSeriesError(
                f"none of the files of the series exists: {_listing(grid.paths)}",
                display_url(grid.paths[0]),
            )
        return dataclasses.replace(grid, missing=missing)

    def _check_members(
        self, grid: _Grid, correction: bool | None, cache_size: int
    ) -> _Members:
        """Open every file's header and check that it agrees with the first."""
        skipped = set(grid.missing)
        present = [i for i in range(len(grid.paths)) if i not in skipped]
        probed, opened_present = _probe_members(
            [grid.paths[i] for i in present],
            correction,
            self._storage_options,
            cache_size,
        )
        opened = [(present[i], f) for i, f in opened_present]
        # One row per place; a missing file's row is the first file's, with
        # no frames and no identity.
        table = np.empty((len(grid.paths), probed.shape[1]), dtype=np.int64)
        table[present] = probed
        if skipped:
            blank = probed[0].copy()
            blank[_FRAMES] = 0
            blank[_IDENTITY] = -1
            table[sorted(skipped)] = blank
        # Files of a joined series may differ in frame count; with
        # missing="fill", a file with fewer frames (cut short) is filled.
        checked = {
            "width": _WIDTH,
            "height": _HEIGHT,
            "dtype": _DEPTH,
            "layout": _LAYOUT,
            **({} if self._concat or self._fill else {"frames": _FRAMES}),
        }
        columns = list(checked.values())
        reference = probed[0]
        odd = np.flatnonzero((table[:, columns] != reference[columns]).any(axis=1))
        if odd.size:

            def shown(column: int, value: int) -> str:
                if column == _DEPTH:
                    return str(np.dtype(f"u{value}"))
                return _LAYOUT_NAMES[value] if column == _LAYOUT else str(value)

            problems = [
                (grid.paths[i], field, shown(c, table[i, c]), shown(c, reference[c]))
                for i in odd.tolist()
                for field, c in checked.items()
                if table[i, c] != reference[c]
            ]
            path, field, value, expected = problems[0]
            details = "; ".join(
                f"{display_url(p)!r}: {fld} {v} (first file: {e})"
                for p, fld, v, e in problems[:_LIST_AT_MOST]
            )
            if len(problems) > _LIST_AT_MOST:
                details += f"; and {len(problems) - _LIST_AT_MOST} more"
            raise DCIMGFormatError(
                f"{len(problems)} series member(s) disagree with the first file "
                f"{display_url(grid.paths[present[0]])!r}: {details}",
                field,
                display_url(path),
            )
        dtype = np.dtype(f"u{reference[_DEPTH]}")
        if self._fill and self._fill_value > np.iinfo(dtype).max:
            raise ValueError(
                f"fill_value={self._fill_value} is not a pixel value of the "
                f"series' type {dtype} (0 to {np.iinfo(dtype).max})"
            )
        members = _Members(
            paths=grid.paths,
            identities=tuple(map(tuple, table[:, _IDENTITY].tolist())),
            frames=tuple(table[:, _FRAMES].tolist()),
            grid_shape=grid.shape,
            image_shape=(int(reference[_HEIGHT]), int(reference[_WIDTH])),
            dtype=dtype,
            concat=self._concat,
            correction=correction,
            cache_size=cache_size,
            storage_options=self._storage_options,
            missing=grid.missing,
            fill_value=self._fill_value,
        )
        # The last files checked stay open, as many as the cache holds.
        for index, f in opened:
            members.put(index, f)
        return members

    # ------------------------------------------------------------------
    # Description

    @property
    def files(self) -> np.ndarray:
        """The paths (absolute ``str``), shaped like the grid of files.

        With ``concat=True``, one dimension in counter order.
        """
        paths = np.empty(len(self._members.paths), dtype=object)
        paths[:] = self._members.paths
        if self._concat:
            return paths
        return paths.reshape(self._members.grid_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape followed by ``(frames, height, width)``.

        With ``concat=True``: ``(total frames, height, width)``.
        """
        return self._members.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._members.shape)

    @property
    def size(self) -> int:
        """Number of pixels."""
        return math.prod(self._members.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the whole series occupies once read."""
        return self.size * self.dtype.itemsize

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the files: ``uint8`` or ``uint16``."""
        return self._members.dtype

    @property
    def axes(self) -> str:
        """One letter per grid axis (the leading axes of :attr:`shape`).

        Empty with ``concat=True`` and for a single file.
        """
        return self._axes

    @property
    def token(self) -> str:
        """A digest of everything that determines the pixels read.

        The same for the same files opened again the same way; another if a
        member changed (size, modification time, device and inode), or the
        correction mode differs. Dask names its arrays after it.
        """
        return self._require_open().token

    @property
    def counters(self) -> tuple[np.ndarray, ...]:
        """The counter values along each grid axis (``int64``), ascending."""
        return tuple(c.copy() for c in self._counters)

    @property
    def concat(self) -> bool:
        """Whether the files' frames are joined along one frame axis."""
        return self._concat

    @property
    def pattern(self) -> str | None:
        """The ``pattern`` given, or None for the default naming."""
        return self._pattern

    @property
    def frames(self) -> np.ndarray:
        """Frames in every file, shaped like :attr:`files`."""
        return np.array(self._members.frames, dtype=np.int64).reshape(self.files.shape)

    @property
    def first_4px_correction_enabled(self) -> bool | None:
        """The stored-pixel correction of every file (fixed at creation).

        See :attr:`dcimg.DCIMGFile.first_4px_correction_enabled`.
        """
        return self._members.correction

    @property
    def cache_size(self) -> int:
        """Most files kept open at once."""
        return self._members.cache_size

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        return self._members.shape[0]

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        axes = f" axes={self._axes!r}" if self._axes else ""
        state = " closed" if self._closed else ""
        return (
            f"<DCIMGSeries {len(self._members.paths)} files{axes} shape={shape} "
            f"dtype={self.dtype}{' concat' if self._concat else ''}{state}>"
        )

    # ------------------------------------------------------------------
    # Life cycle

    def close(self) -> None:
        """Forget the open files; reading afterwards raises ``ValueError``.

        Safe to call more than once.  Dask arrays made earlier keep working:
        they hold paths only.
        """
        self._closed = True
        self._members.clear()

    def refresh(self) -> tuple[int, ...]:
        """Look for the files again: take in those that appeared since opening.

        For an acquisition still running (a time-lapse writing one file per
        time point) or a series opened with ``missing="fill"`` whose missing
        files have since arrived: the folder, glob or list given is read
        again, and the series from then on reads the grid it now makes.
        New counter values grow :attr:`shape` (and a counter that did not
        vary yet, as with the first file of a time-lapse, adds its axis in
        front, named as by default, unless ``axes`` was given); places
        filled before read their file once it exists; with
        ``missing="fill"``, a file with fewer frames than the others (still
        being written) is read again, with the frames it has now.  Files
        already read must be unchanged.

        Reads and Dask arrays made earlier are not changed: a Dask array
        (and an xarray made from one) keeps the shape, files and filled
        places of when it was made, and reads exactly those; make a new one
        to see the new files.  On an error the series stays as it was.

        Returns
        -------
        tuple of int
            The new :attr:`shape`.

        Raises
        ------
        dcimg.DCIMGSeriesError
            If the files no longer make a grid (with ``missing="raise"``: a
            gap, such as a time point whose files are still being written),
            or the number of grid axes changed.
        dcimg.DCIMGFormatError
            If a new file disagrees with the others (frame size, type,
            layout; with ``missing="raise"``, frame count).
        dcimg.DCIMGChangedError
            If a file the series read before changed or disappeared.
        """
        members = self._require_open()
        paths, listed = _candidates(self._source, self._storage_options)
        grid = self._located(paths, listed, self._source)
        axes = self._axes
        if not self._concat and len(grid.shape) != len(axes):
            grows = len(grid.shape) > len(axes) and not self._axes_given
            if not grows:
                raise DCIMGSeriesError(
                    f"the files now vary in {len(grid.shape)} counters, not "
                    f"{len(axes)} ({axes!r}); open the series again",
                    display_url(grid.paths[0]),
                )
            # A counter that did not vary yet (one time point so far) now
            # does: it gets its default name, as when opened now.
            axes = _axis_names(None, len(grid.shape))
        new = self._check_members(grid, members.correction, members.cache_size)
        if (new.image_shape, new.dtype) != (members.image_shape, members.dtype):
            raise DCIMGFormatError(
                f"the files now have frames of {new.image_shape} {new.dtype}, "
                f"not {members.image_shape} {members.dtype}; open the series again",
                "frame size",
                display_url(grid.paths[0]),
            )
        # The files read so far, by path: they must be there, unchanged
        # (but for a file still being written, with missing="fill").
        nframes = members.shape[-3]
        before = {
            path: k for k, path in enumerate(members.paths) if k not in members.missing
        }
        kept: dict[int, int] = {}
        for k, path in enumerate(new.paths):
            old = before.pop(path, None)
            if old is None:
                continue
            if k in new.missing:
                before[path] = old  # reported below
                continue
            if new.identities[k] != members.identities[old]:
                growing = self._fill and members.frames[old] < nframes
                if not growing:
                    raise DCIMGChangedError(
                        f"{display_url(path)!r} changed since the series read it "
                        f"({members._differs(old, new.identities[k])}); "
                        "open the series again",
                        display_url(path),
                    )
                continue
            kept[old] = k
        if before:
            gone = sorted(before)
            raise DCIMGChangedError(
                f"{len(gone)} file(s) of the series disappeared: "
                f"{_listing([display_url(p) for p in gone])}; open the series again",
                display_url(gone[0]),
            )
        # The files open now stay open under their new places.
        with members._lock:
            still_open = [(kept[k], f) for k, f in members._cache.items() if k in kept]
        for k, f in still_open:
            if not f.closed:
                new.put(k, f)
        if not self._concat:
            self._axes = axes
            self._counters = grid.counters
        self._members = new
        return new.shape

    def __enter__(self) -> DCIMGSeries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # The paths and options: no open file and no cached per-frame data.
        state = dict(self.__dict__)
        for name in ("_stamps", "metadata"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _require_open(self) -> _Members:
        if self._closed:
            raise ValueError("I/O operation on a closed DCIMG series")
        return self._members

    # ------------------------------------------------------------------
    # Pixels

    # A tuple of integers is one pixel when there is one per axis (a NumPy
    # scalar), and an array otherwise; every other index gives an array.
    # The overloads overlap (a tuple of integers is also a _Key) and the first
    # wins, as for DCIMGFile.read.
    @overload
    def read(  # type: ignore[overload-overlap]
        self,
        key: tuple[SupportsIndex, ...],
        *,
        out: npt.NDArray[Any] | None = ...,
        **options: Unpack[ReadOptions],
    ) -> npt.NDArray[Any] | np.generic: ...
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
        """Read a basic-index selection of the series.

        ``series.read(key)`` equals ``series[key]`` and equals the same index
        applied to ``np.stack`` (or, with ``concat=True``,
        ``np.concatenate``) of the files read one by one.

        Parameters
        ----------
        key : index, default ``...``
            Any NumPy basic index over :attr:`shape`: integers, slices (any
            step), ``...`` and ``None``.
        dtype : numpy dtype, optional
            Type of the result; default the files'.  Converted inside each
            file's copy.
        out : numpy.ndarray, optional
            C-contiguous, writable array of the result's shape to fill; its
            dtype is used when ``dtype`` is not given.
        copy : bool, default True
            False lets a selection that lies inside one file come back as
            that file's read-only view (:meth:`dcimg.DCIMGFile.read` with
            ``copy=False``: a view where no overwritten pixel needs
            restoring, else a copy); a selection across files is a copy.
        threads : int, optional
            Files read at the same time (and threads of each file's copy for
            a selection inside one file); default 4 for reads across files.

        Returns
        -------
        numpy.ndarray or numpy scalar
            The pixels.

        Raises
        ------
        IndexError
            For an index NumPy would refuse, and for advanced indices.
        ValueError
            If the series is closed, or ``out`` does not fit.
        """
        members = self._require_open()
        threads = check_threads(threads)
        if not copy and out is None:
            view = members.view_inside_one_file(key, dtype, threads)
            if view is not None:
                return view
        return members.read(key, dtype=dtype, out=out, threads=threads or _READ_THREADS)

    @overload
    def __getitem__(  # type: ignore[overload-overlap]  # as read's
        self, key: tuple[SupportsIndex, ...]
    ) -> npt.NDArray[Any] | np.generic: ...
    @overload
    def __getitem__(self, key: _Key) -> npt.NDArray[Any]: ...
    def __getitem__(self, key: _Key) -> Any:
        """Read pixels with NumPy basic indexing; see :meth:`read`."""
        return self._require_open().read(key, threads=_READ_THREADS)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError(
                "a DCIMG series cannot be turned into an array without a copy"
            )
        return np.asarray(self.read(..., dtype=dtype))

    def file(self, position: Any) -> DCIMGFile:
        """Return the open :class:`~dcimg.DCIMGFile` at a grid position.

        Parameters
        ----------
        position : int or tuple of int
            Index into :attr:`files` (negative values count from the end).

        Returns
        -------
        dcimg.DCIMGFile
            The file, shared with the series' cache (if it is closed, the
            series opens it again when it needs it).
        """
        members = self._require_open()
        shape = self.files.shape
        index = position if isinstance(position, tuple) else (position,)
        if len(index) != len(shape):
            raise IndexError(
                f"a file position has {len(shape)} indices, not {len(index)}"
            )
        normal = []
        for i, n in zip(index, shape, strict=True):
            i = operator.index(i)
            if not -n <= i < n:
                raise IndexError(
                    f"file position {position} is outside the grid {shape}"
                )
            normal.append(i % n)
        flat = np.ravel_multi_index(tuple(normal), shape) if shape else 0
        return members.file(int(flat))

    # ------------------------------------------------------------------
    # Per-frame data

    @property
    def _stamps(self) -> tuple[np.ndarray, np.ndarray]:
        return self._stamps_of(self._members)

    def _stamps_of(self, members: _Members) -> tuple[np.ndarray, np.ndarray]:
        # Kept with the members they were read from, so that refresh()
        # (which puts new members in place) never meets stale ones.
        found: tuple[np.ndarray, np.ndarray] | None = members.derived.get("stamps")
        if found is None:
            self._require_open()
            found = members.derived.setdefault("stamps", self._read_stamps(members))
        return found

    def _read_stamps(self, members: _Members) -> tuple[np.ndarray, np.ndarray]:
        lead = members.shape[:-2]
        total = math.prod(lead)
        times = np.full(total, np.datetime64("NaT", "us"))
        counters = np.full(total, -1, dtype=np.int64)
        for k in range(len(members.paths)):
            if k in members.missing:
                continue
            f = members.file(k)
            if self._concat:
                lo, hi = int(members.offsets[k]), int(members.offsets[k + 1])
            else:
                # A file cut short (missing="fill") fills the start of its
                # place.
                lo = k * members.shape[-3]
                hi = lo + members.frames[k]
            t = f.timestamps
            if t.shape == (hi - lo,):
                times[lo:hi] = t
            c = f.framestamps
            if c.shape == (hi - lo,):
                counters[lo:hi] = c
        return times.reshape(lead), counters.reshape(lead)

    @property
    def timestamps(self) -> np.ndarray:
        """Time stamp of every frame, ``datetime64[us]`` (UTC).

        Shape :attr:`shape` without ``(height, width)``: the grid's axes and
        the frames (with ``concat=True``, one axis).  ``NaT`` where a file
        lost its time stamps.
        """
        return self._stamps[0].copy()

    @property
    def framestamps(self) -> np.ndarray:
        """The camera's frame counter of every frame (``int64``).

        Shaped like :attr:`timestamps`; ``-1`` where a file lost them.
        """
        return self._stamps[1].copy()

    @property
    def metadata(self) -> SeriesMetadata:
        """The first file's metadata and every file's dropped frames.

        Read once (again after :meth:`refresh`).
        """
        members = self._members
        found: SeriesMetadata | None = members.derived.get("metadata")
        if found is None:
            self._require_open()
            found = members.derived.setdefault("metadata", self._read_metadata(members))
        return found

    def _read_metadata(self, members: _Members) -> SeriesMetadata:
        dropped: list[tuple[int, ...]] = []
        counts: list[int] = []
        for k in range(len(members.paths)):
            if k in members.missing:
                dropped.append(())
                counts.append(0)
                continue
            meta = members.file(k).metadata
            dropped.append(tuple(meta.dropped_frames))
            counts.append(int(meta.dropped_frame_count))
        present = [k for k in range(len(members.paths)) if k not in members.missing]
        nframes = members.shape[-3]
        times = self._stamps_of(members)[0]
        valid = times[~np.isnat(times)]
        first = last = None
        if valid.size:
            first = str(valid.min()) + "Z"
            last = str(valid.max()) + "Z"
        return SeriesMetadata(
            first=members.file(present[0]).metadata,
            files=tuple(display_url(p) for p in members.paths),
            grid_shape=members.grid_shape,
            axes=self._axes,
            shape=self.shape,
            concat=self._concat,
            frames=members.frames,
            dropped_frames=tuple(dropped),
            dropped_frame_count=tuple(counts),
            first_timestamp=first,
            last_timestamp=last,
            missing=tuple(
                display_url(members.paths[k]) for k in sorted(members.missing)
            ),
            incomplete=tuple(
                display_url(members.paths[k])
                for k in present
                if not self._concat and members.frames[k] < nframes
            ),
            fill_value=members.fill_value,
        )

    # ------------------------------------------------------------------
    # Dask and xarray: as_dask_array and to_xarray come from StackViews,
    # which asks the class what only it knows.

    _inline_graph = False  # every member's path: one key, not in every task

    def _chunk_reader(self) -> _Members:
        return self._require_open()

    def _xarray_parts(self) -> tuple[str | None, dict[str, Any], Sequence[Any]]:
        members = self._require_open()
        attrs = {
            "files": len(members.paths),
            "axes": self._axes,
            "concat": int(self._concat),
            "first_4px_correction_enabled": str(self.first_4px_correction_enabled),
        }
        return members.paths[0], attrs, self._counters

    def _chunk_blocks(
        self, chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[tuple[int, ...], ...]:
        """Block sizes of whole files: ``n`` files per chunk along one axis."""
        from dcimg._dask import chunk_limit

        members = self._members
        file_bytes = math.prod(members.image_shape) * dtype.itemsize
        if isinstance(chunks, (bool, np.bool_)):
            raise TypeError(f"chunks must be a file count or a size, not {chunks!r}")
        limit = chunk_limit(chunks)
        if limit is not None:
            largest = max(members.frames) if members.frames else 1
            per_chunk = max(1, limit // max(1, file_bytes * largest))
        else:
            try:
                per_chunk = operator.index(chunks)
            except TypeError:
                raise TypeError(
                    f"chunks must be a file count or a size, not {chunks!r}"
                ) from None
            if per_chunk < 1:
                raise ValueError(f"chunks must be at least 1 file, not {per_chunk}")
        if self._concat:
            frames = members.frames
            blocks = tuple(
                sum(frames[i : i + per_chunk]) for i in range(0, len(frames), per_chunk)
            )
            return (blocks or (0,), *((n,) for n in members.image_shape))
        grid = members.grid_shape
        result: list[tuple[int, ...]] = [(n,) if n else (0,) for n in shape]
        if grid:
            # Files per chunk along the last grid axis, one along the others.
            for axis in range(len(grid) - 1):
                result[axis] = (1,) * grid[axis]
            last = grid[-1]
            step = min(per_chunk, last)
            result[len(grid) - 1] = tuple(
                min(step, last - i) for i in range(0, last, step)
            )
        return tuple(result)

    # ------------------------------------------------------------------
    # Per-frame table and familiar names (nd2, tifffile, xarray)

    @overload
    def frame_table(self, *, as_frame: Literal[False] = ...) -> np.ndarray: ...
    @overload
    def frame_table(self, *, as_frame: Literal[True]) -> pd.DataFrame: ...
    def frame_table(self, *, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
        """Return one row per frame of the whole series, with its grid position.

        The table of :meth:`dcimg.DCIMGFile.frame_table` for every frame, in
        C order of :attr:`shape` (file after file), led by the frame's place.

        Parameters
        ----------
        as_frame : bool, default False
            Return a :class:`pandas.DataFrame` (needs pandas) instead of a
            NumPy structured array.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            One row per frame (``math.prod(shape[:-2])`` rows), with the
            fields: one ``int64`` per grid axis, named by its letter (the
            index along it, as in :attr:`shape`; with ``concat=True``,
            ``file`` instead: the index in :attr:`files`), then ``frame``
            (the index in the file, or along the joined axis with
            ``concat=True``), ``framestamp``, ``timestamp``, ``interval``
            and ``dropped`` as for a file.  ``interval`` and ``dropped``
            compare each frame with the row before it, so the first frame of
            a file is compared with the last one of the file before it.
            Places of missing files and missing frames (``missing="fill"``)
            have ``framestamp`` -1 and ``timestamp`` ``NaT``.

        Raises
        ------
        dcimg.MissingDependencyError
            With ``as_frame=True`` when pandas is not installed.
        """
        pandas = import_pandas(None) if as_frame else None
        # One version of the series throughout (refresh() may swap it).
        members = self._members
        times, counters = self._stamps_of(members)
        lead = members.shape[:-2]
        rows = math.prod(lead)
        if self._concat:
            order = np.arange(rows)
            owner = np.searchsorted(members.offsets, order, side="right") - 1
            leading = [("file", owner)]
            frame = order
        else:
            places = np.unravel_index(np.arange(rows), lead)
            leading = list(zip(self._axes_of(members), places[:-1], strict=True))
            frame = places[-1]
        table = frame_table_of(leading, frame, counters.ravel(), times.ravel())
        if pandas is None:
            return table
        result: pd.DataFrame = pandas.DataFrame(table)
        return result

    @property
    def sizes(self) -> dict[str, int]:
        """Length of every axis by name, in order: the grid's, then ``t, y, x``.

        The names are the dimensions of :meth:`to_xarray` (the grid axes by
        their letters in :attr:`axes`, the frames ``"t"``), as nd2's
        ``sizes`` and xarray's ``DataArray.sizes`` give them.
        """
        members = self._members
        names = (*self._axes_of(members), *_FRAME_DIMS)
        return dict(zip(names, members.shape, strict=True))

    def _axes_of(self, members: _Members) -> str:
        """Return the names of ``members``' grid axes.

        :attr:`axes`, unless a refresh() on another thread is adding an
        axis (it names it by default) between the two reads.
        """
        axes = self._axes
        if self._concat or len(axes) == len(members.grid_shape):
            return axes
        return _axis_names(None, len(members.grid_shape))
