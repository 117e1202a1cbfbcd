"""Reduced-resolution levels: the 2 x 2 mean, level by level."""

from __future__ import annotations

from typing import Any

import numpy as np

# --------------------------------------------------------------------------
# Pyramids


def _halve(pixels: np.ndarray) -> np.ndarray:
    """Mean of every 2 x 2 block of the last two axes (same dtype).

    An odd last row or column is averaged with itself, so every level is
    ``ceil(size / 2)`` and edge pixels keep their value. Integers round half
    up.
    """
    height, width = pixels.shape[-2:]
    if height % 2 or width % 2:
        pad = [(0, 0)] * (pixels.ndim - 2) + [(0, height % 2), (0, width % 2)]
        pixels = np.pad(pixels, pad, mode="edge")
    if pixels.dtype.kind == "f":
        wide: Any = np.float64
    elif pixels.dtype.itemsize <= 2:
        # Four 16-bit values sum exactly in 32 bits: half the memory traffic
        # of 64-bit sums, which matters on 100 GB inputs.
        wide = np.int32
    else:
        wide = np.int64
    # Rows first (contiguous halves), then columns of the half-height sums.
    rows = pixels[..., 0::2, :].astype(wide)
    rows += pixels[..., 1::2, :]
    total = rows[..., 0::2] + rows[..., 1::2]
    if pixels.dtype.kind == "f":
        total /= 4
    else:
        total += 2
        total >>= 2  # floor division by 4: halves round up
    return np.asarray(total.astype(pixels.dtype))


def _levels_of(pixels: np.ndarray, count: int) -> list[np.ndarray]:
    """``pixels`` and its ``count`` successive halvings."""
    levels = [pixels]
    for _ in range(count):
        levels.append(_halve(levels[-1]))
    return levels
