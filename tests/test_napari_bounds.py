"""Trust in the napari reader: it declines what it cannot open, and guesses
contrast limits from a bounded sample of each frame.

These check :mod:`dcimg._napari` itself, which never imports napari, so they
run without napari installed (``tests/test_napari.py`` drives napari).
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from helpers import skip_unless_sparse_files
from hypothesis import given, settings
from hypothesis import strategies as st

from dcimg import DCIMGFile, _napari
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "100"))


@pytest.fixture
def two_huge_frames(tmp_path):
    """Two 24000 x 24000 ``uint16`` frames (2.3 GB) that take no disk space."""
    skip_unless_sparse_files(tmp_path)
    return write_sparse_dcimg(
        tmp_path / "huge.dcimg", 2, 24000, 24000, stored_pixels_row=7
    )


# ----------------------------------------------------------------------
# Declining, never raising


@pytest.fixture
def no_cloud_file_systems(monkeypatch):
    """As if s3fs and gcsfs were not installed (and nothing reached a cloud)."""
    for module in ("s3fs", "gcsfs"):
        monkeypatch.setitem(sys.modules, module, None)
    registry = sys.modules.get("fsspec.registry")
    if registry is not None:
        for protocol in ("s3", "s3a", "gs", "gcs"):
            monkeypatch.delitem(registry._registry, protocol, raising=False)


def _names(tmp_path: pathlib.Path) -> dict[str, object]:
    long_name = "_1" * 40_000 + "x.dcimg"
    return {
        "s3": "s3://bucket/run/a_001.dcimg",
        "gs": "gs://bucket/run/a_001.dcimg",
        "unknown protocol": "abc://host/run/a_001.dcimg",
        "s3 list": ["s3://bucket/a_001.dcimg", "s3://bucket/a_002.dcimg"],
        "bytes": os.fsencode(tmp_path / "a_001.dcimg"),
        "bytes folder": os.fsencode(tmp_path),
        "bytes in a list": [b"a_001.dcimg", b"a_002.dcimg"],
        "mixed list": [str(tmp_path / "a_001.dcimg"), b"a_002.dcimg"],
        "empty list": [],
        "not a path": 42,
        "none": None,
        "list of not paths": [1, 2],
        "long name": long_name,
        "long names": [long_name, "_2" + long_name],
        "null byte": str(tmp_path / "a\0.dcimg"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "s3",
        "gs",
        "unknown protocol",
        "s3 list",
        "bytes",
        "bytes folder",
        "bytes in a list",
        "mixed list",
        "empty list",
        "not a path",
        "none",
        "list of not paths",
        "long name",
        "long names",
        "null byte",
    ],
)
@pytest.mark.usefixtures("no_cloud_file_systems")
def test_what_cannot_be_opened_is_declined(tmp_path, kind):
    write_dcimg(tmp_path / "a_001.dcimg", example_stack(2, 4, 5))
    write_dcimg(tmp_path / "a_002.dcimg", example_stack(2, 4, 5))
    assert _napari.napari_get_reader(_names(tmp_path)[kind]) is None


def _diagonal_folder(folder: pathlib.Path, files: int, counters: int) -> None:
    """Empty files ``a_i_i_..._i.dcimg``: a grid of ``files ** counters``."""
    folder.mkdir()
    for i in range(files):
        (folder / ("a" + f"_{i}" * counters + ".dcimg")).write_bytes(b"")


@pytest.mark.parametrize(("files", "counters"), [(45, 5), (100, 5), (30, 20)])
def test_a_folder_whose_names_make_a_huge_grid_is_declined(tmp_path, files, counters):
    _diagonal_folder(tmp_path / "run", files, counters)
    assert _napari.napari_get_reader(str(tmp_path / "run")) is None


def test_a_series_with_more_counters_than_axis_names_is_declined(tmp_path):
    # DCIMGSeries asks for axes= (a ValueError): the viewer declines.
    from dcimg.testing import write_series

    folder = tmp_path / "run"
    write_series(folder, example_stack(2**8, 2, 3).reshape((2,) * 8 + (1, 2, 3)))
    assert _napari.napari_get_reader(str(folder)) is None


def test_a_good_file_and_folder_still_open(tmp_path):
    truth = example_stack(3, 4, 5)
    path = write_dcimg(tmp_path / "a_001.dcimg", truth)
    ((data, _, _),) = _napari.napari_get_reader(str(path))(str(path))
    np.testing.assert_array_equal(data, truth)
    ((data, _, _),) = _napari.napari_get_reader(pathlib.Path(path))(str(path))
    np.testing.assert_array_equal(data, truth)


# ----------------------------------------------------------------------
# Contrast limits from a bounded sample


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(
    height=st.integers(1, 10**6) | st.sampled_from([1, 2048, 24000, 2**31]),
    width=st.integers(1, 10**6) | st.sampled_from([1, 2048, 24000, 2**31]),
    itemsize=st.sampled_from([1, 2]),
)
def test_the_sample_is_bounded_whatever_the_frame(height, width, itemsize):
    budget = _napari.CONTRAST_SAMPLE_BYTES
    windows = _napari._sample_windows(height, width, itemsize)
    assert 1 <= len(windows) <= 8
    bands = [range(height)[rows] for rows, _ in windows]
    (columns,) = {range(width)[c] for _, c in windows}
    # Contiguous rows and columns: a range source reads no more than asked.
    assert all(b.step == 1 and len(b) >= 1 for b in bands)
    assert columns.step == 1 and len(columns) >= 1
    if height * width * itemsize <= budget:
        assert (bands, columns) == ([range(height)], range(width))
        return
    # Whole rows (as a range source reads them) within the budget, or one
    # row cut to the budget when a row is wider.
    rows = sum(len(b) for b in bands)
    if rows > 1:
        assert rows * width * itemsize <= budget
    else:
        assert len(columns) * itemsize <= budget
    # In order, apart, and spread over the frame: both halves are sampled.
    starts = [b.start for b in bands]
    assert all(b.stop <= c.start for b, c in zip(bands, bands[1:], strict=False))
    assert starts == sorted(starts) and bands[-1].stop <= height
    if len(bands) > 1:
        assert bands[0].start < height / 2 <= bands[-1].start


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes read through it."""

    def __init__(self, path):
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=os.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def readinto(self, buffer):
        count = self._file.readinto(buffer)
        self.bytes_read += count or 0
        return count

    def close(self):
        self._file.close()
        super().close()


def test_contrast_limits_of_huge_frames_read_a_few_mib(two_huge_frames):
    counting = _CountingFile(two_huge_frames)
    with DCIMGFile(counting) as f:
        opened = counting.bytes_read
        limits = _napari._contrast_limits(f)
    counting.close()
    assert limits == [0.0, 1.0]  # all zero: a flat range
    frames = 2
    read = counting.bytes_read - opened
    # Not the 2.3 GB of the two frames: the budget per frame, and the per-frame
    # data of the trailers.
    assert read <= frames * _napari.CONTRAST_SAMPLE_BYTES + (1 << 20), read


def test_contrast_limits_through_a_range_reader_are_bounded(two_huge_frames):
    with DCIMGFile(two_huge_frames, mmap=False) as f:
        reader = f._source.reader
        before = reader.bytes_read
        _napari._contrast_limits(f)
        read = reader.bytes_read - before
    assert read <= 2 * _napari.CONTRAST_SAMPLE_BYTES + (1 << 20), read


def test_opening_huge_frames_in_the_viewer_stays_small(two_huge_frames):
    # The whole reader as napari calls it, in a fresh process: its peak
    # resident memory says how much of the frames it touched (2.2 GB before).
    # VmHWM, not ru_maxrss: the latter keeps the peak of the parent that
    # spawned the process (this test run).
    pytest.importorskip("dask.array")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc/self/status (VmHWM) here")
    code = textwrap.dedent(
        f"""
        from dcimg import _napari
        path = {str(two_huge_frames)!r}
        ((data, kwargs, _),) = _napari.napari_get_reader(path)(path)
        assert type(data).__module__.startswith("dask"), type(data)
        assert kwargs["contrast_limits"] == [0.0, 1.0]
        with open("/proc/self/status") as status:
            (line,) = [row for row in status if row.startswith("VmHWM:")]
        print(int(line.split()[1]) * 1024)
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tempfile.gettempdir(),  # not the source tree (no compiled modules)
        )
    except subprocess.TimeoutExpired:
        pytest.fail("opening two huge frames took over 120 s")
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1])
    assert peak < 600 << 20, f"peak memory {peak >> 20} MiB"


def test_limits_of_ordinary_frames_are_exact(tmp_path, monkeypatch):
    # Frames within the budget are read whole, lazy layer or not.
    truth = example_stack(9, 64, 80, seed=4)
    truth[4, 40, 70] = 65000  # a hot pixel in a sampled frame
    truth[3, 10, 10] = 64000  # and one in a frame that is not sampled
    path = write_dcimg(tmp_path / "ordinary.dcimg", truth, stored_pixels_row=2)
    sampled = _napari._sample_frames(9)
    assert 4 in sampled and 3 not in sampled
    expected = [
        float(truth[sampled].min()),
        float(truth[sampled].max()),
    ]
    for limit in (1 << 30, 0):  # in memory, then lazy
        monkeypatch.setattr(_napari, "IN_MEMORY_MAX_BYTES", limit)
        ((_, kwargs, _),) = _napari.napari_get_reader(str(path))(str(path))
        assert kwargs["contrast_limits"] == expected


def test_limits_of_large_frames_come_from_the_sampled_rows(tmp_path, monkeypatch):
    # A frame over the budget: every n-th row of it, read lazily.
    height, width = 2200, 2100  # 9.2 MB of uint16
    rng = np.random.default_rng(5)
    truth = rng.integers(100, 200, (2, height, width), dtype=np.uint16)
    windows = _napari._sample_windows(height, width, 2)
    assert len(windows) == 8
    band = range(height)[windows[3][0]]
    sampled_row, skipped_row = band[-1], band[-1] + 1
    truth[1, sampled_row, 17] = 60000  # seen
    truth[0, skipped_row, 18] = 65000  # between the bands: not seen
    truth[0, sampled_row, 19] = 3  # seen
    path = write_dcimg(tmp_path / "large.dcimg", truth)
    monkeypatch.setattr(_napari, "IN_MEMORY_MAX_BYTES", 0)
    ((data, kwargs, _),) = _napari.napari_get_reader(str(path))(str(path))
    assert type(data).__module__.startswith("dask")
    assert kwargs["contrast_limits"] == [3.0, 60000.0]
