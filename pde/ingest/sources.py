"""Reading one source file: its format, its variable and its time, latitude and longitude
axes from CF metadata (see :mod:`pde.ingest`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALLOWED", "IMPORT_FORMATS", "Field", "engine", "hours", "iso", "read"]

IMPORT_FORMATS = {".nc": "netcdf4", ".nc4": "netcdf4", ".netcdf": "netcdf4", ".cdf": "netcdf4",
                  ".grib": "cfgrib", ".grb": "cfgrib", ".grib1": "cfgrib", ".grib2": "cfgrib",
                  ".grb2": "cfgrib", ".zarr": "zarr"}
ALLOWED = "NetCDF (.nc), GRIB (.grib, .grb, .grib2) or a Zarr store (a directory)"

@dataclasses.dataclass
class Field:
    """One source's variable as (time, latitude, longitude), latitude and longitude rising."""

    source: Path
    values: Any  # xarray.DataArray, lazily read
    times: np.ndarray  # datetime64[ns]
    latitude: np.ndarray
    longitude: np.ndarray
    units: str | None
    attribution: str | None


def engine(source: Path) -> str:
    if source.is_dir():
        if (source / "zarr.json").is_file() or (source / ".zmetadata").is_file() \
                or (source / ".zgroup").is_file():
            return "zarr"
        raise ValueError(f"'{source}' is a directory but not a Zarr store; allowed: {ALLOWED}")
    if not source.exists():
        raise FileNotFoundError(f"source '{source}' does not exist")
    kind = IMPORT_FORMATS.get(source.suffix.lower())
    if kind is None or kind == "zarr":
        raise ValueError(f"'{source}': unknown format '{source.suffix}'; allowed: {ALLOWED}")
    return kind


def _open(source: Path):
    import xarray as xr

    kind = engine(source)
    options: dict[str, Any] = {"engine": kind}
    if kind == "cfgrib":
        options["backend_kwargs"] = {"indexpath": ""}  # never write an index beside the input
    try:
        return xr.open_dataset(source, **options, chunks=None)
    except Exception as error:  # noqa: BLE001 - any reader failure: not readable as that format
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"'{source}' cannot be read as {kind}: {message}") from None


def _pick_variable(ds, source: Path, variable: str | None) -> str:
    fields = [name for name, array in ds.data_vars.items() if array.ndim >= 3]
    if variable is None:
        if len(fields) != 1:
            raise ValueError(f"'{source}' holds {len(fields)} gridded variables "
                             f"({', '.join(map(str, fields)) or 'none'}); choose one with "
                             "--variable")
        return str(fields[0])
    if variable not in ds.data_vars:
        raise ValueError(f"'{source}' has no variable '{variable}'; it holds: "
                         f"{', '.join(map(str, ds.data_vars)) or 'none'}")
    return variable


def _coordinate(ds, array, source: Path, key: str, what: str):
    """The 1-D coordinate of ``array`` that CF metadata names ``key`` (``latitude``,
    ``longitude``, ``time``), and the dim it runs along."""
    names = list(ds.cf.coordinates.get(key, []))
    if key == "time":
        names += [n for n in ds.cf.axes.get("T", []) if n not in names]
    for name in names:
        coordinate = ds[name]
        if coordinate.ndim == 1 and coordinate.dims[0] in array.dims:
            return coordinate, coordinate.dims[0]
    raise ValueError(f"'{source}': no {what} axis along the dims {list(array.dims)} of "
                     f"'{array.name}' (looked for CF standard_name, units and axis attributes "
                     f"and the usual names); found coordinates: "
                     f"{', '.join(map(str, ds.coords)) or 'none'}")


def read(source: Path, variable: str | None) -> Field:
    import cf_xarray  # noqa: F401 - registers the .cf accessor

    ds = _open(source)
    ds = ds.cf.guess_coord_axis()  # where a file lacks CF attributes, by the usual names
    name = _pick_variable(ds, source, variable)
    array = ds[name]
    time, time_dim = _coordinate(ds, array, source, "time", "time")
    latitude, lat_dim = _coordinate(ds, array, source, "latitude", "latitude")
    longitude, lon_dim = _coordinate(ds, array, source, "longitude", "longitude")
    if len({time_dim, lat_dim, lon_dim}) < 3:
        raise ValueError(f"'{source}': time, latitude and longitude of '{name}' share a dim; "
                         "allowed: one dim each (a regular latitude-longitude grid)")
    extra = [d for d in array.dims if d not in (time_dim, lat_dim, lon_dim)]
    wide = [f"{d} ({array.sizes[d]})" for d in extra if array.sizes[d] != 1]
    if wide:
        raise ValueError(f"'{source}': '{name}' has more dims than time, latitude and "
                         f"longitude: {', '.join(wide)}; allowed: extra dims of length 1")
    array = array.isel({d: 0 for d in extra}, drop=True).transpose(time_dim, lat_dim, lon_dim)
    if not np.issubdtype(time.dtype, np.datetime64):
        raise ValueError(f"'{source}': time axis '{time.name}' holds {time.dtype} values, not "
                         "calendar times (CF units such as 'hours since 2019-03-01')")
    lat, lon = (np.asarray(c.values, dtype=np.float64) for c in (latitude, longitude))
    for label, values in (("latitude", lat), ("longitude", lon)):
        steps = np.diff(values)
        if len(values) < 2 or not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"'{source}': {label} is not strictly monotonic; allowed: a "
                             "regular grid")
    array = array.isel({lat_dim: np.argsort(lat), lon_dim: np.argsort(lon)})
    attribution = ds.attrs.get("attribution") or array.attrs.get("attribution")
    return Field(source, array, np.asarray(time.values, dtype="datetime64[ns]"),
                  np.sort(lat), np.sort(lon), array.attrs.get("units"), attribution)

def iso(time: np.datetime64) -> str:
    return str(np.datetime_as_string(time, unit="m"))


def hours(delta: np.timedelta64) -> float:
    return float(delta / np.timedelta64(1, "s")) / 3600.0

