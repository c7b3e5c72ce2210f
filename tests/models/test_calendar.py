"""Calendar conditioning (``forecaster.calendar``): the features, the windows that carry
them, and a forecaster of imported data that sees the hour of the day in every rollout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.models.calendar import calendar_features
from assimilate.models.forecaster import conditioning, load_forecaster, rollout
from assimilate.training.batches import Normalisation, WindowSampler
from pde.io.store import open_trajectories


def test_the_hour_of_day_is_a_point_on_the_circle() -> None:
    times = np.array(["2019-03-05T00:00", "2019-03-05T06:00", "2019-03-05T23:00",
                      "2019-03-06T01:00", "2019-03-06T18:00"], dtype="datetime64[ns]")
    sin, cos = calendar_features(times, ["hour_of_day"]).T
    np.testing.assert_allclose(sin[:2], [0, 1], atol=1e-6)
    np.testing.assert_allclose(cos[:2], [1, 0], atol=1e-6)
    np.testing.assert_allclose([sin[2], cos[2]], [-sin[3], cos[3]], atol=1e-6)  # 23 h by 01 h
    np.testing.assert_allclose([sin[4], cos[4]], [-1, 0], atol=1e-6)


def test_the_day_of_year_turns_once_a_year() -> None:
    times = np.array(["2019-01-01T00:00", "2019-07-02T12:00", "2019-12-31T23:00"],
                     dtype="datetime64[ns]")
    features = calendar_features(times, ["hour_of_day", "day_of_year"])
    assert features.shape == (3, 4) and features.dtype == np.float32
    sin, cos = features[:, 2:].T
    np.testing.assert_allclose([sin[0], cos[0]], [0, 1], atol=1e-6)
    assert cos[1] < -0.99  # half a year on
    assert abs(sin[2]) < 0.02 and cos[2] > 0.99  # back where it started


def test_calendar_features_refuse_plain_numbers() -> None:
    with pytest.raises(TypeError, match="datetime64"):
        calendar_features(np.arange(3.0), ["hour_of_day"])


def test_windows_carry_the_features_of_their_states() -> None:
    n_traj, n_time = 3, 10
    values = np.arange(n_traj * n_time, dtype=np.float32).reshape(n_traj, n_time, 1, 1)
    field = xr.DataArray(np.broadcast_to(values, (n_traj, n_time, 4, 4)).copy(),
                         dims=("trajectory", "time", "y", "x"), name="f")
    features = values[..., 0] * np.array([1.0, -1.0], np.float32)  # (traj, time, 2)
    sampler = WindowSampler(field, np.array([0, 2]), Normalisation(0.0, 1.0), window=3,
                            features=features)
    windows, drawn = sampler(64, torch.Generator().manual_seed(0))
    assert windows.shape == (64, 3, 4, 4) and drawn.shape == (64, 3, 2)
    np.testing.assert_array_equal(drawn[..., 0].numpy(), windows[:, :, 0, 0].numpy())
    np.testing.assert_array_equal(drawn[..., 1].numpy(), -windows[:, :, 0, 0].numpy())
    assert not np.isin(windows[:, :, 0, 0].numpy(), values[1]).any()  # trajectory 1 left out


def test_conditioning_adds_one_constant_plane_per_feature() -> None:
    history = torch.randn(2, 3, 5, 7)
    cond = conditioning(history, torch.tensor([[0.5, -1.0], [0.0, 2.0]]))
    assert cond.shape == (2, 5, 5, 7)
    torch.testing.assert_close(cond[:, :3], history)
    assert (cond[0, 3] == 0.5).all() and (cond[1, 4] == 2.0).all()
    assert conditioning(history, None) is history


def test_a_forecaster_with_a_calendar_forecasts_by_the_hour(pilot) -> None:
    forecaster = load_forecaster(pilot["checkpoint"])
    assert forecaster.calendar == ["hour_of_day"]
    test = open_trajectories(pilot["test"])
    initial = test["t2m"].values[0, :2]
    start = test["valid_time"].values[0, 1]
    runs = [rollout(forecaster, initial, 3, 2, seed=5, valid_time=start + np.timedelta64(h, "h"))
            ["t2m"].values for h in (0, 0, 12)]
    np.testing.assert_array_equal(runs[0], runs[1])  # same hour, same seed: same forecast
    assert np.abs(runs[0][:, 1:] - runs[2][:, 1:]).max() > 1e-4  # the hour changes it
    with pytest.raises(ValueError, match="hour_of_day: give the valid times"):
        rollout(forecaster, initial, 2)


def test_observations_of_imported_data_carry_the_calendar_into_the_analysis(pilot,
                                                                          tmp_path) -> None:
    from assimilate.config import load_config
    from assimilate.da.climatology import Climatology
    from assimilate.da.contract import assimilate
    from assimilate.da.inputs.fields import grid_of
    from assimilate.da.methods import build_method
    from assimilate.observe import Observations, observe

    test = open_trajectories(pilot["test"])
    (tmp_path / "regimes.yaml").write_text(
        "imported:\n  five: {operator: sites, count: 5, seed: 1, every: 2, error_std: 0.3}\n")
    ds = observe(pilot["test"], "five", regimes_path=tmp_path / "regimes.yaml", progress=False)
    np.testing.assert_array_equal(ds["start_time"].values, test["valid_time"].values[:, 0])
    config = load_config(pilot["root"] / "config.yaml")
    grid = grid_of(config)
    observations = Observations.from_dataset(ds, **grid.observation_grid())
    analysis = assimilate(build_method("free", {"model": "forecaster"}), observations,
                          initial=None, config=config,
                          forecaster=load_forecaster(pilot["checkpoint"]),
                          climatology=Climatology.of_states(
                              open_trajectories(pilot["train"])["t2m"].values, "train"),
                          n_members=2, n_steps=4, progress=False)
    np.testing.assert_array_equal(analysis["valid_time"].values,
                                  test["valid_time"].values[:, :5])


def test_a_calendar_that_contradicts_the_observations_is_refused(pilot) -> None:
    from assimilate.config import load_config
    from assimilate.da.inputs.fields import grid_of
    from assimilate.observe import Observations, observe
    from assimilate.observe.times import Calendar
    from pde.io.errors import ConfigError

    ds = observe(pilot["test"], "stations-15-3h", progress=False)
    grid = grid_of(load_config(pilot["root"] / "config.yaml"))
    observations = Observations.from_dataset(ds, **grid.observation_grid())
    agreeing = observations.on_calendar(Calendar.parse("2019-03-05T00:00,1h"))
    np.testing.assert_array_equal(agreeing.start_times, observations.start_times)
    with pytest.raises(ConfigError, match="the calendar puts model time 0 at 2019-03-05T06:00"):
        observations.on_calendar(Calendar.parse("2019-03-05T06:00,1h"))
