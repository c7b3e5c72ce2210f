"""What every diffusion model of the project shares: construction, loss, sampling, the
training store.

The emulator (:mod:`assimilate.models.emulator`) and the forecaster (:mod:`assimilate.models.forecaster`)
differ only in what they condition on; both build their denoiser, loss and sampling here
(their checkpoint metadata: :func:`assimilate.training.recipe.checkpoint_metadata`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
import xarray as xr
from torch import nn

from assimilate.config import EmulatorConfig, ExperimentConfig, ForecasterConfig
from assimilate.diffusion import (
    Correction,
    Denoiser,
    FlowDenoiser,
    edm_loss,
    flow_loss,
    flow_sigmas,
    karras_sigmas,
    make_noise,
    prior_sample,
    sample_euler,
    sample_heun,
    sample_stochastic,
)
from assimilate.nets import build_unet
from assimilate.training.recipe import Store
from pde.io.store import field_variable, open_trajectories, require_physics

__all__ = ["StoreTrainer", "build_model", "checkpoint_simulator", "generate", "loss_function",
           "prior_draw", "sample_from", "training_field"]


def build_model(config: EmulatorConfig | ForecasterConfig, dims: int,
                cond_channels: int = 0, periodic: bool = True) -> nn.Module:
    """The denoiser ``D(x, sigma, cond)`` for one-channel fields of ``dims`` dims, on a
    periodic domain or a bounded one (imported regional data)."""
    backbone = build_unet(config.backbone, dims=dims, channels=1, cond_channels=cond_channels,
                          periodic=periodic)
    noise = make_noise(config.nu)
    if config.family == "flow":
        return FlowDenoiser(backbone, noise)
    return Denoiser(backbone, noise, sigma_data=config.sigma_data)


def periodic(config: ExperimentConfig) -> bool:
    """Whether the data's space wraps around: the simulators' does; imported data say."""
    return bool(getattr(config.simulator, "periodic", True))


def loss_function(family: str):
    """Per-sample loss ``(model, batch, generator) -> (batch,)`` of a model family.

    ``batch`` is the clean target ``(batch, 1, *space)``, or a pair ``(target, cond)``.
    """
    def loss_fn(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        target, cond = batch if isinstance(batch, tuple) else (batch, None)
        if family == "flow":
            return flow_loss(inner, target, generator=generator, cond=cond)
        return edm_loss(inner, target, generator=generator, cond=cond)

    return loss_fn


def _sigmas(config: EmulatorConfig | ForecasterConfig) -> torch.Tensor:
    sampling = config.sampling
    if config.family == "flow":
        return flow_sigmas(sampling.steps, t_start=1.0 / (1.0 + sampling.sigma_max))
    return karras_sigmas(sampling.steps, sampling.sigma_min, sampling.sigma_max, sampling.rho)


def _with_steps(config, sub_steps: int | None):
    if sub_steps is None:
        return config
    return config.model_copy(update={"sampling": config.sampling.model_copy(
        update={"steps": sub_steps})})


def prior_draw(model: nn.Module, config: EmulatorConfig | ForecasterConfig,
               shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """The sampler's starting point ``x_N`` of ``shape``, at the schedule's largest sigma."""
    sigma_max = float(_sigmas(config)[0])
    return prior_sample(shape, sigma_max, model.noise, generator=generator,
                        device=generator.device)


def sample_from(model: nn.Module, config: EmulatorConfig | ForecasterConfig,
                x: torch.Tensor, *, cond: torch.Tensor | None = None,
                correction: Correction | None = None, sub_steps: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoise the prior draw ``x`` with ``config.sampling``. The deterministic samplers
    (Euler, Heun) are a pure function of ``x`` (what gradient checkpointing needs); the
    stochastic one also draws from ``generator``."""
    config = _with_steps(config, sub_steps)
    sigmas = _sigmas(config).to(x.device)
    sampler = config.sampling.sampler
    if sampler == "stochastic":
        return sample_stochastic(model, x, sigmas, cond=cond, correction=correction,
                                 noise=model.noise, generator=generator)
    chosen = sample_heun if sampler == "heun" else sample_euler
    return chosen(model, x, sigmas, cond=cond, correction=correction)


def generate(model: nn.Module, config: EmulatorConfig | ForecasterConfig,
             shape: tuple[int, ...], generator: torch.Generator, *,
             cond: torch.Tensor | None = None, correction: Correction | None = None,
             sub_steps: int | None = None) -> torch.Tensor:
    """Normalised samples ``shape = (n, 1, *space)`` drawn with ``config.sampling``.

    ``cond`` ``(n, cond_channels, *space)`` conditions the denoiser; ``correction`` is the
    samplers' per-sub-step hook; ``sub_steps`` overrides ``config.sampling.steps``.
    """
    x = prior_draw(model, config, shape, generator)
    return sample_from(model, config, x, cond=cond, correction=correction,
                       sub_steps=sub_steps, generator=generator)


def checkpoint_simulator(payload: dict[str, Any], config: ExperimentConfig) -> dict[str, Any]:
    """The simulator section a model was trained on (older checkpoints: its config's)."""
    if "simulator" in payload:
        return json.loads(payload["simulator"])
    return config.simulator.model_dump(mode="json")


def training_field(config: ExperimentConfig, data: str | Path) -> tuple[xr.Dataset, xr.DataArray]:
    """``(store, field)`` of the training store ``data``, whose physics must be the config's."""
    ds = open_trajectories(data, pde=config.simulator.pde)
    require_physics(ds, config.simulator.model_dump(mode="json"), path=data,
                    what="the configuration's simulator section")
    return ds, ds[field_variable(ds)]


@dataclasses.dataclass(frozen=True)
class StoreTrainer:
    """What the emulator's and the forecaster's parts of the training recipe share: the
    experiment ``config`` and the training store ``data``, opened with its physics checked."""

    config: ExperimentConfig
    data: str | Path
    section: ClassVar[str] = "forecaster"  # the config section of the trained model

    def open(self) -> Store:
        training = getattr(self.config, self.section).training
        return Store(self.data, *training_field(self.config, self.data),
                     validation=training.validation_trajectories)
