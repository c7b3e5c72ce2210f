"""Reading "assimilate.diagnostics/1" Datasets: loading, validation and small accessors.

The report only reads; every variable is optional, so accessors return None when the data
for a figure or a table row is absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from pde.io.store import open_store

__all__ = [
    "SCHEMA",
    "colour",
    "dims_attr",
    "in_units",
    "interval",
    "load",
    "quantity",
    "readable",
    "scalar",
    "series_name",
    "series_units",
    "significant",
]

SCHEMA = "assimilate.diagnostics/1"
INTERVAL = ("estimate", "lower", "upper")
# Names the report prints instead of the variable names; the rest lose their underscores.
READABLE = {"dissipation": "dissipation rate", "spatial_maximum": "spatial maximum",
            "total_variation": "total variation"}
# Variables that may hold the peaks-over-threshold series when attrs["extremes_series"] is unset.
SERIES_FALLBACK = ("dissipation", "total_variation", "spatial_maximum")

Source = xr.Dataset | str | os.PathLike


def load(diagnostics: Source | Sequence[Source]) -> list[xr.Dataset]:
    """Datasets in memory with attrs["label"] set and unique; paths are opened as Zarr."""
    if isinstance(diagnostics, xr.Dataset | str | os.PathLike):
        diagnostics = [diagnostics]
    items = list(diagnostics)
    if not items:
        raise ValueError("the report needs at least one diagnostics Dataset or Zarr path, got none")
    loaded = [_load_one(item, index) for index, item in enumerate(items)]
    seen: dict[str, int] = {}
    for dataset in loaded:
        label = dataset.attrs["label"]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # two runs both called "emulator" must stay apart in legends
            dataset.attrs["label"] = f"{label} ({seen[label]})"
    return loaded


def _load_one(item: Source, index: int) -> xr.Dataset:
    if isinstance(item, xr.Dataset):
        dataset, name = item.copy(), f"diagnostics[{index}] ({item.attrs.get('label', '?')})"
    elif isinstance(item, str | os.PathLike):
        dataset, name = open_store(item).load(), str(item)
    else:
        raise TypeError(f"diagnostics[{index}] must be an xarray.Dataset or a path to a Zarr "
                        f"store, got {type(item).__name__}")
    found = dataset.attrs.get("schema")
    if found != SCHEMA:
        raise ValueError(f"{name}: schema {found!r} is not {SCHEMA!r}; the report reads only "
                         "Datasets written by the diagnostics (attrs['schema'])")
    fallback = Path(item).stem if isinstance(item, str | os.PathLike) else f"diagnostic {index + 1}"
    dataset.attrs["label"] = str(dataset.attrs.get("label") or fallback)
    dataset.attrs["index"] = index
    return dataset


def colour(dataset: xr.Dataset) -> str:
    """The diagnostic's colour, the same in every figure (matplotlib's cycle by input order)."""
    return f"C{int(dataset.attrs['index']) % 10}"


def dims_attr(dataset: xr.Dataset, key: str) -> list[str]:
    """A JSON list of dim names from attrs (``space_dims``, ``realisation_dims``)."""
    raw = dataset.attrs.get(key, "[]")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except json.JSONDecodeError as error:
            raise ValueError(f"{dataset.attrs['label']}: attrs[{key!r}] = {raw!r} is not a JSON "
                             'list of dim names such as \'["y", "x"]\'') from error
    return [str(name) for name in np.atleast_1d(raw)]


def scalar(dataset: xr.Dataset, name: str) -> float | None:
    """A 0-d variable as a float, None when absent."""
    if name not in dataset or dataset[name].ndim != 0:
        return None
    return float(dataset[name].values)


def interval(dataset: xr.Dataset, name: str) -> tuple[np.ndarray, ...] | None:
    """``(estimate, lower, upper)`` of a variable with an ``interval`` dim, None when absent."""
    if name not in dataset or "interval" not in dataset[name].dims:
        return None
    data = dataset[name]
    return tuple(np.asarray(data.sel(interval=part).values, dtype=float) for part in INTERVAL)


def series_name(dataset: xr.Dataset) -> str | None:
    """The variable the peaks-over-threshold analysis used, when it is in the Dataset."""
    name = dataset.attrs.get("extremes_series") or ""
    if name in dataset:
        return name
    return next((fallback for fallback in SERIES_FALLBACK
                 if not name and fallback in dataset), None)


def series_units(dataset: xr.Dataset, name: str | None) -> str:
    """Units of the extremes series: its own attrs, else those of the field it summarises."""
    if name and "units" in dataset.get(name, xr.DataArray()).attrs:
        return str(dataset[name].attrs["units"])
    return str(dataset.attrs.get("units", "")) if name == "spatial_maximum" else ""


def readable(name: str) -> str:
    """``"dissipation"`` -> ``"dissipation rate"``, ``"spatial_maximum"`` -> ``"spatial maximum"``."""
    return READABLE.get(name, name.replace("_", " "))


def significant(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; "—" when absent, "NaN" when not a number."""
    if value is None:
        return "—"
    value = float(value)
    if np.isnan(value):
        return "NaN"
    return f"{value:.{digits}g}"


def in_units(units: str) -> str:
    """`` (units)`` for an axis label, or nothing without units."""
    return f" ({units})" if units else ""


def quantity(dataset: xr.Dataset) -> str:
    """The diagnosed variable with its units, for axis and colour-bar labels."""
    return f"{dataset.attrs.get('variable', 'value')}{in_units(dataset.attrs.get('units', ''))}"
