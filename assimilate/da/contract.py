"""The data-assimilation contract: one function runs every method.

    assimilate(method, observations, *, initial, config, ...) -> xr.Dataset

A *method* is a frozen value whose fields are its hyper-parameters (one class per file in
:mod:`assimilate.da.methods`; build one from a name and ``key=value`` strings with
:func:`assimilate.da.methods.build_method`). Every method is the same sequential loop over
the model's time axis, from the first background at step 0 to the last observed step:

    state = method.prepare(problem)                             # once per run
    for step in 1..n_steps:
        prior    = model.advance(history, control=method.guide(observed, problem, state))
        analysis = method.analyse(prior, observed, problem, state)  # observed steps only

so methods differ only in their two hooks and the typed state they prepare for them:
``guide`` steers the forecaster's sampler (likelihood guidance; the controller, which also
steers unobserved steps from its preview of the observations ahead), ``analyse`` updates
the ensemble afterwards (filters, nudging, optimal interpolation). Independent problems
(test trajectories) and members advance together in one batch.

The result has dims ``(trajectory, member, time, *space)``: the field variable holds the
analysis (the prior where nothing was observed) and ``<variable>_background`` the prior.
Attributes record the method and every hyper-parameter, the regime, the model, the
counted denoiser evaluations (NFE), the wall time and the package version, stamped here
and nowhere else. With ``truth``, :func:`score` adds DAPPER's ``rmse.a`` / ``rmse.f``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import numpy as np
import xarray as xr

from assimilate.da.climatology import Climatology
from assimilate.da.dynamics import Model, SimulatorModel
from assimilate.da.grid import Grid
from assimilate.da.tuning import Tuning
from assimilate.evaluation import scores
from assimilate.observe import Observations
from pde.io.errors import ConfigError
from pde.io.progress import tqdm
from pde.io.threads import in_effect as threads_in_effect

if TYPE_CHECKING:  # torch loads only for methods on the forecaster
    from assimilate.models.forecaster import Control, Forecaster

__all__ = ["ANALYSIS_SCHEMA", "MODEL_COST", "Diverged", "Method", "Observed", "Problem", "Tuning",
           "assimilate", "score"]

ANALYSIS_SCHEMA = "assimilate.analysis/1"


@dataclass(frozen=True)
class Observed:
    """The observations of one step for every problem: ``values`` and ``mask``
    ``(trajectory, n)``, ``error_std`` ``(n,)``, ``operator`` an observation operator."""

    step: int
    operator: Any
    values: np.ndarray
    error_std: np.ndarray
    mask: np.ndarray


@dataclass
class Problem:
    """What a method may use besides the observations."""

    model: Model | None
    climatology: Climatology
    grid: Grid
    n_members: int
    rng: np.random.Generator
    key: jax.Array
    observations: Observations | None = None
    """Every observation of the run, for a method that previews the next ones (the
    controller reads a window of ``Λ`` steps ahead and nothing beyond it)."""

    def next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key


MODEL_COST = {"none": 0, "simulator": 1, "forecaster": 2}
"""A rough order of cost by model (the simulator: ~100x cheaper per step on a CPU)."""


class Method:
    """Base of every method: a frozen dataclass of hyper-parameters plus two hooks.

    A method carries what the rest of the application needs to know of it: what it runs on
    (:attr:`needs`), its tuning grid (:attr:`tuning`), its cost class (:attr:`cost`).
    Per-run state (a covariance, a loaded network, a jitted function's constants) is what
    :meth:`prepare` returns, a dataclass of the method's own, handed to both hooks.
    """

    name: ClassVar[str]
    model: str = "forecaster"
    """``"forecaster"``, ``"simulator"`` or ``"none"`` (no dynamics)."""
    uses_observations: ClassVar[bool] = True
    """False for the references that ignore them (their analysis is the same in every
    regime, so the harness computes it once)."""
    guides_every_step: ClassVar[bool] = False
    """True for a method whose ``guide`` also steers unobserved steps (it previews the
    observations ahead); ``observed`` then holds no observation at those steps."""
    note: ClassVar[str] = ""
    """How the method differs from DAPPER's of the same name, if it does (CLI help)."""
    controller_setting: ClassVar[str | None] = None
    """The setting that names a trained controller checkpoint, for a method that needs
    one (``--controller CKPT`` fills it)."""
    tuning: ClassVar[Tuning | None] = None
    """The main hyper-parameter the harness tunes, or None."""
    cost: ClassVar[int] = 0
    """Cost beyond its model's: 1 a gradient per sampler sub-step, 2 an optimisation per
    step (the harness runs cheap cells first)."""

    @property
    def needs(self) -> frozenset[str]:
        """What the method runs on: ``forecaster`` / ``simulator`` (its model), and
        ``controller`` (a trained controller checkpoint)."""
        needs = {self.model} - {"none"}
        if self.controller_setting is not None:
            needs.add("controller")
        return frozenset(needs)

    @property
    def controllers(self) -> list[str]:
        """The controller checkpoints the method runs (its :attr:`controller_setting`)."""
        checkpoint = getattr(self, self.controller_setting or "", None)
        return [checkpoint] if checkpoint else []

    @property
    def rank(self) -> int:
        """Order of cost: the model's (:data:`MODEL_COST`) plus the method's own."""
        return MODEL_COST[self.model] + self.cost

    def check_needs(self, *, forecaster: bool) -> None:
        """Refuse, before any work, a method on the forecaster without a checkpoint."""
        if "forecaster" in self.needs and not forecaster:
            raise ConfigError(f"method '{self.name}' with model=forecaster needs a forecaster "
                              "checkpoint (--forecaster CKPT), or set model=simulator")

    def sampler_steps(self) -> int | None:
        """The forecaster's denoising sub-steps per step in this method's runs (None: the
        forecaster's own): a method's ``sub_steps`` setting where it has one (0: unset)."""
        return getattr(self, "sub_steps", 0) or None

    def prepare(self, problem: Problem) -> Any:
        """The method's per-run state, built once before the first step (None: stateless)."""
        return None

    def guide(self, observed: Observed, problem: Problem, state: Any) -> Control | None:
        """A per-step sampler control for the forecaster, or None."""
        return None

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem,
                state: Any) -> np.ndarray:
        """The analysis ``(trajectory, member, *space)`` from the prior of the same shape."""
        return prior

    def parameters(self) -> dict[str, Any]:
        return asdict(self)


class Diverged(FloatingPointError):
    """A method produced non-finite states; ``analysis`` holds the run up to that step,
    NaN after it (the harness scores such a run as unstable)."""

    def __init__(self, message: str, analysis: xr.Dataset) -> None:
        super().__init__(message)
        self.analysis = analysis


def _model(method: Method, section, forecaster: Forecaster | None,
           seed: int) -> Model | None:
    """The model ``method`` runs on: the simulator of the config's ``section`` (imported
    data have none, and say so), or the forecaster."""
    if method.model == "none":
        return None
    if method.model == "simulator":
        return SimulatorModel(section.build())
    method.check_needs(forecaster=forecaster is not None)
    from assimilate.models.forecaster import ForecasterModel

    return ForecasterModel(forecaster, sub_steps=method.sampler_steps(), seed=seed)


def _loop(method: Method, observations: Observations, background: np.ndarray,
          problem: Problem, n_steps: int, progress: bool,
          calendar: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(analysis, background)`` states ``(trajectory, member, n_steps + 1, *space)`` and the
    step at which the method diverged (0: it did not; the states are NaN from there on).
    ``calendar`` ``(trajectory, n_steps + 1)``: the valid time of every step, or None.

    A top-to-bottom loop over the model's time axis (module doc)."""
    n_traj, n_members, space = background.shape[0], background.shape[1], background.shape[2:]
    model = problem.model
    state = method.prepare(problem)
    k = 1 if model is None else model.history
    history = np.repeat(background[:, :, None], k, axis=2).reshape(-1, k, *space)
    observed_steps = {int(step) for step in observations.steps}
    start = background
    if 0 in observed_steps:  # observations at the initial time analyse the first guess
        start = method.analyse(background, _observed(observations, 0), problem, state)
        history = np.repeat(start[:, :, None], k, axis=2).reshape(-1, k, *space)
    analyses, priors = [start], [background]
    for step in tqdm(range(1, n_steps + 1), disable=not progress, unit="step",
                     desc=f"assimilate {method.name}"):
        observed = _observed(observations, step) if step in observed_steps else None
        control = None
        if model is not None and (observed is not None or method.guides_every_step):
            control = method.guide(observed or _observed(observations, step), problem, state)
        if model is None:
            prior = problem.climatology.draw(problem.rng, (n_traj, n_members))
        else:
            valid = None if calendar is None else np.repeat(calendar[:, step], n_members)
            prior = model.advance(history, control, valid).reshape(n_traj, n_members, *space)
        analysis = prior if observed is None else method.analyse(prior, observed, problem,
                                                                 state)
        if not np.isfinite(analysis).all():
            lost = np.full((n_steps + 1 - step, *analysis.shape), np.nan, np.float32)
            analyses.extend(lost)
            priors.extend(lost)
            return np.stack(analyses, axis=2), np.stack(priors, axis=2), step
        history = np.concatenate([history[:, 1:], analysis.reshape(-1, 1, *space)], axis=1)
        analyses.append(analysis)
        priors.append(prior)
    return np.stack(analyses, axis=2), np.stack(priors, axis=2), 0


def _calendar(observations: Observations, grid: Grid, n_steps: int) -> np.ndarray | None:
    """The valid time of every step ``(trajectory, n_steps + 1)``, or None without a calendar."""
    start, step_length = observations.start_times, observations.step_length
    if start is None:
        return None
    start = start.astype("datetime64[ns]")
    steps = observations.time0 / grid.interval + np.arange(n_steps + 1)
    if step_length is None:
        step_length = np.timedelta64(round(grid.interval * 3600e9), "ns")
    offsets = (steps * step_length.astype("timedelta64[ns]").astype(np.int64)).round()
    return start[:, None] + offsets.astype("timedelta64[ns]")[None]


def _observed(observations: Observations, step: int) -> Observed:
    operator, values, error_std, mask = observations.at(step)
    return Observed(step, operator, values, error_std, mask)


def assimilate(method: Method, observations: Observations, *, initial: np.ndarray | None,
               config, forecaster: Forecaster | None = None,
               climatology: Climatology | None = None, n_members: int = 16,
               n_steps: int | None = None, seed: int = 0, progress: bool = True) -> xr.Dataset:
    """Run ``method`` over the observations' time span; the analysis dataset (module doc).

    ``initial``: the first background, a state ``(*space)``, an ensemble ``(member,
    *space)`` or one per trajectory ``(trajectory, member, *space)``; None draws members
    from ``climatology`` (simulated from ``config`` when not given). ``config``: the
    experiment configuration whose simulator defines the grid and time step. ``n_steps``
    defaults to the last observed step. Observations with calendar times (imported data;
    :meth:`~assimilate.observe.Observations.on_calendar`) give a forecaster conditioned on
    the calendar its hours, and the analysis its ``valid_time``. A
    non-finite state raises :class:`Diverged` (a ``FloatingPointError``) holding the
    analysis up to that step, NaN after it.
    """
    grid = Grid.of_config(config.simulator)
    if climatology is None:
        if not config.simulator.simulated:
            raise ConfigError("imported data have no simulator to draw a climatology from: "
                              "give a climatology store (--climatology, e.g. the training "
                              "store) for the first background and OI's covariance")
        climatology = Climatology.simulate(config.simulator.build(), seed=seed + 1)
    n_steps = int(max(observations.steps, default=0)) if n_steps is None else n_steps
    if n_steps < 1:
        raise ValueError("the observations end at step 0: nothing to assimilate; give the "
                         "number of steps (n_steps, --steps N)")
    rng = np.random.default_rng(seed)
    problem = Problem(None, climatology, grid, n_members, rng, jax.random.PRNGKey(seed),
                      observations=observations)
    background = climatology.first_background(initial, observations.n_trajectories,
                                              n_members, rng)
    calendar = _calendar(observations, grid, n_steps)
    with ExitStack() as stack:
        problem.model = _model(method, config.simulator, forecaster, seed)
        counter = None
        if method.model == "forecaster":
            from assimilate.diffusion import EvaluationCounter

            counter = stack.enter_context(EvaluationCounter(forecaster.model))
        started = time.perf_counter()
        analysis, prior, diverged = _loop(method, observations, background, problem, n_steps,
                                          progress, calendar)
        seconds = time.perf_counter() - started
    ds = _dataset(method, observations, (analysis, prior), config, grid, climatology,
                  (seconds, 0 if counter is None else counter.calls), seed)
    if calendar is not None:
        ds = ds.assign_coords(valid_time=(("trajectory", "time"), calendar,
                                          {"long_name": "calendar time"}))
    if diverged:
        raise Diverged(f"method '{method.name}' produced non-finite states at step "
                       f"{diverged}", ds)
    return ds


def _dataset(method: Method, observations: Observations,
             states: tuple[np.ndarray, np.ndarray], config, grid: Grid,
             climatology: Climatology, cost: tuple[float, int], seed: int) -> xr.Dataset:
    """The analysis dataset of ``states`` ``(analysis, prior)``, stamped with its provenance;
    ``cost``: ``(wall seconds, NFE)``."""
    (analysis, prior), (seconds, nfe) = states, cost
    variable = grid.variable
    n_steps = analysis.shape[2] - 1
    dims = ("trajectory", "member", "time", *grid.dims)
    units = {"units": config.simulator.units} if not config.simulator.simulated else {}
    times = observations.time0 + np.arange(n_steps + 1) * grid.interval
    ds = xr.Dataset(
        {variable: (dims, analysis, {"long_name": "analysis", **units}),
         f"{variable}_background": (dims, prior, {"long_name": "background (prior)", **units})},
        coords={"trajectory": observations.trajectory_labels,
                "member": np.arange(analysis.shape[1]),
                "time": ("time", times, {"units": "1"} if config.simulator.simulated else
                         {"units": "h", "long_name": "hours since model time 0"}),
                **{name: (name, values, grid.coordinate_attrs(name))
                   for name, values in grid.named.items()}},
    )
    ds.attrs = {
        "schema": ANALYSIS_SCHEMA,
        "method": method.name,
        "parameters": json.dumps(method.parameters()),
        "model": method.model,
        "regime": str(observations.dataset.attrs.get("regime", "user")),
        "observed_steps": json.dumps([int(s) for s in observations.steps if s <= n_steps]),
        "observations": str(observations.dataset.attrs.get("source", "in memory")),
        "pde": config.simulator.pde,
        "config": config.model_dump_json(),
        "n_members": int(analysis.shape[1]),
        "climatology": climatology.source,
        "climatological_std": climatology.std,
        "nfe": int(nfe),
        "nfe_per_step": nfe / n_steps,
        "wall_time_s": round(seconds, 3),
        "seconds_per_step": seconds / n_steps,
        "threads": json.dumps(threads_in_effect()),
        "seed": seed,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "package_version": metadata.version("assimilate"),
    }
    return ds


def score(analysis: xr.Dataset, truth: np.ndarray, *, spin_up: int) -> dict[str, float]:
    """DAPPER-style scores of an analysis against ``truth`` ``(trajectory, time, *space)``.

    ``rmse.a`` / ``rmse.f``: RMSE of the ensemble mean of the analysis / background at the
    observed steps after ``spin_up`` steps, averaged over steps and trajectories; ``nrmse``
    variants divide by the climatological std; ``spread.a`` the ensemble spread,
    ``spread_ratio.a`` the spread-skill ratio and ``crps.a`` the CRPS over the
    climatological std, of the analysis ensemble. The definitions are those of
    :mod:`assimilate.evaluation.scores`.
    """
    variable = next(name for name in analysis.data_vars if not name.endswith("_background"))
    observed = np.array(json.loads(analysis.attrs.get("observed_steps", "[]")), dtype=int)
    steps = np.arange(analysis.sizes["time"])
    keep = steps[steps >= spin_up] if observed.size == 0 else observed[observed >= spin_up]
    std = analysis.attrs["climatological_std"]
    dims = analysis[variable].dims
    space = dims[3:]
    reference = xr.DataArray(np.asarray(truth)[:, keep], dims=(dims[0], *dims[2:]))
    result = {}
    for label, name in (("a", variable), ("f", f"{variable}_background")):
        states = xr.DataArray(analysis[name].values[:, :, keep], dims=dims)
        rmse = float(scores.rmse(states.mean("member"), reference, space).mean())
        result[f"rmse.{label}"], result[f"nrmse.{label}"] = rmse, rmse / std
    members = xr.DataArray(analysis[variable].values[:, :, keep], dims=dims)
    if members.sizes["member"] > 1:
        result["spread.a"] = float(scores.ensemble_spread(members, space).mean())
        result["spread_ratio.a"] = float(scores.spread_skill_ratio(
            members, reference, space, over=(dims[0], dims[2])))
        result["crps.a"] = float(scores.crps_ensemble(members, reference).mean()) / std
    return result
