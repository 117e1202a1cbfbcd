"""A user's script over dcimg's public API, for ``mypy --strict``.

tests/test_typing.py type-checks this file with ``mypy --strict`` (expecting
no error) and also runs it, so that the types asserted here are checked
against what the functions really return. It is written the way a user would
write it: only public names, no casts and no ``# type: ignore``.
``assert_type`` fails the type check when a public function's declared type is
not the one expected (``Any`` included); the ``isinstance`` checks fail the run
when a declared type does not match what the function returns.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr

import dcimg
from dcimg.testing import write_example, write_series

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


def mean_frame(path: str | os.PathLike[str]) -> npt.NDArray[np.float64]:
    """Mean of all frames, computed out of core."""
    lazy = dcimg.imread(path, dask=True, dtype=np.float32)
    assert_type(lazy, da.Array)
    assert isinstance(lazy, da.Array)
    # Dask's own methods carry no type hints (``mypy --strict`` reports calls
    # to them); NumPy's functions are typed and hand Dask arrays to Dask.
    lazy_mean = np.mean(lazy, axis=0)
    return np.asarray(lazy_mean, dtype=np.float64)


def describe(f: dcimg.DCIMGFile) -> dict[str, object]:
    """What a lab notebook would record about a file."""
    meta = f.metadata
    assert_type(meta, dcimg.Metadata)
    camera: dcimg.Camera = meta.camera
    stored: dcimg.StoredPixels | None = meta.stored_pixels
    sub: dcimg.SubArray | None = meta.sub_array
    frames, height, width = f.shape
    return {
        "frames": frames,
        "size": (height, width),
        "dtype": str(f.dtype),
        "model": camera.model,
        "stored row": None if stored is None else stored.row,
        "sub-array x0": None if sub is None else sub.x0,
        "dropped": list(meta.dropped_frames),
        "as dict": meta.to_dict(),
    }


def total_frames(stack: dcimg.Stack) -> int:
    """Code that takes a file or a series alike, through the protocol."""
    frames = stack.read(..., dtype="float32")
    assert isinstance(frames, np.ndarray)
    assert_type(stack.axes, str)
    return int(np.prod(stack.shape[:-2]))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_example(Path(folder) / "example.dcimg")
        assert_type(path, Path)

        # imread: the return type follows ``dask``.
        stack = dcimg.imread(path)
        assert_type(stack, npt.NDArray[Any])
        assert isinstance(stack, np.ndarray)
        part = dcimg.imread(str(path), slice(0, 4), dtype="float32")
        assert isinstance(part, np.ndarray) and part.shape == (4, 64, 80)
        assert mean_frame(path).shape == (64, 80)
        # Paths as bytes work wherever a file is opened for reading.
        raw_path = os.fsencode(path)
        assert dcimg.imread(raw_path).shape == stack.shape

        with dcimg.DCIMGFile(path) as f:
            print(json.dumps(describe(f), default=str)[:60], "...")

            # Indexing and read(): arrays, or a NumPy scalar for one pixel.
            frame = f[0]
            assert isinstance(frame, np.ndarray) and frame.shape == (64, 80)
            pixel = f[0, 31, 0]
            assert isinstance(pixel, np.generic)
            one = f.read((3, 31, 0), dtype=np.float64)
            assert_type(one, np.generic)
            assert isinstance(one, np.float64)
            print("pixel", float(one))
            block = np.empty((5, 64, 80), np.uint16)
            filled = f.read(slice(0, 5), out=block)
            assert isinstance(filled, np.ndarray) and filled is block
            assert f.frame(-1).shape == f.whole()[-1].shape

            # Per-frame data.
            stamps = f.timestamps
            assert stamps.dtype == np.dtype("datetime64[us]")
            counters = f.framestamps
            assert counters.dtype == np.uint32
            first = f.ts(0)
            assert_type(first, np.datetime64)
            assert isinstance(first, np.datetime64)
            every = f.ts()
            assert_type(every, npt.NDArray[np.datetime64])
            assert isinstance(every, np.ndarray) and every.shape == (20,)

            # The correction setting.
            f.first_4px_correction_enabled = None
            as_stored = f[0, 31, :4]
            f.first_4px_correction_enabled = True
            assert isinstance(as_stored, np.ndarray)

            # Dask and xarray.
            lazy = f.as_dask_array(chunks=8, dtype="float32")
            assert_type(lazy, da.Array)
            assert isinstance(lazy, da.Array)
            labelled = f.to_xarray(dask=False)
            assert_type(labelled, xr.DataArray)
            assert isinstance(labelled, xr.DataArray)
            print(labelled.dims, lazy.chunksize)

        with dcimg.DCIMGFile(raw_path) as g:
            assert g.shape == (20, 64, 80)
            # Both classes are a dcimg.Stack (checked by the type checker).
            assert total_frames(g) == 20
            run = Path(folder) / "run"
            run.mkdir()
            write_series(run, np.zeros((3, 4, 8, 8), np.uint16), name="cell")
            with dcimg.DCIMGSeries(run) as series:
                assert total_frames(series) == 12
                pixels = series[0]
                assert_type(pixels, npt.NDArray[Any])

        try:
            dcimg.DCIMGFile(Path(folder) / "missing.dcimg")
        except FileNotFoundError:
            pass
        bad = Path(folder) / "bad.dcimg"
        bad.write_bytes(b"not a DCIMG file")
        try:
            dcimg.DCIMGFile(bad)
        except dcimg.DCIMGFormatError as error:
            field: str | None = error.field
            print("refused:", field)


if __name__ == "__main__":
    main()
