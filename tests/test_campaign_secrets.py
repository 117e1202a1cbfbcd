"""Campaign: secrets of URLs whose host is an IPv6 address are never shown.

An IPv6 host holds ``::`` (``http://[::1]:8080/...``), the very text that
joins the URLs of a chain: it must not split the URL in two, leaving its
query string (a presigned signature) shown as plain text.
"""

from __future__ import annotations

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
