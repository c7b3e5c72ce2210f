"""The field to diagnose and the roles of its dims: time, space and pooled realisations.

``open_data`` opens a Zarr store or NetCDF file lazily; ``layout`` picks the field of a
Dataset and names its dims' roles (``Layout``): one *time* dim (``time`` by default),
*space* dims (``y``, ``x``, ``lat``, ``lon``, ``latitude``, ``longitude`` by default) and
*realisation* dims (all others: trajectories, ensemble members, samples), which the
diagnostics pool as independent copies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["SPACE_NAMES", "Layout", "layout", "open_data"]

SPACE_NAMES = ("y", "x", "lat", "lon", "latitude", "longitude")


class Layout:
    """The roles of a field's dims: time, space, and pooled realisations."""

    def __init__(self, field: xr.DataArray, time: str | None, space: Sequence[str]) -> None:
        self.time = time
        self.space = tuple(space)
        self.realisation = tuple(d for d in field.dims if d != time and d not in self.space)

    def attrs(self) -> dict[str, str]:
        return {"time_dim": self.time or "", "space_dims": json.dumps(list(self.space)),
                "realisation_dims": json.dumps(list(self.realisation))}


def open_data(path: str | Path) -> xr.Dataset:
    """Open a Zarr store or NetCDF file lazily (Dask-backed); our trajectory stores are
    validated and only their finished trajectories are used."""
    from pde.io.errors import IntegrityError
    from pde.io.store import open_store, open_trajectories

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data at '{path}'")
    try:
        if path.is_file():
            return xr.open_dataset(path, chunks={})
        ds = open_store(path)
    except IntegrityError:  # a damaged store: its own message names what and where
        raise
    except Exception as error:  # noqa: BLE001 - report any reader failure with the path
        raise ValueError(f"'{path}' is neither a Zarr store nor a NetCDF file that xarray "
                         f"can read: {error}") from None
    if ds.attrs.get("schema", "").startswith("assimilate.trajectories"):
        return open_trajectories(path, finished_only=True)
    return ds


def layout(ds: xr.Dataset | xr.DataArray, variable: str | None = None,
           dims: Sequence[str] | None = None, *, source: str = "the data"
           ) -> tuple[xr.DataArray, Layout]:
    """The field to diagnose and its dims' roles.

    ``variable`` defaults to the only numeric non-boolean data variable. ``dims`` names the
    time dim first, then the space dims (``""`` first for data without time); by default
    ``time`` and the space dims found among ``SPACE_NAMES``.
    """
    if isinstance(ds, xr.DataArray):
        field = ds
    else:
        numeric = [name for name, v in ds.data_vars.items()
                   if v.ndim and np.issubdtype(v.dtype, np.number) and v.dtype != bool]
        if variable is None:
            if len(numeric) != 1:
                raise ValueError(f"{source} has {len(numeric)} numeric variables "
                                 f"({', '.join(map(str, numeric)) or 'none'}); choose one with "
                                 "--var NAME")
            variable = str(numeric[0])
        if variable not in ds.data_vars:
            raise ValueError(f"{source} has no variable '{variable}'; its variables are: "
                             f"{', '.join(map(str, ds.data_vars)) or 'none'}")
        field = ds[variable]
        if variable not in numeric:
            raise ValueError(f"variable '{variable}' of {source} is not a numeric field "
                             f"(dtype {field.dtype}, dims {field.dims})")
    if field.size == 0:
        raise ValueError(f"variable '{field.name}' of {source} holds no values (sizes "
                         f"{dict(field.sizes)}); a trajectory store with no finished "
                         "trajectory has none: finish it with `assimilate simulate`")
    if dims is None:
        time = "time" if "time" in field.dims else None
        space = [d for d in field.dims if d in SPACE_NAMES]
    else:
        dims = list(dims)
        missing = [d for d in dims if d and d not in field.dims]
        if not dims or missing:
            raise ValueError(f"variable '{field.name}' of {source} lacks the dims {missing or dims}; "
                             f"its dims are {', '.join(map(str, field.dims))}")
        time, space = (dims[0] or None), dims[1:]
    return field, Layout(field, time, space)
