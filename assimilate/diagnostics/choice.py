"""GPD or GEV: which tail model of one series to trust, by a rule a reader can check.

The two fits read different parts of the record: the GPD the declustered peaks over a
threshold, the GEV one maximum per block. Where both models hold they agree within their
intervals; where they disagree, at least one is wrong for this record. The rule:

1. **Goodness of fit.** Each fit's Anderson–Darling statistic, A² = −n − (1/n) Σᵢ (2i − 1)
   [log uᵢ + log(1 − u₍ₙ₊₁₋ᵢ₎)] over the fitted CDF's values uᵢ of the sorted data, with
   the p-value of a fully specified null (``scipy.stats.goodness_of_fit``, Monte Carlo).
   Treating the fitted parameters as known makes the test conservative: a p-value below
   ``SIGNIFICANCE`` is a real misfit (Choulakian & Stephens, "Goodness-of-fit tests for the
   generalized Pareto distribution", Technometrics 43, 2001, give the sharper tables).
2. **Threshold stability** (GPD only). Above a threshold where the GPD holds, the shape
   estimated over higher thresholds stays the same within sampling error (Coles, *An
   Introduction to Statistical Modeling of Extreme Values*, 2001, sec. 4.3.4): the
   threshold is stable when its shape lies inside the interval of every higher threshold
   of the stability table that has a fit.
3. **The choice.** The GPD where it passes both (it uses every cluster, not one value a
   block, so its intervals are narrower); else the GEV where it fits; else neither, and the
   QQ plots say why. Whether the two agree (their intervals overlap at every return period)
   is reported beside the choice.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

__all__ = ["SIGNIFICANCE", "advice", "anderson_darling"]

SIGNIFICANCE = 0.05
MONTE_CARLO_SAMPLES = 999


def anderson_darling(data: np.ndarray, distribution: stats.rv_continuous,
                     parameters: dict[str, float]) -> tuple[float, float]:
    """``(A², p-value)`` of ``data`` against ``distribution`` with ``parameters`` known."""
    result = stats.goodness_of_fit(distribution, np.asarray(data, dtype=np.float64),
                                   known_params=parameters, statistic="ad",
                                   n_mc_samples=MONTE_CARLO_SAMPLES,
                                   rng=np.random.default_rng(0))
    return float(result.statistic), float(result.pvalue)


def _estimate(diag: xr.Dataset, name: str) -> float:
    return float(diag[name].sel(interval="estimate"))


def _gpd_test(diag: xr.Dataset) -> tuple[float, float] | None:
    if "gpd_shape" not in diag or "peak_value" not in diag:
        return None
    excesses = diag["peak_value"].values - float(diag["pot_threshold"])
    return anderson_darling(excesses, stats.genpareto,
                            {"c": _estimate(diag, "gpd_shape"), "loc": 0.0,
                             "scale": _estimate(diag, "gpd_scale")})


def _gev_test(diag: xr.Dataset) -> tuple[float, float] | None:
    if "gev_shape" not in diag or "block_maximum" not in diag:
        return None
    maxima = diag["block_maximum"].values
    return anderson_darling(maxima[np.isfinite(maxima)], stats.genextreme,
                            {"c": -_estimate(diag, "gev_shape"),
                             "loc": _estimate(diag, "gev_location"),
                             "scale": _estimate(diag, "gev_scale")})


def threshold_stable(diag: xr.Dataset, pot_quantile: float) -> bool | None:
    """Whether the GPD shape at ``pot_quantile`` lies inside the interval of the shape at
    every higher threshold of the stability table (None: nothing to compare with)."""
    if "stability_shape" not in diag or "gpd_shape" not in diag:
        return None
    shape = _estimate(diag, "gpd_shape")
    table = diag["stability_shape"]
    higher = table.sel(stability_quantile=table["stability_quantile"] > pot_quantile + 1e-9)
    lower, upper = (higher.sel(interval=k).values for k in ("lower", "upper"))
    fitted = np.isfinite(lower) & np.isfinite(upper)
    if not fitted.any():
        return None
    return bool(((lower[fitted] <= shape) & (shape <= upper[fitted])).all())


def _agree(diag: xr.Dataset) -> bool | None:
    """Whether the GPD and GEV return-level intervals overlap at every period both give."""
    if "return_level" not in diag or "gev_return_level" not in diag:
        return None
    gpd, gev = diag["return_level"].values, diag["gev_return_level"].values
    both = np.isfinite(gpd[:, 1:]).all(axis=1) & np.isfinite(gev[:, 1:]).all(axis=1)
    if not both.any():
        return None
    return bool(((gpd[both, 1] <= gev[both, 2]) & (gev[both, 1] <= gpd[both, 2])).all())


def advice(diag: xr.Dataset, pot_quantile: float) -> dict[str, object]:
    """The attrs of the choice: each fit's A² and p-value, the threshold's stability, the
    ``preferred_fit`` (``gpd``, ``gev`` or ``none``) and a sentence saying why."""
    gpd, gev = _gpd_test(diag), _gev_test(diag)
    stable = threshold_stable(diag, pot_quantile)
    out: dict[str, object] = {}
    for name, test in (("gpd", gpd), ("gev", gev)):
        if test is not None:
            out[f"{name}_anderson_darling"], out[f"{name}_ad_p_value"] = test
    if stable is not None:
        out["gpd_threshold_stable"] = int(stable)
    gpd_holds = gpd is not None and gpd[1] >= SIGNIFICANCE and stable is not False
    gev_holds = gev is not None and gev[1] >= SIGNIFICANCE
    agree = _agree(diag)
    if agree is not None:
        out["fits_agree"] = int(agree)
    out["preferred_fit"], out["fit_advice"] = _verdict(gpd, gev, stable, gpd_holds,
                                                       gev_holds, agree)
    return out


def _p(value: float) -> str:
    """A Monte Carlo p-value as text: ``p > 0.99`` where no simulated statistic was lower."""
    return "p > 0.99" if value > 0.99 else f"p = {value:.2g}"


def _verdict(gpd, gev, stable, gpd_holds: bool, gev_holds: bool,
             agree: bool | None) -> tuple[str, str]:
    agreement = "" if agree is None else \
        ("; the two agree within their intervals" if agree else
         "; the two disagree beyond their intervals")
    if gpd_holds:
        return "gpd", (f"trust the GPD: it fits its peaks (Anderson-Darling {_p(gpd[1])}) "
                       "and its shape is stable above the threshold"
                       f"{agreement}")
    why = "no GPD fit" if gpd is None else \
        (f"the GPD misfits its peaks ({_p(gpd[1])})" if gpd[1] < SIGNIFICANCE else
         "the GPD shape changes with the threshold" if stable is False else "")
    if gev_holds:
        return "gev", f"trust the GEV ({_p(gev[1])}): {why}{agreement}"
    gev_why = "no GEV fit" if gev is None else f"the GEV misfits its maxima ({_p(gev[1])})"
    return "none", f"trust neither: {why}; {gev_why}; read the QQ plots"
