"""Data assimilation on imported data (a cut of the shipped ERA5 file): every method that
needs no simulator runs on the learned forecaster over a bounded grid; those that need the
simulator say so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from assimilate.config import load_config
from assimilate.da.inputs.fields import grid_of
from assimilate.observe import observe
from pde.io.store import open_store

COMMAND = str(Path(sys.executable).with_name("assimilate"))


def withheld_values(observations) -> np.ndarray:
    """Observed minus true value at every withheld station and step (the noise drawn)."""
    from pde.io.store import open_trajectories

    truth = open_trajectories(observations.dataset.attrs["source"])["t2m"].values[0]
    return np.concatenate([(at.values - at.operator.apply(truth[s].astype(np.float64)))[0]
                           for s in observations.steps for at in [observations.at(s)]])


@pytest.fixture(scope="module")
def stations(pilot) -> Path:
    (pilot["root"] / "regimes.yaml").write_text(
        "imported:\n"
        "  ten: {operator: sites, count: 10, withheld: 4, seed: 2, every: 1, error_std: 0.3}\n"
        "  ten-withheld: {operator: sites, count: 10, withheld: 4, seed: 2, every: 1,"
        " error_std: 0.3, observe: withheld}\n")
    for name in ("ten", "ten-withheld"):
        observe(pilot["test"], name, pilot["root"] / f"{name}.zarr",
                regimes_path=pilot["root"] / "regimes.yaml", progress=False)
    return pilot["root"] / "ten.zarr"


def _run(pilot, stations, tmp_path, method: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COMMAND, "run", str(pilot["root"] / "config.yaml"), "--method", method,
         "--forecaster", str(pilot["checkpoint"]), "--obs", str(stations), "--members", "4",
         "--steps", "12", "--climatology", str(pilot["train"]), "--truth", str(pilot["test"]),
         "--verify", str(stations.with_name("ten-withheld.zarr")),
         "--out", str(tmp_path / f"{method}.zarr"), *extra],
        capture_output=True, text=True, timeout=600, check=False,
        env=os.environ | {"OMP_NUM_THREADS": "1"})


def test_the_grid_of_imported_data_is_bounded_latitude_by_longitude(pilot) -> None:
    grid = grid_of(load_config(pilot["root"] / "config.yaml"))
    assert grid.dims == ("y", "x") and grid.space == (9, 13) and not grid.periodic
    np.testing.assert_allclose(grid.coordinates[0], np.linspace(56, 58, 9))
    assert grid.lengths == (float("inf"), float("inf"))  # localisation never wraps


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["free", "letkf", "oi", "nudging"])
def test_each_method_runs_on_the_forecaster_over_imported_data(pilot, stations, tmp_path,
                                                               method) -> None:
    run = _run(pilot, stations, tmp_path, method, "--set", "model=forecaster")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "100%" in run.stderr, "no progress bar"
    analysis = open_store(tmp_path / f"{method}.zarr")
    assert analysis["t2m"].dims == ("trajectory", "member", "time", "y", "x")
    assert np.isfinite(analysis["t2m"].values).all()
    assert analysis["y"].attrs["units"] == "degrees_north"  # maps draw it on the globe
    assert analysis["t2m"].attrs["units"] == "K"
    scores = json.loads(analysis.attrs["scores"])
    assert 0 < scores["rmse.a"] < 10  # kelvin
    assert scores["withheld_count"] == 4 * (12 - 3 + 1)  # 4 stations, steps 3..12
    assert 0 < scores["withheld_rmse.a"] < 10
    assert "withheld_rmse.a" in run.stdout


@pytest.mark.e2e
def test_the_true_simulator_is_refused_naming_the_forecaster(pilot, stations, tmp_path) -> None:
    run = _run(pilot, stations, tmp_path, "letkf")  # its default model is the simulator
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "error: the data ('t2m') were imported, not simulated: there is no true model to run; "
        "use the learned one (model=forecaster)")
    assert not (tmp_path / "letkf.zarr").exists()


def test_withheld_scores_are_observation_minus_analysis(pilot, stations) -> None:
    """Against an analysis that is the truth, the withheld RMSE is the noise (0.3 K)."""
    from assimilate.da.inputs.checked import read_observations
    from assimilate.da.withheld import withheld_scores
    from pde.io.store import open_trajectories

    config = load_config(pilot["root"] / "config.yaml")
    withheld = read_observations(stations.with_name("ten-withheld.zarr"), config)
    truth = open_trajectories(pilot["test"])["t2m"].values[:, None]  # (1, 1, 48, 9, 13)
    analysis = xr.Dataset({"t2m": (("trajectory", "member", "time", "y", "x"), truth),
                           "t2m_background": (("trajectory", "member", "time", "y", "x"),
                                              truth + 1.0)},
                          coords={"trajectory": [0]})
    found = withheld_scores(analysis, withheld)
    assert found["withheld_count"] == 4 * 47
    assert 0.2 < found["withheld_rmse.a"] < 0.4
    np.testing.assert_allclose(found["withheld_rmse.f"] ** 2,
                               np.mean((withheld_values(withheld) - 1.0) ** 2), rtol=1e-6)


@pytest.mark.e2e
def test_hourly_cycles_run_on_imported_data(pilot, stations, tmp_path) -> None:
    """`assimilate cycle` on imported data: OI on the learned forecaster, 6-hour cycles with
    the calendar of the test days, a climatology store in place of a simulator."""
    (tmp_path / "inbox").mkdir()
    import shutil

    shutil.copytree(stations, tmp_path / "inbox" / "obs.zarr")
    (tmp_path / "workflow.yaml").write_text(
        f"config: {pilot['root'] / 'config.yaml'}\nmethod: oi\nsettings: {{model: forecaster}}\n"
        f"forecaster: {pilot['checkpoint']}\nclimatology: {pilot['train']}\nmembers: 4\n"
        "cycle_length: 6\nlead: 2\ninbox: inbox\nanalysis: analysis.zarr\n"
        "calendar: 2019-03-05T00:00,1h\n")
    run = subprocess.run([COMMAND, "cycle", str(tmp_path / "workflow.yaml"), "--until", "6"],
                         capture_output=True, text=True, timeout=600, check=False,
                         env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "cycle 6 (steps 7..12)" in run.stdout
    analysis = open_store(tmp_path / "analysis.zarr")
    assert analysis["t2m"].shape == (1, 4, 12, 9, 13)
    assert np.isfinite(analysis["t2m"].values).all()
    hours = (analysis["valid_time"].values[0] - np.datetime64("2019-03-05T00:00")) \
        / np.timedelta64(1, "h")
    np.testing.assert_array_equal(hours, analysis["time"].values)  # the calendar carried


@pytest.mark.e2e
def test_a_controller_trains_and_assimilates_on_imported_data(pilot, stations, tmp_path) -> None:
    """The controller of a forecaster conditioned on the hour of the day: trained on the
    training days' windows with their hours, then run as a user runs it."""
    import yaml

    config = yaml.safe_load((pilot["root"] / "config.yaml").read_text())
    config["controller"] = {"lookahead": 2, "width": 8, "blocks": 1, "spin_up": 1,
                            "sub_steps": 2, "regimes": ["stations-15-3h"],
                            "training": {"steps": 4, "batch_size": 4, "warmup_steps": 1,
                                         "checkpoint_every": 2, "validate_every": 2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    train = subprocess.run(
        [COMMAND, "train", "controller", str(tmp_path / "config.yaml"), "--forecaster",
         str(pilot["checkpoint"]), "--data", str(pilot["train"]), "--out",
         str(tmp_path / "controller.pt")],
        capture_output=True, text=True, timeout=600, check=False, env=environment)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "100%" in train.stderr
    run = _run(pilot, stations, tmp_path, "controller", "--controller",
               str(tmp_path / "controller.pt"))
    assert run.returncode == 0, run.stderr[-2000:]
    analysis = open_store(tmp_path / "controller.zarr")
    assert np.isfinite(analysis["t2m"].values).all()
    assert np.isfinite(json.loads(analysis.attrs["scores"])["withheld_rmse.a"])


def test_withheld_observations_that_were_assimilated_are_refused(pilot, stations) -> None:
    from assimilate.da.inputs.checked import read_observations
    from assimilate.da.withheld import check_withheld
    from pde.io.errors import ConfigError

    config = load_config(pilot["root"] / "config.yaml")
    assimilated = read_observations(stations, config)
    withheld = read_observations(stations.with_name("ten-withheld.zarr"), config)
    check_withheld(withheld, assimilated, "withheld")  # disjoint networks: accepted
    with pytest.raises(ConfigError, match=r"include 470 observations that were assimilated"):
        check_withheld(assimilated, assimilated, "the same file")
