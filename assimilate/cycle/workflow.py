"""The workflow file of ``assimilate cycle``: what to cycle, with what, where.

    config: ../configs/ks-small.yaml       # experiment config: grid and time step
    method: controller                     # any method of `assimilate run` (default)
    settings: {refine: 0}                  # its hyper-parameters, as --set KEY=VALUE
    forecaster: ../checkpoints/ks-small-forecaster.pt
    controller: ../checkpoints/ks-small-controller.pt
    members: 8
    seed: 0
    cycle_length: 4                        # L: model steps per cycle
    lead: 4                                # forecast steps after each analysis (default L)
    start: 0                               # the first cycle point (a model step)
    inbox: inbox                           # where observation files arrive
    analysis: analysis.zarr                # the analysis store

Optional too: ``background`` (a first background file, as ``run --background``),
``climatology`` (a trajectory store to draw the first background and OI's covariance
from; default: simulated from the config with seed ``seed + 1``) and ``calendar``
(``ORIGIN,STEP``, as ``run --calendar``: the datetime of model time 0 and the length of
one model step, for inbox files whose times are datetimes). Paths are relative to
the workflow file's directory. Everything is checked here, before any work, and a
problem is one line naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from assimilate.observe.times import Calendar
from pde.config import MAX_COUNT, MAX_SEED, describe_error, read_yaml
from pde.io.errors import ConfigError

__all__ = ["Workflow", "load_workflow"]

PATHS = ("config", "forecaster", "controller", "climatology", "background", "inbox", "analysis")


class Workflow(BaseModel):
    """A checked workflow file, its paths resolved against its directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config: Path
    method: str = "controller"
    settings: dict[str, str | int | float | bool] = {}
    forecaster: Path | None = None
    controller: Path | None = None
    climatology: Path | None = None
    background: Path | None = None
    members: int = Field(8, ge=1, le=MAX_COUNT)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    cycle_length: int = Field(ge=1, le=MAX_COUNT)
    lead: int | None = Field(None, ge=0, le=MAX_COUNT, description="default: cycle_length")
    start: int = Field(0, ge=0, le=MAX_COUNT)
    calendar: str | None = Field(None, description="ORIGIN,STEP: datetimes in the inbox")
    inbox: Path
    analysis: Path
    _file: Path = PrivateAttr(Path("workflow.yaml"))

    @property
    def file(self) -> Path:
        """The workflow file this was read from."""
        return self._file

    @property
    def time_calendar(self) -> Calendar | None:
        """The calendar of datetimes in the inbox files (None: model times only)."""
        if self.calendar is None:
            return None
        return Calendar.parse(self.calendar, where=f"workflow file '{self.file}': key "
                              "'calendar':")

    @property
    def forecast_steps(self) -> int:
        return self.cycle_length if self.lead is None else self.lead

    def problem(self, key: str, text: str) -> ConfigError:
        return ConfigError(f"workflow file '{self.file}': key '{key}': {text}")

    def build_method(self) -> Any:
        """The method value (:func:`assimilate.da.methods.build_method`); errors name the key."""
        from assimilate.da.methods import build_method, method_class, with_controller

        try:
            key = method_class(self.method).controller_setting
        except ConfigError as error:
            raise self.problem("method", str(error)) from None
        settings = with_controller(self.method, self.settings,
                                   None if key is None else self.controller)
        try:
            method = build_method(self.method, settings)
        except ConfigError as error:
            if key is not None and key not in settings:
                raise self.problem("controller", f"method '{self.method}' needs the "
                                   "controller checkpoint") from None
            raise self.problem("settings", str(error)) from None
        try:
            method.check_needs(forecaster=self.forecaster is not None)
        except ConfigError as error:
            raise self.problem("forecaster", str(error)) from None
        return method


def load_workflow(path: str | Path) -> Workflow:
    """Read and check the workflow file ``path``: keys, values, the method and its
    settings, the config, and that its paths exist."""
    from assimilate.config import load_config

    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"workflow file '{path}' must hold a mapping of keys "
                          f"({', '.join(Workflow.model_fields)}), got {type(data).__name__}")
    try:
        flow = Workflow.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_error(error, f"invalid workflow file '{path}':",
                                         Workflow)) from None
    flow = _resolved(flow, path.parent)
    flow._file = path
    for key in PATHS[:-1]:
        value = getattr(flow, key)
        if value is not None and not value.exists():
            raise flow.problem(key, f"'{value}' does not exist")
    if not flow.inbox.is_dir():
        raise flow.problem("inbox", f"'{flow.inbox}' is not a directory")
    if not flow.analysis.parent.is_dir():
        raise flow.problem("analysis", f"directory '{flow.analysis.parent}' does not exist")
    load_config(flow.config)  # its own errors name the config file and key
    flow.build_method()
    _ = flow.time_calendar  # a bad calendar fails here, naming the key
    return flow


def _resolved(flow: Workflow, here: Path) -> Workflow:
    """``flow`` with relative paths (a ``checkpoint`` setting too) taken from ``here``."""
    changes: dict[str, Any] = {key: here / value for key in PATHS
                               if (value := getattr(flow, key)) is not None
                               and not value.is_absolute()}
    checkpoint = flow.settings.get("checkpoint")
    if checkpoint is not None and not Path(str(checkpoint)).is_absolute():
        changes["settings"] = flow.settings | {"checkpoint": str(here / str(checkpoint))}
    return flow.model_copy(update=changes)
