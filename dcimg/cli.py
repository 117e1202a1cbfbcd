"""The ``dcimg`` command line: ``dcimg info`` and ``dcimg convert``.

Also run as ``python -m dcimg``. Every error is reported as one line on
standard error with a non-zero exit status: 1 when a file cannot be read or
written, 2 for a usage error (an output that would touch an input included),
130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dcimg._urls import display_url, is_url, redact, secrets_of, url_path
from dcimg._version import __version__
from dcimg.core import DCIMGFile
from dcimg.errors import DCIMGError, DCIMGSeriesError, DCIMGWarning
from dcimg.metadata import Metadata
from dcimg.testing import example_file

if TYPE_CHECKING:
    from dcimg._stack import Stack
    from dcimg.series import SeriesMetadata

__all__ = ["build_parser", "main"]

_EXAMPLE_LABEL = "built-in example"


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
    else:
        lines.append("sub-array      not recorded")
    if meta.first_timestamp is not None:
        lines.append(f"first frame    {meta.first_timestamp}")
        lines.append(f"last frame     {meta.last_timestamp}")
    else:
        lines.append("time stamps    not available")
    if meta.frame_rate_hz and meta.frame_interval_s is not None:
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
    else:
        lines.append("dropped frames unknown (frame counters not available)")
    stored = meta.stored_pixels
    if stored is None:
        lines.append("stored pixels  none (no pixels overwritten by the camera)")
    else:
        state = "" if stored.available else " - values lost, returned as stored"
        if stored.available and stored.missing_frames:
            state = (
                f" - values of the last {stored.missing_frames} frame(s) lost "
                "with the cut trailer, returned as stored"
            )
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
    for note in meta.notes:
        lines.append(f"note           {note}")
    return lines


def _reason(error: BaseException, path: str | os.PathLike[str] = "") -> str:
    """One line saying why a path could not be used.

    An OSError about another file than ``path`` (given: a member of a
    series) names that file.
    """
    if isinstance(error, OSError):
        named = error.filename
        other = (
            named
            and path
            and display_url(os.fspath(named)) != display_url(os.fspath(path))
        )
        prefix = f"{named}: " if other else ""
        if isinstance(error, FileNotFoundError):
            return prefix + "no such file"
        if isinstance(error, IsADirectoryError):
            return prefix + "is a directory, not a DCIMG file"
        if isinstance(error, PermissionError):
            return prefix + "permission denied"
        if error.strerror:
            return prefix + error.strerror
    text = " ".join(str(error).split()) or type(error).__name__
    # Messages that start with the input's name: it is said once.
    named = display_url(os.fspath(path)) + ": " if path else ""
    return text[len(named) :] if named and text.startswith(named) else text


def _say(command: str, message: str) -> None:
    """One line on standard error, prefixed with the command.

    URLs in it are shown without user names, passwords and query strings.
    """
    print(f"dcimg {command}: {redact(message, _secrets)}", file=sys.stderr)


#: The secrets of the URLs given on this command line (see ``main``): a
#: message may quote part of one (an output name with its query string).
_secrets: list[str] = []


def _info(args: argparse.Namespace) -> int:
    paths: list[str | Path] = list(args.paths)
    if not paths and not args.example:
        raise _UsageError("give at least one PATH, or --example")
    with contextlib.ExitStack() as stack:
        if args.example:
            paths.insert(0, stack.enter_context(example_file()))
        reports = []
        status = 0
        for number, path in enumerate(paths):
            try:
                with warnings.catch_warnings():
                    # Everything a warning says is in the report ("note" lines).
                    warnings.simplefilter("ignore", DCIMGWarning)
                    with _open_any(path, args.series_axes, args.missing) as f:
                        meta = f.metadata
            except (OSError, ValueError, ImportError) as error:
                _say("info", f"{path}: {_reason(error, path)}")
                status = 1
                continue
            reports.append(meta)
            if not args.json:
                label = f"  ({_EXAMPLE_LABEL})" if args.example and number == 0 else ""
                print(f"{display_url(path)}{label}")
                lines = (
                    _describe(meta)
                    if isinstance(meta, Metadata)
                    else _describe_series(meta)
                )
                for line in lines:
                    print(f"  {line}")
        if args.json:
            json.dump([meta.to_dict() for meta in reports], sys.stdout, indent=2)
            print()
    return status


def _open_any(
    source: str | Path, series_axes: str | None = None, missing: str = "raise"
) -> Stack:
    """Open a file (path or URL), or a series (folder or glob pattern)."""
    from dcimg.series import DCIMGSeries, names_series

    if names_series(source):
        return DCIMGSeries(
            source, axes=series_axes, missing="fill" if missing == "fill" else "raise"
        )
    if missing != "raise":
        raise DCIMGSeriesError(
            f"--missing {missing} is for a series (a folder or glob pattern), "
            "not for one file"
        )
    if series_axes is not None:
        raise DCIMGSeriesError(
            f"--series-axes {series_axes} names the counters of a series (a "
            "folder or glob pattern), not of one file"
        )
    return DCIMGFile(source)


def _describe_series(meta: SeriesMetadata) -> list[str]:
    """Human-readable lines about a series of files."""
    frames, height, width = meta.first.shape
    grid = " x ".join(
        f"{n} {axis}" for n, axis in zip(meta.grid_shape, meta.axes, strict=True)
    )
    lines = [
        f"series         {len(meta.files)} files: "
        + ("frames joined in file order" if meta.concat else f"grid {grid}"),
        f"shape          {' x '.join(str(n) for n in meta.shape)} ({meta.first.dtype})",
        f"each file      {frames} frames x {height} x {width} pixels "
        f"(first: {Path(meta.files[0]).name})",
        f"format         version {meta.first.format_version:#x} ({meta.first.layout})",
    ]
    if meta.first_timestamp is not None:
        lines.append(f"first frame    {meta.first_timestamp}")
        lines.append(f"last frame     {meta.last_timestamp}")
    else:
        lines.append("time stamps    not available")
    dropped = [
        (Path(name).name, count)
        for name, count in zip(meta.files, meta.dropped_frame_count, strict=True)
        if count
    ]
    if dropped:
        shown = ", ".join(f"{name}: {count}" for name, count in dropped[:10])
        more = " ..." if len(dropped) > 10 else ""
        lines.append(f"dropped frames {shown}{more}")
    else:
        lines.append("dropped frames none")
    for label, names in (
        ("missing files", meta.missing),
        ("cut short", meta.incomplete),
    ):
        if names:
            shown = ", ".join(Path(name).name for name in names[:10])
            more = " ..." if len(names) > 10 else ""
            lines.append(f"{label:<14} {len(names)}, read as 0: {shown}{more}")
    return lines


def _open_input(
    source: str | Path, quiet: bool, series_axes: str | None, missing: str = "raise"
) -> Stack:
    """Open one input, saying its warnings (truncation...) on standard error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DCIMGWarning)
        f = _open_any(source, series_axes, missing)
    if not quiet:
        for warning in caught:
            _say("convert", f"warning: {source}: {warning.message}")
    return f


def _conversion_options(args: argparse.Namespace) -> Any:
    """Check the options of ``dcimg convert`` (usage errors if bad)."""
    from dcimg import _convert as conversion

    try:
        return conversion._Options.checked(
            frames=None
            if args.frames is None
            else conversion.parse_frames(args.frames),
            dtype=args.dtype,
            axes=args.axes,
            z_size=args.z_size,
            frames_per_slice=args.frames_per_slice,
            pixel_size=args.pixel_size,
            pixel_size_x=args.pixel_size_x,
            pixel_size_y=args.pixel_size_y,
            z_step=args.z_step,
            channel_name=args.channel_name,
            compression=args.compression,
            chunks=args.chunks,
            pyramid=args.pyramid,
            ngff=args.ngff,
            zarr_format=args.zarr_format,
            shard_bytes=None
            if args.shard_size is None
            else round(args.shard_size * (1 << 20)),
        )
    except conversion.ConversionError as error:
        raise _UsageError(_option_names(str(error))) from None


def _option_names(message: str) -> str:
    """Say ``--z-size`` where the Python API says ``z_size``."""
    for name in (
        "frames_per_slice",
        "pixel_size_x",
        "pixel_size_y",
        "pixel_size",
        "z_size",
        "z_step",
        "pyramid",
        "chunks",
        "axes",
        "ngff",
        "zarr_format",
    ):
        message = re.sub(rf"(?<![-\w]){name}\b", "--" + name.replace("_", "-"), message)
    # The command line gives the shard size in MiB.
    message = re.sub(r"(?<![-\w])shard_bytes\b", "--shard-size", message)
    return message.replace("--axes=", "--axes ").replace("frames=", "--frames ")


def _expand(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Expand glob patterns (for shells that do not); return (files, unmatched)."""
    found: list[str] = []
    unmatched: list[str] = []
    for path in paths:
        if is_url(path):
            found.append(path)  # a URL glob names a series, opened as one
        elif glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path))
            if matches:
                found.extend(matches)
            else:
                unmatched.append(path)
        else:
            found.append(path)
    return found, unmatched


def _convert(args: argparse.Namespace) -> int:
    from dcimg import _convert as conversion

    options = _conversion_options(args)
    interrupt = conversion._Interrupt()
    # Ctrl-C and SIGTERM stop the conversion at the next block boundary, once
    # the writers are idle, so that the temporary output can be removed.
    with interrupt.installed([signal.SIGINT, signal.SIGTERM]):
        if args.out_dir is not None:
            return _convert_batch(args, options, interrupt)
        return _convert_single(args, options, interrupt)


def _convert_single(args: argparse.Namespace, options: Any, interrupt: Any) -> int:
    from dcimg import _convert as conversion

    if args.to is not None:
        raise _UsageError("--to names the format of the files in --out-dir")
    expected = 1 if args.example else 2
    if len(args.paths) != expected:
        raise _UsageError(
            "give OUT after --example"
            if args.example
            else "give PATH and OUT (or several PATHs with --out-dir DIR --to FORMAT)"
        )
    out = Path(args.paths[-1])
    try:
        options.for_format(conversion.output_format(out))
    except conversion.ConversionError as error:
        raise _UsageError(_option_names(str(error))) from None
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(example_file()) if args.example else args.paths[0]
        try:
            f = stack.enter_context(
                _open_input(source, args.quiet, args.series_axes, args.missing)
            )
        except (OSError, ValueError) as error:
            _say("convert", f"{source}: {_reason(error, source)}")
            return 1
        try:
            conversion._convert_one(
                f,
                out,
                options,
                args.overwrite,
                False if args.quiet else sys.stderr.isatty(),
                interrupt,
            )
        except conversion.InputCollisionError as error:
            _say("convert", str(error))
            return 2
        except conversion.ConversionError as error:
            _say("convert", _option_names(str(error)))
            return 1
        except (OSError, DCIMGError) as error:
            _say("convert", f"{out}: {_reason(error)}")
            return 1
    if not args.quiet:
        what = _EXAMPLE_LABEL if args.example else str(source)
        _say("convert", f"wrote {out} from {what}")
    return 0


def _convert_batch(args: argparse.Namespace, options: Any, interrupt: Any) -> int:
    """Convert every input into ``--out-dir``; one progress bar, a summary."""
    from dcimg import _convert as conversion

    if args.to is None:
        raise _UsageError("--out-dir needs --to FORMAT (e.g. --to ome.zarr)")
    suffix = "." + args.to.lower().lstrip(".")
    try:
        fmt = conversion.output_format("x" + suffix)
        options.for_format(fmt)
    except conversion.ConversionError as error:
        raise _UsageError(f"--to {args.to}: {_option_names(str(error))}") from None
    paths, unmatched = _expand(args.paths)
    if not paths and not unmatched and not args.example:
        raise _UsageError("give the DCIMG files to convert (or --example)")
    out_dir = Path(args.out_dir)
    created = not out_dir.exists()
    failures: list[tuple[str, str]] = [(p, "no file matches") for p in unmatched]
    written: list[Path] = []
    refused: Exception | None = None
    # Every input of the batch: no output, nor the folder, may touch one.
    inputs = conversion._Inputs()
    with contextlib.ExitStack() as stack:
        if args.example:
            paths.insert(0, str(stack.enter_context(example_file())))
        # Count the frames first: one progress bar for the whole batch.
        jobs: list[tuple[str, Path, int]] = []
        seen: dict[Path, str] = {}
        for path in paths:
            name = Path(url_path(path) if is_url(path) else path).name
            out = out_dir / (name.rsplit(".", 1)[0] + suffix)
            if out in seen:
                failures.append((path, f"same output name as {seen[out]}"))
                continue
            try:
                with _open_input(path, args.quiet, args.series_axes, args.missing) as f:
                    planes = conversion._planes_of(f, options)
                    inputs.add(conversion._inputs_of(f))
            except (OSError, ValueError) as error:
                # Unreadable (damaged, say) is still an input: protected.
                inputs.add(conversion._inputs_of(SimpleNamespace(file_path=path)))
                failures.append((path, _reason(error, path)))
                continue
            seen[out] = path
            jobs.append((path, out, planes))
        # Refused before anything is made (--out-dir included): one line.
        try:
            for _, out, _ in jobs:
                conversion._refuse_inputs(inputs, out)
        except conversion.InputCollisionError as error:
            _say("convert", str(error))
            return 2
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _say("convert", f"{out_dir}: {_reason(error)}")
            return 1
        total = sum(planes for _, _, planes in jobs)
        show = not args.quiet and sys.stderr.isatty()
        bar = stack.enter_context(
            conversion._progress_bar(total, f"{len(jobs)} files", show)
        )
        update = bar.update if bar is not None else conversion._ignore
        for path, out, _ in jobs:
            interrupt.check()
            try:
                with _open_input(path, True, args.series_axes, args.missing) as f:
                    conversion._convert_one(
                        f, out, options, args.overwrite, update, interrupt
                    )
            except conversion.InputCollisionError as error:
                refused = error  # an input appeared where an output goes
                failures.append((path, str(error)))
                continue
            except conversion.ConversionError as error:
                failures.append((path, _option_names(str(error))))
                continue
            except (OSError, DCIMGError) as error:
                failures.append((path, _reason(error, path)))
                continue
            written.append(out)
        if bar is not None:
            bar.close()
    if created and not written:
        # Kept when not empty or (through the same check as every removal)
        # when it would touch an input.
        with contextlib.suppress(OSError, conversion.InputCollisionError):
            conversion._refuse_inputs(inputs, out_dir)
            out_dir.rmdir()
    for path, reason in failures:
        _say("convert", f"{path}: {reason}")
    count = len(written) + len(failures)
    if failures:
        _say(
            "convert",
            f"{len(failures)} of {count} files failed; "
            f"{len(written)} written to {out_dir}",
        )
        return 1 if refused is None else 2
    if not args.quiet:
        _say("convert", f"wrote {len(written)} files to {out_dir}")
    return 0


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
        description="Inspect and convert Hamamatsu DCIMG files.",
        epilog="Run 'dcimg COMMAND --help' for the options of each command.",
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
    _add_common(info, _info, "also describe a built-in synthetic acquisition")

    convert = commands.add_parser(
        "convert",
        help="convert DCIMG files to TIFF, OME-TIFF, Zarr or OME-Zarr",
        usage="dcimg convert [options] PATH OUT\n"
        "       dcimg convert [options] PATH... --out-dir DIR --to FORMAT\n"
        "       dcimg convert [options] --example OUT",
        description="Write the corrected frames of PATH to OUT. The format "
        "follows OUT's name: .tif/.tiff (TIFF; BigTIFF above 4 GiB), "
        ".btf/.tf8 (BigTIFF), .ome.tif/.ome.tiff (OME-TIFF with physical "
        "sizes, per-plane time stamps, camera and channel), .zarr (a Zarr "
        "array) or .ome.zarr (OME-Zarr, NGFF 0.4). With --out-dir, every PATH "
        "(or glob pattern) is converted into DIR with the extension --to. "
        "Frames are streamed in blocks, so files larger than memory convert. "
        "Outputs appear only once complete; Ctrl-C or a full disk leave "
        "nothing behind. Needs the 'convert' extra: "
        "pip install 'dcimg[convert]'.",
    )
    convert.add_argument(
        "paths",
        nargs="*",
        metavar="PATH OUT",
        help="the DCIMG file and the output (only OUT with --example; only "
        "PATHs with --out-dir)",
    )
    convert.add_argument(
        "--frames",
        metavar="START:STOP:STEP",
        help="convert only these frames (Python slice syntax, e.g. 100:, "
        "::2, -50:, or one index)",
    )
    convert.add_argument(
        "--dtype",
        choices=_dtype_choices(),
        help="pixel type of the output (default: the file's, uint8 or uint16); "
        "must hold every value of the file's type",
    )
    dims = convert.add_argument_group("dimensions and physical sizes")
    dims.add_argument(
        "--axes",
        default="T",
        type=str.upper,
        choices=_axes_choices(),
        help="what the frames are: time points (T, default), Z planes (Z), "
        "channels (C), or both T and Z, outer axis first: ZT (several frames "
        "per Z plane, as zslice_idx counts them) or TZ (one Z-stack after the "
        "other)",
    )
    dims.add_argument(
        "--z-size", type=int, metavar="N", help="number of Z planes (ZT, TZ)"
    )
    dims.add_argument(
        "--frames-per-slice",
        type=int,
        metavar="N",
        help="consecutive frames per Z plane (ZT): the number of time points",
    )
    dims.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="pixel size in the sample, in µm (X and Y)",
    )
    dims.add_argument("--pixel-size-x", type=float, metavar="UM", help="X only")
    dims.add_argument("--pixel-size-y", type=float, metavar="UM", help="Y only")
    dims.add_argument(
        "--z-step", type=float, metavar="UM", help="distance between Z planes (µm)"
    )
    dims.add_argument(
        "--channel-name",
        metavar="NAME",
        help="name of the channel (default: the file name without extension)",
    )
    storage = convert.add_argument_group("storage")
    storage.add_argument(
        "--compression",
        type=str.lower,
        choices=("none", "zlib", "zstd", "lzw", "blosc-zstd", "gzip"),
        help="lossless compression: none (TIFF default), zlib, zstd, lzw for "
        "TIFF; blosc-zstd (Zarr default), zstd, gzip, none for Zarr",
    )
    storage.add_argument(
        "--chunks",
        metavar="N,...",
        help="Zarr chunk shape, one size per axis or only Y,X (default: whole "
        "frames, about 8 MiB per chunk)",
    )
    storage.add_argument(
        "--pyramid",
        type=int,
        default=0,
        metavar="N",
        help="add N reduced levels (2x2 mean in Y and X each): TIFF SubIFDs, "
        "OME-Zarr multiscales",
    )
    storage.add_argument(
        "--ngff",
        choices=("0.5", "0.4"),
        help="OME-NGFF version of .ome.zarr output: 0.5 (default; Zarr v3, "
        "sharded) or 0.4 (Zarr v2, one file per chunk, for older tools)",
    )
    storage.add_argument(
        "--zarr-format",
        type=int,
        choices=(3, 2),
        help="Zarr format of .zarr output: 3 (default, sharded) or 2",
    )
    storage.add_argument(
        "--shard-size",
        type=float,
        metavar="MIB",
        help="target size of a Zarr v3 shard, uncompressed (default 512 MiB; "
        "memory holds about four)",
    )
    batch = convert.add_argument_group("several files")
    batch.add_argument(
        "--out-dir",
        metavar="DIR",
        help="convert every PATH (or glob pattern) into DIR",
    )
    batch.add_argument(
        "--to",
        metavar="FORMAT",
        choices=(
            "tif",
            "tiff",
            "btf",
            "ome.tif",
            "ome.tiff",
            "ome.btf",
            "zarr",
            "ome.zarr",
        ),
        help="format of the files in --out-dir: tif, btf, ome.tif, ome.btf, zarr, "
        "ome.zarr",
    )
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs that exist (never an input: that is refused)",
    )
    convert.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar, warnings or summary line",
    )
    _add_common(
        convert, _convert, "convert the built-in synthetic acquisition instead of PATH"
    )
    _add_references_command(commands)
    return parser


def _add_common(
    command: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    example_help: str,
) -> None:
    """Give a command what every command takes: ``--example``, series axes."""
    command.add_argument("--example", action="store_true", help=example_help)
    _add_series_axes(command)
    command.set_defaults(run=run, parser=command)


_REFERENCE_CORRECTIONS = {"restore": True, "zero": False, "none": None}


def _add_references_command(commands: Any) -> None:
    references = commands.add_parser(
        "references",
        help="write a kerchunk reference file: the DCIMG file as Zarr, unconverted",
        usage="dcimg references [options] PATH OUT",
        description="Write OUT, a JSON reference file (kerchunk format, Zarr "
        "v3, OME-NGFF 0.5) whose chunks are byte ranges of the DCIMG file "
        "PATH (a path or URL). zarr, xarray or Dask then read the original "
        "file through fsspec's reference:// file system, with no copy; the "
        "dcimg_frames codec, installed with this package, corrects the "
        "frames. See the documentation page 'Zarr without converting'.",
    )
    references.add_argument("paths", nargs=1, metavar="PATH", help="DCIMG file")
    references.add_argument("out", metavar="OUT", help="reference file to write")
    references.add_argument(
        "--chunks",
        default="auto",
        metavar="N",
        help="whole frames per chunk, one range request each (default: auto, "
        "as many as fit 32 MiB; -1: all)",
    )
    references.add_argument(
        "--correction",
        choices=tuple(_REFERENCE_CORRECTIONS),
        default="restore",
        help="the camera-overwritten pixels: restore the true values "
        "(default), set them to 0, or leave them as stored",
    )
    references.add_argument(
        "--target",
        metavar="URL",
        help="location readers will find the file at (written instead of PATH)",
    )
    references.add_argument(
        "--zarr-format",
        type=int,
        choices=(2, 3),
        default=3,
        help="Zarr v3 with OME-NGFF 0.5 (default), or Zarr v2 with OME-NGFF 0.4",
    )
    references.set_defaults(run=_references, parser=references)


def _references(args: argparse.Namespace) -> int:
    from dcimg.errors import InputCollisionError
    from dcimg.references import write_references

    source = args.paths[0]
    chunks: int | str = args.chunks
    if chunks != "auto":
        try:
            chunks = int(chunks)
        except ValueError:
            raise _UsageError(
                f"--chunks must be auto or a frame count, not {chunks!r}"
            ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DCIMGWarning)
            out = write_references(
                source,
                args.out,
                chunks=chunks,
                first_4px_correction_enabled=_REFERENCE_CORRECTIONS[args.correction],
                target=args.target,
                zarr_format=args.zarr_format,
            )
    except InputCollisionError as error:
        raise _UsageError(str(error)) from None
    except (OSError, ValueError, ImportError) as error:
        _say("references", f"{source}: {_reason(error, source)}")
        return 1
    print(f"{display_url(source)} -> {out} ({out.stat().st_size} bytes)")
    return 0


def _join_negative_frames(argv: Sequence[str] | None) -> list[str]:
    """Let ``--frames -50:`` through: argparse takes ``-50:`` for an option."""
    args = list(sys.argv[1:] if argv is None else argv)
    joined: list[str] = []
    i = 0
    while i < len(args):
        if (
            args[i] == "--frames"
            and i + 1 < len(args)
            and re.fullmatch(r"-\d+(:-?\d*){0,2}", args[i + 1])
        ):
            joined.append(f"--frames={args[i + 1]}")
            i += 2
        else:
            joined.append(args[i])
            i += 1
    return joined


def _add_series_axes(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--series-axes",
        type=str.upper,
        metavar="LETTERS",
        help="for a folder or glob (a series): one letter per varying counter, "
        "in file-name order, e.g. CZ (default: Z, TZ, CTZ, ...); T, Z and C "
        "become the OME axes",
    )
    command.add_argument(
        "--missing",
        choices=("raise", "fill"),
        default="raise",
        help="for a series that stopped early: refuse it (raise, the default) "
        "or read the places of missing files, and the frames of files cut "
        "short, as 0 (fill)",
    )


def _dtype_choices() -> tuple[str, ...]:
    # The list is kept in the converter; importing it needs no optional package.
    from dcimg._convert import DTYPES

    return DTYPES


def _axes_choices() -> tuple[str, ...]:
    from dcimg._convert import AXES

    return AXES


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dcimg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a file could not be read or
        written, 2 on a usage error or an output that would replace, hold or
        lie inside an input, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(_join_negative_frames(argv))
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    given = [*getattr(args, "paths", []), getattr(args, "out_dir", None)]
    _secrets[:] = [s for name in given if name for s in secrets_of(name)]
    try:
        status: int = args.run(args)
        return status
    except _UsageError as error:
        # exits with status 2
        args.parser.error(redact(str(error), _secrets))
        return 2
    except KeyboardInterrupt:
        print("dcimg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``dcimg info ... | head``).
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
