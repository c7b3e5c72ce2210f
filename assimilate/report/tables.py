"""The report's tables as text cells: a summary per diagnostic and the comparison scores.

Numbers have 4 significant digits and carry their units (the diagnostics' ``units``, those
of the extremes series for its fits, the return-period coordinate's for periods);
dimensionless ones (shape ξ, probabilities, counts) carry none. An estimate's confidence
interval reads "(95 % CI [lower, upper])"; a spread over points reads "a – b (5th–95th
percentile over points)", never in brackets. "—" marks a value a diagnostic does not hold.
Rows no diagnostic holds are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests
from assimilate.report.schema import (
    dims_attr,
    interval,
    per,
    period_units,
    physical,
    readable,
    scalar,
    series_name,
    series_units,
    shown,
    significant,
    spread,
    with_interval,
)

__all__ = ["Table", "comparison", "inputs", "point_fits", "summary", "trend"]

# (variable, title, units): "field" the diagnostics' units, "squared" their square, "" none
MOMENTS = (("count", "count", ""), ("mean", "mean", "field"),
           ("variance", "variance", "squared"), ("skewness", "skewness", ""),
           ("kurtosis", "kurtosis (Pearson)", ""), ("minimum", "minimum", "field"),
           ("maximum", "maximum", "field"))
QUANTILES = (0.5, 0.99, 0.999)
PEAKS = (("pot_threshold", "POT threshold u"), ("n_exceedances", "exceedances of u"),
         ("n_clusters", "clusters (peaks)"), ("cluster_rate", "cluster rate"),
         ("extremal_index", "clusters per exceedance"))
# (attribute, title): how the peaks were declustered, and which fit to trust
DECLUSTERING = (("pot_run_length_time", "declustering run length"),
                ("pot_run_length_method", "run length chosen by"),
                ("extremal_index_estimate", "extremal index (intervals estimator)"))
# (variable, title, whether it is in the extremes series' units)
GPD_FITS = (("gpd_shape", "GPD shape ξ", False), ("gpd_scale", "GPD scale σ", True))
GEV_FITS = (("gev_shape", "GEV shape ξ", False), ("gev_location", "GEV location μ", True),
            ("gev_scale", "GEV scale σ", True))
SCORES = (("kurtosis_ratio", "kurtosis ratio"), ("skewness_ratio", "skewness ratio"),
          ("tail_ks_statistic", "tail KS"), ("log_density_distance", "log-density distance"),
          ("twcrps", "twCRPS"))


@dataclass(frozen=True)
class Table:
    """``header`` then ``rows`` of text cells, each row as long as the header."""

    header: list[str]
    rows: list[list[str]]


def inputs(diagnostics: list[xr.Dataset]) -> Table:
    """What each diagnostic was computed from: label, store, source, variable, units, dims."""
    rows = []
    for d in diagnostics:
        dims = ", ".join(f"{dim} ({size})" for dim, size in d.sizes.items()
                         if dim in _data_dims(d))
        rows.append([d.attrs["label"], str(d.attrs.get("store", "")),
                     str(d.attrs.get("source", "")), str(d.attrs.get("variable", "")),
                     str(d.attrs.get("units", "")), str(d.attrs.get("pde", "")), dims or "—",
                     str(d.attrs.get("created", ""))])
    return Table(["label", "diagnostics", "source", "variable", "units", "pde", "dims (size)",
                  "created"], rows)


def summary(diagnostics: list[xr.Dataset]) -> Table:
    """One column per diagnostic: moments, quantiles, peaks over threshold and tail fits."""
    rows = [[title, *(_moment(d, name, kind) for d in diagnostics)]
            for name, title, kind in MOMENTS]
    for p in QUANTILES:
        rows.append([f"quantile at probability {p:g}",
                     *(physical(_at(d, "quantile", "probability", p), _units(d))
                       for d in diagnostics)])
    rows.append(["left out below the floor (fraction)",
                 *(significant(scalar(d, "below_floor_fraction")) for d in diagnostics)])
    for value in sorted({float(a) for d in diagnostics if "atom" in d.coords
                         for a in d["atom"].values}):
        rows.append([f"P(value = {significant(value)}), exact",
                     *(significant(_at(d, "atom_probability", "atom", value))
                       for d in diagnostics)])
    rows += _extremes_rows(diagnostics)
    header = ["", *(d.attrs["label"] for d in diagnostics)]
    return Table(header, [row for row in rows if any(cell != "—" for cell in row[1:])])


def _extremes_rows(diagnostics: list[xr.Dataset]) -> list[list[str]]:
    """Peaks over threshold, the GPD and the GEV with their return levels."""
    rows = [["series of the GPD and GEV fits",
             *(readable(series_name(d)) if series_name(d) and ("gpd_shape" in d
                                                           or "gev_shape" in d) else "—"
               for d in diagnostics)]]
    for name, title in PEAKS:
        rows.append([title, *(_peak_cell(d, name) for d in diagnostics)])
    rows += [[title, *(_attribute(d, key) for d in diagnostics)] for key, title in DECLUSTERING]
    rows += _fit_rows(diagnostics, GPD_FITS)
    rows += _level_rows(diagnostics, "return_level", "GPD")
    rows.append(["blocks of the maxima", *(str(d.attrs.get("block", "—")) for d in diagnostics)])
    rows += _fit_rows(diagnostics, GEV_FITS)
    rows += _level_rows(diagnostics, "gev_return_level", "GEV")
    rows.append(["GPD or GEV to trust (Anderson–Darling p)",
                 *(_verdict(d) for d in diagnostics)])
    return rows


def _verdict(d: xr.Dataset) -> str:
    """The fit ``choice.advice`` trusts, with both p-values: short enough for one line (the
    whole advice is printed by ``diagnose``)."""
    if "preferred_fit" not in d.attrs:
        return "—"
    chosen = {"gpd": "GPD", "gev": "GEV", "none": "neither"}.get(str(d.attrs["preferred_fit"]))
    p = [f"{name} {significant(d.attrs[key])}" for name, key in
         (("GPD", "gpd_ad_p_value"), ("GEV", "gev_ad_p_value")) if key in d.attrs]
    return f"{chosen} ({', '.join(p)})" if p else str(chosen)


def _attribute(d: xr.Dataset, key: str) -> str:
    """An attribute as a cell: numbers to 4 significant digits, '—' where absent."""
    value = d.attrs.get(key)
    if value is None:
        return "—"
    return significant(value) if isinstance(value, float | int) else str(value)


def _fit_rows(diagnostics: list[xr.Dataset], fits: tuple) -> list[list[str]]:
    return [[title, *(with_interval(interval(d, name), _series_units(d) if physical_ else "",
                                    _confidence(d)) for d in diagnostics)]
            for name, title, physical_ in fits]


def _level_rows(diagnostics: list[xr.Dataset], name: str, model: str) -> list[list[str]]:
    """Every stored return period of ``name``: the periods the console prints too."""
    have = [d for d in diagnostics if name in d]
    units = period_units(have[0]) if have else ""
    return [[f"{model} return level, T = {significant(t)} {units}",
             *(with_interval(_level(d, name, t), _series_units(d), _confidence(d))
               for d in diagnostics)] for t in _periods(diagnostics, name)]


def _moment(d: xr.Dataset, name: str, kind: str) -> str:
    if name == "count":
        return _count(d, name)
    units = _units(d) if kind else ""
    if kind == "squared" and units:
        units = f"({units})²"
    return physical(scalar(d, name), units)


def _peak_cell(d: xr.Dataset, name: str) -> str:
    if name.startswith("n_"):
        return _count(d, name)
    if name == "pot_threshold":
        return physical(scalar(d, name), _series_units(d))
    if name == "cluster_rate":
        return physical(scalar(d, name), f"clusters per {per(period_units(d))}")
    return significant(scalar(d, name))


def _units(d: xr.Dataset) -> str:
    return shown(d.attrs.get("units", ""))


def _series_units(d: xr.Dataset) -> str:
    """Units of the extremes series, which the GPD and GEV and their levels are fitted to."""
    return series_units(d, series_name(d)) or (_units(d) if series_name(d) is None else "")


def _confidence(d: xr.Dataset, key: str = "confidence") -> float:
    return float(d.attrs.get(key, 0.95))


def trend(diagnostics: list[xr.Dataset]) -> Table | None:
    """The GEV with a trend in location against the stationary one; None without one."""
    have = [d for d in diagnostics if "trend_gev_trend" in d]
    if not have:
        return None
    rows = []
    for d in have:
        units, confidence = _series_units(d), _confidence(d)
        covariate = str(d.attrs.get("trend_covariate", ""))
        periods = _periods([d], "effective_return_level")
        levels = [_level(d, "effective_return_level", t) for t in periods]
        slope_units = f"{units} per {covariate}" if units and covariate else units
        rows.append([d.attrs["label"], covariate,
                     with_interval(interval(d, "trend_gev_trend"), slope_units, confidence),
                     physical(_location_at(d), units),
                     significant(scalar(d, "trend_likelihood_ratio")),
                     significant(scalar(d, "trend_p_value")),
                     significant(float(d.attrs.get("trend_at", np.nan))),
                     "; ".join(f"T = {significant(t)} {period_units(d)}: "
                               f"{with_interval(v, units, confidence)}"
                               for t, v in zip(periods, levels, strict=True))])
    return Table(["label", "covariate", "trend of the location (estimate, CI)",
                  "location at 'at'", "likelihood ratio D", "p-value (χ²₁)", "at",
                  "effective return levels (estimate, CI)"], rows)


def _location_at(d: xr.Dataset) -> float | None:
    """The GEV location at the covariate value of the effective return levels."""
    location, slope = interval(d, "trend_gev_location"), interval(d, "trend_gev_trend")
    if location is None or slope is None:
        return None
    return float(location[0]) + float(slope[0]) * float(d.attrs.get("trend_at", np.nan))


def point_fits(diagnostics: list[xr.Dataset]) -> Table | None:
    """The per-point fits summarised over space; None when no diagnostic has them.

    Cells are spreads over the points (median and 5th–95th percentile), not intervals.
    """
    have = [d for d in diagnostics if "point_gev_shape" in d]
    if not have:
        return None
    rows = [["points with a GEV fit", *(_fitted(d, "point_gev_shape") for d in have)],
            ["points with a GPD fit", *(_fitted(d, "point_gpd_shape") for d in have)]]
    for name, title, physical_ in (("point_gev_shape", "GEV shape ξ", False),
                                   ("point_gev_scale", "GEV scale σ", True),
                                   ("point_gpd_shape", "GPD shape ξ", False)):
        rows.append([title, *(spread(d[name].sel(interval="estimate").values,
                                     _units(d) if physical_ else "") if name in d else "—"
                              for d in have)])
    if any("point_gev_trend" in d for d in have):
        rows.append(["GEV location trend",
                     *(spread(d["point_gev_trend"].values,
                              str(d["point_gev_trend"].attrs.get("units", "")))
                       if "point_gev_trend" in d else "—" for d in have)])
        rows.append([f"points with a trend at p < {SIGNIFICANCE:g}",
                     *(_significant(d) for d in have)])
    rows += _point_levels(have)
    rows.append(["interval method at a point",
                 *(str(d.attrs.get("point_interval_method", "—")) for d in have)])
    return Table(["median; 5th–95th percentile over points",
                  *(d.attrs["label"] for d in have)], rows)


def _point_levels(have: list[xr.Dataset]) -> list[list[str]]:
    """The per-point GEV return level at every stored period, spread over the points."""
    rows = []
    units = period_units(have[0])
    for period in _periods(have, "point_gev_return_level"):
        cells = []
        for d in have:
            levels = d["point_gev_return_level"]
            match = np.isclose(levels["return_period"].values.astype(float), period)
            cells.append(spread(levels.isel(return_period=int(np.argmax(match)))
                                .sel(interval="estimate").values, _units(d))
                         if match.any() else "—")
        rows.append([f"GEV return level, T = {significant(period)} {units}", *cells])
    return rows


def _fitted(d: xr.Dataset, name: str) -> str:
    if name not in d:
        return "—"
    estimate = d[name].sel(interval="estimate")
    return f"{int(estimate.notnull().sum())} of {estimate.size}"


def _significant(d: xr.Dataset) -> str:
    if "point_trend_p_value" not in d:
        return "—"
    passed, tested, by_chance = trend_tests(d)
    return f"{passed} of {tested} (about {by_chance:.0f} by chance alone)"


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
    """Every return period the diagnostics store for ``name``, in order."""
    return sorted({float(t) for d in diagnostics if name in d
                   for t in d[name]["return_period"].values})


def _level(d: xr.Dataset, name: str, period: float) -> tuple[float, ...] | None:
    if name not in d:
        return None
    parts = [_at(d.sel(interval=part), name, "return_period", period)
             for part in ("estimate", "lower", "upper")]
    return None if parts[0] is None else tuple(parts)
