"""Diagnostics of generated fields against reference data (tails, extremes)."""

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
    "exceedance_ratios",
    "histogram_quantile",
    "kurtosis",
    "kurtosis_ratio",
    "log_density_distance",
    "skewness",
    "skewness_ratio",
    "tail_ks_statistic",
    "tail_scores",
]
