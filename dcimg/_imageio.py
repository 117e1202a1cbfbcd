"""imageio v3 plugin that reads Hamamatsu DCIMG files and series of them.

A file is read with :class:`dcimg.DCIMGFile`; a folder, with
``plugin="DCIMG"``, as one :class:`dcimg.DCIMGSeries`. The plugin reads either
through the :class:`dcimg.Stack` protocol they share.

imageio imports this module itself, the first time it opens a ``.dcimg`` file
(or when asked for ``plugin="DCIMG"``); it needs not be imported by hand.  The
plugin is registered by ``import dcimg`` and, without any import, by the
start-up hook ``_dcimg_imageio_hook`` (see ``docs/imageio.rst``).

Examples
--------
>>> import imageio.v3 as iio
>>> stack = iio.imread("run.dcimg")  # doctest: +SKIP
>>> first = iio.imread("run.dcimg", index=0, dtype="float32")  # doctest: +SKIP
>>> iio.immeta("run.dcimg", index=0)["timestamp"]  # doctest: +SKIP
numpy.datetime64('2024-09-05T16:53:17.250000')
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from types import EllipsisType
from typing import Any

import numpy as np
import numpy.typing as npt
from imageio.core.request import InitializationError, IOMode, Request
from imageio.core.v3_plugin_api import ImageProperties, PluginV3

from dcimg._stack import Stack
from dcimg._urls import display_url
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGFormatError, DCIMGSeriesError
from dcimg.series import DCIMGSeries

__all__ = ["DCIMGPlugin"]

# Every DCIMG file starts with these bytes (followed by three NULs).
_SIGNATURE = b"DCIMG\0"
# The extension the plugin is registered for (imageio lower-cases it).
_EXTENSION = ".dcimg"

#: What ``index`` may be: one frame, a range of frames, or all of them.
Index = int | slice | EllipsisType | None


def _source_of(request: Request) -> Any:
    """Return a local path to map, else a seekable file object to read in place."""
    from imageio.core.request import URI_FILENAME

    if request._uri_type == URI_FILENAME:
        return request.get_local_filename()
    handle = request.get_file()
    if getattr(handle, "seekable", lambda: False)():
        return handle
    return request.get_local_filename()  # imageio copies it to a temporary file


class DCIMGPlugin(PluginV3):
    """Read DCIMG files through imageio's v3 API.

    A DCIMG file is one stack of 2-D frames.  By default (``index=None`` or
    ``...``) the whole stack is one batch of shape ``(frames, height,
    width)``; an integer ``index`` selects one frame (negative values count
    from the end) and a :class:`slice` a range of frames.  Pixels are those of
    :meth:`dcimg.DCIMGFile.read`: the pixels that some cameras overwrite are
    put back.

    A folder of numbered files (with ``plugin="DCIMG"``: imageio hands no
    folder to a plugin it guesses) is read as one :class:`dcimg.DCIMGSeries`,
    of shape ``(*grid, frames, height, width)``; ``index`` then selects along
    its first axis. imageio takes neither glob patterns nor lists of files:
    open those with :class:`dcimg.DCIMGSeries` or :func:`dcimg.imread`.

    Paths, :class:`pathlib.Path` objects, ``bytes`` and file objects are all
    accepted.  Local files are memory-mapped; ``bytes`` and seekable file
    objects are read in place, through dcimg's range reader (no temporary
    copy); anything else (a stream that cannot seek) is first copied to a
    temporary file by imageio.

    Parameters
    ----------
    request : imageio.core.Request
        The resource to read, as imageio hands it to plugins.
    first_4px_correction_enabled : bool or None, default True
        See :attr:`dcimg.DCIMGFile.first_4px_correction_enabled` (pass it to
        :func:`imageio.v3.imopen`).

    Raises
    ------
    imageio.core.request.InitializationError
        When the resource is not a DCIMG file, or is opened for writing under
        another extension, so that imageio tries its other plugins.
    dcimg.DCIMGFormatError
        When the resource is a DCIMG file whose header is corrupt.
    OSError
        When asked to write a ``.dcimg`` file: dcimg only reads them.

    Examples
    --------
    >>> import imageio.v3 as iio
    >>> with iio.imopen("run.dcimg", "r") as f:  # doctest: +SKIP
    ...     f.properties().shape, f.file.framestamps[:3]
    ((20, 64, 80), array([0, 1, 2], dtype=uint32))
    """

    def __init__(
        self, request: Request, *, first_4px_correction_enabled: bool | None = True
    ) -> None:
        super().__init__(request)
        # ``close()`` may run from ``__del__`` even when construction fails.
        self._file: Stack | None = None
        if request.mode.io_mode != IOMode.read:
            if request.extension == _EXTENSION:
                # Refuse loudly: another plugin would write, say, a TIFF file
                # under the .dcimg name.
                shown = display_url(request.filename)
                raise OSError(
                    f"dcimg cannot write DCIMG files ({shown}); "
                    "save the image in another format, e.g. .tif"
                )
            raise InitializationError("the DCIMG plugin only reads files")
        from imageio.core.request import URI_FILENAME

        if request._uri_type == URI_FILENAME and os.path.isdir(request.filename):
            try:
                self._file = DCIMGSeries(
                    request.filename,
                    first_4px_correction_enabled=first_4px_correction_enabled,
                )
            except (DCIMGSeriesError, DCIMGFormatError) as error:
                raise InitializationError(str(error)) from error
            return
        first = bytes(request.firstbytes)
        # An empty .dcimg file (an export being rewritten in place, a copy
        # that failed) is no other plugin's either: say so, instead of
        # imageio's "could not find a backend".
        empty_dcimg = not first and request.extension == _EXTENSION
        if not first.startswith(_SIGNATURE) and not empty_dcimg:
            raise InitializationError(
                f"{display_url(request.filename)} is not a DCIMG file (it does "
                f"not start with the DCIMG signature {_SIGNATURE!r})"
            )
        try:
            self._file = DCIMGFile(
                _source_of(request),
                first_4px_correction_enabled=first_4px_correction_enabled,
            )
        except DCIMGFormatError as error:
            if error.field == "magic" and not empty_dcimg:
                raise InitializationError(str(error)) from error
            # A DCIMG file that no other plugin will read either: report the
            # precise problem, and release the resource (imageio does not).
            request.finish()
            raise

    # ------------------------------------------------------------------
    # Helpers

    @property
    def stack(self) -> Stack:
        """The open file or series (for everything imageio lacks)."""
        if self._file is None or self._file.closed:
            raise ValueError("I/O operation on a closed DCIMG plugin")
        return self._file

    @property
    def file(self) -> DCIMGFile:
        """The open :class:`dcimg.DCIMGFile`, when one file was opened."""
        stack = self.stack
        if not isinstance(stack, DCIMGFile):
            raise TypeError("a series was opened: use .stack")
        return stack

    def _key(self, index: Index) -> int | slice | EllipsisType:
        """Validate ``index``: an in-range frame number, a slice, or ``...``."""
        if index is None or index is Ellipsis:
            return Ellipsis
        if isinstance(index, slice):
            return index
        if isinstance(index, (bool, np.bool_)):
            raise TypeError("index must be an integer, a slice, ... or None")
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(
                "index must be an integer, a slice, ... or None, not "
                f"{type(index).__name__}"
            ) from None
        frames = self.stack.shape[0]
        if not -frames <= i < frames:
            raise IndexError(
                f"index {i} is out of range for an axis of {frames} entries"
            )
        return i % frames

    # ------------------------------------------------------------------
    # The v3 plugin interface

    def read(
        self, *, index: Index = None, dtype: npt.DTypeLike | None = None
    ) -> np.ndarray:
        """Read the whole stack, a range of frames, or one frame.

        Parameters
        ----------
        index : int, slice, ``...`` or None, default None
            None or ``...``: the whole stack, shape ``(frames, height,
            width)``; an integer: that frame, shape ``(height, width)``
            (negative values count from the end); a slice: those frames.
        dtype : numpy dtype, optional
            Type of the result, converted while copying; default the file's
            (``uint8`` or ``uint16``).

        Returns
        -------
        numpy.ndarray
            The corrected pixels, a new array.

        Raises
        ------
        IndexError
            When an integer ``index`` is out of range.
        """
        return np.asarray(self.stack.read(self._key(index), dtype=dtype))

    def iter(self, *, dtype: npt.DTypeLike | None = None) -> Iterator[np.ndarray]:
        """Yield the frames one at a time, without reading the whole stack.

        Parameters
        ----------
        dtype : numpy dtype, optional
            Type of each frame (see :meth:`read`).

        Yields
        ------
        numpy.ndarray
            One frame, shape ``(height, width)``.
        """
        stack = self.stack
        for i in range(stack.shape[0]):
            yield np.asarray(stack.read(i, dtype=dtype))

    def properties(
        self, index: Index = None, *, dtype: npt.DTypeLike | None = None
    ) -> ImageProperties:
        """Shape and type of what :meth:`read` returns, without reading it.

        Parameters
        ----------
        index : int, slice, ``...`` or None, default None
            As in :meth:`read`.
        dtype : numpy dtype, optional
            As in :meth:`read`.

        Returns
        -------
        imageio.core.v3_plugin_api.ImageProperties
            For the stack (or a slice): ``is_batch=True`` and ``n_images``
            the number of frames; for one frame: ``is_batch=False`` and
            ``n_images=None``.
        """
        stack = self.stack
        key = self._key(index)
        kind = stack.dtype if dtype is None else np.dtype(dtype)
        first, *rest = stack.shape
        if isinstance(key, int):
            return ImageProperties(shape=tuple(rest), dtype=kind)
        if isinstance(key, slice):
            first = len(range(*key.indices(first)))
        return ImageProperties(
            shape=(first, *rest),
            dtype=kind,
            n_images=first,
            is_batch=True,
        )

    def metadata(
        self, index: Index = None, exclude_applied: bool = True
    ) -> dict[str, Any]:
        """Everything the file records apart from its pixels.

        The file-wide entries are those of
        :meth:`dcimg.Metadata.to_dict` (``format_version`` and
        ``format_version_hex``, ``camera`` with ``model``, ``serial`` and
        ``versions``, ``sub_array``, ``binning``, ``frame_interval_s``,
        ``frame_rate_hz``, ``dropped_frames``, ``dropped_frame_count``,
        ``first_timestamp``, ``last_timestamp``, ``stored_pixels``, ...),
        with ``path`` the name imageio gives the resource.  To them are added
        the frames' counters and time stamps: for the stack or a slice,
        ``framestamps`` (``uint32`` array) and ``timestamps``
        (``datetime64[us]`` array, UTC); for one frame, ``index``,
        ``framestamp`` (int) and ``timestamp`` (:class:`numpy.datetime64`),
        None when the file lost them.

        Parameters
        ----------
        index : int, slice, ``...`` or None, default None
            As in :meth:`read`.
        exclude_applied : bool, default True
            Accepted for imageio's API; it changes nothing, since no entry is
            an instruction left to apply to the pixels (``stored_pixels``
            tells where the camera overwrote pixels, which are already put
            back).

        Returns
        -------
        dict
            The metadata.
        """
        stack = self.stack
        key = self._key(index)
        meta = stack.metadata.to_dict()
        meta["path"] = display_url(self.request.filename)  # no credentials
        counters = stack.framestamps
        stamps = stack.timestamps
        if isinstance(key, int) and stack.ndim == 3:
            meta["index"] = key
            meta["framestamp"] = int(counters[key]) if counters.size else None
            meta["timestamp"] = stamps[key] if stamps.size else None
        else:
            meta["framestamps"] = counters[key].copy()
            meta["timestamps"] = stamps[key]
        return meta

    def close(self) -> None:
        """Close the file, then release imageio's resource (and temporary file)."""
        file = getattr(self, "_file", None)
        self._file = None
        if file is None:
            # Construction failed: the request still belongs to imageio.
            return
        file.close()
        self.request.finish()
