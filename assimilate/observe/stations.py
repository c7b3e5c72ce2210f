"""Fixed random stations: a reproducible set of distinct grid points."""

from __future__ import annotations

import numpy as np

from assimilate.observe.operator import Operator, point_operator

__all__ = ["stations"]


def stations(space: tuple[int, ...], coordinates: list[np.ndarray], fraction: float,
             seed: int) -> Operator:
    """Observe ``max(1, round(fraction * n_grid))`` distinct grid points drawn without
    replacement by ``numpy.random.default_rng(seed)``, in increasing flat order.

    The same ``(space, fraction, seed)`` always gives the same stations, so a regime's
    network is fixed for every observation time and trajectory.

    Args:
        space: the grid shape ``(x,)`` or ``(y, x)``.
        coordinates: one 1-D array of physical positions per dim (fills ``locations``).
        fraction: share of the grid observed, in (0, 1].
        seed: seed of the draw.
    """
    space = tuple(int(n) for n in space)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must lie in (0, 1]")
    n_grid = int(np.prod(space))
    count = max(1, round(fraction * n_grid))
    flat = np.sort(np.random.default_rng(seed).choice(n_grid, size=count, replace=False))
    return point_operator(space, coordinates, flat)
