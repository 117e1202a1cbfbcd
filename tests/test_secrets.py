"""No secret of a URL is ever shown.

One URL carries a user name, a password and a presigned query string; the
test opens it everywhere a URL is accepted and looks for those strings in
everything a person could see: repr and str, ``file_path``, the metadata
(as JSON), every error with its whole chain and traceback, the output of
``dcimg info`` and of a failing ``dcimg convert``, the Dask array's name
and repr, and the log records of every logger.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import pytest

import dcimg
from dcimg._urls import display_url, is_glob, is_url, redact, secrets_of
from dcimg.testing import example_stack, write_dcimg

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

USER = "alice-the-user"
PASSWORD = "hunter2-pw-9f3c"
SIGNATURE = "5ec7e7516a7u7e0ff1ce"
SECRETS = (USER, PASSWORD, SIGNATURE)


def secret_url(server, name: str = "a.dcimg") -> str:
    """The URL of `name` with credentials and a presigned query string."""
    plain = server.url(name)
    return (
        plain.replace("http://", f"http://{USER}:{PASSWORD}@")
        + f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SIGNATURE}"
    )


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        text = str(text)
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} shown in: {text[:300]}"


def assert_safe_error(error: BaseException) -> None:
    """The error, every exception in its chain, and its traceback are safe."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        assert_no_secret(str(current), repr(current), *current.args)
        current = current.__cause__ or current.__context__
    assert_no_secret("".join(traceback.format_exception(error)))


@pytest.fixture
def served(http_server, tmp_path):
    truth = example_stack(nframes=6, height=16, width=24)
    path = write_dcimg(tmp_path / "a.dcimg", truth)
    http_server.files["/a.dcimg"] = path.read_bytes()
    http_server.files["/run_001.dcimg"] = path.read_bytes()
    http_server.files["/run_002.dcimg"] = path.read_bytes()
    return http_server, truth


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcimg", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),  # not the source tree (no compiled modules)
    )


def test_a_presigned_url_opens_everywhere_and_shows_no_secret(served, tmp_path, caplog):
    server, truth = served
    url = secret_url(server)
    caplog.set_level(logging.DEBUG)  # every logger, fsspec's and aiohttp's too
    with dcimg.DCIMGFile(url) as f:
        np.testing.assert_array_equal(f[:], truth)
        assert_no_secret(repr(f), str(f), f.file_path, f.identity)
        assert f.file_path == display_url(url)
        assert f.location == url  # what workers open again: secrets kept
        assert f.file_object is None
        assert server.base in f.file_path and f.file_path.endswith("?***")
        assert_no_secret(json.dumps(f.metadata.to_dict()), repr(f.metadata))
        lazy = f.as_dask_array()
        assert_no_secret(lazy.name, repr(lazy), *map(str, lazy.__dask_keys__()))
        np.testing.assert_array_equal(lazy[1:3].compute(), truth[1:3])
    # The '?' of the query string is not a glob: one file, everywhere.
    np.testing.assert_array_equal(dcimg.imread(url), truth)
    members = [secret_url(server, "run_001.dcimg"), secret_url(server, "run_002.dcimg")]
    with dcimg.DCIMGSeries(members) as series:
        np.testing.assert_array_equal(series[1], truth)
        assert_no_secret(repr(series), json.dumps(series.metadata.to_dict()))
    assert_no_secret(caplog.text)
    assert caplog.records  # fsspec did log (its URLs cleaned)


def test_errors_about_a_presigned_url_show_no_secret(served, caplog):
    server, _ = served
    url = secret_url(server)
    caplog.set_level(logging.DEBUG)
    f = dcimg.DCIMGFile(url)
    # The server fails: aiohttp's own message names the whole URL.
    server.behaviour.fail_status = 500
    with pytest.raises(OSError) as info:
        f[0]
    assert_safe_error(info.value)
    assert "500" in str(info.value)
    with pytest.raises(OSError) as info:
        # The size lookup fails (fsspec says FileNotFoundError, and logs
        # aiohttp's error, whose text names the URL).
        dcimg.DCIMGFile(url)
    assert_safe_error(info.value)
    assert server.base in str(info.value)
    server.behaviour.fail_status = None
    # A redirect loop: aiohttp's own error names the URL, query and all.
    server.behaviour.redirect_get = True
    with pytest.raises(OSError, match="TooManyRedirects") as info:
        f[2]
    assert_safe_error(info.value)
    server.behaviour.redirect_get = False
    server.files.clear()  # the object is gone
    with pytest.raises(FileNotFoundError) as info:
        f[1]
    assert_safe_error(info.value)
    with pytest.raises(FileNotFoundError) as info:
        dcimg.DCIMGFile(url)
    assert_safe_error(info.value)
    assert server.base in str(info.value)
    with pytest.raises(OSError) as info:
        dcimg.imread(url)
    assert_safe_error(info.value)
    f.close()
    assert_no_secret(caplog.text)


def test_the_command_line_shows_no_secret(served, tmp_path):
    server, _ = served
    url = secret_url(server)
    shown = run_cli("info", url)
    assert shown.returncode == 0, shown.stderr
    assert_no_secret(shown.stdout, shown.stderr)
    assert display_url(url) in shown.stdout
    shown = run_cli("info", "--json", url)
    assert shown.returncode == 0, shown.stderr
    assert_no_secret(shown.stdout, shown.stderr)
    shown = run_cli("convert", url, str(tmp_path / "out.tif"))
    assert shown.returncode == 0, shown.stderr
    assert_no_secret(shown.stdout, shown.stderr)
    # Failing: the object is missing, the server fails.
    missing = secret_url(server, "missing.dcimg")
    shown = run_cli("convert", missing, str(tmp_path / "out2.tif"))
    assert shown.returncode == 1
    assert "missing.dcimg" in shown.stderr
    assert_no_secret(shown.stdout, shown.stderr)
    shown = run_cli("info", missing)
    assert shown.returncode == 1
    assert_no_secret(shown.stdout, shown.stderr)
    server.behaviour.fail_status = 500
    shown = run_cli("convert", url, str(tmp_path / "out3.tif"))
    assert shown.returncode == 1 and display_url(url) + ": " in shown.stderr
    assert_no_secret(shown.stdout, shown.stderr)
    assert not (tmp_path / "out2.tif").exists()
    assert not (tmp_path / "out3.tif").exists()


def test_storage_options_are_never_shown(served, caplog):
    server, truth = served
    token = "Bearer t0k3n-abcdef-123456"
    options = {"headers": {"Authorization": token}}
    caplog.set_level(logging.DEBUG)
    with dcimg.DCIMGFile(server.url("a.dcimg"), storage_options=options) as f:
        np.testing.assert_array_equal(f[2], truth[2])
        lazy = f.as_dask_array()
        texts = [repr(f), f.file_path, json.dumps(f.metadata.to_dict())]
        texts += [lazy.name, repr(lazy)]
        server.behaviour.fail_status = 500
        with pytest.raises(OSError) as info:
            f[0]
        texts.append("".join(traceback.format_exception(info.value)))
    texts.append(caplog.text)
    for text in texts:
        assert "t0k3n-abcdef-123456" not in text


# ---------------------------------------------------------------------------
# The rule itself


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@host:81/a.dcimg?sig=1#frag", "http://host:81/a.dcimg?***#***"),
        ("s3://bucket/key.dcimg", "s3://bucket/key.dcimg"),
        ("simplecache::https://u:p@h/a?x=1", "simplecache::https://h/a?***"),
        ("memory://a/b.dcimg", "memory://a/b.dcimg"),
        ("file:///data/a.dcimg", "file:///data/a.dcimg"),
        ("/local/a?.dcimg", "/local/a?.dcimg"),
        ("http://[bad/a?token=1", "http://***"),
    ],
)
def test_display_url(url, shown):
    assert display_url(url) == shown


def test_one_rule_for_urls_and_globs(tmp_path):
    assert is_url("https://host/a.dcimg") and is_url("simplecache::s3://b/k")
    assert not is_url("C:\\data\\a.dcimg") and not is_url("/data/a.dcimg")
    # A URL's "?" starts its query string; "*" and "[" in its path glob.
    assert not is_glob("https://host/a.dcimg?X-Amz-Signature=abc*[")
    assert is_glob("s3://bucket/run_*.dcimg") and is_glob("s3://b/run_[12].dcimg")
    assert not is_glob("s3://bucket/run.dcimg")
    # Local paths: "?" is a wildcard, unless a file has that very name.
    assert is_glob(str(tmp_path / "a?.dcimg"))
    (tmp_path / "a?.dcimg").write_bytes(b"")
    assert not is_glob(str(tmp_path / "a?.dcimg"))
    assert dcimg.series.names_series("https://h/a.dcimg?sig=1") is False
    assert dcimg.series.names_series("https://h/run_*.dcimg") is True
    assert dcimg.series.names_series("https://h/folder/") is True


def test_redact_hides_urls_and_known_secrets():
    url = "https://u:pass-word@h/a.dcimg?Signature=abcdef123"
    secrets = secrets_of(url, {"key": "AKIAEXAMPLE", "client_kwargs": {"x": "ok"}})
    text = f"failed: URL('{url}') with key AKIAEXAMPLE; ok; pass%2Dword"
    cleaned = redact(text, secrets)
    for secret in ("pass-word", "abcdef123", "AKIAEXAMPLE"):
        assert secret not in cleaned
    assert "https://h/a.dcimg?***" in cleaned and "ok" in cleaned
