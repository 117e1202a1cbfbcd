"""Truncate or replace DCIMG files while they are being read; count the outcomes.

Every read must either return exactly what the file held when it was opened
or raise :class:`dcimg.DCIMGChangedError` -- never different pixels, time
stamps or counters, and never a dead process.  For each read path, every
trial writes a fresh file, opens it, starts a thread that changes the file
after a random delay (within 1.5 times the read's own duration), and reads
until the change is done and once more after it.  Every result is compared
with the true array; the trial's outcome is the worst of its reads:

- ``ok-exact``: every read returned the true values;
- ``changed``: a read raised :class:`dcimg.DCIMGChangedError`;
- ``other-error``: some other exception (reported with its message);
- ``wrong``: a read returned values that differ from the truth;
- ``death``: the process died (the trials run in child processes, which
  report each trial before and after it; a child that dies is counted and
  replaced, so a death is a number in the table, not the end of the run).

Changes: ``truncate`` cuts the file at a random size (half of them within
three pages of its end, where the system reads the cut page's tail as
zeros instead of raising ``SIGBUS``); ``replace`` puts another file of the
same size in its place with :func:`os.replace` (for a map or an open
descriptor the old file's bytes stay readable: they are what the file held
when it was opened, so an exact result is correct too).

Usage::

    python tools/truncation_stress.py                       # 200 trials per path
    python tools/truncation_stress.py --trials 3            # a smoke run
    python tools/truncation_stress.py --paths map_whole pread --trials 50

Prints one table row per read path and change, and a total.  Exit status 1
when any trial died or returned a wrong result.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATHS = (
    "map_whole",
    "map_frames",
    "map_float",
    "map_timestamps",
    "map_framestamps",
    "map_threads",
    "pread",
    "file_object",
    "series",
    "series_dask",
    "dask",
)
HOWS = ("truncate", "replace")
OUTCOMES = ("ok-exact", "changed", "other-error", "wrong", "death")
# Frames, rows, columns of the files (the float64 read of the whole file is
# 48 MiB: above the kernel's 32 MiB, so it is split across threads).
SHAPE = (24, 512, 512)
SERIES_SHAPE = (6, 128, 160)
SERIES_FILES = 3


# ----------------------------------------------------------------------
# Child: runs trials, prints "start N" and "result N OUTCOME DETAIL"


class _Models:
    """The files a trial copies, and the true values read from them."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        import dcimg
        from dcimg.testing import write_dcimg

        rng = np.random.default_rng(0)
        self.folder = folder
        self.pixels = rng.integers(0, 4096, SHAPE, dtype=np.uint16)
        other = rng.integers(0, 4096, SHAPE, dtype=np.uint16)
        self.model = write_dcimg(
            folder / "model.dcimg", self.pixels, stored_pixels_row=7
        )
        # Same geometry, other pixels and time stamps: the same size.
        frames = SHAPE[0]
        self.other = write_dcimg(
            folder / "other.dcimg",
            other,
            stored_pixels_row=7,
            framestamps=np.arange(frames) + 1000,
            timestamps_us=1_700_000_000_000_000 + np.arange(frames) * 1000,
        )
        assert self.model.stat().st_size == self.other.stat().st_size
        with dcimg.DCIMGFile(self.model) as f:
            assert np.array_equal(f.whole(), self.pixels)
            self.timestamps = f.timestamps
            self.framestamps = f.framestamps
        self.members = [
            rng.integers(0, 4096, SERIES_SHAPE, dtype=np.uint16)
            for _ in range(SERIES_FILES)
        ]
        self.series_models = [
            write_dcimg(
                folder / f"member_{k:03d}.model", data, stored_pixels_row=5, version=0x7
            )
            for k, data in enumerate(self.members)
        ]
        self.series_others = [
            write_dcimg(
                folder / f"member_{k:03d}.other",
                data[::-1].copy(),
                stored_pixels_row=5,
                version=0x7,
            )
            for k, data in enumerate(self.members)
        ]


def _trial_setup(
    path_name: str, models: _Models, live: Path
) -> tuple[list[Path], list[Path], Callable[[], Any], Callable[[Any], bool], Any]:
    """Write the trial's files; return (files, replacements, read, check, handle)."""
    import numpy as np

    import dcimg

    series = path_name.startswith("series")
    if series:
        files = [live / f"cell_{k:03d}.dcimg" for k in range(SERIES_FILES)]
        for src, dst in zip(models.series_models, files, strict=True):
            dst.write_bytes(src.read_bytes())
        replacements = models.series_others
        truth = np.stack(models.members)
        s = dcimg.DCIMGSeries(files)
        if path_name == "series":
            return files, replacements, lambda: s.read(...), _equal(truth), s
        from dcimg import _dask

        def series_dask() -> Any:
            _dask.clear_cache()
            return s.as_dask_array().compute(scheduler="threads", num_workers=4)

        return files, replacements, series_dask, _equal(truth), s
    path = live / "live.dcimg"
    path.write_bytes(models.model.read_bytes())
    files, replacements = [path], [models.other]
    truth = models.pixels
    if path_name == "pread":
        f = dcimg.DCIMGFile(path, mmap=False)
        return files, replacements, f.whole, _equal(truth), f
    if path_name == "file_object":
        handle = open(path, "rb")  # noqa: SIM115 - closed by the trial
        f = dcimg.DCIMGFile(handle)
        return files, replacements, f.whole, _equal(truth), (f, handle)
    f = dcimg.DCIMGFile(path)
    if path_name == "map_whole":
        return files, replacements, f.whole, _equal(truth), f
    if path_name == "map_frames":

        def frames() -> Any:
            return np.stack([f.frame(i) for i in range(f.nfrms)])

        return files, replacements, frames, _equal(truth), f
    if path_name == "map_float":
        return (
            files,
            replacements,
            lambda: f.whole(dtype=np.float32),
            _equal(truth.astype(np.float32)),
            f,
        )
    if path_name == "map_timestamps":

        def stamps() -> Any:
            state = f._require_state()
            state.cache.clear()  # read them again, every time
            return f.timestamps

        return files, replacements, stamps, _equal(models.timestamps), f
    if path_name == "map_framestamps":

        def counters() -> Any:
            f._require_state().cache.clear()
            return f.framestamps

        return files, replacements, counters, _equal(models.framestamps), f
    if path_name == "map_threads":
        from concurrent.futures import ThreadPoolExecutor

        def threads() -> Any:
            # Four Python threads reading frames, and one copy split across
            # the kernel's own threads (float64: 48 MiB).
            with ThreadPoolExecutor(4) as pool:
                frames = list(pool.map(f.__getitem__, range(f.nfrms)))
            whole = f.whole(dtype=np.float64)
            return np.stack(frames), whole

        def check(result: Any) -> bool:
            frames, whole = result
            return np.array_equal(frames, truth) and np.array_equal(whole, truth)

        return files, replacements, threads, check, f
    if path_name == "dask":
        from dcimg import _dask

        def chunks() -> Any:
            _dask.clear_cache()
            arr = f.as_dask_array(chunks=2)
            return arr.compute(scheduler="threads", num_workers=4)

        return files, replacements, chunks, _equal(truth), f
    raise SystemExit(f"unknown read path {path_name!r}")


def _equal(truth: Any) -> Callable[[Any], bool]:
    import numpy as np

    return lambda result: bool(np.array_equal(np.asarray(result), truth))


def _close(handle: Any) -> None:
    for item in handle if isinstance(handle, tuple) else (handle,):
        try:
            item.close()
        except Exception:  # noqa: BLE001, S110 - best effort
            pass


def _change(how: str, files: list[Path], replacements: list[Path], rng: random.Random):
    """Return a function that changes one of the files (chosen now)."""
    k = rng.randrange(len(files))
    target = files[k]
    size = target.stat().st_size
    if how == "truncate":
        page = 4096
        if rng.random() < 0.5:
            cut = rng.randrange(0, size)
        else:
            cut = max(0, size - rng.randrange(1, 3 * page))
        return lambda: os.truncate(target, cut)
    # Same size, other bytes; staged next to the file, so the change itself
    # is one rename.
    staged = target.with_suffix(".staged")
    staged.write_bytes(replacements[k].read_bytes())
    return lambda: os.replace(staged, target)


def child(path_name: str, how: str, folder: Path, trials: list[int], seed: int) -> int:
    """Run ``trials`` of one read path; print each trial's outcome."""
    import dcimg

    warnings.simplefilter("ignore")
    models = _Models(folder)
    rng = random.Random(seed)
    took = None
    for trial in trials:
        live = folder / f"trial-{trial}"
        live.mkdir()
        files, replacements, read, check, handle = _trial_setup(path_name, models, live)
        if took is None:  # undisturbed reads: a warm-up (imports), then timed
            if not check(read()):
                raise SystemExit(f"{path_name}: the undisturbed read is wrong")
            start = time.perf_counter()
            read()
            took = time.perf_counter() - start
        change = _change(how, files, replacements, rng)
        delay = rng.uniform(0, took * 1.5)
        print(f"start {trial}", flush=True)

        def changer(change: Callable[[], None] = change, delay: float = delay) -> None:
            time.sleep(delay)
            change()

        thread = threading.Thread(target=changer)
        outcome, detail = "ok-exact", ""
        rank = {name: k for k, name in enumerate(OUTCOMES)}
        thread.start()
        done = False
        while True:
            done = not thread.is_alive()  # this read starts after the change
            try:
                result = read()
            except dcimg.DCIMGChangedError:
                seen, why = "changed", ""
            except Exception as exc:  # noqa: BLE001 - counted and shown
                seen = "other-error"
                why = f"{type(exc).__name__}: {exc}"
            else:
                seen = "ok-exact" if check(result) else "wrong"
                why = "" if seen == "ok-exact" else "values differ from the truth"
            if rank[seen] > rank[outcome]:
                outcome, detail = seen, why
            if done or outcome in ("wrong", "other-error"):
                break
        thread.join()
        _close(handle)
        detail = " ".join(detail.split())[:300]
        print(f"result {trial} {outcome} {detail}", flush=True)
    return 0


# ----------------------------------------------------------------------
# Parent: runs children until every trial has an outcome


def run_case(
    path_name: str, how: str, trials: int, seed: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run ``trials`` trials of one read path and change; return the counts."""
    counts: collections.Counter[str] = collections.Counter()
    details: list[str] = []
    todo = list(range(trials))
    children = 0
    while todo:
        children += 1
        with tempfile.TemporaryDirectory(prefix="dcimg-stress-") as folder:
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    path_name,
                    how,
                    folder,
                    "--seed",
                    str(seed + children),
                    "--trial-ids",
                    ",".join(map(str, todo)),
                    *extra,
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
        started = None
        for line in proc.stdout.splitlines():
            words = line.split(" ", 3)
            if words[0] == "start":
                started = int(words[1])
            elif words[0] == "result":
                trial, outcome = int(words[1]), words[2]
                counts[outcome] += 1
                todo.remove(trial)
                started = None
                if outcome in ("wrong", "other-error") and len(details) < 5:
                    details.append(f"trial {trial}: {outcome} {' '.join(words[3:])}")
        if proc.returncode != 0:
            if started is None:
                # Died outside a trial (setup): not a read's death; stop.
                raise SystemExit(
                    f"{path_name}/{how}: child failed outside a trial "
                    f"(status {proc.returncode}):\n{proc.stderr[-3000:]}"
                )
            counts["death"] += 1
            todo.remove(started)
            details.append(
                f"trial {started}: death (status {proc.returncode}) "
                + " ".join(proc.stderr.split())[-300:]
            )
        elif todo:
            raise SystemExit(f"{path_name}/{how}: child left trials {todo}")
    return {"counts": counts, "details": details}


def table(rows: list[tuple[str, str, int, collections.Counter[str]]]) -> str:
    """Return the Markdown table of outcomes."""
    lines = [
        "| path | change | trials | ok-exact | DCIMGChangedError | other error "
        "| wrong | deaths |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total: collections.Counter[str] = collections.Counter()
    n = 0
    for path_name, how, trials, counts in rows:
        total.update(counts)
        n += trials
        lines.append(
            f"| {path_name} | {how} | {trials} | {counts['ok-exact']} | "
            f"{counts['changed']} | {counts['other-error']} | {counts['wrong']} | "
            f"{counts['death']} |"
        )
    lines.append(
        f"| **all** | | {n} | {total['ok-exact']} | {total['changed']} | "
        f"{total['other-error']} | {total['wrong']} | {total['death']} |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="per path and change")
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=PATHS)
    parser.add_argument("--hows", nargs="*", default=list(HOWS), choices=HOWS)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--markdown", metavar="PATH", help="save the table")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "HOW", "DIR"))
    parser.add_argument("--trial-ids", default="")
    parser.add_argument(
        "--no-confirm",
        action="store_true",
        help="a deliberate break: skip the check after each copy (the "
        "table must then show wrong results)",
    )
    args = parser.parse_args(argv)
    seed = args.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if args.child:
        path_name, how, folder = args.child
        ids = [int(x) for x in args.trial_ids.split(",") if x]
        if args.no_confirm:
            from dcimg import _source

            _source.CONFIRM = False
        try:
            return child(path_name, how, Path(folder), ids, seed)
        except SystemExit:
            raise
        except BaseException:
            traceback.print_exc()
            return 3
    rows = []
    bad = 0
    started = time.perf_counter()
    print(f"# seed {seed}; {args.trials} trials per path and change", flush=True)
    for path_name in args.paths:
        for how in args.hows:
            extra = ("--no-confirm",) if args.no_confirm else ()
            found = run_case(path_name, how, args.trials, seed, extra)
            counts = found["counts"]
            rows.append((path_name, how, args.trials, counts))
            bad += counts["wrong"] + counts["death"] + counts["other-error"]
            print(
                f"# {path_name:16s} {how:9s} "
                + " ".join(f"{k}={counts[k]}" for k in OUTCOMES),
                flush=True,
            )
            for line in found["details"]:
                print(f"#   {line}", flush=True)
    text = table(rows)
    print(text)
    print(f"# {time.perf_counter() - started:.0f} s", flush=True)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
