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

Files and folders may also be URLs (``s3://``, ``https://``, ... through
fsspec, as :class:`dcimg.DCIMGFile` reads them), with the file system's
options given as bioio's ``fs_kwargs`` or as ``storage_options``.

:attr:`Reader.standard_metadata` is a :class:`DCIMGStandardMetadata`:
bioio's ``StandardMetadata`` with every
field DCIMG records filled, plus the pixel type, the camera and the sensor
region.
"""

from __future__ import annotations

import dataclasses
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
    from bioio_base.standard_metadata import StandardMetadata
    from bioio_base.types import ImageLike, PhysicalPixelSizes
    from ome_types import OME
except ImportError as exc:  # pragma: no cover - exercised without bioio
    from dcimg.errors import MissingDependencyError

    raise MissingDependencyError(
        'the bioio plugin needs the optional dependency: pip install "dcimg[bioio]"',
        "bioio",
    ) from exc

from dcimg._stack import Stack
from dcimg._urls import display_url, is_glob, is_url, redact, secrets_of, url_path
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGFormatError, DCIMGSeriesError
from dcimg.metadata import Metadata
from dcimg.series import DCIMGSeries, SeriesMetadata

__all__ = [
    "DEFAULT_CHANNEL_NAME",
    "DCIMGStandardMetadata",
    "Reader",
    "ReaderMetadata",
]

#: Name of the single channel unless ``channel_name=`` is given: bioio's own
#: identifier of the first channel of the first image.
DEFAULT_CHANNEL_NAME = "Channel:0:0"

_DIMS = "TCZYX"
_SCENE = "Image:0"


@dataclasses.dataclass
class DCIMGStandardMetadata(StandardMetadata):
    """bioio's standard metadata, with what DCIMG files add to it.

    Every field of bioio's ``StandardMetadata`` that a DCIMG file records
    is filled (see ``docs/bioio.rst`` for where each comes
    from); the fields below are added, and :meth:`to_dict` lists them too.
    DCIMG files record no objective, experimenter, plate position or stage
    position: those fields stay ``None``.

    Attributes
    ----------
    pixel_type : str or None
        NumPy name of the pixel type, ``"uint8"`` or ``"uint16"``.
    time_interval : datetime.timedelta or None
        Median time between consecutive frames of a file (for a series, of
        its first file), from the time stamps.
    detector_model : str or None
        The camera model the file records (``"C11440-22C"``), else None.
    detector_serial_number : str or None
        The camera's serial number, else None.
    sensor_region : tuple of 4 int or None
        ``(x0, y0, width, height)`` of the sensor region read out (the
        sub-array), in sensor pixels before binning, when the file records
        it. ``x0, y0`` is the offset on the sensor, not a stage position.
    dropped_frames : int or None
        Frames the camera dropped, from the jumps of its frame counter (a
        series: summed over its files).
    """

    pixel_type: str | None = None
    time_interval: datetime.timedelta | None = None
    detector_model: str | None = None
    detector_serial_number: str | None = None
    sensor_region: tuple[int, int, int, int] | None = None
    dropped_frames: int | None = None

    # Not annotated: a class attribute, as in the base class, not a field.
    FIELD_LABELS = {
        **StandardMetadata.FIELD_LABELS,
        "pixel_type": "Pixel Type",
        "time_interval": "Time Interval",
        "detector_model": "Detector Model",
        "detector_serial_number": "Detector Serial Number",
        "sensor_region": "Sensor Region",
        "dropped_frames": "Dropped Frames",
    }


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
        A ``.dcimg`` file, or a folder read as one
        :class:`dcimg.DCIMGSeries`: a local path or an fsspec URL
        (``s3://bucket/run.dcimg``, ``https://host/run.dcimg``,
        ``s3://bucket/run3/`` for a folder).
    fs_kwargs : dict, optional
        Options of a URL's file system (bioio's name for them).
    storage_options : dict, optional
        The same, under :class:`dcimg.DCIMGFile`'s name; merged over
        ``fs_kwargs``.  bioio checks which reader to use with ``fs_kwargs``
        alone: pass this with ``reader=`` named, or use ``fs_kwargs``.
    channel_name : str, optional
        Name of the single channel (``C`` coordinate); default
        :data:`DEFAULT_CHANNEL_NAME`. DCIMG files record no channel name.
    physical_pixel_sizes : PhysicalPixelSizes or tuple of 3 float, optional
        ``(Z, Y, X)`` pixel sizes; DCIMG files record none, so they are
        ``None`` unless given here.
    first_4px_correction_enabled : bool or None, default True
        See :attr:`dcimg.DCIMGFile.first_4px_correction_enabled`.
    frames_axis : {"T", "C", "Z"}, optional
        The dimension of each file's frames (a series' grid axes take the
        dimensions of their letters).  Default ``T``; when a series' grid
        has a ``T`` axis and each file holds one frame (the usual time-lapse
        of Z-stacks saved a plane a file), the first of ``C`` and ``Z`` that
        the grid leaves free.
    **kwargs
        Ignored (bioio passes its own options through).

    Raises
    ------
    bioio_base.exceptions.UnsupportedFileFormatError
        If the file is not DCIMG, ``image`` is not a path or URL (an
        array), or a series' axes do not map onto distinct ``T``, ``C`` and
        ``Z``.
    FileNotFoundError
        If the file or folder does not exist.

    Notes
    -----
    :attr:`metadata` is the typed :class:`dcimg.Metadata`;
    ``xarray_dask_data.attrs["unprocessed"]`` holds its ``to_dict()`` form.
    :attr:`time_interval` is the median interval between the time points
    on ``T`` (the frames of a file), from the time stamps; None when the
    file has no time stamps (an interrupted packed acquisition) or a single
    time point.
    """

    NAME = "dcimg"

    @classmethod
    def is_supported_image(
        cls,
        image: ImageLike,
        fs_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Tell whether ``image`` is a DCIMG file or a folder of them.

        A URL is opened as :class:`dcimg.DCIMGFile` opens it (its header
        only), instead of bioio's existence check, which downloads a whole
        object from an HTTP server that honours no range in it.

        Parameters
        ----------
        image : str, os.PathLike or array
            What bioio was asked to read (bioio's ``ImageLike``).
        fs_kwargs : dict, optional
            Options of a URL's file system.
        **kwargs
            Passed on to bioio's own check for anything but a URL.

        Returns
        -------
        bool
            Whether :class:`Reader` can read it (False for an array).
        """
        if not isinstance(image, (str, os.PathLike)):
            return False  # an array: not a DCIMG file
        if isinstance(image, str) and is_url(image) and not image.startswith("file:"):
            try:
                with _open_stack(image, True, dict(fs_kwargs or {}) or None):
                    return True
            except (OSError, DCIMGError):
                return False
        return bool(
            super().is_supported_image(image, fs_kwargs=fs_kwargs or {}, **kwargs)
        )

    @staticmethod
    def _is_supported_image(fs: Any, path: str, **kwargs: Any) -> bool:
        local = _local_path(fs, path)
        if local is None:
            source = fs.unstrip_protocol(path)
            options: dict[str, Any] | None = dict(fs.storage_options) or None
        elif os.path.isfile(local) or os.path.isdir(local):
            source, options = local, None
        else:
            return False
        try:
            with _open_stack(source, True, options):
                return True
        except (OSError, DCIMGError):
            return False

    def __init__(
        self,
        image: ImageLike,
        fs_kwargs: dict[str, Any] | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        channel_name: str | None = None,
        physical_pixel_sizes: PhysicalPixelSizes | Sequence[float | None] | None = None,
        first_4px_correction_enabled: bool | None = True,
        frames_axis: str | None = None,
        **kwargs: Any,
    ) -> None:
        options = {**(fs_kwargs or {}), **(storage_options or {})}
        text = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        if not isinstance(text, str):
            raise exceptions.UnsupportedFileFormatError(
                self.__class__.__name__,
                type(image).__name__,
                "only the path or URL of a DCIMG file or folder can be read",
            )
        source: str
        if is_url(text) and not text.startswith("file:"):
            # The URL as given, read by dcimg's range reader; no request
            # here beyond those that open the file.
            source = text
            shown = display_url(text)
        else:
            try:
                fs, path = pathlike_to_fs(text, enforce_exists=True, fs_kwargs=options)
            except OSError as exc:
                # bioio names the whole URL, with its password and query string.
                message = redact(str(exc), secrets_of(text, options))
                raise (
                    type(exc)(exc.errno, message) if exc.errno else type(exc)(message)
                ) from None
            local = _local_path(fs, path)
            source = local if local is not None else fs.unstrip_protocol(path)
            shown = display_url(source)
        self._storage_options = options or None
        try:
            with _open_stack(
                source, first_4px_correction_enabled, self._storage_options
            ) as f:
                self._dcimg_metadata: Metadata | SeriesMetadata = f.metadata
                self._timestamps_us = f.timestamps.astype(np.int64)
                self._stack_dims = _dims_of(f.axes, frames_axis, f.shape[-3])
                self._source = _source_of(f, source)
        except (DCIMGFormatError, DCIMGSeriesError) as exc:
            raise exceptions.UnsupportedFileFormatError(
                self.__class__.__name__, shown, str(exc)
            ) from exc
        self._path = self._source
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
        return _open_stack(self._source, self._correction, self._storage_options)

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

    def _time_points_us(self) -> np.ndarray:
        """Time stamp (µs) of each ``T`` index at ``C = Z = 0``, NaT dropped.

        The time stamps have the stack's shape without ``(y, x)``; the axis
        that went to ``T`` is kept, the others taken at 0. No ``T`` axis
        (frames and grid on ``C``/``Z``): the single time point of the first
        frame.
        """
        stamps = self._timestamps_us
        dims = self._stack_dims[:-2]
        if stamps.ndim != len(dims) or not stamps.size:
            return np.empty(0, np.int64)
        key = tuple(slice(None) if d == DimensionNames.Time else 0 for d in dims)
        points: np.ndarray = np.asarray(stamps[key], dtype=np.int64).reshape(-1)
        kept: np.ndarray = points[points != np.iinfo(np.int64).min]
        return kept  # NaT: stamp lost

    @property
    def time_interval(self) -> datetime.timedelta | None:
        """Median time between time points on ``T``, from the time stamps.

        For a file (frames on ``T``), the median interval between its
        frames; for a series, between the ``T`` indices at ``C = Z = 0``
        (the files of a time-lapse, or the first file's frames). None when
        there are fewer than two time points with time stamps.
        """
        meta = self._dcimg_metadata
        if isinstance(meta, Metadata):
            seconds = meta.frame_interval_s
            return datetime.timedelta(seconds=seconds) if seconds else None
        points = self._time_points_us()
        if points.size < 2:
            return None
        median = float(np.median(np.diff(points)))
        return datetime.timedelta(microseconds=median) if median > 0 else None

    @property
    def ome_metadata(self) -> OME:
        """The image as OME metadata.

        Built by ``ome_metadata()`` of the file or series (the code the
        converter uses), with this reader's physical pixel sizes
        (``pixel_size=(Y, X)`` when both are given, ``z_step=Z``).

        Raises
        ------
        dcimg.MissingDependencyError
            When ome-types is not installed (``pip install "dcimg[ome]"``).
        """
        sizes = self._pixel_sizes
        pixel_size: tuple[float, float] | None = None
        if sizes.Y is not None and sizes.X is not None:
            pixel_size = (sizes.Y, sizes.X)
        with self._open() as f:
            ome: OME = f.ome_metadata(pixel_size=pixel_size, z_step=sizes.Z)
        return ome

    @property
    def standard_metadata(self) -> DCIMGStandardMetadata:
        """Return bioio's standard metadata, every field DCIMG records filled.

        Returns
        -------
        DCIMGStandardMetadata
            Dimensions and sizes, pixel type, time interval, time-lapse
            interval and total duration, imaging date and time (the first
            frame's time stamp, UTC), binning, camera model and serial
            number, sensor region, dropped frames, and the physical pixel
            sizes given to the reader.
        """
        dims = self.dims
        meta = self._dcimg_metadata
        first = meta.first if isinstance(meta, SeriesMetadata) else meta
        size_t = getattr(dims, DimensionNames.Time, None)
        points = self._time_points_us()
        imaged = total = None
        if self._timestamps_us.size:
            stamps = self._timestamps_us.reshape(-1)
            stamps = stamps[stamps != np.iinfo(np.int64).min]
            if stamps.size:
                imaged = datetime.datetime(
                    1970, 1, 1, tzinfo=datetime.timezone.utc
                ) + datetime.timedelta(microseconds=int(stamps.min()))
        if points.size and size_t is not None and points.size == size_t:
            total = datetime.timedelta(microseconds=int(points[-1] - points[0]))
        interval = self.time_interval
        frame_seconds = first.frame_interval_s
        sub = first.sub_array
        dropped: int | None
        if isinstance(meta, Metadata):
            # Without the counters, how many were dropped is unknown.
            dropped = meta.dropped_frame_count if meta.frame_data_available else None
        else:
            dropped = meta.total_dropped_frames
        return DCIMGStandardMetadata(
            dimensions_present=dims.order,
            image_size_c=getattr(dims, DimensionNames.Channel, None),
            image_size_t=size_t,
            image_size_x=getattr(dims, DimensionNames.SpatialX, None),
            image_size_y=getattr(dims, DimensionNames.SpatialY, None),
            image_size_z=getattr(dims, DimensionNames.SpatialZ, None),
            timelapse=size_t is not None and size_t > 1,
            timelapse_interval=interval,
            total_time_duration=total,
            imaging_datetime=imaged,
            binning=None
            if first.binning is None
            else f"{first.binning}x{first.binning}",
            pixel_size_x=self._pixel_sizes.X,
            pixel_size_y=self._pixel_sizes.Y,
            pixel_size_z=self._pixel_sizes.Z,
            pixel_type=first.dtype,
            time_interval=(
                datetime.timedelta(seconds=frame_seconds) if frame_seconds else None
            ),
            detector_model=first.camera.model or None,
            detector_serial_number=first.camera.serial or None,
            sensor_region=None
            if sub is None
            else (sub.x0, sub.y0, sub.width, sub.height),
            dropped_frames=dropped,
        )


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


def _open_stack(
    source: str, correction: bool | None, storage_options: dict[str, Any] | None = None
) -> Stack:
    """Open a file, or a folder (local, or a URL's prefix) as a series."""
    if not is_url(source):
        if os.path.isdir(source):
            return DCIMGSeries(source, first_4px_correction_enabled=correction)
        return DCIMGFile(source, first_4px_correction_enabled=correction)
    name = url_path(source)
    if not (name.endswith("/") or is_glob(source)):
        try:
            return DCIMGFile(
                source,
                first_4px_correction_enabled=correction,
                storage_options=storage_options,
            )
        except (FileNotFoundError, IsADirectoryError):
            if name.lower().endswith(".dcimg"):
                raise
            source += "/"  # an object store's prefix: a folder
    return DCIMGSeries(
        source,
        first_4px_correction_enabled=correction,
        storage_options=storage_options,
    )


def _source_of(stack: Stack, source: str) -> str:
    """Return the source to reopen the stack from.

    A URL prefix that opened as a series gets its ``/`` (see
    :func:`_open_stack`).
    """
    if is_url(source) and isinstance(stack, DCIMGSeries):
        if not (url_path(source).endswith("/") or is_glob(source)):
            return source + "/"
    return source


def _dims_of(axes: str, frames_axis: str | None, per_file: int) -> tuple[str, ...]:
    """Bioio's dimension of each axis of a stack: its grid axes, then frames.

    ``frames_axis`` None: ``T``, unless the grid has a ``T`` axis and each
    file holds one frame (``per_file``): then a dimension the grid leaves
    free.

    Raises
    ------
    dcimg.DCIMGSeriesError
        If a grid axis is not ``T``, ``C`` or ``Z``, or two axes would share
        a dimension.
    """
    if frames_axis is None:
        free = [letter for letter in "CZ" if letter not in axes.upper()]
        single = per_file == 1 and "T" in axes.upper() and free
        frames_axis = free[0] if single else "T"
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
