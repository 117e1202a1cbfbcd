"""DCIMGFile over URLs: a local S3 server (moto), an HTTP server with Range
support, ``memory://``; request counts; errors naming the URL."""

from __future__ import annotations

import io
import mmap
import pickle
import time

import numpy as np
import pytest

import dcimg
from dcimg import DCIMGFile
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg

pytest.importorskip("fsspec")


def _variants(tmp_path):
    truth = example_stack(nframes=9, height=24, width=40)
    for version in (0x7, 0x1000000, 0x2000000):
        path = write_dcimg(
            tmp_path / f"v{version:x}.dcimg",
            truth,
            version=version,
            stored_pixels_row=0 if version == 0x2000000 else 5,
        )
        yield path, truth


KEYS = [..., 3, -1, (slice(None, None, -2), slice(2, 9), slice(None, None, 3)),
        (4, 5, 6), (None, slice(1, 8, 3), 5)]  # fmt: skip


@pytest.mark.parametrize("correction", [True, False, None])
def test_s3_reads_equal_the_local_map(s3_server, tmp_path, correction):
    pytest.importorskip("s3fs")
    for path, _ in _variants(tmp_path):
        url = s3_server.put(path.name, path.read_bytes())
        local = DCIMGFile(path, first_4px_correction_enabled=correction)
        with DCIMGFile(
            url,
            storage_options=s3_server.storage_options,
            first_4px_correction_enabled=correction,
        ) as remote:
            for key in KEYS:
                np.testing.assert_array_equal(remote[key], local[key])
                np.testing.assert_array_equal(
                    remote.read(key, dtype=np.float32),
                    local.read(key, dtype=np.float32),
                )
            np.testing.assert_array_equal(remote.timestamps, local.timestamps)
            np.testing.assert_array_equal(remote.framestamps, local.framestamps)
            assert remote.metadata.shape == local.metadata.shape
            view = remote.read(slice(0, 2), copy=False)  # no map: a copy
            assert view.flags.owndata
        local.close()


def test_http_header_and_reads_take_few_requests(http_server, tmp_path):
    truth = example_stack(nframes=200, height=32, width=32)
    path = write_dcimg(tmp_path / "a.dcimg", truth, version=0x1000000)
    http_server.files["/a.dcimg"] = path.read_bytes()
    url = http_server.url("a.dcimg")
    with DCIMGFile(url) as f:
        header = len(http_server.requests_for("a.dcimg"))
        assert header <= 2  # the headers: one range (a framed file)
        np.testing.assert_array_equal(f[50:150], truth[50:150])
        frames = len(http_server.requests_for("a.dcimg")) - header
        assert frames <= 2, frames  # 100 consecutive frames: one range
        before = len(http_server.requests_for("a.dcimg"))
        stamps = f.timestamps
        assert stamps.shape == (200,)
        assert len(http_server.requests_for("a.dcimg")) - before <= 2


def test_packed_header_takes_two_requests(http_server, tmp_path):
    truth = example_stack(nframes=50, height=32, width=32)
    path = write_dcimg(tmp_path / "p.dcimg", truth, version=0x7, stored_pixels_row=3)
    http_server.files["/p.dcimg"] = path.read_bytes()
    with DCIMGFile(http_server.url("p.dcimg")) as f:
        assert len(http_server.requests_for("p.dcimg")) <= 2
        np.testing.assert_array_equal(f.whole(), truth)


def test_http_timestamps_of_big_frames_skip_the_pixels(http_server, tmp_path):
    path = write_sparse_dcimg(tmp_path / "big.dcimg", 300, 256, 256)
    size = path.stat().st_size
    with (
        open(path, "rb") as raw,
        mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as m,
    ):
        http_server.files["/big.dcimg"] = m
        with DCIMGFile(http_server.url("big.dcimg")) as f:
            assert f.timestamps.shape == (300,)
            http_server.wait_idle()  # before the map closes and the sums are read
            sent = sum(r.sent for r in http_server.requests_for("big.dcimg"))
            assert sent < 0.05 * size, (sent, size)
        del http_server.files["/big.dcimg"]


def test_memory_url_and_file_objects_through_every_entry_point(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    truth = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "m.dcimg", truth, stored_pixels_row=2)
    url = "memory://dcimg-remote/m.dcimg"
    with fsspec.open(url, "wb") as out:
        out.write(path.read_bytes())
    np.testing.assert_array_equal(dcimg.imread(url), truth)
    np.testing.assert_array_equal(dcimg.imread(url, dask=True).compute(), truth)
    np.testing.assert_array_equal(dcimg.imread(io.BytesIO(path.read_bytes())), truth)
    lazy = dcimg.imread(io.BytesIO(path.read_bytes()), dask=True)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), truth)
    with DCIMGFile(url) as f:
        again = pickle.loads(pickle.dumps(f))
        np.testing.assert_array_equal(again[:], truth)
        again.close()
    with open(path, "rb") as handle, DCIMGFile(handle) as f:
        with pytest.raises(TypeError, match="file object"):
            pickle.dumps(f)
    with pytest.raises(ValueError, match="no memory map"):
        _ = DCIMGFile(url).mma


def test_dask_on_process_workers_reads_the_url(s3_server, tmp_path):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("s3fs")
    truth = example_stack(nframes=12, height=16, width=24)
    path = write_dcimg(tmp_path / "d.dcimg", truth, stored_pixels_row=2)
    url = s3_server.put("d.dcimg", path.read_bytes())
    with DCIMGFile(url, storage_options=s3_server.storage_options) as f:
        lazy = f.as_dask_array(chunks=3)
    # Credentials travel in the pickled graph, never in a task's repr.
    assert "testing" not in repr(lazy.dask)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        np.testing.assert_array_equal(client.compute(lazy).result(), truth)


def test_bad_remote_inputs_are_named(http_server, s3_server, tmp_path):
    pytest.importorskip("s3fs")
    missing = s3_server.url("missing.dcimg")
    with pytest.raises(FileNotFoundError, match="missing.dcimg"):
        DCIMGFile(missing, storage_options=s3_server.storage_options)
    other = s3_server.put("notes.dcimg", b"plain text, not an image" * 20)
    with pytest.raises(dcimg.DCIMGFormatError, match="not a DCIMG file") as info:
        DCIMGFile(other, storage_options=s3_server.storage_options)
    assert "notes.dcimg" in str(info.value)
    truth = example_stack(nframes=10, height=16, width=16)
    path = write_dcimg(tmp_path / "t.dcimg", truth, version=0x1000000)
    cut = s3_server.put("cut.dcimg", path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(dcimg.DCIMGWarning, match="interrupted"):
        f = DCIMGFile(cut, storage_options=s3_server.storage_options)
    np.testing.assert_array_equal(f.whole(), truth[: f.nfrms])
    f.close()
    # A server that drops the connection mid-read: an error naming the URL,
    # quickly (no hang).
    http_server.files["/drop.dcimg"] = path.read_bytes()
    f = DCIMGFile(http_server.url("drop.dcimg"))
    http_server.behaviour.drop_after = 100
    start = time.perf_counter()
    with pytest.raises(OSError) as info:
        f.whole()
    assert time.perf_counter() - start < 30
    assert "drop.dcimg" in str(info.value)


def test_remote_series_members_open_several_at_a_time(http_server, tmp_path):
    """Each remote open waits on round trips: a series makes them overlap.

    Every GET stalls, so one file at a time keeps at most one request in
    flight (as the code did before: this test failed then).
    """
    from dcimg import series as series_module
    from dcimg.testing import write_series

    rng = np.random.default_rng(6)
    truth = rng.integers(0, 4000, (24, 1, 8, 10)).astype(np.uint16)
    paths = write_series(tmp_path / "run", truth, name="cell", stored_pixels_row=2)
    for path in paths.ravel():
        http_server.files[f"/{path.name}"] = path.read_bytes()
    urls = [http_server.url(path.name) for path in paths.ravel()]
    http_server.behaviour.stall = 0.02
    with dcimg.DCIMGSeries(urls[::-1], cache_size=4) as series:
        opened = http_server.max_in_flight
        assert series._members.open_count() <= 4  # the others closed as it went
        http_server.behaviour.stall = 0.0
        np.testing.assert_array_equal(series[...], truth)
    assert 1 < opened <= 2 * series_module._REMOTE_OPENS
    # The first failing member in file order is the one named.
    del http_server.files["/cell_005.dcimg"]
    del http_server.files["/cell_017.dcimg"]
    with pytest.raises(FileNotFoundError, match="cell_005"):
        dcimg.DCIMGSeries(urls)


def test_series_from_an_s3_glob(s3_server, tmp_path):
    pytest.importorskip("s3fs")
    from dcimg.testing import write_series

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4000, (2, 3, 1, 8, 10)).astype(np.uint16)
    paths = write_series(
        tmp_path / "run", truth, name="cell09_642", stored_pixels_row=2
    )
    for path in paths.ravel():
        s3_server.put(f"run/{path.name}", path.read_bytes())
    pattern = s3_server.url("run/*.dcimg")
    options = s3_server.storage_options
    with dcimg.DCIMGSeries(pattern, storage_options=options) as series:
        assert series.shape == truth.shape and series.axes == "TZ"
        np.testing.assert_array_equal(series[:], truth)
        np.testing.assert_array_equal(series[1, ::-1, 0, 2:5], truth[1, ::-1, 0, 2:5])
    lazy = dcimg.imread(pattern, dask=True, storage_options=options)
    np.testing.assert_array_equal(lazy.compute(), truth)
