"""Byte ranges of fsspec URLs (S3, GCS, Azure, HTTP, ...): :class:`FsspecReader`.

A module of its own because it needs asyncio and fsspec, which reading a
local file never does: ``import dcimg`` does not import it.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from dcimg._ranges import Range, RangeReader, Sink, Targets
from dcimg._urls import (
    display_url,
    exception_text,
    holds_secret,
    redact,
    secrets_of,
)
from dcimg.errors import (
    DCIMGChangedError,
    DCIMGError,
    DCIMGReadError,
    MissingDependencyError,
)

__all__ = ["FsspecReader"]

# Where each protocol's fsspec implementation lives, and the dcimg extra that
# installs it: the hint an ImportError gives.
_PROTOCOL_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "adl": ("adlfs", "azure"),
}


class FsspecReader(RangeReader):
    """Reads an object or file of any fsspec file system, by URL.

    ``s3://``, ``gs://``, ``az://``, ``https://``, ``memory://``, chained
    URLs such as ``simplecache::s3://...``: whatever fsspec and its protocol
    packages open. On asynchronous file systems (s3fs, gcsfs, adlfs, HTTP)
    the requests of a read run concurrently on fsspec's event loop, up to
    :attr:`max_concurrency` at a time, each bounded by `timeout`; on the
    others they run on threads.

    The object read is the object opened. Its identity (ETag, version id or
    Last-Modified, and size) is recorded when it is opened; over HTTP(S)
    and S3 every range request asks for that object only (``If-Match``,
    or ``If-Unmodified-Since`` without an ETag; S3's ``IfMatch`` and
    ``VersionId``), and every answer is checked: its ETag and size, and
    that it holds exactly the bytes asked for (status 206 with the
    ``Content-Range`` of the request). A server that ignores ranges is
    found on its first answer, before its body is read.

    Parameters
    ----------
    urlpath : str
        The URL.
    storage_options : mapping, optional
        Keyword arguments of the file system (credentials, endpoint, ...),
        as for :func:`fsspec.open`. They travel with the reader when it is
        pickled (to Dask workers) but never appear in its name, repr or
        messages.
    timeout : float, optional
        Seconds a request of an asynchronous file system (and the size
        lookup) may take before it fails with :class:`DCIMGReadError`;
        default 120. ``None`` waits for ever (the file system's own client
        timeouts still apply, and the message then says so).
    max_gap, max_request, max_concurrency : int, optional
        See :class:`RangeReader`. Defaults: 64 KiB, 64 MiB, 8 requests in
        flight.

    Attributes
    ----------
    info : dict
        What the file system said about the object when its size was looked
        up (``fs.info``): for example ``ETag`` and ``LastModified`` on S3,
        ``mtime`` on local files, to tell whether the object changed.
    version : str or None
        The identity the object had when it was opened: its ETag, else its
        version id, else its modification time (``None`` if the file
        system reports none of them).
    version_stamp : int
        A number derived from :attr:`version` (0 without one), for
        identities made of numbers (:attr:`dcimg.DCIMGFile.identity`).

    Raises
    ------
    ImportError
        If fsspec, or the package of the URL's protocol, is missing; the
        message says what to install.
    FileNotFoundError
        If there is no object at the URL; the message names it.
    IsADirectoryError
        If the URL names a directory or prefix.
    DCIMGReadError
        If the size cannot be found, or the lookup fails or times out.
    """

    default_max_gap = 64 * 1024
    # Large requests: every request costs a round trip, and some
    # S3-compatible servers (moto among them) read the whole object for each
    # range they serve. 8 in flight fill a fast link without queuing at
    # s3fs's pool of 10 connections.
    default_max_request = 64 * 1024 * 1024
    default_max_concurrency = 8

    def __init__(
        self,
        urlpath: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = 120.0,
        max_gap: int | None = None,
        max_request: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.urlpath = os.fspath(urlpath)
        self.storage_options = dict(storage_options or {})
        self.timeout = timeout
        self._fs: Any = None
        self.info: dict[str, Any] = {}
        self.version: str | None = None
        self.version_stamp = 0
        self._etag: str | None = None
        self._version_id: str | None = None
        self._last_modified: str | None = None
        self._path: str | None = None
        super().__init__(
            display_url(self.urlpath),
            0,
            max_gap=max_gap,
            max_request=max_request,
            max_concurrency=max_concurrency,
        )
        self.size = self._lookup_size()
        self._record_identity()

    @property
    def fs(self) -> Any:
        """The fsspec file system, opened on first use (also after unpickling)."""
        if self._fs is None:
            self._fs, self._path = _url_to_fs(self.urlpath, self.storage_options)
            if getattr(self._fs, "protocol", None) in (("http", "https"), "http"):
                _hide_urls_in_fsspec_logs()
        return self._fs

    @property
    def path(self) -> str:
        """The path of the object within :attr:`fs`."""
        self.fs  # noqa: B018 (opens the file system and sets the path)
        return self._path  # type: ignore[return-value]

    @property
    def _secrets(self) -> list[str]:
        return secrets_of(self.urlpath, self.storage_options)

    def refresh_size(self, *, renew: bool = False) -> int:
        """Look up the object's size again (skipping fsspec's listing cache).

        Parameters
        ----------
        renew : bool, default False
            Also take the object's identity (ETag, version, Last-Modified)
            as it is now, for a caller that reads its header again
            (:meth:`dcimg.DCIMGFile.refresh`). By default the identity
            recorded at opening is kept: reads still ask for the object
            that was opened, and refuse another.

        Returns
        -------
        int
            The new :attr:`size`.
        """
        invalidate = getattr(self.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(self.path)
        self.size = self._lookup_size()
        if renew:
            self._record_identity()
        return self.size

    def _lookup_size(self) -> int:
        fs, path = self.fs, self.path
        failure: BaseException | None = None
        try:
            if getattr(fs, "async_impl", False):
                from fsspec.asyn import sync

                info = sync(fs.loop, self._timed, fs._info(path))
            else:
                info = fs.info(path)
        except FileNotFoundError:
            failure = FileNotFoundError(
                errno.ENOENT, "no such file or object", self.name
            )
        except PermissionError as error:
            failure = PermissionError(
                errno.EACCES, redact(error, self._secrets), self.name
            )
        except Exception as error:
            failure = self._failed("looking up the size", error)
        if failure is not None:
            # Raised outside the except clause, so that an original message
            # that holds a secret is not kept as the context (see _failed).
            raise failure
        if info.get("type") == "directory":
            raise IsADirectoryError(errno.EISDIR, "a directory, not a file", self.name)
        size = info.get("size")
        if size is None:
            raise DCIMGReadError(
                f"{self.name}: the server does not report the size of the object "
                "(no Content-Length); it cannot be read in ranges",
                self.name,
            )
        info = dict(info)
        for key in ("url", "name"):  # fsspec's HTTP info holds the whole URL
            if isinstance(info.get(key), str):
                info[key] = redact(info[key], self._secrets)
        self.info = info
        return int(size)

    def _record_identity(self) -> None:
        """Keep what tells this object from another put at the same URL."""
        info = self.info
        self._etag = _first(info, "ETag", "etag", "Etag")
        self._version_id = _first(info, "VersionId", "version_id", "generation")
        self._last_modified = _first(info, "Last-Modified", "LastModified", "mtime")
        self.version = self._etag or self._version_id or self._last_modified
        self.version_stamp = 0
        if self.version is not None:
            digest = hashlib.blake2b(self.version.encode(), digest_size=7).digest()
            self.version_stamp = int.from_bytes(digest, "big")

    def _settle(
        self, data: Any, failure: BaseException | None, start: int, stop: int
    ) -> Any:
        """Count a request's bytes and check them, or raise its failure.

        Called after the ``except`` clause that caught the failure, so that
        the error raised has no context (see :meth:`_failed`).
        """
        if failure is not None:
            self._count(0)
            raise failure
        self._count(len(data))
        return self._check(data, start, stop)

    def _request_failure(
        self, start: int, stop: int, error: BaseException
    ) -> BaseException:
        """Return the error to raise for a failed request of ``[start, stop)``."""
        if isinstance(error, FileNotFoundError):
            return FileNotFoundError(
                errno.ENOENT, "no such file or object (any more)", self.name
            )
        return self._failed(f"reading bytes [{start}, {stop})", error)

    def _failed(self, what: str, error: BaseException) -> BaseException:
        """Return the error to raise for `error`, which no secret ever reaches.

        The message holds the original's type and text, redacted. The
        original is chained as the cause only if no text of its chain holds
        a secret: a traceback prints the cause's own message, which cannot
        be redacted. Otherwise the error has no cause, and the caller raises
        it outside its ``except`` clause so that it has no context either.
        """
        if isinstance(error, _Timeout):
            failure: BaseException = DCIMGReadError(
                f"{self.name}: {what} {error}", self.name
            )
        elif isinstance(error, DCIMGError | FileNotFoundError):
            return error  # ours, already naming the URL safely
        else:
            failure = DCIMGReadError(
                f"{self.name}: {what} failed: {type(error).__name__}: "
                f"{redact(error, self._secrets)}",
                self.name,
            )
        if not holds_secret(exception_text(error), self._secrets):
            failure.__cause__ = error
        failure.__suppress_context__ = True
        return failure

    async def _timed(self, request: Any) -> Any:
        """Await `request` within :attr:`timeout`; say which timeout fired."""
        began = time.monotonic()
        client_timed_out = False

        async def watched() -> Any:
            nonlocal client_timed_out
            try:
                return await request
            except (asyncio.TimeoutError, TimeoutError):
                client_timed_out = True
                raise

        try:
            return await asyncio.wait_for(watched(), self.timeout)
        except (asyncio.TimeoutError, TimeoutError) as error:
            elapsed = time.monotonic() - began
            if client_timed_out:
                raise _Timeout(
                    f"got no answer within {elapsed:.3g} s: the timeout of the "
                    "file system's client (its storage_options) fired"
                    + (f"; dcimg's own is {self.timeout} s" if self.timeout else "")
                ) from error
            raise _Timeout(f"got no answer within {self.timeout} s") from None

    def _check(self, data: Any, start: int, stop: int) -> Any:
        got = len(data)
        if got == stop - start:
            return data
        if got == self.size and start > 0:
            raise _no_ranges(self.name, start, stop)
        raise self._short(start, stop, got)

    def _read_one(self, start: int, stop: int, out: memoryview | None) -> Any:
        # The synchronous route: file systems without an event loop.
        failure: BaseException | None = None
        data = b""
        try:
            data = self.fs.cat_file(self.path, start=start, end=stop)
        except Exception as error:
            failure = self._request_failure(start, stop, error)
        data = self._settle(data, failure, start, stop)
        if out is not None:
            out[:] = data
            return out
        return data

    def _run(self, requests: list[Range], outs: Targets, sink: Sink) -> None:
        fs = self.fs
        if not requests:
            return
        if not getattr(fs, "async_impl", False):
            super()._run(requests, outs, sink)
            return
        from fsspec.asyn import sync

        sync(fs.loop, self._gather, fs, requests, sink)

    def _range_request(self, fs: Any, start: int, stop: int) -> Any:
        """Return the coroutine that fetches bytes ``[start, stop)`` of the object."""
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol in ("http", "https") and hasattr(fs, "set_session"):
            return self._http_range(fs, start, stop)
        if protocol in ("s3", "s3a") and hasattr(fs, "_call_s3"):
            return self._s3_range(fs, start, stop)
        return fs._cat_file(self.path, start=start, end=stop)

    async def _http_range(self, fs: Any, start: int, stop: int) -> bytes:
        """GET one range over HTTP(S), checking the answer before its body."""
        options = dict(fs.kwargs)
        headers = dict(options.pop("headers", None) or {})
        headers["Range"] = f"bytes={start}-{stop - 1}"
        # The range is of the stored bytes: no compressed answer.
        headers["Accept-Encoding"] = "identity"
        if self._etag is not None and not self._etag.startswith("W/"):
            # Strong comparison: a weak ETag never matches If-Match.
            headers["If-Match"] = self._etag
        elif self._last_modified is not None and self._etag is None:
            headers["If-Unmodified-Since"] = self._last_modified
        session = await fs.set_session()
        async with session.get(
            fs.encode_url(self.path), headers=headers, **options
        ) as response:
            try:
                self._check_answer(
                    response.status,
                    response.headers,
                    start,
                    stop,
                    response.reason or "",
                )
            except BaseException:
                response.close()  # drop the connection: its body is not read
                raise
            try:
                data: bytes = await response.content.readexactly(stop - start)
                return data
            except asyncio.IncompleteReadError as error:
                raise self._short(start, stop, len(error.partial)) from None

    def _check_answer(
        self,
        status: int,
        headers: Mapping[str, str],
        start: int,
        stop: int,
        reason: str,
    ) -> None:
        """Refuse an HTTP answer that is not bytes [start, stop) of this object."""
        asked = f"bytes [{start}, {stop})"
        if status == 404:
            raise FileNotFoundError(
                errno.ENOENT, "no such file or object (any more)", self.name
            )
        if status == 412:
            raise DCIMGChangedError(
                f"{self.name}: the object was replaced since it was opened (the "
                f"server refused a request for {asked} of the object with "
                f"{self._identity_text()}); open it again to read what it holds "
                "now",
                self.name,
            )
        if status == 200 and not (start == 0 and stop == self.size):
            raise _no_ranges(self.name, start, stop)
        if status not in (200, 206):
            raise DCIMGReadError(
                f"{self.name}: reading {asked} failed: HTTP {status} {reason}".rstrip(),
                self.name,
            )
        self._check_identity(headers.get("ETag"), headers.get("Last-Modified"), asked)
        if status == 206:
            content_range = headers.get("Content-Range", "")
            match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", content_range)
            total = self.size if match is None or match[3] == "*" else int(match[3])
            if total < self.size:
                raise DCIMGReadError(
                    f"{self.name}: asked for {asked} but the object holds "
                    f"{total} bytes now; it held {self.size} when it was opened",
                    self.name,
                )
            if total != self.size:
                raise DCIMGChangedError(
                    f"{self.name}: the object changed since it was opened: it "
                    f"holds {total} bytes now, {self.size} then; open it again "
                    "to read what it holds now",
                    self.name,
                )
            if match is None or (int(match[1]), int(match[2]) + 1) != (start, stop):
                raise DCIMGReadError(
                    f"{self.name}: asked for {asked} but the server answered "
                    f"with Content-Range {content_range!r}",
                    self.name,
                )
        length = headers.get("Content-Length")
        if length is not None and length.strip().isdigit():
            if int(length) != stop - start:
                raise DCIMGReadError(
                    f"{self.name}: asked for {asked} but the server announced "
                    f"{int(length)} bytes",
                    self.name,
                )

    def _check_identity(self, etag: Any, modified: Any, asked: str) -> None:
        """Refuse an answer from an object other than the one opened."""
        if self._etag is None and self._last_modified is None:
            # Some servers name the object's version in their answers to GET
            # only, not to HEAD: the first answer (the header's, read at
            # opening) then names the object opened, and later ones must
            # come from it too.
            if etag is not None:
                self._etag = str(etag)
            elif modified is not None:
                self._last_modified = str(modified)
            return
        if self._etag is not None and etag is not None:
            if _bare_etag(etag) != _bare_etag(self._etag):
                raise DCIMGChangedError(
                    f"{self.name}: the object was replaced since it was opened: "
                    f"the answer to {asked} has ETag {etag}, the object opened "
                    f"{self._etag}; open it again to read what it holds now",
                    self.name,
                )
        elif self._etag is None and self._last_modified and modified is not None:
            if str(modified) != self._last_modified:
                raise DCIMGChangedError(
                    f"{self.name}: the object was replaced since it was opened: "
                    f"the answer to {asked} was last modified {modified}, the "
                    f"object opened {self._last_modified}; open it again to "
                    "read what it holds now",
                    self.name,
                )

    def _identity_text(self) -> str:
        if self._etag is not None:
            return f"ETag {self._etag}"
        if self._version_id is not None:
            return f"version {self._version_id}"
        return f"Last-Modified {self._last_modified}"

    async def _s3_range(self, fs: Any, start: int, stop: int) -> bytes:
        """GetObject of one range, for the version opened only (s3fs)."""
        bucket, key, version = fs.split_path(self.path)
        request: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Range": f"bytes={start}-{stop - 1}",
            **getattr(fs, "req_kw", {}),
        }
        version = version or self._version_id
        if version:
            request["VersionId"] = version
        if self._etag is not None:
            request["IfMatch"] = self._etag
        try:
            answer = await fs._call_s3("get_object", **request)
        except Exception as error:
            if _precondition_failed(error):
                raise DCIMGChangedError(
                    f"{self.name}: the object was replaced since it was opened "
                    f"(S3 refused a request for bytes [{start}, {stop}) of the "
                    f"object with {self._identity_text()}); open it again to "
                    "read what it holds now",
                    self.name,
                ) from None
            raise
        body = answer["Body"]
        try:
            asked = f"bytes [{start}, {stop})"
            self._check_identity(answer.get("ETag"), None, asked)
            content_range = answer.get("ContentRange")
            if content_range is not None:
                self._check_answer(
                    206,
                    {"Content-Range": content_range},
                    start,
                    stop,
                    "",
                )
            elif not (start == 0 and stop == self.size):
                raise _no_ranges(self.name, start, stop)
            whole: bytes = await body.read()
            return whole
        finally:
            body.close()

    async def _gather(
        self,
        fs: Any,
        requests: list[Range],
        sink: Sink,
    ) -> None:
        """Fetch `requests` with at most max_concurrency of them in flight."""
        pending = iter(range(len(requests)))

        async def worker() -> None:
            for i in pending:  # the workers share one iterator
                start, stop = requests[i]
                failure: BaseException | None = None
                data = b""
                try:
                    data = await self._timed(self._range_request(fs, start, stop))
                except Exception as error:
                    failure = self._request_failure(start, stop, error)
                sink(i, self._settle(data, failure, start, stop))

        tasks = [
            asyncio.ensure_future(worker())
            for _ in range(min(self.max_concurrency, len(requests)))
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Drop the reference to the file system; idempotent."""
        self._fs = None
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        if self.closed:
            raise ValueError(f"{self.name}: cannot pickle a closed reader")
        state = self.__dict__.copy()
        # The file system is opened again where the reader is unpickled.
        state.update(_fs=None, _path=None, _count_lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._count_lock = threading.Lock()


class _Timeout(Exception):
    """A request got no answer in time (the message says whose timeout)."""


def _no_ranges(name: str, start: int, stop: int) -> DCIMGReadError:
    return DCIMGReadError(
        f"{name}: the server does not support range requests: asked for bytes "
        f"[{start}, {stop}), it answered with the whole object (which was not "
        "read). Read it through a local copy instead: put 'simplecache::' "
        "before the URL (see the documentation on remote files)",
        name,
    )


def _precondition_failed(error: BaseException) -> bool:
    """Tell whether S3 refused a request for its IfMatch (HTTP 412).

    s3fs turns botocore's ClientError into an OSError and chains it; the
    code is read from the ClientError's response.
    """
    current: BaseException | None = error
    while current is not None:
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                return True
        current = current.__cause__ or current.__context__
    return False


def _first(info: Mapping[str, Any], *keys: str) -> str | None:
    """Return the first of `keys` that `info` holds a value for, as text."""
    for key in keys:
        value = info.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _bare_etag(etag: Any) -> str:
    """Return an ETag without its weak marker, to compare (RFC 9110, 8.8.3.2)."""
    text = str(etag).strip()
    return text[2:] if text.startswith("W/") else text


_FSSPEC_LOG_GUARD: list[logging.Filter] = []


class _HideURLs(logging.Filter):
    """Shows the URLs of fsspec's HTTP log records without their secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if holds_secret(message):
            record.msg, record.args = redact(message), None
        if record.exc_info:
            # fsspec logs the errors it swallows, whose texts name the URL.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        return True


def _hide_urls_in_fsspec_logs() -> None:
    """Clean the URLs of fsspec's HTTP log records (whole URLs, at debug level)."""
    if not _FSSPEC_LOG_GUARD:
        _FSSPEC_LOG_GUARD.append(_HideURLs())
        logging.getLogger("fsspec.http").addFilter(_FSSPEC_LOG_GUARD[0])


def _import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError as error:
        raise MissingDependencyError(
            'reading URLs and remote files needs fsspec: pip install "dcimg[remote]"',
            "fsspec",
        ) from error
    return fsspec


def _url_to_fs(urlpath: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    """Open the file system of `urlpath`; helpful ImportError if a package lacks."""
    fsspec = _import_fsspec()
    failure: ValueError | None = None
    try:
        fs, path = fsspec.core.url_to_fs(urlpath, **storage_options)
    except ImportError as error:
        protocol = urlpath.split("::")[-1].split("://")[0].lower()
        for part in urlpath.split("::"):
            candidate = part.split("://")[0].lower()
            if candidate in _PROTOCOL_EXTRAS:
                protocol = candidate
                break
        package, extra = _PROTOCOL_EXTRAS.get(protocol, (None, None))
        if package is None:
            hint = f"install the fsspec implementation of '{protocol}://'"
        else:
            hint = f'pip install "dcimg[{extra}]" (or pip install {package})'
        raise MissingDependencyError(
            f"{display_url(urlpath)}: reading '{protocol}://' URLs needs "
            f"{package or 'another package'}: {hint}",
            package,
            display_url(urlpath),
        ) from error
    except ValueError as error:
        text = redact(error, secrets_of(urlpath, storage_options))
        if "protocol" in str(error).lower() or text != str(error):
            failure = ValueError(f"{display_url(urlpath)}: {text}")
        else:
            raise
    if failure is not None:
        # Raised outside the except clause: the original text may hold a
        # secret, and would be kept as the context.
        raise failure
    return fs, path


#: Kept under its old name for the modules that import it from here.
