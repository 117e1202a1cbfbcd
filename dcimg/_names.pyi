"""Type stubs for :mod:`dcimg._names` (a series' file names, in C)."""

import numpy as np
import numpy.typing as npt

COUNTER_DIGITS: int

def dcimg_names(
    names: list[str], folder: str = "", hidden: bool = True
) -> list[str]: ...
def split_counters(
    paths: list[str], pieces: tuple[str, ...], separators: str
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]: ...
