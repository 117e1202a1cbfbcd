"""A remote object is read only as the object that was opened.

An object replaced at its URL (same size, other pixels) between the header
and the pixel requests is refused with DCIMGChangedError, whether the
server honours ``If-Match`` / ``If-Unmodified-Since`` or ignores them (the
answer's ETag or Last-Modified is compared), on HTTP and on S3, for single
files and for series members. A server that ignores ``Range`` is found on
its first answer without reading its body; a ``Content-Range`` other than
the one asked for is refused. A server without range support (Python's own
``http.server``) is read through fsspec's ``simplecache::``, as the
documentation says.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time

import numpy as np
import pytest
from helpers import run_python

import dcimg
from dcimg import DCIMGChangedError, DCIMGFile
from dcimg._remote import FsspecReader
from dcimg.errors import DCIMGReadError
from dcimg.testing import example_stack, write_dcimg

pytest.importorskip("fsspec")


@pytest.fixture
def two_objects(tmp_path):
    """Two DCIMG files of the same size and geometry, other pixels."""
    truth = example_stack(nframes=5, height=16, width=24)
    old = write_dcimg(tmp_path / "old.dcimg", truth).read_bytes()
    other = truth[::-1].copy()
    new = write_dcimg(tmp_path / "new.dcimg", other).read_bytes()
    assert len(old) == len(new) and old != new
    return old, new, truth, other


IDENTITIES = {
    "etag, If-Match honoured": dict(etag=True, conditions=True),
    "etag, If-Match ignored": dict(etag=True, conditions=False),
    "Last-Modified only, honoured": dict(last_modified=True, conditions=True),
    "Last-Modified only, ignored": dict(last_modified=True, conditions=False),
    "both, ignored": dict(etag=True, last_modified=True, conditions=False),
}


@pytest.mark.parametrize("identity", IDENTITIES.values(), ids=IDENTITIES.keys())
def test_an_http_object_replaced_after_opening_is_refused(
    http_server, two_objects, identity
):
    old, new, truth, _ = two_objects
    for name, value in identity.items():
        setattr(http_server.behaviour, name, value)
    http_server.files["/a.dcimg"] = old
    with DCIMGFile(http_server.url("a.dcimg")) as f:
        np.testing.assert_array_equal(f[0], truth[0])
        http_server.files["/a.dcimg"] = new  # same size, other pixels
        with pytest.raises(DCIMGChangedError, match="replaced") as info:
            f[1]
        assert http_server.url("a.dcimg") in str(info.value)
        with pytest.raises(DCIMGChangedError):
            f.timestamps  # noqa: B018
    # Opened again, it reads what the URL holds now.
    with DCIMGFile(http_server.url("a.dcimg")) as f:
        np.testing.assert_array_equal(f[1], two_objects[3][1])


def test_the_identity_is_asked_for_where_the_server_supports_it(
    http_server, two_objects
):
    old, new, _, _ = two_objects
    http_server.behaviour.etag = True
    http_server.files["/a.dcimg"] = old
    with DCIMGFile(http_server.url("a.dcimg")) as f:
        http_server.files["/a.dcimg"] = new
        with pytest.raises(DCIMGChangedError, match="refused"):
            f[1]
        # The server answered 412: not a byte of the new object was sent.
        assert http_server.requests_for("a.dcimg")[-1].sent == 0


def test_an_s3_object_replaced_after_opening_is_refused(s3_server, two_objects):
    pytest.importorskip("s3fs")
    old, new, truth, _ = two_objects
    url = s3_server.put("replaced.dcimg", old)
    with DCIMGFile(url, storage_options=s3_server.storage_options) as f:
        np.testing.assert_array_equal(f[0], truth[0])
        s3_server.put("replaced.dcimg", new)
        with pytest.raises(DCIMGChangedError, match="replaced"):
            f[1]


def test_a_replaced_series_member_is_refused(http_server, two_objects):
    old, new, truth, _ = two_objects
    http_server.behaviour.etag = True
    for k in range(3):
        http_server.files[f"/run_00{k}.dcimg"] = old
    urls = [http_server.url(f"run_00{k}.dcimg") for k in range(3)]
    # cache_size=1: members are opened again when they are read again.
    with dcimg.DCIMGSeries(urls, cache_size=1) as series:
        np.testing.assert_array_equal(series[0, 0], truth[0])
        np.testing.assert_array_equal(series[2, 0], truth[0])  # 0 evicted
        http_server.files["/run_000.dcimg"] = new  # closed member replaced
        http_server.files["/run_002.dcimg"] = new  # open member replaced
        with pytest.raises(DCIMGChangedError, match="run_002"):
            series[2, 1]
        with pytest.raises(DCIMGChangedError, match="run_000"):
            series[0, 1]
        np.testing.assert_array_equal(series[1, 1], truth[1])


def test_a_server_that_ignores_ranges_is_found_on_its_first_answer(http_server):
    big = bytes(64 * 1024 * 1024)
    http_server.files["/big.dcimg"] = big
    http_server.behaviour.ignore_range = True
    with FsspecReader(http_server.url("big.dcimg")) as reader:
        began = time.perf_counter()
        with pytest.raises(DCIMGReadError) as info:
            reader.read(1000, 2000)
        elapsed = time.perf_counter() - began
        # The body of the answer (64 MiB) was not read.
        assert reader.bytes_read == 0
    message = str(info.value)
    assert "does not support range requests" in message
    assert "simplecache::" in message and "[1000, 2000)" in message
    assert "shorter" not in message
    assert elapsed < 5


def test_a_wrong_content_range_is_refused(http_server, tmp_path):
    # Larger than the first request of an open (64 KiB).
    path = write_dcimg(tmp_path / "big.dcimg", example_stack(4, 128, 128))
    http_server.files["/a.dcimg"] = path.read_bytes()
    http_server.behaviour.shift_range = True
    with FsspecReader(http_server.url("a.dcimg")) as reader:
        with pytest.raises(DCIMGReadError, match="Content-Range 'bytes 101-200/"):
            reader.read(100, 200)
    with pytest.raises(DCIMGReadError, match="Content-Range"):
        DCIMGFile(http_server.url("a.dcimg"))


def test_a_different_size_in_content_range_is_a_change(http_server, two_objects):
    old = two_objects[0]
    http_server.files["/a.dcimg"] = old
    with FsspecReader(http_server.url("a.dcimg")) as reader:
        http_server.files["/a.dcimg"] = old + bytes(100)  # grew, no identity
        with pytest.raises(DCIMGChangedError, match="holds"):
            reader.read(0, 100)


@pytest.fixture
def plain_http_server(tmp_path):
    """Python's own http.server: no range support at all."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)
    )

    class Quiet(handler.func):  # type: ignore[name-defined]
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_python_http_server_is_refused_then_read_through_simplecache(
    plain_http_server, tmp_path
):
    pytest.importorskip("aiohttp")
    _, base = plain_http_server
    truth = example_stack(nframes=4, height=128, width=128)  # > 64 KiB
    write_dcimg(tmp_path / "plain.dcimg", truth)
    with pytest.raises(DCIMGReadError, match="does not support range requests"):
        DCIMGFile(f"{base}/plain.dcimg")
    # The documented recipe: download once into a local cache, read there.
    cache = tmp_path / "cache"
    with DCIMGFile(
        f"simplecache::{base}/plain.dcimg",
        storage_options={"simplecache": {"cache_storage": str(cache)}},
    ) as f:
        np.testing.assert_array_equal(f[:], truth)
        np.testing.assert_array_equal(f.timestamps.shape, (4,))
    assert any(cache.iterdir())


def test_a_client_timeout_is_the_one_reported(http_server, two_objects):
    aiohttp = pytest.importorskip("aiohttp")
    http_server.files["/slow.dcimg"] = two_objects[0]
    options = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=1)}}
    with FsspecReader(http_server.url("slow.dcimg"), options) as reader:
        http_server.behaviour.stall = 30
        began = time.perf_counter()
        with pytest.raises(DCIMGReadError) as info:
            reader.read(0, 100)
        assert time.perf_counter() - began < 10
    message = str(info.value)
    assert "client" in message and "120 s" not in message.split(";")[0]
    assert "within 1" in message


@pytest.mark.parametrize(
    "returned", ["-1", "None", "n + 5", "'x'"], ids=["-1", "None", "more", "str"]
)
def test_a_file_object_whose_readinto_misbehaves_fails_at_once(returned, tmp_path):
    """-1 used to loop for ever: a child process, with a timeout."""
    path = write_dcimg(tmp_path / "a.dcimg", example_stack(nframes=2))
    script = f"""
        import io, sys
        from dcimg._ranges import FileObjectReader
        from dcimg.errors import DCIMGReadError

        class Broken(io.BytesIO):
            def readinto(self, buffer):
                n = len(memoryview(buffer))
                return {returned}

        reader = FileObjectReader(Broken(open({str(path)!r}, "rb").read()))
        try:
            reader.readinto_ranges([(0, 100)], [bytearray(100)])
        except DCIMGReadError as error:
            print(error)
            sys.exit(3)
        sys.exit(0)
        """
    child = run_python(script, timeout=60)
    assert child.returncode == 3, child.stderr
    assert "readinto()" in child.stdout


def test_a_dask_array_of_a_replaced_object_is_refused(http_server, two_objects):
    pytest.importorskip("dask.array")
    old, new, truth, _ = two_objects
    http_server.behaviour.etag = True
    http_server.files["/a.dcimg"] = old
    with DCIMGFile(http_server.url("a.dcimg")) as f:
        lazy = f.as_dask_array(chunks=1)
    np.testing.assert_array_equal(lazy[0].compute(), truth[0])
    http_server.files["/a.dcimg"] = new
    with pytest.raises(DCIMGChangedError):
        lazy[1:].compute(scheduler="threads")


def test_a_renewed_identity_reads_the_new_object(http_server, two_objects):
    old, new, _, _ = two_objects
    http_server.behaviour.etag = True
    http_server.files["/a.dcimg"] = old
    with FsspecReader(http_server.url("a.dcimg")) as reader:
        stamp = reader.version_stamp
        assert stamp and reader.version.startswith('"v')
        http_server.files["/a.dcimg"] = new
        reader.refresh_size()  # the identity opened is kept
        with pytest.raises(DCIMGChangedError):
            reader.read(0, 100)
        reader.refresh_size(renew=True)  # for a caller reading the header again
        assert reader.version_stamp != stamp
        assert bytes(reader.read(0, 100)) == new[:100]
