"""How long ``import dcimg`` takes on top of ``import numpy``, against numpy's own.

Runs ``python -X importtime`` in fresh interpreters, ``--runs`` times each
(interleaved), and prints the medians: numpy's cumulative import time, and
dcimg's cumulative time when numpy is already imported (everything
``import dcimg`` adds: its modules and the standard-library modules only it
loads). Run it with the interpreter of an installed (not editable) dcimg:
an editable install rebuilds on import.

Usage: ``python tools/import_time.py [--runs N]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile

ROW = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)")


def cumulative_us(statement: str, module: str) -> int:
    """Cumulative import time of ``module`` (µs) while running ``statement``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # the installed package, not a checkout
    )
    for line in done.stderr.splitlines():
        match = ROW.match(line)
        if match and match.group(3) == module:
            return int(match.group(2))
    raise RuntimeError(f"{module} not imported by {statement!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    numpy_us, dcimg_us = [], []
    for _ in range(args.runs):
        numpy_us.append(cumulative_us("import numpy", "numpy"))
        dcimg_us.append(cumulative_us("import numpy; import dcimg", "dcimg"))
    numpy_ms = statistics.median(numpy_us) / 1000
    dcimg_ms = statistics.median(dcimg_us) / 1000
    print(f"import numpy:                  {numpy_ms:7.1f} ms (median of {args.runs})")
    print(f"import dcimg after numpy:      {dcimg_ms:7.1f} ms")
    print(f"dcimg's share of numpy's time: {dcimg_ms / numpy_ms:7.2f} (target <= 0.30)")


if __name__ == "__main__":
    main()
