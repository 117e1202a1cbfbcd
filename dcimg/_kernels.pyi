"""Type stubs for the compiled pixel kernels :mod:`dcimg._kernels`."""

from typing import Any

import numpy as np

DST_KINDS: dict[str, int]
PATCH_LEAVE: int
PATCH_RESTORE: int
PATCH_ZERO: int

class StridedImage:
    """A 3-D image in a read-only byte buffer, read with basic indexing."""

    offset: int
    depth: int
    def __init__(
        self,
        buffer: Any,
        offset: int,
        shape: tuple[int, int, int],
        strides: tuple[int, int, int],
        depth: int,
        patch: tuple[int, int, int, int, int] | None = None,
        max_threads: int = 1,
        parallel_bytes: int = ...,
    ) -> None: ...
    @property
    def shape(self) -> tuple[int, int, int]: ...
    def take(
        self, key: Any, kind: int, out: np.ndarray | None = None, mode: int = ...
    ) -> Any: ...
    def selection(
        self, key: Any
    ) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]: ...
    def touches_patch(self, key: Any) -> bool: ...
