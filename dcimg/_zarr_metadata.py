"""Zarr v3 and OME-NGFF metadata of a DCIMG stack, as plain JSON documents.

Shared by the store of :meth:`dcimg.DCIMGFile.aszarr` and the reference
files of :func:`dcimg.write_references`; needs no zarr (writing references
does not import it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dcimg._stack import AUTO_CHUNK_BYTES

__all__ = [
    "IMAGE",
    "array_metadata",
    "coordinate_arrays",
    "frame_interval",
    "frames_per_chunk",
    "group_attributes",
    "little_endian_bytes",
    "ngff_allows",
    "ngff_axes",
]

#: Name of the image array inside the group (the NGFF dataset path).
IMAGE = "0"
#: Dtype code of each pixel type, in Zarr v3 metadata.
_ZARR_DTYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}
#: CF encoding of the time stamps (xarray decodes it to datetime64).
TIME_UNITS = "microseconds since 1970-01-01T00:00:00"
#: Int64 value of NaT: a frame without a time stamp.
_NAT = int(np.iinfo(np.int64).min)


def frames_per_chunk(
    chunks: int | str, frame_bytes: int, frames: int, auto_bytes: int = AUTO_CHUNK_BYTES
) -> int:
    """How many whole frames one chunk holds.

    Parameters
    ----------
    chunks : int or "auto"
        ``"auto"``: as many frames as fit :data:`dcimg._stack.AUTO_CHUNK_BYTES`
        (16 MiB; at least one), the rule of ``as_dask_array(chunks="auto")``;
        a positive int: that many frames; -1: all frames in one chunk.
    frame_bytes : int
        Bytes of one frame.
    frames : int
        Frames along the frame axis.
    auto_bytes : int, optional
        The byte limit of ``"auto"``; default that of ``as_dask_array``.

    Returns
    -------
    int
        At least 1 (a chunk must have a size even when there are no frames).

    Raises
    ------
    ValueError
        If ``chunks`` is neither ``"auto"``, -1 nor a positive int.
    """
    if isinstance(chunks, str):
        if chunks != "auto":
            raise ValueError(f'chunks must be "auto" or a frame count, got {chunks!r}')
        return max(1, min(frames, auto_bytes // max(frame_bytes, 1)))
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)):
        raise ValueError(f'chunks must be "auto" or a frame count, got {chunks!r}')
    if chunks == -1:
        return max(1, frames)
    if chunks < 1:
        raise ValueError(f"chunks must be a positive frame count or -1, got {chunks}")
    return int(chunks)


def ngff_axes(axes: str) -> list[dict[str, str]]:
    """OME-NGFF ``axes`` for ``(*axes, t, y, x)``.

    The grid axes of a series get the NGFF type their letter names (``c``
    channel, ``z`` space, ``t`` time) and no type otherwise.
    """
    kinds = {"c": "channel", "z": "space", "t": "time"}
    described: list[dict[str, str]] = []
    for letter in axes:
        axis = {"name": letter}
        if letter in kinds:
            axis["type"] = kinds[letter]
        described.append(axis)
    described.append({"name": "t", "type": "time", "unit": "second"})
    described.append({"name": "y", "type": "space"})
    described.append({"name": "x", "type": "space"})
    return described


def frame_interval(stamps: np.ndarray) -> float:
    """Median interval between frames in seconds (1.0 when unknown)."""
    if stamps.ndim < 1 or stamps.shape[-1] < 2:
        return 1.0
    steps = np.diff(stamps.astype("datetime64[us]").astype(np.int64), axis=-1)
    valid = steps[(steps > 0) & (np.abs(steps) < 1 << 62)]
    return float(np.median(valid)) / 1e6 if valid.size else 1.0


def array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunk_shape: tuple[int, ...],
    dimension_names: list[str],
    codecs: list[dict[str, Any]],
    attributes: dict[str, Any] | None = None,
    fill_value: int = 0,
) -> dict[str, Any]:
    """Return the ``zarr.json`` document of a Zarr v3 array."""
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": _ZARR_DTYPES.get(dtype, dtype.name),
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": list(chunk_shape)},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value,
        "codecs": codecs,
        "attributes": attributes or {},
        "dimension_names": dimension_names,
        "storage_transformers": [],
    }


def little_endian_bytes(dtype: np.dtype[Any]) -> list[dict[str, Any]]:
    """Return the plain ``bytes`` codec (little-endian for multi-byte types)."""
    if dtype.itemsize == 1:
        return [{"name": "bytes"}]
    return [{"name": "bytes", "configuration": {"endian": "little"}}]


def coordinate_arrays(
    axes: str,
    timestamps: np.ndarray,
    framestamps: np.ndarray,
    frame_shape: tuple[int, ...],
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Return the time-stamp and frame-counter arrays: (metadata, values).

    One file gets ``t`` (the frames' dimension coordinate, so xarray indexes
    by time) and ``framestamp``; a series gets ``timestamp`` and
    ``framestamp`` over its grid axes and ``t``. Stamps a file lacks are
    left out.
    """
    dims = [*axes, "t"]

    def whole(
        values: np.ndarray, dtype: str, **extra: Any
    ) -> tuple[dict[str, Any], np.ndarray]:
        # A coordinate array in one chunk, little-endian.
        data = np.ascontiguousarray(values, dtype=dtype)
        chunk = tuple(max(1, n) for n in data.shape)
        bytes_codec = little_endian_bytes(data.dtype)
        kind = data.dtype.newbyteorder("=")
        return (
            array_metadata(data.shape, kind, chunk, dims, bytes_codec, **extra),
            data,
        )

    found: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    if timestamps.shape == frame_shape:
        name = "t" if len(dims) == 1 else "timestamp"
        found[name] = whole(
            timestamps.astype("datetime64[us]").view(np.int64),
            "<i8",
            attributes={"units": TIME_UNITS, "calendar": "proleptic_gregorian"},
            fill_value=_NAT,
        )
    if framestamps.shape == frame_shape:
        found["framestamp"] = whole(framestamps, "<u4")
    return found


def ngff_allows(axes: list[dict[str, str]]) -> bool:
    """Tell whether OME-NGFF 0.5 allows these axes, in this order.

    NGFF wants 2 to 5 axes: at most one of type time, first; then at most
    one channel (or untyped) axis; then 2 or 3 space axes, last.
    """
    kinds = [axis.get("type", "custom") for axis in axes]
    if not 2 <= len(kinds) <= 5 or kinds.count("time") > 1:
        return False
    if "time" in kinds and kinds[0] != "time":
        return False
    rest = kinds[1:] if kinds and kinds[0] == "time" else kinds
    others = [k for k in rest if k != "space"]
    if len(others) > 1 or (others and rest[0] == "space"):
        return False
    return 2 <= rest.count("space") <= 3 and rest[-1] == "space"


def group_attributes(
    axes: str, name: str, interval: float, ndim: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """Return the group's attributes: OME-NGFF 0.5 ``multiscales``, ``dcimg``.

    ``ome`` is left out when NGFF does not allow the axes (a series whose
    grid axes come before the frames' ``t``): the order of the data is
    kept, and the ``dcimg`` attributes say why.
    """
    scale = [1.0] * ndim
    scale[-3] = interval
    described = ngff_axes(axes)
    if not ngff_allows(described):
        return {
            "dcimg": {
                **extra,
                "ome": "no OME-NGFF metadata: NGFF 0.5 does not allow the axes "
                + ", ".join(a["name"] for a in described)
                + " in this order (time first, then channel, then space)",
            }
        }
    return {
        "ome": {
            "version": "0.5",
            "multiscales": [
                {
                    "name": name,
                    "axes": described,
                    "datasets": [
                        {
                            "path": IMAGE,
                            "coordinateTransformations": [
                                {"type": "scale", "scale": scale}
                            ],
                        }
                    ],
                }
            ],
        },
        "dcimg": extra,
    }
