"""Type stubs for :mod:`dcimg._mapping` (descriptor-free read-only maps)."""

from typing_extensions import Self, disjoint_base

RANDOM: int
NORMAL: int

@disjoint_base
class ReadOnlyMap:
    """A read-only shared mapping of a whole file."""

    length: int
    # Built by __cinit__ (Cython): the arguments go to __new__.
    def __new__(cls, fd: int, length: int) -> Self: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...
    def advise(self, offset: int, length: int, advice: int) -> None: ...
