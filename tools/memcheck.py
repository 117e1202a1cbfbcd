"""Run the reader under valgrind memcheck over a fuzz corpus; count bad reads.

The corpus is written by ``tools/fuzz.py``: every seed (packed and framed
variants), a sample of the truncations and a sample of the mutated files.  A
driver opens each file through :class:`dcimg.DCIMGFile` and reads everything
(``fuzz.exercise``: every frame in the three correction modes, counters, time
stamps, metadata, random selections) twice:

1. through the real read-only ``mmap``;
2. through an exact-size heap copy of the file, so that a read even one byte
   past the end of the data lands outside a ``malloc`` block, which memcheck
   reports (a read past the end of an ``mmap`` stays silent until the next
   page boundary).

The driver runs under ``valgrind --tool=memcheck`` with ``PYTHONMALLOC=malloc``
and valgrind's Python suppressions when installed.  The report counts the
invalid reads and writes (all of them, and those whose stack passes through
``dcimg``'s extension modules) and uninitialised-value uses; the exit status
is 1 when any invalid read or write was seen.

Usage::

    python tools/memcheck.py                    # default corpus, valgrind
    python tools/memcheck.py --cases 1000       # more mutated files
    python tools/memcheck.py --corpus DIR       # your own files
    python tools/memcheck.py --no-valgrind      # the driver alone (smoke test)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import types
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
# glibc's dynamic loader reads 8 bytes at a time past the end of RPATH strings
# while loading NumPy's libraries: a known false positive, nothing of ours.
LDSO_SUPPRESSIONS = """\
{
   ld.so is_dst strncmp word-sized read (glibc dynamic loader)
   Memcheck:Addr8
   fun:strncmp
   fun:is_dst
   ...
   fun:_dl_map_object
}
"""
SUPPRESSIONS = (
    "/usr/lib/valgrind/python3.supp",
    "/usr/lib/valgrind/python.supp",
    "/usr/share/doc/python3/valgrind-python.supp",
)


def _fuzz() -> types.ModuleType:
    name = "_dcimg_tool_fuzz"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_default_corpus(
    directory: pathlib.Path, cases: int, trunc_every: int, seed: int
) -> int:
    """Write seeds, every ``trunc_every``-th truncation and ``cases`` mutations.

    Parameters
    ----------
    directory : pathlib.Path
        Destination folder.
    cases : int
        Number of mutated files (the cases after the truncations).
    trunc_every : int
        Keep one truncation case in this many.
    seed : int
        Campaign seed of the mutations.

    Returns
    -------
    int
        Number of files written.
    """
    fuzz = _fuzz()
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory() as scratch:
        seeds = fuzz.make_seeds(scratch)
        for name, s in seeds.items():
            (directory / f"seed-{name}.dcimg").write_bytes(s.data)
            count += 1
        ntrunc = len(fuzz._truncation_plan(seeds))
        indices = list(range(0, ntrunc, trunc_every))
        indices += range(ntrunc, ntrunc + cases)
        for index in indices:
            data, _ = fuzz.make_case(index, seeds, seed)
            (directory / f"case-{index:06d}.dcimg").write_bytes(data)
            count += 1
    return count


# --------------------------------------------------------------------------
# The driver (runs under valgrind)


class _HeapMap:
    """Stand-in for the file map: the file copied into an exact-size block."""

    def __new__(cls, fd: int, length: int = 0, *args: Any, **kwargs: Any) -> Any:
        import numpy as np

        size = os.fstat(fd).st_size
        block = np.empty(size, np.uint8)  # malloc(size): no slack after it
        view = memoryview(block)
        done = 0
        while done < size:
            done += os.preadv(fd, [view[done:]], done)
        block.flags.writeable = False  # like the read-only map
        _HeapMap.opened += 1
        return block.view(_HeapArray)

    opened = 0


def _heap_array_type() -> type:
    import numpy as np

    class HeapArray(np.ndarray):
        def close(self) -> None:
            pass

    return HeapArray


_HeapArray: Any = None


def driver(directory: str, passes: tuple[str, ...]) -> int:
    """Exercise every ``*.dcimg`` file in ``directory``; return an exit status.

    Parameters
    ----------
    directory : str
        Folder of the corpus.
    passes : tuple of str
        ``"mmap"`` and/or ``"heap"`` (see the module docstring).

    Returns
    -------
    int
        0 when every file was read or refused cleanly, 1 otherwise.
    """
    global _HeapArray
    import dcimg._source
    from dcimg import DCIMGFormatError

    fuzz = _fuzz()
    _HeapArray = _heap_array_type()
    files = sorted(pathlib.Path(directory).glob("*.dcimg"))
    real = dcimg._source._map_file
    counts = {"read": 0, "refused": 0, "foreign": 0}
    for which in passes:
        dcimg._source._map_file = _HeapMap if which == "heap" else real
        try:
            for path in files:
                rng = random.Random(path.name)
                try:
                    fuzz.exercise(path, rng, selections=4)
                    counts["read"] += 1
                except (DCIMGFormatError, OSError):
                    counts["refused"] += 1
                except Exception as exc:  # noqa: BLE001 - reported
                    counts["foreign"] += 1
                    print(f"FOREIGN {path.name} ({which}): {exc!r}", flush=True)
        finally:
            dcimg._source._map_file = real
    if "heap" in passes and not _HeapMap.opened:
        print("WARNING: the heap pass did not replace mmap.mmap", flush=True)
    print(
        f"driver: {len(files)} files x {len(passes)} passes: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()),
        flush=True,
    )
    return 1 if counts["foreign"] else 0


# --------------------------------------------------------------------------
# Running valgrind and reading its log


_ERROR_START = re.compile(
    r"^==\d+== (Invalid (read|write) of size \d+|"
    r"Conditional jump or move depends on uninitialised value|"
    r"Use of uninitialised value|Syscall param .* uninitialised|"
    r"Invalid free|Mismatched free|Source and destination overlap)"
)


def parse_log(text: str) -> dict[str, int]:
    """Count memcheck's errors in a log, by kind and by origin.

    Parameters
    ----------
    text : str
        The valgrind log.

    Returns
    -------
    dict of str to int
        ``invalid_read``, ``invalid_write``, ``uninitialised``, ``other``,
        ``in_dcimg`` (errors whose stack passes through dcimg's extension
        modules) and ``error_summary`` (valgrind's own total).
    """
    counts = dict.fromkeys(
        ("invalid_read", "invalid_write", "uninitialised", "other", "in_dcimg"), 0
    )
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _ERROR_START.match(line):
            blocks.append([line])
        elif blocks and re.match(r"^==\d+==\s+(at|by) ", line):
            blocks[-1].append(line)
        elif blocks and blocks[-1] and not line.strip("=0123456789 "):
            blocks[-1].append("")  # blank: the stack of this error ended
    for block in blocks:
        head = block[0]
        if "Invalid read" in head:
            counts["invalid_read"] += 1
        elif "Invalid write" in head:
            counts["invalid_write"] += 1
        elif "uninitialised" in head:
            counts["uninitialised"] += 1
        else:
            counts["other"] += 1
        if any("_kernels" in s or "_format" in s for s in block):
            counts["in_dcimg"] += 1
    summary = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
    counts["error_summary"] = int(summary[-1]) if summary else -1
    return counts


def run_valgrind(corpus: pathlib.Path, log: pathlib.Path, passes: list[str]) -> int:
    """Run the driver under memcheck.

    Parameters
    ----------
    corpus : pathlib.Path
        Folder of ``.dcimg`` files.
    log : pathlib.Path
        Valgrind's log file (written).
    passes : list of str
        ``"mmap"`` and/or ``"heap"``.

    Returns
    -------
    int
        The exit status of the driver under valgrind.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    argv = [
        valgrind,
        "--tool=memcheck",
        "--num-callers=40",
        "--error-limit=no",
        "--read-var-info=no",
        f"--log-file={log}",
    ]
    argv += [f"--suppressions={s}" for s in SUPPRESSIONS if os.path.exists(s)]
    ldso = log.with_suffix(".ldso.supp")
    ldso.write_text(LDSO_SUPPRESSIONS)
    argv.append(f"--suppressions={ldso}")
    argv += [sys.executable, str(pathlib.Path(__file__).resolve()), "--driver"]
    argv += [str(corpus), "--passes", *passes]
    env = dict(os.environ, PYTHONMALLOC="malloc", OMP_NUM_THREADS="1")
    env["OPENBLAS_NUM_THREADS"] = "1"
    return subprocess.run(argv, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Run the command line; see the module docstring.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 1 when memcheck saw an invalid read or write.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="folder of .dcimg files (default: generated)")
    parser.add_argument("--cases", type=int, default=300, help="mutated files")
    parser.add_argument(
        "--trunc-every", type=int, default=12, help="keep 1 truncation in this many"
    )
    parser.add_argument("--seed", type=int, default=0, help="fuzz campaign seed")
    parser.add_argument(
        "--log",
        default=os.path.join(tempfile.gettempdir(), "dcimg-memcheck.log"),
        help="valgrind log file (default: in the temporary folder)",
    )
    parser.add_argument(
        "--passes", nargs="+", default=["mmap", "heap"], choices=["mmap", "heap"]
    )
    parser.add_argument("--no-valgrind", action="store_true", help="driver only")
    parser.add_argument("--driver", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.driver:
        return driver(args.driver, tuple(args.passes))

    with tempfile.TemporaryDirectory(prefix="dcimg-memcheck-") as scratch:
        if args.corpus:
            corpus = pathlib.Path(args.corpus)
            nfiles = len(list(corpus.glob("*.dcimg")))
        else:
            corpus = pathlib.Path(scratch) / "corpus"
            nfiles = write_default_corpus(
                corpus, args.cases, args.trunc_every, args.seed
            )
        print(f"corpus: {nfiles} files", flush=True)
        if args.no_valgrind:
            return driver(str(corpus), tuple(args.passes))
        log = pathlib.Path(args.log).resolve()
        status = run_valgrind(corpus, log, args.passes)
    counts = parse_log(log.read_text(errors="replace"))
    print(
        "memcheck: invalid reads {invalid_read}, invalid writes {invalid_write}, "
        "uninitialised {uninitialised}, other {other}; in dcimg's modules "
        "{in_dcimg}; valgrind ERROR SUMMARY {error_summary} (log: ".format(**counts)
        + f"{log})"
    )
    bad = counts["invalid_read"] or counts["invalid_write"] or counts["in_dcimg"]
    return 1 if bad or status else 0


if __name__ == "__main__":
    sys.exit(main())
