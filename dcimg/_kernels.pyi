"""Type stubs for the compiled pixel kernels :mod:`dcimg._kernels`."""

from typing import Any

DST_KINDS: dict[str, int]

def copy_convert(
    src: Any,
    offset: int,
    n0: int,
    n1: int,
    n2: int,
    s0: int,
    s1: int,
    s2: int,
    depth: int,
    dst: Any,
    kind: int,
) -> None: ...
def put_stored_pixels(
    dst: Any,
    kind: int,
    n0: int,
    n1: int,
    n2: int,
    out_row: int,
    out_col: int,
    count: int,
    src: Any,
    stored_offset: int,
    stored_stride: int,
    p0: int,
    pstep: int,
    npx: int,
    depth: int,
    zero: bool,
) -> None: ...
