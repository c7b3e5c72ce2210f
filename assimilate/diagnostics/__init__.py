"""Extreme-event diagnostics with Dask (``diagnose``) and the tail metrics it builds on.

    from assimilate.diagnostics import DiagnoseSettings, diagnose, summary
    diag = diagnose("data/kf.zarr", DiagnoseSettings(pot_quantile=0.9), out="kf.diag.zarr")

Modules: ``diagnose`` (the verb), ``settings`` (its options), ``layout`` (the field and its
dims' roles), ``onepass`` and ``sketch`` (the one pass over the store), ``series`` and
``gridded``/``pointwise`` (the extreme-value analysis of a series and of every point of a
map), ``fitting`` (the one GEV/GPD fitter they share), ``extremes`` (peaks, blocks and the
fits of one series), ``trend``, ``calendar``, ``comparison``, ``tails`` and ``quantiles``
(tail scores), ``common`` (their input checks and moments), ``summary``.
"""

from assimilate.diagnostics.diagnose import diagnose
from assimilate.diagnostics.gridded import fit_per_point
from assimilate.diagnostics.layout import open_data
from assimilate.diagnostics.quantiles import histogram_quantile
from assimilate.diagnostics.settings import (
    ComputeSettings,
    DiagnoseSettings,
    ExtremeSettings,
    MapSettings,
)
from assimilate.diagnostics.summary import summary
from assimilate.diagnostics.tails import (
    exceedance_ratios,
    kurtosis,
    kurtosis_ratio,
    log_density_distance,
    skewness,
    skewness_ratio,
    tail_ks_statistic,
    tail_scores,
)

__all__ = [
    "ComputeSettings",
    "DiagnoseSettings",
    "ExtremeSettings",
    "MapSettings",
    "diagnose",
    "exceedance_ratios",
    "fit_per_point",
    "histogram_quantile",
    "kurtosis",
    "kurtosis_ratio",
    "log_density_distance",
    "open_data",
    "skewness",
    "skewness_ratio",
    "summary",
    "tail_ks_statistic",
    "tail_scores",
]
