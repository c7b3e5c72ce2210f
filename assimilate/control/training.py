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
  0.33 climatological stds after 400 steps, against DPS's 0.10).

The validation loss is the error of the controlled states against the true ones
(climatological stds), averaged over the regimes. Resume, EMA, progress, NaN handling
and DDP come from :func:`assimilate.training.loop.fit`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from assimilate.config import ConditioningNoise, ExperimentConfig
from assimilate.control.inputs import (
    ControlInputs,
    GridPlacement,
    StepObservations,
    features_of,
    preview_of,
)
from assimilate.control.network import ControllerNet
from assimilate.control.steer import controlled_step
from assimilate.models.augment import perturb_history
from assimilate.models.core import checkpoint_metadata
from assimilate.models.forecaster import Forecaster, load_forecaster, open_matching
from assimilate.observe import Operator, Regime, load_regime, regime_names
from assimilate.training.batches import DEFAULT_MEMORY_LIMIT, WindowSampler, split_trajectories
from assimilate.training.loop import claim_checkpoint, file_identity, fit, select_device

__all__ = ["TrainingRegime", "build_controller", "train_controller", "window_loss"]

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
    return ControllerNet(dims, settings.lookahead, width=settings.width, blocks=settings.blocks)


def _window_length(config: ExperimentConfig, history: int) -> int:
    """History, spin-up, the trained steps and the last one's preview."""
    settings = config.controller
    return history + settings.spin_up + 2 * settings.lookahead - 1


def window_loss(forecaster: Forecaster, controller: ControllerNet, config: ExperimentConfig,
                window: torch.Tensor, regime: TrainingRegime, generator: torch.Generator,
                *, with_gradients: bool = True, truth_error: bool = False) -> torch.Tensor:
    """The per-window loss ``(batch,)`` (module doc) of normalised ``window``
    ``(batch, history + spin_up + 2Λ − 1, *space)``; with ``truth_error`` instead the RMSE
    of the trained steps' states against the true ones, in climatological stds (what
    validation watches: a controller that fits the noise scores well on the misfit
    only)."""
    settings = config.controller
    norm = forecaster.normalisation
    k, lookahead, spin_up = forecaster.history, settings.lookahead, settings.spin_up
    batch, device = window.shape[0], window.device
    placement = GridPlacement(regime.operator, device)
    noise_std = regime.noise * norm.std
    n_after = window.shape[1] - k
    phase = int(torch.randint(0, regime.every, (1,), generator=generator, device=device))
    observed = {j for j in range(1, n_after + 1) if (j - 1 + phase) % regime.every == 0}
    truth = norm.denormalise(window.double()).float()
    values = {}
    for j in sorted(observed):
        clean = regime.operator.apply(truth[:, k - 1 + j])
        values[j] = clean + noise_std * torch.randn(clean.shape, generator=generator,
                                                    device=device)
    mask = torch.ones(batch, regime.operator.n_obs, dtype=torch.bool, device=device)

    def at(j: int) -> StepObservations | None:
        if j not in observed:
            return None
        return StepObservations(regime.operator, values[j], mask, regime.noise, norm.mean,
                                norm.std, placement)

    def inputs(j: int, history: torch.Tensor) -> ControlInputs:
        current, upcoming = at(j), [at(i) for i in range(j + 1, j + lookahead)]
        since = next((j - i for i in range(j - 1, 0, -1) if i in observed), lookahead)
        previous = history[:, -1]
        return ControlInputs(previous, current, preview_of(upcoming, previous),
                             features_of(current, upcoming, since, lookahead, batch, device))

    history = _imperfect_start(window[:, :k], settings.perturbation, generator)
    with torch.no_grad():
        for j in range(1, spin_up + 1):
            following, _ = controlled_step(forecaster, controller, history,
                                           forecaster.prior(history, generator),
                                           inputs(j, history))
            history = torch.cat([history[:, 1:], following], dim=1)
    misfit = window.new_zeros(batch)
    energy = window.new_zeros(batch)
    squared_error = window.new_zeros(batch)
    n_observed = 0
    with torch.set_grad_enabled(with_gradients):
        for j in range(spin_up + 1, spin_up + lookahead + 1):
            following, step_energy = controlled_step(
                forecaster, controller, history, forecaster.prior(history, generator),
                inputs(j, history), checkpointed=with_gradients)
            energy = energy + step_energy
            squared_error = squared_error + (following[:, 0] - window[:, k - 1 + j]).pow(
                2).flatten(1).mean(1)
            if j in observed and settings.objective == "observations":
                state = norm.denormalise(following[:, 0])
                residual = (values[j] - regime.operator.apply(state)) / noise_std
                misfit = misfit + residual.pow(2).mean(-1).clamp_min(settings.misfit_floor)
                n_observed += 1
            history = torch.cat([history[:, 1:], following], dim=1)
    if truth_error:
        return (squared_error / lookahead).sqrt()
    if settings.objective == "truth":
        cost = squared_error / lookahead / max(regime.noise, 1e-3) ** 2
    else:
        cost = misfit / max(n_observed, 1)
    return cost + settings.energy * energy / lookahead


def _imperfect_start(history: torch.Tensor, amplitude: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Per window: another window's states (a climatological start) or its own, perturbed."""
    device = history.device
    perturbed = perturb_history(history, ConditioningNoise(amplitude=amplitude, probability=1.0),
                                generator)
    elsewhere = history.roll(1, dims=0)
    pick = torch.rand(history.shape[0], generator=generator, device=device) < 0.5
    return torch.where(pick.reshape(-1, *(1,) * (history.ndim - 1)), elsewhere, perturbed)


def training_regimes(config: ExperimentConfig, names: list[str] | None, space, coordinates,
                     ) -> list[TrainingRegime]:
    pde = config.simulator.pde
    names = names or config.controller.regimes or list(regime_names(pde))
    regimes: list[TrainingRegime] = []
    for name in names:
        regime: Regime = load_regime(name, pde)
        regimes.append(TrainingRegime(name, regime.operator(space, coordinates), regime.every,
                                      regime.noise))
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
    with claim_checkpoint(out, inputs=[data, forecaster]) as output:
        model = load_forecaster(forecaster)
        ds = open_matching(model, data)
        field = ds[model.variable]
        space = tuple(field.shape[2:])
        coordinates = [ds[name].values for name in field.dims[2:]]
        chosen = training_regimes(config, regimes, space, coordinates)
        train, validation = split_trajectories(field.sizes["trajectory"])
        length = _window_length(config, model.history)
        windows = WindowSampler(field, train, model.normalisation, window=length,
                                memory_limit=memory_limit)
        device = select_device()
        settings = config.controller.training

        def batch_fn(step: int, generator: torch.Generator):
            return windows(settings.batch_size, generator).to(device), chosen[step % len(chosen)]

        def loss_fn(controller, batch, generator: torch.Generator) -> torch.Tensor:
            window, regime = batch
            return window_loss(model, controller, config, window, regime, generator)

        validation_fn = None
        if len(validation):
            held_out = WindowSampler(field, validation, model.normalisation, window=length)
            fixed = held_out(_VALIDATION_WINDOWS, torch.Generator().manual_seed(0)).to(device)

            def validation_fn(ema) -> float:
                losses = [float(window_loss(model, ema, config, fixed, regime,
                                            torch.Generator(device=device).manual_seed(1),
                                            with_gradients=False, truth_error=True).mean())
                          for regime in chosen]
                return sum(losses) / len(losses)

        torch.manual_seed(settings.seed)
        controller = build_controller(config, dims=len(space))
        meta = checkpoint_metadata(
            "controller", config, ds, field, model.normalisation, data,
            forecaster=model.checkpoint, regimes=json.dumps([r.name for r in chosen]))
        identity = json.loads(meta["identity"])
        identity["forecaster"] = file_identity(model.checkpoint)
        identity["regimes"] = [r.name for r in chosen]
        meta["identity"] = json.dumps(identity, sort_keys=True)
        return fit(controller, loss_fn, batch_fn, settings, output, metadata=meta,
                   validation_fn=validation_fn, progress=progress,
                   allow_other_data=allow_other_data)

