"""The project's configuration file: one YAML per experiment, validated at the edge.

Sections: ``simulator`` and ``dataset`` (see :mod:`pde.config`), ``emulator`` (the
unconditional diffusion model of single states). Errors name the file, the key and what
is allowed (:class:`pde.config.ConfigError`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assimilate.training import TrainingConfig
from pde.config import ConfigError, SimulationConfig, load_yaml_model

__all__ = [
    "ConfigError",
    "EmulatorConfig",
    "ExperimentConfig",
    "ForecasterConfig",
    "SamplingConfig",
    "load_config",
]

BackboneSize = Literal["tiny", "small", "base", "large"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingConfig(_Section):
    """How samples are drawn: the sampler, its number of steps and the noise schedule."""

    sampler: Literal["euler", "heun", "stochastic"] = "heun"
    steps: int = Field(32, ge=1, description="denoising steps (Heun: 2 NFE per step)")
    sigma_min: float = Field(0.002, gt=0)
    sigma_max: float = Field(80.0, gt=0)
    rho: float = Field(7.0, gt=0)


class _DiffusionModelConfig(_Section):
    """What every diffusion model of the project chooses: family, noise, backbone, budget."""

    family: Literal["edm", "flow"] = "edm"
    nu: float | None = Field(None, description="Student-t degrees of freedom (> 2); null: Gaussian")
    backbone: BackboneSize = "small"
    sigma_data: float = Field(1.0, gt=0, description="target std after normalisation")
    training: TrainingConfig = TrainingConfig()
    sampling: SamplingConfig = SamplingConfig()

    @field_validator("nu")
    @classmethod
    def _heavy_tail(cls, nu: float | None) -> float | None:
        if nu is not None and not (nu > 2 and not math.isnan(nu)):
            raise ValueError(f"nu={nu} is not allowed: Student-t noise needs nu > 2 "
                             "(use null or a large value for Gaussian noise)")
        return None if nu is not None and math.isinf(nu) else nu


class EmulatorConfig(_DiffusionModelConfig):
    """Unconditional diffusion model of single states (EDM / t-EDM, or (t-)Flow)."""


class ForecasterConfig(_DiffusionModelConfig):
    """Autoregressive diffusion model (ARDM) of x_{t+1} given the last ``history`` states.

    ``sampling.steps`` is the number of denoising sub-steps S per forecast step; the
    default sampler is deterministic Euler, the DDIM step.
    """

    history: int = Field(1, ge=1, description="previous states the model conditions on (k)")
    target: Literal["increment", "state"] = Field(
        "increment", description="denoise x_{t+1} - x_t (rescaled) or x_{t+1} itself")
    sampling: SamplingConfig = SamplingConfig(sampler="euler", steps=16)


class ExperimentConfig(SimulationConfig):
    """Everything one configuration file describes."""

    emulator: EmulatorConfig = EmulatorConfig()
    forecaster: ForecasterConfig = ForecasterConfig()

    def with_changes(self, section: str, **changes: Any) -> ExperimentConfig:
        """A validated copy with keys of ``section`` (dotted for nesting) replaced.

        ``None`` values are ignored, so optional command-line overrides pass straight in.
        """
        data = self.model_dump()
        for dotted, value in changes.items():
            if value is None:
                continue
            *path, key = [section, *dotted.split(".")]
            target = data
            for part in path:
                target = target[part]
            target[key] = value
        return type(self).model_validate(data)


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate the YAML configuration at ``path``."""
    return load_yaml_model(path, ExperimentConfig)
