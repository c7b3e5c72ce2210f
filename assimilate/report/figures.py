"""The report's figures of distributions and maps, one function each; a function returns
None when its data is absent (the extreme-value figures are in ``extreme_figures``).

Distributions (histogram, QQ, spectrum) overlay every diagnostic in its own colour; maps
are drawn once per diagnostic and share one colour scale. Every figure is a
``matplotlib.figure.Figure`` made without pyplot, so no global backend is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from assimilate.report.maps import FIGURE_SIZE, field_figure
from assimilate.report.schema import (
    colour,
    dims_attr,
    in_units,
    interval,
    physical,
    quantity,
    scalar,
    series_name,
    series_units,
    significant,
)

__all__ = ["Panel", "field_maps", "histogram", "new_axes", "positive", "qq", "spectrum"]

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


def histogram(diagnostics: list[xr.Dataset]) -> Panel | None:
    """Densities on a log axis, with the compared densities and a Gaussian for reference."""
    have = [d for d in diagnostics if "histogram_density" in d]
    if not have:
        return None
    figure, ax = new_axes()
    colours = {d.attrs["label"]: colour(d) for d in diagnostics}
    lowest, highest = [], []
    notes = ["Histogram density on a log axis, so that the tails show; empty bins are left out."]
    for d in have:
        edges = np.append(d["bin_left"].values, d["bin_right"].values[-1])
        density = positive(d["histogram_density"].values)
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
    ax.set(xlabel=" / ".join(dict.fromkeys(quantity(d) for d in have)),
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
        density = positive(d["compared_histogram_density"].sel(compared=name).values)
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
    figure, ax = new_axes()
    extent = []
    for d in have:
        excess = _excesses(d)
        shape, scale = interval(d, "gpd_shape")[0], interval(d, "gpd_scale")[0]
        probability = (np.arange(1, excess.size + 1) - 0.5) / excess.size
        model = scipy.stats.genpareto.ppf(probability, c=float(shape), scale=float(scale))
        ax.plot(model, excess, "o", markersize=4, color=colour(d), alpha=0.8,
                label=f"{d.attrs['label']}: ξ = {significant(shape)}, σ = "
                      f"{physical(scale, series_units(d, series_name(d)))}, "
                      f"{excess.size} peaks")
        extent += [np.nanmin(model), np.nanmax(model), excess[0], excess[-1]]
    line = [min(extent), max(extent)]
    ax.plot(line, line, "-", color="0.4", linewidth=1, label="1:1")
    units = series_units(have[0], series_name(have[0]))
    ax.set(xlabel=f"GPD quantile of the excess{in_units(units)}",
           ylabel=f"observed excess over the threshold{in_units(units)}",
           title="peaks over threshold against the fitted GPD")
    ax.legend(fontsize="small")
    caption = ("Quantile-quantile plot of the cluster peaks' excesses y = peak − u over the "
               "threshold u, sorted, against the fitted generalised Pareto quantiles "
               "G⁻¹((i − 0.5)/n; ξ, σ). Points on the 1:1 line mean the GPD describes the tail; "
               "points bending above it at the top mean a heavier tail than fitted.")
    return Panel("qq", caption, figure)


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
        same = [f for other, f in fields if quantity(other) == quantity(d)]
        low = 0.0 if name == "exceedance_map" else min(float(f.min()) for f in same)
        limits = (low, max(float(f.max()) for f in same))
        label = (f"fraction of time above the {_level_name(d)}" if name == "exceedance_map"
                 else quantity(d))
        figure = field_figure(field, title=f"{title}: {d.attrs['label']}", label=label,
                              cmap=cmap, limits=limits)
        found.append(Panel(key, _map_caption(d, name), figure))
    return found


def _level_name(d: xr.Dataset) -> str:
    level = float(d["exceedance_map"].attrs.get("threshold_quantile", np.nan))
    return f"{significant(level)} quantile" if np.isfinite(level) else "threshold"


def spectrum(diagnostics: list[xr.Dataset]) -> Panel | None:
    """Energy spectra on log-log axes."""
    have = [d for d in diagnostics if "energy_spectrum" in d]
    if not have:
        return None
    figure, ax = new_axes()
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


def new_axes() -> tuple[Figure, Axes]:
    """One figure of the report's size, made without pyplot, and its axes."""
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    return figure, figure.add_subplot()


def positive(values: np.ndarray) -> np.ndarray:
    """``values`` with zeros and negatives as NaN: gaps on a log axis, not -inf."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)  # log axis: zeros are gaps, not -inf


def _excesses(d: xr.Dataset) -> np.ndarray | None:
    threshold = scalar(d, "pot_threshold")
    if "peak_value" not in d or threshold is None:
        return None
    excess = np.sort(d["peak_value"].values.astype(float) - threshold)
    excess = excess[np.isfinite(excess)]
    return excess if excess.size else None


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
    return (f"Fraction of times {variable} exceeds {_map_level(d)}, at each point: "
            f"{d.attrs['label']}. The colour scale is shared by maps of the same variable; "
            "grey points have no data.")


def _map_level(d: xr.Dataset) -> str:
    """The exceedance map's level named by its quantile, with the record's value of that
    quantile (the summary's); the map's own threshold was fixed from a sample before the
    pass, so a second, slightly different number would only confuse."""
    attrs = d["exceedance_map"].attrs
    level = float(attrs.get("threshold_quantile", np.nan))
    if not np.isfinite(level):
        return physical(attrs.get("threshold"), d.attrs.get("units", ""))
    value = None
    if "quantile" in d and "probability" in d["quantile"].dims:
        match = np.isclose(d["probability"].values.astype(float), level)
        value = float(d["quantile"].values[np.argmax(match)]) if match.any() else None
    text = f"its {significant(level)} quantile"
    return text if value is None else f"{text} ({physical(value, d.attrs.get('units', ''))})"
