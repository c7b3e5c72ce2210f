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

from assimilate.report.inputs import labelled, once_per_source
from pde.io.store import open_store

__all__ = [
    "SCHEMA",
    "colour",
    "dims_attr",
    "in_units",
    "interval",
    "load",
    "per",
    "period_units",
    "physical",
    "quantity",
    "readable",
    "scalar",
    "series_name",
    "series_units",
    "shown",
    "significant",
    "spread",
    "with_interval",
]

SCHEMA = "assimilate.diagnostics/1"
INTERVAL = ("estimate", "lower", "upper")
# Names the report prints instead of the variable names; the rest lose their underscores.
READABLE = {"dissipation": "dissipation rate", "spatial_maximum": "spatial maximum",
            "total_variation": "total variation"}
# Variables that may hold the peaks-over-threshold series when attrs["extremes_series"] is unset.
SERIES_FALLBACK = ("dissipation", "total_variation", "spatial_maximum")
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

Source = xr.Dataset | str | os.PathLike


def load(diagnostics: Source | Sequence[Source]) -> list[xr.Dataset]:
    """Datasets in memory, each with attrs["label"] (see ``inputs.labelled``) and
    attrs["store"] (the path or ``diagnostics[i]``); paths are opened as Zarr. An input
    diagnosing the same source as a comparison input is left out: the comparison holds it."""
    if isinstance(diagnostics, xr.Dataset | str | os.PathLike):
        diagnostics = [diagnostics]
    items = list(diagnostics)
    if not items:
        raise ValueError("the report needs at least one diagnostics Dataset or Zarr path, got none")
    return labelled(once_per_source([_load_one(item, index)
                                     for index, item in enumerate(items)]))


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
    dataset.attrs["store"] = str(item) if isinstance(item, str | os.PathLike) else \
        f"diagnostics[{index}]"
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
        return shown(dataset[name].attrs["units"])
    return shown(dataset.attrs.get("units", "")) if name == "spatial_maximum" else ""


def shown(units: object) -> str:
    """Units as a table or label shows them: none for the dimensionless ``1``."""
    text = str(units or "").strip()
    return "" if text == "1" else text


def readable(name: str) -> str:
    """``"dissipation"`` -> ``"dissipation rate"``, ``"spatial_maximum"`` -> ``"spatial maximum"``."""
    return READABLE.get(name, name.replace("_", " "))


def significant(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits: plain decimals from 10⁻⁴ up to 10⁶
    (whole numbers from 10^digits on), "7.754 × 10⁻⁵" beyond; "—" when absent, "NaN"
    when not a number."""
    if value is None:
        return "—"
    value = float(value)
    if np.isnan(value):
        return "NaN"
    if value == 0 or np.isinf(value):
        return f"{value:g}".replace("inf", "∞")
    exponent = int(np.floor(np.log10(abs(value))))
    if -4 <= exponent < digits:
        return f"{value:.{digits}g}"
    if digits <= exponent < 6:
        return f"{value:.0f}"
    mantissa = float(f"{value / 10.0 ** exponent:.{digits}g}")
    if abs(mantissa) >= 10:  # rounding carried into the next power of ten
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits}g} × 10{str(exponent).translate(SUPERSCRIPT)}"


def physical(value: float | None, units: str, digits: int = 4) -> str:
    """``value`` with its units, "12.3 mm/day"; units only on a finite number."""
    text = significant(value, digits)
    return f"{text} {units}" if units and value is not None and np.isfinite(value) else text


def with_interval(values: tuple | None, units: str = "", confidence: float = 0.95) -> str:
    """"12.3 (95 % CI [10.1, 14.5]) mm/day": an estimate and its confidence interval."""
    if values is None:
        return "—"
    estimate, lower, upper = (float(np.asarray(v)) for v in values)
    if np.isnan(lower) and np.isnan(upper):
        return physical(estimate, units)
    unit = f" {units}" if units and np.isfinite(estimate) else ""
    return (f"{significant(estimate)} ({confidence:.0%} CI [{significant(lower)}, "
            f"{significant(upper)}]){unit}").replace("%", " %", 1)


def spread(values: np.ndarray, units: str = "") -> str:
    """The median of ``values`` over points and their 5th–95th percentile range, marked so
    that it is never read as a confidence interval."""
    finite = np.asarray(values, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return "—"
    low, middle, high = np.quantile(finite, [0.05, 0.5, 0.95])
    unit = f" {units}" if units else ""
    return (f"median {significant(middle)}{unit}; {significant(low)} – {significant(high)}"
            f"{unit} (5th–95th percentile over points)")


def period_units(d: xr.Dataset, name: str = "return_period") -> str:
    """Units of the return periods: the coordinate's own, else the diagnostics' time units."""
    attrs = d[name].attrs if name in d.coords else {}
    return str(attrs.get("units") or d.attrs.get("time_units") or "time units")


def per(units: str) -> str:
    """The singular, as in "clusters per year": "years" -> "year", "time units" -> "time
    unit"; a symbol (s, h) as it is."""
    return units[:-1] if units.endswith("s") and len(units) > 2 else units


def in_units(units: str) -> str:
    """`` (units)`` for an axis label, or nothing without units (or dimensionless)."""
    return f" ({units})" if shown(units) else ""


def quantity(dataset: xr.Dataset) -> str:
    """The diagnosed variable with its units, for axis and colour-bar labels."""
    return f"{dataset.attrs.get('variable', 'value')}{in_units(dataset.attrs.get('units', ''))}"
