"""A synthetic daily precipitation record on a latitude/longitude grid, for examples and tests.

Each day is wet with probability ``WET_FRACTION`` (else exactly 0 mm); wet-day amounts are
1 mm plus a generalised Pareto excess whose shape grows from 0 in the south to 0.25 in the
north (heavier downpours) and whose scale is largest in the middle of the domain. The
wet-day amounts of the northern half grow by 0.5 % a year, a trend to find. The layout is
that of a CMIP or E-OBS extract: ``pr (time, lat, lon)`` in mm/day with a daily datetime
axis and CF units on the coordinates. ``cf=True`` writes it as CF model output does: a mass
flux in kg m-2 s-1 (liquid water, 1 mm/day = 1/86400 kg m-2 s-1) over land only, the sea
west of a coastline NaN, as in a land-only observational product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["WET_FRACTION", "precipitation"]

WET_FRACTION = 0.35


SECONDS_PER_DAY = 86400.0


def precipitation(years: int = 30, seed: int = 0, n_lat: int = 16, n_lon: int = 32, *,
                  cf: bool = False) -> xr.Dataset:
    """``years`` of daily ``pr`` on ``n_lat`` x ``n_lon`` points from 1991 on (``cf``: in
    kg m-2 s-1, NaN at sea)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1991-01-01", f"{1990 + years}-12-31", freq="D")
    lat = np.linspace(35.0, 65.0, n_lat)
    lon = np.linspace(-10.0, 30.0, n_lon)
    north = (lat - lat[0]) / (lat[-1] - lat[0])  # 0 in the south, 1 in the north
    shape = (0.25 * north)[:, None] * np.ones(n_lon)
    middle = np.exp(-(((lon - lon.mean()) / 15.0) ** 2))
    scale = 4.0 + 4.0 * middle[None, :] * np.ones((n_lat, 1))
    drift = 1.0 + 0.005 * np.outer(time.year - time.year[0], north >= 0.5)  # (time, lat)
    uniform = 1.0 - rng.random((time.size, n_lat, n_lon))  # in (0, 1]: no infinite amount
    wet = rng.random((time.size, n_lat, n_lon)) < WET_FRACTION
    tail = np.where(shape > 0, shape, 1.0)  # the exponential limit where the shape is 0
    amount = np.where(shape > 0, scale / tail * np.expm1(-tail * np.log(uniform)),
                      -scale * np.log(uniform))  # the inverse GPD distribution function
    amount = amount * drift[:, :, None]
    pr = np.where(wet, 1.0 + amount, 0.0)
    units = "mm/day"
    if cf:
        sea = lon[None, :] < -4.0 + 0.2 * (lat[:, None] - lat[0])  # a coast to the west
        pr, units = np.where(sea, np.nan, pr / SECONDS_PER_DAY), "kg m-2 s-1"
    return xr.Dataset(
        {"pr": (("time", "lat", "lon"), pr.astype(np.float32),
                {"units": units, "long_name": "daily precipitation"})},
        coords={"time": time,
                "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"title": "synthetic daily precipitation (assimilate.diagnostics.synthetic)"})
