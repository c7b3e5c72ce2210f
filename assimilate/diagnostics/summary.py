"""A few lines for the terminal from a diagnostics Dataset (schema ``assimilate.diagnostics/1``).

Every physical number carries the field's units (``units.display``: ``mm/day``, ``°C``),
every return period its time units; shapes, probabilities and ratios are dimensionless.
The GPD and GEV return levels are printed side by side at the same return periods, the
ones stored (and drawn by the report), with the verdict of ``choice.advice``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests
from assimilate.diagnostics.units import display

__all__ = ["summary"]


def summary(diag: xr.Dataset) -> str:
    """Moments, tail quantiles, the GPD and GEV fits, return levels, the trend test, the
    per-point fits and the comparison scores, as far as ``diag`` holds them."""
    unit = display(diag.attrs.get("units", ""))
    time = diag.attrs.get("time_units") or "time units"
    lines = [*_distribution(diag, unit), *_exact_values(diag, unit),
             *_peaks_over_threshold(diag, unit), *_block_maxima(diag, unit),
             *_return_levels(diag, unit, time), *_trend(diag, unit, time),
             *_per_point(diag, unit, time)]
    if "fit_advice" in diag.attrs:
        lines.append(f"GPD or GEV: {diag.attrs['fit_advice']}")
    lines += [f"note: {diag.attrs[key]}" for key in ("pot_note", "gev_note") if key in diag.attrs]
    return "\n".join(lines + _compared(diag, unit))


def _g(value) -> str:
    return f"{float(value):.4g}"


def _with(value, unit: str) -> str:
    """A number with its unit (none for a dimensionless one)."""
    return f"{_g(value)} {unit}".rstrip()


def _interval(values, unit: str = "", confidence: float | None = None) -> str:
    """``estimate unit (95 % CI [lower, upper])``."""
    level = f"{100 * confidence:g} % CI " if confidence else "CI "
    return f"{_with(values[0], unit)} ({level}[{_g(values[1])}, {_g(values[2])}])"


def _period(period: float, time: str) -> str:
    return f"{_g(period)}-year" if time == "years" else f"{_g(period)} {time}"


def _distribution(diag: xr.Dataset, unit: str) -> list[str]:
    lines = [(f"{diag.attrs['label']}: '{diag.attrs['variable']}' ({unit or 'no units'}) over "
              f"{int(diag['count'])} values; mean {_with(diag['mean'], unit)}, std "
              f"{_with(np.sqrt(diag['variance']), unit)}, skewness {_g(diag['skewness'])}, "
              f"kurtosis {_g(diag['kurtosis'])}, range {_g(diag['minimum'])} to "
              f"{_with(diag['maximum'], unit)}")]
    if int(diag.get("non_finite_count", 0)):
        lines.append(f"left out: {int(diag['non_finite_count'])} NaN or infinite values")
    q = diag["quantile"]
    lines.append("quantiles: " + ", ".join(f"{float(p)}: {_with(v, unit)}"
                                           for p, v in zip(q["probability"].values, q.values,
                                                           strict=True) if p >= 0.5))
    return lines


def _exact_values(diag: xr.Dataset, unit: str) -> list[str]:
    lines = []
    if "floor" in diag.attrs:
        lines.append(f"floor {_with(diag.attrs['floor'], unit)}: a fraction "
                     f"{_g(diag['below_floor_fraction'])} of the values lies below it and is "
                     "left out")
    if "atom" in diag.coords:
        lines.append("exact values: " + ", ".join(
            f"{_with(a, unit)} (probability {_g(p)})"
            for a, p in zip(diag["atom"].values, diag["atom_probability"].values, strict=True)))
    return lines


def _declustering(diag: xr.Dataset) -> str:
    attrs = diag.attrs
    if "pot_run_length" not in attrs:
        return ""
    steps = int(attrs["pot_run_length"])
    length = attrs.get("pot_run_length_time") or f"{steps} steps"
    if steps == 0:
        length = "0 (each exceedance its own cluster)"
    method = attrs.get("pot_run_length_method")
    text = f"; declustered with run length {length}" + (f" ({method})" if method else "")
    if "extremal_index_estimate" in attrs:
        text += f", extremal index {_g(attrs['extremal_index_estimate'])}"
    return text


def _peaks_over_threshold(diag: xr.Dataset, unit: str) -> list[str]:
    if "gpd_shape" not in diag:
        return []
    confidence = float(diag.attrs.get("confidence", 0.95))
    rate = diag["return_period"].attrs.get("units", "time unit").removesuffix("s")
    return [(f"{diag.attrs.get('extremes_series')}: {int(diag['n_clusters'])} clusters "
             f"({_g(diag['cluster_rate'])} per {rate}) above {_with(diag['pot_threshold'], unit)}"
             f"{_declustering(diag)}; GPD shape "
             f"{_interval(diag['gpd_shape'].values, '', confidence)}, scale "
             f"{_interval(diag['gpd_scale'].values, unit, confidence)}")]


def _block_maxima(diag: xr.Dataset, unit: str) -> list[str]:
    if "gev_shape" not in diag:
        return []
    confidence = float(diag.attrs.get("confidence", 0.95))
    return [(f"GEV of the {diag.attrs.get('block', 'block')} maxima: shape "
             f"{_interval(diag['gev_shape'].values, '', confidence)}, location "
             f"{_interval(diag['gev_location'].values, unit, confidence)}, scale "
             f"{_interval(diag['gev_scale'].values, unit, confidence)}")]


def _return_levels(diag: xr.Dataset, unit: str, time: str) -> list[str]:
    """GPD and GEV levels at the same stored return periods, one line a period."""
    fits = [(name, diag[key]) for name, key in (("GPD", "return_level"),
                                                ("GEV", "gev_return_level")) if key in diag]
    if not fits:
        return []
    confidence = float(diag.attrs.get("confidence", 0.95))
    lines = [f"return levels ({100 * confidence:g} % confidence intervals):"]
    for period in diag["return_period"].values:
        cells = [f"{name} {_interval(levels.sel(return_period=period).values, unit)}"
                 for name, levels in fits
                 if np.isfinite(levels.sel(return_period=period).values[0])]
        lines.append(f"  {_period(period, time)}: " + ("; ".join(cells) or "no level"))
    return lines


def _trend(diag: xr.Dataset, unit: str, time: str) -> list[str]:
    if "trend_gev_trend" not in diag:
        return []
    effective = diag["effective_return_level"].sel(interval="estimate").values
    per = diag.attrs["trend_covariate"]
    trend_unit = f"{unit} per {per}" if unit else f"per {per}"
    return [f"trend of the GEV location: {_interval(diag['trend_gev_trend'].values, trend_unit)}"
            f"; likelihood ratio {_g(diag['trend_likelihood_ratio'])}, p = "
            f"{_g(diag['trend_p_value'])}; effective levels at {_g(diag.attrs['trend_at'])}: "
            + "; ".join(f"{_period(t, time)} {_with(v, unit)}" for t, v in zip(
                diag["return_period"].values, effective, strict=True))]


def _per_point(diag: xr.Dataset, unit: str, time: str) -> list[str]:
    lines = []
    if "point_gev_return_level" in diag:
        levels = diag["point_gev_return_level"].sel(interval="estimate")
        t = float(levels["return_period"].values[np.argmin(np.abs(np.log(
            levels["return_period"].values / 20.0)))])
        at = levels.sel(return_period=t)
        lines.append(f"per-point fits at {at.size} points ({int(at.isnull().sum())} without "
                     f"one): {_period(t, time)} GEV return level over the points "
                     f"{_g(at.min())} to {_with(at.max(), unit)}, median {_with(at.median(), unit)}")
    if "point_trend_p_value" in diag:
        passed, tested, by_chance = trend_tests(diag)
        per = "year" if time == "years" else time
        lines.append(f"per-point trends: a changing GEV location at p < {SIGNIFICANCE:g} at "
                     f"{passed} of {tested} points (about {by_chance:.0f} by chance alone); "
                     f"median trend {_with(diag['point_gev_trend'].median(), unit)} per {per}")
    return lines


def _compared(diag: xr.Dataset, unit: str) -> list[str]:
    if "compared" not in diag.dims:
        return []
    lines = []
    for label in diag["compared"].values:
        row = diag.sel(compared=label)
        line = (f"vs {label}: kurtosis ratio {_g(row['kurtosis_ratio'])}, tail KS "
                f"{_g(row['tail_ks_statistic'])}")
        if np.isfinite(float(row["twcrps"])):  # only for a paired ensemble on this grid
            line += f", twCRPS {_with(row['twcrps'], unit)}"
        lines.append(line)
    return lines
