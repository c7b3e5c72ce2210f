"""Every input of ``assimilate run`` and ``evaluate da`` checked before any work
(:mod:`assimilate.da.inputs`), on a tiny KS project (32 points, interval 1.0, 8 steps).

- the truth: picked by time from a NetCDF file stored twice as often as the model steps,
  scoring exactly as the trajectory store; refused, naming the file, when it misses a
  model step (stored less often, too short), lies on another grid or physics, lacks
  the observed trajectory or holds datetimes without a calendar;
- the first background: a single state (or identical members) refused for each ensemble
  filter, accepted for the others; one member refused;
- the climatology store and the checkpoints: other physics refused; a controller that
  steers another forecaster refused; ``evaluate da`` checks its checkpoints first;
- observations: synthesised from other physics refused; datetimes read with a calendar;
- the headline cases as a user meets them: fresh processes, progress bars on, exit code 2,
  one line, no progress bar (the run never started), nothing written, never exit code 70.

"Before any work": the in-process refusals run with the assimilation loop, the
climatology's simulation and the harness's simulations patched to fail if entered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import assimilate.da.contract
from assimilate.cli import main
from assimilate.config import load_config
from assimilate.da.climatology import Climatology
from assimilate.da.inputs import (
    Calendar,
    RunInputs,
    check_checkpoints,
    check_run_inputs,
    load_truth,
)
from assimilate.da.methods import build_method
from assimilate.da.run import run
from assimilate.evaluation.harness import HarnessSettings, evaluate_da
from assimilate.observe import observe
from pde import generate, simulate
from pde.io.errors import ConfigError
from pde.io.store import open_trajectories
from tests.conftest import TINY_KS, write_config

REPO = Path(__file__).resolve().parents[2]
COMMAND = str(Path(sys.executable).with_name("assimilate"))
FORECASTER = REPO / "checkpoints" / "ks-small-forecaster.pt"  # 64 points: other physics
CONTROLLER = REPO / "checkpoints" / "ks-small-controller.pt"
PROJECT = TINY_KS | {"simulator": TINY_KS["simulator"] | {"interval": 1.0},
                     "dataset": TINY_KS["dataset"] | {"trajectories": 2, "steps": 9}}
REGIMES = "kuramoto_sivashinsky:\n  dense: {operator: strided, stride: 4, every: 1, noise: 0.1}\n"
STEPS = 8  # the observations' last step

pytestmark = pytest.mark.usefixtures("one_thread")


def _simulated(root: Path, name: str, simulator: dict, trajectories: int, steps: int) -> Path:
    config = load_config(write_config(root, PROJECT | {
        "simulator": PROJECT["simulator"] | simulator}, f"{name}.yaml"))
    simulate(config, root / f"{name}.zarr", trajectories=trajectories, steps=steps,
             progress=False)
    return root / f"{name}.zarr"


def _states(u: np.ndarray, times: np.ndarray, x: np.ndarray, path: Path, **coords) -> None:
    xr.Dataset({"u": (("time", "x"), u)}, coords={"time": times, "x": x, **coords}
               ).to_netcdf(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory, one_thread) -> Path:
    """``project.yaml`` and its truth store (2 trajectories x 9 states 1.0 apart), the
    observations of trajectory 0 (every 4th point, every step), stores of other physics
    (length 30; 16 points), and truth, background and observation files made from them."""
    root = tmp_path_factory.mktemp("inputs")
    write_config(root, PROJECT, "project.yaml")
    (root / "regimes.yaml").write_text(REGIMES)
    truth = _simulated(root, "truth", {}, 2, STEPS + 1)
    _simulated(root, "long", {"length": 30.0}, 1, 3)
    _simulated(root, "coarse", {"n_points": 16}, 1, 3)
    observe(truth, "dense", root / "obs.zarr", trajectories=1, regimes_path=root / "regimes.yaml",
            progress=False)
    observe(root / "long.zarr", "dense", root / "long-obs.zarr",
            regimes_path=root / "regimes.yaml", progress=False)
    ds = open_trajectories(truth)
    u, x = ds["u"].values[0], ds["x"].values  # (9, 32)
    between = 0.5 * (u[:-1] + u[1:])  # states between the model steps
    fine = np.stack([u[:-1], between], axis=1).reshape(-1, 32)
    _states(np.concatenate([fine, u[-1:]]), np.arange(2 * STEPS + 1) * 0.5, x, root / "fine.nc")
    _states(u[::2], np.arange(0, STEPS + 1, 2.0), x, root / "every-2.nc")
    _states(u[:, ::2], np.arange(STEPS + 1.0), x[::2], root / "grid-16.nc")
    xr.Dataset({"u": (("trajectory", "time", "x"), ds["u"].values)},
               coords={"trajectory": [5, 6], "time": np.arange(STEPS + 1.0), "x": x}
               ).to_netcdf(root / "trajectories-5-6.nc")
    xr.Dataset({"u": (("time", "x"), u)}, coords={"time": np.arange(STEPS + 1.0)}
               ).to_netcdf(root / "no-x.nc")
    _states(u, np.arange(STEPS + 1.0) * 24, x, root / "dated-truth.nc")
    with xr.open_dataset(root / "dated-truth.nc") as dated:
        dated = dated.load()
    dated["time"].attrs["units"] = "hours since 2020-01-01"
    dated.to_netcdf(root / "dated-truth.nc")
    xr.Dataset({"u": ("x", u[0])}, coords={"x": x}).to_netcdf(root / "one-state.nc")
    xr.Dataset({"u": (("member", "x"), np.repeat(u[:1], 4, axis=0))}, coords={"x": x}
               ).to_netcdf(root / "same-members.nc")
    xr.Dataset({"u": (("member", "x"), u[:4])}, coords={"x": x}).to_netcdf(root / "ensemble.nc")
    _observation_files(root, x)
    return root


def _observation_files(root: Path, x: np.ndarray) -> None:
    """``dated.nc`` (obs.zarr's observations at datetimes, one step = 1 day), ``huge.nc``
    (a value of 1e30), ``late.nc`` (a time of 1e30)."""
    with xr.open_zarr(root / "obs.zarr") as obs:
        obs = obs.load()
    days = obs["time"].values  # model time = days: interval 1.0, one step a day
    dated = obs.assign_coords(time=("obs", days, {"units": "days since 2020-01-01"}))
    dated.attrs = {}
    dated.to_netcdf(root / "dated.nc")
    for name, change in (("huge", {"value": [0.5, 1e30]}), ("late", {"time": [1.0, 1e30]})):
        fields = {"value": [0.5, 0.7], "time": [1.0, 2.0]} | change
        xr.Dataset({"value": ("obs", fields["value"]), "error_std": ("obs", [0.1, 0.1])},
                   coords={"time": ("obs", fields["time"]), "x": ("obs", x[[0, 4]])}
                   ).to_netcdf(root / f"{name}.nc")


@pytest.fixture
def no_work(monkeypatch) -> None:
    """The assimilation, a simulated climatology and the harness's simulations fail if
    entered: a refusal under this fixture came before any work."""
    def started(what: str):
        def fail(*args, **kwargs):
            raise AssertionError(f"{what} started before the inputs were refused")
        return fail

    monkeypatch.setattr(assimilate.da.contract, "assimilate", started("the assimilation"))
    monkeypatch.setattr(Climatology, "simulate", started("a climatology simulation"))
    monkeypatch.setattr(generate, "simulate", started("a simulation"))


def _run(project: Path, method: str = "etkf", **options):
    options = {"observations": project / "obs.zarr", "n_members": 3} | options
    return run(project / "project.yaml", RunInputs(method=method, **options), progress=False,
               out=project / f"out-{time.perf_counter_ns()}.zarr")


# --- the truth ---------------------------------------------------------------------------

def test_a_truth_stored_twice_as_often_is_picked_by_time_and_scores_as_the_store(
        project) -> None:
    """States 0.5 apart under an interval of 1.0: the run's states are every 2nd one."""
    options = {"climatology": project / "truth.zarr", "seed": 1}
    _, from_store = _run(project, truth=project / "truth.zarr", **options)
    analysis, from_file = _run(project, truth=project / "fine.nc", **options)
    assert from_file == from_store and np.isfinite(list(from_file.values())).all()
    with xr.open_dataset(project / "fine.nc") as fine:  # the first 9 states, as before
        first = fine["u"].values[None, : STEPS + 1]
    unaligned = assimilate.da.contract.score(analysis, first, spin_up=STEPS // 4)
    assert unaligned["rmse.a"] > 1.5 * from_file["rmse.a"], (unaligned, from_file)


TRUTHS = [  # (file, --steps, what the one-line error must say)
    ("every-2.nc", None, ["truth file", "every-2.nc", ("no state at model time 1 (step 1 of the "
                          "8-step run)"), "5 states, 2 apart", "k x 1 (the config's interval)"]),
    ("truth.zarr", 12, ["truth store", "no state at model time 9 (step 9 of the 12-step run)",
                        "9 states, 1 apart, from time 0 to 8"]),
    ("grid-16.nc", None, ["grid-16.nc", ("coordinate 'x' (16 points, 0 to 20.625) is not the "
                          "config's grid (32 points")]),
    ("long.zarr", None, ["truth store", "long.zarr", ("other physics than the config: "
                         "simulator.length: 30.0 here, 22.0 expected")]),
    ("trajectories-5-6.nc", None, [("holds trajectories 5, 6; the observations are of "
                                   "trajectories 0, 0 missing")]),
    ("no-x.nc", None, ["no-x.nc", "has no coordinate 'x'"]),
    ("dated-truth.nc", None, ["dated-truth.nc", ("holds datetimes (units 'hours since "
                              "2020-01-01'"), "--calendar ORIGIN,STEP"]),
    ("missing.nc", None, ["truth file", "missing.nc", "does not exist"]),
]


@pytest.mark.parametrize(("name", "steps", "pieces"), TRUTHS, ids=[t[0] for t in TRUTHS])
def test_a_truth_that_cannot_score_the_run_is_refused_before_it(project, no_work, name,
                                                                steps, pieces) -> None:
    with pytest.raises(ConfigError) as error:
        _run(project, truth=project / name, n_steps=steps)
    message = str(error.value)
    assert all(piece in message for piece in pieces) and "\n" not in message, message


def test_a_dated_truth_is_read_with_the_calendar(project) -> None:
    config = load_config(project / "project.yaml")
    daily = Calendar.parse("2020-01-01,1D")
    dated = load_truth(project / "dated-truth.nc", config, trajectories=np.array([0]),
                       n_steps=STEPS, calendar=daily)
    stored = load_truth(project / "truth.zarr", config, trajectories=np.array([0]),
                        n_steps=STEPS)
    np.testing.assert_array_equal(dated, stored)


# --- observations --------------------------------------------------------------------------

def test_observations_read_with_the_calendar_are_the_model_time_ones(project) -> None:
    config, method = load_config(project / "project.yaml"), build_method("etkf")
    dated = check_run_inputs(config, method, RunInputs(
        "etkf", project / "dated.nc", n_members=3,
        calendar=Calendar.parse("2020-01-01T00:00,24h")))
    plain = check_run_inputs(config, method, RunInputs("etkf", project / "obs.zarr",
                                                       n_members=3))
    np.testing.assert_array_equal(dated.observations.steps, plain.observations.steps)
    assert dated.n_steps == plain.n_steps == STEPS


def test_observations_synthesised_from_other_physics_are_refused(project, no_work) -> None:
    with pytest.raises(ConfigError, match=r"observation file '.*long-obs.zarr' holds other "
                                          r"physics than the config: simulator.length: 30.0"):
        _run(project, observations=project / "long-obs.zarr")


# --- the first background, the climatology, the checkpoints ----------------------------------

@pytest.mark.parametrize("method", ["enkf", "etkf", "letkf"])
@pytest.mark.parametrize("background", ["one-state.nc", "same-members.nc"])
def test_a_background_without_spread_is_refused_for_ensemble_filters(project, no_work,
                                                                     method, background) -> None:
    with pytest.raises(ConfigError) as error:
        _run(project, method, background=project / background)
    message = str(error.value)
    for piece in (background, "(--background)", "zero spread", f"method '{method}'",
                  "give an ensemble of distinct states", ("no background to draw the members "
                  "from the climatology")):
        assert piece in message, message


@pytest.mark.parametrize(("method", "background"), [
    ("nudging", "one-state.nc"), ("oi", "same-members.nc"), ("etkf", "ensemble.nc")])
def test_other_backgrounds_and_methods_pass_the_checks(project, no_work, method,
                                                       background) -> None:
    settings = {"model": "simulator"} if method == "nudging" else None
    with pytest.raises(AssertionError, match="the assimilation started"):
        _run(project, method, settings=settings, background=project / background)


def test_an_ensemble_filter_with_one_member_is_refused(project, no_work) -> None:
    with pytest.raises(ConfigError, match="method 'letkf' is an ensemble filter and needs at "
                                          "least 2 members, got 1"):
        _run(project, "letkf", n_members=1)


@pytest.mark.parametrize(("store", "difference"), [
    ("long.zarr", "simulator.length: 30.0 here, 22.0 expected"),
    ("coarse.zarr", "simulator.n_points: 16 here, 32 expected")])
def test_a_climatology_of_other_physics_is_refused(project, no_work, store,
                                                   difference) -> None:
    with pytest.raises(ConfigError) as error:
        _run(project, climatology=project / store)
    assert f"climatology store '{project / store}' holds other physics than the config: " \
           f"{difference}" in str(error.value)


def test_checkpoints_of_other_physics_are_refused_by_run_and_the_harness(project,
                                                                         no_work) -> None:
    with pytest.raises(ConfigError, match=r"forecaster '.*ks-small-forecaster.pt' was trained "
                                          "on other physics than the config: "
                                          "simulator.interval: 0.2 here, 1.0 expected"):
        _run(project, "nudging", forecaster=FORECASTER)
    with pytest.raises(ConfigError, match=r"controller '.*ks-small-controller.pt' was trained "
                                          "on other physics"):
        check_checkpoints(load_config(project / "project.yaml"), controllers=[CONTROLLER])
    out = project / "harness.zarr"
    with pytest.raises(ConfigError, match="forecaster .* was trained on other physics"):
        evaluate_da(project / "project.yaml", HarnessSettings(
            methods=["free"], regimes=["dense"], forecaster=FORECASTER), out=out,
            progress=False)
    assert not list(project.glob("harness.zarr*"))


def test_a_controller_is_refused_with_another_forecaster_than_it_steers(tmp_path,
                                                                        no_work) -> None:
    config = load_config(REPO / "configs" / "ks-small.yaml")
    check_checkpoints(config, forecaster=FORECASTER, controllers=[CONTROLLER])  # its own
    payload = torch.load(FORECASTER, weights_only=True)
    payload["step"] = int(payload["step"]) + 1  # the same physics, another file
    torch.save(payload, tmp_path / "other.pt")
    steers = r"controller '.*' was trained to steer another forecaster than '.*other.pt'"
    with pytest.raises(ConfigError, match=steers):
        check_checkpoints(config, forecaster=tmp_path / "other.pt", controllers=[CONTROLLER])
    xr.Dataset({"value": ("obs", [0.5]), "error_std": ("obs", [0.1])},
               coords={"time": ("obs", [0.2]), "x": ("obs", [0.0])}).to_netcdf(
        tmp_path / "obs.nc")
    with pytest.raises(ConfigError, match=steers):  # run --controller: the same check
        run(REPO / "configs" / "ks-small.yaml", RunInputs(
            "controller", tmp_path / "obs.nc", controller=CONTROLLER,
            forecaster=tmp_path / "other.pt"), out=tmp_path / "out.zarr", progress=False)


# --- as a user meets them -------------------------------------------------------------------

HEADLINES = {  # name: (options of `assimilate run project.yaml --out NAME.zarr`, pieces)
    "truth-time-axis": ("--method etkf --obs obs.zarr --truth every-2.nc",
                        ["every-2.nc", "2 apart", "the config's interval", "k x 1"]),
    "datetime-observations": ("--method etkf --obs dated.nc",
                              ["dated.nc", "holds datetimes (units 'days since 2020-01-01'",
                               "give plain model times", "--calendar ORIGIN,STEP"]),
    "other-physics-climatology": ("--method etkf --obs obs.zarr --climatology long.zarr",
                                  ["long.zarr", "simulator.length: 30.0 here, 22.0 expected"]),
    "zero-spread-background": ("--method etkf --obs obs.zarr --background one-state.nc",
                               ["one-state.nc", "zero spread", "no background"]),
}
IN_PROCESS = {  # the same, through the CLI's main in this process
    "other-physics-forecaster": (f"--method nudging --obs obs.zarr --forecaster {FORECASTER}",
                                 ["ks-small-forecaster.pt", "other physics"]),
    "extreme-value": ("--method oi --obs huge.nc",
                      ["huge.nc", ("observation 1 at time 2 has value 1e+30; allowed: -1e+06 "
                       "to 1e+06")]),
    "time-beyond-int64": ("--method oi --obs late.nc",
                          ["late.nc", "observation 1 at time 1e+30", ("allowed: steps "
                           "0..10000000")]),
}


@pytest.fixture(scope="module")
def refused(project) -> dict[str, tuple[subprocess.CompletedProcess, float]]:
    """Each headline case in a fresh process, two at a time; (result, seconds)."""
    def one(name: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.perf_counter()
        done = subprocess.run([COMMAND, "run", "project.yaml", *HEADLINES[name][0].split(),
                               "--out", f"{name}.zarr"], cwd=project, capture_output=True,
                              text=True, timeout=300, check=False,
                              env=os.environ | {"OMP_NUM_THREADS": "1"})
        return done, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(HEADLINES, pool.map(one, HEADLINES), strict=True))


@pytest.mark.e2e
@pytest.mark.parametrize("name", HEADLINES)
def test_the_cli_refuses_bad_inputs_in_one_line_within_seconds(project, refused,
                                                               name) -> None:
    done, seconds = refused[name]
    assert done.returncode == 2, done.stderr[-3000:]
    message = done.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, done.stderr
    for piece in HEADLINES[name][1]:
        assert piece in message, message
    assert "%|" not in done.stderr, "the run's progress bar: it started"
    assert seconds < 120, f"refused after {seconds:.1f} s"  # a few s of CPU: imports, reads
    assert not (project / f"{name}.zarr").exists() and not list(project.glob(f".{name}*"))


@pytest.mark.parametrize("name", IN_PROCESS)
def test_the_cli_exits_2_on_bad_inputs_never_70(project, no_work, monkeypatch, capsys,
                                                name) -> None:
    monkeypatch.chdir(project)
    line = ["run", "project.yaml", *IN_PROCESS[name][0].split(), "--out", f"{name}.zarr"]
    assert main(line) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for piece in IN_PROCESS[name][1]:
        assert piece in message, message
    assert not (project / f"{name}.zarr").exists()


def test_a_diverged_run_exits_1_naming_the_step_not_70(project, monkeypatch, capsys) -> None:
    def diverge(*args, **kwargs):
        raise FloatingPointError("method 'etkf' produced non-finite states at step 3")

    monkeypatch.setattr(assimilate.da.contract, "assimilate", diverge)
    monkeypatch.chdir(project)
    assert main(["run", "project.yaml", "--method", "etkf", "--obs", "obs.zarr", "--out",
                 "diverged.zarr", "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == ("failed: method 'etkf' produced non-finite "
                                               "states at step 3; nothing was written")
    assert not (project / "diverged.zarr").exists()
