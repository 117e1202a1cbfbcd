"""napari plugin: open DCIMG files as image layers, and the example data.

napari finds this module through the npe2 manifest ``dcimg/napari.yaml``,
which the ``napari.manifest`` entry point names (see ``docs/napari.rst``).
Nothing here imports napari: a reader only has to return "layer data"
tuples ``(data, kwargs, "image")``.

What a layer holds
------------------
``data``
    The corrected pixels, shape ``(frames, height, width)`` (a series:
    ``(*grid, frames, height, width)``). A NumPy array when the whole
    recording is at most :data:`IN_MEMORY_MAX_BYTES`, at most
    :data:`IN_MEMORY_FRACTION` of the memory available right now and (a
    series) in at most :data:`IN_MEMORY_MAX_FILES` files; otherwise a lazy
    Dask array that reads only the frames napari shows (so a 100 GB file, or
    a series of thousands of files, opens in a second or two). The
    environment variable ``DCIMG_NAPARI_LOAD`` (:data:`LOAD_ENV`) overrides
    that choice: ``memory`` or ``lazy`` (``auto``, the default, as above).
``name``
    The file's stem (``run_01`` for ``run_01.dcimg``).
``metadata``
    :meth:`dcimg.Metadata.to_dict` (camera, sub-array, stored pixels,
    dropped frames, ...) plus ``timestamps`` (``datetime64[us]``, one per
    frame) and ``framestamps`` (the camera's frame counters).
``contrast_limits``
    Minimum and maximum of at most :data:`CONTRAST_SAMPLE_FRAMES` frames
    spread over the recording (over all its files, for a series), so napari
    never scans a whole file to guess them.  A lazy layer reads at most
    about :data:`CONTRAST_SAMPLE_BYTES` of each of those frames: the whole
    frame when it fits, else bands of rows spread evenly over it (see
    :func:`_sample_windows`).

Declining
---------
:func:`napari_get_reader` never raises: whatever it cannot open (not DCIMG,
a damaged file, files that make no series, a URL whose file system is not
installed, a ``bytes`` path) it declines with None, and napari tries its
other readers.

Folders and lists of files (a series) are routed to :func:`_open_series`,
which opens them as one layer with :class:`dcimg.DCIMGSeries`.

Who reads a folder
------------------
The manifest says ``accepts_directories``, so npe2 offers this reader for
every folder -- and napari's built-in reader too, which claims every folder.
npe2 has no file-name patterns for folders, so neither napari nor npe2 can
tell from a folder's path that it holds DCIMG files: ``viewer.open(folder,
plugin="dcimg")`` and ``npe2.read([folder], stack=False,
plugin_name="dcimg")`` name this reader, and a reader preference in napari's
settings (``extension2reader``, a pattern of folder paths ending in ``/``)
makes napari choose it for the folders it matches (``docs/napari.rst``).
"""

from __future__ import annotations

import itertools
import math
import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dcimg._urls import display_url, is_url, url_path
from dcimg.core import DCIMGFile
from dcimg.series import DEFAULT_CACHE_SIZE, DCIMGSeries

__all__ = [
    "CONTRAST_SAMPLE_BYTES",
    "CONTRAST_SAMPLE_FRAMES",
    "IN_MEMORY_FRACTION",
    "IN_MEMORY_MAX_BYTES",
    "IN_MEMORY_MAX_FILES",
    "LOAD_ENV",
    "LOAD_MODES",
    "example_data",
    "napari_get_reader",
]

#: Largest recording (bytes of pixels) that is read into memory; larger ones
#: become Dask-backed layers.
IN_MEMORY_MAX_BYTES = 1 << 30
#: Largest share of the currently available memory that an in-memory layer
#: may take; the smaller of the two limits applies.
IN_MEMORY_FRACTION = 0.25
#: Largest series (number of files) read into memory: reading a file costs
#: opening it, so a series of thousands of small files opens lazily, reading
#: the files napari shows as it shows them.
IN_MEMORY_MAX_FILES = 100
#: Environment variable that chooses how a layer holds its pixels, read at
#: every open: one of :data:`LOAD_MODES`.
LOAD_ENV = "DCIMG_NAPARI_LOAD"
#: ``"auto"``: in memory within the limits above, else lazy; ``"memory"``:
#: in memory whenever the available memory holds it; ``"lazy"``: always a
#: Dask array.
LOAD_MODES = ("auto", "memory", "lazy")
#: Frames read to estimate the contrast limits (evenly spread, first and last
#: included).
CONTRAST_SAMPLE_FRAMES = 5
#: Bytes of pixels read at most from each of those frames, for a lazy layer
#: (an in-memory layer has its pixels already): 8 MiB holds a whole
#: 2048 x 2048 ``uint16`` frame; larger frames are sampled by bands of rows.
CONTRAST_SAMPLE_BYTES = 8 << 20
# Files of a series kept open at most while its layer is made (memory maps:
# far below the kernel's default limit of 65,530 per process).
_SERIES_CACHE_MAX = 4096
# Bands of contiguous rows a large frame's sample is made of: each is one read
# (one request at most, on a range source), spread evenly over the frame.
_CONTRAST_BANDS = 8

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]


def _available_memory() -> int | None:
    """Bytes of memory available now, or None when it cannot be told."""
    try:
        import psutil  # napari depends on it

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:  # POSIX without psutil: free pages only (an underestimate)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _load_mode() -> str:
    """Return the mode :data:`LOAD_ENV` asks for.

    ``"auto"`` when unset, and (with a warning) for anything that is not one
    of :data:`LOAD_MODES`.
    """
    text = os.environ.get(LOAD_ENV, "").strip().lower()
    if not text:
        return "auto"
    if text not in LOAD_MODES:
        warnings.warn(
            f"{LOAD_ENV}={os.environ[LOAD_ENV]!r} is not one of "
            f"{', '.join(LOAD_MODES)}: using auto",
            RuntimeWarning,
            stacklevel=3,
        )
        return "auto"
    return text


def _fits_in_memory(nbytes: int, files: int = 1) -> bool:
    """Whether a layer of ``nbytes`` in ``files`` files is read into memory.

    See the module's documentation: :data:`LOAD_ENV` decides, else the
    limits.  ``"memory"`` still goes lazy (with a warning) when the memory
    available now cannot hold the pixels, since a reader must not bring the
    viewer down.
    """
    mode = _load_mode()
    if mode == "lazy":
        return False
    available = _available_memory()
    if mode == "memory":
        if available is not None and nbytes > available:
            warnings.warn(
                f"{LOAD_ENV}=memory, but the layer's {nbytes} bytes exceed the "
                f"{available} bytes of memory available: reading it lazily",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        return True
    if nbytes > IN_MEMORY_MAX_BYTES or files > IN_MEMORY_MAX_FILES:
        return False
    return available is None or nbytes <= IN_MEMORY_FRACTION * available


def _sample_frames(nframes: int) -> list[int]:
    """Return the indices of the frames read for the contrast limits.

    ``nframes`` counts every frame of the stack (of all files of a series,
    whose frames are numbered in C order of its grid).
    """
    count = min(nframes, CONTRAST_SAMPLE_FRAMES)
    if count <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, nframes - 1, count).round()})


def _sample_windows(
    height: int, width: int, itemsize: int
) -> list[tuple[slice, slice]]:
    """Rows and columns of a frame read for its contrast limits.

    The whole frame when it holds at most :data:`CONTRAST_SAMPLE_BYTES`;
    otherwise up to 8 bands of contiguous whole rows, spread evenly over the
    frame, that hold that budget together (contiguous, because a range
    source reads every row between the first and the last one asked for; a
    row wider than the budget is cut to its middle, of which a memory map
    reads just that much).  Whatever the frame's size, about the budget is
    read.

    Returns
    -------
    list of (rows, columns)
        Basic indices of the frame's last two axes, one pair per read.
    """
    budget = CONTRAST_SAMPLE_BYTES
    columns = max(1, min(width, budget // itemsize))
    first = (width - columns) // 2
    window = slice(first, first + columns)
    row_bytes = width * itemsize
    if height * row_bytes <= budget:
        return [(slice(None), window)]
    rows = max(1, budget // row_bytes)  # rows read in all
    bands = min(_CONTRAST_BANDS, rows)
    band = rows // bands
    # Band k starts at the k-th of `bands` equal parts of the frame, moved to
    # the middle of that part.
    part = height / bands
    starts = [int(part * k + (part - band) / 2) for k in range(bands)]
    return [(slice(start, start + band), window) for start in starts]


def _contrast_limits(source: Any, in_memory: bool = False) -> list[float]:
    """Minimum and maximum over a few frames of ``source``.

    ``source`` has ``shape`` (grid axes, then frames, height, width) and
    ``read(key)`` (or is an array); only the sampled frames are read, spread
    over all the frames of all grid positions (first and last included),
    never the whole recording, and of each frame at most about
    :data:`CONTRAST_SAMPLE_BYTES` (:func:`_sample_windows`) unless
    ``in_memory`` says the pixels are in memory already.
    """
    shape = tuple(source.shape)
    planes = shape[:-2]
    if in_memory:
        windows: list[tuple[slice, ...]] = [()]
    else:
        itemsize = np.dtype(source.dtype).itemsize
        windows = list(_sample_windows(shape[-2], shape[-1], itemsize))
    low, high = None, None
    samples = _sample_frames(math.prod(planes))
    for flat, window in itertools.product(samples, windows):
        index = tuple(int(i) for i in np.unravel_index(flat, planes))
        key = (*index, *window)
        frame = np.asarray(source[key] if in_memory else source.read(key))
        if frame.size == 0:
            continue
        fmin, fmax = float(frame.min()), float(frame.max())
        low = fmin if low is None else min(low, fmin)
        high = fmax if high is None else max(high, fmax)
    if low is None or high is None:
        return [0.0, 1.0]
    if high <= low:  # a flat image: napari needs a non-empty range
        high = low + 1.0
    return [low, high]


def _layer_metadata(source: Any) -> dict[str, Any]:
    """Typed metadata as plain data, plus per-frame time stamps and counters."""
    meta: dict[str, Any] = {}
    typed = getattr(source, "metadata", None)
    if typed is not None and hasattr(typed, "to_dict"):
        meta.update(typed.to_dict())
    for key in ("timestamps", "framestamps"):
        value = getattr(source, key, None)
        if value is not None:
            meta[key] = np.asarray(value)
    return meta


def _layer_data(source: Any, name: str) -> LayerData:
    """Build napari's layer data tuple from an open file (or series)."""
    shape = tuple(int(n) for n in source.shape)
    nbytes = math.prod(shape) * np.dtype(source.dtype).itemsize
    kwargs: dict[str, Any] = {"name": name, "metadata": _layer_metadata(source)}
    files = math.prod(shape[:-3])  # 1 for a file
    if _fits_in_memory(nbytes, files):
        data = source.read(...)
        # The sampled frames whole: they are in memory already.
        kwargs["contrast_limits"] = _contrast_limits(data, in_memory=True)
    else:
        data = source.as_dask_array()
        kwargs["contrast_limits"] = _contrast_limits(source)
    grid_axes = tuple(getattr(source, "axes", "")[: len(shape) - 3])
    kwargs["axis_labels"] = (*grid_axes, "t", "y", "x")
    return (data, kwargs, "image")


def _name_part(path: str) -> str:
    """Return the part of ``path`` that names the file.

    For a URL, its path: without its query string (a presigned signature)
    or fragment.
    """
    return url_path(path) if is_url(path) else path


def _is_dcimg_name(path: str) -> bool:
    return _name_part(path).lower().endswith(".dcimg")


def _open_file(path: str) -> DCIMGFile | None:
    """Open a single file, or None when it cannot be opened.

    Missing, not DCIMG, damaged, or a URL whose file system is not
    installed (``ImportError``) or not known (``ValueError``): a viewer's
    reader declines what it cannot open rather than raise (any
    ``Exception``, since file systems raise their own types).
    """
    try:
        return DCIMGFile(path)
    except Exception:
        return None


def _open_series(paths: Sequence[str] | str) -> Any:
    """Open several files, or a folder, as one series, or None to decline.

    Returns None when the files cannot be opened as a DCIMG series (no DCIMG
    file, gaps, more counters than default axis names, a file that cannot
    be read, ...: any ``Exception``, as in :func:`_open_file`).  A folder is
    passed as it is, so that files in it that are not part of the series (a
    ``background.dcimg``) are skipped, as :class:`DCIMGSeries` does.

    The series keeps up to :data:`_SERIES_CACHE_MAX` of its files open while
    the layer is made: its metadata, time stamps and counters are gathered
    in passes over every file, which would otherwise open each file once per
    pass (twice the time for thousands of files).  An open file holds a map,
    no descriptor, and the reader closes the series once the layer is made.
    """
    files = paths if isinstance(paths, str) else list(paths)
    try:
        series = DCIMGSeries(files)
        places = math.prod(series.shape[:-3])
        if places > DEFAULT_CACHE_SIZE:
            series.close()
            series = DCIMGSeries(files, cache_size=min(places, _SERIES_CACHE_MAX))
        return series
    except Exception:
        return None


def _series_name(paths: Sequence[str], folder: str | None) -> str:
    """Layer name of a series: the folder's name, else the files' common stem.

    The common stem loses its trailing digits and separators: ``acq_00`` and
    ``acq_01`` give ``acq``.
    """
    if folder is not None:
        return pathlib.Path(os.path.abspath(folder)).name or "series"
    stems = [pathlib.Path(_name_part(p)).stem for p in paths]
    common = os.path.commonprefix(stems).rstrip("0123456789").rstrip("_-. ")
    return common or stems[0]


def _reader_for(source: Any, name: str) -> ReaderFunction:
    """Make the napari reader function that turns ``source`` into a layer."""

    def read(path: PathOrPaths) -> list[LayerData]:
        if getattr(source, "closed", False):  # called again: reopen
            source.open()
        try:
            return [_layer_data(source, name)]
        finally:
            # Dask-backed layers reopen the file by path: closing is safe.
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return read


def _text_path(path: Any) -> str | None:
    """``path`` as a ``str``, or None for anything else (``bytes`` included).

    napari passes ``str`` paths; ``bytes`` would have to be decoded the way
    the file system encodes names, which a viewer's reader has no reason to
    guess: it declines them.
    """
    try:
        text = os.fspath(path)
    except TypeError:
        return None
    return text if isinstance(text, str) else None


def napari_get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return a reader for a DCIMG file, a folder or a list of files.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open: one path, or several to open as one
        layer (``stack=True``).

    Returns
    -------
    callable or None
        A function that returns one image layer, or None when the input is
        not DCIMG or cannot be opened (napari then tries other readers).
        Never raises.
    """
    text: str | None
    if isinstance(path, (list, tuple)):
        found = [_text_path(p) for p in path]
        paths = [p for p in found if p is not None]
        if not paths or len(paths) != len(found):
            return None
        if len(paths) > 1:
            if not all(_is_dcimg_name(p) for p in paths):
                return None
            series = _open_series(paths)
            if series is None:
                return None
            return _reader_for(series, _series_name(paths, None))
        text = paths[0]
    else:
        text = _text_path(path)
    if text is None:
        return None
    path = text
    if os.path.isdir(path):
        # A folder without DCIMG files, or whose files make no series, is
        # declined (the series says so: no *.dcimg file, two series, ...).
        series = _open_series(path)
        if series is None:
            return None
        return _reader_for(series, _series_name([], path))
    if not _is_dcimg_name(path):
        return None
    dcimg_file = _open_file(path)
    if dcimg_file is None:
        return None
    if dcimg_file.shape[0] == 0:
        warnings.warn(
            f"{display_url(path)}: no complete frame to show",
            RuntimeWarning,
            stacklevel=2,
        )
        dcimg_file.close()
        return None
    return _reader_for(dcimg_file, pathlib.Path(_name_part(path)).stem)


def example_data() -> list[LayerData]:
    """Return the built-in example acquisition as napari sample data.

    Writes :func:`dcimg.testing.write_example` to a temporary folder, reads
    it the way the reader does (corrected pixels, metadata, time stamps) and
    removes the folder.

    Returns
    -------
    list of tuple
        One image layer, 20 frames of 64 x 80 ``uint16`` pixels.
    """
    from dcimg.testing import write_example

    with tempfile.TemporaryDirectory(prefix="dcimg-example-") as folder:
        path = write_example(pathlib.Path(folder) / "example.dcimg")
        with DCIMGFile(path) as f:
            data, kwargs, layer_type = _layer_data(f, "DCIMG example")
            data = np.array(data)  # own the pixels before the file goes
    return [(data, kwargs, layer_type)]
