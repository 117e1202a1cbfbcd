"""Servers on 127.0.0.1 for the tests of remote reading, and their fixtures.

- :class:`RangeHTTPServer`: an HTTP/1.1 server that serves byte strings and
  honours ``Range`` requests, counts what it is asked, and can misbehave on
  demand (stall before the body, drop the connection mid-body, ignore
  ranges, answer with a wrong ``Content-Range``, report no size). It can
  give each object an identity (``ETag``, or ``Last-Modified`` alone), which
  changes when the object is replaced, and honour or ignore ``If-Match`` and
  ``If-Unmodified-Since``.
- :class:`S3Server`: moto's S3-compatible server in a thread, with the
  ``storage_options`` that make s3fs talk to it.

Each fixture starts its own server and stops it afterwards, so nothing
outlives the tests that use it. They are made available to every test module
by ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.server
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

LOCALHOST = "127.0.0.1"


@dataclass
class Request:
    """One request the HTTP server received."""

    method: str
    path: str
    range: str | None
    #: Body bytes the server sent.
    sent: int = 0


@dataclass
class Behaviour:
    """How the HTTP server misbehaves (all off by default)."""

    #: Seconds to wait after the headers of a GET before sending the body.
    stall: float = 0.0
    #: Send only this many body bytes of a GET, then close the connection.
    drop_after: int | None = None
    #: Answer range requests with the whole object (status 200).
    ignore_range: bool = False
    #: Send no Content-Length (and no size) in answers to HEAD.
    hide_size: bool = False
    #: Answer a range with the bytes one further on, and say so in
    #: Content-Range (the length is right, the place is not).
    shift_range: bool = False
    #: Send an ETag (a digest of the object) with every answer.
    etag: bool = False
    #: Send a Last-Modified (which changes when the object is replaced).
    last_modified: bool = False
    #: Answer every request with this error status (e.g. 500).
    fail_status: int | None = None
    #: Answer every GET with a redirect to the same URL (a redirect loop).
    redirect_get: bool = False
    #: Answer 412 to If-Match / If-Unmodified-Since that do not hold;
    #: False: ignore those headers, as some servers do.
    conditions: bool = True
    #: Paths (``{"/a.dcimg"}``) the misbehaviour applies to; empty: all.
    paths: set[str] = field(default_factory=set)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # body waits for the client's delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True
    server: RangeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet tests

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        server = self.server
        path = self.path.split("?")[0]
        requested = self.headers.get("Range")
        record = Request(self.command, path, requested)
        with server.lock:
            server.log.append(record)
            data = server.files.get(path)
        behaviour = server.behaviour
        if behaviour.paths and path not in behaviour.paths:
            behaviour = Behaviour()
        if behaviour.fail_status is not None:
            self.send_response(behaviour.fail_status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if behaviour.redirect_get and body:
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = len(data)
        etag, modified = server.identity(path, data)
        if not self._conditions_hold(behaviour, etag, modified):
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, start, stop = 200, 0, size
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", requested or "")
        if match and not behaviour.ignore_range:
            first, last = match.groups()
            if first:
                start = int(first)
                stop = min(size, int(last) + 1) if last else size
            elif last:  # suffix range: the last N bytes
                start = max(0, size - int(last))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
            if behaviour.shift_range and stop < size:
                start, stop = start + 1, stop + 1
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        if behaviour.etag:
            self.send_header("ETag", etag)
        if behaviour.last_modified:
            self.send_header("Last-Modified", modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        if not (behaviour.hide_size and not body):
            self.send_header("Content-Length", str(stop - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        with server.idle:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        # The view is released before the request counts as done, so that a
        # test may close a memory map it served once wait_idle() returns.
        try:
            if behaviour.stall:
                server.stop_event.wait(behaviour.stall)
            if behaviour.drop_after is not None:
                stop = min(stop, start + behaviour.drop_after)
                self.close_connection = True
            with memoryview(data) as whole, whole[start:stop] as payload:
                try:
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:
                    return  # the client went away
                record.sent = len(payload)
        finally:
            with server.idle:
                server.in_flight -= 1
                server.idle.notify_all()
        if behaviour.drop_after is not None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

    def _conditions_hold(self, behaviour: Behaviour, etag: str, modified: str) -> bool:
        if not behaviour.conditions:
            return True
        wanted = self.headers.get("If-Match")
        if wanted is not None and behaviour.etag:
            if wanted.strip() != "*" and etag not in [
                w.strip() for w in wanted.split(",")
            ]:
                return False
        since = self.headers.get("If-Unmodified-Since")
        if since is not None and behaviour.last_modified:
            then = email.utils.parsedate_to_datetime(since)
            if email.utils.parsedate_to_datetime(modified) > then:
                return False
        return True


class RangeHTTPServer(http.server.ThreadingHTTPServer):
    """HTTP server on 127.0.0.1 serving in-memory files, with Range support.

    Parameters
    ----------
    files : dict of str to bytes-like, optional
        The files, by path (``"/a.dcimg"``): bytes, or any buffer such as a
        memory map of a large sparse file. More can be added to
        :attr:`files` at any time.

    Attributes
    ----------
    files : dict of str to bytes-like
        What is served.
    log : list of Request
        Every request received.
    max_in_flight : int
        The most GET requests that were being answered at once.
    behaviour : Behaviour
        Misbehaviour to show; change it at any time.
    """

    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up stop()
    allow_reuse_address = True

    def __init__(self, files: dict[str, Any] | None = None) -> None:
        super().__init__((LOCALHOST, 0), _Handler)
        self.files: dict[str, Any] = dict(files or {})
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[Request] = []
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)  # notified as requests end
        self.behaviour = Behaviour()
        self.stop_event = threading.Event()
        # path -> (the object served, its ETag, its Last-Modified)
        self._identities: dict[str, tuple[Any, str, str]] = {}
        self._replacements = 0
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def identity(self, path: str, data: Any) -> tuple[str, str]:
        """The ETag and Last-Modified of the object now at `path`.

        A new object (another bytes object stored under the path) gets a new
        ETag and a Last-Modified one second later than any before it.
        """
        with self.lock:
            known = self._identities.get(path)
            if known is None or known[0] is not data:
                self._replacements += 1
                stamp = email.utils.formatdate(
                    1_700_000_000 + self._replacements, usegmt=True
                )
                known = (data, f'"v{self._replacements}-{len(data)}"', stamp)
                self._identities[path] = known
            return known[1], known[2]

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        """The URL of `path` (``"/a.dcimg"`` or ``"a.dcimg"``)."""
        return self.base + "/" + path.lstrip("/")

    def requests_for(self, path: str, method: str = "GET") -> list[Request]:
        """The requests received for `path` with `method`."""
        path = "/" + path.lstrip("/")
        with self.lock:
            return [r for r in self.log if r.path == path and r.method == method]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being answered (the client may have all
        the bytes before the handler has let go of the buffer it sent)."""
        with self.idle:
            if not self.idle.wait_for(lambda: self.in_flight == 0, timeout):
                raise TimeoutError(f"{self.in_flight} requests still in flight")

    def start(self) -> RangeHTTPServer:
        """Start serving in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and release the port."""
        self.stop_event.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class S3Server:
    """moto's S3-compatible server on 127.0.0.1 in a thread.

    Attributes
    ----------
    endpoint : str
        ``http://127.0.0.1:PORT``.
    bucket : str
        A bucket created for the test.
    storage_options : dict
        s3fs options for this server: test credentials, the endpoint, short
        timeouts and no retries, a private file-system instance.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request to stderr; keep the test output clean.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address=LOCALHOST, port=0, verbose=False)
        self.endpoint = ""
        self.bucket = f"dcimg-{uuid.uuid4().hex[:12]}"
        self.storage_options: dict[str, Any] = {}

    def start(self) -> S3Server:
        """Start the server, reset moto's state and create :attr:`bucket`."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.storage_options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {
                "endpoint_url": self.endpoint,
                "region_name": "eu-west-1",
            },
            "config_kwargs": {
                "connect_timeout": 5,
                "read_timeout": 10,
                "retries": {"max_attempts": 1},
            },
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }
        self._reset()
        self.filesystem().mkdir(self.bucket)
        return self

    def filesystem(self) -> Any:
        """A new s3fs file system for this server."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options)

    def url(self, key: str) -> str:
        """``s3://BUCKET/key``."""
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> str:
        """Store `data` under `key` in :attr:`bucket`; return its URL.

        One PUT, however large (up to S3's 5 GB), with a long timeout: moto
        assembles multipart uploads slowly.
        """
        import s3fs

        options = dict(self.storage_options)
        options["config_kwargs"] = {"read_timeout": 600, "retries": {"max_attempts": 1}}
        fs = s3fs.S3FileSystem(**options)
        fs.pipe_file(f"{self.bucket}/{key}", data, chunksize=len(data) // 2 + 1)
        return self.url(key)

    def _reset(self) -> None:
        # moto keeps its state per process: start every server empty.
        import urllib.request

        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset", method="POST", data=b""
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Empty moto's state and stop the server."""
        with contextlib.suppress(OSError):
            self._reset()
        self._server.stop()


@contextlib.contextmanager
def _serving(
    server_class: type[RangeHTTPServer] | type[S3Server], *clients: str
) -> Iterator[Any]:
    """Run a server of ``server_class``; stop it on exit.

    Skips the calling test unless the modules named in ``clients`` (the
    server's clients, or the server itself) can be imported.
    """
    for module in clients:
        pytest.importorskip(module)
    server = server_class().start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serving_http() -> Iterator[RangeHTTPServer]:
    """Run a :class:`RangeHTTPServer` serving nothing yet; stop it on exit."""
    # Its clients are fsspec's HTTP file system.
    with _serving(RangeHTTPServer, "fsspec", "aiohttp") as server:
        yield server


@pytest.fixture
def http_server() -> Iterator[RangeHTTPServer]:
    """A :class:`RangeHTTPServer` for one test (see :func:`serving_http`)."""
    with serving_http() as server:
        yield server


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """An :class:`S3Server` for the module's tests; stopped afterwards."""
    with _serving(S3Server, "s3fs", "moto.server") as server:
        yield server
