"""Kerchunk reference files: a DCIMG file as Zarr v3, read with no DCIMG reader.

:func:`write_references` writes a small JSON file (kerchunk's version-1
reference format) describing a Zarr v3 group -- OME-NGFF 0.5 metadata, the
image array ``0``, and the time stamps and frame counters as coordinate
arrays -- whose image chunks are byte ranges of the original DCIMG file.
fsspec's ``reference://`` file system serves them to zarr, xarray or Dask,
and the ``dcimg_frames`` codec (:mod:`dcimg.codecs`, registered by entry
point) turns each range into corrected frames. See :doc:`/zarr`.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np

from dcimg import _zarr_metadata as zarr_json
from dcimg._frame_blocks import CODEC_NAME, Correction, FrameBlocks
from dcimg._stack import Stack
from dcimg._urls import holds_secret, is_url, local_path
from dcimg.core import DCIMGFile
from dcimg.errors import ConversionError, DCIMGFormatError, InputCollisionError

__all__ = ["REFERENCE_CHUNK_BYTES", "write_references"]

#: Bytes of frames per chunk that ``chunks="auto"`` aims for: twice the
#: 16 MiB of ``as_dask_array``. Every chunk is one request, and a whole read
#: through :meth:`dcimg.DCIMGFile.whole` asks for up to 64 MiB at a time, so
#: 32 MiB chunks cost at most twice its requests (object stores bill per
#: request), while a viewer's look-up of one frame still fetches only 32 MiB.
REFERENCE_CHUNK_BYTES = 32 << 20

#: The correction settings of :class:`dcimg.DCIMGFile` and the codec's names.
_CORRECTIONS: dict[bool | None, Correction] = {
    True: "restore",
    False: "zero",
    None: "none",
}


def frame_blocks(f: DCIMGFile, chunk_frames: int) -> tuple[FrameBlocks, int]:
    """Return the codec settings for ``f`` and where frame 0 starts.

    Parameters
    ----------
    f : dcimg.DCIMGFile
        The open file, with the correction the references should apply.
    chunk_frames : int
        Frames per chunk.

    Returns
    -------
    (FrameBlocks, int)
        The settings, and the byte offset of frame 0 in the file.
    """
    layout = f.layout
    correction = _CORRECTIONS[f.first_4px_correction_enabled]
    stride = layout.bytes_per_image if layout.packed else layout.frame_stride
    frames = layout.frames
    chunks = -(-frames // chunk_frames)
    last_bytes = 0
    if frames:
        last_frame = layout.data_offset + (frames - 1) * stride
        tail = min(stride, layout.file_size - last_frame)
        last_chunk_frames = frames - (chunks - 1) * chunk_frames
        last_bytes = (last_chunk_frames - 1) * stride + tail
    stored: dict[str, Any] = {}
    if layout.stored_bytes and correction != "none":
        stored = {
            "stored_row": layout.stored_row,
            "stored_column": layout.stored_column,
            "stored_bytes": layout.stored_bytes,
            "stored_frames": layout.stored_frames,
        }
        if correction == "restore" and not layout.packed:
            if layout.stored_stride != layout.frame_stride:
                raise DCIMGFormatError(
                    f"{f.file_path!r}: the stored pixels are "
                    f"{layout.stored_stride} bytes apart but the frames "
                    f"{layout.frame_stride}; a reference file cannot express it",
                    field="stored_stride",
                    path=f.file_path,
                )
            stored["stored_offset"] = layout.stored_offset - layout.data_offset
        elif correction == "restore" and layout.stored_frames:
            # A packed file keeps the true values in its footer, away from the
            # frames: they travel in the codec's settings (stored_bytes per
            # frame) -- read back through the file itself, corrected.
            row, first = layout.stored_row, layout.stored_column
            end = first + layout.stored_pixels
            values = f.read((slice(0, layout.stored_frames), row, slice(first, end)))
            table = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
            stored["stored_table"] = base64.b64encode(table.tobytes()).decode()
    blocks = FrameBlocks(
        byte_depth=layout.byte_depth,
        height=layout.height,
        width=layout.width,
        bytes_per_row=layout.bytes_per_row,
        frame_stride=stride,
        frames=frames,
        chunk_frames=chunk_frames,
        last_chunk_bytes=last_bytes,
        correction=correction if stored else "none",
        **stored,
    )
    if chunks:
        start, length = blocks.chunk_range(chunks - 1)
        if layout.data_offset + start + length > layout.file_size:
            raise DCIMGFormatError(
                f"{f.file_path!r}: the last chunk would need bytes up to "
                f"{layout.data_offset + start + length}, past the end of the "
                f"file ({layout.file_size} bytes)",
                field="file_size",
                path=f.file_path,
            )
    return blocks, layout.data_offset


def _base64(values: np.ndarray) -> str:
    return "base64:" + base64.b64encode(values.tobytes()).decode()


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), default=str)


def references(
    f: DCIMGFile,
    chunks: int | str = "auto",
    target: str | None = None,
    zarr_format: int = 3,
) -> str:
    """Return the kerchunk references of ``f``, as JSON text.

    The implementation of :func:`write_references`, which documents it.
    """
    source = target if target is not None else _target_of(f)
    layout = f.layout
    frame_bytes = layout.width * layout.height * layout.byte_depth
    chunk_frames = zarr_json.frames_per_chunk(
        chunks, frame_bytes, layout.frames, REFERENCE_CHUNK_BYTES
    )
    blocks, origin = frame_blocks(f, chunk_frames)
    stack: Stack = f
    coordinates = zarr_json.coordinate_arrays(
        "", stack.timestamps, stack.framestamps, (layout.frames,)
    )
    image_attributes: dict[str, Any] = {
        "first_4px_correction_enabled": str(f.first_4px_correction_enabled),
    }
    if "framestamp" in coordinates:
        image_attributes["coordinates"] = "framestamp"
    name = os.path.splitext(os.path.basename(f.file_path or "dcimg"))[0]
    attributes = zarr_json.group_attributes(
        "",
        name,
        zarr_json.frame_interval(stack.timestamps),
        3,
        {"metadata": f.metadata.to_dict(), "token": f.token},
    )
    image = zarr_json.array_metadata(
        f.shape,
        f.dtype,
        (chunk_frames, layout.height, layout.width),
        ["t", "y", "x"],
        [{"name": CODEC_NAME, "configuration": blocks.to_config()}],
        image_attributes,
    )
    if zarr_format == 3:
        refs: dict[str, Any] = {
            "zarr.json": _json(
                {"zarr_format": 3, "node_type": "group", "attributes": attributes}
            ),
            f"{zarr_json.IMAGE}/zarr.json": _json(image),
        }
        for key, (document, values) in coordinates.items():
            refs[f"{key}/zarr.json"] = _json(document)
            refs[f"{key}/c/0"] = _base64(values)
        chunk_key = f"{zarr_json.IMAGE}/c/{{}}/0/0"
    elif zarr_format == 2:
        refs = {
            ".zgroup": _json({"zarr_format": 2}),
            ".zattrs": _json(_v2_group_attributes(attributes)),
        }
        compressor = {
            "id": CODEC_NAME,
            "dtype": f.dtype.newbyteorder("<").str,
            **blocks.to_config(),
        }
        arrays: dict[str, tuple[dict[str, Any], np.ndarray | None]] = {
            zarr_json.IMAGE: (image, None),
            **coordinates,
        }
        for key, (document, inline) in arrays.items():
            refs[f"{key}/.zarray"] = _json(_v2_array(document, compressor))
            refs[f"{key}/.zattrs"] = _json(
                {"_ARRAY_DIMENSIONS": document["dimension_names"]}
                | document["attributes"]
            )
            if inline is not None:
                refs[f"{key}/0"] = _base64(inline)
        chunk_key = f"{zarr_json.IMAGE}/{{}}.0.0"
    else:
        raise ConversionError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    document = {"version": 1, "templates": {"u": source}, "refs": refs}
    text = json.dumps(document, separators=(",", ":"))
    count = blocks.chunks
    if not count:
        return text
    # What FrameBlocks.chunk_range gives, for every chunk at once, written as
    # text: a hundred thousand little lists through json.dumps take most of
    # a second, these lines a tenth of it.
    starts = origin + np.arange(count, dtype=np.int64) * blocks.full_chunk_bytes
    lengths = np.full(count, blocks.full_chunk_bytes, dtype=np.int64)
    lengths[-1] = blocks.last_chunk_bytes
    if blocks.restores_from_table:
        lengths += np.arange(count, dtype=np.int64)
    chunk_refs = ",".join(
        f'"{chunk_key.format(index)}":["{{{{u}}}}",{start},{length}]'
        for index, start, length in zip(
            range(count), starts.tolist(), lengths.tolist(), strict=True
        )
    )
    # "refs" is the document's last member: close it after the chunks.
    assert text.endswith("}}")
    return f"{text[:-2]},{chunk_refs}}}}}"


def _v2_array(document: dict[str, Any], compressor: dict[str, Any]) -> dict[str, Any]:
    """Return the Zarr v2 ``.zarray`` of a v3 array document."""
    dtype = np.dtype(document["data_type"]).newbyteorder("<")
    raw = document["codecs"][0]["name"] == "bytes"
    fill = document["fill_value"]
    return {
        "zarr_format": 2,
        "shape": document["shape"],
        "chunks": document["chunk_grid"]["configuration"]["chunk_shape"],
        "dtype": dtype.str,
        "compressor": None if raw else compressor,
        "fill_value": fill,
        "order": "C",
        "filters": None,
        "dimension_separator": ".",
    }


def _v2_group_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Return OME-NGFF 0.4 attributes (Zarr v2): ``multiscales`` at the top."""
    ome = attributes.get("ome")
    if ome is None:
        return attributes
    multiscales = [{**m, "version": "0.4"} for m in ome["multiscales"]]
    return {"multiscales": multiscales, "dcimg": attributes["dcimg"]}


def _target_of(f: DCIMGFile) -> str:
    """Return where the references find the file: absolute path or URL."""
    origin = f.file_path
    if origin is None or f.file_object is not None:
        raise ConversionError(
            "references need a file's path or URL, not a file object; pass "
            "target= with the location readers should use"
        )
    if holds_secret(origin):
        raise ConversionError(
            f"the URL of {f.metadata.path!r} holds credentials or a signed "
            "query; references are meant to be shared, so pass target= with "
            "a URL without them (readers give credentials in storage options)",
            f.metadata.path,
        )
    path = local_path(origin)
    if path is not None and not is_url(origin):
        return os.path.abspath(path)
    return origin


def write_references(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunks: int | str = "auto",
    first_4px_correction_enabled: bool | None = True,
    target: str | None = None,
    storage_options: dict[str, Any] | None = None,
    zarr_format: int = 3,
) -> pathlib.Path:
    """Write a kerchunk reference file that reads a DCIMG file as Zarr v3.

    The references point at byte ranges of the original file; the
    ``dcimg_frames`` codec, registered by this package's entry points,
    turns each range into corrected frames. Readers need zarr 3 and fsspec
    (and this package installed), not a DCIMG reader::

        zarr.open_group("reference://", mode="r",
                        storage_options={"fo": "refs.json"})

    See :doc:`/zarr` for the layout, the trade-offs against
    :func:`dcimg.convert`, and how packed files are corrected.

    Parameters
    ----------
    source : str or os.PathLike
        The DCIMG file: a local path or a URL.
    out : str or os.PathLike
        The JSON reference file to write (replaced if it exists; written to
        a temporary file first, so an error leaves nothing behind).
    chunks : int or "auto", default "auto"
        Whole frames per chunk: ``"auto"`` as many as fit 32 MiB (at least
        one), an int that many, -1 all. Each chunk is one range request.
    first_4px_correction_enabled : bool or None, default True
        What the codec does with the camera-overwritten pixels, as in
        :class:`dcimg.DCIMGFile`: restore the true values, set them to 0, or
        leave the bytes as stored.
    target : str, optional
        The location readers will find the file at, written into the
        references instead of ``source`` (e.g. its URL after an upload).
    storage_options : dict, optional
        fsspec options to open a URL ``source`` (never written out).
    zarr_format : {3, 2}, default 3
        Zarr v3 (OME-NGFF 0.5), or Zarr v2 (OME-NGFF 0.4; the codec is the
        numcodecs codec ``dcimg_frames``, as the array's compressor) for
        tools that combine or read v2 references only, such as kerchunk's.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    dcimg.DCIMGFormatError
        If the file is not DCIMG, or its layout cannot be expressed.
    dcimg.InputCollisionError
        If ``out`` is the DCIMG file itself.
    dcimg.ConversionError
        If the source URL holds credentials and no ``target`` is given.

    Examples
    --------
    >>> import tempfile
    >>> import zarr
    >>> import dcimg
    >>> from dcimg.testing import write_example
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = write_example(f"{folder.name}/example.dcimg")
    >>> refs = dcimg.write_references(path, f"{folder.name}/example.json")
    >>> group = zarr.open_group(
    ...     "reference://", mode="r", storage_options={"fo": str(refs)}
    ... )
    >>> image = group["0"]
    >>> bool((image[...] == dcimg.imread(path)).all())
    True
    >>> folder.cleanup()
    """
    if zarr_format not in (2, 3):
        raise ConversionError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    if target is None and holds_secret(os.fsdecode(os.fspath(source))):
        raise ConversionError(
            "the source URL holds credentials or a signed query; references "
            "are meant to be shared, so pass target= (--target) with a URL "
            "without them (readers give credentials in their storage options)"
        )
    out_path = pathlib.Path(out)
    source_path = local_path(source)
    if source_path is not None and out_path.exists():
        if os.path.samefile(source_path, out_path):
            raise InputCollisionError(str(out), os.fspath(source), "it is")
    with DCIMGFile(
        source,
        first_4px_correction_enabled=first_4px_correction_enabled,
        storage_options=storage_options,
    ) as f:
        text = references(f, chunks, target, zarr_format)
    folder = out_path.parent if str(out_path.parent) else pathlib.Path(".")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{out_path.name}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, out_path)
    except BaseException:
        os.unlink(temporary)
        raise
    return out_path
