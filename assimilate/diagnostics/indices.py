"""Climate-extremes indices of a daily record, through xclim: the yearly series that
``diagnose`` (a GEV of each point's annual Rx5day, say) and the report then read.

The indices are those of the Expert Team on Climate Change Detection and Indices (ETCCDI;
Zhang et al., "Indices for monitoring changes in extremes based on daily temperature and
precipitation data", WIREs Climate Change 2, 2011), computed by xclim's indicators, which
check units and frequency and convert them (a flux in kg m-2 s-1 is a depth of water):

========  ==========================================================  ===========
name      what                                                         variable
========  ==========================================================  ===========
rx1day    the largest daily precipitation of the period                 pr
rx5day    the largest 5-day precipitation total                         pr
r95ptot   the fraction of the period's precipitation that falls on      pr
          days above the 95th percentile of the record's wet days
cdd       the longest run of dry days (below 1 mm/day)                  pr
txx       the highest daily maximum temperature                         tasmax
tnn       the lowest daily minimum temperature                          tasmin
========  ==========================================================  ===========

``r95ptot``'s percentile is that of the whole record's wet days (ETCCDI takes a base
period; give the record you want as the base). ``tnn`` is a cold extreme: ``diagnose``
models upper tails, so analyse ``-tnn`` for its return levels.

    ds = indices(xr.open_dataset("pr.nc")["pr"], ["rx1day", "rx5day", "cdd"])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import xarray as xr

__all__ = ["INDICES", "indices", "write_indices"]

WET_DAY = "1 mm/day"
PERCENTILE = 0.95


def _rx1day(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos

    return atmos.max_1day_precipitation_amount(pr=field, freq=freq)


def _rx5day(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos

    return atmos.max_n_day_precipitation_amount(pr=field, window=5, freq=freq)


def _r95ptot(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos
    from xclim.core.units import convert_units_to

    depth = convert_units_to(field, "mm/day", context="hydro")
    wet = depth.where(depth >= convert_units_to(WET_DAY, "mm/day"))
    percentile = wet.quantile(PERCENTILE, dim="time", skipna=True).drop_vars("quantile")
    return atmos.fraction_over_precip_thresh(pr=field,
                                             pr_per=percentile.assign_attrs(units="mm/day"),
                                             thresh=WET_DAY, freq=freq)


def _cdd(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos

    return atmos.maximum_consecutive_dry_days(pr=field, thresh=WET_DAY, freq=freq)


def _txx(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos

    return atmos.tx_max(tasmax=field, freq=freq)


def _tnn(field: xr.DataArray, freq: str) -> xr.DataArray:
    from xclim import atmos

    return atmos.tn_min(tasmin=field, freq=freq)


INDICES: dict[str, Callable[[xr.DataArray, str], xr.DataArray]] = {
    "rx1day": _rx1day, "rx5day": _rx5day, "r95ptot": _r95ptot, "cdd": _cdd,
    "txx": _txx, "tnn": _tnn}
"""Index name -> function of (daily field, resampling frequency)."""


def indices(field: xr.DataArray, names: Sequence[str], freq: str = "YS",
            source: str = "the data") -> xr.Dataset:
    """The indices ``names`` of the daily ``field`` (a ``time`` dim of dates, CF units),
    one variable each, resampled at ``freq`` (``YS`` years, ``QS-DEC`` seasons,
    ``MS`` months); refused in one line where a name is unknown or xclim refuses the field
    (units of another quantity, a time step that is not daily)."""
    unknown = [name for name in names if name not in INDICES]
    if unknown or not names:
        raise ValueError(f"unknown index {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(INDICES)}")
    if "time" not in field.dims:
        raise ValueError(f"'{field.name}' of {source} has no 'time' dim (its dims: "
                         f"{', '.join(map(str, field.dims))}); indices need daily data")
    import xclim

    out = {}
    with xclim.set_options(cf_compliance="log", data_validation="raise"), \
            warnings.catch_warnings():
        # xclim's notes on cell_methods and standard_name, pandas' deprecations inside
        # xclim, and the all-NaN points of a land-only field (the sea stays NaN)
        for category in (UserWarning, FutureWarning, DeprecationWarning, RuntimeWarning):
            warnings.simplefilter("ignore", category)
        for name in names:
            try:
                out[name] = INDICES[name](field, freq).rename(name)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ValueError(f"index {name} of '{field.name}' in {source}: "
                                 f"{reason}") from None
    return xr.Dataset(out, attrs={"source": source, "indices_by": f"xclim {xclim.__version__}",
                                  "frequency": freq})


def write_indices(store: str | os.PathLike, out: str | os.PathLike, index: Sequence[str],
                  variable: str | None = None, freq: str = "YS",
                  overwrite: bool = False) -> xr.Dataset:
    """``indices`` of ``variable`` of the Zarr store or NetCDF file ``store``, written to
    the NetCDF file ``out`` through the guarded write path (``assimilate indices``)."""
    from assimilate.diagnostics.layout import layout, open_data
    from pde.io.output import claim

    with claim(out, kind="file", inputs=[store], overwrite=overwrite) as output:
        field, _ = layout(open_data(store), variable, ["time"], source=str(store))
        found = indices(field, index or (), freq, source=str(store))
        with output.atomic() as scratch:
            found.to_netcdf(scratch)
    return found
