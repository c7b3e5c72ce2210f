"""The autoregressive forecaster: training, rollouts, the correction hook, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.cli import main
from assimilate.config import load_config
from assimilate.evaluation import scores
from assimilate.models.forecaster import load_forecaster, rollout, train_forecaster
from assimilate.training.loop import load_checkpoint
from tests.conftest import TINY_FORECASTER, TINY_KS, write_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forecast")
    data = TINY_KS | {"dataset": TINY_KS["dataset"] | {"steps": 40},
                      "forecaster": TINY_FORECASTER}
    config = write_config(root, data)
    store, checkpoint = root / "ks.zarr", root / "forecaster.pt"
    simulate_and_train(config, store, checkpoint)
    return {"root": root, "store": store, "checkpoint": checkpoint}


def simulate_and_train(config: Path, store: Path, checkpoint: Path) -> None:
    """``assimilate simulate`` then ``assimilate train forecaster``, both succeeding."""
    assert main(["simulate", str(config), "--out", str(store), "--quiet"]) == 0
    assert main(["train", "forecaster", str(config), "--data", str(store),
                 "--out", str(checkpoint), "--quiet"]) == 0


def test_training_reduces_the_validation_loss(trained) -> None:
    log = Path(f"{trained['checkpoint']}.metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["validation_loss"] for line in log]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses


def test_lazy_prefetched_training_matches_in_memory_training(trained) -> None:
    config = load_config(trained["root"] / "config.yaml")
    weights = []
    for limit in (2**30, 0):
        out = trained["root"] / f"limit-{limit}.pt"
        train_forecaster(config, trained["store"], out, steps=4, progress=False,
                         memory_limit=limit)
        weights.append(load_checkpoint(out)["model"])
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, msg=name)


def test_nu_trains_a_student_t_forecaster(trained) -> None:
    out = trained["root"] / "t5.pt"
    assert main(["train", "forecaster", str(trained["root"] / "config.yaml"), "--data",
                 str(trained["store"]), "--out", str(out), "--steps", "2", "--nu", "5",
                 "--quiet"]) == 0
    assert load_forecaster(out).config.forecaster.nu == 5
    assert load_forecaster(trained["checkpoint"]).config.forecaster.nu is None


def test_rollout_shapes_dims_and_attributes(trained) -> None:
    forecaster = load_forecaster(trained["checkpoint"])
    initial = xr.open_zarr(trained["store"])["u"].isel(trajectory=0, time=[5]).values
    ds = rollout(forecaster, initial, n_steps=4, n_members=3, seed=1)
    assert ds["u"].dims == ("member", "time", "x") and ds["u"].shape == (3, 5, 32)
    np.testing.assert_allclose(ds["time"].values, np.arange(5) * 0.2)
    np.testing.assert_array_equal(ds["u"].isel(time=0).values, np.repeat(initial, 3, 0))
    assert ds.attrs["method"] == "ardm" and ds.attrs["nfe"] == 16 and ds.attrs["sub_steps"] == 4
    assert ds.attrs["wall_time_s"] > 0 and ds.attrs["checkpoint"]
    members = ds["u"].isel(time=-1).values
    assert np.isfinite(members).all() and not np.allclose(members[0], members[1])
    again = rollout(forecaster, initial, n_steps=4, n_members=3, seed=1)
    np.testing.assert_array_equal(again["u"].values, ds["u"].values)
    with pytest.raises(ValueError, match="initial_states must have shape \\(1, 32\\)"):
        rollout(forecaster, initial[0], n_steps=2)


def test_correction_hook_runs_at_every_sub_step(trained) -> None:
    forecaster = load_forecaster(trained["checkpoint"])
    initial = xr.open_zarr(trained["store"])["u"].isel(trajectory=1, time=[3]).values
    calls: list[tuple[int, int]] = []

    def control(step: int, history: torch.Tensor):
        assert history.shape == (2, 1, 32)

        def correction(x_next: torch.Tensor, sub_step) -> torch.Tensor:
            calls.append((step, sub_step.index))
            return x_next + 0.5 if sub_step.index == 3 else x_next  # shift the clean sample

        return correction

    plain = rollout(forecaster, initial, n_steps=1, n_members=2, seed=7)
    shifted = rollout(forecaster, initial, n_steps=1, n_members=2, seed=7, control=control)
    assert calls == [(0, 0), (0, 1), (0, 2), (0, 3)]
    expected = 0.5 * forecaster.increment_std * forecaster.normalisation.std
    difference = (shifted["u"] - plain["u"]).isel(time=1).values
    np.testing.assert_allclose(difference, expected, rtol=1e-4)
    calls.clear()
    rollout(forecaster, initial, n_steps=3, n_members=2, seed=7, sub_steps=2, control=control)
    assert calls == [(step, index) for step in range(3) for index in range(2)]


def test_forecast_cli_writes_forecast_and_truth(trained, tmp_path: Path, capsys) -> None:
    out = tmp_path / "forecast.zarr"
    args = ["forecast", str(trained["checkpoint"]), "--init", str(trained["store"]),
            "--trajectory", "2", "--time", "30", "--steps", "15", "--members", "2",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    ds = xr.open_zarr(out)
    truth = xr.open_zarr(trained["store"])["u"].isel(trajectory=2)
    np.testing.assert_array_equal(ds["truth"].isel(time=slice(0, 10)).values,
                                  truth.isel(time=slice(30, 40)).values)
    assert np.isnan(ds["truth"].isel(time=10).values).all(), "past the stored trajectory"
    assert ds.attrs["init_trajectory"] == 2 and ds.attrs["init_time"] == 30
    assert main(args[:-1] + ["--time", "99", "--overwrite"]) == 2
    assert "--time 99 must lie in 0..39" in capsys.readouterr().err
    assert main(["forecast", str(trained["checkpoint"]), "--init", str(trained["store"]),
                 "--steps", "2", "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.e2e
def test_evaluate_on_a_constant_store_gives_zero_persistence_error(trained, tmp_path,
                                                                   capsys) -> None:
    from assimilate.config import load_config
    from pde.io.store import create_store, write_trajectories

    config = load_config(trained["root"] / "config.yaml").with_dataset(trajectories=3, steps=12)
    store = tmp_path / "constant.zarr"
    create_store(store, config, config.simulator.build())
    x = np.arange(32) * 22.0 / 32
    profile = (np.sin(2 * np.pi * 2 * x / 22.0) * np.ones((3, 12, 1))).astype(np.float32)
    write_trajectories(store, "u", 0, profile)
    out = tmp_path / "skill.zarr"
    assert main(["evaluate", "forecast", str(trained["checkpoint"]), "--data", str(store),
                 "--out", str(out), "--steps", "10", "--members", "2", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| persistence |" in table and "| ardm |" in table
    result = xr.open_zarr(out)
    persistence = result.sel({"method": "persistence"})
    np.testing.assert_array_equal(persistence["rmse"].values, 0.0)
    assert float(persistence["high_correlation_time"]) == pytest.approx(2.0)
    climatology = result.sel({"method": "climatology"})
    mean = load_forecaster(trained["checkpoint"]).normalisation.mean
    np.testing.assert_allclose(climatology["rmse"].values,
                               np.sqrt(((profile[0, 0] - mean) ** 2).mean()), rtol=1e-5)
    assert result["crps"].sel({"method": "ardm"}).notnull().all()
    assert result["crps"].sel({"method": "persistence"}).isnull().all()
    assert set(result["method"].values) == {"ardm", "simulator", "persistence", "climatology"}
    assert (tmp_path / "skill.zarr.png").stat().st_size > 10_000


REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "checkpoints").glob("*-forecaster.pt"))
SIMULATED = [path for path in SHIPPED if not path.name.startswith("era5")]  # a simulator's


@pytest.mark.e2e
@pytest.mark.parametrize("checkpoint", SIMULATED, ids=lambda path: path.name)
def test_shipped_checkpoints_load_and_forecast_ten_steps(checkpoint: Path) -> None:
    forecaster = load_forecaster(checkpoint)
    space = tuple(len(values) for values in forecaster.coordinates.values())
    config = forecaster.config.with_dataset(trajectories=1, steps=1)
    simulator = config.simulator.build()
    import jax

    state = simulator.burn_in(simulator.initial_state(jax.random.PRNGKey(7), 1))
    initial = np.asarray(simulator.to_physical(state))
    ds = rollout(forecaster, initial, n_steps=10, n_members=2, seed=0)
    field = ds[forecaster.variable]
    assert field.shape == (2, 11, *space) and np.isfinite(field.values).all()
    climatological = forecaster.normalisation.std
    assert float(np.abs(field).max()) < 10 * climatological, "a shipped model stays bounded"


@pytest.mark.e2e
def test_the_shipped_era5_forecaster_forecasts_the_last_day_of_march() -> None:
    """From two hours of the shipped ERA5 file (not seen in training: day 31), ten hours
    stay finite and within the month's range, and the first hour is far closer to the
    truth than the month's mean field is."""
    forecaster = load_forecaster(REPO / "checkpoints" / "era5-t2m-forecaster.pt")
    with xr.open_dataset(REPO / "examples" / "era5" / "era5-t2m-uk-2019-03.nc") as ds:
        month = ds["t2m"].isel(latitude=slice(None, None, -1)).values  # rising latitude
    start = 30 * 24 + 6  # 31 March, 06:00: the morning warming
    ds = rollout(forecaster, month[start - 1: start + 1], n_steps=10, n_members=2, seed=0,
                 valid_time=np.datetime64("2019-03-31T06:00"))  # the hour it forecasts from
    field = ds["t2m"].values
    assert field.shape == (2, 11, 33, 49) and np.isfinite(field).all()
    assert month.min() - 5 < field.min() and field.max() < month.max() + 5
    truth = month[start + 1]
    forecast_error = np.sqrt(((field[:, 1].mean(0) - truth) ** 2).mean())
    assert forecast_error < 0.5 * np.sqrt(((month.mean(0) - truth) ** 2).mean())


@pytest.mark.e2e
@pytest.mark.parametrize("checkpoint", SIMULATED, ids=lambda path: path.name)
def test_shipped_checkpoints_relax_from_perturbed_states(checkpoint: Path) -> None:
    """From attractor states plus white noise of 0.5 climatological stds, the ensemble std
    is back within 15 % of the climatological std after ten steps, as the physics does
    (the forecaster issue's target is 10 %, measured on 8 x 4 rollouts by evaluate)."""
    import jax

    from assimilate.evaluation.robustness import relaxation, rollout_from
    from assimilate.models.forecaster import ForecasterModel

    forecaster = load_forecaster(checkpoint)
    simulator = forecaster.config.simulator.build()
    state = simulator.burn_in(simulator.initial_state(jax.random.PRNGKey(3), 4))
    _, fields = simulator.trajectory(state, 40)
    fields = np.asarray(fields, dtype=np.float32)
    space = ("y", "x") if fields.ndim == 4 else ("x",)
    spectrum = scores.energy_spectrum(xr.DataArray(fields, dims=("i", "time", *space)))
    norm = forecaster.normalisation
    result = relaxation(rollout_from(ForecasterModel(forecaster).advance),
                        fields[:, -1:], mean=norm.mean, std=norm.std,
                        spectrum=spectrum.mean(("i", "time")), members=2, noise=(0.5,),
                        n_steps=10)
    ratio = result["std_ratio"].sel(noise=0.5)
    assert float(ratio.sel(step=0)) > 1.08, "the start is perturbed"
    assert abs(float(ratio.sel(step=10)) - 1) < 0.15, ratio.values


def test_a_checkpoint_is_shipped() -> None:
    assert any(path.name == "ks-small-forecaster.pt" for path in SHIPPED)


@pytest.mark.e2e
def test_kolmogorov_forecaster_end_to_end(tmp_path: Path) -> None:
    from tests.conftest import TINY_KOLMOGOROV

    settings = TINY_FORECASTER | {"training": TINY_FORECASTER["training"] | {"steps": 10}}
    data = TINY_KOLMOGOROV | {"dataset": TINY_KOLMOGOROV["dataset"] | {"steps": 8},
                              "forecaster": settings}
    config = write_config(tmp_path, data)
    store, checkpoint = tmp_path / "kf.zarr", tmp_path / "kf.pt"
    simulate_and_train(config, store, checkpoint)
    out = tmp_path / "skill.zarr"
    assert main(["evaluate", "forecast", str(checkpoint), "--data", str(store), "--out", str(out),
                 "--steps", "4", "--members", "2", "--quiet"]) == 0
    result = xr.open_zarr(out)
    assert {"enstrophy_error", "dissipation_error", "crps"} <= set(result.data_vars)
    assert result["rmse"].dims == ("method", "time") and result.sizes["time"] == 5
    simulator = result.sel({"method": "simulator"})
    assert float(simulator["nrmse"].isel(time=0)) < 0.2, "1 % perturbation plus coarse-graining"


def test_a_per_point_increment_scale_is_each_points_std_and_drives_the_rollout(trained) -> None:
    config = load_config(trained["root"] / "config.yaml").with_changes(
        "forecaster", increment_scale="point", **{"training.validation_trajectories": 2})
    out = trained["root"] / "point.pt"
    train_forecaster(config, trained["store"], out, steps=2, progress=False)
    forecaster = load_forecaster(out)
    field = xr.open_zarr(trained["store"])["u"].astype(np.float64)
    train = field.isel(trajectory=slice(0, field.sizes["trajectory"] - 2))  # the last 2 validate
    std = (train.diff("time") / forecaster.normalisation.std).std(("trajectory", "time")).values
    noise = config.forecaster.conditioning_noise
    expected = np.sqrt(std**2 + noise.probability * noise.amplitude**2 / 3)
    assert not np.allclose(expected, expected.mean(), rtol=1e-3)  # a map, not one number
    np.testing.assert_allclose(forecaster.increment_std.cpu().numpy(), expected, rtol=1e-5)

    def control(step: int, history: torch.Tensor):
        return lambda x_next, sub_step: x_next + 0.5 if sub_step.index == 3 else x_next

    initial = field.isel(trajectory=1, time=[3]).values.astype(np.float32)
    plain = rollout(forecaster, initial, n_steps=1, n_members=2, seed=7)
    shifted = rollout(forecaster, initial, n_steps=1, n_members=2, seed=7, control=control)
    difference = (shifted["u"] - plain["u"]).isel(time=1).values
    np.testing.assert_allclose(difference, np.broadcast_to(
        0.5 * expected * forecaster.normalisation.std, difference.shape), rtol=1e-4)


def test_a_calendar_on_simulated_data_is_refused_in_one_line(trained) -> None:
    config = load_config(trained["root"] / "config.yaml").with_changes(
        "forecaster", calendar=["hour_of_day"])
    out = trained["root"] / "calendar.pt"
    with pytest.raises(ValueError, match=r"no calendar times \(valid_time\).*hour_of_day"):
        train_forecaster(config, trained["store"], out, steps=2, progress=False)
    assert not out.exists()
