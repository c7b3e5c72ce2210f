"""The report's figures, one function each; a function returns None when its data is absent.

Distributions (histogram, QQ, spectrum) overlay every diagnostic in its own colour; return
levels, series and maps are drawn once per diagnostic (maps share one colour scale). Every
figure is a ``matplotlib.figure.Figure`` made without pyplot, so no global backend is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats
import xarray as xr
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from assimilate.report._schema import (
    colour,
    dims_attr,
    interval,
    readable,
    scalar,
    series_name,
    series_units,
    significant,
)
from assimilate.report.maps import FIGURE_SIZE, field_figure

__all__ = ["Panel", "field_maps", "histogram", "panels", "qq", "return_levels", "series",
           "spectrum"]

GEV_COLOUR = "0.3"  # block-maxima curves: grey in every return-level figure
SHOWN_REALISATIONS = 3
MAPS = {  # variable: (figure id, title, colour map)
    "exceedance_map": ("exceedance-map", "exceedance frequency", "magma"),
    "temporal_maximum": ("temporal-maximum-map", "maximum over time", "viridis"),
}


@dataclass(frozen=True)
class Panel:
    """One figure of the report: ``key`` is its HTML id before any ``-1``, ``-2`` suffix."""

    key: str
    caption: str
    figure: Figure


def panels(diagnostics: list[xr.Dataset]) -> list[Panel]:
    """Every figure the data allows, in report order."""
    found = [histogram(diagnostics), qq(diagnostics)]
    found += [threshold_stability(d) for d in diagnostics]
    found += [return_levels(d, diagnostics[0]) for d in diagnostics]
    found += [series(d) for d in diagnostics]
    found += field_maps(diagnostics, "exceedance_map")
    found += field_maps(diagnostics, "temporal_maximum")
    found.append(spectrum(diagnostics))
    return [panel for panel in found if panel is not None]


def histogram(diagnostics: list[xr.Dataset]) -> Panel | None:
    """Densities on a log axis, with the compared densities and a Gaussian for reference."""
    have = [d for d in diagnostics if "histogram_density" in d]
    if not have:
        return None
    figure, ax = _axes()
    colours = {d.attrs["label"]: colour(d) for d in diagnostics}
    lowest, highest = [], []
    notes = ["Histogram density on a log axis, so that the tails show; empty bins are left out."]
    for d in have:
        edges = np.append(d["bin_left"].values, d["bin_right"].values[-1])
        density = _positive(d["histogram_density"].values)
        ax.stairs(density, edges, color=colour(d), linewidth=1.5, label=d.attrs["label"])
        lowest += [np.nanmin(density, initial=np.inf), _compared(ax, d, edges, colours)]
        highest.append(np.nanmax(density, initial=0.0))
        notes += _atoms(ax, d)
        if "floor" in d.attrs:
            notes.append(f"{d.attrs['label']}: values below the floor "
                         f"{significant(float(d.attrs['floor']))} (a fraction "
                         f"{significant(scalar(d, 'below_floor_fraction'))}) are left out.")
    if any("compared_histogram_density" in d for d in have):
        notes.append("Dashed: compared samples binned on the reference's bins.")
    first = have[0]
    mean, variance = scalar(first, "mean"), scalar(first, "variance")
    if mean is not None and variance and variance > 0:
        x = np.linspace(first["bin_left"].values[0], first["bin_right"].values[-1], 400)
        ax.plot(x, scipy.stats.norm.pdf(x, mean, np.sqrt(variance)), ":", color="0.35",
                label=f"Gaussian, mean and variance of {first.attrs['label']}")
        notes.append(f"Dotted: the Gaussian with {first.attrs['label']}'s mean and variance.")
    ax.set_yscale("log")
    if np.isfinite(min(lowest)):  # the Gaussian's far tails must not set the range
        ax.set_ylim(bottom=min(lowest) / 3, top=3 * max(highest, default=1.0))
    variable = first.attrs.get("variable", "the field")
    ax.set(xlabel=" / ".join(dict.fromkeys(_quantity(d) for d in have)),
           ylabel="probability density", title=f"distribution of {variable}")
    ax.legend(fontsize="small")
    return Panel("histogram", " ".join(notes), figure)


def _atoms(ax: Axes, d: xr.Dataset) -> list[str]:
    """Point masses (values that recur exactly, e.g. dry days at 0) as dash-dotted lines."""
    if "atom_probability" not in d:
        return []
    parts = []
    for value, probability in zip(d["atom"].values, d["atom_probability"].values,
                                  strict=True):
        ax.axvline(float(value), color=colour(d), linestyle="-.", linewidth=1.2,
                   label=f"{d.attrs['label']}: P(= {significant(float(value))}) = "
                         f"{significant(float(probability))}")
        parts.append(f"{significant(float(value))} (probability "
                     f"{significant(float(probability))})")
    note = (f"Dash-dotted: values {d.attrs['label']} takes exactly, counted exactly and left "
            f"out of the density: {', '.join(parts)}.")
    return [note]


def _compared(ax: Axes, d: xr.Dataset, edges: np.ndarray, colours: dict[str, str]) -> float:
    """Dashed densities of the runs ``d`` was compared with; returns their smallest value."""
    if "compared_histogram_density" not in d:
        return np.inf
    lowest = np.inf
    for j, name in enumerate(d["compared"].values):
        density = _positive(d["compared_histogram_density"].sel(compared=name).values)
        ax.stairs(density, edges, color=colours.get(str(name), f"C{len(colours) + j}"),
                  linestyle="--", linewidth=1.2, label=f"{name} (on {d.attrs['label']} bins)")
        lowest = min(lowest, np.nanmin(density, initial=np.inf))
    return lowest


def qq(diagnostics: list[xr.Dataset]) -> Panel | None:
    """Sorted excesses over the threshold against the fitted GPD's quantiles."""
    have = [d for d in diagnostics if _excesses(d) is not None
            and interval(d, "gpd_shape") and interval(d, "gpd_scale")]
    if not have:
        return None
    figure, ax = _axes()
    extent = []
    for d in have:
        excess = _excesses(d)
        shape, scale = interval(d, "gpd_shape")[0], interval(d, "gpd_scale")[0]
        probability = (np.arange(1, excess.size + 1) - 0.5) / excess.size
        model = scipy.stats.genpareto.ppf(probability, c=float(shape), scale=float(scale))
        ax.plot(model, excess, "o", markersize=4, color=colour(d), alpha=0.8,
                label=f"{d.attrs['label']}: ξ = {significant(shape)}, σ = "
                      f"{significant(scale)}, {excess.size} peaks")
        extent += [np.nanmin(model), np.nanmax(model), excess[0], excess[-1]]
    line = [min(extent), max(extent)]
    ax.plot(line, line, "-", color="0.4", linewidth=1, label="1:1")
    units = series_units(have[0], series_name(have[0]))
    ax.set(xlabel=f"GPD quantile of the excess{_in(units)}",
           ylabel=f"observed excess over the threshold{_in(units)}",
           title="peaks over threshold against the fitted GPD")
    ax.legend(fontsize="small")
    caption = ("Quantile-quantile plot of the cluster peaks' excesses y = peak − u over the "
               "threshold u, sorted, against the fitted generalised Pareto quantiles "
               "G⁻¹((i − 0.5)/n; ξ, σ). Points on the 1:1 line mean the GPD describes the tail; "
               "points bending above it at the top mean a heavier tail than fitted.")
    return Panel("qq", caption, figure)


def threshold_stability(d: xr.Dataset) -> Panel | None:
    """GPD shape with its interval against the threshold, the chosen threshold marked."""
    if "stability_shape" not in d or not np.isfinite(d["stability_shape"].values).any():
        return None
    figure, ax = _axes()
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
    ax.set(xlabel=f"threshold on the {readable(name)}{_in(series_units(d, name))}",
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
    """GPD and GEV return levels with confidence bands and the empirical points."""
    gpd, gev = interval(d, "return_level"), interval(d, "gev_return_level")
    parts: list[str] = []
    if gpd is None and gev is None:
        return None
    figure, ax = _axes()
    label = d.attrs["label"]
    confidence = f"{float(d.attrs.get('confidence', 0.95)):.0%}"
    if gpd is not None:
        _band(ax, _period(d, "return_level"), gpd, colour(d), "GPD (peaks over threshold)", "-")
        parts.append(_gpd_points(ax, d))
    if gev is not None:
        _band(ax, _period(d, "gev_return_level"), gev, GEV_COLOUR, "GEV (block maxima)", "--")
        parts.append(_gev_points(ax, d))
    effective = interval(d, "effective_return_level")
    if effective is not None:
        at = significant(float(d.attrs.get("trend_at", np.nan)))
        _band(ax, _period(d, "effective_return_level"), effective, "tab:red",
              f"GEV with trend, at {d.attrs.get('trend_covariate', 'covariate')} {at}", "-.")
        parts.append(f"Red dash-dotted: the effective return levels of the GEV whose location "
                     f"follows {d.attrs.get('trend_covariate', 'the covariate')}, at {at}.")
    ref = interval(reference, "return_level")
    if reference is not d and ref is not None:
        ax.plot(_period(reference, "return_level"), ref[0], ":", color=colour(reference),
                label=f"{reference.attrs['label']}: GPD estimate")
    estimates = [levels[0] for levels in (gpd, gev) if levels is not None]
    top = np.nanmax(np.concatenate([np.ravel(e) for e in estimates]))
    if np.isfinite(top):  # a band that explodes at long periods must not flatten the rest
        bottom = ax.get_ylim()[0]
        ax.set_ylim(bottom, min(ax.get_ylim()[1], bottom + 2.0 * (top - bottom)))
    name = series_name(d) or "series"
    ax.set_xscale("log")
    ax.set(xlabel=f"return period{_in(d.attrs.get('time_units', ''))}",
           ylabel=f"{readable(name)}{_in(series_units(d, name))}",
           title=f"return levels of the {readable(name)}: {label}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    caption = (f"Return levels of the {readable(name)} of {label} with {confidence} confidence "
               f"bands (cut at twice the highest estimate). {' '.join(p for p in parts if p)}")
    return Panel("return-levels", caption, figure)


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
    figure, ax = _axes()
    for j, r in enumerate(chosen):
        ax.plot(times, values[r], color=colormaps["Dark2"](j), linewidth=0.9, label=names(r))
    marked = np.isin(peak_realisation, chosen)
    if marked.any():
        ax.plot(peak_time[marked], peak_value[marked], "o", color="black", markerfacecolor="none",
                markersize=6, label="cluster peaks")
    threshold = scalar(d, "pot_threshold")
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                   label=f"threshold u = {significant(threshold)}")
    units = _time_axis(ax, times, d.attrs.get("time_units", ""))
    ax.set(xlabel=f"{time_dim}{_in(units)}", ylabel=f"{readable(name)}{_in(series_units(d, name))}",
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


def field_maps(diagnostics: list[xr.Dataset], name: str) -> list[Panel]:
    """One map per diagnostic of ``exceedance_map`` or ``temporal_maximum``, shared colours."""
    fields = [(d, _space_only(d, name)) for d in diagnostics if name in d]
    fields = [(d, field) for d, field in fields if field.ndim in (1, 2)]
    if not fields:
        return []
    key, title, cmap = MAPS[name]
    found = []
    for d, field in fields:
        # One colour scale for the maps of one quantity, so that runs compare by eye.
        same = [f for other, f in fields if _quantity(other) == _quantity(d)]
        low = 0.0 if name == "exceedance_map" else min(float(f.min()) for f in same)
        limits = (low, max(float(f.max()) for f in same))
        label = "fraction of time above the threshold" if name == "exceedance_map" else _quantity(d)
        figure = field_figure(field, title=f"{title}: {d.attrs['label']}", label=label,
                              cmap=cmap, limits=limits)
        found.append(Panel(key, _map_caption(d, name), figure))
    return found


def spectrum(diagnostics: list[xr.Dataset]) -> Panel | None:
    """Energy spectra on log-log axes."""
    have = [d for d in diagnostics if "energy_spectrum" in d]
    if not have:
        return None
    figure, ax = _axes()
    for d in have:
        energy = d["energy_spectrum"]
        k = energy["wavenumber"].values if "wavenumber" in energy.coords else np.arange(energy.size)
        keep = (k > 0) & (energy.values > 0)
        ax.loglog(k[keep], energy.values[keep], color=colour(d), label=d.attrs["label"])
    # Wavenumbers read "2", "3", not "2 × 10⁰", on the short ranges of our grids.
    ax.xaxis.set_major_formatter(LogFormatter())
    ax.xaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.5)))
    ax.set(xlabel="wavenumber", ylabel="energy", title="energy spectrum")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    caption = "Energy spectrum E(k) against wavenumber k; non-positive values are left out."
    return Panel("spectrum", caption, figure)


# --- helpers -------------------------------------------------------------------------------


def _axes() -> tuple[Figure, Axes]:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    return figure, figure.add_subplot()


def _positive(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)  # log axis: zeros are gaps, not -inf


def _in(units: str) -> str:
    return f" ({units})" if units else ""


def _quantity(d: xr.Dataset) -> str:
    return f"{d.attrs.get('variable', 'value')}{_in(d.attrs.get('units', ''))}"


def _period(d: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(d[name]["return_period"].values, dtype=float)


def _band(ax: Axes, period: np.ndarray, levels: tuple, colour_: str, label: str,
          style: str) -> None:
    estimate, lower, upper = levels
    ax.fill_between(period, lower, upper, color=colour_, alpha=0.18, linewidth=0)
    ax.plot(period, estimate, style, color=colour_, linewidth=1.6, label=label)


def _excesses(d: xr.Dataset) -> np.ndarray | None:
    threshold = scalar(d, "pot_threshold")
    if "peak_value" not in d or threshold is None:
        return None
    excess = np.sort(d["peak_value"].values.astype(float) - threshold)
    excess = excess[np.isfinite(excess)]
    return excess if excess.size else None


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
    fit = (f"GPD fitted above u = {significant(threshold)} (ξ = {significant(shape[0])} "
           f"[{significant(shape[1])}, {significant(shape[2])}])." if shape else "")
    if not rate or not peaks.size:
        return fit
    n = peaks.size
    ax.plot((n + 1) / (np.arange(1, n + 1) * rate), peaks, "o", color=colour(d),
            markerfacecolor="none", markersize=5, label=f"{n} cluster peaks")
    return (f"{fit} Circles: the {n} cluster peaks at empirical return period (n + 1) / "
            f"(rank · λ), λ = {significant(rate)} clusters per "
            f"{'year' if d.attrs.get('time_units') == 'years' else 'time unit'}.")


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
    units = d.attrs.get("time_units") or "time units"
    blocks = (f"{d.attrs['block']} maxima" if units == "years" and "block" in d.attrs
              else f"maxima of blocks of {significant(block)} {units}")
    return (f"Grey: GEV fitted to the {m} {blocks}, squares at return period block length · "
            "(m + 1) / rank.")


def _space_only(d: xr.Dataset, name: str) -> xr.DataArray:
    """The map over the space dims; any other dim is reduced to its first index."""
    field = d[name]
    space = [dim for dim in dims_attr(d, "space_dims") if dim in field.dims]
    if not space:
        space = [str(dim) for dim in field.dims[-2:]]
    return field.isel({dim: 0 for dim in field.dims if dim not in space}).transpose(*space)


def _map_caption(d: xr.Dataset, name: str) -> str:
    variable = d.attrs.get("variable", "the field")
    if name == "temporal_maximum":
        return f"Maximum of {variable} over time (and realisations) at each point: {d.attrs['label']}."
    attrs = d[name].attrs
    level = attrs.get("threshold_quantile")
    quantile = (f", its {significant(level)} quantile" if level is not None
                and np.isfinite(float(level)) else "")
    return (f"Fraction of times {variable} exceeds {significant(attrs.get('threshold'))}"
            f"{quantile}, at each point: {d.attrs['label']}. The colour scale is shared by "
            "maps of the same variable.")
