"""Type stubs for the compiled pixel kernels :mod:`dcimg._kernels`."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

DST_KINDS: dict[str, int]
LEAVE: int
RESTORE: int
ZERO: int
OPENMP: bool

def last_copy_threads() -> int: ...
def last_copy_held_gil() -> bool | None: ...

class BufferFault(OSError):
    """Pages of a mapped buffer went missing while it was read."""

def install_fault_guard() -> None: ...
def select(
    key: Any, shape: tuple[int, int, int]
) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]: ...
def gather(
    buffer: Any,
    offset: int,
    stride: int,
    count: int,
    itemsize: int,
    confirm: Callable[[int, bool], object] | None = None,
) -> bytes: ...

@disjoint_base
class StridedImage:
    """A 3-D image in a read-only byte buffer, read with basic indexing."""

    offset: int
    depth: int
    # Built by __cinit__ (Cython): the arguments go to __new__.
    def __new__(
        cls,
        buffer: Any,
        offset: int,
        shape: tuple[int, int, int],
        strides: tuple[int, int, int],
        depth: int,
        stored: tuple[int, int, int, int, int] | None = None,
        max_threads: int = 1,
        parallel_bytes: int = ...,
        confirm: Callable[[int, bool], object] | None = None,
        stored_frames: int = -1,
    ) -> Self: ...
    @property
    def shape(self) -> tuple[int, int, int]: ...
    def take(
        self,
        key: Any,
        kind: int,
        out: np.ndarray | None = None,
        mode: int = ...,
        threads: int = 0,
    ) -> Any: ...
    def use_values(self, values: Any) -> bool: ...
    def view(
        self, key: Any, keep_overwritten: bool = False
    ) -> npt.NDArray[Any] | None: ...
