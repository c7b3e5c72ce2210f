"""Offline training of the controller, the forecaster frozen.

    train_controller(config, forecaster="ks-forecaster.pt", data="ks.zarr", out="ctl.pt")
    # = assimilate train controller CONFIG --forecaster CKPT --data STORE --out CKPT

Each step draws windows of the training trajectories and one regime (the regimes take
turns), synthesises that regime's observations from the true continuation (random phase
of its schedule, fresh noise), and rolls the controlled forecaster forward:

1. the start state is imperfect: per window, a climatological state (another window's) or
   the true state perturbed by coloured noise of std up to ``controller.perturbation``;
2. ``spin_up`` controlled steps without gradients follow, so the window also starts from
   the controller's own analyses (a controller trained from true states only never learns
   to pull a drifted forecast back);
3. ``lookahead`` (Λ) controlled steps with gradients, each checkpointed (its sub-steps are
   recomputed in the backward pass, so memory stays that of one step).

Loss per window: the terminal cost plus ``energy`` times the mean control energy per
step, the weighted Σ‖u‖² that for Gaussian transitions is the KL divergence to the
uncontrolled chain ("Control-Augmented Autoregressive Diffusion for Data Assimilation",
arXiv 2510.06637). The terminal cost (``controller.objective``):

- ``truth`` (default): the mean squared error of the trained steps' states against the
  true continuation, over the whole grid, in noise variances. Offline, the continuation
  the observations are synthesised from is at hand; scoring against it is the dense,
  noise-free limit of the observation misfit.
- ``observations``: the mean over observed steps of the squared observation misfit in
  noise stds, each step's floored at ``misfit_floor`` (below about 1 the controller would
  be fitting the noise: the discrepancy principle). Measured on small KS it plateaus: the
  cheapest way to fit observations is to pull the observed points alone, and once they sit
  within the noise nothing in the loss asks for the points in between (validation error
  0.33 climatological stds after 400 steps, against DPS's 0.10);
- ``variational``: the negative evidence lower bound of the observations, the unfloored
  observation negative log-likelihood ``½ Σ ‖y − H(x)‖² / σ_o²`` of the observed steps plus
  the path KL divergence of the controlled chain to the forecaster's, both per grid
  point. The controller is a Gaussian policy on stochastic (ancestral) sub-steps, so the
  KL is finite (:mod:`.steer`); the optimum of the bound over all policies is the posterior
  path measure given the observations ("Variational Control for Guidance in Diffusion
  Models", arXiv 2502.03686; "Hierarchical Variational Policies for Reward-Guided
  Diffusion", arXiv 2605.21661). It needs no true state: only observations. ``energy``
  plays no part (the KL's weight is 1);
- ``crps`` / ``energy_score``: ``controller.members`` members are rolled jointly from
  each window (the same observations, each its own imperfect start and prior draws, the
  ensemble's members adjacent in the batch as in data assimilation), and the trained
  steps are scored by the fair CRPS per grid point, or the fair energy score of the field
  (:mod:`.objectives`), against the true continuation, in noise stds. ``truth`` pulls
  every member to the conditional mean, so the ensemble collapses; a proper score is
  minimised by the conditional distribution itself.

The validation loss is the error of the controlled states against the true ones
(climatological stds), averaged over the regimes: the RMSE of each member for one member
per window, the fair CRPS of the members otherwise. The rest (split, validation windows,
seeding, metadata, resume, EMA, progress, NaN handling, DDP) is the recipe every model
shares (:func:`assimilate.training.recipe.train`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from assimilate.config import ConditioningNoise, ControllerConfig, ExperimentConfig
from assimilate.control.inputs import (
    ControlInputs,
    GridPlacement,
    StepObservations,
    features_of,
    preview_of,
)
from assimilate.control.network import ControllerNet
from assimilate.control.objectives import fair_crps, fair_energy_score
from assimilate.control.steer import controlled_step, policy_noise
from assimilate.models.augment import perturb_history
from assimilate.models.calendar import calendar_features, require_calendar
from assimilate.models.forecaster import Forecaster, load_forecaster, open_matching
from assimilate.observe import Operator, Regime, load_regime, regime_names
from assimilate.training.batches import DEFAULT_MEMORY_LIMIT, Normalisation, windows_and_features
from assimilate.training.loop import file_identity
from assimilate.training.recipe import Recipe, RunOptions, Store, TrainingData, train

__all__ = ["ControllerTrainer", "TrainingRegime", "build_controller", "train_controller",
           "training_regimes", "window_loss"]

_VALIDATION_WINDOWS = 16


@dataclasses.dataclass(frozen=True)
class TrainingRegime:
    """A regime on the training grid: its operator and schedule."""

    name: str
    operator: Operator
    every: int
    noise: float
    """Observation-error std in climatological stds."""


def build_controller(config: ExperimentConfig, dims: int) -> ControllerNet:
    settings = config.controller
    return ControllerNet(dims, settings.lookahead, width=settings.width, blocks=settings.blocks,
                         ensemble=settings.ensemble,
                         stochastic=settings.objective == "variational")


def _window_length(config: ExperimentConfig, history: int) -> int:
    """History, spin-up, the trained steps and the last one's preview."""
    settings = config.controller
    return history + settings.spin_up + 2 * settings.lookahead - 1


def window_loss(forecaster: Forecaster, controller: ControllerNet, config: ExperimentConfig,
                window: torch.Tensor, regime: TrainingRegime, generator: torch.Generator,
                *, with_gradients: bool = True, truth_error: bool = False,
                clocks: torch.Tensor | None = None) -> torch.Tensor:
    """The per-window loss ``(batch,)`` (module doc) of normalised ``window``
    ``(batch, history + spin_up + 2Λ − 1, *space)`` (``clocks``: the calendar features of
    its states ``(batch, window, F)``, for a forecaster conditioned on them); with
    ``truth_error`` instead the error
    of the trained steps' states against the true ones, in climatological stds (what
    validation watches: a controller that fits the noise scores well on the misfit
    only)."""
    settings = config.controller
    k, lookahead, members = forecaster.history, settings.lookahead, settings.members
    observations = _WindowObservations.synthesise(window, k, regime, forecaster.normalisation,
                                                  lookahead, generator).repeated(members)
    history = _imperfect_start(window[:, :k], settings.perturbation, generator, members)

    def clock(j: int) -> torch.Tensor | None:  # the features of step j's state, per member
        return None if clocks is None else clocks[:, k - 1 + j].repeat_interleave(members, 0)

    with torch.no_grad():  # 2. spin-up
        for j in range(1, settings.spin_up + 1):
            inputs = observations.inputs(j, history, policy_noise(
                forecaster, controller, history, settings.sub_steps, generator))
            following, _ = controlled_step(forecaster, controller, history,
                                           forecaster.prior(history, generator), inputs,
                                           sub_steps=settings.sub_steps, clock=clock(j))
            history = torch.cat([history[:, 1:], following], dim=1)
    with torch.set_grad_enabled(with_gradients):  # 3. the trained steps
        costs = _trained_steps(forecaster, controller, settings, window, history, observations,
                               generator, checkpointed=with_gradients, clock=clock)
    if truth_error:
        if members > 1:
            return costs.score / lookahead
        return (costs.squared_error / lookahead).sqrt()
    noise = max(regime.noise, 1e-3)
    if settings.objective == "truth":
        cost = costs.squared_error / lookahead / noise**2
    elif settings.objective == "observations":
        cost = costs.misfit / max(costs.n_observed, 1)
    elif settings.objective == "variational":  # the negative ELBO: misfit + path KL
        return (costs.misfit + costs.energy) / lookahead
    else:
        cost = costs.score / lookahead / noise
    return cost + settings.energy * costs.energy / lookahead


@dataclasses.dataclass(frozen=True)
class _WindowObservations:
    """One window's synthetic observations, and the controller's inputs built from them."""

    regime: TrainingRegime
    values: dict[int, torch.Tensor]
    """Physical values ``(batch, n_obs)`` of each observed step ``j`` after the history."""
    mask: torch.Tensor
    normalisation: Normalisation
    placement: GridPlacement
    lookahead: int
    members: int = 1

    @classmethod
    def synthesise(cls, window: torch.Tensor, history: int, regime: TrainingRegime,
                   normalisation: Normalisation, lookahead: int,
                   generator: torch.Generator) -> _WindowObservations:
        """The regime's observations of the true continuation of ``window``: a random
        phase of its schedule, fresh noise."""
        batch, device = window.shape[0], window.device
        n_after = window.shape[1] - history
        phase = int(torch.randint(0, regime.every, (1,), generator=generator, device=device))
        observed = [j for j in range(1, n_after + 1) if (j - 1 + phase) % regime.every == 0]
        truth = normalisation.denormalise(window.double()).float()
        noise_std = regime.noise * normalisation.std
        values = {}
        for j in observed:
            clean = regime.operator.apply(truth[:, history - 1 + j])
            values[j] = clean + noise_std * torch.randn(clean.shape, generator=generator,
                                                        device=device)
        mask = torch.ones(batch, regime.operator.n_obs, dtype=torch.bool, device=device)
        return cls(regime, values, mask, normalisation, GridPlacement(regime.operator, device),
                   lookahead)

    def repeated(self, members: int) -> _WindowObservations:
        """The same observations for ``members`` members per window, members adjacent."""
        if members == 1:
            return self
        return dataclasses.replace(
            self, values={j: v.repeat_interleave(members, 0) for j, v in self.values.items()},
            mask=self.mask.repeat_interleave(members, 0), members=members)

    def at(self, j: int) -> StepObservations | None:
        if j not in self.values:
            return None
        norm = self.normalisation
        return StepObservations(self.regime.operator, self.values[j], self.mask,
                                self.regime.noise, norm.mean, norm.std, self.placement)

    def inputs(self, j: int, history: torch.Tensor,
               noise: torch.Tensor | None = None) -> ControlInputs:
        """What the controller reads at step ``j``, after the normalised ``history``
        (``noise``: a stochastic controller's, drawn for the step)."""
        lookahead = self.lookahead
        current, upcoming = self.at(j), [self.at(i) for i in range(j + 1, j + lookahead)]
        since = next((j - i for i in range(j - 1, 0, -1) if i in self.values), lookahead)
        previous = history[:, -1]
        return ControlInputs(previous, current, preview_of(upcoming, previous),
                             features_of(current, upcoming, since, lookahead,
                                         history.shape[0], history.device),
                             noise=noise, members=self.members)

    def misfit(self, j: int, state: torch.Tensor, floor: float, *,
               likelihood: bool = False) -> torch.Tensor:
        """The squared misfit ``(batch,)`` of the normalised ``state`` ``(batch, *space)``
        to step ``j``'s observations, in noise variances: their mean floored at ``floor``,
        or with ``likelihood`` the negative log-likelihood ``½ Σ r²`` per grid point."""
        noise_std = self.regime.noise * self.normalisation.std
        physical = self.normalisation.denormalise(state)
        residual = (self.values[j] - self.regime.operator.apply(physical)) / noise_std
        if likelihood:
            return 0.5 * residual.pow(2).sum(-1) / state[0].numel()
        return residual.pow(2).mean(-1).clamp_min(floor)


class _Costs(NamedTuple):
    """Sums over the trained steps, each ``(window,)``, and the observed steps' count."""

    squared_error: torch.Tensor
    """Members' mean squared error against the truth, in climatological variances."""
    score: torch.Tensor
    """The members' fair CRPS (grid mean) or fair energy score, in climatological stds."""
    misfit: torch.Tensor
    energy: torch.Tensor
    n_observed: int


def _trained_steps(forecaster: Forecaster, controller: ControllerNet,
                   settings: ControllerConfig, window: torch.Tensor, history: torch.Tensor,
                   observations: _WindowObservations, generator: torch.Generator, *,
                   checkpointed: bool, clock: Callable[[int], torch.Tensor | None]) -> _Costs:
    """Λ controlled steps from ``history`` (after the spin-up), scored against ``window``;
    ``history`` holds ``controller.members`` members per window, adjacent."""
    k, members = forecaster.history, settings.members
    n_windows = window.shape[0]
    squared_error, score, misfit, energy = (window.new_zeros(n_windows) for _ in range(4))
    n_observed = 0
    first = settings.spin_up + 1
    for j in range(first, first + settings.lookahead):
        inputs = observations.inputs(j, history, policy_noise(
            forecaster, controller, history, settings.sub_steps, generator))
        following, step_energy = controlled_step(
            forecaster, controller, history, forecaster.prior(history, generator), inputs,
            sub_steps=settings.sub_steps, checkpointed=checkpointed, clock=clock(j))
        energy = energy + step_energy.reshape(n_windows, members).mean(1)
        states = following[:, 0].reshape(n_windows, members, *following.shape[2:])
        truth = window[:, k - 1 + j]
        squared_error = squared_error + (states - truth[:, None]).pow(2).flatten(1).mean(1)
        if members > 1:
            score = score + (fair_energy_score(states, truth)
                             if settings.objective == "energy_score"
                             else fair_crps(states, truth).flatten(1).mean(1))
        if j in observations.values and settings.objective in ("observations", "variational"):
            misfit = misfit + observations.misfit(
                j, following[:, 0], settings.misfit_floor,
                likelihood=settings.objective == "variational").reshape(n_windows, members).mean(1)
            n_observed += 1
        history = torch.cat([history[:, 1:], following], dim=1)
    return _Costs(squared_error, score, misfit, energy, n_observed)


def _imperfect_start(history: torch.Tensor, amplitude: float, generator: torch.Generator,
                     members: int = 1) -> torch.Tensor:
    """``members`` starts per window, adjacent: per window either a climatological start
    (each member another window's states) or its own states, each member perturbed."""
    n_windows, device = history.shape[0], history.device
    perturbed = perturb_history(history.repeat_interleave(members, 0),
                                ConditioningNoise(amplitude=amplitude, probability=1.0),
                                generator)
    others = (torch.arange(n_windows, device=device)[:, None] - 1
              - torch.arange(members, device=device)[None]) % n_windows
    elsewhere = history[others.reshape(-1)]
    pick = torch.rand(n_windows, generator=generator, device=device) < 0.5
    pick = pick.repeat_interleave(members).reshape(-1, *(1,) * (history.ndim - 1))
    return torch.where(pick, elsewhere, perturbed)


def training_regimes(config: ExperimentConfig, names: list[str] | None, space, coordinates,
                     std: float = 1.0) -> list[TrainingRegime]:
    """The regimes ``names`` (default: the config's, else every regime of its PDE) on the
    grid; ``std``: the field's climatological std, for a noise given in its units."""
    pde = config.simulator.pde
    names = names or config.controller.regimes or [  # withheld stations verify, never train
        name for name in regime_names(pde) if not load_regime(name, pde).withheld]
    regimes: list[TrainingRegime] = []
    for name in names:
        regime: Regime = load_regime(name, pde)
        regimes.append(TrainingRegime(name, regime.operator(space, coordinates), regime.every,
                                      regime.noise_in(std)))
    return regimes


def train_controller(config: ExperimentConfig, forecaster: str | Path, data: str | Path,
                     out: str | Path, *, regimes: list[str] | None = None,
                     steps: int | None = None, progress: bool = True,
                     memory_limit: int = DEFAULT_MEMORY_LIMIT,
                     allow_other_data: bool = False) -> Path:
    """Train the controller of ``config`` for the frozen ``forecaster`` on the trajectories
    of ``data``, across ``regimes`` (default: ``controller.regimes``, else all of the
    PDE's); checkpoint at ``out``. A rerun resumes from ``out``; on another store only with
    ``allow_other_data``."""
    config = config.with_changes("controller", **{"training.steps": steps})
    return train(ControllerTrainer(config, forecaster, data, regimes), out,
                 inputs=[data, forecaster],
                 options=RunOptions(progress=progress, memory_limit=memory_limit,
                                    allow_other_data=allow_other_data))


class ControllerTrainer:
    """The controller's part of the training recipe (:mod:`assimilate.training.recipe`):
    :meth:`open` loads the frozen forecaster, whose normalisation the windows take; each
    step's windows come from the step's generator, the regimes take turns."""

    def __init__(self, config: ExperimentConfig, forecaster: str | Path, data: str | Path,
                 regimes: list[str] | None = None) -> None:
        self.config, self.checkpoint, self.data, self.regimes = config, forecaster, data, regimes
        self.forecaster: Forecaster | None = None

    def open(self) -> Store:
        self.forecaster = load_forecaster(self.checkpoint)
        ds = open_matching(self.forecaster, self.data)
        return Store(self.data, ds, ds[self.forecaster.variable],
                     self.forecaster.normalisation)

    def recipe(self, data: TrainingData) -> Recipe:
        model, config = self.forecaster, self.config
        if model is None:
            raise RuntimeError("ControllerTrainer.recipe before open: no forecaster loaded")
        ds, field = data.store.ds, data.field
        chosen = training_regimes(config, self.regimes, tuple(field.shape[2:]),
                                  [ds[name].values for name in field.dims[2:]],
                                  model.normalisation.std)

        features = None
        if model.calendar:
            valid_times = require_calendar(ds, data.store.path, model.calendar)
            features = calendar_features(valid_times, model.calendar)

        def loss(controller, batch, generator: torch.Generator) -> torch.Tensor:
            (window, clocks), regime = windows_and_features(batch[0]), batch[1]
            return window_loss(model, controller, config, window, regime, generator,
                               clocks=clocks)

        def validation(drawn):
            windows, clocks = windows_and_features(drawn)

            def validate(ema) -> float:
                losses = [float(window_loss(model, ema, config, windows, regime,
                                            torch.Generator(device=data.device).manual_seed(1),
                                            with_gradients=False, truth_error=True,
                                            clocks=clocks).mean())
                          for regime in chosen]
                return sum(losses) / len(losses)

            return validate

        names = [regime.name for regime in chosen]
        return Recipe(
            "controller", config, window=_window_length(config, model.history),
            features=features,
            build=lambda: build_controller(config, dims=data.dims),
            loss=loss,
            batch=lambda windows, step, generator: (windows, chosen[step % len(chosen)]),
            validation=validation, validation_windows=_VALIDATION_WINDOWS,
            windows_from_step_generator=True,
            metadata={"forecaster": model.checkpoint, "regimes": json.dumps(names)},
            identity={"forecaster": file_identity(model.checkpoint), "regimes": names})
