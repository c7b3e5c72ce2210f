"""Climate-extremes indices of a daily record: the yearly series that ``diagnose`` (a GEV of
each point's annual Rx5day, say) and the report then read.

The indices are those of the Expert Team on Climate Change Detection and Indices (ETCCDI;
Zhang et al., "Indices for monitoring changes in extremes based on daily temperature and
precipitation data", WIREs Climate Change 2, 2011), computed with xarray's resampling and
rolling windows, units through pint (:mod:`assimilate.diagnostics.units`: a flux in
kg m-2 s-1 is a depth of liquid water):

========  ==========================================================  ===========
name      what                                                         variable
========  ==========================================================  ===========
rx1day    the largest daily precipitation of the period (mm/day)        precipitation
rx5day    the largest 5-day precipitation total (mm; a window counts    precipitation
          in the period of its last day)
r95ptot   the fraction of the period's wet-day precipitation that       precipitation
          falls on days above the 95th percentile of the record's
          wet days (days of at least 1 mm)
cdd       the longest run of dry days (below 1 mm/day) within the      precipitation
          period
txx       the highest daily maximum temperature                         temperature
tnn       the lowest daily minimum temperature                          temperature
========  ==========================================================  ===========

``r95ptot``'s percentile is that of the whole record's wet days (ETCCDI takes a base
period; give the record you want as the base). ``tnn`` is a cold extreme: ``diagnose``
models upper tails, so analyse ``-tnn`` for its return levels.

Why not xclim, which computes these too: it brings numba, and with numba installed
scoringrules (the comparison's twCRPS) loads its numba backend in every process, which made
an interrupted run on local Dask workers crash at exit (SIGSEGV in 1 of 4 tries under
load, none of 6 without numba). The definitions above are a few lines of xarray each;
tests check them against direct computations.

    ds = indices(xr.open_dataset("pr.nc")["pr"], ["rx1day", "rx5day", "cdd"])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from assimilate.diagnostics.units import convert, dimension

__all__ = ["INDICES", "indices", "write_indices"]

WET_DAY = 1.0  # mm/day
PERCENTILE = 0.95
DAY = np.timedelta64(1, "D")


def _depth(field: xr.DataArray, source: str) -> xr.DataArray:
    return convert(field, "mm/day", source)


def _rx1day(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    out = _depth(field, source).resample(time=freq).max()
    return out.assign_attrs(units="mm/day", long_name="largest 1-day precipitation")


def _rx5day(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    total = _depth(field, source).rolling(time=5).sum()  # NaN until five days are in
    out = total.resample(time=freq).max()
    return out.assign_attrs(units="mm", long_name="largest 5-day precipitation total")


def _r95ptot(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    depth = _depth(field, source)
    wet = depth.where(depth >= WET_DAY)
    with warnings.catch_warnings():  # points without data (the sea of a land product)
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        percentile = wet.quantile(PERCENTILE, dim="time").drop_vars("quantile")
    heavy = wet.where(wet > percentile).resample(time=freq).sum(min_count=1).fillna(0.0)
    total = wet.resample(time=freq).sum(min_count=1)
    out = (heavy / total).where(total > 0)
    return out.assign_attrs(units="1", long_name="fraction of wet-day precipitation above "
                                                 "the 95th wet-day percentile")


def _longest_run(dry: xr.DataArray) -> xr.DataArray:
    """The longest run of True along ``time``: at each day, its distance from the last
    False day (a running maximum of their positions), maximised."""

    def longest(values: np.ndarray) -> np.ndarray:
        position = np.arange(values.shape[-1])
        last_wet = np.maximum.accumulate(np.where(values, -1, position), axis=-1)
        return (position - last_wet).max(axis=-1)

    if dry.chunks:  # a lazy record: whole along time, chunked over space
        dry = dry.chunk({"time": -1})
    return xr.apply_ufunc(longest, dry, input_core_dims=[["time"]], dask="parallelized",
                          output_dtypes=[np.int64])


def _cdd(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    depth = _depth(field, source)
    out = (depth < WET_DAY).resample(time=freq).map(_longest_run)
    out = out.where(depth.notnull().resample(time=freq).any())  # no data: no index
    return out.assign_attrs(units="days", long_name="longest run of dry days (< 1 mm/day)")


def _temperature(field: xr.DataArray, source: str) -> xr.DataArray:
    units = str(field.attrs.get("units", "")).strip()
    if dimension(units) != "[temperature]":
        raise ValueError(f"'{field.name}' of {source} is in '{units or 'no units'}', not a "
                         "temperature")
    return field


def _txx(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    out = _temperature(field, source).resample(time=freq).max()
    return out.assign_attrs(units=field.attrs["units"], long_name="highest daily maximum")


def _tnn(field: xr.DataArray, freq: str, source: str) -> xr.DataArray:
    out = _temperature(field, source).resample(time=freq).min()
    return out.assign_attrs(units=field.attrs["units"], long_name="lowest daily minimum")


INDICES: dict[str, Callable[[xr.DataArray, str, str], xr.DataArray]] = {
    "rx1day": _rx1day, "rx5day": _rx5day, "r95ptot": _r95ptot, "cdd": _cdd,
    "txx": _txx, "tnn": _tnn}
"""Index name -> function of (daily field, resampling frequency, source)."""


def _check_daily(field: xr.DataArray, source: str) -> None:
    if "time" not in field.dims or not np.issubdtype(field["time"].dtype, np.datetime64):
        raise ValueError(f"'{field.name}' of {source} has no 'time' dim of dates (its dims: "
                         f"{', '.join(map(str, field.dims))}); indices need daily data")
    steps = np.unique(np.diff(field["time"].values))
    if len(steps) != 1 or steps[0] != DAY:
        raise ValueError(f"'{field.name}' of {source} is not daily (time steps "
                         f"{', '.join(str(s.astype('timedelta64[h]')) for s in steps[:3])}); "
                         "resample it to days first")


def indices(field: xr.DataArray, names: Sequence[str], freq: str = "YS",
            source: str = "the data") -> xr.Dataset:
    """The indices ``names`` of the daily ``field`` (a ``time`` dim of dates, CF units),
    one variable each, resampled at ``freq`` (``YS`` years, ``QS-DEC`` seasons, ``MS``
    months); refused in one line where a name is unknown, the field is not daily or its
    units are not those of the index's variable."""
    unknown = [name for name in names if name not in INDICES]
    if unknown or not names:
        raise ValueError(f"unknown index {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(INDICES)}")
    _check_daily(field, source)
    out = {}
    for name in names:
        try:
            out[name] = INDICES[name](field, freq, source).rename(name)
        except ValueError as error:
            raise ValueError(f"index {name}: {str(error).splitlines()[0]}") from None
    return xr.Dataset(out, attrs={"source": source, "frequency": freq,
                                  "indices": "ETCCDI definitions (assimilate.diagnostics."
                                             "indices)"})


def write_indices(store: str | os.PathLike, out: str | os.PathLike, index: Sequence[str],
                  variable: str | None = None, freq: str = "YS",
                  overwrite: bool = False) -> xr.Dataset:
    """``indices`` of ``variable`` of the Zarr store or NetCDF file ``store``, written to
    the NetCDF file ``out`` through the guarded write path (``assimilate indices``)."""
    from assimilate.diagnostics.layout import layout, open_data
    from pde.io.output import claim

    with claim(out, kind="file", inputs=[store], overwrite=overwrite) as output:
        field, _ = layout(open_data(store), variable, ["time"], source=str(store))
        with warnings.catch_warnings():  # points without data stay NaN
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            found = indices(field, index or (), freq, source=str(store)).compute()
        with output.atomic() as scratch:
            found.to_netcdf(scratch)
    return found
