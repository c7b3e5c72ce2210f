"""The project's configuration file: one YAML per experiment, validated at the edge.

Sections: ``simulator`` and ``dataset`` (see :mod:`pde.config`), ``emulator`` (the
unconditional diffusion model of single states), ``forecaster`` (the autoregressive one),
``controller`` (the amortised DA controller) and ``evaluation`` (the sizes of the DA
harness). Errors name the file, the key and what is allowed
(:class:`pde.config.ConfigError`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pde.config import (
    MAX_COUNT,
    MAX_SEED,
    ConfigError,
    SimulationConfig,
    describe_error,
    load_yaml_model,
)

__all__ = [
    "DA_METHODS",
    "ConditioningNoise",
    "ConfigError",
    "ControllerConfig",
    "EmulatorConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "ForecasterConfig",
    "SamplingConfig",
    "TrainingConfig",
    "load_config",
]

BackboneSize = Literal["tiny", "small", "base", "large"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingConfig(_Section):
    """Optimisation settings shared by every model."""

    steps: int = Field(2000, ge=1, le=MAX_COUNT)
    batch_size: int = Field(64, ge=1, le=65536)
    learning_rate: float = Field(2e-4, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=10)
    warmup_steps: int = Field(100, ge=0, le=MAX_COUNT)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0, le=1e6)
    validate_every: int = Field(250, ge=1, le=MAX_COUNT)
    checkpoint_every: int = Field(250, ge=1, le=MAX_COUNT)
    log_every: int = Field(25, ge=1, le=MAX_COUNT)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    validation_trajectories: int | None = Field(
        None, ge=0, le=MAX_COUNT,
        description="the store's last trajectories held out to validate (default: a tenth, "
                    "at least one); e.g. the last 3 days of daily segments")
    mixed_precision: bool = Field(True, description="bfloat16 autocast on CUDA; ignored on CPU")


class SamplingConfig(_Section):
    """How samples are drawn: the sampler, its number of steps and the noise schedule."""

    sampler: Literal["euler", "heun", "stochastic"] = "heun"
    steps: int = Field(32, ge=1, le=10_000, description="denoising steps (Heun: 2 NFE per step)")
    sigma_min: float = Field(0.002, gt=0, le=1e4)
    sigma_max: float = Field(80.0, gt=0, le=1e6)
    rho: float = Field(7.0, gt=0, le=1e3)


class _DiffusionModelConfig(_Section):
    """What every diffusion model of the project chooses: family, noise, backbone, budget."""

    family: Literal["edm", "flow"] = "edm"
    nu: float | None = Field(None, description="Student-t degrees of freedom (> 2); null: Gaussian")
    backbone: BackboneSize = "small"
    sigma_data: float = Field(1.0, gt=0, le=1e3, description="target std after normalisation")
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


class ConditioningNoise(_Section):
    """Noise added to the conditioning history while training; the target stays clean.

    A perturbed fraction ``probability`` of the training windows gets, on each history
    state, noise of std ``a ~ U(0, amplitude)`` (normalised units: climatological stds)
    with power spectrum ∝ |k|^-s, ``s ~ U(0, slope)`` (white to red), zero mean. A fraction
    ``marks`` of those also carries the marks of inserted observations: on a regular
    lattice (every 2nd to 16th point along each dim, random offset) the error is replaced
    by observation noise of std ~U(0, 0.2), as in a state nudged toward sparse
    observations. The model then learns to map an imperfect state to the clean next one,
    as the physics does:
    "Learning to Simulate Complex Physics with Graph Networks" (Sanchez-Gonzalez et al.,
    arXiv 2002.09405). ``amplitude: 0`` trains exactly as without it.
    """

    amplitude: float = Field(0.0, ge=0, le=10, description="largest noise std; 0: off")
    probability: float = Field(0.5, ge=0, le=1, description="fraction of windows perturbed")
    slope: float = Field(2.0, ge=0, le=8, description="largest spectral slope s")
    marks: float = Field(0.0, ge=0, le=1, description="fraction of the perturbed windows "
                         "that also carry the marks of inserted observations")


class ForecasterConfig(_DiffusionModelConfig):
    """Autoregressive diffusion model (ARDM) of x_{t+1} given the last ``history`` states.

    ``sampling.steps`` is the number of denoising sub-steps S per forecast step; the
    default sampler is deterministic Euler, the DDIM step.
    """

    history: int = Field(1, ge=1, le=64, description="previous states the model conditions on (k)")
    target: Literal["increment", "state"] = Field(
        "increment", description="denoise x_{t+1} - x_t (rescaled) or x_{t+1} itself")
    conditioning_noise: ConditioningNoise = ConditioningNoise()
    increment_scale: Literal["field", "point"] = Field(
        "field", description="the increment target's std: one for the field, or one per "
                             "grid point (data whose variability differs across the domain, "
                             "land and sea)")
    calendar: list[Literal["hour_of_day", "day_of_year"]] = Field(
        default_factory=list,
        description="calendar features of the forecast state's valid time the model also "
                    "conditions on (two channels each, sine and cosine); data with calendar "
                    "times only (imported stores)")
    sampling: SamplingConfig = SamplingConfig(sampler="euler", steps=16)

    @field_validator("calendar")
    @classmethod
    def _distinct_calendar(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"calendar features repeat: {value}")
        return value

    @property
    def cond_channels(self) -> int:
        """The denoiser's conditioning channels: the history, two per calendar feature."""
        return self.history + 2 * len(self.calendar)


class ControllerConfig(_Section):
    """The amortised DA controller (:mod:`assimilate.control`) and its offline training.

    Each training window starts from an imperfect state (a perturbed true state, or a
    climatological one), runs ``spin_up`` controlled steps without gradients (so windows
    also start from the controller's own analyses), then ``lookahead`` steps through which
    the loss is back-propagated: the ``objective`` of the rolled-out states plus ``energy``
    times the control energy. ``objective``: ``truth``, their error against the true
    continuation (in noise variances); ``observations``, their observation misfit (in noise
    variances) floored at ``misfit_floor``; ``crps`` and ``energy_score``, the fair CRPS per
    grid point or the fair energy score of the field, of ``members`` members rolled jointly
    from each window (same observations, independent prior draws), against the true
    continuation (in noise stds): proper scores, so a calibrated ensemble is their optimum;
    ``variational``, the observations' negative log-likelihood plus the path KL to the
    forecaster's chain, the controller a Gaussian policy on stochastic sub-steps.
    ``ensemble``: the controller also reads pooled statistics of its ensemble.
    ``sub_steps``: the forecaster's denoising sub-steps the controller is trained and runs
    at (null: the forecaster's own).
    """

    lookahead: int = Field(4, ge=1, le=64, description="preview and training window Λ, in steps")
    width: int = Field(64, ge=4, le=1024, description="channels of the network")
    blocks: int = Field(4, ge=1, le=32, description="residual blocks")
    energy: float = Field(0.01, ge=0, le=1e6, description="weight λ of the control energy")
    objective: Literal["truth", "observations", "crps", "energy_score", "variational"] = Field(
        "truth", description="what the trained steps are scored against: the true "
        "continuation (squared error, or a proper score of the jointly rolled members), or "
        "its observations")
    members: int = Field(1, ge=1, le=256, description="members rolled jointly per window")
    ensemble: bool = Field(False, description="read pooled statistics of the ensemble")
    sub_steps: int | None = Field(None, ge=1, le=1024, description="denoising sub-steps per "
                                  "step (null: the forecaster's)")
    misfit_floor: float = Field(1.0, ge=0, le=100, description="a step's misfit (in noise "
                                "variances) counts at least this: fitting below the noise "
                                "earns nothing")
    spin_up: int = Field(8, ge=0, le=MAX_COUNT, description="controlled steps before a window")
    perturbation: float = Field(0.5, ge=0, le=10, description="largest start perturbation, "
                                "in climatological stds")
    regimes: list[str] | None = Field(None, description="regimes trained on; null: all of "
                                      "the PDE's")
    training: TrainingConfig = TrainingConfig(steps=400, batch_size=16, learning_rate=1e-3,
                                              warmup_steps=20, ema_decay=0.99,
                                              validate_every=50, checkpoint_every=25,
                                              log_every=5)

    @model_validator(mode="after")
    def _members_for_ensembles(self) -> ControllerConfig:
        needs = [what for what, needed in (("objective " + self.objective,
                                            self.objective in ("crps", "energy_score")),
                                           ("ensemble: true", self.ensemble)) if needed]
        if needs and self.members < 2:
            raise ValueError(f"controller.members is {self.members}; {' and '.join(needs)} "
                             "need at least 2 members per window")
        return self


DA_METHODS = ("free", "dps", "nudging", "letkf:model=forecaster", "free:model=simulator",
              "nudging:model=simulator", "oi", "enkf", "etkf", "letkf", "climatology")
"""Every method of the harness, on the learned model first, then on the true simulator."""


class EvaluationConfig(_Section):
    """The sizes of ``assimilate evaluate da`` (its options override them): a config for a
    2-core CPU keeps them small, a reference config sets the published scale."""

    methods: list[str] = Field(list(DA_METHODS), min_length=1,
                               description="NAME[:KEY=VALUE...] of each method")
    trajectories: int = Field(4, ge=1, le=MAX_COUNT, description="held-out test trajectories")
    validation: int = Field(2, ge=1, le=MAX_COUNT, description="validation trajectories")
    members: int = Field(8, ge=2, le=MAX_COUNT, description="ensemble members")


class ExperimentConfig(SimulationConfig):
    """Everything one configuration file describes."""

    emulator: EmulatorConfig = EmulatorConfig()
    forecaster: ForecasterConfig = ForecasterConfig()
    controller: ControllerConfig = ControllerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

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
        try:
            return type(self).model_validate(data)
        except ValidationError as error:
            options = ", ".join(f"{section}.{key}={value!r}" for key, value in changes.items()
                                if value is not None)
            raise ConfigError(describe_error(error, f"invalid value given on the command line "
                                             f"({options}):", type(self))) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate the YAML configuration at ``path``."""
    return load_yaml_model(path, ExperimentConfig)
