"""The data-assimilation layer on a tiny KS project (32 points, two truth trajectories).

- DPS guidance on an exact Gaussian toy: the sample mean moves toward the exact posterior
  mean where observed, and nothing moves where not observed;
- the :func:`assimilate.da.contract.assimilate` contract: dims, attributes, the first background,
  the NFE, a free run blind to the observations, nudging as direct insertion;
- missing (NaN) observations weigh exactly as much as removed ones;
- ensemble filters with the true simulator beat the free run;
- :func:`build_method` refuses bad settings in one line naming the key;
- ``assimilate simulate``, ``observe`` and ``run`` (every method, a user's NetCDF file, two
  user errors) as a user runs them: fresh processes, default options, progress bars on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import jax
import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.config import load_config
from assimilate.control import train_controller
from assimilate.da.climatology import Climatology
from assimilate.da.contract import Diverged, Method, Observed, Problem, assimilate, score
from assimilate.da.grid import Grid
from assimilate.da.methods import all_methods, build_method, method_keys, parse_settings
from assimilate.diffusion.samplers import sample_euler
from assimilate.diffusion.schedules import karras_sigmas
from assimilate.evaluation.scores import analysis_scores
from assimilate.models.forecaster import load_forecaster, train_forecaster
from assimilate.observe import Observations, load_observations, model_grid, observe, strided
from pde.io.errors import ConfigError
from pde.io.store import open_trajectories
from tests.conftest import TINY_CONTROLLER, TINY_FORECASTER, TINY_KS, write_config

COMMAND = str(Path(sys.executable).with_name("assimilate"))
PROJECT = TINY_KS | {"dataset": TINY_KS["dataset"] | {"trajectories": 2, "steps": 31},
                     "forecaster": TINY_FORECASTER, "controller": TINY_CONTROLLER}
SUB_STEPS = TINY_FORECASTER["sampling"]["steps"]  # Euler: one denoiser call per sub-step
# The shipped "dense" regime observes every 8th of 64 points (2.75 length units apart); on
# the 32-point grid the same density is every 4th point.
REGIMES = "kuramoto_sivashinsky:\n  dense: {operator: strided, stride: 4, every: 1, noise: 0.1}\n"


def _cli(root: Path, line: str) -> subprocess.CompletedProcess:
    """``assimilate LINE`` in a fresh process; one intra-op thread, as two run side by side
    on two cores (more threads than free cores make a tiny network ~50x slower)."""
    return subprocess.run([COMMAND, *line.split()], cwd=root, capture_output=True, text=True,
                          timeout=600, check=False, env=os.environ | {"OMP_NUM_THREADS": "1"})


pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def project(tmp_path_factory, one_thread) -> Path:
    """A truth store and its observations (shipped "dense" regime) made by the CLI, and a
    tiny forecaster trained in-process on the truth."""
    root = tmp_path_factory.mktemp("da")
    write_config(root, PROJECT, "project.yaml")
    (root / "regimes.yaml").write_text(REGIMES)
    for line, printed in (("simulate project.yaml --out truth.zarr", "2 of 2 trajectories"),
                          ("observe truth.zarr --regime dense --out obs.zarr", "regime dense")):
        done = _cli(root, line)
        assert done.returncode == 0 and printed in done.stdout, done.stderr[-3000:]
        assert "100%" in done.stderr, f"no progress bar for '{line}': {done.stderr[-500:]}"
    train_forecaster(load_config(root / "project.yaml"), root / "truth.zarr",
                     root / "forecaster.pt", steps=20, progress=False)
    train_controller(load_config(root / "project.yaml"), root / "forecaster.pt",
                     root / "truth.zarr", root / "controller.pt", steps=4, progress=False)
    REQUIRED["controller"] = {"checkpoint": str(root / "controller.pt")}
    return root


@pytest.fixture(scope="module")
def tiny(project: Path) -> SimpleNamespace:
    """What the in-process tests share: config, truth, observations, forecaster, climatology."""
    config = load_config(project / "project.yaml")
    grid = model_grid(open_trajectories(project / "truth.zarr"))
    return SimpleNamespace(
        config=config, grid=grid,
        truth=open_trajectories(project / "truth.zarr")["u"].values,
        observations=load_observations(project / "obs.zarr", **grid),
        forecaster=load_forecaster(project / "forecaster.pt"),
        climatology=Climatology.simulate(config.simulator.build(), seed=11))


REQUIRED: dict[str, dict[str, str]] = {}
"""Settings a method cannot do without (the controller's checkpoint, set by ``project``)."""


def _method(name: str, settings: dict | None = None) -> Method:
    return build_method(name, REQUIRED.get(name, {}) | (settings or {}))


def _run(tiny: SimpleNamespace, name: str, settings: dict | None = None, *,
         observations: Observations | None = None, **options) -> xr.Dataset:
    options = {"initial": None, "climatology": tiny.climatology, "n_members": 3, "n_steps": 4,
               "seed": 0, "progress": False} | options
    return assimilate(_method(name, settings), observations or tiny.observations,
                      config=tiny.config, forecaster=tiny.forecaster, **options)


def _analyse(method: Method, prior: np.ndarray, observed: Observed, problem: Problem):
    """One analysis, with the state the method prepares for a run."""
    return method.analyse(prior, observed, problem, method.prepare(problem))


# --- DPS on an exact Gaussian toy --------------------------------------------------------

class _IdentityModel:
    """A ``problem.model`` whose sampler variable is the physical state itself."""

    device = torch.device("cpu")

    def state_of(self, history: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        return drawn[:, 0]


def test_dps_moves_a_gaussian_prior_toward_the_exact_posterior_mean_where_observed() -> None:
    """x0 ~ N(mu, s^2 I) has the exact denoiser D(x, sigma) = (s^2 x + sigma^2 mu) / (s^2 +
    sigma^2); observing x_j with noise sigma_y the posterior mean there is (s^2 y_j +
    sigma_y^2 mu) / (s^2 + sigma_y^2), elsewhere mu. Two trajectories with their own
    observations, 2000 members each; one observation of trajectory 1 is missing."""
    n, n_members, mu, s, sigma_y = 8, 2000, 0.5, 1.0, 0.5
    operator = strided((n,), [np.arange(n, dtype=float)], 2)  # grid points 0, 2, 4, 6
    y = np.array([[2.0, -1.0, 1.5, 0.0], [-1.5, np.nan, 0.5, 2.5]])
    observed = Observed(1, operator, y, np.full(4, sigma_y), np.isfinite(y))
    problem = Problem(_IdentityModel(), None, Grid.from_coordinates({"x": np.arange(n, dtype=float)}),
                      n_members, np.random.default_rng(0), jax.random.PRNGKey(0))
    control = build_method("dps").guide(observed, problem, None)

    def denoiser(x, sigma, cond=None):
        sigma = sigma.view(-1, 1, 1)
        return (s**2 * x + sigma**2 * mu) / (s**2 + sigma**2)

    sigmas = karras_sigmas(16, dtype=torch.float32)
    x = sigmas[0] * torch.randn(2 * n_members, 1, n, generator=torch.Generator().manual_seed(0))
    history = torch.zeros(2 * n_members, 1, n)
    with torch.no_grad():
        plain = sample_euler(denoiser, x, sigmas)[:, 0].reshape(2, n_members, n).numpy()
        guided = sample_euler(denoiser, x, sigmas, correction=control(0, history))
    guided = guided[:, 0].reshape(2, n_members, n).numpy()
    posterior = (s**2 * y + sigma_y**2 * mu) / (s**2 + sigma_y**2)  # (trajectory, 4)
    prior_mean, guided_mean = plain.mean(1)[:, ::2], guided.mean(1)[:, ::2]
    present = np.isfinite(y)
    assert np.abs(prior_mean - mu).max() < 4 * s / np.sqrt(n_members), "unguided: the prior"
    closer = np.abs(guided_mean - posterior)[present] < 0.5 * np.abs(prior_mean - posterior)[present]
    assert closer.all(), (guided_mean, posterior)
    # The prior is diagonal: unobserved points, and the missing one, do not move at all.
    np.testing.assert_array_equal(guided[:, :, 1::2], plain[:, :, 1::2])
    np.testing.assert_array_equal(guided[1, :, 2], plain[1, :, 2])


# --- the filters as DA methods on a 2-D grid ------------------------------------------------

@pytest.mark.parametrize("settings", [{}, {"inflation": "1.3"}])
def test_etkf_on_a_2d_field_is_the_kalman_update_of_the_sample_moments(settings) -> None:
    """A (6, 8) field observed every 2nd point in each direction (12 observations), 60
    members (more than the 48 grid points): the analysis mean is x̄ + K (y - H x̄) with
    K from the (inflated) sample covariance; LETKF with a radius beyond the domain agrees."""
    shape, n_members = (6, 8), 60
    coordinates = {"y": np.arange(6) * 1.0, "x": np.arange(8) * 1.0}
    operator = strided(shape, list(coordinates.values()), 2)
    rng = np.random.default_rng(3)
    prior = rng.standard_normal((1, n_members, *shape)) + np.linspace(0, 1, 48).reshape(shape)
    y = rng.standard_normal((1, operator.n_obs))
    observed = Observed(0, operator, y, np.full(operator.n_obs, 0.5), np.ones_like(y, bool))
    problem = Problem(None, None, Grid.from_coordinates(coordinates), n_members,
                      np.random.default_rng(0), jax.random.PRNGKey(0))
    analysis = _analyse(build_method("etkf", settings), prior, observed, problem)
    flat = prior[0].reshape(n_members, -1).astype(np.float64)
    anomalies = float(settings.get("inflation", 1.02)) * (flat - flat.mean(0))
    p, h, r = anomalies.T @ anomalies / (n_members - 1), operator.matrix(), 0.25 * np.eye(12)
    gain = p @ h.T @ np.linalg.inv(h @ p @ h.T + r)
    expected = flat.mean(0) + gain @ (y[0] - h @ flat.mean(0))
    np.testing.assert_allclose(analysis[0].mean(0).ravel(), expected, atol=1e-4)
    local = _analyse(build_method("letkf", settings | {"radius": "1e6"}), prior, observed,
                     problem)
    np.testing.assert_allclose(local, analysis, atol=1e-4)


# --- the assimilate() contract -------------------------------------------------------------

def test_analysis_dataset_carries_dims_the_first_background_and_its_provenance(tiny) -> None:
    method = build_method("free")
    initial = tiny.truth[0, 0]  # one state: every member of every trajectory starts there
    ds = _run(tiny, "free", initial=initial, climatology=None)
    assert ds["u"].dims == ds["u_background"].dims == ("trajectory", "member", "time", "x")
    assert ds["u"].shape == (2, 3, 5, 32)
    np.testing.assert_array_equal(ds["trajectory"].values, [0, 1])
    np.testing.assert_allclose(ds["time"].values, np.arange(5) * 0.2)
    np.testing.assert_allclose(ds["x"].values, np.arange(32) * 22.0 / 32)
    for name in ("u", "u_background"):
        np.testing.assert_array_equal(ds[name].isel(time=0).values,
                                      np.broadcast_to(initial, (2, 3, 32)))
    assert not np.allclose(ds["u"].values[0, 0, -1], ds["u"].values[0, 1, -1]), "members differ"
    attrs = ds.attrs
    assert attrs["method"] == "free" and attrs["model"] == "forecaster"
    assert json.loads(attrs["parameters"]) == {"model": "forecaster", "sub_steps": 0} \
        == method.parameters()
    assert attrs["regime"] == "dense" and json.loads(attrs["observed_steps"]) == [1, 2, 3, 4]
    assert attrs["nfe"] == SUB_STEPS * 4 and attrs["nfe_per_step"] == SUB_STEPS
    assert attrs["wall_time_s"] > 0 and attrs["seconds_per_step"] > 0
    assert attrs["package_version"] == metadata.version("assimilate")
    assert attrs["climatology"].startswith("simulated") and attrs["climatological_std"] > 0
    assert attrs["n_members"] == 3 and attrs["pde"] == "kuramoto_sivashinsky"


@pytest.mark.parametrize("name", sorted(all_methods()))
def test_parameters_name_every_hyper_parameter(project, name: str) -> None:
    method = _method(name)
    assert set(method.parameters()) == set(method_keys(name))
    assert build_method(name, {k: str(v) for k, v in method.parameters().items()}) == method


def test_guidance_costs_no_extra_denoiser_call_and_moves_the_forecast(tiny) -> None:
    free, dps = (_run(tiny, name, n_steps=3) for name in ("free", "dps"))
    assert free.attrs["nfe"] == dps.attrs["nfe"] == SUB_STEPS * 3, "Euler: sub-steps x steps"
    np.testing.assert_array_equal(free["u"].isel(time=0).values, dps["u"].isel(time=0).values)
    assert np.abs(free["u"].values[:, :, 1:] - dps["u"].values[:, :, 1:]).min() > 0


@dataclasses.dataclass(frozen=True)
class _Exploding(Method):
    """A method whose analysis turns non-finite at step 3."""

    name: ClassVar[str] = "exploding"
    model: str = "simulator"

    def analyse(self, prior, observed, problem, state):
        return prior * np.inf if observed.step == 3 else prior


def test_a_diverged_method_raises_with_its_run_so_far_scored_unstable(tiny) -> None:
    options = {"initial": None, "config": tiny.config, "climatology": tiny.climatology,
               "n_members": 3, "n_steps": 6, "progress": False}
    with pytest.raises(FloatingPointError, match="'exploding'.*step 3") as raised:
        assimilate(_Exploding(), tiny.observations, **options)
    assert isinstance(raised.value, Diverged)
    analysis = raised.value.analysis["u"].values
    assert analysis.shape == (2, 3, 7, 32)
    assert np.isfinite(analysis[:, :, :3]).all() and np.isnan(analysis[:, :, 3:]).all()
    scores = analysis_scores(analysis, tiny.truth[:, :7], std=1.0, mean=0.0,
                             observed_points=np.zeros(32, bool), horizons=(2, 6), spin_up=1,
                             series=lambda field: field.mean(-1))
    assert (scores["stable"].values == 0).all()
    assert np.isfinite(scores["nrmse_short"]).all() and np.isnan(scores["nrmse_long"]).all()


def test_free_run_ignores_the_observations(tiny) -> None:
    ds = tiny.observations.dataset.copy(deep=True)
    ds["value"].values = np.random.default_rng(3).normal(0, 5, ds["value"].shape)
    other = Observations.from_dataset(ds, **tiny.grid)
    runs = [_run(tiny, "free", observations=o) for o in (tiny.observations, other)]
    np.testing.assert_array_equal(runs[0]["u"].values, runs[1]["u"].values)


def test_nudging_with_alpha_one_inserts_point_observations_exactly(tiny) -> None:
    ds = _run(tiny, "nudging", {"alpha": "1"})
    analysis, prior = ds["u"].values, ds["u_background"].values
    for step in range(1, 5):
        operator, values, _, _ = tiny.observations.at(step)
        points = operator.indices[:, 0]
        expected = np.broadcast_to(values[:, None], (2, 3, len(points)))
        np.testing.assert_allclose(analysis[:, :, step, points], expected, atol=1e-5)
        assert np.abs(prior[:, :, step, points] - expected).min() > 1e-3, "a real correction"
        others = np.setdiff1d(np.arange(32), points)
        np.testing.assert_array_equal(analysis[:, :, step, others], prior[:, :, step, others])


# --- missing observations ----------------------------------------------------------------

def test_nan_observations_give_the_analysis_of_the_observations_without_them(tiny) -> None:
    """ETKF with the simulator (deterministic): NaN in one trajectory only (observations 1,
    6, 13), in both (observation 5) and a whole step missing in both (step 3, observations
    8-11) equal those entries removed, per trajectory; m = N = 4 members, so the complete
    and the reduced analyses take the two branches of the transform."""
    ds = tiny.observations.dataset
    initial = tiny.climatology.draw(np.random.default_rng(5), (2, 4))
    one, both = [1, 6, 13], [5, 8, 9, 10, 11]
    holed = ds.copy(deep=True)
    holed["value"].values[0, one] = np.nan
    holed["value"].values[:, both] = np.nan

    def etkf(dataset: xr.Dataset, start: np.ndarray) -> np.ndarray:
        observations = Observations.from_dataset(dataset, **tiny.grid)
        return _run(tiny, "etkf", observations=observations, initial=start, n_members=4,
                    n_steps=5)["u"].values

    result = etkf(holed, initial)
    for trajectory, dropped in ((0, one + both), (1, both)):
        kept = np.setdiff1d(np.arange(ds.sizes["obs"]), dropped)
        reduced = ds.isel(trajectory=[trajectory], obs=kept)
        expected = etkf(reduced, initial[[trajectory]])[0]
        np.testing.assert_allclose(result[trajectory], expected, rtol=1e-5, atol=1e-5)


# --- filters with the true simulator --------------------------------------------------------

def test_filters_with_the_true_simulator_beat_the_free_run(tiny, project) -> None:
    """30 steps, 8 members from the climatology, every 4th point observed with noise 0.1
    climatological stds; scores after 10 steps of spin-up."""
    ds = observe(project / "truth.zarr", "dense", regimes_path=project / "regimes.yaml",
                 progress=False)
    observations = Observations.from_dataset(ds, **tiny.grid)
    scores = {}
    for name, settings in (("free", {"model": "simulator"}), ("etkf", {}), ("letkf", {})):
        analysis = _run(tiny, name, settings, observations=observations, n_members=8,
                        n_steps=30)
        assert analysis.attrs["nfe"] == 0 and analysis.attrs["model"] == "simulator"
        scores[name] = score(analysis, tiny.truth, spin_up=10)
    free = scores["free"]["nrmse.a"]
    assert free > 0.6, scores
    assert scores["etkf"]["nrmse.a"] < 0.4 * free, scores
    assert scores["letkf"]["nrmse.a"] < 0.25 * free, scores
    assert scores["letkf"]["rmse.a"] < scores["letkf"]["rmse.f"], "the analysis helps"


# --- building methods ----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "settings", "pieces"), [
    ("kalman", {}, ["unknown method 'kalman'", "letkf"]),
    ("letkf", {"radious": "3"}, ["no setting 'radious'", "radius"]),
    ("letkf", {"radius": "-1"}, ["'letkf'", "radius='-1'", "greater than 0"]),
    ("nudging", {"alpha": "strong"}, ["alpha='strong'", "number"]),
    ("enkf", {"inflation": "5"}, ["inflation='5'", "less than or equal to 3"]),
    ("etkf", {"model": "none"}, ["model='none'", "forecaster", "simulator"]),
    ("climatology", {"model": "simulator"}, ["model='simulator'", "none"]),
    ("controller", {}, ["'controller' needs the setting checkpoint=", "--controller CKPT"]),
])
def test_bad_method_settings_are_one_line_errors_naming_the_key(name, settings, pieces) -> None:
    with pytest.raises(ConfigError) as error:
        build_method(name, settings)
    message = str(error.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, message


def test_settings_parse_from_key_value_strings() -> None:
    assert parse_settings(["radius=2.5", " inflation = 1.1"]) == {"radius": "2.5",
                                                                   "inflation": "1.1"}
    method = build_method("letkf", parse_settings(["radius=2.5", "inflation=1.1"]))
    assert (method.radius, method.inflation, method.model) == (2.5, 1.1, "simulator")
    with pytest.raises(ConfigError, match="--set 'radius': expected key=value"):
        parse_settings(["radius"])


# --- the CLI, as a user runs it --------------------------------------------------------------

MEMBERS, STEPS = 3, 4
ON_FORECASTER = {name for name, method in all_methods().items()
                 if method.model == "forecaster"}
TABLE = "| rmse.a | nrmse.a | rmse.f | nrmse.f | spread.a | spread_ratio.a | crps.a |"


def _user_file(project: Path) -> None:
    """Point observations of truth trajectory 0 off the grid nodes: irregular, unsorted
    times (two at the initial time), 2, 1, 5 and 1 per time, one missing value."""
    time = np.array([0.0, 0.0, 0.6, 1.4, 1.4, 1.4, 1.4, 1.4, 0.8])
    x = np.array([3.3, 15.0, 7.1, 0.2, 4.9, 9.6, 14.4, 21.9, 11.0])
    truth = open_trajectories(project / "truth.zarr")["u"].values[0]
    nodes = np.arange(32) * 22.0 / 32
    value = np.array([np.interp(p, nodes, truth[round(t / 0.2)], period=22.0)
                      for t, p in zip(time, x, strict=True)])
    value[5] = np.nan
    xr.Dataset({"value": ("obs", value), "error_std": ("obs", np.full(9, 0.15))},
               coords={"time": ("obs", time), "x": ("obs", x)}).to_netcdf(
        project / "user.nc", engine="netcdf4")
    xr.Dataset({"value": ("obs", [0.1, 0.2]), "error_std": ("obs", [0.1, 0.1])},
               coords={"time": ("obs", [0.2, 0.3]), "x": ("obs", [1.0, 2.0])}).to_netcdf(
        project / "off-axis.nc", engine="netcdf4")


def _cli_lines() -> dict[str, str]:
    common = f"--truth truth.zarr --climatology truth.zarr --members {MEMBERS}"
    lines = {}
    for name in all_methods():
        line = f"run project.yaml --method {name} --obs obs.zarr --out {name}.zarr {common}"
        lines[name] = line + f" --steps {STEPS}" + (
            " --forecaster forecaster.pt" if name in ON_FORECASTER else "") + (
            " --controller controller.pt" if name == "controller" else "")
    lines["user-file"] = f"run project.yaml --method letkf --obs user.nc --out user.zarr {common}"
    lines["bad-set"] = ("run project.yaml --method letkf --set radius=-1 --obs obs.zarr "
                        "--out bad.zarr")
    lines["off-axis"] = "run project.yaml --method oi --obs off-axis.nc --out off-axis.zarr"
    lines["harness"] = ("evaluate da project.yaml --methods free --forecaster forecaster.pt "
                        "--controller controller.pt --regimes dense --trajectories 1 "
                        "--validation 1 --members 2 --steps 6 --out harness.zarr")
    return lines


FRESH = ("letkf", "controller")
"""Lines run in fresh processes, as a user runs them (one on the simulator, one on the
learned models); the others run through the same ``main`` in this process, which keeps the
suite fast (a process start costs seconds of imports)."""


def _in_process(root: Path, line: str) -> subprocess.CompletedProcess:
    """``assimilate LINE`` through :func:`assimilate.cli.main` here, progress bars on."""
    from assimilate.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(line.split())
    return subprocess.CompletedProcess(line.split(), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def cli_runs(project: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every ``assimilate run`` of the tests below: the fresh processes two at a time, beside
    the in-process ones."""
    _user_file(project)
    lines = _cli_lines()
    with ThreadPoolExecutor(max_workers=1) as pool:
        fresh = {name: pool.submit(_cli, project, lines[name]) for name in FRESH}
        done = {name: _in_process(project, line) for name, line in lines.items()
                if name not in FRESH}
        return done | {name: future.result() for name, future in fresh.items()}


def _succeeded(run: subprocess.CompletedProcess) -> dict[str, float]:
    """Checks of any successful run; the printed scores."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    assert "100%" in run.stderr, f"no progress bar: {run.stderr[-500:]}"
    lines = run.stdout.splitlines()
    assert TABLE in lines, run.stdout
    row = lines[lines.index(TABLE) + 2]
    values = [float(v) for v in row.strip("| ").split(" | ")]
    assert np.isfinite(values).all(), row
    return dict(zip(TABLE.strip("| ").split(" | "), values, strict=True))


@pytest.mark.parametrize("name", sorted(all_methods()))
def test_run_writes_an_analysis_and_prints_its_scores(project, cli_runs, name: str) -> None:
    printed = _succeeded(cli_runs[name])
    assert f"wrote {name}.zarr" in cli_runs[name].stdout
    ds = xr.open_zarr(project / f"{name}.zarr")
    assert ds["u"].dims == ("trajectory", "member", "time", "x")
    assert ds["u"].shape == ds["u_background"].shape == (2, MEMBERS, STEPS + 1, 32)
    assert ds.attrs["method"] == name and ds.attrs["regime"] == "dense"
    assert set(json.loads(ds.attrs["parameters"])) == set(method_keys(name))
    # optimised control reruns every observed step once per iteration (10 by default)
    passes = 1 + 10 * (name == "optimised-control")
    assert ds.attrs["nfe"] == (SUB_STEPS * STEPS * passes if name in ON_FORECASTER else 0)
    stored = json.loads(ds.attrs["scores"])
    assert printed == pytest.approx({k: stored[k] for k in printed}, rel=1e-3)


def test_run_on_a_users_netcdf_file(project, cli_runs) -> None:
    _succeeded(cli_runs["user-file"])
    ds = xr.open_zarr(project / "user.zarr")
    assert ds["u"].shape == (1, MEMBERS, 8, 32), "up to the last observation, step 7"
    assert ds.attrs["regime"] == "user" and json.loads(ds.attrs["observed_steps"]) == [0, 3, 4, 7]
    start, first_guess = ds["u"].isel(time=0).values, ds["u_background"].isel(time=0).values
    assert not np.allclose(start, first_guess), "observations at time 0 analyse the first guess"


@pytest.mark.parametrize("name", sorted(all_methods()))
def test_every_method_assimilates_a_users_file(project, cli_runs, tiny, name: str) -> None:
    """The user's irregular point observations (the file of the test above) through each
    method: the span up to the last observation, finite, and the observations used."""
    users = load_observations(project / "user.nc", **tiny.grid)
    analysis = _run(tiny, name, observations=users, n_steps=None)["u"]
    assert analysis.shape == (1, 3, 8, 32) and np.isfinite(analysis.values).all()
    if all_methods()[name].uses_observations:
        blind = _run(tiny, "free", {"model": all_methods()[name].model}, observations=users,
                     n_steps=None)["u"] if all_methods()[name].model != "none" else None
        assert blind is not None and not np.allclose(analysis.values, blind.values), \
            f"{name} ignored the user's observations"


def test_the_harness_scores_a_controller_given_on_the_command_line(project, cli_runs) -> None:
    run = cli_runs["harness"]
    assert run.returncode == 0 and "100%" in run.stderr, run.stderr[-3000:]
    assert "| dense | controller:controller |" in run.stdout, run.stdout
    scored = xr.open_zarr(project / "harness.zarr")
    assert list(scored["da_method"].values) == ["free", "controller:controller"]
    assert np.isfinite(scored["nrmse_long"].values).all()


@pytest.mark.parametrize(("name", "pieces"), [
    ("bad-set", ["method 'letkf'", "radius='-1'"]),
    ("off-axis", ["off-axis.nc", "observation 1 at time 0.3", "not on the model time axis"]),
])
def test_run_refuses_user_errors_in_one_line(project, cli_runs, name, pieces) -> None:
    run = cli_runs[name]
    assert run.returncode == 2, run.stderr[-3000:]
    message = run.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, run.stderr
    for piece in pieces:
        assert piece in message, message
    out = _cli_lines()[name].split("--out ")[1].split()[0]
    assert not (project / out).exists() and not list(project.glob(f".{out}*"))


# --- DAPPER's filter options as method settings -----------------------------------------------

def test_filters_inflate_on_the_analysis_side_and_rotate_as_asked() -> None:
    """inflate=analysis gives the uninflated analysis mean with anomalies times the
    inflation; rotate keeps that mean and covariance but turns the anomalies; letkf's
    radius in grid spacings is the same filter as the length it stands for."""
    coordinates = {"x": np.arange(16) * 0.5}
    operator = strided((16,), [coordinates["x"]], 2)
    rng = np.random.default_rng(4)
    prior = rng.standard_normal((2, 10, 16)).cumsum(axis=-1).astype(np.float32)
    y = rng.standard_normal((2, operator.n_obs))
    observed = Observed(1, operator, y, np.full(operator.n_obs, 0.5), np.ones_like(y, bool))

    def analyse(name: str, **settings: str) -> np.ndarray:
        problem = Problem(None, None, Grid.from_coordinates(coordinates), 10,
                          np.random.default_rng(0), jax.random.PRNGKey(0))
        return _analyse(build_method(name, settings), prior, observed, problem)

    for name, extra in (("etkf", {}), ("letkf", {"radius": "2"}), ("enkf", {})):
        plain = analyse(name, inflation="1", **extra)
        inflated = analyse(name, inflation="1.2", inflate="analysis", **extra)
        mean = plain.mean(axis=1, keepdims=True)
        if name != "enkf":  # the EnKF draws its perturbations from the key: same key here
            np.testing.assert_allclose(inflated, mean + 1.2 * (plain - mean), atol=1e-4)
        rotated = analyse(name, inflation="1", rotate="true", **extra)
        np.testing.assert_allclose(rotated.mean(axis=1), plain.mean(axis=1), atol=1e-4)
        assert np.abs(rotated - plain).max() > 1e-2
    np.testing.assert_allclose(analyse("letkf", radius="4dx"), analyse("letkf", radius="2"),
                               atol=1e-6)
    assert build_method("letkf", {"radius": "4dx"}).radius == "4dx"
    with pytest.raises(ConfigError, match="radius='4dy'"):
        build_method("letkf", {"radius": "4dy"})
    with pytest.raises(ConfigError, match="inflate='both'"):
        build_method("etkf", {"inflate": "both"})
