"""The autoregressive diffusion forecaster (ARDM) and its rollouts.

Q(x_{0:T}) = p(x_0) Π_t q_θ(x_{t+1} | x_{t-k+1..t}): each forecast step runs S denoising
sub-steps of one conditional diffusion model, whose conditioning channels are the last
``k`` states (and, for real weather, the forecast state's calendar features:
:mod:`assimilate.models.calendar`) ("Control-Augmented Autoregressive Diffusion for Data Assimilation",
Srivastava et al., arXiv 2510.06637). By default the model denoises the increment
x_{t+1} − x_t, rescaled to unit variance, which keeps small time steps well resolved.

``rollout`` accepts a ``control`` hook: called with the forecast step and the current
history, it returns the samplers' per-sub-step ``correction`` — the one place where
guidance and the data-assimilation controller enter, without a second sampling loop.

    train_forecaster(config, data, out)   # = assimilate train forecaster CONFIG --data --out
    rollout(forecaster, initial_states, n_steps, n_members)  # an ensemble forecast
    # assimilate forecast CKPT --init STORE ...: assimilate.models.forecast
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from assimilate.config import ConditioningNoise, ExperimentConfig, ForecasterConfig
from assimilate.da.dynamics import Model
from assimilate.diffusion import Correction, EvaluationCounter
from assimilate.models.augment import perturb_history
from assimilate.models.calendar import calendar_features, conditioning, require_calendar
from assimilate.models.core import (
    StoreTrainer,
    build_model,
    checkpoint_simulator,
    loss_function,
    periodic,
    prior_draw,
    sample_from,
)
from assimilate.training.batches import (
    DEFAULT_MEMORY_LIMIT,
    Normalisation,
    windows_and_features,
)
from assimilate.training.loop import load_checkpoint, select_device
from assimilate.training.recipe import (
    Recipe,
    RunOptions,
    TrainingData,
    mean_loss,
    train,
)
from pde.io import threads
from pde.io.progress import tqdm
from pde.io.store import open_trajectories, require_physics

__all__ = ["Control", "Forecaster", "ForecasterModel", "ForecasterTrainer", "conditioning",
           "load_forecaster", "open_matching", "rollout", "rollout_tensor", "train_forecaster",
           "training_pair"]

FORECAST_SCHEMA = "assimilate.forecast/1"
# (forecast step, normalised history (batch, k, *space)) -> correction for that step, or None
Control = Callable[[int, torch.Tensor], Correction | None]


@dataclasses.dataclass
class Forecaster:
    """A trained ARDM with everything needed to run it on physical fields."""

    model: nn.Module
    config: ExperimentConfig
    normalisation: Normalisation
    increment_std: float | torch.Tensor
    """The increment target's std in normalised units: one number, or one per grid point
    ``(*space)`` (``forecaster.increment_scale: point``)."""
    variable: str
    coordinates: dict[str, np.ndarray]
    interval: float
    checkpoint: str
    simulator: dict
    """The simulator section of the store it was trained on: the physics it knows."""

    @property
    def history(self) -> int:
        return self.config.forecaster.history

    @property
    def calendar(self) -> list[str]:
        """The calendar features it conditions on (``forecaster.calendar``); none: []."""
        return list(self.config.forecaster.calendar)

    def clock(self, valid_times: np.ndarray | None, device: torch.device | None = None
              ) -> torch.Tensor | None:
        """Calendar features ``(batch, F)`` of the forecast states' ``valid_times``
        ``(batch,)``, or None for a forecaster without a calendar; refused in one line
        where it has one and no valid times are given."""
        if not self.calendar:
            return None
        if valid_times is None:
            raise ValueError(f"the forecaster '{self.checkpoint}' conditions on "
                             f"{', '.join(self.calendar)}: give the valid times of the states "
                             "it forecasts (a store with calendar times, or run --calendar)")
        features = calendar_features(np.asarray(valid_times).reshape(-1), self.calendar)
        device = device or next(self.model.parameters()).device
        return torch.from_numpy(features).to(device)

    def step_duration(self) -> np.timedelta64:
        """One forecast step in real time (imported data: ``interval`` hours)."""
        return np.timedelta64(round(self.interval * 3600e9), "ns")

    def state_of(self, history: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Physical next state ``(batch, *space)`` for the sampler's variable ``drawn``
        ``(batch, 1, *space)`` (the scaled increment or the state), normalised ``history``."""
        if self.config.forecaster.target == "increment":
            drawn = history[:, -1:] + self.increment_std * drawn
        return self.normalisation.denormalise(drawn[:, 0])

    def step(self, history: torch.Tensor, generator: torch.Generator, *,
             correction: Correction | None = None, sub_steps: int | None = None,
             clock: torch.Tensor | None = None) -> torch.Tensor:
        """Next normalised state ``(batch, 1, *space)`` from a normalised history ``(batch, k,
        *space)``; ``clock``: the calendar features of the next state (:meth:`clock`)."""
        return self.step_from(self.prior(history, generator), history, correction=correction,
                              sub_steps=sub_steps, generator=generator, clock=clock)

    def prior(self, history: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The sampler's starting draw ``(batch, 1, *space)`` for one forecast step."""
        shape = (history.shape[0], 1, *history.shape[2:])
        return prior_draw(self.model, self.config.forecaster, shape, generator)

    def step_from(self, noise: torch.Tensor, history: torch.Tensor, *,
                  correction: Correction | None = None, sub_steps: int | None = None,
                  generator: torch.Generator | None = None,
                  clock: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`step` from a given prior draw: with a deterministic sampler a pure
        function of ``(noise, history)``, so it can be recomputed (gradient checkpointing)."""
        settings = self.config.forecaster
        if settings.calendar and clock is None:
            raise ValueError(f"the forecaster '{self.checkpoint}' conditions on "
                             f"{', '.join(settings.calendar)}: this use of it gives no valid "
                             "times (not supported yet with a calendar)")
        drawn = sample_from(self.model, settings, noise, cond=conditioning(history, clock),
                            correction=correction, sub_steps=sub_steps, generator=generator)
        if settings.target == "increment":
            return history[:, -1:] + self.increment_std * drawn
        return drawn


def _increment_std(field: xr.DataArray, normalisation: Normalisation,
                   noise: ConditioningNoise, scale: str = "field") -> float | np.ndarray:
    """Std of the training targets x_{t+1} − x̃_t in normalised units: one number, or with
    ``scale="point"`` one per grid point ``(*space)``.

    Clean increments are Dask-reduced over the training set; the conditioning noise adds
    its mean variance, ``probability · amplitude² / 3`` (a ~ U(0, amplitude)), so that the
    targets keep unit variance, as the denoiser's ``sigma_data`` assumes.
    """
    increments = field.astype(np.float64).diff("time") / normalisation.std
    over = ("trajectory", "time") if scale == "point" else None
    std = np.asarray(increments.std(over).compute())
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        where = "at some grid points " if std.ndim else ""
        raise ValueError(f"field '{field.name}' does not change in time {where}(increment std "
                         f"{float(std.min())}); use forecaster.increment_scale: field")
    total = np.sqrt(std**2 + noise.probability * noise.amplitude**2 / 3)
    return total if std.ndim else float(total)


def training_pair(window: torch.Tensor, settings: ForecasterConfig,
                  increment_std: float | torch.Tensor, generator: torch.Generator | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target, history)`` of normalised windows ``(batch, k + 1, *space)``.

    With a ``generator`` the history may be perturbed (``settings.conditioning_noise``); the
    target is always the clean next state, so an increment target is measured from the
    perturbed last state: the skip ``x̃_t + δ`` must land on the clean ``x_{t+1}``.
    """
    k = settings.history
    history, following = window[:, :k], window[:, k:]
    if generator is not None:
        history = perturb_history(history, settings.conditioning_noise, generator)
    if settings.target == "increment":
        following = (following - history[:, -1:]) / torch.as_tensor(increment_std).to(following)
    return following, history


def train_forecaster(config: ExperimentConfig, data: str | Path, out: str | Path, *,
                     steps: int | None = None, nu: float | None = None,
                     progress: bool = True, memory_limit: int = DEFAULT_MEMORY_LIMIT,
                     allow_other_data: bool = False) -> Path:
    """Train the forecaster of ``config`` on the store ``data``; checkpoint at ``out``.

    ``steps`` and ``nu`` override ``forecaster.training.steps`` and ``forecaster.nu``.

    Stores larger than ``memory_limit`` bytes are read lazily by background threads. A
    rerun resumes from ``out``; on another store only with ``allow_other_data``.
    """
    config = config.with_changes("forecaster", **{"training.steps": steps, "nu": nu})
    return train(ForecasterTrainer(config, data), out, inputs=[data],
                 options=RunOptions(progress=progress, memory_limit=memory_limit,
                                    allow_other_data=allow_other_data))


@dataclasses.dataclass(frozen=True)
class ForecasterTrainer(StoreTrainer):
    """The forecaster's part of the training recipe (:mod:`assimilate.training.recipe`):
    windows of ``k + 1`` states split into history and target (:func:`training_pair`),
    the family's denoising loss conditioned on the history."""

    def recipe(self, data: TrainingData) -> Recipe:
        settings = self.config.forecaster
        increment_std = 1.0
        if settings.target == "increment":
            increment_std = _increment_std(data.field.isel(trajectory=data.train),
                                           data.normalisation, settings.conditioning_noise,
                                           settings.increment_scale)
        scale = torch.as_tensor(increment_std, dtype=torch.float32)
        loss = loss_function(settings.family)
        features = None
        if settings.calendar:
            valid_times = require_calendar(data.store.ds, data.store.path, settings.calendar)
            features = calendar_features(valid_times, settings.calendar)

        def pair(drawn, step: int, generator: torch.Generator | None = None):
            windows, clocks = windows_and_features(drawn)
            target, history = training_pair(windows, settings, scale, generator)
            return target, conditioning(history, None if clocks is None else clocks[:, -1])

        return Recipe(
            "forecaster", self.config, window=settings.history + 1, features=features,
            build=lambda: build_model(settings, dims=data.dims,
                                      cond_channels=settings.cond_channels,
                                      periodic=periodic(self.config)),
            loss=loss, batch=pair,
            validation=lambda windows: mean_loss(loss, pair(windows, 0), data.device),
            metadata={"increment_std": torch.tensor(increment_std, dtype=torch.float64),
                      "interval": torch.tensor(float(data.store.ds.attrs["interval"]),
                                               dtype=torch.float64)})


def load_forecaster(checkpoint: str | Path) -> Forecaster:
    """The forecaster (EMA weights, on the selected device) stored at ``checkpoint``."""
    threads.configure()  # torch's pools, before the first forecast step (pde.io.threads)
    payload = load_checkpoint(checkpoint, kind="forecaster")
    config = ExperimentConfig.model_validate_json(payload["config"])
    coordinates = {name: values.numpy() for name, values in payload["coordinates"].items()}
    model = build_model(config.forecaster, dims=len(coordinates),
                        cond_channels=config.forecaster.cond_channels, periodic=periodic(config))
    model.load_state_dict(payload["ema"])
    model.eval().requires_grad_(False).to(select_device())
    scale = payload["increment_std"]
    scale = float(scale) if scale.ndim == 0 else scale.float().to(select_device())
    return Forecaster(model, config, Normalisation.from_state(payload["normalisation"]),
                      scale, payload["variable"], coordinates,
                      float(payload["interval"]), str(Path(checkpoint).resolve()),
                      checkpoint_simulator(payload, config))


def open_matching(forecaster: Forecaster, path: str | Path) -> xr.Dataset:
    """The trajectory store ``path``, refused unless its physics are the forecaster's."""
    ds = open_trajectories(path, pde=forecaster.config.simulator.pde)
    require_physics(ds, forecaster.simulator, path=path,
                    what=f"the forecaster '{forecaster.checkpoint}' was trained on")
    return ds


def rollout_tensor(forecaster: Forecaster, history: torch.Tensor, n_steps: int,
                   generator: torch.Generator, *, control: Control | None = None,
                   sub_steps: int | None = None, progress: bool = False,
                   valid_times: np.ndarray | None = None) -> torch.Tensor:
    """Normalised forecast ``(batch, n_steps, *space)`` from a normalised history ``(batch, k,
    *space)``; ``valid_times`` ``(batch,)``: the calendar time of the last history state
    (needed by a forecaster with a calendar)."""
    states = []
    for step in tqdm(range(n_steps), disable=not progress, unit="step", desc="forecast"):
        correction = None if control is None else control(step, history)
        ahead = None if valid_times is None else \
            np.asarray(valid_times) + (step + 1) * forecaster.step_duration()
        clock = forecaster.clock(ahead, history.device)  # None without a calendar
        following = forecaster.step(history, generator, correction=correction,
                                    sub_steps=sub_steps, clock=clock)
        states.append(following[:, 0])
        history = torch.cat([history[:, 1:], following], dim=1)
    return torch.stack(states, dim=1)


def rollout(forecaster: Forecaster, initial_states: np.ndarray, n_steps: int,
            n_members: int = 1, sub_steps: int | None = None, *, seed: int = 0,
            control: Control | None = None, progress: bool = False,
            valid_time: np.datetime64 | None = None) -> xr.Dataset:
    """An ensemble forecast from physical ``initial_states`` ``(k, *space)``; ``valid_time``:
    the calendar time of the last of them (a forecaster with a calendar needs it).

    Returns a Dataset with ``variable`` of dims ``(member, time, *space)``; ``time`` runs
    over lead times ``0, interval, ..., n_steps * interval`` (lead 0 is the last initial
    state). Members differ only in the diffusion noise; they are batched together.
    """
    threads.configure()
    k = forecaster.history
    initial = np.array(initial_states, dtype=np.float32)  # a writable copy
    space = tuple(len(values) for values in forecaster.coordinates.values())
    if initial.shape != (k, *space):
        raise ValueError(f"initial_states must have shape {(k, *space)} (history, *space), "
                         f"got {initial.shape}")
    if n_steps < 1 or n_members < 1:
        raise ValueError(f"n_steps and n_members must be >= 1, got {n_steps}, {n_members}")
    device = next(forecaster.model.parameters()).device
    history = forecaster.normalisation.normalise(torch.from_numpy(initial).double()).float()
    history = history.to(device).unsqueeze(0).expand(n_members, *history.shape).contiguous()
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.perf_counter()
    with torch.no_grad(), EvaluationCounter(forecaster.model) as counter:
        states = rollout_tensor(
            forecaster, history, n_steps, generator, control=control, sub_steps=sub_steps,
            progress=progress,
            valid_times=None if valid_time is None else np.full(n_members, valid_time))
    seconds = time.perf_counter() - started
    states = forecaster.normalisation.denormalise(states.double()).float().cpu().numpy()
    states = np.concatenate([np.broadcast_to(initial[-1], (n_members, 1, *space)), states], 1)
    return _forecast_dataset(forecaster, states, sub_steps, seed, seconds, counter.calls)


def _forecast_dataset(forecaster: Forecaster, states: np.ndarray, sub_steps: int | None,
                      seed: int, seconds: float, nfe: int) -> xr.Dataset:
    settings = forecaster.config.forecaster
    steps = sub_steps or settings.sampling.steps
    n_members, n_times = states.shape[:2]
    coords = forecaster.coordinates
    ds = xr.Dataset(
        {forecaster.variable: (("member", "time", *coords), states, {"units": "1"})},
        coords={"member": np.arange(n_members),
                "time": ("time", np.arange(n_times) * forecaster.interval,
                         {"units": "1", "long_name": "lead time"}),
                **{name: (name, values, {"units": "1"}) for name, values in coords.items()}},
    )
    ds.attrs = {
        "schema": FORECAST_SCHEMA,
        "method": "ardm",
        "pde": forecaster.config.simulator.pde,
        "family": settings.family,
        "nu": "gaussian" if settings.nu is None else settings.nu,
        "sampler": settings.sampling.sampler,
        "sub_steps": steps,
        "nfe": nfe,
        "seed": seed,
        "wall_time_s": round(seconds, 3),
        "threads": json.dumps(threads.in_effect()),
        "checkpoint": forecaster.checkpoint,
        "config": forecaster.config.model_dump_json(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "package_version": metadata.version("assimilate"),
    }
    return ds


@dataclasses.dataclass
class ForecasterModel(Model):
    """The learned forecaster; ``sub_steps`` overrides its sampler's steps."""

    forecaster: Forecaster
    sub_steps: int | None = None
    seed: int = 0
    name: str = "forecaster"
    generator: torch.Generator = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.device = next(self.forecaster.model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.history = self.forecaster.history

    def normalise(self, values: np.ndarray) -> torch.Tensor:
        norm = self.forecaster.normalisation
        return norm.normalise(torch.from_numpy(np.asarray(values)).double()).float().to(
            self.device)

    def denormalise(self, values: torch.Tensor) -> np.ndarray:
        norm = self.forecaster.normalisation
        return norm.denormalise(values.detach().double()).float().cpu().numpy()

    def state_of(self, history: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """See :meth:`assimilate.models.forecaster.Forecaster.state_of`."""
        return self.forecaster.state_of(history, drawn)

    def advance(self, history: np.ndarray, control: Control | None = None,
                valid_times: np.ndarray | None = None) -> np.ndarray:
        normalised = self.normalise(history)
        correction = None if control is None else control(0, normalised)
        clock = self.forecaster.clock(valid_times, self.device)
        with torch.no_grad():
            following = self.forecaster.step(normalised, self.generator, correction=correction,
                                             sub_steps=self.sub_steps, clock=clock)
        return self.denormalise(following[:, 0])
