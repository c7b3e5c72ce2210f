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
import reprlib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pde.descriptor import descriptor
from pde.io.errors import ConfigError
from pde.io.threads import configure as configure_threads
from pde.simulator import Simulator

__all__ = [
    "ConfigError",
    "DatasetConfig",
    "ImportedConfig",
    "KolmogorovConfig",
    "KuramotoSivashinskyConfig",
    "SimulationConfig",
    "describe_error",
    "load_simulation_config",
    "load_yaml_model",
    "physics_difference",
    "read_yaml",
]


# Upper bounds: far beyond any real use, low enough that no arithmetic overflows.
MAX_TIME = 1e6  # model time units (interval, burn-in)
MAX_COUNT = 10_000_000  # trajectories, stored states, training steps
MAX_SEED = 2**32 - 1  # JAX and NumPy seeds
MAX_CONFIG_BYTES = 1 << 20
MAX_ALIASES = 20  # YAML aliases: enough for any config, too few for an alias bomb


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SimulatorSection(_Section):
    """A simulator's parameters; valid only if the simulator accepts them.

    ``numerical`` names the parameters that change how the equations are solved or started
    (time step, burn-in, precision, initial-condition spectrum), not which physics the
    stored states follow; every other parameter is physics (:func:`physics_difference`).
    """

    pde: str  # the tag of the union below and the descriptor's name (pde.descriptor)
    numerical: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _physical(self) -> _SimulatorSection:
        self.build()  # the constructor owns the physical rules (stability, grids)
        return self

    @property
    def simulated(self) -> bool:
        """Whether the data come from a simulator (imported data do not)."""
        return descriptor(self.pde).simulator is not None

    def build(self) -> Simulator:
        """The simulator of these parameters: the class the PDE's descriptor names.

        First the process's thread counts are chosen (:func:`pde.io.threads.configure`): JAX
        fixes its pool when its backend starts, and a simulator is built before any JAX
        computation of this project."""
        configure_threads()
        simulator = descriptor(self.pde).simulator_class()
        return simulator(**self.model_dump(exclude={"pde"}))


class KuramotoSivashinskyConfig(_SimulatorSection):
    """u_t + u u_x + u_xx + u_xxxx = 0 on [0, length), ETDRK4 pseudo-spectral."""

    pde: Literal["kuramoto_sivashinsky"]
    length: float = Field(22.0, gt=0, le=1e5, description="domain length L")
    n_points: int = Field(64, ge=16, le=65536, description="grid points (even)")
    dt: float = Field(0.05, gt=0, description="solver time step")
    interval: float = Field(0.2, gt=0, le=MAX_TIME, description="model time between stored states")
    burn_in: float = Field(100.0, ge=0, le=MAX_TIME,
                           description="model time discarded before storing")
    dtype: Literal["float64", "float32"] = "float64"

    numerical: ClassVar[frozenset[str]] = frozenset({"dt", "burn_in", "dtype"})


class KolmogorovConfig(_SimulatorSection):
    """2-D Navier-Stokes with Kolmogorov forcing and drag, via ``jax_cfd.spectral``."""

    pde: Literal["kolmogorov"]
    reynolds: float = Field(1000.0, gt=0, le=1e8, description="Reynolds number (viscosity = 1/Re)")
    forcing_wavenumber: int = Field(4, ge=1)
    forcing_amplitude: float = Field(1.0, ge=-1e6, le=1e6)
    drag: float = Field(0.1, ge=0, le=1e6, description="linear drag coefficient")
    solver_grid: int = Field(256, ge=8, le=8192, description="solver grid points per side (even)")
    stored_grid: int = Field(64, ge=8, le=8192, description="stored grid points per side (even)")
    interval: float = Field(0.2, gt=0, le=MAX_TIME)
    burn_in: float = Field(40.0, ge=0, le=MAX_TIME)
    dt: float | None = Field(None, gt=0, description="solver step; default: CFL-stable")
    max_velocity: float = Field(7.0, gt=0, le=1e6, description="velocity bound for the CFL step")
    max_courant: float = Field(0.5, gt=0, le=1.0)
    peak_wavenumber: float = Field(4.0, gt=0, le=1e4, description="initial-condition spectrum peak")

    numerical: ClassVar[frozenset[str]] = frozenset(
        {"dt", "burn_in", "max_velocity", "max_courant", "peak_wavenumber"})


class ImportedConfig(_SimulatorSection):
    """Gridded data brought in by ``assimilate import`` (a reanalysis, a gridded product):
    what they are, not how to make more of them. There is no simulator: a method that needs
    the true model refuses them, and the learned forecaster (``model=forecaster``) stands
    in. Every field is physics: a store of another variable, unit, region, grid or
    interval is other data."""

    pde: Literal["imported"]
    variable: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64,
                          description="the field's name in the store")
    units: str = Field(min_length=1, max_length=64, description="the field's units (UDUNITS)")
    latitude: tuple[float, float] = Field(description="first and last grid latitude (°N)")
    longitude: tuple[float, float] = Field(description="first and last grid longitude (°E)")
    grid: tuple[int, int] = Field(description="latitudes and longitudes on the grid")
    interval: float = Field(gt=0, le=MAX_TIME, description="hours between stored states")
    periodic: bool = Field(False, description="whether space wraps around (regional: no)")

    @model_validator(mode="after")
    def _physical(self) -> ImportedConfig:
        if not (-90 <= self.latitude[0] < self.latitude[1] <= 90):
            raise ValueError(f"imported: latitude={list(self.latitude)} must rise within "
                             "[-90, 90]")
        if not self.longitude[0] < self.longitude[1]:
            raise ValueError(f"imported: longitude={list(self.longitude)} must rise")
        if min(self.grid) < 2:
            raise ValueError(f"imported: grid={list(self.grid)} needs 2 or more points a side")
        return self

    def coordinates(self) -> list[tuple[str, np.ndarray, dict[str, str]]]:
        """The grid as a simulator gives it, ``[(dim, values, CF attributes)]``: latitude
        as ``y``, longitude as ``x``, each rising from its first to its last value."""
        return [("y", np.linspace(*self.latitude, self.grid[0]),
                 {"standard_name": "latitude", "units": "degrees_north"}),
                ("x", np.linspace(*self.longitude, self.grid[1]),
                 {"standard_name": "longitude", "units": "degrees_east"})]

    def build(self) -> Simulator:
        raise ConfigError(f"the data ('{self.variable}') were imported, not simulated: there is "
                          "no true model to run; use the learned one (model=forecaster)")


SimulatorConfig = Annotated[
    KuramotoSivashinskyConfig | KolmogorovConfig | ImportedConfig, Field(discriminator="pde")
]
# tag -> section, from the union itself: the one list of configurable simulators
_SECTIONS: dict[str, type[_SimulatorSection]] = {
    get_args(section.model_fields["pde"].annotation)[0]: section
    for section in get_args(get_args(SimulatorConfig)[0])
}


class DatasetConfig(_Section):
    """How many trajectories of how many stored states, and from which seed."""

    trajectories: int = Field(8, ge=1, le=MAX_COUNT)
    steps: int = Field(100, ge=1, le=MAX_COUNT, description="stored states per trajectory")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    batch_size: int = Field(4, ge=1, le=4096, description="trajectories per task")


class SimulationConfig(_Section):
    """A simulator and the data set to generate with it."""

    simulator: SimulatorConfig
    dataset: DatasetConfig = DatasetConfig()

    def with_dataset(self, **changes: Any) -> SimulationConfig:
        """A copy with dataset fields replaced (``None`` values are ignored), validated."""
        changes = {key: value for key, value in changes.items() if value is not None}
        dataset = self.dataset.model_dump() | changes
        try:
            return type(self).model_validate(self.model_dump() | {"dataset": dataset})
        except ValidationError as error:
            given = ", ".join(f"dataset.{key}={value!r}" for key, value in changes.items())
            raise ConfigError(describe_error(error, f"invalid value given on the command line "
                                             f"({given}):", type(self))) from None

    def canonical_json(self) -> str:
        """Sorted-key JSON of the simulator and dataset sections, stored in every store.

        Other sections of an experiment file (models, assimilation) are left out: they do
        not change the data.
        """
        return json.dumps(self.model_dump(mode="json", include={"simulator", "dataset"}),
                          sort_keys=True)


def physics_difference(stored: dict[str, Any], expected: dict[str, Any]) -> str:
    """The first physical parameter in which two simulator sections differ, in words
    (``"simulator.length: 30.0 here, 22.0 expected"``), or ``""`` if the physics agree."""
    if stored.get("pde") != expected.get("pde"):
        return f"simulator.pde: {stored.get('pde')!r} here, {expected.get('pde')!r} expected"
    section = _SECTIONS.get(str(stored.get("pde")))
    numerical = section.numerical if section else frozenset()
    for key in sorted((set(stored) | set(expected)) - numerical):
        if stored.get(key) != expected.get(key):
            return f"simulator.{key}: {stored.get(key)!r} here, {expected.get(key)!r} expected"
    return ""


Model = TypeVar("Model", bound=BaseModel)
_TAGS = set(_SECTIONS)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a cap on aliases (an alias bomb expands to gigabytes)."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name); write the "
                                     "values out")
        return super().compose_node(parent, index)


def read_yaml(path: str | Path) -> Any:
    """The YAML document at ``path``, bounded in size and aliases; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file '{path}' is {size} bytes; allowed: at most "
                              f"{MAX_CONFIG_BYTES} (a configuration, not data)")
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file '{path}' cannot be read: {error}") from None
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: "
                          f"{_shorten(str(error), 400)}") from None
    except RecursionError:
        raise ConfigError(f"config file '{path}' is nested too deeply") from None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_yaml_model(path: str | Path, model: type[Model]) -> Model:
    """Read ``path`` as YAML and validate it as ``model``; errors name file and key."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of sections "
            f"({', '.join(model.model_fields)}), got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_error(error, f"invalid config file '{path}':", model)) from None


def load_simulation_config(path: str | Path) -> SimulationConfig:
    return load_yaml_model(path, SimulationConfig)


def describe_error(error: ValidationError, heading: str, model: type[BaseModel]) -> str:
    """A pydantic validation error as lines naming each key and what is allowed."""
    lines = [heading]
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
            message = f"{message} (got {_shorten(reprlib.repr(item['input']), 80)})"
        lines.append(f"  key '{key}': {message}")
    if len(lines) == 2:  # one problem: one line
        return f"{lines[0]} {lines[1].strip()}"
    return "\n".join(lines[:21] + ([f"  ... and {len(lines) - 21} more"] if len(lines) > 21 else []))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if str(part) in _SECTIONS:
            current = _SECTIONS[str(part)]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            annotation = current.model_fields[str(part)].annotation
            current = annotation if isinstance(annotation, type) else current
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []
