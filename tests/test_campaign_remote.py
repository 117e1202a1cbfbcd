"""Campaign: servers that name an object's version only in answers to GET.

Some servers send no ETag or Last-Modified with HEAD (what fsspec asks at
opening) but do with every GET. The first answer, the header's, then names
the object opened: an object replaced at the URL afterwards (same size,
other pixels) is refused, never read under the old header.
"""

from __future__ import annotations

import numpy as np
import pytest
from servers import Behaviour, _Handler

from dcimg import DCIMGChangedError, DCIMGFile
from dcimg.testing import example_stack, write_dcimg

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")


class _NoVersionOnHead(_Handler):
    """Answers HEAD without ETag / Last-Modified, GET with them."""

    def send_header(self, keyword, value):
        if self.command == "HEAD" and keyword in ("ETag", "Last-Modified"):
            return
        super().send_header(keyword, value)


@pytest.fixture
def objects(tmp_path):
    truth = example_stack(nframes=5, height=16, width=24)
    old = write_dcimg(tmp_path / "old.dcimg", truth).read_bytes()
    new = write_dcimg(tmp_path / "new.dcimg", truth[::-1].copy()).read_bytes()
    assert len(old) == len(new) and old != new
    return old, new, truth


@pytest.mark.parametrize(
    "behaviour",
    [
        dict(etag=True, conditions=True),
        dict(etag=True, conditions=False),
        dict(last_modified=True, conditions=False),
        dict(last_modified=True, conditions=True),
    ],
    ids=["etag-honoured", "etag-ignored", "modified-ignored", "modified-honoured"],
)
def test_a_version_named_only_on_get_still_catches_a_replacement(
    http_server, objects, behaviour
):
    old, new, truth = objects
    http_server.RequestHandlerClass = _NoVersionOnHead
    http_server.behaviour = Behaviour(**behaviour)
    http_server.files["/a.dcimg"] = old
    with DCIMGFile(http_server.url("a.dcimg")) as f:
        np.testing.assert_array_equal(f[1], truth[1])  # unchanged: read
        http_server.files["/a.dcimg"] = new
        with pytest.raises(DCIMGChangedError, match="replaced"):
            f[:]
    with DCIMGFile(http_server.url("a.dcimg")) as f:  # opened again: the new one
        np.testing.assert_array_equal(f[0], truth[-1])
