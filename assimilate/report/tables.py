"""The report's tables as text cells: a summary per diagnostic and the comparison scores.

Numbers have 4 significant digits; confidence intervals follow as "[lower, upper]"; "—"
marks a value a diagnostic does not hold. Rows no diagnostic holds are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests
from assimilate.report.schema import dims_attr, interval, scalar, significant

__all__ = ["Table", "comparison", "inputs", "point_fits", "summary", "trend"]

MOMENTS = (("count", "count"), ("mean", "mean"), ("variance", "variance"),
           ("skewness", "skewness"), ("kurtosis", "kurtosis (Pearson)"),
           ("minimum", "minimum"), ("maximum", "maximum"))
QUANTILES = (0.5, 0.99, 0.999)
PEAKS = (("pot_threshold", "POT threshold u"), ("n_exceedances", "exceedances of u"),
         ("n_clusters", "clusters (peaks)"), ("cluster_rate", "clusters per time unit"),
         ("extremal_index", "extremal index"))
FITS = (("gpd_shape", "GPD shape ξ"), ("gpd_scale", "GPD scale σ"),
        ("gev_shape", "GEV shape ξ"))
SCORES = (("kurtosis_ratio", "kurtosis ratio"), ("skewness_ratio", "skewness ratio"),
          ("tail_ks_statistic", "tail KS"), ("log_density_distance", "log-density distance"),
          ("twcrps", "twCRPS"))
SHOWN_PERIODS = 3


@dataclass(frozen=True)
class Table:
    """``header`` then ``rows`` of text cells, each row as long as the header."""

    header: list[str]
    rows: list[list[str]]


def inputs(diagnostics: list[xr.Dataset]) -> Table:
    """What each diagnostic was computed from: label, source, variable, units and dims."""
    rows = []
    for d in diagnostics:
        dims = ", ".join(f"{dim} ({size})" for dim, size in d.sizes.items()
                         if dim in _data_dims(d))
        rows.append([d.attrs["label"], str(d.attrs.get("source", "")),
                     str(d.attrs.get("variable", "")), str(d.attrs.get("units", "")),
                     str(d.attrs.get("pde", "")), dims or "—", str(d.attrs.get("created", ""))])
    return Table(["label", "source", "variable", "units", "pde", "dims (size)", "created"], rows)


def summary(diagnostics: list[xr.Dataset]) -> Table:
    """One column per diagnostic: moments, quantiles, peaks over threshold and tail fits."""
    rows = [[title, *(_count(d, name) if name == "count" else significant(scalar(d, name))
                      for d in diagnostics)] for name, title in MOMENTS]
    for p in QUANTILES:
        rows.append([f"{p:g} quantile", *(significant(_at(d, "quantile", "probability", p))
                                          for d in diagnostics)])
    rows.append(["left out below the floor (fraction)",
                 *(significant(scalar(d, "below_floor_fraction")) for d in diagnostics)])
    for value in sorted({float(a) for d in diagnostics if "atom" in d.coords
                         for a in d["atom"].values}):
        rows.append([f"P(value = {significant(value)}), exact",
                     *(significant(_at(d, "atom_probability", "atom", value))
                       for d in diagnostics)])
    units = next((d.attrs.get("time_units") for d in diagnostics
                  if d.attrs.get("time_units")), "") or "time units"
    per = "year" if units == "years" else units
    for name, title in PEAKS:
        title = f"clusters per {per}" if name == "cluster_rate" else title
        rows.append([title, *(_count(d, name) if name.startswith("n_")
                              else significant(scalar(d, name)) for d in diagnostics)])
    for name, title in FITS[:2]:
        rows.append([title, *(_with_interval(interval(d, name)) for d in diagnostics)])
    for period in _periods(diagnostics, "return_level"):
        rows.append([f"return level, T = {significant(period)} {units} (GPD)",
                     *(_with_interval(_level(d, "return_level", period)) for d in diagnostics)])
    rows.append(["blocks of the maxima", *(str(d.attrs.get("block", "—")) for d in diagnostics)])
    for name, title in FITS[2:]:
        rows.append([title, *(_with_interval(interval(d, name)) for d in diagnostics)])
    for period in _periods(diagnostics, "gev_return_level"):
        rows.append([f"return level, T = {significant(period)} {units} (GEV)",
                     *(_with_interval(_level(d, "gev_return_level", period))
                       for d in diagnostics)])
    header = ["", *(d.attrs["label"] for d in diagnostics)]
    return Table(header, [row for row in rows if any(cell != "—" for cell in row[1:])])


def trend(diagnostics: list[xr.Dataset]) -> Table | None:
    """The GEV with a trend in location against the stationary one; None without one."""
    have = [d for d in diagnostics if "trend_gev_trend" in d]
    if not have:
        return None
    rows = []
    for d in have:
        units = d.attrs.get("time_units", "")
        at = significant(float(d.attrs.get("trend_at", np.nan)))
        levels = [_level(d, "effective_return_level", t)
                  for t in _periods([d], "effective_return_level")]
        rows.append([d.attrs["label"], str(d.attrs.get("trend_covariate", "")),
                     _with_interval(interval(d, "trend_gev_trend")),
                     significant(_location_at(d)),
                     significant(scalar(d, "trend_likelihood_ratio")),
                     significant(scalar(d, "trend_p_value")), at,
                     "; ".join(f"{significant(t)} {units}: {_with_interval(v)}"
                               for t, v in zip(_periods([d], "effective_return_level"),
                                               levels, strict=True))])
    return Table(["label", "covariate", "trend of the location (per unit)",
                  "location at 'at'", "likelihood ratio D", "p-value (χ²₁)", "at",
                  "effective return levels"], rows)


def _location_at(d: xr.Dataset) -> float | None:
    """The GEV location at the covariate value of the effective return levels."""
    location, slope = interval(d, "trend_gev_location"), interval(d, "trend_gev_trend")
    if location is None or slope is None:
        return None
    return float(location[0]) + float(slope[0]) * float(d.attrs.get("trend_at", np.nan))


def point_fits(diagnostics: list[xr.Dataset]) -> Table | None:
    """The per-point fits summarised over space; None when no diagnostic has them."""
    have = [d for d in diagnostics if "point_gev_shape" in d]
    if not have:
        return None
    rows = [["points with a GEV fit", *(_fitted(d, "point_gev_shape") for d in have)],
            ["points with a GPD fit", *(_fitted(d, "point_gpd_shape") for d in have)]]
    for name, title in (("point_gev_shape", "GEV shape ξ"), ("point_gev_scale", "GEV scale σ"),
                        ("point_gpd_shape", "GPD shape ξ")):
        rows.append([title, *(_spread(d[name].sel(interval="estimate")) if name in d else "—"
                              for d in have)])
    if any("point_gev_trend" in d for d in have):
        rows.append(["GEV location trend", *(_spread(d["point_gev_trend"])
                                             if "point_gev_trend" in d else "—" for d in have)])
        rows.append([f"points with a trend at p < {SIGNIFICANCE:g}",
                     *(_significant(d) for d in have)])
    periods = sorted({float(t) for d in have for t in d["point_gev_return_level"]
                      ["return_period"].values})
    units = have[0]["point_gev_return_level"]["return_period"].attrs.get("units", "")
    for period in periods:
        rows.append([f"return level, T = {significant(period)} {units} (GEV)",
                     *(_spread(d["point_gev_return_level"].sel(return_period=period,
                                                               interval="estimate"))
                       if period in d["point_gev_return_level"]["return_period"].values
                       else "—" for d in have)])
    return Table(["", *(d.attrs["label"] for d in have)], rows)


def _fitted(d: xr.Dataset, name: str) -> str:
    estimate = d[name].sel(interval="estimate")
    return f"{int(estimate.notnull().sum())} of {estimate.size}"


def _significant(d: xr.Dataset) -> str:
    if "point_trend_p_value" not in d:
        return "—"
    passed, tested, by_chance = trend_tests(d)
    return f"{passed} of {tested} (about {by_chance:.0f} by chance alone)"


def _spread(values: xr.DataArray) -> str:
    finite = np.asarray(values.values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return "—"
    low, middle, high = np.quantile(finite, [0.05, 0.5, 0.95])
    return f"{significant(middle)} [{significant(low)}, {significant(high)}]"


def comparison(diagnostics: list[xr.Dataset]) -> Table | None:
    """One row per (reference, compared) pair; None when no diagnostic compares anything."""
    have = [d for d in diagnostics if "compared" in d.dims]
    if not have:
        return None
    scores = [(name, title) for name, title in SCORES if any(name in d for d in have)]
    levels = sorted({float(q) for d in have if "exceedance_ratio" in d
                     for q in d["exceedance_ratio"]["tail_quantile"].values})
    rows = []
    for d in have:
        for label in d["compared"].values:
            cells = [significant(_at(d, name, "compared", label)) for name, _ in scores]
            cells += [significant(_exceedance(d, label, q)) for q in levels]
            rows.append([d.attrs["label"], str(label), *cells])
    header = ["reference", "compared", *(title for _, title in scores),
              *(f"exceedance ratio, q = {q:g}" for q in levels)]
    return Table(header, rows)


def _data_dims(d: xr.Dataset) -> list[str]:
    time_dim = d.attrs.get("time_dim") or ""
    return [*dims_attr(d, "realisation_dims"), *([time_dim] if time_dim else []),
            *dims_attr(d, "space_dims")]


def _count(d: xr.Dataset, name: str) -> str:
    value = scalar(d, name)
    return "—" if value is None else (f"{value:.0f}" if np.isfinite(value) else "NaN")


def _at(d: xr.Dataset, name: str, dim: str, value: float | str) -> float | None:
    """``d[name]`` where coordinate ``dim`` equals ``value`` (floats to 1e-9), else None."""
    if name not in d or dim not in d[name].dims:
        return None
    coordinate = d[name][dim].values
    if isinstance(value, str):
        # labels read back from Zarr are numpy StringDType, which astype(str) refuses
        match = np.flatnonzero([str(label) == value for label in coordinate])
    else:
        match = np.flatnonzero(np.isclose(coordinate.astype(float), value, rtol=1e-9))
    return float(d[name].isel({dim: match[0]}).values) if match.size else None


def _exceedance(d: xr.Dataset, label: str, level: float) -> float | None:
    if "exceedance_ratio" not in d:
        return None
    return _at(d.sel(compared=label), "exceedance_ratio", "tail_quantile", level)


def _periods(diagnostics: list[xr.Dataset], name: str) -> list[float]:
    """Up to three return periods spread over those the diagnostics hold for ``name``."""
    found = sorted({float(t) for d in diagnostics if name in d
                    for t in d[name]["return_period"].values})
    if len(found) <= SHOWN_PERIODS:
        return found
    picks = np.linspace(0, len(found) - 1, SHOWN_PERIODS).round().astype(int)
    return [found[i] for i in picks]


def _level(d: xr.Dataset, name: str, period: float) -> tuple[float, ...] | None:
    if name not in d:
        return None
    parts = [_at(d.sel(interval=part), name, "return_period", period)
             for part in ("estimate", "lower", "upper")]
    return None if parts[0] is None else tuple(parts)


def _with_interval(values: tuple | None) -> str:
    if values is None:
        return "—"
    estimate, lower, upper = (float(np.asarray(v)) for v in values)
    return f"{significant(estimate)} [{significant(lower)}, {significant(upper)}]"
