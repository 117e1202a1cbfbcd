"""One battery over a file and a series, through the :class:`dcimg.Stack` protocol.

Every check here takes "a stack" and never asks whether it holds a
:class:`dcimg.DCIMGFile` or a :class:`dcimg.DCIMGSeries`: the same indexing,
types, ``out=``, ``copy=``, ``threads=``, Dask, xarray, time stamps, tokens and
closing, and the adapters that take either (napari, the converter, ``dcimg
info``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    STACK_KINDS,
    basic_indexing_keys,
    open_stack,
    opened_stacks,
    write_stack,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))
KINDS = STACK_KINDS


@pytest.fixture(scope="module")
def stacks():
    with tempfile.TemporaryDirectory() as name, opened_stacks(Path(name)) as made:
        yield made


@pytest.mark.parametrize("kind", KINDS)
def test_it_is_a_stack_with_the_protocols_names(stacks, kind):
    stack, truth, _ = stacks[kind]
    assert isinstance(stack, dcimg.Stack)
    assert stack.shape == truth.shape and stack.ndim == truth.ndim
    assert stack.dtype == truth.dtype
    assert len(stack.axes) == stack.ndim - 3
    assert stack.timestamps.shape == truth.shape[:-2]
    assert stack.timestamps.dtype == np.dtype("datetime64[us]")
    assert stack.framestamps.shape == truth.shape[:-2]
    assert stack.metadata is not None
    assert isinstance(stack.token, str) and stack.token
    assert not stack.closed


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_reads_equal_numpy_basic_indexing(stacks, kind, data):
    stack, truth, _ = stacks[kind]
    key = data.draw(basic_indexing_keys(truth.shape))
    want = truth[key]
    got = stack.read(key)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(stack[key], want)
    # Conversion inside the copy, threads, a view where one may be given.
    as_float = stack.read(key, dtype=np.float32)
    np.testing.assert_array_equal(as_float, want.astype(np.float32))
    assert np.asarray(as_float).dtype == np.float32
    np.testing.assert_array_equal(stack.read(key, threads=1), want)
    np.testing.assert_array_equal(stack.read(key, threads=3), want)
    np.testing.assert_array_equal(stack.read(key, copy=False), want)
    # out=: filled exactly, and returned.
    if np.ndim(want):
        out = np.full(np.shape(want), 7, np.float64)
        assert stack.read(key, out=out) is out
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("kind", KINDS)
def test_copy_false_never_writes_through(stacks, kind):
    stack, truth, _ = stacks[kind]
    first = (0,) * (stack.ndim - 3)
    view = stack.read((*first, 0), copy=False)
    assert isinstance(view, np.ndarray)
    np.testing.assert_array_equal(view, truth[(*first, 0)])
    # A view of the map is read-only; a copy may be changed, and changing it
    # changes nothing that later reads see.
    if view.flags.writeable:
        view[...] = 0
    else:
        with pytest.raises(ValueError):
            view[...] = 0
    np.testing.assert_array_equal(stack.read((*first, 0)), truth[(*first, 0)])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_out_and_threads_are_refused_alike(stacks, kind):
    stack, truth, _ = stacks[kind]
    with pytest.raises(ValueError, match="shape"):
        stack.read(..., out=np.empty((1, 2, 3), np.uint16))
    with pytest.raises((TypeError, ValueError)):
        stack.read(..., threads=0)


@pytest.mark.parametrize("kind", KINDS)
def test_dask_and_xarray_hold_the_same_pixels(stacks, kind):
    pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    stack, truth, _ = stacks[kind]
    lazy = stack.as_dask_array()
    assert lazy.shape == truth.shape
    np.testing.assert_array_equal(lazy.compute(), truth)
    np.testing.assert_array_equal(
        stack.as_dask_array(dtype="float32")[..., 1:4, ::2].compute(),
        truth[..., 1:4, ::2].astype(np.float32),
    )
    # Views where a chunk is one file (or frame) and needs no restoring.
    np.testing.assert_array_equal(
        stack.as_dask_array(chunks=1, copy=False).compute(), truth
    )
    for dask in (True, False):
        labelled = stack.to_xarray(dask=dask)
        assert isinstance(labelled, xr.DataArray)
        assert labelled.dims[-3:] == ("t", "y", "x")
        assert len(labelled.dims) == stack.ndim
        np.testing.assert_array_equal(labelled.values, truth)


@pytest.mark.parametrize("kind", KINDS)
def test_the_token_names_the_data(tmp_path, kind):
    source, truth = write_stack(tmp_path, kind)
    with open_stack(source, kind) as a:
        first = a.token
    with open_stack(source, kind) as b:
        assert b.token == first  # the same data opened again
    write_stack(tmp_path, kind, seed=1)  # other pixels under the same names
    with open_stack(source, kind) as c:
        assert c.token != first


@pytest.mark.parametrize("kind", KINDS)
def test_closing_ends_reads(tmp_path, kind):
    source, truth = write_stack(tmp_path, kind)
    stack = open_stack(source, kind)
    np.testing.assert_array_equal(stack.read(), truth)
    stack.close()
    assert stack.closed
    with pytest.raises(ValueError):
        stack.read()


# -- The adapters take either ------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "grid series"])
def test_napari_opens_either(tmp_path, kind):
    pytest.importorskip("npe2")
    from dcimg import _napari

    source, truth = write_stack(tmp_path, kind)
    reader = _napari.napari_get_reader(str(source))
    assert reader is not None
    ((data, kwargs, kind_of_layer),) = reader(str(source))
    assert kind_of_layer == "image"
    np.testing.assert_array_equal(np.asarray(data), truth)
    assert len(kwargs["axis_labels"]) == truth.ndim


@pytest.mark.parametrize("kind", ["file", "grid series"])
def test_convert_takes_either(tmp_path, kind):
    tifffile = pytest.importorskip("tifffile")
    source, truth = write_stack(tmp_path, kind)
    # A series' grid axes come first (here T and Z); its frames' axis is named.
    axes = "T" if kind == "file" else "C"
    out = dcimg.convert(source, tmp_path / "out.ome.tif", axes=axes)
    np.testing.assert_array_equal(tifffile.imread(out), truth)


@pytest.mark.parametrize("kind", ["file", "grid series"])
def test_info_describes_either(tmp_path, kind):
    source, truth = write_stack(tmp_path, kind)
    shown = subprocess.run(
        [sys.executable, "-m", "dcimg", "info", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "x".join(map(str, truth.shape[-2:][::-1])) in shown.stdout
        or str(truth.shape[-1]) in shown.stdout
    )


@pytest.mark.parametrize("kind", ["file", "grid series"])
def test_imageio_reads_either(tmp_path, kind):
    iio = pytest.importorskip("imageio.v3")
    source, truth = write_stack(tmp_path, kind)
    # imageio hands a folder only to the plugin it is told to use.
    options = {"plugin": "DCIMG"}
    np.testing.assert_array_equal(iio.imread(source, **options), truth)
    np.testing.assert_array_equal(iio.imread(source, index=1, **options), truth[1])
    props = iio.improps(source, **options)
    assert props.shape == truth.shape and props.n_images == truth.shape[0]
    meta = iio.immeta(source, **options)
    assert meta["timestamps"].shape == truth.shape[:-2]
    frames = list(iio.imiter(source, **options))
    np.testing.assert_array_equal(np.stack(frames), truth)
    with iio.imopen(source, "r", **options) as plugin:
        assert isinstance(plugin.stack, dcimg.Stack)
        if kind == "file":
            assert plugin.file is plugin.stack
        else:
            with pytest.raises(TypeError, match="series"):
                _ = plugin.file


@pytest.mark.parametrize("kind", KINDS)
def test_xarray_takes_physical_sizes_alike(stacks, kind):
    pytest.importorskip("xarray")
    stack, truth, _ = stacks[kind]
    planes = stack.to_xarray(dask=False, pixel_size=(0.5, 0.25), z_step=2.0)
    assert planes.dims[-3:] == ("z", "y", "x")
    np.testing.assert_allclose(planes["z"], np.arange(truth.shape[-3]) * 2.0)
    np.testing.assert_allclose(planes["y"], np.arange(truth.shape[-2]) * 0.5)
    np.testing.assert_allclose(planes["x"], np.arange(truth.shape[-1]) * 0.25)
    assert planes["x"].attrs["units"] == "µm"
    np.testing.assert_array_equal(planes.values, truth)
    with pytest.raises(ValueError, match="z_step"):
        stack.to_xarray(dask=False, z_step=-1)


@pytest.mark.parametrize("kind", ["file", "grid series"])
def test_bioio_reads_either(tmp_path, kind):
    bioio = pytest.importorskip("bioio")
    source, truth = write_stack(tmp_path, kind)
    # The series' grid is T and Z: its files' frames go on C.
    options = {} if kind == "file" else {"frames_axis": "C"}
    image = bioio.BioImage(source, **options)
    order = "TYX" if kind == "file" else "TZCYX"
    np.testing.assert_array_equal(image.get_image_data(order), truth)
