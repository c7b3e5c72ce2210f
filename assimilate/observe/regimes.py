"""Named observation regimes: presets of operator, frequency and noise, as data (YAML).

A regimes file maps a PDE name to named regimes (``configs/regimes.yaml`` ships six per
PDE; users may point to their own file)::

    kuramoto_sivashinsky:
      dense: {operator: strided, stride: 8, every: 1, noise: 0.1}

Keys of a regime:

- ``operator``: ``strided`` (``stride`` points per direction, optional ``offset``),
  ``stations`` (``fraction`` of the grid, ``seed``), ``blocks`` (``size`` points per
  direction, averaged) or ``sites`` (stations between grid points, bilinear weights:
  ``count`` drawn from ``seed`` over a bounded grid, or those of a ``file``; ``withheld``
  more drawn with them, never assimilated, which ``observe: withheld`` observes instead:
  :mod:`assimilate.observe.sites`);
- ``every``: observe every this many model steps, from step ``start`` (default 1: step 0
  is the initial time, which the assimilation is given);
- ``noise``: observation noise std in units of the climatological std, or ``error_std``:
  in the field's own units (0.5 for 0.5 K);
- ``transform``: ``identity`` (default) or ``saturating`` (``w / (1 + |w|)``).

Every key is checked when the file is read (unknown keys, impossible values); what depends
on the grid (a stride larger than it) when the operator is built. Errors are one line
naming the file and the key (:class:`pde.io.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from assimilate.observe.blocks import blocks
from assimilate.observe.operator import Operator
from assimilate.observe.saturating import saturating
from assimilate.observe.sites import bilinear, draw_sites, read_sites
from assimilate.observe.stations import stations
from assimilate.observe.strided import strided
from pde.config import MAX_COUNT, MAX_SEED, read_yaml
from pde.io.errors import ConfigError

__all__ = ["DEFAULT_REGIMES", "Regime", "load_regime", "regime_names"]

DEFAULT_REGIMES = Path(__file__).resolve().parents[2] / "configs" / "regimes.yaml"
MAX_POINTS = 65536  # a grid side: far beyond any stored grid


class _Spec(BaseModel):
    """What every regime states: when it observes, how noisily, through which transform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: int = Field(1, ge=1, le=MAX_COUNT, description="observe every this many steps")
    start: int = Field(1, ge=0, le=MAX_COUNT, description="first observed step")
    noise: float | None = Field(None, gt=0, le=1e3,
                                description="noise std in climatological stds")
    error_std: float | None = Field(None, gt=0, le=1e6,
                                    description="noise std in the field's units")
    transform: Literal["identity", "saturating"] = "identity"

    @model_validator(mode="after")
    def _one_noise(self) -> _Spec:
        if (self.noise is None) == (self.error_std is None):
            raise ValueError("give the noise once: noise (in climatological stds) or "
                             "error_std (in the field's units)")
        return self

    def linear(self, space: tuple[int, ...], coordinates: list[np.ndarray],
               base: Path = Path()) -> Operator:
        raise NotImplementedError


class StridedSpec(_Spec):
    """Every ``stride``-th point in each direction, from index ``offset``."""

    operator: Literal["strided"]
    stride: int = Field(ge=1, le=MAX_POINTS, description="grid points between observations, "
                                                         "per direction")
    offset: int = Field(0, ge=0, le=MAX_POINTS)

    @model_validator(mode="after")
    def _offset_below_stride(self) -> StridedSpec:
        if self.offset >= self.stride:
            raise ValueError(f"offset={self.offset} must be below stride={self.stride}")
        return self

    def linear(self, space: tuple[int, ...], coordinates: list[np.ndarray],
               base: Path = Path()) -> Operator:
        return strided(space, coordinates, self.stride, self.offset)


class StationsSpec(_Spec):
    """A fixed random ``fraction`` of the grid points, drawn from ``seed``."""

    operator: Literal["stations"]
    fraction: float = Field(gt=0, le=1, description="share of the grid observed, in (0, 1]")
    seed: int = Field(0, ge=0, le=MAX_SEED)

    def linear(self, space: tuple[int, ...], coordinates: list[np.ndarray],
               base: Path = Path()) -> Operator:
        return stations(space, coordinates, self.fraction, self.seed)


class BlocksSpec(_Spec):
    """Averages over blocks of ``size`` points per direction."""

    operator: Literal["blocks"]
    size: int = Field(ge=1, le=MAX_POINTS, description="block side in grid points")

    def linear(self, space: tuple[int, ...], coordinates: list[np.ndarray],
               base: Path = Path()) -> Operator:
        return blocks(space, coordinates, self.size)


class SitesSpec(_Spec):
    """Stations between grid points (bilinear weights): ``count`` drawn from ``seed`` over
    the grid's box, or those listed in ``file`` (CSV or NetCDF of latitude and longitude,
    relative to the regimes file); ``withheld`` more drawn with them and never assimilated,
    observed instead by ``observe: withheld``."""

    operator: Literal["sites"]
    count: int | None = Field(None, ge=1, le=MAX_COUNT, description="stations drawn")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    file: str | None = Field(None, description="CSV or NetCDF of station positions")
    withheld: int = Field(0, ge=0, le=MAX_COUNT, description="verification stations drawn "
                                                              "with them")
    observe: Literal["assimilated", "withheld"] = "assimilated"

    @model_validator(mode="after")
    def _one_network(self) -> SitesSpec:
        if (self.count is None) == (self.file is None):
            raise ValueError("give the stations once: count (drawn from seed) or file")
        if self.observe == "withheld" and not self.withheld:
            raise ValueError("observe: withheld needs withheld stations (withheld: N)")
        return self

    def linear(self, space: tuple[int, ...], coordinates: list[np.ndarray],
               base: Path = Path()) -> Operator:
        if self.file is not None:
            return bilinear(space, coordinates, read_sites(base / self.file))
        kept, withheld = draw_sites(coordinates, self.count, self.seed, self.withheld)
        return bilinear(space, coordinates, withheld if self.observe == "withheld" else kept)


_SPECS: dict[str, type[_Spec]] = {"strided": StridedSpec, "stations": StationsSpec,
                                  "blocks": BlocksSpec, "sites": SitesSpec}
RegimeSpec = Annotated[StridedSpec | StationsSpec | BlocksSpec | SitesSpec,
                       Field(discriminator="operator")]
RegimeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]
_FILE = TypeAdapter(dict[str, dict[RegimeName, RegimeSpec]])


@dataclasses.dataclass(frozen=True)
class Regime:
    """One named regime of one PDE, read from ``source``."""

    name: str
    pde: str
    spec: StridedSpec | StationsSpec | BlocksSpec | SitesSpec
    source: Path

    @property
    def every(self) -> int:
        return self.spec.every

    @property
    def start(self) -> int:
        return self.spec.start

    @property
    def withheld(self) -> bool:
        """Whether the regime observes withheld stations (never to be assimilated)."""
        return getattr(self.spec, "observe", "assimilated") == "withheld"

    @property
    def verified(self) -> bool:
        """Whether the regime holds stations back for verification (``withheld: N`` and it
        observes the assimilated ones)."""
        return bool(getattr(self.spec, "withheld", 0)) and not self.withheld

    def observing_withheld(self) -> Regime:
        """The same draw of stations observing the withheld ones instead (``observe:
        withheld``): what verifies an analysis of this regime."""
        if not self.verified:
            raise ConfigError(f"regime '{self.name}' holds no stations back (withheld: N)")
        return dataclasses.replace(self, name=f"{self.name}-withheld",
                                   spec=self.spec.model_copy(update={"observe": "withheld"}))

    def noise_in(self, std: float) -> float:
        """The noise std in units of ``std`` (a climatological std of the field)."""
        return self.spec.noise if self.spec.noise is not None else self.spec.error_std / std

    @property
    def transform(self) -> str:
        return self.spec.transform

    def operator(self, space: tuple[int, ...], coordinates: list[np.ndarray]) -> Operator:
        """H on the grid ``space`` with physical ``coordinates`` (one 1-D array per dim)."""
        try:
            linear = self.spec.linear(tuple(space), list(coordinates), self.source.parent)
        except ValueError as error:
            raise ConfigError(f"regime '{self.name}' for {self.pde} in '{self.source}' does "
                              f"not fit the grid {tuple(space)}: {error}") from None
        return saturating(linear) if self.transform == "saturating" else linear

    def steps(self, n_steps: int) -> np.ndarray:
        """The observed steps ``start, start + every, ...`` below ``n_steps``."""
        return np.arange(self.start, n_steps, self.every)

    def attrs(self) -> dict[str, Any]:
        """The regime's name, file and every parameter, as dataset attributes."""
        return {"regime": self.name, "regimes_file": str(self.source),
                **self.spec.model_dump(mode="json", exclude_none=True)}


def _read(path: Path) -> dict[str, dict[str, _Spec]]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"regimes file '{path}' must map PDE names to regimes, got "
                          f"{type(data).__name__}")
    try:
        return _FILE.validate_python(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, path)) from None


def _describe(error: ValidationError, path: Path) -> str:
    """The first problem of ``error`` in one line naming the file and the dotted key."""
    item = error.errors()[0]
    loc = [str(part) for part in item["loc"]]
    # pydantic's discriminator step (the operator name) is not a key of the file
    tag = loc.pop(2) if len(loc) > 2 and loc[2] in _SPECS else None
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden" and tag:
        allowed = [name for name in _SPECS[tag].model_fields]
        message = f"unknown key; allowed keys here: {', '.join(allowed)}"
    elif item["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("operator")
        given = item["input"].get("operator") if isinstance(item["input"], dict) else None
        what = "missing" if given is None else f"unknown operator {given!r}"
        message = f"{what}; allowed: {', '.join(sorted(_SPECS))}"
    elif item["type"] == "string_pattern_mismatch":
        message = "a regime name is letters, digits and _ . + - (at most 64)"
    elif "input" in item and not isinstance(item["input"], dict):
        message = f"{message} (got {item['input']!r:.80})"
    more = len(error.errors()) - 1
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return f"invalid regimes file '{path}': key '{'.'.join(loc)}': {message}{tail}"


def _regimes_of(pde: str, path: str | Path | None) -> tuple[Path, dict[str, _Spec]]:
    path = Path(path) if path is not None else DEFAULT_REGIMES
    regimes = _read(path)
    if pde not in regimes:
        known = ", ".join(regimes) or "none"
        raise ConfigError(f"regimes file '{path}' has no regimes for pde '{pde}' "
                          f"(it has: {known})")
    return path, regimes[pde]


def regime_names(pde: str, path: str | Path | None = None) -> list[str]:
    """The regimes of ``pde`` in the file at ``path`` (default: the shipped one), in order."""
    return list(_regimes_of(pde, path)[1])


def load_regime(name: str, pde: str, path: str | Path | None = None) -> Regime:
    """The regime ``name`` of ``pde`` from ``path`` (default ``configs/regimes.yaml``)."""
    source, regimes = _regimes_of(pde, path)
    if name not in regimes:
        raise ConfigError(f"unknown regime '{name}' for {pde} in '{source}'; allowed: "
                          f"{', '.join(regimes)}")
    return Regime(name, pde, regimes[name], source)

