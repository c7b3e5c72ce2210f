"""Strided observations: every ``stride``-th grid point along each dim (a regular lattice)."""

from __future__ import annotations

import numpy as np

from assimilate.observe.operator import Operator, point_operator

__all__ = ["strided"]


def strided(space: tuple[int, ...], coordinates: list[np.ndarray], stride: int,
            offset: int = 0) -> Operator:
    """Observe the points ``offset, offset + stride, ...`` along every dim.

    ``stride`` is per direction: on a ``(32, 32)`` grid stride 4 observes ``8 x 8 = 64``
    points. Observations are ordered like the flattened grid (C order, ``x`` fastest).

    Args:
        space: the grid shape ``(x,)`` or ``(y, x)``.
        coordinates: one 1-D array of physical positions per dim (fills ``locations``).
        stride: spacing in grid points, 1 <= stride <= the smallest dim.
        offset: the first observed index along each dim, 0 <= offset < stride.
    """
    space = tuple(int(n) for n in space)
    if not 1 <= stride <= min(space):
        raise ValueError(f"stride={stride} must lie in 1..{min(space)} for the grid {space}")
    if not 0 <= offset < stride:
        raise ValueError(f"offset={offset} must lie in 0..{stride - 1} (below the stride)")
    axes = [np.arange(offset, n, stride) for n in space]
    where = np.meshgrid(*axes, indexing="ij")
    flat = np.ravel_multi_index([w.ravel() for w in where], space)
    return point_operator(space, coordinates, flat)
