"""GPD or GEV: the rule of ``choice.advice`` picks the model that holds for the record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from assimilate.diagnostics import DiagnoseSettings, diagnose, summary
from assimilate.diagnostics.choice import anderson_darling

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _daily(values: np.ndarray) -> xr.DataArray:
    time = pd.date_range("1990-01-01", periods=len(values), freq="D")
    return xr.DataArray(values, dims="time", coords={"time": time}, name="x",
                        attrs={"units": "mm/day"})


def test_anderson_darling_rejects_the_wrong_model_and_keeps_the_right_one() -> None:
    rng = np.random.default_rng(1)
    pareto = stats.genpareto.rvs(0.3, size=300, random_state=rng)
    assert anderson_darling(pareto, stats.genpareto, {"c": 0.3, "loc": 0, "scale": 1})[1] > 0.05
    assert anderson_darling(pareto, stats.expon, {"loc": 0, "scale": 1})[1] < 0.01


def test_a_heavy_tailed_record_trusts_the_gpd() -> None:
    """IID daily values with a Pareto tail: the GPD holds above every threshold."""
    rng = np.random.default_rng(2)
    diag = diagnose(_daily(stats.genpareto.rvs(0.2, size=40 * 365, random_state=rng)),
                    DiagnoseSettings(run_length="none"))
    assert diag.attrs["preferred_fit"] == "gpd", diag.attrs["fit_advice"]
    assert diag.attrs["gpd_threshold_stable"] == 1
    assert "trust the GPD" in summary(diag)


def test_a_threshold_inside_the_bulk_trusts_the_gev() -> None:
    """Ordinary days and rare events from another population: the 0.9 quantile lies in the
    ordinary days' bulk, so its excesses mix the two and no GPD holds; the annual maxima
    all come from the events, and their GEV does."""
    rng = np.random.default_rng(3)
    n = 40 * 365
    values = rng.normal(0.0, 1.0, n)
    events = rng.random(n) < 0.05
    values[events] = rng.normal(6.0, 0.3, events.sum())
    diag = diagnose(_daily(values), DiagnoseSettings(run_length="none"))
    assert diag.attrs["preferred_fit"] == "gev", diag.attrs["fit_advice"]
    assert diag.attrs["gpd_ad_p_value"] < 0.05 or diag.attrs["gpd_threshold_stable"] == 0
    assert diag.attrs["gev_ad_p_value"] >= 0.05
