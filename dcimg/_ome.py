"""OME metadata of a stack of frames, built once and written two ways.

:class:`OMEImage` describes one OME image -- its planes' axes and sizes,
pixel type, physical sizes, per-plane time stamps, camera and channel --
from any :class:`~dcimg._stack.Stack` (a file or a series), knowing nothing
of how the frames are read. :func:`ome_xml` writes it as OME-XML text
(the converter's OME-TIFF description, with the standard library only) and
:func:`ome_model` as an :class:`ome_types.OME` (what ``ome_metadata()``
returns; it needs the optional ``ome-types`` package). Both list the same
image, planes, instrument and annotations.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from dcimg._version import __version__
from dcimg.errors import ConversionError, MissingDependencyError
from dcimg.metadata import Metadata, physical_size

if TYPE_CHECKING:
    import ome_types

    from dcimg._stack import Stack

__all__ = [
    "OME_AXES",
    "OME_PIXEL_TYPES",
    "OMEImage",
    "camera_annotations",
    "file_metadata",
    "frames_axis",
    "ome_metadata",
    "ome_model",
    "ome_xml",
    "plane_times",
]

# OME-XML namespace of the 2016-06 schema (the current one).
OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: The axes an OME image has besides Y and X.
OME_AXES = "TCZ"
#: OME pixel type of each NumPy type OME can store (it has no 64-bit integers).
OME_PIXEL_TYPES = {
    "uint8": "uint8",
    "uint16": "uint16",
    "int16": "int16",
    "int32": "int32",
    "uint32": "uint32",
    "float32": "float",
    "float64": "double",
}
# The map annotation that carries the camera's metadata.
_ANNOTATION_NS = "https://github.com/dcimg/dcimg/camera"


def file_metadata(meta: object) -> Metadata | None:
    """Return the per-file metadata (camera...) of a file's or a series'."""
    if isinstance(meta, Metadata):
        return meta
    first = getattr(meta, "first", None)
    return first if isinstance(first, Metadata) else None


def camera_annotations(meta: Metadata | None) -> dict[str, str]:
    """Camera metadata as key-value strings (an OME ``MapAnnotation``)."""
    if meta is None:
        return {}
    values = {
        "DCIMG format version": f"{meta.format_version:#x} ({meta.layout})",
        "camera model": meta.camera.model or "unknown",
        "camera serial": meta.camera.serial or "unknown",
        "frames in source": str(meta.frames),
        "first timestamp": meta.first_timestamp or "unknown",
        "dropped frames (after index)": ", ".join(map(str, meta.dropped_frames))
        or "none",
    }
    if meta.sub_array is not None:
        sub = meta.sub_array
        values["sensor sub-array"] = (
            f"x0={sub.x0} y0={sub.y0} width={sub.width} height={sub.height}"
        )
    if meta.binning is not None:
        values["binning"] = str(meta.binning)
    if meta.stored_pixels is not None:
        stored = meta.stored_pixels
        values["overwritten pixels"] = (
            f"{stored.count} at row {stored.row}, column {stored.column}; "
            + ("restored" if stored.available else "values lost, as stored")
        )
    return values


def first_stamp(timestamps: np.ndarray[Any, Any]) -> np.datetime64 | None:
    """Return the earliest time stamp (µs) of ``timestamps``; None if none."""
    stamps = np.asarray(timestamps).astype("datetime64[us]")
    valid = stamps[~np.isnat(stamps)]
    return valid.min() if valid.size else None


def plane_times(
    timestamps: np.ndarray[Any, Any], origin: np.datetime64 | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """Microseconds from ``origin`` of every plane, and which are known.

    Parameters
    ----------
    timestamps : numpy.ndarray
        ``datetime64`` time stamp of every plane (``NaT`` where unknown).
    origin : numpy.datetime64 or None
        The start of the acquisition (its earliest time stamp).

    Returns
    -------
    tuple of numpy.ndarray or None
        ``int64`` microseconds and a boolean mask of the same shape; None
        when no plane has a time stamp.
    """
    stamps = np.asarray(timestamps).astype("datetime64[us]")
    valid = ~np.isnat(stamps)
    if origin is None or stamps.size == 0 or not valid.any():
        return None
    start = int(np.asarray(origin).astype("datetime64[us]").astype(np.int64))
    micro = stamps.view(np.int64) - start
    return micro, valid


def _fmt_float(value: float) -> str:
    # repr gives the shortest text that reads back as the same double.
    return repr(float(value))


@dataclass(frozen=True)
class OMEImage:
    """One OME image: what :func:`ome_xml` and :func:`ome_model` write.

    Attributes
    ----------
    name : str
        The image's name.
    description : str
        Its free-text description.
    axes : str
        The axes before Y and X, letters of ``"TCZ"``, in the order the
        planes are numbered (C order: the last varies fastest).
    lead_shape : tuple of int
        The length of each of ``axes``.
    height, width : int
        Frame size in pixels.
    dtype : numpy.dtype
        The pixel type (one of :data:`OME_PIXEL_TYPES`).
    pixel_size_y, pixel_size_x, z_step : float or None
        Physical sizes in µm.
    channel_name : str
        Name of the channel (numbered when there are several).
    times_us : numpy.ndarray or None
        Microseconds from the start of the acquisition of every plane,
        shape ``lead_shape``; None when the planes have no time stamps.
    times_valid : numpy.ndarray or None
        Which entries of ``times_us`` are known.
    acquisition_date : str or None
        ISO 8601 time of the earliest frame of the acquisition.
    camera_model, camera_serial : str or None
        The detector.
    binning : int or None
        The camera's binning.
    annotations : dict of str to str
        Key-value pairs of the camera ``MapAnnotation``.
    """

    name: str
    description: str
    axes: str
    lead_shape: tuple[int, ...]
    height: int
    width: int
    dtype: np.dtype[Any]
    pixel_size_y: float | None = None
    pixel_size_x: float | None = None
    z_step: float | None = None
    channel_name: str = "channel"
    times_us: np.ndarray[Any, Any] | None = None
    times_valid: np.ndarray[Any, Any] | None = None
    acquisition_date: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    binning: int | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.axes) - set(OME_AXES) or len(set(self.axes)) != len(self.axes):
            raise ConversionError(
                f"an OME image has the axes T, C and Z once each, not {self.axes!r}"
            )
        if len(self.axes) != len(self.lead_shape):
            raise ConversionError(
                f"axes {self.axes!r} and shape {self.lead_shape} differ in length"
            )
        if self.dtype.name not in OME_PIXEL_TYPES:
            raise ConversionError(
                f"OME cannot store {self.dtype.name} pixels; choose one of "
                f"{', '.join(OME_PIXEL_TYPES)}"
            )

    @property
    def sizes(self) -> dict[str, int]:
        """Length of Z, C and T (1 for an axis the image lacks)."""
        return {
            letter: self.lead_shape[self.axes.index(letter)]
            if letter in self.axes
            else 1
            for letter in "ZCT"
        }

    @property
    def dimension_order(self) -> str:
        """OME's ``DimensionOrder``: the fastest-varying axis first."""
        # Planes are numbered in C order of ``axes``: the last varies fastest.
        return "XY" + self.axes[::-1] + "".join(a for a in "ZCT" if a not in self.axes)

    @property
    def time_increment(self) -> float | None:
        """Seconds between time points: the median step of the time stamps."""
        if "T" not in self.axes or self.lead_shape[self.axes.index("T")] < 2:
            return None
        if self.times_us is None or self.times_valid is None:
            return None
        axis = self.axes.index("T")
        steps = np.diff(self.times_us, axis=axis)
        later = (slice(None),) * axis + (slice(1, None),)
        earlier = (slice(None),) * axis + (slice(None, -1),)
        known = self.times_valid[later] & self.times_valid[earlier]
        if not known.any():
            return None
        return int(np.median(steps[known])) / 1e6

    def plane_indices(self) -> np.ndarray[Any, Any]:
        """``(planes, 3)`` array of every plane's (Z, C, T), in plane order."""
        count = int(np.prod(self.lead_shape, dtype=np.int64))
        table = np.zeros((count, 3), np.int64)
        if count == 0:
            return table
        grids = np.unravel_index(np.arange(count), self.lead_shape)
        for column, letter in enumerate("ZCT"):
            if letter in self.axes:
                table[:, column] = grids[self.axes.index(letter)]
        return table

    def plane_seconds(self) -> list[float | None]:
        """``DeltaT`` (s) of every plane in plane order; None where unknown."""
        count = int(np.prod(self.lead_shape, dtype=np.int64))
        if self.times_us is None or self.times_valid is None:
            return [None] * count
        seconds = (self.times_us.reshape(-1) / 1e6).tolist()
        known = self.times_valid.reshape(-1).tolist()
        return [s if ok else None for s, ok in zip(seconds, known, strict=True)]

    def channel_names(self) -> list[str]:
        """Return the name of every channel."""
        count = self.sizes["C"]
        name = self.channel_name
        return [name] if count == 1 else [f"{name} {c}" for c in range(count)]

    def physical_sizes(self) -> list[tuple[str, float]]:
        """``(axis, µm)`` of the known physical sizes, X, Y then Z."""
        return [
            (axis, value)
            for axis, value in (
                ("X", self.pixel_size_x),
                ("Y", self.pixel_size_y),
                ("Z", self.z_step),
            )
            if value is not None
        ]


def ome_xml(image: OMEImage, pages: int) -> str:
    """Return the OME-XML (2016-06 schema) of an image stored in TIFF pages.

    Parameters
    ----------
    image : OMEImage
        What to describe.
    pages : int
        The number of TIFF pages (IFDs) holding the planes, from the first.

    Returns
    -------
    str
        The XML text, 7-bit ASCII (other characters as references).
    """
    ET.register_namespace("", OME_NS)
    ET.register_namespace("xsi", _XSI_NS)

    def q(tag: str) -> str:
        return f"{{{OME_NS}}}{tag}"

    ome = ET.Element(
        q("OME"),
        {
            "Creator": f"dcimg {__version__}",
            f"{{{_XSI_NS}}}schemaLocation": f"{OME_NS} {OME_NS}/ome.xsd",
        },
    )
    instrument = ET.SubElement(ome, q("Instrument"), ID="Instrument:0")
    detector = {"ID": "Detector:0:0", "Manufacturer": "Hamamatsu"}
    if image.camera_model:
        detector["Model"] = image.camera_model
    if image.camera_serial:
        detector["SerialNumber"] = image.camera_serial
    detector["Type"] = "CMOS"
    ET.SubElement(instrument, q("Detector"), detector)

    element = ET.SubElement(ome, q("Image"), ID="Image:0", Name=image.name)
    if image.acquisition_date:
        ET.SubElement(element, q("AcquisitionDate")).text = image.acquisition_date
    ET.SubElement(element, q("Description")).text = image.description
    ET.SubElement(element, q("InstrumentRef"), ID="Instrument:0")

    sizes = image.sizes
    pixels_attrs = {
        "ID": "Pixels:0",
        "DimensionOrder": image.dimension_order,
        "Type": OME_PIXEL_TYPES[image.dtype.name],
        "SizeX": str(image.width),
        "SizeY": str(image.height),
        "SizeZ": str(sizes["Z"]),
        "SizeC": str(sizes["C"]),
        "SizeT": str(sizes["T"]),
        "BigEndian": "false",
        "Interleaved": "false",
        "SignificantBits": str(image.dtype.itemsize * 8),
    }
    for axis, value in image.physical_sizes():
        pixels_attrs[f"PhysicalSize{axis}"] = _fmt_float(value)
        pixels_attrs[f"PhysicalSize{axis}Unit"] = "µm"
    increment = image.time_increment
    if increment is not None:
        pixels_attrs["TimeIncrement"] = _fmt_float(increment)
        pixels_attrs["TimeIncrementUnit"] = "s"
    pixels = ET.SubElement(element, q("Pixels"), pixels_attrs)
    for c, name in enumerate(image.channel_names()):
        channel = ET.SubElement(
            pixels, q("Channel"), ID=f"Channel:0:{c}", Name=name, SamplesPerPixel="1"
        )
        settings = {"ID": "Detector:0:0"}
        if image.binning in (1, 2, 4, 8):
            settings["Binning"] = f"{image.binning}x{image.binning}"
        ET.SubElement(channel, q("DetectorSettings"), settings)
    ET.SubElement(pixels, q("TiffData"), IFD="0", PlaneCount=str(pages))
    seconds = image.plane_seconds()
    for (z, c, t), delta in zip(image.plane_indices().tolist(), seconds, strict=True):
        attrs = {"TheZ": str(z), "TheT": str(t), "TheC": str(c)}
        if delta is not None:
            attrs["DeltaT"] = _fmt_float(delta)
            attrs["DeltaTUnit"] = "s"
        ET.SubElement(pixels, q("Plane"), attrs)
    ET.SubElement(element, q("AnnotationRef"), ID="Annotation:0")
    annotations = ET.SubElement(ome, q("StructuredAnnotations"))
    mapping = ET.SubElement(
        annotations,
        q("MapAnnotation"),
        ID="Annotation:0",
        Namespace=_ANNOTATION_NS,
    )
    entries = ET.SubElement(mapping, q("Value"))
    for key, text in image.annotations.items():
        ET.SubElement(entries, q("M"), K=key).text = text
    # TIFF descriptions are 7-bit ASCII: other characters (the "µ" of the
    # units, names) become XML character references.
    encoded: bytes = ET.tostring(ome, encoding="us-ascii", xml_declaration=False)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + encoded.decode("ascii")


def _ome_types() -> Any:
    try:
        import ome_types
    except ImportError:
        raise MissingDependencyError(
            "OME metadata as objects need the ome-types package; install it "
            "with pip install 'dcimg[ome]'",
            "ome_types",
        ) from None
    return ome_types


def ome_model(image: OMEImage) -> ome_types.OME:
    """Return the image as an :class:`ome_types.OME` (validated by it).

    The same image, planes, instrument and annotations as :func:`ome_xml`,
    without the ``TiffData`` (``Pixels`` is marked ``MetadataOnly``).

    Raises
    ------
    MissingDependencyError
        When ome-types is not installed.
    """
    model = _ome_types().model
    detector = model.Detector(
        id="Detector:0:0",
        manufacturer="Hamamatsu",
        model=image.camera_model or None,
        serial_number=image.camera_serial or None,
        type="CMOS",
    )
    binning = image.binning if image.binning in (1, 2, 4, 8) else None
    channels = [
        model.Channel(
            id=f"Channel:0:{c}",
            name=name,
            samples_per_pixel=1,
            detector_settings=model.DetectorSettings(
                id="Detector:0:0",
                binning=None if binning is None else f"{binning}x{binning}",
            ),
        )
        for c, name in enumerate(image.channel_names())
    ]
    # One validated plane of each kind, copied with every plane's indices and
    # time (ints >= 0 and floats by construction): half the time of
    # validating 100,000 planes one by one.
    untimed = model.Plane(the_z=0, the_c=0, the_t=0)
    timed = model.Plane(the_z=0, the_c=0, the_t=0, delta_t=0.0, delta_t_unit="s")
    planes = [
        untimed.model_copy(update={"the_z": z, "the_c": c, "the_t": t})
        if delta is None
        else timed.model_copy(
            update={"the_z": z, "the_c": c, "the_t": t, "delta_t": delta}
        )
        for (z, c, t), delta in zip(
            image.plane_indices().tolist(), image.plane_seconds(), strict=True
        )
    ]
    sizes = image.sizes
    physical: dict[str, Any] = {}
    for axis, value in image.physical_sizes():
        physical[f"physical_size_{axis.lower()}"] = value
        physical[f"physical_size_{axis.lower()}_unit"] = "µm"
    increment = image.time_increment
    if increment is not None:
        physical["time_increment"] = increment
        physical["time_increment_unit"] = "s"
    pixels = model.Pixels(
        id="Pixels:0",
        dimension_order=image.dimension_order,
        type=OME_PIXEL_TYPES[image.dtype.name],
        size_x=image.width,
        size_y=image.height,
        size_z=sizes["Z"],
        size_c=sizes["C"],
        size_t=sizes["T"],
        big_endian=False,
        interleaved=False,
        significant_bits=image.dtype.itemsize * 8,
        channels=channels,
        metadata_only=True,
        **physical,
    )
    annotation = model.MapAnnotation(
        id="Annotation:0",
        namespace=_ANNOTATION_NS,
        value=model.Map(
            ms=[model.Map.M(k=k, value=v) for k, v in image.annotations.items()]
        ),
    )
    ome = model.OME(
        creator=f"dcimg {__version__}",
        instruments=[model.Instrument(id="Instrument:0", detectors=[detector])],
        images=[
            model.Image(
                id="Image:0",
                name=image.name,
                acquisition_date=image.acquisition_date,
                description=image.description,
                instrument_ref=model.InstrumentRef(id="Instrument:0"),
                pixels=pixels,
                annotation_refs=[model.AnnotationRef(id="Annotation:0")],
            )
        ],
        structured_annotations=model.StructuredAnnotations(
            map_annotations=[annotation]
        ),
    )
    # The planes join once the OME is made: they hold no IDs nor references,
    # which OME() links by walking every object it holds (8 s for 100,000
    # planes, against 0.1 s without them).
    ome.images[0].pixels.planes.extend(planes)
    built: ome_types.OME = ome
    return built


def frames_axis(grid_axes: str, frames: int) -> str:
    """Return the letter of a stack's frame axis in OME ("" for none).

    The frames are time points unless the grid already has a T axis; a
    single frame per file takes a letter the grid leaves free, or none.

    Several frames per file along a grid that has a T axis already are
    more time points of it: the files along T are joined end to end (as
    the converter does).
    """
    if "T" not in grid_axes:
        return "T"
    if frames == 1:
        free = [letter for letter in "CZT" if letter not in grid_axes]
        return free[0] if free else ""
    # Several time points per file along a T axis of files: joined.
    return "T"


def ome_metadata(
    stack: Stack,
    *,
    pixel_size: float | tuple[float, float] | None = None,
    z_step: float | None = None,
) -> ome_types.OME:
    """Return the OME metadata of a whole file or series (``ome_metadata()``)."""
    size_y: float | None
    size_x: float | None
    if isinstance(pixel_size, (tuple, list)):
        if len(pixel_size) != 2:
            raise ValueError(f"pixel_size takes one size or (y, x), not {pixel_size!r}")
        size_y, size_x = pixel_size
    else:
        size_y = size_x = pixel_size
    shape = tuple(int(n) for n in stack.shape)
    grid_axes = stack.axes.upper()
    files = getattr(stack.metadata, "files", None)
    meta = file_metadata(stack.metadata)
    source = (files[0] if files else None) or (meta.path if meta else None) or "dcimg"
    name = PurePosixPath(str(source).replace("\\", "/")).name
    letter = frames_axis(grid_axes, shape[-3])
    if set(grid_axes) - set(OME_AXES):
        extra = "".join(sorted(set(grid_axes) - set(OME_AXES)))
        raise ConversionError(
            f"{name}: an OME image has the axes T, C and Z only, not {extra!r}", name
        )
    lead = shape[:-2] if letter else shape[:-3]
    axes = grid_axes + letter
    stamps = np.asarray(stack.timestamps)
    origin = first_stamp(stamps)
    # A file that lost its time stamps has none (an empty array).
    known = stamps.size == int(np.prod(lead, dtype=np.int64))
    if letter == "T" and "T" in grid_axes:
        # Each file's frames follow on along the grid's T: frame f of file
        # t is time point t * frames + f.
        join = grid_axes.index("T")
        axes = grid_axes[:join] + grid_axes[join + 1 :] + "T"
        lead = (*shape[:join], *shape[join + 1 : -3], shape[join] * shape[-3])
        if known:
            stamps = np.moveaxis(stamps, join, -2)
    times = plane_times(stamps.reshape(lead), origin) if known else None
    camera = meta.camera if meta is not None else None
    image = OMEImage(
        name=name.rsplit(".", 1)[0],
        description=f"Read by dcimg {__version__} from {name}; pixels "
        "overwritten by the camera are restored.",
        axes=axes,
        lead_shape=lead,
        height=shape[-2],
        width=shape[-1],
        dtype=np.dtype(stack.dtype),
        pixel_size_y=physical_size("pixel_size_y", size_y),
        pixel_size_x=physical_size("pixel_size_x", size_x),
        z_step=physical_size("z_step", z_step),
        channel_name=name.rsplit(".", 1)[0],
        times_us=None if times is None else times[0],
        times_valid=None if times is None else times[1],
        acquisition_date=None if origin is None else f"{origin}",
        camera_model=camera.model if camera else None,
        camera_serial=camera.serial if camera else None,
        binning=meta.binning if meta else None,
        annotations={"source file": name, **camera_annotations(meta)},
    )
    return ome_model(image)
