"""The report's extreme-value figures of one diagnostic each: threshold stability, return
levels (GPD, GEV and the GEV with a trend, with the empirical points) and the extremes
series with its peaks; a function returns None when its data is absent.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

from assimilate.report.figures import Panel, new_axes
from assimilate.report.schema import (
    colour,
    dims_attr,
    in_units,
    interval,
    per,
    period_units,
    physical,
    readable,
    scalar,
    series_name,
    series_units,
    significant,
    with_interval,
)

__all__ = ["return_levels", "series", "threshold_stability"]

GEV_COLOUR = "0.3"  # block-maxima curves: grey in every return-level figure
SHOWN_REALISATIONS = 3


def threshold_stability(d: xr.Dataset) -> Panel | None:
    """GPD shape with its interval against the threshold, the chosen threshold marked."""
    if "stability_shape" not in d or not np.isfinite(d["stability_shape"].values).any():
        return None
    figure, ax = new_axes()
    shape = d["stability_shape"].transpose("stability_quantile", "interval").values
    threshold = d["stability_threshold"].values
    fitted = np.isfinite(shape[:, 0])
    lower = np.where(np.isfinite(shape[:, 1]), shape[:, 1], -1.0)
    upper = np.where(np.isfinite(shape[:, 2]), shape[:, 2], shape[:, 0])
    ax.errorbar(threshold[fitted], shape[fitted, 0],
                yerr=[shape[fitted, 0] - lower[fitted], upper[fitted] - shape[fitted, 0]],
                fmt="o-", color=colour(d), capsize=3, label="GPD shape ξ, interval")
    for q, u, n in zip(d["stability_quantile"].values, threshold,
                       d["stability_clusters"].values, strict=True):
        ax.annotate(f"{q:g}\n{int(n)}", (u, ax.get_ylim()[0]), fontsize=7, ha="center",
                    va="bottom", color="0.35")
    if "pot_threshold" in d:
        ax.axvline(float(d["pot_threshold"]), color="0.3", linestyle="--", linewidth=1,
                   label="threshold used")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    name = series_name(d) or "series"
    ax.set(xlabel=f"threshold on the {readable(name)}{in_units(series_units(d, name))}",
           ylabel="GPD shape ξ", title=f"threshold stability: {d.attrs['label']}")
    ax.legend(fontsize="small")
    caption = (f"GPD shape fitted to the cluster maxima above thresholds at quantiles "
               f"{', '.join(f'{q:g}' for q in d['stability_quantile'].values)} of the "
               f"{readable(name)} of {d.attrs['label']} (labels: quantile and number of "
               "clusters), with profile-likelihood intervals (an open end drawn to the axis "
               "or the estimate). Where the generalised Pareto model holds, the shape stops "
               "changing with the threshold; choose the lowest threshold from which it does.")
    return Panel("threshold-stability", caption, figure)


def return_levels(d: xr.Dataset, reference: xr.Dataset) -> Panel | None:
    """GPD and GEV return levels on one axes: each fit's curve, recomputed from its stored
    parameters from the shortest empirical return period to at least the longest stored
    one, its confidence band at the stored periods, and the empirical points."""
    gpd, gev = interval(d, "return_level"), interval(d, "gev_return_level")
    if gpd is None and gev is None:
        return None
    figure, ax = new_axes()
    label, name = d.attrs["label"], series_name(d) or "series"
    confidence = f"{float(d.attrs.get('confidence', 0.95)):.0%}".replace("%", " %")
    parts = [_gpd_points(ax, d) if gpd is not None else "",
             _gev_points(ax, d) if gev is not None else ""]
    span = _span(ax, d)
    if gpd is not None:
        _band(ax, _period(d, "return_level"), gpd, colour(d), "-", f"GPD (peaks over "
              f"threshold), {confidence} CI", curve=(span, _gpd_curve(d, span)))
    if gev is not None:
        _band(ax, _period(d, "gev_return_level"), gev, GEV_COLOUR, "--", f"GEV (block maxima), "
              f"{confidence} CI", curve=(span, _gev_curve(d, span)))
    parts.append(_effective(ax, d))
    ref = interval(reference, "return_level")
    if reference is not d and ref is not None:
        ax.plot(_period(reference, "return_level"), ref[0], ":", color=colour(reference),
                label=f"{reference.attrs['label']}: GPD estimate")
    estimates = [levels[0] for levels in (gpd, gev) if levels is not None]
    top = np.nanmax(np.concatenate([np.ravel(e) for e in estimates]))
    if np.isfinite(top):  # a band that explodes at long periods must not flatten the rest
        bottom = ax.get_ylim()[0]
        ax.set_ylim(bottom, min(ax.get_ylim()[1], bottom + 2.0 * (top - bottom)))
    ax.set_xscale("log")
    ax.set(xlabel=f"return period ({period_units(d)})",
           ylabel=f"{readable(name)}{in_units(series_units(d, name))}",
           title=f"return levels of the {readable(name)}: {label}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    caption = (f"Return levels of the {readable(name)} of {label}: lines from the fitted "
               f"parameters, {confidence} confidence bands at the stored return periods "
               f"(cut at twice the highest estimate). {' '.join(p for p in parts if p)}")
    return Panel("return-levels", caption, figure)


def _effective(ax: Axes, d: xr.Dataset) -> str:
    """The effective return levels of the GEV with a trend, when ``d`` holds them."""
    effective = interval(d, "effective_return_level")
    if effective is None:
        return ""
    at = significant(float(d.attrs.get("trend_at", np.nan)))
    covariate = d.attrs.get("trend_covariate", "the covariate")
    _band(ax, _period(d, "effective_return_level"), effective, "tab:red", "-.",
          f"GEV with trend, at {covariate} {at}")
    return (f"Red dash-dotted: the effective return levels of the GEV whose location follows "
            f"{covariate}, at {at}.")


def _span(ax: Axes, d: xr.Dataset) -> np.ndarray:
    """Return periods from the shortest empirical one drawn on ``ax`` to the longest of the
    stored and empirical ones, evenly on a log scale."""
    stored = np.concatenate([_period(d, name) for name in ("return_level", "gev_return_level")
                             if name in d])
    empirical = np.concatenate([np.asarray(line.get_xdata(), dtype=float)
                                for line in ax.get_lines()] or [np.empty(0)])
    periods = np.concatenate([stored, empirical])
    periods = periods[np.isfinite(periods) & (periods > 0)]
    return np.geomspace(periods.min(), periods.max(), 200)


def _gpd_curve(d: xr.Dataset, period: np.ndarray) -> np.ndarray | None:
    """u + σ/ξ ((λT)^ξ − 1) for λT > 1 (u + σ log λT as ξ → 0), NaN elsewhere."""
    shape, scale = interval(d, "gpd_shape"), interval(d, "gpd_scale")
    rate, threshold = scalar(d, "cluster_rate"), scalar(d, "pot_threshold")
    if shape is None or scale is None or not rate or threshold is None:
        return None
    xi, sigma = float(shape[0]), float(scale[0])
    m = np.where(rate * period > 1, rate * period, np.nan)
    excess = sigma * np.log(m) if abs(xi) < 1e-6 else sigma / xi * np.expm1(xi * np.log(m))
    return threshold + excess


def _gev_curve(d: xr.Dataset, period: np.ndarray) -> np.ndarray | None:
    """The GEV quantile exceeded with probability block_length / T per block (T > block)."""
    fitted = [interval(d, f"gev_{part}") for part in ("shape", "location", "scale")]
    block = float(d.attrs.get("block_length") or np.nan)
    if any(part is None for part in fitted) or not np.isfinite(block):
        return None
    xi, mu, sigma = (float(part[0]) for part in fitted)
    p = np.where(period > block, block / period, np.nan)
    return scipy.stats.genextreme.isf(p, -xi, mu, sigma)


def series(d: xr.Dataset) -> Panel | None:
    """The extremes series over time for the realisations with the largest peaks."""
    name, time_dim = series_name(d), d.attrs.get("time_dim") or ""
    if name is None or time_dim not in d[name].dims:
        return None
    values, names = _realisations(d, d[name], time_dim)
    times = d[time_dim].values if time_dim in d.coords else np.arange(values.shape[1])
    peak_value, peak_time, peak_realisation = _peaks(d)
    by_peak = peak_realisation[np.argsort(-peak_value)].tolist()
    chosen = sorted(list(dict.fromkeys(by_peak + list(range(len(values)))))[:SHOWN_REALISATIONS])
    figure, ax = new_axes()
    for j, r in enumerate(chosen):
        ax.plot(times, values[r], color=colormaps["Dark2"](j), linewidth=0.9, label=names(r))
    marked = np.isin(peak_realisation, chosen)
    if marked.any():
        ax.plot(peak_time[marked], peak_value[marked], "o", color="black", markerfacecolor="none",
                markersize=6, label="cluster peaks")
    threshold = scalar(d, "pot_threshold")
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                   label=f"threshold u = {physical(threshold, series_units(d, name))}")
    units = _time_axis(ax, times, d.attrs.get("time_units", ""))
    ax.set(xlabel=f"{time_dim}{in_units(units)}", ylabel=f"{readable(name)}{in_units(series_units(d, name))}",
           title=f"{readable(name)}: {d.attrs['label']}")
    if ax.get_legend_handles_labels()[0]:
        figure.legend(loc="outside lower center", ncols=5, fontsize="small", frameon=False)
    caption = (f"The {readable(name)} of {d.attrs['label']} over time for {len(chosen)} of "
               f"{len(values)} realisations (those holding the largest peaks), with "
               f"{int(marked.sum())} of {peak_value.size} detected cluster peaks circled and the "
               "peaks-over-threshold threshold dashed.")
    return Panel("series", caption, figure)


def _realisations(d: xr.Dataset, data: xr.DataArray, time_dim: str):
    """Values ``(realisation, time)``, rows in the row-major order of ``peak_realisation``
    over ``realisation_dims``, and a function naming row r (e.g. "trajectory 3")."""
    dims = [dim for dim in dims_attr(d, "realisation_dims") if dim in data.dims]
    dims += [str(dim) for dim in data.dims if dim != time_dim and dim not in dims]
    values = data.transpose(*dims, time_dim).values.reshape(-1, data.sizes[time_dim])

    def name(r: int) -> str | None:
        where = np.unravel_index(r, [data.sizes[dim] for dim in dims])
        return ", ".join(f"{dim} {int(i)}" for dim, i in zip(dims, where, strict=True)) or None

    return values, name


def _time_axis(ax: Axes, times: np.ndarray, units: str) -> str:
    """Concise date labels for calendar times; returns the units for the axis label."""
    if not np.issubdtype(np.asarray(times).dtype, np.datetime64):
        return units
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return ""


# --- helpers -------------------------------------------------------------------------------


def _period(d: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(d[name]["return_period"].values, dtype=float)


def _band(ax: Axes, period: np.ndarray, levels: tuple, colour_: str, style: str,
          label: str, curve: tuple | None = None) -> None:
    """The band between the stored bounds and the estimate: ``curve`` (periods, levels)
    from the fitted parameters where given, else the stored estimates joined."""
    estimate, lower, upper = levels
    ax.fill_between(period, lower, upper, color=colour_, alpha=0.18, linewidth=0)
    x, y = curve if curve is not None and curve[1] is not None else (period, estimate)
    ax.plot(x, y, style, color=colour_, linewidth=1.6, label=label)


def _peaks(d: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(value, time, realisation)`` of the finite peaks; empty arrays when there are none."""
    if "peak_value" not in d or "peak_time" not in d:
        return np.empty(0), np.empty(0), np.empty(0, dtype=int)
    value = d["peak_value"].values.astype(float)
    realisation = (d["peak_realisation"].values.astype(int) if "peak_realisation" in d
                   else np.zeros(value.size, dtype=int))
    keep = np.isfinite(value)
    return value[keep], d["peak_time"].values[keep], realisation[keep]


def _gpd_points(ax: Axes, d: xr.Dataset) -> str:
    """Cluster peaks at return period (n + 1) / (rank · λ), rank 1 the largest."""
    rate, threshold = scalar(d, "cluster_rate"), scalar(d, "pot_threshold")
    peaks = np.sort(_peaks(d)[0])[::-1]
    shape = interval(d, "gpd_shape")
    units = series_units(d, series_name(d))
    fit = (f"GPD fitted above u = {physical(threshold, units)} (ξ = "
           f"{with_interval(shape, '', float(d.attrs.get('confidence', 0.95)))})."
           if shape else "")
    if not rate or not peaks.size:
        return fit
    n = peaks.size
    ax.plot((n + 1) / (np.arange(1, n + 1) * rate), peaks, "o", color=colour(d),
            markerfacecolor="none", markersize=5, label=f"{n} cluster peaks")
    return (f"{fit} Circles: the {n} cluster peaks at empirical return period (n + 1) / "
            f"(rank · λ), λ = {significant(rate)} clusters per {per(period_units(d))}.")


def _gev_points(ax: Axes, d: xr.Dataset) -> str:
    """Block maxima at return period block_length · (m + 1) / rank."""
    block = float(d.attrs.get("block_length") or np.nan)
    if "block_maximum" not in d or not np.isfinite(block):
        return "Grey: GEV fitted to block maxima."
    maxima = np.sort(d["block_maximum"].values.astype(float))[::-1]
    maxima = maxima[np.isfinite(maxima)]
    m = maxima.size
    ax.plot(block * (m + 1) / np.arange(1, m + 1), maxima, "s", color=GEV_COLOUR,
            markerfacecolor="none", markersize=4, label=f"{m} block maxima")
    units = period_units(d)
    blocks = (f"{d.attrs['block']} maxima" if units == "years" and "block" in d.attrs
              else f"maxima of blocks of {significant(block)} {units}")
    return (f"Grey: GEV fitted to the {m} {blocks}, squares at return period block length · "
            "(m + 1) / rank.")
