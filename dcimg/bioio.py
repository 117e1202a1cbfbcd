"""bioio reader plugin: ``BioImage("run.dcimg")`` reads DCIMG files.

bioio finds readers through the ``bioio.readers`` entry point; this package
registers this module there under its own distribution name (``dcimg``), and
the module exposes the two names bioio looks for, :class:`Reader` and
:class:`ReaderMetadata`. Install with ``pip install "dcimg[bioio]"``; see
``docs/bioio.rst``.

The image has one scene, ``"Image:0"``, and the dimensions ``TCZYX``: the
frames on ``T`` (its coordinate is the time in seconds since the first
frame, from the frames' time stamps), one channel, one plane. The pixels are
those of :meth:`dcimg.DCIMGFile.read`, with the overwritten pixels restored.

A folder of numbered files is one image too (:class:`dcimg.DCIMGSeries`):
each grid axis of the series goes to the dimension of its letter (``T``,
``C`` or ``Z``), and the files' frames to ``frames_axis`` (``T`` unless
told otherwise).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import xarray as xr
    from bioio_base import constants, exceptions
    from bioio_base.dimensions import DimensionNames
    from bioio_base.io import pathlike_to_fs
    from bioio_base.reader import Reader as _BaseReader
    from bioio_base.reader_metadata import ReaderMetadata as _BaseReaderMetadata
    from bioio_base.types import PhysicalPixelSizes
except ImportError as exc:  # pragma: no cover - exercised without bioio
    from dcimg.errors import MissingDependencyError

    raise MissingDependencyError(
        'the bioio plugin needs the optional dependency: pip install "dcimg[bioio]"',
        "bioio",
    ) from exc

from dcimg._stack import Stack
from dcimg._urls import display_url, redact, secrets_of
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGFormatError, DCIMGSeriesError
from dcimg.metadata import Metadata
from dcimg.series import DCIMGSeries, SeriesMetadata

__all__ = ["DEFAULT_CHANNEL_NAME", "Reader", "ReaderMetadata"]

#: Name of the single channel unless ``channel_name=`` is given: bioio's own
#: identifier of the first channel of the first image.
DEFAULT_CHANNEL_NAME = "Channel:0:0"

_DIMS = "TCZYX"
_SCENE = "Image:0"


def _local_path(fs: Any, path: str) -> str | None:
    """Return the path on the local disk, or None for a remote file system."""
    protocol = getattr(fs, "protocol", "file")
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if "file" not in protocols and "local" not in protocols:
        return None
    return path


class Reader(_BaseReader):
    """Read a DCIMG file, or a folder of numbered files, with bioio.

    Parameters
    ----------
    image : str or os.PathLike
        A local ``.dcimg`` file, or a folder read as one
        :class:`dcimg.DCIMGSeries`.
    fs_kwargs : dict, optional
        Passed to fsspec by bioio; only local files are supported.
    channel_name : str, optional
        Name of the single channel (``C`` coordinate); default
        :data:`DEFAULT_CHANNEL_NAME`. DCIMG files record no channel name.
    physical_pixel_sizes : PhysicalPixelSizes or tuple of 3 float, optional
        ``(Z, Y, X)`` pixel sizes; DCIMG files record none, so they are
        ``None`` unless given here.
    first_4px_correction_enabled : bool or None, default True
        See :attr:`dcimg.DCIMGFile.first_4px_correction_enabled`.
    frames_axis : {"T", "C", "Z"}, default "T"
        The dimension of each file's frames (a series' grid axes take the
        dimensions of their letters).
    **kwargs
        Ignored (bioio passes its own options through).

    Raises
    ------
    bioio_base.exceptions.UnsupportedFileFormatError
        If the file is not DCIMG or not on a local file system, or a
        series' axes do not map onto distinct ``T``, ``C`` and ``Z``.

    Notes
    -----
    :attr:`metadata` is the typed :class:`dcimg.Metadata`;
    ``xarray_dask_data.attrs["unprocessed"]`` holds its ``to_dict()`` form.
    :attr:`time_interval` is the median interval between the frames' time
    stamps, None when the file has no time stamps (an interrupted packed
    acquisition) or a single frame.
    """

    NAME = "dcimg"

    @staticmethod
    def _is_supported_image(fs: Any, path: str, **kwargs: Any) -> bool:
        local = _local_path(fs, path)
        if local is None or not (os.path.isfile(local) or os.path.isdir(local)):
            return False
        try:
            with _open_stack(local, True):
                return True
        except (OSError, DCIMGError):
            return False

    def __init__(
        self,
        image: Any,
        fs_kwargs: dict[str, Any] | None = None,
        *,
        channel_name: str | None = None,
        physical_pixel_sizes: PhysicalPixelSizes | Sequence[float | None] | None = None,
        first_4px_correction_enabled: bool | None = True,
        frames_axis: str = "T",
        **kwargs: Any,
    ) -> None:
        try:
            fs, path = pathlike_to_fs(
                image, enforce_exists=True, fs_kwargs=fs_kwargs or {}
            )
        except OSError as exc:
            # bioio names the whole URL, with its password and query string.
            shown = redact(str(exc), secrets_of(str(image), fs_kwargs))
            raise (
                type(exc)(exc.errno, shown) if exc.errno else type(exc)(shown)
            ) from None
        local = _local_path(fs, path)
        if local is None:
            raise exceptions.UnsupportedFileFormatError(
                self.__class__.__name__,
                display_url(path),
                "only local DCIMG files can be read",
            )
        try:
            with _open_stack(local, first_4px_correction_enabled) as f:
                self._dcimg_metadata: Metadata | SeriesMetadata = f.metadata
                self._timestamps_us = f.timestamps.astype(np.int64)
                self._stack_dims = _dims_of(f.axes, frames_axis)
        except (DCIMGFormatError, DCIMGSeriesError) as exc:
            raise exceptions.UnsupportedFileFormatError(
                self.__class__.__name__, path, str(exc)
            ) from exc
        self._fs = fs
        self._path = local
        self._correction = first_4px_correction_enabled
        self._channel_name = (
            DEFAULT_CHANNEL_NAME if channel_name is None else str(channel_name)
        )
        if physical_pixel_sizes is None:
            self._pixel_sizes = PhysicalPixelSizes(None, None, None)
        else:
            z, y, x = physical_pixel_sizes
            self._pixel_sizes = PhysicalPixelSizes(z, y, x)

    @property
    def scenes(self) -> tuple[str, ...]:
        """The one scene of a DCIMG file, ``("Image:0",)``."""
        return (_SCENE,)

    def _open(self) -> Stack:
        return _open_stack(self._path, self._correction)

    def _wrap(self, stack: Any) -> xr.DataArray:
        """Put a file's or series' pixels into the reader's ``TCZYX`` DataArray."""
        data = xr.DataArray(stack, dims=self._stack_dims)
        for letter in _DIMS:
            if letter not in data.dims:
                data = data.expand_dims(letter)
        data = data.transpose(*_DIMS)
        coords: dict[str, Any] = {DimensionNames.Channel: [self._channel_name]}
        stamps = self._timestamps_us
        if (
            self._stack_dims[0] == DimensionNames.Time
            and stamps.ndim == 1
            and stamps.size == data.shape[0]
            and stamps.size
        ):
            coords[DimensionNames.Time] = (stamps - stamps[0]) / 1e6
        if data.sizes[DimensionNames.Channel] != 1:
            coords.pop(DimensionNames.Channel)  # a series' channels, unnamed
        return data.assign_coords(coords).assign_attrs(
            {
                constants.METADATA_UNPROCESSED: self._dcimg_metadata.to_dict(),
                constants.METADATA_PROCESSED: self._dcimg_metadata,
            }
        )

    def _read_delayed(self) -> xr.DataArray:
        with self._open() as f:
            return self._wrap(f.as_dask_array())

    def _read_immediate(self) -> xr.DataArray:
        with self._open() as f:
            return self._wrap(f.read(...))

    @property
    def physical_pixel_sizes(self) -> PhysicalPixelSizes:
        """``(Z, Y, X)`` sizes given to the reader; ``None`` each otherwise."""
        return self._pixel_sizes

    @property
    def time_interval(self) -> datetime.timedelta | None:
        """Median time between frames, from the time stamps, or None."""
        meta = self._dcimg_metadata
        if isinstance(meta, SeriesMetadata):
            # The files' frames are on T: their interval (the first file's).
            if self._stack_dims[-3] != DimensionNames.Time:
                return None
            meta = meta.first
        seconds = meta.frame_interval_s
        if not seconds:
            return None
        return datetime.timedelta(seconds=seconds)


class ReaderMetadata(_BaseReaderMetadata):
    """What bioio needs to know before it picks :class:`Reader`."""

    @staticmethod
    def supports_directory_images() -> bool:
        """Say that a folder can be one image (a series of numbered files).

        Returns
        -------
        bool
            True.
        """
        return True

    @staticmethod
    def get_supported_extensions() -> list[str]:
        """Return the file extensions the reader claims (any letter case).

        Returns
        -------
        list of str
            ``[".dcimg"]``.
        """
        return [".dcimg"]

    @staticmethod
    # bioio_base annotates this as returning a Reader instance, but bioio
    # instantiates what it returns: every plugin returns the class.
    def get_reader() -> type[Reader]:  # type: ignore[override]
        """Return the reader class.

        Returns
        -------
        type
            :class:`Reader`.
        """
        return Reader


def _open_stack(local: str, correction: bool | None) -> Stack:
    """Open a file, or a folder as a series."""
    if os.path.isdir(local):
        return DCIMGSeries(local, first_4px_correction_enabled=correction)
    return DCIMGFile(local, first_4px_correction_enabled=correction)


def _dims_of(axes: str, frames_axis: str) -> tuple[str, ...]:
    """Bioio's dimension of each axis of a stack: its grid axes, then frames.

    Raises
    ------
    dcimg.DCIMGSeriesError
        If a grid axis is not ``T``, ``C`` or ``Z``, or two axes would share
        a dimension.
    """
    frames = frames_axis.upper()
    dims = (*axes.upper(), frames, "Y", "X")
    if frames not in "TCZ" or len(frames) != 1:
        raise DCIMGSeriesError(f"frames_axis must be T, C or Z, not {frames_axis!r}")
    if not set(axes.upper()) <= set("TCZ") or len(set(dims)) != len(dims):
        raise DCIMGSeriesError(
            f"the series' axes {axes!r} and the frames' axis {frames!r} do not "
            "map onto distinct T, C and Z dimensions; name the series' axes "
            "(DCIMGSeries axes=) or the frames' (frames_axis=) otherwise"
        )
    return dims
