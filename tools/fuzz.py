"""Mutation fuzzer for the DCIMG reader: damaged and hostile files.

Every case is a DCIMG file made from a valid seed file: either a truncation
(every length of a few small files) or a mutation of the seed's headers,
session header, block table, camera block, trailers or footer (single bytes
and whole u16/u32/u64 words set to 0, 1, 0x7fffffff, 0xffffffff, ..., random
values, bit flips, sometimes stacked and combined with a cut).  Each case is
opened and read completely -- every frame in all three correction modes,
frame counters, time stamps, metadata and random selections checked against
NumPy's indexing of the full stack -- and classified:

``read``
    opened and read without error (warnings must be :class:`DCIMGWarning`).
``refused``
    :class:`dcimg.DCIMGFormatError` (or :class:`OSError`).
``foreign``
    any other exception, a wrong result, a writable mapping, a file changed
    on disk, a non-DCIMG warning, or an allocation larger than the file.
``crash``
    the worker process died (by a signal).
``hang``
    the case did not finish within the per-case timeout.

Cases run in worker subprocesses, one case at a time, so a crash or a hang
loses one case and the campaign goes on.  Every case that is neither ``read``
nor ``refused`` is saved (file and description) under ``--save``.

Usage::

    python tools/fuzz.py                    # 5000 cases
    python tools/fuzz.py --cases 100000     # a long campaign
    python tools/fuzz.py --replay fuzz-failures/case-000123.dcimg

Exit status: 0 when every case was ``read`` or ``refused``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import pathlib
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASSES = ("read", "refused", "foreign", "crash", "hang")
GOOD = ("read", "refused")

# Seeds: small files of every layout variant the writer can make.  Each entry
# is (name, shape, dtype, write_dcimg keyword arguments).
SEEDS: list[tuple[str, tuple[int, int, int], str, dict[str, Any]]] = [
    ("packed_u16_stored", (3, 6, 8), "u2", {"version": 0x7, "stored_pixels_row": 2}),
    ("packed_u16_plain", (3, 5, 6), "u2", {"version": 0x7}),
    ("packed_u8_stored", (3, 6, 16), "u1", {"version": 0x7, "stored_pixels_row": 1}),
    (
        "packed_u8_padded",
        (2, 5, 9),
        "u1",
        {"version": 0x7, "bytes_per_row": 12},
    ),
    (
        "packed_u16_stored_padded",
        (3, 6, 8),
        "u2",
        {"version": 0x7, "bytes_per_row": 20, "stored_pixels_row": 4},
    ),
    (
        "packed_footer_400",
        (3, 4, 8),
        "u2",
        {"version": 0x7, "stored_pixels_row": 3, "footer_table_offset": 400},
    ),
    ("framed_16", (3, 4, 6), "u2", {"trailer_size": 16}),
    ("framed_32", (3, 6, 8), "u2", {"trailer_size": 32, "stored_pixels_row": 2}),
    (
        "framed_512",
        (2, 4, 8),
        "u2",
        {"trailer_size": 512, "stored_pixels_row": 1},
    ),
    (
        "framed_32_u8_padded",
        (3, 5, 10),
        "u1",
        {"trailer_size": 32, "stored_pixels_row": 3, "bytes_per_row": 12},
    ),
    (
        "framed_v2",
        (3, 4, 8),
        "u2",
        {
            "version": 0x2000000,
            "trailer_size": 32,
            "stored_pixels_row": 0,
            "kind4_block": False,
        },
    ),
    (
        "framed_camera_moved",
        (3, 4, 8),
        "u2",
        {"trailer_size": 32, "stored_pixels_row": 1, "camera_block_offset": 0x340},
    ),
    (
        "framed_no_block_table",
        (3, 8, 8),
        "u2",
        {
            "trailer_size": 32,
            "block_table": False,
            "stored_pixels_row": 5,
            "sub_array": (0, 1018, 8, 8),
        },
    ),
    (
        "framed_fallback_row",
        (2, 8, 8),
        "u2",
        {
            "trailer_size": 32,
            "kind4_block": False,
            "stored_pixels_row": 3,
            "sub_array": (16, 1020, 8, 8),
        },
    ),
    (
        "framed_interrupted",
        (2, 4, 8),
        "u2",
        {
            "trailer_size": 32,
            "stored_pixels_row": 1,
            "declared_frames": 4,
            "truncate_to": -150,
        },
    ),
    (
        "packed_interrupted",
        (2, 4, 8),
        "u2",
        {
            "version": 0x7,
            "stored_pixels_row": 1,
            "declared_frames": 4,
            "truncate_to": -400,
        },
    ),
]
# Seeds cut at every length (the first cases of every campaign).
TRUNCATED_SEEDS = ("packed_u16_stored", "framed_32", "framed_16")

# fmt: off
U32_VALUES = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
              0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
U64_VALUES = U32_VALUES + (0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
                           0xFFFFFFFFFFFFFFFF)
BYTE_VALUES = (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF)
# fmt: on


@dataclass
class Seed:
    """A valid seed file and the byte ranges of its structures."""

    name: str
    data: bytes
    regions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _u32(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<I", raw, offset)[0]


def _u64(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<Q", raw, offset)[0]


def _regions(raw: bytes) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of a seed's structures, read from its (valid) headers."""
    size = len(raw)
    s = _u32(raw, 0x28)
    out: dict[str, list[tuple[int, int]]] = {"file_header": [(0, 0x58)]}
    if _u32(raw, 0x08) == 0x7:
        out["session_header"] = [(s, s + 0x50)]
        bpi = _u32(raw, s + 0x38)
        data = s + _u32(raw, s + 0x44)
        n = _u32(raw, s + 0x20)
        foot = s + _u64(raw, s + 0x48)
        out["pixels"] = [(data, min(size, data + n * bpi))]
        if foot + 0xA0 + 0x70 <= size:
            out["footer"] = [(foot, foot + 0x30), (foot + 0xA0, foot + 0xA0 + 0x70)]
            out["footer_tables"] = [(foot + 0x110, size)]
    else:
        out["session_header"] = [(s, s + 0xF0)]
        data = s + _u64(raw, s + 0x60)
        bpi = _u32(raw, s + 0x54)
        stride = _u32(raw, s + 0x74)
        trailer = _u32(raw, s + 0x7C)
        n = _u32(raw, s + 0x3C)
        table, pos = [], s + 0xF0
        while pos + 16 <= data and any(raw[pos : pos + 16]):
            table.append((pos, pos + 16))
            pos += 16
        if table:
            out["block_table"] = table
        out["blocks"] = [(pos, data)]
        out["trailers"] = [
            (
                data + k * stride + bpi,
                min(size, data + k * stride + bpi + min(trailer, 64)),
            )
            for k in range(n)
            if data + k * stride + bpi < size
        ]
        out["pixels"] = [(data, min(size, data + bpi))]
    return {k: [(a, b) for a, b in v if a < b <= size] for k, v in out.items() if v}


def make_seeds(directory: str | os.PathLike[str]) -> dict[str, Seed]:
    """Write every seed file into ``directory`` and return them by name.

    Parameters
    ----------
    directory : str or os.PathLike
        Where to write the files.

    Returns
    -------
    dict of str to Seed
        The seeds, with their bytes and structure regions.
    """
    from dcimg.testing import example_stack, write_dcimg

    seeds = {}
    for name, shape, dtype, kwargs in SEEDS:
        stack = example_stack(*shape, dtype=np.dtype(dtype), seed=len(seeds))
        kwargs = dict(kwargs)
        path = pathlib.Path(directory) / f"{name}.dcimg"
        cut = kwargs.pop("truncate_to", None)
        write_dcimg(path, stack, **kwargs)
        raw = path.read_bytes()
        if cut is not None:
            write_dcimg(path, stack, truncate_to=len(raw) + cut, **kwargs)
        regions = _regions(raw)
        seeds[name] = Seed(name, path.read_bytes(), regions)
    return seeds


# --------------------------------------------------------------------------
# Cases


def _truncation_plan(seeds: dict[str, Seed]) -> list[tuple[str, int]]:
    return [(name, n) for name in TRUNCATED_SEEDS for n in range(len(seeds[name].data))]


def _pick_position(rng: random.Random, seed: Seed, width: int) -> int:
    weights = {
        "file_header": 3,
        "session_header": 6,
        "block_table": 4,
        "blocks": 2,
        "trailers": 3,
        "footer": 5,
        "footer_tables": 2,
        "pixels": 0.3,
    }
    names = [k for k in seed.regions if k in weights]
    if rng.random() < 0.05 or not names:
        return rng.randrange(max(1, len(seed.data) - width + 1))
    name = rng.choices(names, [weights[k] for k in names])[0]
    lo, hi = rng.choice(seed.regions[name])
    pos = rng.randrange(lo, hi)
    if width > 1 and rng.random() < 0.85:
        pos -= (pos - lo) % 4  # fields are 4-byte aligned in every structure
    return min(pos, max(0, len(seed.data) - width))


def _mutate_once(rng: random.Random, seed: Seed, buf: bytearray) -> str:
    kind = rng.choices(
        ["byte", "bit", "u16", "u32", "u64", "nudge"], [3, 2, 1, 6, 3, 3]
    )[0]
    width = {"byte": 1, "bit": 1, "u16": 2, "u32": 4, "u64": 8, "nudge": 4}[kind]
    if len(buf) < width:
        return "none"
    pos = _pick_position(rng, seed, width)
    size = len(buf)
    if kind == "byte":
        value = rng.choice(BYTE_VALUES + (rng.randrange(256),))
        buf[pos] = value
    elif kind == "bit":
        value = 1 << rng.randrange(8)
        buf[pos] ^= value
    elif kind == "u16":
        value = rng.choice((0, 1, 0x7FFF, 0xFFFF, rng.randrange(1 << 16)))
        struct.pack_into("<H", buf, pos, value)
    elif kind == "u32":
        value = rng.choice(
            U32_VALUES + (rng.randrange(1 << 32), size, size + 1, size - 1, size // 2)
        )
        struct.pack_into("<I", buf, pos, value & 0xFFFFFFFF)
    elif kind == "u64":
        value = rng.choice(U64_VALUES + (rng.randrange(1 << 64), size, size + 8))
        struct.pack_into("<Q", buf, pos, value & 0xFFFFFFFFFFFFFFFF)
    else:  # nudge an existing u32 by a small amount or a factor
        old = struct.unpack_from("<I", buf, pos)[0]
        value = rng.choice(
            (old + 1, old - 1, old + 4, old - 4, old * 2, old // 2, old + 16, old - 16)
        )
        struct.pack_into("<I", buf, pos, value & 0xFFFFFFFF)
    return f"{kind}@{pos:#x}={value:#x}"


def make_case(
    index: int, seeds: dict[str, Seed], campaign_seed: int = 0
) -> tuple[bytes, str]:
    """Return the bytes and a description of case ``index``.

    The first cases cut the files of :data:`TRUNCATED_SEEDS` at every length;
    the rest mutate a seed chosen from the case index.  Case ``index`` is the
    same file in every run with the same ``campaign_seed``.

    Parameters
    ----------
    index : int
        Case number.
    seeds : dict of str to Seed
        From :func:`make_seeds`.
    campaign_seed : int, default 0
        Selects a different sequence of mutations.

    Returns
    -------
    data : bytes
        The file contents.
    description : str
        What was done to which seed.
    """
    plan = _truncation_plan(seeds)
    if index < len(plan):
        name, n = plan[index]
        return seeds[name].data[:n], f"{name} cut to {n} bytes"
    rng = random.Random(f"{campaign_seed}:{index}")
    names = sorted(seeds)
    seed = seeds[names[index % len(names)]]
    buf = bytearray(seed.data)
    steps = [
        _mutate_once(rng, seed, buf)
        for _ in range(rng.choices([1, 2, 3, 4], [60, 25, 10, 5])[0])
    ]
    r = rng.random()
    if r < 0.12:
        cut = rng.randrange(1, len(buf) + 1)
        del buf[cut:]
        steps.append(f"cut to {cut}")
    elif r < 0.15:
        extra = rng.randrange(1, 300)
        buf += bytes(rng.randrange(256) for _ in range(extra))
        steps.append(f"append {extra}")
    return bytes(buf), f"{seed.name}: " + ", ".join(steps)


# --------------------------------------------------------------------------
# Reading one file completely


class Inconsistent(AssertionError):
    """The reader returned something wrong (not an exception of its own)."""


def _random_axis(rng: random.Random, n: int) -> Any:
    r = rng.random()
    if r < 0.25 and n:
        return rng.randrange(-n, n)
    if r < 0.35:
        return slice(None)

    def bound() -> int | None:
        return None if rng.random() < 0.3 else rng.randrange(-n - 2, n + 3)

    return slice(bound(), bound(), rng.choice((None, 1, 1, 2, 3, -1, -2, -3, 7)))


def random_key(rng: random.Random, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Return a random NumPy basic index for an array of ``shape``.

    Parameters
    ----------
    rng : random.Random
        Source of randomness.
    shape : tuple of int
        Shape of the indexed array.

    Returns
    -------
    tuple
        Integers, slices (any step), and sometimes ``...`` or ``None``.
    """
    key = [_random_axis(rng, n) for n in shape]
    r = rng.random()
    if r < 0.15:
        key = key[: rng.randrange(1, 3)]
    elif r < 0.25:
        key = [Ellipsis, *key[rng.randrange(1, 3) :]]
    elif r < 0.3:
        key.insert(rng.randrange(len(key) + 1), None)
    return tuple(key)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise Inconsistent(message)


def exercise(
    path: str | os.PathLike[str], rng: random.Random, selections: int = 6
) -> str:
    """Open a file and read everything from it; raise on any problem.

    Reads every frame in the three correction modes, frame counters, time
    stamps, metadata and ``selections`` random selections (each compared with
    NumPy's indexing of the full stack), and checks that the mapping is
    read-only.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    rng : random.Random
        Chooses the random selections.
    selections : int, default 6
        Number of random selections read.

    Returns
    -------
    str
        A one-line summary of what was read.

    Raises
    ------
    Exception
        Whatever the reader raised, or :class:`Inconsistent`.
    """
    import dcimg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = dcimg.DCIMGFile(path)
        try:
            summary = _exercise_open(f, rng, selections)
        finally:
            f.close()
    for w in caught:
        _check(
            issubclass(w.category, dcimg.DCIMGWarning),
            f"unexpected {w.category.__name__}: {w.message}",
        )
    return summary


def _exercise_open(f: Any, rng: random.Random, selections: int) -> str:
    shape = f.shape
    layout = f.layout
    _check(len(shape) == 3 and min(shape) >= 0, f"bad shape {shape}")
    _check(
        f.size * f.byte_depth <= layout.file_size,
        f"{shape} x {f.byte_depth} bytes exceed the {layout.file_size}-byte file",
    )
    _check(layout.frames <= layout.declared_frames, "more frames than declared")
    mma = f.mma
    _check(not mma.flags.writeable, "the frame mapping is writable")
    _check(not f.mm.flags.writeable, "the raw mapping is writable")
    try:
        f.mm[0] = 0
    except (ValueError, TypeError):
        pass
    else:
        raise Inconsistent("writing into f.mm succeeded")
    full = {}
    for mode in (True, False, None):
        f.first_4px_correction_enabled = mode
        a = f[...]
        _check(
            a.shape == shape and a.dtype == f.dtype, f"f[...] is {a.shape} {a.dtype}"
        )
        full[mode] = a
    _check(np.array_equal(full[None], mma), "uncorrected read differs from f.mma")
    if layout.stored_bytes:
        r, c, n = layout.stored_row, layout.stored_column, layout.stored_pixels
        if shape[0]:
            _check(not full[False][:, r, c : c + n].any(), "False mode left pixels")
        rest = full[True].copy()
        rest[:, r, c : c + n] = full[None][:, r, c : c + n]
        _check(np.array_equal(rest, full[None]), "correction touched other pixels")
    else:
        _check(np.array_equal(full[True], full[None]), "no stored pixels yet changed")
        _check(np.array_equal(full[False], full[None]), "no stored pixels yet zeroed")
    stamps = f.framestamps
    times = f.timestamps
    seconds = f.ts()
    if layout.has_frame_data:
        _check(stamps.shape == (shape[0],), f"framestamps {stamps.shape}")
        _check(times.shape == (shape[0],), f"timestamps {times.shape}")
        _check(seconds.shape == (shape[0],), f"ts() {seconds.shape}")
    else:
        _check(stamps.size == 0 and times.size == 0, "lost frame data returned")
    meta = f.metadata
    _check(meta.declared_frames == layout.declared_frames, "declared_frames")
    _check(meta.shape == shape, "metadata shape")
    repr(f)
    repr(meta)
    f.compute_target_line()
    if shape[0]:
        f.frame(-1)
        if layout.has_frame_data:
            f.ts(0)
        f.first_4px_correction_enabled = True
        f.read(slice(None, None, -1), dtype=np.float32)
        f.read(0, copy=False)
    for _ in range(selections):
        mode = rng.choice((True, False, None))
        f.first_4px_correction_enabled = mode
        key = random_key(rng, shape)
        got = f[key]
        want = full[mode][key]
        _check(
            np.shape(got) == np.shape(want) and np.array_equal(got, want),
            f"f[{key!r}] (correction {mode}) differs from f[...][{key!r}]",
        )
        view = f.read(key, copy=False)
        _check(
            np.shape(view) == np.shape(want) and np.array_equal(view, want),
            f"read({key!r}, copy=False) (correction {mode}) differs from f[...]",
        )
    return f"{shape} frames={layout.frames}/{layout.declared_frames}"


# --------------------------------------------------------------------------
# Worker: runs cases sent on stdin, one at a time


def _classify(exc: BaseException) -> tuple[str, str]:
    from dcimg import DCIMGFormatError

    if isinstance(exc, DCIMGFormatError):
        return "refused", f"DCIMGFormatError[{exc.field}]: {exc}"
    if isinstance(exc, OSError):
        return "refused", f"{type(exc).__name__}: {exc}"
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "foreign", "".join(tb[-6:])


def run_case(
    path: str, data: bytes, rng: random.Random, max_bytes: int
) -> tuple[str, str]:
    """Write ``data`` to ``path``, exercise it, and classify the outcome.

    Parameters
    ----------
    path : str
        Scratch file to write.
    data : bytes
        The case's file contents.
    rng : random.Random
        Chooses the random selections.
    max_bytes : int
        Largest allowed peak of traced memory (0: do not trace).

    Returns
    -------
    outcome : str
        One of :data:`CLASSES` (never ``crash`` or ``hang``).
    detail : str
        The summary or the error.
    """
    import tracemalloc

    with open(path, "wb") as fh:
        fh.write(data)
    digest = hashlib.sha256(data).digest()
    if max_bytes:
        tracemalloc.start()
    try:
        outcome, detail = "read", exercise(path, rng)
    except Exception as exc:  # noqa: BLE001 - classified below
        outcome, detail = _classify(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1] if max_bytes else 0
        if max_bytes:
            tracemalloc.stop()
    with open(path, "rb") as fh:
        if hashlib.sha256(fh.read()).digest() != digest:
            return "foreign", "the file changed on disk"
    if max_bytes and peak > max_bytes + 64 * len(data):
        return (
            "foreign",
            f"peak traced allocation {peak} bytes for a {len(data)}-byte file",
        )
    return outcome, detail


def worker_main(args: argparse.Namespace) -> int:
    """Serve cases: read an index per line on stdin, answer one JSON line.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (``seed``, ``max_alloc``, ``scratch``).

    Returns
    -------
    int
        Exit status, 0.
    """
    try:
        import resource

        limit = 4 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    # The parent owns (and removes) the scratch folder: a worker that is
    # killed leaves nothing behind.
    scratch = args.scratch or tempfile.mkdtemp(prefix="dcimg-fuzz-")
    seeds = make_seeds(scratch)
    path = os.path.join(scratch, f"case-{os.getpid()}.dcimg")
    print("ready", flush=True)
    for line in sys.stdin:
        index = int(line)
        data, what = make_case(index, seeds, args.seed)
        rng = random.Random(f"sel:{args.seed}:{index}")
        outcome, detail = run_case(path, data, rng, args.max_alloc)
        print(json.dumps([index, outcome, what, detail]), flush=True)
    return 0


def _fast_tmp() -> str:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


# --------------------------------------------------------------------------
# Parent: drives workers, enforces the per-case timeout


class _Worker:
    def __init__(self, argv: list[str], log: str) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float) -> None:
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )
        line = self._readline(timeout)
        if line != "ready\n":
            self.stop()
            with open(self.log, encoding="utf-8", errors="replace") as err:
                tail = err.read()[-2000:]
            raise RuntimeError(f"fuzz worker failed to start: {line!r}\n{tail}")

    def _readline(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline()

    def run(self, index: int, timeout: float) -> tuple[str, str, str]:
        if self.proc is None:
            self.start(max(timeout, 600.0))  # a first import may build
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{index}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._readline(timeout)
        if line is None:
            self.stop()
            return "hang", "", f"no answer within {timeout} s"
        if not line:
            code = self.proc.wait()
            self.proc = None
            return "crash", "", f"worker exited with status {code}"
        _, outcome, what, detail = json.loads(line)
        return outcome, what, detail

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@dataclass
class Report:
    """Counts of one campaign."""

    cases: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[int, str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every case was read or refused cleanly.

        Returns
        -------
        bool
            True when there is no failing case.
        """
        return not self.failures

    def summary(self) -> str:
        """Return the counts as a few lines of text.

        Returns
        -------
        str
            Counts per class, refusals per field, the first failing cases.
        """
        lines = [
            f"cases {self.cases} in {self.seconds:.1f} s: "
            + ", ".join(f"{c} {self.counts[c]}" for c in CLASSES)
        ]
        top = ", ".join(f"{k} {v}" for k, v in self.refusals.most_common(12))
        lines.append(f"refusals by field: {top}")
        for index, outcome, what, detail in self.failures[:20]:
            lines.append(f"  case {index} {outcome}: {what}\n    {detail.strip()}")
        return "\n".join(lines)


def run_campaign(
    cases: int,
    *,
    jobs: int | None = None,
    timeout: float = 20.0,
    seed: int = 0,
    start: int = 0,
    save: str | os.PathLike[str] | None = None,
    max_alloc: int = 8 << 20,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Run cases ``start`` .. ``start + cases - 1`` in worker subprocesses.

    Parameters
    ----------
    cases : int
        Number of cases.
    jobs : int, optional
        Worker processes; default the number of CPUs.
    timeout : float, default 20
        Seconds a single case may take before it counts as a hang.
    seed : int, default 0
        Campaign seed (selects the mutations).
    start : int, default 0
        First case index (the truncation cases come first).
    save : str or os.PathLike, optional
        Directory for the files of failing cases.
    max_alloc : int, default 8 MiB
        Traced-allocation allowance per case on top of 64 x the file size;
        0 disables tracing (faster).
    progress : callable, optional
        Called with the report after every 1000 cases.

    Returns
    -------
    Report
        The counts and the failing cases.
    """
    jobs = jobs or os.cpu_count() or 1
    scratch = tempfile.mkdtemp(prefix="dcimg-fuzz-", dir=_fast_tmp())
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--seed",
        str(seed),
        "--max-alloc",
        str(max_alloc),
        "--scratch",
        scratch,
    ]
    report = Report()
    lock = threading.Lock()
    indices: Iterator[int] = iter(range(start, start + cases))
    began = time.perf_counter()

    errors: list[BaseException] = []

    def drive(number: int) -> None:
        worker = _Worker(argv, os.path.join(scratch, f"worker-{number}.log"))
        try:
            while True:
                with lock:
                    index = next(indices, None)
                if index is None:
                    return
                outcome, what, detail = worker.run(index, timeout)
                with lock:
                    report.cases += 1
                    report.counts[outcome] += 1
                    if outcome == "refused":
                        report.refusals[detail.split(":", 1)[0]] += 1
                    elif outcome != "read":
                        report.failures.append((index, outcome, what, detail))
                    if progress and report.cases % 1000 == 0:
                        report.seconds = time.perf_counter() - began
                        progress(report)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
        finally:
            worker.stop()

    threads = [threading.Thread(target=drive, args=(k,)) for k in range(jobs)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if errors:
        raise errors[0]
    report.seconds = time.perf_counter() - began
    report.failures.sort()
    if save and report.failures:
        _save_failures(report, save, seed)
    return report


def _save_failures(
    report: Report, directory: str | os.PathLike[str], seed: int
) -> None:
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        seeds = make_seeds(scratch)
        for index, outcome, what, detail in report.failures:
            data, _ = make_case(index, seeds, seed)
            (out / f"case-{index:06d}.dcimg").write_bytes(data)
            (out / f"case-{index:06d}.txt").write_text(
                f"{outcome}: {what}\n\n{detail}\n", encoding="utf-8"
            )


def write_corpus(
    directory: str | os.PathLike[str], cases: int, *, seed: int = 0, every: int = 1
) -> list[pathlib.Path]:
    """Write the seeds and every ``every``-th of the first ``cases`` cases.

    Parameters
    ----------
    directory : str or os.PathLike
        Destination (created).
    cases : int
        Number of case indices considered.
    seed : int, default 0
        Campaign seed.
    every : int, default 1
        Keep one case in this many.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        seeds = make_seeds(scratch)
        for name, s in seeds.items():
            path = out / f"seed-{name}.dcimg"
            path.write_bytes(s.data)
            written.append(path)
        for index in range(0, cases, every):
            data, _ = make_case(index, seeds, seed)
            path = out / f"case-{index:06d}.dcimg"
            path.write_bytes(data)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Run the command line; see the module docstring.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 when every case was read or refused cleanly.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="number of cases")
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument(
        "--max-alloc",
        type=int,
        default=8 << 20,
        help="traced allocation allowance per case (0: no tracing)",
    )
    parser.add_argument("--save", default="fuzz-failures", help="failing cases go here")
    parser.add_argument("--json", help="also write the counts to this JSON file")
    parser.add_argument("--replay", nargs="+", help="exercise these files and exit")
    parser.add_argument("--write-corpus", help="write seeds and cases to this folder")
    parser.add_argument("--every", type=int, default=1, help="with --write-corpus")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return worker_main(args)
    if args.write_corpus:
        files = write_corpus(
            args.write_corpus, args.cases, seed=args.seed, every=args.every
        )
        print(f"wrote {len(files)} files to {args.write_corpus}")
        return 0
    if args.replay:
        bad = 0
        for name in args.replay:
            data = pathlib.Path(name).read_bytes()
            with tempfile.TemporaryDirectory() as scratch:
                scratch_path = os.path.join(scratch, "case.dcimg")
                outcome, detail = run_case(scratch_path, data, random.Random(0), 0)
            bad += outcome not in GOOD
            print(f"{name}: {outcome}: {detail}")
        return 1 if bad else 0

    def progress(report: Report) -> None:
        print(report.summary().splitlines()[0], file=sys.stderr, flush=True)

    report = run_campaign(
        args.cases,
        jobs=args.jobs,
        timeout=args.timeout,
        seed=args.seed,
        start=args.start,
        save=args.save,
        max_alloc=args.max_alloc,
        progress=progress,
    )
    print(report.summary())
    if args.json:
        counts = {c: report.counts[c] for c in CLASSES}
        payload = {"cases": report.cases, "seconds": round(report.seconds, 1), **counts}
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    if report.failures:
        print(f"failing cases saved in {args.save}/", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
