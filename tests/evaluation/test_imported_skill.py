"""Forecast skill on imported data (a cut of the shipped ERA5 file): no simulator, so the
diurnal climatology of the training days stands beside persistence and climatology."""

from __future__ import annotations

import numpy as np
import pytest

from assimilate.evaluation.forecast_skill import SkillSettings, evaluate_forecast, format_table
from assimilate.models.forecaster import load_forecaster
from pde.io.errors import StoreError
from pde.io.store import open_trajectories


def test_a_forecaster_trains_on_a_bounded_imported_grid(pilot) -> None:
    forecaster = load_forecaster(pilot["checkpoint"])
    assert forecaster.model.backbone.periodic is False
    assert tuple(forecaster.increment_std.shape) == (9, 13)
    assert forecaster.interval == 1.0


def test_the_diurnal_baseline_is_the_training_days_mean_at_each_hour(pilot) -> None:
    settings = SkillSettings(n_steps=6, n_members=2, every=6, climatology=str(pilot["train"]),
                             robust=False)
    result = evaluate_forecast(pilot["checkpoint"], pilot["test"], settings, progress=False)
    assert list(result["method"].values) == ["ardm", "diurnal", "persistence", "climatology"]
    assert result.attrs["n_initial"] == 7  # starts at hours 0, 6, ..., 36 of the 48
    train = open_trajectories(pilot["train"])["t2m"].values[:3]  # day 4 validated
    hourly = train.mean(0).astype(np.float64)  # (24, y, x): the training days at each hour
    test = open_trajectories(pilot["test"])["t2m"].values[0].astype(np.float64)
    lead = 6  # state start + 1 + lead is at hour (start + 1 + lead) % 24 of its day
    expected = np.mean([np.sqrt(((hourly[(start + 1 + lead) % 24] - test[start + 1 + lead])
                                 ** 2).mean()) for start in range(0, 42, 6)])
    rmse = float(result["rmse"].isel(time=-1).sel({"method": "diurnal"}))
    np.testing.assert_allclose(rmse, expected, rtol=1e-4)
    assert "diurnal" in format_table(result)
    with pytest.raises(StoreError, match="cut.nc. is not a Zarr store"):
        evaluate_forecast(pilot["checkpoint"], pilot["test"],
                          SkillSettings(n_steps=6, climatology=str(pilot["root"] / "cut.nc")),
                          progress=False)
