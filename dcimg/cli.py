"""The ``dcimg`` command line: ``dcimg info`` (and ``python -m dcimg``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from dcimg import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGWarning
from dcimg.metadata import Metadata

__all__ = ["main"]


@contextlib.contextmanager
def _example_path() -> Iterator[Path]:
    """Write the built-in synthetic acquisition to a temporary folder."""
    from dcimg.testing import write_example

    with tempfile.TemporaryDirectory(prefix="dcimg-example-") as folder:
        yield write_example(Path(folder) / "example.dcimg")


def _describe(meta: Metadata) -> list[str]:
    """Human-readable lines about one file."""
    frames, height, width = meta.shape
    lines = [
        f"shape          {frames} frames x {height} x {width} pixels ({meta.dtype})",
        f"format         version {meta.format_version:#x} ({meta.layout})",
    ]
    camera = meta.camera
    if camera.model or camera.serial:
        serial = f", S/N {camera.serial}" if camera.serial else ""
        lines.append(f"camera         {camera.model or 'unknown model'}{serial}")
    else:
        lines.append("camera         not recorded")
    if meta.sub_array is not None:
        sub = meta.sub_array
        binning = "unknown" if meta.binning is None else f"{meta.binning}x"
        lines.append(
            f"sub-array      x0={sub.x0} y0={sub.y0} {sub.width} x {sub.height} "
            f"sensor pixels, binning {binning}"
        )
    if meta.first_timestamp is not None:
        lines.append(f"first frame    {meta.first_timestamp}")
        lines.append(f"last frame     {meta.last_timestamp}")
    else:
        lines.append("time stamps    not available")
    if meta.frame_rate_hz:
        lines.append(
            f"frame rate     {meta.frame_rate_hz:.3f} Hz "
            f"(interval {meta.frame_interval_s * 1e3:.3f} ms)"
        )
    if meta.dropped_frames:
        shown = ", ".join(str(i) for i in meta.dropped_frames[:20])
        more = " ..." if len(meta.dropped_frames) > 20 else ""
        lines.append(
            f"dropped frames {meta.dropped_frame_count} missing, after frame "
            f"index {shown}{more}"
        )
    elif meta.frame_data_available:
        lines.append("dropped frames none")
    stored = meta.stored_pixels
    if stored is None:
        lines.append("stored pixels  none (no pixels overwritten by the camera)")
    else:
        state = "" if stored.available else " - values lost, returned as stored"
        lines.append(
            f"stored pixels  {stored.count} at row {stored.row}, column "
            f"{stored.column} ({stored.source}){state}"
        )
    if meta.truncated:
        lines.append(
            f"truncated      yes: {meta.frames} of {meta.declared_frames} "
            "declared frames are complete"
        )
    else:
        lines.append("truncated      no")
    return lines


def _info(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if not paths and not args.example:
        raise _UsageError("info: give at least one PATH, or --example")
    with contextlib.ExitStack() as stack:
        if args.example:
            paths.insert(0, stack.enter_context(_example_path()))
        reports = []
        status = 0
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DCIMGWarning)
                    with DCIMGFile(path) as f:
                        meta = f.metadata
            except (OSError, DCIMGError) as error:
                print(f"dcimg info: {path}: {_reason(error)}", file=sys.stderr)
                status = 1
                continue
            reports.append(meta)
            if not args.json:
                label = "built-in example" if args.example and path == paths[0] else ""
                print(f"{path}{'  (' + label + ')' if label else ''}")
                for line in _describe(meta):
                    print(f"  {line}")
        if args.json:
            json.dump([meta.to_dict() for meta in reports], sys.stdout, indent=2)
            print()
    return status


def _reason(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, PermissionError):
        return "permission denied"
    return str(error)


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``dcimg`` command.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with one sub-command per action.
    """
    parser = argparse.ArgumentParser(
        prog="dcimg",
        description="Inspect Hamamatsu DCIMG files.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="describe DCIMG files",
        description="Print what to know before analysing each file: shape, "
        "dtype, format version, camera, sub-array and binning, time span and "
        "frame rate, dropped frames, stored-pixel position, truncation.",
    )
    info.add_argument("paths", nargs="*", metavar="PATH", help="DCIMG files")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument(
        "--example",
        action="store_true",
        help="also describe a built-in synthetic acquisition",
    )
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dcimg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a file could not be read, 2 on
        a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except _UsageError as error:
        parser.error(str(error))
        return 2
    except KeyboardInterrupt:
        print("dcimg: interrupted", file=sys.stderr)
        return 130
