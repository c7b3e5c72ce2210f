"""Tail scores of compared fields (emulator, forecast, analysis) against the diagnosed one.

``comparison`` reads each compared field once, in one Dask graph, for the tail scores of
:mod:`assimilate.diagnostics.tails` (kurtosis and skewness ratios, tail KS statistic,
exceedance ratios, log-density distance), its histogram on the diagnosed field's bins and,
for a paired ensemble (dim ``member``) on the same grid, the threshold-weighted CRPS
(``scoringrules.twcrps_ensemble``).
"""

from __future__ import annotations

from collections.abc import Mapping

import dask
import dask.array as da
import numpy as np
import scoringrules
import xarray as xr

from assimilate.diagnostics import sketch, tails

__all__ = ["comparison", "threshold_weighted_crps"]


def comparison(field: xr.DataArray, others: Mapping[str, xr.DataArray],
               tail_quantile: float, tail_threshold: float,
               edges: np.ndarray, shift: float = 0.0) -> xr.Dataset:
    """Tail scores of each compared field against ``field`` (the truth), dim ``compared``;
    its histogram binned less ``shift`` (near the values, as the diagnosed field's)."""
    rows = []
    for label, other in others.items():
        other = other if isinstance(other.data, da.Array) else other.chunk()
        scores, counts, lo, hi = dask.compute(  # one graph: the compared store read together
            tails.tail_scores(other, field, quantile=tail_quantile),
            sketch.sketch_counts(other.data - shift), other.min(), other.max())
        for score in scores.data_vars.values():
            score.attrs = {}  # ratios and distances: not in the field's units
        density, _ = sketch.display_histogram(np.asarray(counts), float(lo) - shift,
                                              float(hi) - shift, edges - shift)
        scores["compared_histogram_density"] = ("bin", density)
        scores["twcrps"] = threshold_weighted_crps(other, field, tail_threshold)
        rows.append(scores.expand_dims(compared=[label]))
    out = xr.concat(rows, "compared")
    out = out.assign_coords(compared=np.array(list(others), dtype=object))
    return out.rename({"quantile": "tail_quantile"}) if "quantile" in out.dims else out


def threshold_weighted_crps(forecast: xr.DataArray, truth: xr.DataArray,
                            threshold: float) -> float:
    """Mean threshold-weighted CRPS (weight on values above ``threshold``) of a paired
    ensemble (dim ``member``); NaN when ``forecast`` is not an ensemble of ``truth``."""
    if "member" not in forecast.dims:
        return np.nan
    rest = forecast.isel(member=0, drop=True)
    if dict(rest.sizes) != dict(truth.sizes):
        return np.nan
    forecast, truth = xr.align(forecast, truth, join="exact", exclude=["member"])
    forecast = forecast.chunk({"member": -1}) if forecast.chunks else forecast
    score = xr.apply_ufunc(
        lambda f, o: scoringrules.twcrps_ensemble(o, f, threshold, np.inf, m_axis=-1),
        forecast, truth, input_core_dims=[["member"], []], dask="parallelized",
        output_dtypes=[np.float64])
    return float(score.mean().compute())
