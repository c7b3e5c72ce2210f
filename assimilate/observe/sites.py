"""Stations between grid points: observations at given latitudes and longitudes (or any
positions on a bounded grid), each the bilinear interpolation of its four surrounding grid
points.

A station network is either read from a file (a CSV with ``latitude`` and ``longitude``
columns, or a NetCDF file with those variables, one entry per station) or drawn uniformly
over the domain from a seed. ``withheld`` more stations are drawn in the same draw, so they
are never among the assimilated ones: the verification set that operational centres keep
back to score an analysis against observations it never saw.

The grid is bounded (imported regional data): a station outside the first and last grid
coordinate of a dim is refused, naming it; nothing wraps around.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assimilate.observe.operator import Operator, check_grid

__all__ = ["bilinear", "draw_sites", "read_sites"]


def bilinear(space: tuple[int, ...], coordinates: list[np.ndarray],
             locations: np.ndarray) -> Operator:
    """H of point observations at ``locations (n_obs, ndim)`` (physical positions ordered
    like the grid dims, ``(latitude, longitude)`` in 2-D): (multi)linear interpolation
    between the ``2 ** ndim`` surrounding grid points of a bounded grid with rising
    ``coordinates`` (one 1-D array per dim)."""
    coordinates = check_grid(space, coordinates)
    locations = np.atleast_2d(np.asarray(locations, dtype=np.float64))
    ndim = len(space)
    if locations.shape[1:] != (ndim,):
        raise ValueError(f"locations {locations.shape} must be (n_obs, {ndim})")
    below, fraction = [], []
    for d, coordinate in enumerate(coordinates):
        position = locations[:, d]
        outside = np.flatnonzero((position < coordinate[0]) | (position > coordinate[-1]))
        if outside.size:
            i = int(outside[0])
            raise ValueError(f"station {i} at {_where(locations[i])} lies outside the grid "
                             f"(dim {d} runs from {coordinate[0]:g} to {coordinate[-1]:g})")
        index = np.clip(np.searchsorted(coordinate, position, side="right") - 1, 0,
                        len(coordinate) - 2)
        below.append(index)
        fraction.append((position - coordinate[index])
                        / (coordinate[index + 1] - coordinate[index]))
    below, fraction = np.stack(below, -1), np.stack(fraction, -1)  # (n_obs, ndim)
    corners = np.array(np.meshgrid(*[[0, 1]] * ndim, indexing="ij")).reshape(ndim, -1).T
    nodes = below[:, None, :] + corners[None]  # (n_obs, 2**ndim, ndim)
    weights = np.where(corners[None], fraction[:, None, :], 1 - fraction[:, None, :]).prod(-1)
    indices = np.ravel_multi_index(tuple(np.moveaxis(nodes, -1, 0)), tuple(space))
    return Operator(indices, weights, tuple(space), locations=locations)


def draw_sites(coordinates: list[np.ndarray], count: int, seed: int,
               withheld: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` assimilated and ``withheld`` verification stations ``(n, ndim)``, drawn
    together, uniformly over the box the grid spans, by ``numpy.random.default_rng(seed)``:
    the same arguments always give the same two disjoint networks."""
    if count < 1 or withheld < 0:
        raise ValueError(f"count={count} must be >= 1 and withheld={withheld} >= 0")
    low = np.array([c[0] for c in coordinates], dtype=np.float64)
    high = np.array([c[-1] for c in coordinates], dtype=np.float64)
    drawn = low + (high - low) * np.random.default_rng(seed).random((count + withheld, len(low)))
    return drawn[:count], drawn[count:]


def read_sites(path: str | Path) -> np.ndarray:
    """Station positions ``(n, 2)`` as ``(latitude, longitude)`` from a CSV file (columns
    ``latitude`` and ``longitude``, or ``lat`` and ``lon``; any others are ignored) or a
    NetCDF file (variables of those names, one value per station)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"station file '{path}' does not exist")
    if path.suffix.lower() == ".csv":
        import pandas as pd

        try:
            table = pd.read_csv(path)
        except Exception as error:  # noqa: BLE001 - any parser failure: not a readable CSV
            raise ValueError(f"station file '{path}' is not a readable CSV: {error}") from None
        columns = {str(c).strip().lower(): c for c in table.columns}
        values = {key: table[columns[key]].to_numpy() for key in columns}
    else:
        import xarray as xr

        try:
            with xr.open_dataset(path) as ds:
                values = {str(k).lower(): ds[k].values for k in ds.variables}
        except Exception as error:  # noqa: BLE001 - any reader failure
            raise ValueError(f"station file '{path}' cannot be read as CSV (.csv) or NetCDF: "
                             f"{error}") from None
    found = [next((values[k] for k in names if k in values), None)
             for names in (("latitude", "lat"), ("longitude", "lon"))]
    if any(v is None for v in found):
        raise ValueError(f"station file '{path}' needs 'latitude' and 'longitude' columns "
                         f"(or 'lat' and 'lon'); it has: {', '.join(values) or 'none'}")
    try:
        sites = np.stack([np.asarray(v, dtype=np.float64).ravel() for v in found], axis=-1)
    except ValueError:
        raise ValueError(f"station file '{path}': latitude and longitude must be numbers, one "
                         "per station") from None
    if len(sites) == 0 or not np.isfinite(sites).all():
        raise ValueError(f"station file '{path}' holds no stations or non-finite positions")
    return sites


def _where(location: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in location) + ")"
