"""Validated simulation configuration, loaded from YAML.

A configuration file names a simulator and how many trajectories to store::

    simulator:
      pde: kuramoto_sivashinsky   # or: kolmogorov
      length: 22.0
      n_points: 64
    dataset:
      trajectories: 32
      steps: 200
      seed: 0

Everything is checked at this edge: unknown keys, wrong types and impossible values
(negative viscosity, an unstable time step, a grid the solver cannot use) raise
:class:`ConfigError` naming the file, the key and what is allowed. Physical checks live
in the simulators' constructors, so the rules are written once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pde.simulator import Simulator

__all__ = [
    "ConfigError",
    "DatasetConfig",
    "KolmogorovConfig",
    "KuramotoSivashinskyConfig",
    "SimulationConfig",
    "load_simulation_config",
    "load_yaml_model",
]


class ConfigError(ValueError):
    """A configuration file or value is missing, malformed or impossible."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SimulatorSection(_Section):
    """A simulator's parameters; valid only if the simulator accepts them."""

    @model_validator(mode="after")
    def _physical(self) -> _SimulatorSection:
        self.build()  # the constructor owns the physical rules (stability, grids)
        return self

    def build(self) -> Simulator:
        raise NotImplementedError


class KuramotoSivashinskyConfig(_SimulatorSection):
    """u_t + u u_x + u_xx + u_xxxx = 0 on [0, length), ETDRK4 pseudo-spectral."""

    pde: Literal["kuramoto_sivashinsky"]
    length: float = Field(22.0, gt=0, description="domain length L")
    n_points: int = Field(64, ge=16, description="grid points (even)")
    dt: float = Field(0.05, gt=0, description="solver time step")
    interval: float = Field(0.2, gt=0, description="model time between stored states")
    burn_in: float = Field(100.0, ge=0, description="model time discarded before storing")
    dtype: Literal["float64", "float32"] = "float64"

    def build(self) -> Simulator:
        from pde.kuramoto_sivashinsky import KuramotoSivashinsky

        return KuramotoSivashinsky(**self.model_dump(exclude={"pde"}))


class KolmogorovConfig(_SimulatorSection):
    """2-D Navier-Stokes with Kolmogorov forcing and drag, via ``jax_cfd.spectral``."""

    pde: Literal["kolmogorov"]
    reynolds: float = Field(1000.0, gt=0, description="Reynolds number (viscosity = 1/Re)")
    forcing_wavenumber: int = Field(4, ge=1)
    forcing_amplitude: float = 1.0
    drag: float = Field(0.1, ge=0, description="linear drag coefficient")
    solver_grid: int = Field(256, ge=8, description="solver grid points per side (even)")
    stored_grid: int = Field(64, ge=8, description="stored grid points per side (even)")
    interval: float = Field(0.2, gt=0)
    burn_in: float = Field(40.0, ge=0)
    dt: float | None = Field(None, gt=0, description="solver step; default: CFL-stable")
    max_velocity: float = Field(7.0, gt=0, description="velocity bound for the CFL step")
    max_courant: float = Field(0.5, gt=0, le=1.0)
    peak_wavenumber: float = Field(4.0, gt=0, description="initial-condition spectrum peak")

    def build(self) -> Simulator:
        from pde.kolmogorov import KolmogorovFlow

        return KolmogorovFlow(**self.model_dump(exclude={"pde"}))


SimulatorConfig = Annotated[
    KuramotoSivashinskyConfig | KolmogorovConfig, Field(discriminator="pde")
]


class DatasetConfig(_Section):
    """How many trajectories of how many stored states, and from which seed."""

    trajectories: int = Field(8, ge=1)
    steps: int = Field(100, ge=1, description="stored states per trajectory")
    seed: int = Field(0, ge=0)
    batch_size: int = Field(4, ge=1, description="trajectories per task")


class SimulationConfig(_Section):
    """A simulator and the data set to generate with it."""

    simulator: SimulatorConfig
    dataset: DatasetConfig = DatasetConfig()

    def with_dataset(self, **changes: Any) -> SimulationConfig:
        """A copy with dataset fields replaced (``None`` values are ignored), validated."""
        changes = {key: value for key, value in changes.items() if value is not None}
        dataset = self.dataset.model_dump() | changes
        return type(self).model_validate(self.model_dump() | {"dataset": dataset})

    def canonical_json(self) -> str:
        """Sorted-key JSON of the simulator and dataset sections, stored in every store.

        Other sections of an experiment file (models, assimilation) are left out: they do
        not change the data.
        """
        return json.dumps(self.model_dump(mode="json", include={"simulator", "dataset"}),
                          sort_keys=True)


Model = TypeVar("Model", bound=BaseModel)
_TAGS = {"kuramoto_sivashinsky", "kolmogorov"}


def load_yaml_model(path: str | Path, model: type[Model]) -> Model:
    """Read ``path`` as YAML and validate it as ``model``; errors name file and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file '{path}' cannot be read: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of sections "
            f"({', '.join(model.model_fields)}), got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, path, model)) from None


def load_simulation_config(path: str | Path) -> SimulationConfig:
    return load_yaml_model(path, SimulationConfig)


def _describe(error: ValidationError, path: Path, model: type[BaseModel]) -> str:
    lines = [f"invalid config file '{path}':"]
    for item in error.errors():
        loc = [str(part) for part in item["loc"] if str(part) not in _TAGS]
        key = ".".join(loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        named = re.match(r"\w+: (\w+)=", message)  # simulators name the offending parameter
        if item["type"] == "value_error" and named:
            key = f"{key}.{named.group(1)}"
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, item["loc"][:-1])
            message = f"unknown key; allowed keys here: {', '.join(allowed)}"
        elif item["type"] == "union_tag_invalid" or item["type"] == "union_tag_not_found":
            message = f"{message}; allowed: {', '.join(sorted(_TAGS))}"
        elif "input" in item and not isinstance(item["input"], dict):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"  key '{key}': {message}")
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if str(part) == "kuramoto_sivashinsky":
            current = KuramotoSivashinskyConfig
        elif str(part) == "kolmogorov":
            current = KolmogorovConfig
        elif isinstance(current, type) and issubclass(current, BaseModel):
            annotation = current.model_fields[str(part)].annotation
            current = annotation if isinstance(annotation, type) else current
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []
