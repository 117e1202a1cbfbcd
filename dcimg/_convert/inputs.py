"""Inputs are never touched: what a conversion reads, known by identity."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcimg._urls import chain_parts, is_url
from dcimg.errors import (
    InputCollisionError,
)

# --------------------------------------------------------------------------
# Inputs are never touched


# What ``os.stat`` says a file is: (device, inode), or its resolved path
# where the file system has no inode numbers (0 on some Windows volumes).
_Identity = tuple[int, int] | tuple[str, str]


@dataclass(frozen=True)
class _Inputs:
    """The local files a conversion reads, known by identity, not by name.

    Different names can be one file (symbolic and hard links, ``..``, letter
    case on a case-insensitive file system); the device and inode numbers of
    ``os.stat`` cannot differ, so that is what is compared, file system by
    file system, with no guess about how a file system compares names.
    """

    #: Each input file (and the link, when it is reached through one).
    files: dict[_Identity, str] = field(default_factory=dict)
    #: Every folder an input lies in, at any depth, named and resolved.
    holders: dict[_Identity, str] = field(default_factory=dict)
    #: The folders of a series being read: no output may lie inside them.
    folders: dict[_Identity, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files or self.holders or self.folders)

    def add(self, other: _Inputs) -> None:
        """Protect ``other``'s inputs too (a batch of conversions)."""
        self.files.update(other.files)
        self.holders.update(other.holders)
        self.folders.update(other.folders)


def _identity(path: str, follow: bool = True) -> _Identity | None:
    """Return what ``path`` is on disk, or None when nothing is there."""
    try:
        status = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    if status.st_ino:
        return (status.st_dev, status.st_ino)
    return ("path", os.path.normcase(os.path.realpath(path)))


def _chain(folder: str) -> list[_Identity]:
    """Identify ``folder`` and each folder above it, walking up its name.

    The name keeps its ``..`` and links: each step is a folder the system
    passes through (or, resolved first, one the path really lies in).
    """
    found = []
    while True:
        identity = _identity(folder)
        if identity is not None:
            found.append(identity)
        parent = os.path.dirname(folder)
        if parent == folder:
            return found
        folder = parent


def _local_path(name: Any) -> str | None:
    """Return the local path an input names (None: a remote URL, no path)."""
    if not isinstance(name, (str, bytes, os.PathLike)):
        return None
    text = os.fsdecode(name)
    if not is_url(text):
        return os.path.join(os.getcwd(), text)
    # A chain ("simplecache::file:///data/a.dcimg") reads its last part.
    last = chain_parts(text)[-1]
    for scheme in ("file://", "local://"):
        # fsspec's local file system reads these: they are local files.
        if last.lower().startswith(scheme):
            return os.path.join(os.getcwd(), last[len(scheme) :])
    if "://" in last or "::" not in text or re.fullmatch(r"[A-Za-z]+", last):
        return None  # a remote object cannot be a local output
    # fsspec reads a chain's last part without a protocol as a local path
    # ("simplecache::/data/a.dcimg").
    return os.path.join(os.getcwd(), last)


def _inputs_of(source: Any) -> _Inputs:
    """Identify the local files ``source`` reads (and its series' folders).

    A series (whose metadata list its ``files``) is read from folders that
    outputs must stay out of; a single file (``file_path``) only protects
    itself and the folders holding it.
    """
    members = getattr(getattr(source, "metadata", None), "files", None)
    # A file's own path as it opened it (a relative name was made absolute
    # then: the working folder may have changed since).
    own = getattr(source, "location", None) or getattr(source, "file_path", None)
    names = list(members) if members else [own]
    inputs = _Inputs()
    opened = _descriptor_identity(getattr(source, "file_object", None))
    if opened is not None:
        # A file object (its name may be no path: os.fdopen gives an int):
        # the file it reads is protected by identity, and its folders by
        # the path the system gives for the descriptor, where it does.
        identity, path = opened
        inputs.files.setdefault(identity, str(getattr(source, "file_path", path)))
        if path is not None and _identity(path) == identity:
            names.append(path)
    seen: set[str] = set()
    for name in names:
        path = _local_path(name)
        if path is None:
            continue
        shown = path if name is None else os.fsdecode(name)
        link = _identity(path, follow=False)
        target = _identity(path)
        for found in (link, target):
            if found is not None:
                inputs.files.setdefault(found, shown)
        parents = [os.path.dirname(path)]
        if link != target:  # a symbolic link: where it leads is read too
            parents.append(os.path.dirname(os.path.realpath(path)))
        for parent in parents:
            if parent in seen:
                continue  # the members of a series share their folder
            seen.add(parent)
            # Every folder passed through to reach the input, and every
            # folder it really lies in: replacing any would remove it.
            for identity in _chain(parent) + _chain(os.path.realpath(parent)):
                inputs.holders.setdefault(identity, shown)
            if members:
                for folder in (parent, os.path.realpath(parent)):
                    held = _identity(folder)
                    if held is not None:
                        inputs.folders.setdefault(held, parent)
    return inputs


def _descriptor_identity(origin: Any) -> tuple[_Identity, str | None] | None:
    """Identify the file a file object reads, and find its path if possible.

    Returns None for anything but an open file with a descriptor.
    """
    if origin is None or isinstance(origin, (str, bytes, os.PathLike)):
        return None
    try:
        fd = origin.fileno()
        status = os.fstat(fd)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation too
        return None
    if not status.st_ino:
        return None
    path = None
    for link in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
        with contextlib.suppress(OSError):
            path = os.readlink(link)
            break
    if path is None:
        name = getattr(origin, "name", None)
        path = os.path.abspath(name) if isinstance(name, str) else None
    return (status.st_dev, status.st_ino), path


def _existing(path: str) -> str:
    """Return the deepest existing folder (or file) on the way to ``path``."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _refuse_inputs(inputs: _Inputs, path: Path, output: Path | None = None) -> None:
    """Refuse to replace, remove or create ``path`` if that touches an input.

    Every place where the converter replaces, removes, truncates or creates
    something calls this check, and only this one: ``path`` must not be an
    input, hold one at any depth, or lie inside the folder of a series
    being read.

    Raises
    ------
    InputCollisionError
        Naming ``output`` (default ``path``) and the input.
    """
    if not inputs:
        return
    shown = os.fspath(path if output is None else output)
    text = os.path.join(os.getcwd(), os.fspath(path))
    for follow in (False, True):
        identity = _identity(text, follow)
        if identity in inputs.files:
            raise InputCollisionError(shown, inputs.files[identity], "it is the input")
        if identity in inputs.holders:
            raise InputCollisionError(
                shown, inputs.holders[identity], "it is a folder holding the input"
            )
    # Where it is (or would be) created: the folders it really lies in.
    for identity in _chain(os.path.realpath(_existing(text))):
        if identity in inputs.folders:
            raise InputCollisionError(
                shown,
                inputs.folders[identity],
                "it lies inside the folder of the series",
            )
