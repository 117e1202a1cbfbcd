"""One rule for URLs: what is a URL, what is a glob, and how a URL is shown.

Everything in :mod:`dcimg` that must tell a URL from a local path, a URL
glob from a URL, or show a URL to a person (``repr``, messages, metadata,
the command line, progress bars, Dask names) asks this module, so the rule
is written once:

- :func:`is_url`: ``protocol://...`` or a chained ``a::b://...`` URL.
- :func:`is_glob`: a URL is a glob when its *path* holds ``*`` or ``[``;
  its ``?`` starts the query string (presigned URLs carry their signature
  there) and is never a wildcard. A local path is a glob when it holds
  ``*``, ``?`` or ``[`` and names no existing file.
- :func:`display_url`: the URL as it may be shown: scheme, host, port and
  path; user names and passwords are dropped, query strings and fragments
  replaced by ``***``.
- :func:`redact`: any text (a third-party exception's message, a log
  line) with every URL in it shown by :func:`display_url` and every known
  secret string (passwords, query values, keys in ``storage_options``)
  replaced by ``***``.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["display_url", "is_glob", "is_url", "redact", "secrets_of"]

#: What replaces a secret wherever it would be shown.
HIDDEN = "***"

# A URL starts with a protocol of at least two characters (so that Windows
# drive letters are not taken for one) followed by "://", or by "::" in a
# chained URL such as "simplecache::s3://bucket/key".
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+(://|::)")

# A URL inside free text: up to the first blank, quote or bracket that
# cannot be part of it (aiohttp writes URL('...'), botocore "..."), and
# not ending in the punctuation of the sentence around it ("URL: reason").
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+://[^\s'\"<>`]*[^\s'\"<>`:,;.)\]]")

# Keys of storage_options whose values are secrets, at any depth
# (key/secret/token of s3fs, account_key/sas_token of adlfs, password,
# the headers of an HTTP file system, which may carry "Authorization").
_SECRET_KEY = re.compile(
    r"key|secret|token|pass|auth|credential|signature|session|headers|cookie",
    re.IGNORECASE,
)
# Shorter strings are not hunted for in free text: they would mangle
# ordinary words, and are not secrets worth the name.
_SHORTEST_SECRET = 4


def is_url(source: Any) -> bool:
    r"""Tell whether `source` is a URL (``protocol://...`` or a chained URL).

    Parameters
    ----------
    source : object
        Anything; only strings can be URLs.

    Returns
    -------
    bool
        ``True`` for strings such as ``"s3://bucket/key"``,
        ``"file:///data/a.dcimg"`` or ``"simplecache::https://host/a.dcimg"``;
        ``False`` for local paths (including Windows paths ``"C:\..."``).
    """
    return isinstance(source, str) and _URL.match(source) is not None


# The "::" that joins the URLs of a chain; an IPv6 host ("[::1]") holds
# "::" too, inside its brackets, where it joins nothing.
_CHAIN_JOIN = re.compile(r"::(?![^\[\]]*\])")


def chain_parts(url: str) -> list[str]:
    """Split a chained URL (``a::b://...``) into its parts.

    The ``::`` inside the brackets of an IPv6 host (``http://[::1]/a``) is
    part of the host, not a join.
    """
    return _CHAIN_JOIN.split(url)


def url_path(url: str) -> str:
    """Return the part of `url` that may hold glob characters.

    That is everything after the last ``protocol://`` of a chained URL, up
    to its query string (``?``) or fragment (``#``).
    """
    rest = chain_parts(url)[-1].split("://", 1)[-1]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    host, slash, path = rest.partition("/")
    # The brackets of an IPv6 host ("[::1]") are no glob.
    return slash + path if "[" in host else rest


def is_glob(source: Any) -> bool:
    """Tell whether `source` is a glob pattern (of URLs or of local paths).

    Parameters
    ----------
    source : object
        A path or URL (``str``, ``bytes`` or :class:`os.PathLike`); anything
        else is no pattern.

    Returns
    -------
    bool
        For a URL: its path (before any ``?``) holds ``*`` or ``[``. A
        URL's ``?`` starts its query string, never a wildcard, so presigned
        URLs are single objects. For a local path: it holds ``*``, ``?`` or
        ``[`` and no file or folder has that very name.
    """
    if isinstance(source, bytes | os.PathLike):
        source = os.fsdecode(os.fspath(source))
    if not isinstance(source, str):
        return False
    if is_url(source):
        path = url_path(source)
        return "*" in path or "[" in path
    return glob.has_magic(source) and not os.path.lexists(source)


def display_url(text: Any) -> str:
    """Return `text` as it may be shown: a URL without its secrets.

    Parameters
    ----------
    text : str or os.PathLike
        A URL (every part of a chained URL is cleaned) or a local path
        (returned unchanged).

    Returns
    -------
    str
        Scheme, host, port and path of the URL: a user name and password
        are dropped; a query string and a fragment each become ``***``
        (``.../a.dcimg?***``), so that what was removed is visible.

    Examples
    --------
    >>> display_url("https://user:pw@host:8080/a.dcimg?X-Amz-Signature=abc")
    'https://host:8080/a.dcimg?***'
    >>> display_url("/data/run.dcimg")
    '/data/run.dcimg'
    """
    if isinstance(text, bytes | os.PathLike):
        text = os.fsdecode(os.fspath(text))
    shown = str(text)
    if "://" not in shown:
        return shown
    parts = []
    for part in chain_parts(shown):
        parts.append(_display_one(part) if "://" in part else part)
    return "::".join(parts)


def _display_one(url: str) -> str:
    # urllib.parse (and the ipaddress module it loads) only once a URL is
    # shown: reading local files never needs it.
    from urllib.parse import urlsplit, urlunsplit

    try:
        split = urlsplit(url)
        netloc = split.netloc
    except ValueError:  # an unparsable URL (a bad port, brackets): show less
        return url.split("://", 1)[0] + "://" + HIDDEN
    netloc = netloc.rpartition("@")[2]  # no user name or password
    query = HIDDEN if split.query or url.rstrip("#").endswith("?") else ""
    fragment = HIDDEN if split.fragment else ""
    shown = urlunsplit((split.scheme, netloc, split.path, query, fragment))
    return shown


def secrets_of(
    urlpath: Any = None, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Return the strings of a URL and its options that must never be shown.

    Parameters
    ----------
    urlpath : str, optional
        A URL: its user name, password, query string (whole, and each
        value) and fragment are secrets.
    storage_options : mapping, optional
        Options of the file system: every string (at any depth) under a key
        that names a secret (``key``, ``secret``, ``token``, ``password``,
        ``headers``, ...) is a secret.

    Returns
    -------
    list of str
        The secrets, longest first (each also URL-decoded), without the ones
        too short to hunt for in text.
    """
    from urllib.parse import unquote, urlsplit

    found: set[str] = set()
    if isinstance(urlpath, str) and "://" in urlpath:
        for part in chain_parts(urlpath):
            if "://" not in part:
                continue
            try:
                split = urlsplit(part)
                userinfo = split.netloc.rpartition("@")[0]
                query, fragment = split.query, split.fragment
            except ValueError:
                userinfo, query, fragment = "", "", ""
            pieces = [userinfo, *userinfo.split(":", 1), query, fragment]
            for item in re.split(r"[&;]", query):
                pieces.extend(item.split("=", 1))
            found.update(pieces)
    if storage_options:
        found.update(_secret_values(storage_options, False))
    decoded = {unquote(s) for s in found}
    return sorted(
        (s for s in found | decoded if len(s) >= _SHORTEST_SECRET),
        key=len,
        reverse=True,
    )


def _secret_values(value: Any, secret: bool) -> Iterable[str]:
    """Yield the strings under secret keys of nested options."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_values(
                item, secret or bool(_SECRET_KEY.search(str(key)))
            )
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _secret_values(item, secret)
    elif isinstance(value, str) and secret:
        yield value
        # "Bearer abc": the token alone may appear too.
        yield from value.split()
    elif isinstance(value, bytes) and secret:
        yield value.decode("latin-1")


def redact(text: Any, secrets: Iterable[str] = ()) -> str:
    """Return `text` with its URLs shown safely and `secrets` hidden.

    For texts this package did not write (a third-party exception's
    message, a log record): every URL in them is shown as
    :func:`display_url` shows it, and every string of `secrets` (see
    :func:`secrets_of`) becomes ``***`` wherever it appears.

    Parameters
    ----------
    text : object
        The text (anything; it is converted with ``str``).
    secrets : iterable of str, optional
        Strings to hide; longer ones are replaced first.

    Returns
    -------
    str
    """
    shown = _URL_IN_TEXT.sub(lambda m: display_url(m.group(0)), str(text))
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHORTEST_SECRET:
            shown = shown.replace(secret, HIDDEN)
    return shown


def exception_text(error: BaseException) -> str:
    """Return the text of `error` and of every exception it was raised from."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        texts.extend(str(note) for note in getattr(current, "__notes__", ()))
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def holds_secret(text: str, secrets: Iterable[str] = ()) -> bool:
    """Tell whether `text` would change under :func:`redact`."""
    return redact(text, secrets) != text


def local_path(source: Any) -> str | None:
    """Return the local file `source` names, or ``None`` if it names none.

    Parameters
    ----------
    source : object
        A path (``str``, ``bytes`` or :class:`os.PathLike`), a URL, or
        anything else.

    Returns
    -------
    str or None
        The path for local paths and plain ``file://`` URLs (which can be
        memory-mapped); ``None`` for other URLs, chained URLs and objects.
    """
    if isinstance(source, bytes | os.PathLike):
        source = os.fsdecode(os.fspath(source))
    if not isinstance(source, str):
        return None
    if not is_url(source):
        return source
    if source[:7].lower() == "file://" and "::" not in source:
        path = source[7:]
        # file:///C:/data/a.dcimg on Windows
        if re.match(r"^/[A-Za-z]:[/\\]", path) and os.name == "nt":
            path = path[1:]
        return path
    return None
