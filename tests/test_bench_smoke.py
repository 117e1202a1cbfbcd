"""Smoke test of ``tools/bench.py``: it runs and prints its table.

No timing is checked: the machine is shared and noisy.
"""

from __future__ import annotations

import json

from helpers import run_tiny_bench

OPERATIONS = [
    "`whole()`",
    "`whole(out=buf)`",
    "`whole(dtype=np.float32)`",
    "`frame(i)` for all",
    "reads `f[i, y:y+10, 0:10]` across the stored row",
    "`as_dask_array().sum().compute()`",
    "`as_dask_array(copy=False).sum().compute()`",
    "Dask `sum()` of the same array already in memory",
    "open `DCIMGFile(path)`",
    "`.timestamps`",
    "first time stamps vs first full read",
    "check cost: `whole()`",
    "check cost: `whole(dtype=np.float32)`",
    "check cost: `frame(i)` for all",
    "check cost: 100 reads",
    "check cost: `.timestamps`",
    "check cost: `as_dask_array().sum().compute()`",
]


def test_bench_tiny_runs_and_prints_the_table(tmp_path):
    out_md = tmp_path / "bench.md"
    # One run of each, and few small reads: the smoke test checks that every
    # row runs and is reported, not its numbers.
    proc, out_json = run_tiny_bench(
        "bench.py",
        tmp_path,
        *("--repeat", "1", "--reads", "100", "--ts-repeat", "1"),
        *("--markdown", out_md),
        timeout=300,
    )
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| operation | layout |")
    for op in OPERATIONS:
        rows = [
            line
            for line in table
            if op in line.split(" | ")[0]
            and ("check cost" in line) == op.startswith("check cost")
        ]
        assert len(rows) == 2, (op, proc.stdout)  # one per layout
        for line in rows:
            assert "| packed |" in line or "| framed-32 |" in line
            assert line.rstrip().endswith(
                ("| PASS |", "| FAIL |", "| SKIP |", "| info |")
            )
    for word in ("python", "numpy", "dcimg", "dask", "cores", "GiB"):
        assert word in proc.stdout
    # The files written are removed afterwards.
    assert not any(tmp_path.glob("dcimg-bench-*"))
    assert out_md.read_text(encoding="utf-8") in proc.stdout
    saved = json.loads(out_json.read_text(encoding="utf-8"))
    assert len(saved["rows"]) == 2 * len(OPERATIONS)
