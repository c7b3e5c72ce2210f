"""Maps of the per-point extreme-value fits (``diagnose(..., per_point=True)``).

For each diagnostic holding them: the return level for the period nearest ``MAP_PERIOD``
(20 years for calendar data) from the GEV of block maxima, the width of its confidence
interval, the GEV scale, the GEV shape on a diverging scale centred on 0 (heavy tails
red, bounded tails blue) and, with per-point trends, the trend of the GEV location. Latitude/longitude fields are drawn on cartopy maps by ``maps.field_figure``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests
from assimilate.report.figures import Panel
from assimilate.report.maps import field_figure
from assimilate.report.schema import quantity, significant

__all__ = ["MAP_PERIOD", "point_maps"]

MAP_PERIOD = 20.0


def point_maps(diagnostics: list[xr.Dataset]) -> list[Panel]:
    """Return-level, interval-width and shape maps of every diagnostic with per-point fits."""
    found = []
    for d in diagnostics:
        if "point_gev_return_level" not in d:
            continue
        levels = d["point_gev_return_level"]
        periods = levels["return_period"].values.astype(float)
        period = float(periods[np.argmin(np.abs(np.log(periods / MAP_PERIOD)))])
        at = levels.sel(return_period=period)
        units = levels["return_period"].attrs.get("units", "") or d.attrs.get("time_units", "")
        value_label = quantity(d)
        label, block = d.attrs["label"], d.attrs.get("point_block", "block")
        confidence = f"{float(d.attrs.get('point_confidence', 0.95)):.0%}"
        estimate = at.sel(interval="estimate")
        width = at.sel(interval="upper") - at.sel(interval="lower")
        shape = d["point_gev_shape"].sel(interval="estimate")
        missing = int(estimate.isnull().sum())
        gaps = (f" {missing} of {estimate.size} points have no fit (too few maxima or no "
                "data) and are drawn light grey, marked \"no data / no fit\"." if missing
                else "")
        title = (f"{significant(period)}-year return level" if units == "years"
                 else f"return level over {significant(period)} {units or 'time units'}")
        found.append(Panel("return-level-map", (
            f"The {title} of {d.attrs.get('variable')} at "
            f"each point: {label}, from a GEV fitted to the {block} maxima of every point "
            f"separately.{gaps}"),
            field_figure(estimate, title=f"{title}: {label}", label=value_label, cmap="viridis",
                         limits=_limits(estimate))))
        method = d.attrs.get("point_interval_method", "not recorded")
        found.append(Panel("interval-width-map", (
            f"Width of the {confidence} confidence interval of that return level (interval "
            f"method: {method}): where it is wide the map above is uncertain.{gaps}"),
            field_figure(width, title=f"{confidence} interval width: {label}", label=value_label,
                         cmap="magma", limits=_limits(width, zero=True))))
        scale = d["point_gev_scale"].sel(interval="estimate")
        found.append(Panel("scale-map", (
            f"GEV scale σ at each point: {label}, the spread of the {block} maxima.{gaps}"),
            field_figure(scale, title=f"GEV scale σ: {label}", label=value_label,
                         cmap="cividis", limits=_limits(scale, zero=True))))
        if "point_gev_trend" in d:
            found.append(_trend_map(d, label))
        bound = max(float(np.nanmax(np.abs(shape.values), initial=0.0)), 0.1)
        found.append(Panel("shape-map", (
            f"GEV shape ξ at each point: {label}. ξ > 0 (red) is a heavy tail whose return "
            f"levels grow without bound; ξ < 0 (blue) a tail with an upper end.{gaps}"),
            field_figure(shape, title=f"GEV shape ξ: {label}", label="ξ", cmap="RdBu_r",
                         limits=(-bound, bound))))
    return found


def _trend_map(d: xr.Dataset, label: str) -> Panel:
    """The trend of the GEV location at each point, with how many points pass the test."""
    trend = d["point_gev_trend"]
    passed, tested, by_chance = trend_tests(d)
    bound = float(np.nanmax(np.abs(trend.values), initial=0.0)) or 1.0
    units = trend.attrs.get("units", "")
    caption = (f"Trend of the GEV location at each point: {label}, from a GEV whose location "
               f"moves linearly with time, fitted to each point's block maxima. At {passed} of "
               f"{tested} points the likelihood-ratio test rejects a constant location at the "
               f"{SIGNIFICANCE:.0%} level; about {by_chance:.0f} would by chance "
               "alone if nothing changed, so judge the pattern, not single points.")
    return Panel("trend-map", caption, field_figure(
        trend, title=f"trend of the GEV location: {label}", label=units or "per year",
        cmap="BrBG", limits=(-bound, bound)))


def _limits(field: xr.DataArray, zero: bool = False) -> tuple[float, float]:
    values = np.asarray(field.values, dtype=float)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (0.0, 1.0)
    low, high = (0.0 if zero else float(finite.min())), float(finite.max())
    return (low, high if high > low else low + 1.0)
