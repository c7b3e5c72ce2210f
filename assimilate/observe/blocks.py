"""Block averages: coarse sensors, each the mean over a block of ``size`` points per dim."""

from __future__ import annotations

import numpy as np

from assimilate.observe.operator import Operator, check_grid

__all__ = ["blocks"]


def blocks(space: tuple[int, ...], coordinates: list[np.ndarray], size: int) -> Operator:
    """Average over non-overlapping blocks of ``size`` points along every dim.

    Dim ``d`` holds ``space[d] // size`` blocks starting at index 0; the trailing
    ``space[d] % size`` points, if any, are not observed. Each observation has support
    ``size ** ndim`` with equal weights ``size ** -ndim``; its location is the block centre
    (the mean of the block's coordinates).

    Args:
        space: the grid shape ``(x,)`` or ``(y, x)``.
        coordinates: one 1-D array of physical positions per dim.
        size: block side in grid points, 1 <= size <= the smallest dim.
    """
    space = tuple(int(n) for n in space)
    coordinates = check_grid(space, coordinates)
    if not 1 <= size <= min(space):
        raise ValueError(f"size={size} must lie in 1..{min(space)} for the grid {space}")
    ndim = len(space)
    corners = _lattice([n // size for n in space])  # (n_obs, ndim) block numbers
    offsets = _lattice([size] * ndim)  # (support, ndim) positions inside a block
    where = corners[:, None, :] * size + offsets[None]  # (n_obs, support, ndim)
    indices = np.ravel_multi_index(tuple(np.moveaxis(where, -1, 0)), space)
    weights = np.full(indices.shape, float(size) ** -ndim)
    locations = np.stack([coordinates[d][where[..., d]].mean(-1) for d in range(ndim)], -1)
    return Operator(indices, weights, space, locations=locations)


def _lattice(counts: list[int]) -> np.ndarray:
    """All integer points of ``prod(counts)`` in C order, ``(prod(counts), len(counts))``."""
    axes = np.meshgrid(*[np.arange(n) for n in counts], indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=-1)
