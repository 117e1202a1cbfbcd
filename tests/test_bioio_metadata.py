"""Property test: bioio's standard metadata equals what the file was told.

For files written by :func:`dcimg.testing.write_dcimg` with random frame
counts, time stamps, frame counters, camera, sub-array and binning, every
field of ``BioImage(path).standard_metadata`` that DCIMG records is compared
with the value computed here from the writer's arguments alone (not from
dcimg's reading of the file).
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

bioio = pytest.importorskip("bioio")

import dcimg.bioio  # noqa: E402
from dcimg.testing import write_dcimg  # noqa: E402

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# Letters, digits and "-_.": no spaces (which camera blocks pad with) and no
# "S/N:" (the prefix the reader takes off serial numbers).
MODELS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
    max_size=12,
)


@st.composite
def recordings(draw):
    frames = draw(st.integers(1, 7))
    start = draw(st.integers(1_500_000_000_000_000, 1_900_000_000_000_000))
    steps = draw(st.lists(st.integers(1, 2_000_000), min_size=frames - 1,
                          max_size=frames - 1))  # fmt: skip
    stamps = start + np.concatenate([[0], np.cumsum(steps, dtype=np.int64)]).astype(
        np.int64
    )
    jumps = draw(st.lists(st.integers(1, 3), min_size=frames - 1,
                          max_size=frames - 1))  # fmt: skip
    counters = draw(st.integers(0, 1000)) + np.concatenate(
        [[0], np.cumsum(jumps, dtype=np.int64)]
    ).astype(np.int64)
    binning = draw(st.sampled_from([1, 2, 4]))
    height, width = draw(st.integers(4, 12)), draw(st.integers(4, 12))
    x0, y0 = draw(st.integers(0, 2000)), draw(st.integers(0, 2000))
    return {
        "frames": frames,
        "timestamps_us": stamps,
        "framestamps": counters,
        "binning": binning,
        "shape": (frames, height, width),
        "sub_array": (x0, y0, width * binning, height * binning),
        "camera_model": draw(MODELS),
        "camera_serial": draw(MODELS),
        "dtype": draw(st.sampled_from([np.uint8, np.uint16])),
        "version": draw(st.sampled_from([0x7, 0x1000000, 0x2000000])),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(recording=recordings())
def test_standard_metadata_equals_the_written_values(tmp_path, recording):
    r = recording
    path = write_dcimg(
        tmp_path / "p.dcimg",
        np.zeros(r["shape"], r["dtype"]),
        version=r["version"],
        timestamps_us=r["timestamps_us"],
        framestamps=r["framestamps"],
        binning=r["binning"],
        sub_array=r["sub_array"],
        camera_model=r["camera_model"],
        camera_serial=r["camera_serial"],
    )
    meta = bioio.BioImage(path, reader=dcimg.bioio.Reader).standard_metadata
    frames, height, width = r["shape"]
    stamps = r["timestamps_us"]
    interval = None
    if frames > 1:
        median = np.median(np.diff(stamps))
        interval = datetime.timedelta(seconds=float(median) / 1e6)
    assert meta.dimensions_present == "TCZYX"
    assert (meta.image_size_t, meta.image_size_c, meta.image_size_z) == (frames, 1, 1)
    assert (meta.image_size_y, meta.image_size_x) == (height, width)
    assert meta.pixel_type == np.dtype(r["dtype"]).name
    assert meta.timelapse is (frames > 1)
    assert meta.time_interval == interval
    assert meta.timelapse_interval == interval
    total = datetime.timedelta(microseconds=int(stamps[-1] - stamps[0]))
    assert meta.total_time_duration == total
    assert meta.imaging_datetime == EPOCH + datetime.timedelta(
        microseconds=int(stamps[0])
    )
    # Packed (0x7) files carry no camera block: no camera, sub-array or
    # binning to report, and nothing made up.
    camera = r["version"] != 0x7
    binning = f"{r['binning']}x{r['binning']}"
    assert meta.binning == (binning if camera else None)
    assert meta.sensor_region == (r["sub_array"] if camera else None)
    assert meta.detector_model == ((camera and r["camera_model"]) or None)
    assert meta.detector_serial_number == ((camera and r["camera_serial"]) or None)
    assert meta.dropped_frames == int(np.sum(np.diff(r["framestamps"]) - 1))
