"""Extreme-event diagnostics with Dask (``diagnose``) and the tail metrics it builds on."""

from assimilate.diagnostics.diagnose import diagnose, open_data, summary
from assimilate.diagnostics.gridded import fit_per_point
from assimilate.diagnostics.quantiles import histogram_quantile
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
