"""Typed, immutable descriptions of a DCIMG file (``DCIMGFile.metadata``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:
    from dcimg._layout import Layout

__all__ = ["MISSING_FRAMESTAMP", "Camera", "Metadata", "StoredPixels", "SubArray"]

#: The frame counter given (in :attr:`dcimg.DCIMGFile.framestamps`) to a last
#: frame whose trailer was cut off: its pixels are whole, its counter and time
#: stamp (``NaT``) are lost.  The same value as ``numpy.iinfo(numpy.uint32).max``.
MISSING_FRAMESTAMP = 0xFFFFFFFF
# Counter jumps are looked for this many frames at a time, so that files of
# millions of frames need no int64 copy of all the counters.
_JUMP_CHUNK = 1 << 16


@dataclass(frozen=True)
class Camera:
    """The camera that recorded the file, from the file's camera block.

    Attributes
    ----------
    model : str
        Camera model, e.g. ``"C11440-22C"`` (ORCA-Flash4.0 V2); ``""`` if unknown.
    serial : str
        Serial number without the ``"S/N:"`` prefix; ``""`` if unknown.
    versions : tuple of str
        The version strings stored with the camera block (firmware, driver,
        software); empty when the file has no camera block.
    """

    model: str
    serial: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class SubArray:
    """The sensor region that was read out, in sensor pixels.

    Attributes
    ----------
    x0, y0 : int
        Top-left corner on the sensor.
    width, height : int
        Size on the sensor (before binning).
    source : str
        ``"block table"`` when found through the file's block table,
        ``"fixed offset"`` when read from the historical fixed position.
    """

    x0: int
    y0: int
    width: int
    height: int
    source: str


@dataclass(frozen=True)
class StoredPixels:
    """Where the camera overwrote pixels, and where the real values are kept.

    Some cameras (ORCA-Flash4.0) replace 8 bytes of one row of every frame
    with a ``0, max, 0, max`` pattern and store the real values elsewhere in
    the file; :class:`dcimg.DCIMGFile` puts them back.

    Attributes
    ----------
    row : int
        Image row holding the overwritten pixels.
    column : int
        First overwritten pixel column.
    count : int
        Number of overwritten pixels (4 at 16 bit, 8 at 8 bit).
    source : str
        How the position was found: ``"footer"`` (packed files), ``"kind-4
        block"`` (framed files), or a ``"fallback: ..."`` rule; for a fallback
        rule that the frames do not confirm, also why it is not applied.
    available : bool
        False when the pixels are returned as stored: the stored values were
        lost (a cut packed file), or a fallback row was not confirmed by the
        camera's ``0, max, 0, max`` pattern in the frames.
    missing_frames : int
        Frames whose stored values are lost although their pixels are in the
        file: 1 when a framed file is cut inside the trailer of its last
        frame, else 0.  Their overwritten pixels are returned as stored (0
        when ``first_4px_correction_enabled`` is False).
    """

    row: int
    column: int
    count: int
    source: str
    available: bool
    missing_frames: int = 0


@dataclass(frozen=True)
class Metadata:
    """Everything known about a DCIMG file apart from its pixels.

    Attributes
    ----------
    path : str or None
        The file's path or URL; None for a file object.
    format_version : int
        The header's format version: ``0x7``, ``0x1000000`` or ``0x2000000``.
    layout : str
        ``"packed"`` (version 0x7: frames back to back, per-frame data in a
        footer) or ``"framed"`` (a trailer after every frame).
    shape : tuple of int
        ``(frames, height, width)`` of the readable stack.
    dtype : str
        ``"uint8"`` or ``"uint16"``.
    byte_depth, bytes_per_row, bytes_per_image : int
        Stored geometry; ``bytes_per_row`` may exceed ``width * byte_depth``
        (row padding).
    trailer_size : int
        Bytes after each frame in framed files (16, 32, or 512 and more); 0
        for packed files.
    declared_frames : int
        Frames the header declares.
    frames : int
        Frames wholly present in the file (fewer than declared when an
        acquisition was interrupted).
    truncated : bool
        True when the file is shorter than the camera software wrote it.
    file_size, recorded_file_size : int
        Size on disk, and the size the header records.
    nsessions : int
        Sessions the header declares (only the first is read).
    camera : Camera
        Camera model, serial and version strings.
    sub_array : SubArray or None
        Sensor region read out, when the file records it.
    binning : int or None
        Sub-array width divided by frame width, when that is a whole number.
    stored_pixels : StoredPixels or None
        Position of the overwritten pixels, or None when the file has none.
    frame_data_available : bool
        False when frame counters and time stamps were lost (cut packed file).
    dropped_frames : tuple of int
        Indices ``i`` such that the camera's frame counter jumps by more than
        one between frame ``i`` and ``i + 1``: frames were dropped there.
    dropped_frame_count : int
        Total number of frames missing according to the counter jumps.
    first_timestamp, last_timestamp : str or None
        ISO 8601 time stamps (UTC, microseconds) of the first and last frame.
    frame_interval_s : float or None
        Median time between consecutive frames, in seconds.
    notes : tuple of str
        Remarks about unusual content (also issued as warnings on opening).
    missing_stamps : int
        Frames at the end whose counter and time stamp were cut off with
        their trailer (0, or 1 for an interrupted framed file whose last
        frame's pixels are whole): their framestamp is
        :data:`~dcimg.metadata.MISSING_FRAMESTAMP` and their time stamp ``NaT``.
    """

    path: str | None
    format_version: int
    layout: str
    shape: tuple[int, int, int]
    dtype: str
    byte_depth: int
    bytes_per_row: int
    bytes_per_image: int
    trailer_size: int
    declared_frames: int
    frames: int
    truncated: bool
    file_size: int
    recorded_file_size: int
    nsessions: int
    camera: Camera
    sub_array: SubArray | None
    binning: int | None
    stored_pixels: StoredPixels | None
    frame_data_available: bool
    dropped_frames: tuple[int, ...]
    dropped_frame_count: int
    first_timestamp: str | None
    last_timestamp: str | None
    frame_interval_s: float | None
    notes: tuple[str, ...]
    missing_stamps: int = 0

    @classmethod
    def from_layout(
        cls,
        layout: Layout,
        *,
        path: str | None,
        framestamps: np.ndarray,
        timestamps_us: np.ndarray,
    ) -> Metadata:
        """Describe a parsed file.

        Parameters
        ----------
        layout : dcimg._layout.Layout
            The parsed headers.
        path : str or None
            The file's path or URL.
        framestamps : numpy.ndarray
            The frame counters (empty when lost).
        timestamps_us : numpy.ndarray
            The time stamps in microseconds since the epoch (empty when lost).

        Returns
        -------
        Metadata
            The description.
        """
        # Only frames with their stamps (the last may have lost them).
        stamped = layout.stamped_frames
        dropped, dropped_count = _counter_jumps(framestamps[:stamped])
        timestamps_us = timestamps_us[:stamped]
        first = last = interval = None
        if timestamps_us.size:
            first = str(timestamps_us[:1].astype("datetime64[us]")[0]) + "Z"
            last = str(timestamps_us[-1:].astype("datetime64[us]")[0]) + "Z"
        if timestamps_us.size > 1:
            # The differences are the one temporary; sorted in place.
            steps = np.diff(timestamps_us)
            interval = float(np.median(steps, overwrite_input=True)) / 1e6
            del steps
        sub = layout.sub_array
        stored = None
        if layout.stored_bytes or layout.stored_lost:
            count = layout.stored_pixels
            if not count and layout.stored_row >= 0:
                # A fallback position not applied: the 8 bytes it names.
                count = 8 // layout.byte_depth
            stored = StoredPixels(
                row=layout.stored_row,
                column=layout.stored_column,
                count=count,
                source=layout.stored_source or "lost with the footer",
                available=not layout.stored_lost,
                missing_frames=layout.frames - layout.stored_frames,
            )
        return cls(
            path=path,
            format_version=layout.version,
            layout="packed" if layout.packed else "framed",
            shape=(layout.frames, layout.height, layout.width),
            dtype="uint16" if layout.byte_depth == 2 else "uint8",
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
            sub_array=(
                None
                if sub is None or layout.sub_array_source is None
                else SubArray(*sub, layout.sub_array_source)
            ),
            binning=layout.binning,
            stored_pixels=stored,
            frame_data_available=layout.has_frame_data,
            dropped_frames=dropped,
            dropped_frame_count=dropped_count,
            first_timestamp=first,
            last_timestamp=last,
            frame_interval_s=interval,
            notes=tuple(layout.notes),
            missing_stamps=(layout.frames - stamped) if layout.has_frame_data else 0,
        )

    @property
    def frame_rate_hz(self) -> float | None:
        """Frames per second from the median interval, or None."""
        if not self.frame_interval_s:
            return None
        return 1.0 / self.frame_interval_s

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as plain Python types (JSON-serialisable).

        Returns
        -------
        dict
            Nested dicts, lists, strings and numbers; ``format_version`` also
            appears as a hex string under ``format_version_hex``.
        """
        out = dataclasses.asdict(self)
        out["format_version_hex"] = f"{self.format_version:#x}"
        out["frame_rate_hz"] = self.frame_rate_hz

        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(item) for item in value]
            return value

        result: dict[str, Any] = plain(out)
        return result


def _counter_jumps(counters: np.ndarray) -> tuple[tuple[int, ...], int]:
    """Where the frame counter jumps by more than one, and the frames missed.

    Returns the indices ``i`` with ``counters[i + 1] - counters[i] > 1`` and
    the sum of ``jump - 1`` over them; works through the counters a chunk
    at a time (a bounded int64 temporary, whatever the number of frames).
    """
    dropped: list[int] = []
    missed = 0
    for start in range(0, max(counters.size - 1, 0), _JUMP_CHUNK):
        part = counters[start : start + _JUMP_CHUNK + 1].astype(np.int64)
        jumps = np.diff(part)
        where = np.flatnonzero(jumps > 1)
        dropped.extend((where + start).tolist())
        missed += int((jumps[where] - 1).sum())
    return tuple(dropped), missed


@overload
def physical_size(name: str, value: None) -> None: ...
@overload
def physical_size(name: str, value: float) -> float: ...
@overload
def physical_size(name: str, value: Any) -> float | None: ...


def physical_size(name: str, value: Any) -> float | None:
    """Check a physical size in µm (pixel size, z step): a finite number > 0.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        The size given, or ``None`` for "not known".

    Returns
    -------
    float or None
        The size as a float; ``None`` for ``None``.

    Raises
    ------
    ValueError
        If it is not a finite number above zero.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of µm, not {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive number of µm, not {value!r}")
    return number
