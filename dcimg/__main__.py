"""``python -m dcimg``: the command line (see :mod:`dcimg.cli`)."""

from dcimg.cli import main

raise SystemExit(main())
