"""Campaign: secrets of URLs whose host is an IPv6 address are never shown.

An IPv6 host holds ``::`` (``http://[::1]:8080/...``), the very text that
joins the URLs of a chain: it must not split the URL in two, leaving its
query string (a presigned signature) shown as plain text.
"""

from __future__ import annotations

import struct

import pytest

from dcimg._urls import chain_parts, display_url, is_glob, redact, secrets_of

SIGNATURE = "X-Amz-Signature=0123456789abcdef"
URLS = [
    f"http://user:hunter22@[::1]:8080/data/a.dcimg?{SIGNATURE}",
    f"https://[2001:db8::7]/a.dcimg?{SIGNATURE}",
    f"simplecache::http://user:hunter22@[fe80::1%25eth0]:80/a.dcimg?{SIGNATURE}",
]


@pytest.mark.parametrize("url", URLS)
def test_an_ipv6_url_shows_no_secret(url):
    shown = display_url(url)
    assert "0123456789abcdef" not in shown
    assert "hunter22" not in shown
    assert shown.endswith("/a.dcimg?***")
    assert "[" in shown and "]" in shown  # the host is still shown
    text = redact(f"cannot read {url}: timeout")
    assert "0123456789abcdef" not in text and "hunter22" not in text
    found = secrets_of(url)
    assert "0123456789abcdef" in found
    if "hunter22" in url:
        assert "hunter22" in found
    assert not is_glob(url)


def test_chains_split_outside_brackets_only():
    assert chain_parts("http://[::1]/a") == ["http://[::1]/a"]
    assert chain_parts("simplecache::http://[::1]:80/a") == [
        "simplecache",
        "http://[::1]:80/a",
    ]
    assert chain_parts("zip://a::file:///b.zip") == ["zip://a", "file:///b.zip"]


# --------------------------------------------------------------------------
# A presigned URL with a password, through the viewer, bioio and the CLI


USER = "alice-the-user"
PASSWORD = "hunter2-pw-9f3c"
SECRET_SIGNATURE = "5ec7e7516a7u7e0ff1ce"


def _secret_url(server, name):
    return (
        server.url(name).replace("http://", f"http://{USER}:{PASSWORD}@")
        + f"?X-Amz-Signature={SECRET_SIGNATURE}"
    )


def _assert_safe(*texts):
    for text in texts:
        for secret in (USER, PASSWORD, SECRET_SIGNATURE):
            assert secret not in str(text), str(text)[:300]


@pytest.fixture
def presigned(http_server, tmp_path):
    pytest.importorskip("fsspec")
    pytest.importorskip("aiohttp")

    from dcimg.testing import example_stack, write_dcimg

    truth = example_stack(nframes=4, height=16, width=24)
    data = write_dcimg(tmp_path / "a.dcimg", truth).read_bytes()
    for name in ("a.dcimg", "run_01.dcimg", "run_02.dcimg"):
        http_server.files["/" + name] = data
    # Headers only: a recording that has not written a frame yet.
    raw = write_dcimg(tmp_path / "e.dcimg", truth, version=0x1000000).read_bytes()
    session = 0x70  # where the writer puts a framed file's session header
    start = session + struct.unpack_from("<Q", raw, session + 0x60)[0]
    http_server.files["/empty.dcimg"] = raw[:start]
    return http_server, truth


def test_the_viewer_opens_a_presigned_url_and_shows_no_secret(presigned):
    import numpy as np

    from dcimg import _napari

    server, truth = presigned
    url = _secret_url(server, "a.dcimg")
    reader = _napari.napari_get_reader(url)
    assert reader is not None  # the '?' of the query string is no extension
    ((data, kwargs, kind),) = reader(url)
    assert kind == "image" and kwargs["name"] == "a"
    np.testing.assert_array_equal(np.asarray(data), truth)
    _assert_safe(kwargs["name"], repr(kwargs["metadata"]))
    members = [_secret_url(server, n) for n in ("run_01.dcimg", "run_02.dcimg")]
    ((_, kwargs, _),) = _napari.napari_get_reader(members)(members)
    assert kwargs["name"] == "run"
    _assert_safe(kwargs["name"], repr(kwargs["metadata"]))


def test_the_viewer_warning_about_an_empty_url_shows_no_secret(presigned):
    from dcimg import _napari

    server, _ = presigned
    with pytest.warns(RuntimeWarning, match="no complete frame") as caught:
        assert _napari.napari_get_reader(_secret_url(server, "empty.dcimg")) is None
    _assert_safe(*(str(w.message) for w in caught))


def test_a_usage_error_quoting_an_output_url_shows_no_secret(presigned, capsys):
    from dcimg.cli import main

    server, _ = presigned
    with pytest.raises(SystemExit) as exit_:
        main(["convert", _secret_url(server, "a.dcimg"), _secret_url(server, "o.tif")])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "cannot tell the output format" in captured.err
    _assert_safe(captured.out, captured.err)


def test_bioio_errors_about_a_url_show_no_secret(presigned):
    pytest.importorskip("bioio")
    from dcimg.bioio import Reader

    server, _ = presigned
    import traceback

    with pytest.raises(Exception) as caught:
        Reader(_secret_url(server, "missing.dcimg"))
    _assert_safe("".join(traceback.format_exception(caught.value)))
    # The reader reads URLs: what it shows of one it opened is safe too.
    reader = Reader(_secret_url(server, "a.dcimg"))
    data = reader.xarray_dask_data
    _assert_safe(
        repr(reader),
        reader.metadata,
        data.attrs,
        data.data.name,
        reader.standard_metadata.to_dict(),
    )


def test_the_imageio_plugin_names_a_url_without_its_query(http_server):
    iio = pytest.importorskip("imageio.v3")
    http_server.files["/a.dcimg"] = b"not a DCIMG file" * 8
    url = http_server.url("a.dcimg") + f"?X-Amz-Signature={SECRET_SIGNATURE}"
    with pytest.raises(OSError) as caught:
        iio.imread(url, plugin="DCIMG")
    ours = caught.value.__cause__  # imageio's own message is its own
    assert ours is not None and "is not a DCIMG file" in str(ours)
    _assert_safe(str(ours), repr(ours))
