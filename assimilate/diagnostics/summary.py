"""A few lines for the terminal from a diagnostics Dataset (schema ``assimilate.diagnostics/1``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests

__all__ = ["summary"]


def summary(diag: xr.Dataset) -> str:
    """Moments, tail quantiles, the GPD and GEV fits, return levels, the trend test, the
    per-point fits and the comparison scores, as far as ``diag`` holds them."""
    units = diag.attrs.get("time_units") or "time units"
    lines = [*_distribution(diag), *_peaks_over_threshold(diag, units), *_exact_values(diag),
             *_block_maxima(diag, units), *_per_point(diag, units)]
    lines += [f"note: {diag.attrs[key]}" for key in ("pot_note", "gev_note") if key in diag.attrs]
    return "\n".join(lines + _compared(diag))


def _g(value) -> str:
    return f"{float(value):.4g}"


def _interval(values) -> str:
    return f"{_g(values[0])} [{_g(values[1])}, {_g(values[2])}]"


def _distribution(diag: xr.Dataset) -> list[str]:
    lines = [(f"{diag.attrs['label']}: '{diag.attrs['variable']}' over {int(diag['count'])} "
              f"values; mean {_g(diag['mean'])}, std {_g(np.sqrt(diag['variance']))}, skewness "
              f"{_g(diag['skewness'])}, kurtosis {_g(diag['kurtosis'])}, range "
              f"[{_g(diag['minimum'])}, {_g(diag['maximum'])}]")]
    if int(diag.get("non_finite_count", 0)):
        lines.append(f"left out: {int(diag['non_finite_count'])} NaN or infinite values")
    q = diag["quantile"]
    lines.append("quantiles: " + ", ".join(f"{float(p)}: {_g(v)}"
                                           for p, v in zip(q["probability"].values, q.values,
                                                           strict=True) if p >= 0.5))
    return lines


def _peaks_over_threshold(diag: xr.Dataset, units: str) -> list[str]:
    if "gpd_shape" not in diag:
        return []
    lines = [(f"{diag.attrs.get('extremes_series')}: {int(diag['n_clusters'])} clusters "
              f"above {_g(diag['pot_threshold'])}; GPD shape "
              f"{_interval(diag['gpd_shape'].values)}, scale "
              f"{_interval(diag['gpd_scale'].values)}")]
    levels = diag["return_level"].dropna("return_period", how="all")
    for period in levels["return_period"].values[:: max(1, len(levels["return_period"]) // 3)]:
        lines.append(f"  return level over {_g(period)} {units}: "
                     f"{_interval(levels.sel(return_period=period).values)}")
    return lines


def _exact_values(diag: xr.Dataset) -> list[str]:
    lines = []
    if "floor" in diag.attrs:
        lines.append(f"floor {_g(diag.attrs['floor'])}: a fraction "
                     f"{_g(diag['below_floor_fraction'])} of the values lies below it and is "
                     "left out")
    if "atom" in diag.coords:
        lines.append("exact values: " + ", ".join(
            f"{_g(a)} (probability {_g(p)})"
            for a, p in zip(diag["atom"].values, diag["atom_probability"].values, strict=True)))
    return lines


def _block_maxima(diag: xr.Dataset, units: str) -> list[str]:
    lines = []
    if "gev_shape" in diag and units == "years":
        levels = diag["gev_return_level"]
        lines.append(f"GEV of the {diag.attrs.get('block', 'block')} maxima: shape "
                     f"{_interval(diag['gev_shape'].values)}; " + "; ".join(
                         f"{_g(t)}-year level {_g(levels.sel(return_period=t)[0])}"
                         for t in levels["return_period"].values))
    if "trend_gev_trend" in diag:
        effective = diag["effective_return_level"].sel(interval="estimate").values
        lines.append(f"trend of the GEV location per {diag.attrs['trend_covariate']}: "
                     f"{_interval(diag['trend_gev_trend'].values)}; likelihood ratio "
                     f"{_g(diag['trend_likelihood_ratio'])}, p = {_g(diag['trend_p_value'])}; "
                     f"effective levels at {_g(diag.attrs['trend_at'])}: " + "; ".join(
                         f"{_g(t)} {units}: {_g(v)}" for t, v in zip(
                             diag["return_period"].values, effective, strict=True)))
    return lines


def _per_point(diag: xr.Dataset, units: str) -> list[str]:
    lines = []
    if "point_gev_return_level" in diag:
        levels = diag["point_gev_return_level"].sel(interval="estimate")
        t = float(levels["return_period"].values[np.argmin(np.abs(np.log(
            levels["return_period"].values / 20.0)))])
        at = levels.sel(return_period=t)
        lines.append(f"per-point fits at {at.size} points ({int(at.isnull().sum())} without "
                     f"one): {_g(t)}{'-year' if units == 'years' else ' ' + units} return "
                     f"level from {_g(at.min())} to "
                     f"{_g(at.max())}, median {_g(at.median())}")
    if "point_trend_p_value" in diag:
        passed, tested, by_chance = trend_tests(diag)
        lines.append(f"per-point trends: a changing GEV location at p < {SIGNIFICANCE:g} at "
                     f"{passed} of {tested} points (about {by_chance:.0f} by chance alone); "
                     "median trend "
                     f"{_g(diag['point_gev_trend'].median())} per "
                     f"{'year' if units == 'years' else units}")
    return lines


def _compared(diag: xr.Dataset) -> list[str]:
    if "compared" not in diag.dims:
        return []
    lines = []
    for label in diag["compared"].values:
        row = diag.sel(compared=label)
        line = (f"vs {label}: kurtosis ratio {_g(row['kurtosis_ratio'])}, tail KS "
                f"{_g(row['tail_ks_statistic'])}")
        if np.isfinite(float(row["twcrps"])):  # only for a paired ensemble on this grid
            line += f", twCRPS {_g(row['twcrps'])}"
        lines.append(line)
    return lines
