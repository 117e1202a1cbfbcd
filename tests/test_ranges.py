"""The range readers (dcimg._ranges): request planning, exact bytes, few
requests and bytes, and clear errors, against local files, file objects,
``memory://``, an HTTP server and an S3 server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import math
import mmap
import os
import pickle
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python, run_tiny_bench, trailer_ranges
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcimg._ranges import (
    FileObjectReader,
    PreadReader,
    RangeReader,
    plan_requests,
)
from dcimg._remote import FsspecReader
from dcimg._source import open_reader
from dcimg._urls import is_url, local_path
from dcimg.errors import (
    DCIMGChangedError,
    DCIMGError,
    DCIMGFormatError,
    DCIMGReadError,
)
from dcimg.testing import example_stack, write_dcimg, write_sparse_dcimg

EXAMPLES = int(os.environ.get("DCIMG_HYPOTHESIS_EXAMPLES", "500"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the servers only serve here
    ],
)
# Fewer examples where every example makes network requests.
NET_SETTINGS = settings(SETTINGS, max_examples=max(10, EXAMPLES // 10))
# Fewer still for S3: each example opens an s3fs client (0.8 s). What the
# examples test -- planning, concurrency, exact bytes -- is FsspecReader's
# own code, which memory:// (EXAMPLES) and HTTP (NET_SETTINGS) run too; the
# S3 examples check the transport and its identity headers.
S3_SETTINGS = settings(SETTINGS, max_examples=max(5, EXAMPLES // 50))

try:  # the tests of URLs need fsspec (the "remote" extra); the others do not
    import fsspec
except ImportError:  # pragma: no cover
    fsspec = None


# --------------------------------------------------------------------------
# Helpers


class Sample(tuple):
    """(path, bytes) of a file, with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"Sample({self[0].name}, {len(self[1])} bytes)"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Sample:
    """A small framed DCIMG file with stored pixels, and its bytes."""
    path = tmp_path_factory.mktemp("ranges") / "sample.dcimg"
    write_dcimg(
        path,
        example_stack(nframes=12, height=24, width=40),
        stored_pixels_row=5,
    )
    return Sample((path, path.read_bytes()))


@pytest.fixture
def memory_url(sample):
    """The sample as a memory:// object, removed afterwards."""
    if fsspec is None:
        pytest.skip("needs fsspec")
    fs = fsspec.filesystem("memory")
    key = f"/dcimg-tests/{uuid.uuid4().hex}.dcimg"
    fs.pipe_file(key, sample[1])
    yield "memory://" + key
    fs.rm_file(key)


ranges_strategy = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(0, 3_000)).map(
        lambda t: (t[0], t[0] + t[1])
    ),
    max_size=30,
)
limits_strategy = st.tuples(
    st.sampled_from([0, 1, 100, 4096, 65536]),  # max_gap
    st.sampled_from([1000, 4096, 1 << 20]),  # max_request
)


def clip(ranges, size):
    return [(min(a, size), min(b, size)) for a, b in ranges]


def check_reader(reader: RangeReader, data: bytes, ranges) -> None:
    ranges = clip(ranges, len(data))
    got = reader.read_ranges(ranges)
    assert len(got) == len(ranges)
    for view, (a, b) in zip(got, ranges, strict=True):
        assert bytes(view) == data[a:b], (a, b)
    buffers = [np.full(b - a, 0x55, np.uint8) for a, b in ranges]
    reader.readinto_ranges(ranges, buffers)
    for buffer, (a, b) in zip(buffers, ranges, strict=True):
        assert buffer.tobytes() == data[a:b], (a, b)


# --------------------------------------------------------------------------
# plan_requests


def check_plan(ranges, max_gap, max_request):
    plan = plan_requests(ranges, max_gap=max_gap, max_request=max_request)
    requests = plan.requests
    for (_, b), (c, _) in zip(requests, requests[1:], strict=False):
        assert b <= c  # sorted and disjoint
    for a, b in requests:
        assert 0 < b - a <= max_request
    needed = sorted((a, b) for a, b in ranges if b > a)
    covered = []
    for a, b in needed:  # the union of the ranges
        if covered and a <= covered[-1][1]:
            covered[-1][1] = max(covered[-1][1], b)
        else:
            covered.append([a, b])
    # Every request starts and ends on needed bytes, and reads through no gap
    # longer than max_gap.
    for a, b in requests:
        inside = [(max(a, c), min(b, d)) for c, d in covered if c < b and d > a]
        assert inside and inside[0][0] == a and inside[-1][1] == b
        for (_, end), (start, _) in zip(inside, inside[1:], strict=False):
            assert start - end <= max_gap
    # The pieces give back every range exactly.
    assert len(plan.pieces) == len(ranges)
    for (a, b), parts in zip(ranges, plan.pieces, strict=True):
        position = a
        for k, offset, length in parts:
            start, stop = requests[k]
            assert length > 0 and 0 <= offset and offset + length <= stop - start
            assert start + offset == position
            position += length
        assert position == b
    return plan


@SETTINGS
@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 10**7), st.integers(0, 10**5)).map(
            lambda t: (t[0], t[0] + t[1])
        ),
        max_size=60,
    ),
    max_gap=st.integers(0, 10**5),
    max_request=st.integers(10**3, 10**6),
)
def test_plan_covers_every_range_exactly(ranges, max_gap, max_request):
    check_plan(ranges, max_gap, max_request)


def fewest_requests(ranges, max_gap, max_request, domain):
    """Fewest requests under the rule, by dynamic programming over bytes."""
    needed = np.zeros(domain, bool)
    for a, b in ranges:
        needed[a:b] = True

    def allowed(a, b):  # [a, b) reads through no gap longer than max_gap
        run = 0
        for x in range(a, b):
            run = 0 if needed[x] else run + 1
            if run > max_gap and x < b - 1 and needed[x + 1 : b].any():
                return False
        return True

    best = [0] * (domain + 1)  # best[x]: every needed byte below x covered
    for x in range(1, domain + 1):
        if not needed[x - 1]:
            best[x] = best[x - 1]
            continue
        best[x] = min(
            best[a] + 1 for a in range(max(0, x - max_request), x) if allowed(a, x)
        )
    return best[domain]


@SETTINGS
@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 12)).map(
            lambda t: (t[0], t[0] + t[1])
        ),
        max_size=8,
    ),
    max_gap=st.integers(0, 6),
    max_request=st.integers(1, 20),
)
def test_plan_makes_the_fewest_requests(ranges, max_gap, max_request):
    plan = check_plan(ranges, max_gap, max_request)
    assert len(plan.requests) == fewest_requests(ranges, max_gap, max_request, 52)


def test_plan_examples():
    plan = plan_requests(
        [(50, 60), (0, 10), (12, 20), (5, 8), (30, 30)], max_gap=2, max_request=100
    )
    assert plan.requests == [(0, 20), (50, 60)]
    assert plan.pieces == [
        ((1, 0, 10),),
        ((0, 0, 10),),
        ((0, 12, 8),),
        ((0, 5, 3),),
        (),
    ]
    # A stretch longer than the cap is split back to back.
    plan = plan_requests([(0, 25)], max_gap=0, max_request=10)
    assert plan.requests == [(0, 10), (10, 20), (20, 25)]
    assert plan.pieces == [((0, 0, 10), (1, 0, 10), (2, 0, 5))]
    # A full request is not extended, even across a short gap.
    plan = plan_requests([(0, 10), (11, 15)], max_gap=5, max_request=10)
    assert plan.requests == [(0, 10), (11, 15)]
    assert plan_requests([], max_gap=0, max_request=1).requests == []


@pytest.mark.parametrize(
    "ranges, kwargs",
    [
        ([(5, 4)], {}),
        ([(-1, 4)], {}),
        ([(1, 2, 3)], {}),
        (["ab"], {}),
        ([(0, 1)], {"max_gap": -1}),
        ([(0, 1)], {"max_request": 0}),
    ],
)
def test_plan_rejects_bad_input(ranges, kwargs):
    limits = {"max_gap": 0, "max_request": 10} | kwargs
    with pytest.raises(ValueError):
        plan_requests(ranges, **limits)


def test_plan_trailers_of_small_and_large_frames(tmp_path):
    # 10,000 frames of 64x64: the trailers are 8 KiB apart, so they come in
    # a handful of merged requests; 2,000 frames of 256x256: 128 KiB apart,
    # fetched alone, without the pixels.
    def plan_of_trailers(path):
        return plan_requests(
            trailer_ranges(path),
            max_gap=FsspecReader.default_max_gap,
            max_request=FsspecReader.default_max_request,
        )

    small = write_sparse_dcimg(tmp_path / "small.dcimg", 10_000, 64, 64)
    plan = plan_of_trailers(small)
    assert len(plan.requests) <= 20
    large = write_sparse_dcimg(tmp_path / "large.dcimg", 2_000, 256, 256)
    plan = plan_of_trailers(large)
    assert sum(b - a for a, b in plan.requests) < 0.05 * large.stat().st_size


# --------------------------------------------------------------------------
# Exact bytes from every reader


@SETTINGS
@given(ranges=ranges_strategy, limits=limits_strategy)
def test_pread_reader_returns_exact_bytes(sample, ranges, limits):
    path, data = sample
    max_gap, max_request = limits
    with PreadReader(path, max_gap=max_gap, max_request=max_request) as reader:
        assert reader.size == len(data)
        check_reader(reader, data, ranges)


@SETTINGS
@given(
    ranges=ranges_strategy,
    limits=limits_strategy,
    most=st.sampled_from([1, 7, 4096, None]),
    iov_max=st.sampled_from([2, 3, 1024]),
)
def test_pread_vectored_reads_are_exact_through_short_reads(
    sample, ranges, limits, most, iov_max
):
    """Merged requests read in place (preadv into the ranges' own buffers and
    scratch for the gaps) stay exact when the system returns fewer bytes than
    asked, and when a request has more pieces than one call takes."""
    from unittest import mock

    from dcimg import _ranges

    path, data = sample
    max_gap, max_request = limits
    real = os.preadv
    calls = []

    def short(fd, buffers, offset):
        calls.append(len(buffers))
        if most is None:
            return real(fd, buffers, offset)
        return real(fd, [buffers[0][:most]], offset)

    with (
        mock.patch.object(_ranges, "_IOV_MAX", iov_max),
        mock.patch.object(_ranges, "_preadv", short),
        PreadReader(path, max_gap=max_gap, max_request=max_request) as reader,
    ):
        assert reader.vectored
        check_reader(reader, data, ranges)
    assert all(n <= iov_max for n in calls)


@SETTINGS
@given(ranges=ranges_strategy, limits=limits_strategy, readinto=st.booleans())
def test_file_object_reader_returns_exact_bytes(sample, ranges, limits, readinto):
    path, data = sample
    max_gap, max_request = limits

    class ReadOnly(io.RawIOBase):  # seek and read; readinto not implemented
        def __init__(self):
            self._f = io.BytesIO(data)

        def seekable(self):
            return True

        def readable(self):
            return True

        def seek(self, offset, whence=0):
            return self._f.seek(offset, whence)

        def tell(self):
            return self._f.tell()

        def read(self, n=-1):
            return self._f.read(min(n, 1000))  # short reads, as pipes give

    fileobj = open(path, "rb") if readinto else ReadOnly()  # noqa: SIM115
    with (
        fileobj,
        FileObjectReader(fileobj, max_gap=max_gap, max_request=max_request) as reader,
    ):
        assert reader.size == len(data)
        check_reader(reader, data, ranges)


@SETTINGS
@given(ranges=ranges_strategy, limits=limits_strategy)
def test_memory_url_reader_returns_exact_bytes(memory_url, sample, ranges, limits):
    max_gap, max_request = limits
    with FsspecReader(memory_url, max_gap=max_gap, max_request=max_request) as reader:
        check_reader(reader, sample[1], ranges)


@NET_SETTINGS
@given(ranges=ranges_strategy, limits=limits_strategy)
def test_http_reader_returns_exact_bytes(http_server, sample, ranges, limits):
    http_server.files["/sample.dcimg"] = sample[1]
    max_gap, max_request = limits
    url = http_server.url("sample.dcimg")
    with FsspecReader(url, max_gap=max_gap, max_request=max_request) as reader:
        check_reader(reader, sample[1], ranges)


@S3_SETTINGS
@given(ranges=ranges_strategy, limits=limits_strategy)
def test_s3_reader_returns_exact_bytes(s3_server, sample, ranges, limits):
    url = s3_server.url("sample.dcimg")
    if not s3_server.filesystem().exists(url):
        s3_server.put("sample.dcimg", sample[1])
    max_gap, max_request = limits
    with FsspecReader(
        url, s3_server.storage_options, max_gap=max_gap, max_request=max_request
    ) as reader:
        check_reader(reader, sample[1], ranges)


def test_readinto_reads_large_requests_straight_into_the_buffer(sample):
    path, data = sample
    reader = PreadReader(path, max_request=1000, max_concurrency=3)
    out = np.empty(len(data), np.uint8)
    reader.readinto_ranges([(0, len(data))], [out])
    assert out.tobytes() == data
    assert reader.requests == math.ceil(len(data) / 1000)
    assert reader.bytes_read == len(data)
    # Buffers are checked against their ranges.
    with pytest.raises(ValueError, match="holds 3 bytes"):
        reader.readinto_ranges([(0, 4)], [bytearray(3)])
    with pytest.raises(ValueError, match="read-only"):
        reader.readinto_ranges([(0, 4)], [b"abcd"])
    with pytest.raises(ValueError, match="2 ranges but 1 buffers"):
        reader.readinto_ranges([(0, 4), (4, 8)], [bytearray(4)])
    # Buffers of other types: a 2-D uint16 array.
    out = np.empty((2, 8), np.uint16)
    reader.readinto_ranges([(100, 132)], [out])
    assert out.tobytes() == data[100:132]


# --------------------------------------------------------------------------
# Few requests, few bytes


def test_pread_whole_file_reads_frames_in_few_large_requests(tmp_path):
    """Without a map, a framed file's frames, trailers and stored pixels are
    read in requests of up to 32 MiB, straight into the result."""
    from dcimg import DCIMGFile

    truth = np.random.default_rng(5).integers(0, 4096, (40, 512, 520), np.uint16)
    path = write_dcimg(tmp_path / "framed.dcimg", truth, stored_pixels_row=100)
    with DCIMGFile(path, mmap=False) as f:
        reader = f._source.reader
        assert f.layout.frame_stride > f.layout.bytes_per_image  # trailers between
        before, read_before = reader.requests, reader.bytes_read
        got = f.whole()
        np.testing.assert_array_equal(got, truth)
        # 21 MB: one request of at most 32 MiB (a request per frame and per
        # frame's stored pixels would be 80).
        assert reader.requests - before <= 2
        assert reader.bytes_read - read_before <= path.stat().st_size


def _trailers_over_http(http_server, tmp_path, name, nframes, side):
    """Serve a sparse framed file, read every frame's trailer and check them.

    Returns the (closed) reader, the requests the server served for the file
    and the file's size.
    """
    path = write_sparse_dcimg(tmp_path / name, nframes, side, side)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        http_server.files[f"/{name}"] = m
        trailers = trailer_ranges(path)
        with FsspecReader(http_server.url(name)) as reader:
            got = reader.read_ranges(trailers)
            assert [bytes(g) for g in got] == [m[a:b] for a, b in trailers]
        # The server notes a request once its handler has sent it, which may
        # come a moment after the client has the bytes: wait for it.
        http_server.wait_idle()
        del http_server.files[f"/{name}"], got
    return reader, http_server.requests_for(name), path.stat().st_size


def test_http_trailers_of_small_frames_take_few_requests(http_server, tmp_path):
    reader, served, _ = _trailers_over_http(
        http_server, tmp_path, "small.dcimg", 10_000, 64
    )
    assert reader.requests <= 20
    assert len(served) == reader.requests  # the server agrees


def test_http_trailers_of_large_frames_transfer_few_bytes(http_server, tmp_path):
    reader, served, size = _trailers_over_http(
        http_server, tmp_path, "large.dcimg", 2_000, 256
    )
    assert reader.bytes_read < 0.05 * size
    assert sum(r.sent for r in served) == reader.bytes_read  # the server agrees
    # The small requests ran concurrently, never more than allowed.
    assert 1 < http_server.max_in_flight <= reader.max_concurrency


def test_s3_trailers_take_few_requests_and_bytes(s3_server):
    # Smaller than the HTTP cases: moto reads the whole object for every
    # range it serves.
    for nframes, side, check in [
        (1_000, 64, lambda r, size: r.requests <= 2),
        (64, 256, lambda r, size: r.bytes_read < 0.05 * size),
    ]:
        stack = np.zeros((nframes, side, side), np.uint16)
        stack[:, 0, 0] = np.arange(nframes)
        key = f"trailers-{nframes}.dcimg"
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{uuid.uuid4().hex}.dcimg"
        try:
            write_dcimg(path, stack, timestamps_us=np.arange(nframes) * 1000 + 10**15)
            data = path.read_bytes()
            trailers = trailer_ranges(path)
        finally:
            path.unlink()
        url = s3_server.put(key, data)
        with FsspecReader(url, s3_server.storage_options) as reader:
            got = reader.read_ranges(trailers)
            assert [bytes(g) for g in got] == [data[a:b] for a, b in trailers]
            assert check(reader, len(data)), (
                nframes,
                reader.requests,
                reader.bytes_read,
            )


def test_requests_run_concurrently_up_to_the_limit(http_server):
    http_server.files["/a"] = bytes(range(256)) * 400
    http_server.behaviour.stall = 0.3
    ranges = [(i * 10_000, i * 10_000 + 10) for i in range(8)]
    with FsspecReader(http_server.url("a"), max_concurrency=4, max_gap=0) as reader:
        start = time.perf_counter()
        reader.read_ranges(ranges)
        elapsed = time.perf_counter() - start
    assert reader.requests == 8
    assert http_server.max_in_flight == 4
    assert 0.55 < elapsed < 3  # two rounds of 0.3 s, not eight


def test_thread_pool_runs_sync_readers_concurrently(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(100_000))

    class Slow(PreadReader):
        in_flight = most = 0

        def _read_one(self, start, stop, out):
            with self._count_lock:
                Slow.in_flight += 1
                Slow.most = max(Slow.most, Slow.in_flight)
            time.sleep(0.05)
            try:
                return super()._read_one(start, stop, out)
            finally:
                with self._count_lock:
                    Slow.in_flight -= 1

    reader = Slow(path, max_request=10_000, max_concurrency=3)
    out = np.empty(100_000, np.uint8)
    reader.readinto_ranges([(0, 100_000)], [out])
    assert out.tobytes() == path.read_bytes()
    assert reader.requests == 10 and Slow.most == 3


# --------------------------------------------------------------------------
# Errors


def test_missing_objects_are_named(http_server, s3_server, tmp_path):
    url = s3_server.url("no-such-key.dcimg")
    with pytest.raises(FileNotFoundError, match="no-such-key.dcimg") as info:
        FsspecReader(url, s3_server.storage_options)
    assert url in str(info.value)
    url = http_server.url("missing.dcimg")
    with pytest.raises(FileNotFoundError, match="missing.dcimg"):
        FsspecReader(url)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        FsspecReader("memory://nothing-here.dcimg")
    with pytest.raises(FileNotFoundError, match="absent.dcimg"):
        PreadReader(tmp_path / "absent.dcimg")
    with pytest.raises(DCIMGFormatError, match="a folder, not a regular file"):
        PreadReader(tmp_path)


def test_ranges_past_the_end_are_refused(sample, memory_url):
    path, data = sample
    for reader in (PreadReader(path), FsspecReader(memory_url)):
        with reader, pytest.raises(DCIMGReadError) as info:
            reader.read_ranges([(0, 4), (len(data) - 2, len(data) + 5)])
        message = str(info.value)
        assert reader.name in message and str(len(data) + 5) in message
        assert str(len(data)) in message
        assert reader.requests == 0  # refused before any request
        assert isinstance(info.value, OSError) and isinstance(info.value, DCIMGError)


def test_objects_that_shrink_after_opening(
    sample, memory_url, http_server, s3_server, tmp_path
):
    path, data = sample
    copy = tmp_path / "copy.dcimg"
    copy.write_bytes(data)
    http_server.files["/shrinks.dcimg"] = data
    s3_url = s3_server.put("shrinks.dcimg", data)
    readers = [
        (PreadReader(copy), lambda: os.truncate(copy, 1000)),
        (
            FsspecReader(memory_url),
            lambda: fsspec.filesystem("memory").pipe_file(memory_url[9:], data[:1000]),
        ),
        (
            FsspecReader(http_server.url("shrinks.dcimg")),
            lambda: http_server.files.update({"/shrinks.dcimg": data[:1000]}),
        ),
        (
            FsspecReader(s3_url, s3_server.storage_options),
            lambda: s3_server.put("shrinks.dcimg", data[:1000]),
        ),
    ]
    for reader, shrink in readers:
        shrink()
        replaced = reader.name.startswith("s3://")  # a new ETag: refused
        with reader:
            error = DCIMGChangedError if replaced else DCIMGReadError
            with pytest.raises(error) as info:
                reader.read_ranges([(0, 10), (500, 2000)])
            assert reader.name in str(info.value)
            # The merged request [0, 2000) came back short, or the server
            # said that the object holds 1000 bytes now.
            assert "2000)" in str(info.value) or replaced
            assert (
                "got 1000" in str(info.value)
                or "1000 bytes now" in str(info.value)
                or "replaced" in str(info.value)
            )
            assert reader.refresh_size() == 1000
            if replaced:  # still the object opened, which is gone
                with pytest.raises(DCIMGChangedError):
                    reader.read(990, 1000)
            else:
                assert bytes(reader.read(990, 1000)) == data[990:1000]


@pytest.mark.parametrize(
    ("misbehaviour", "timeout", "within", "message"),
    [
        # A dropped connection is reported, naming the range it was reading.
        ({"drop_after": 100}, 10, 10, r"\[0, 5000\)"),
        # A stalled server times out.
        ({"stall": 30}, 1, 5, "no answer within 1 s"),
    ],
    ids=["dropped connection", "stalled server"],
)
def test_a_misbehaving_server_is_reported_in_time(
    http_server, sample, misbehaviour, timeout, within, message
):
    http_server.files["/a.dcimg"] = sample[1]
    for name, value in misbehaviour.items():
        setattr(http_server.behaviour, name, value)
    url = http_server.url("a.dcimg")
    with FsspecReader(url, timeout=timeout) as reader:
        start = time.perf_counter()
        with pytest.raises(DCIMGReadError, match=message) as info:
            reader.read(0, 5000)
        assert time.perf_counter() - start < within
    assert url in str(info.value)


def test_a_server_that_ignores_ranges(http_server, sample):
    http_server.files["/norange.dcimg"] = sample[1]
    http_server.behaviour.ignore_range = True
    with FsspecReader(http_server.url("norange.dcimg")) as reader:
        with pytest.raises(DCIMGReadError, match="does not support range requests"):
            reader.read(100, 200)


def test_credentials_stay_out_of_names_and_reprs(http_server, sample):
    http_server.files["/a.dcimg"] = sample[1]
    url = http_server.url("a.dcimg").replace("http://", "http://user:hunter2@")
    reader = FsspecReader(url + "?X-Amz-Signature=s3cr3t", {"headers": {"X": "tok3n"}})
    for text in (reader.name, repr(reader)):
        assert "hunter2" not in text and "s3cr3t" not in text and "tok3n" not in text
        assert "user" not in text
    assert http_server.base.removeprefix("http://") in reader.name
    http_server.files.clear()
    with pytest.raises(FileNotFoundError) as info:
        reader.read(0, 10)
    assert http_server.base in str(info.value)
    assert "hunter2" not in str(info.value) and "s3cr3t" not in str(info.value)


def test_file_objects_that_cannot_be_read(tmp_path, sample):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with open(text) as f, pytest.raises(TypeError, match="binary mode"):
        FileObjectReader(f)
    with pytest.raises(TypeError, match="seek"):
        FileObjectReader(object())

    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    with pytest.raises(TypeError, match="not seekable"):
        FileObjectReader(Pipe())
    # The reader does not close the caller's file, and cannot be pickled.
    with open(sample[0], "rb") as f:
        reader = FileObjectReader(f)
        assert reader.name == str(sample[0])
        with pytest.raises(TypeError, match="path or URL"):
            pickle.dumps(reader)
        reader.close()
        assert not f.closed
        with pytest.raises(ValueError, match="closed"):
            reader.read(0, 1)


def test_pickled_readers_reopen_where_they_are_unpickled(sample, memory_url, s3_server):
    path, data = sample
    url = s3_server.put("pickled.dcimg", data)
    for reader in (
        PreadReader(path),
        FsspecReader(memory_url),
        FsspecReader(url, s3_server.storage_options),
    ):
        clone = pickle.loads(pickle.dumps(reader))
        assert (clone.name, clone.size) == (reader.name, reader.size)
        assert bytes(clone.read(100, 300)) == data[100:300]
        clone.close()
        reader.close()
        with pytest.raises(ValueError, match="closed"):
            pickle.dumps(reader)


def test_pickled_reader_in_another_process(sample, s3_server):
    # What a Dask worker does: unpickle, open its own file system, read.
    url = s3_server.put("process.dcimg", sample[1])
    blob = pickle.dumps(FsspecReader(url, s3_server.storage_options))
    code = """
        import pickle, sys
        reader = pickle.loads(sys.stdin.buffer.read())
        sys.stdout.buffer.write(bytes(reader.read(0, 64)))
        """
    out = run_python(code, stdin=blob, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == sample[1][:64]


# --------------------------------------------------------------------------
# Choosing a reader


def test_open_reader_chooses_by_source(sample, memory_url, tmp_path):
    path, data = sample
    with open(path, "rb") as f:
        assert type(open_reader(f)) is FileObjectReader
    assert type(open_reader(io.BytesIO(data))) is FileObjectReader
    assert type(open_reader(path)) is PreadReader
    assert type(open_reader(str(path))) is PreadReader
    assert type(open_reader(os.fsencode(path))) is PreadReader
    assert type(open_reader(path.as_uri())) is PreadReader
    assert type(open_reader(memory_url)) is FsspecReader
    # file:// with options goes through fsspec's local file system.
    reader = open_reader(path.as_uri(), {"auto_mkdir": False})
    assert type(reader) is FsspecReader
    assert bytes(reader.read(0, 100)) == data[:100]
    reader = open_reader(path, max_gap=7, max_request=99, max_concurrency=2)
    assert (reader.max_gap, reader.max_request, reader.max_concurrency) == (7, 99, 2)
    with pytest.raises(ValueError, match="storage_options"):
        open_reader(path, {"anon": True})
    with pytest.raises(ValueError, match="storage_options"):
        open_reader(io.BytesIO(data), {"anon": True})
    with pytest.raises(TypeError, match="int"):
        open_reader(42)


@pytest.mark.parametrize(
    "source, url, local",
    [
        ("s3://bucket/a.dcimg", True, None),
        ("simplecache::s3://bucket/a.dcimg", True, None),
        ("https://host/a.dcimg?x=1", True, None),
        ("memory://a.dcimg", True, None),
        ("file:///data/a.dcimg", True, "/data/a.dcimg"),
        ("/data/a.dcimg", False, "/data/a.dcimg"),
        ("a.dcimg", False, "a.dcimg"),
        ("C:\\data\\a.dcimg", False, "C:\\data\\a.dcimg"),
        ("C://data/a.dcimg", False, "C://data/a.dcimg"),
        (Path("x.dcimg"), False, "x.dcimg"),
        (b"x.dcimg", False, "x.dcimg"),
        (42, False, None),
    ],
)
def test_is_url_and_local_path(source, url, local):
    assert is_url(source) is url
    assert local_path(source) == local


@pytest.mark.parametrize(
    "block, url, hint",
    [
        ("fsspec", "memory://a.dcimg", 'pip install "dcimg[remote]"'),
        ("s3fs", "s3://bucket/a.dcimg", 'pip install "dcimg[s3]"'),
        ("aiohttp", "https://example.invalid/a.dcimg", 'pip install "dcimg[http]"'),
    ],
)
def test_missing_packages_say_what_to_install(block, url, hint):
    # A subprocess, where the package is made unimportable.
    code = f"""
        import sys
        sys.modules[{block!r}] = None
        from dcimg._source import open_reader
        try:
            open_reader({url!r})
        except ImportError as error:
            print(error)
        else:
            print("no error")
        """
    out = run_python(code, timeout=120)
    assert out.returncode == 0, out.stderr
    assert hint in out.stdout, out.stdout


def test_fsspec_reader_keeps_what_the_file_system_said(s3_server, sample):
    url = s3_server.put("info.dcimg", sample[1])
    with FsspecReader(url, s3_server.storage_options) as reader:
        assert reader.info["size"] == len(sample[1])
        assert reader.info.get("ETag")  # to tell whether the object changed


def test_bench_remote_tiny_runs_and_prints_its_table(tmp_path):
    for module in ("s3fs", "aiohttp", "moto.server"):
        pytest.importorskip(module)
    proc, out_json = run_tiny_bench("bench_remote.py", tmp_path, timeout=600)
    for name in ("S3: `DCIMGFile(url).whole()`", "S3: `DCIMGFile(url).timestamps`",
                 "HTTP: `DCIMGFile(url).timestamps`", "local"):  # fmt: skip
        assert name in proc.stdout
    rows = json.loads(out_json.read_text())["rows"]
    assert len(rows) == 5
    # The counts do not depend on the machine: they must pass.
    for row in rows:
        if "time stamps" in row["name"]:
            assert row["passed"], row
    assert not list(tmp_path.glob("dcimg-remote-*"))  # nothing left behind


def test_a_server_without_sizes_in_head(http_server, sample):
    # fsspec then finds the size from the headers of a GET.
    http_server.files["/nosize.dcimg"] = sample[1]
    http_server.behaviour.hide_size = True
    with FsspecReader(http_server.url("nosize.dcimg"), timeout=10) as reader:
        assert reader.size == len(sample[1])
        http_server.behaviour.hide_size = False
        assert bytes(reader.read(10, 20)) == sample[1][10:20]
