"""Every input of a DA run, checked in one pass before any work.

:func:`check_start` is what ``assimilate run`` and ``assimilate cycle`` share (the method
and its checkpoints, the first background, the climatology); :func:`check_run_inputs`
adds the observation file and the truth of ``run``. Cheap checks come first, so a wrong
input is refused in seconds, before a simulated climatology, a model or a filter runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from assimilate.config import ExperimentConfig
from assimilate.da.grid import Grid
from assimilate.da.inputs.fields import (
    check_spread,
    grid_of,
    load_background,
    load_climatology,
)
from assimilate.da.inputs.physics import check_checkpoints, check_physics
from assimilate.da.inputs.truth import load_truth
from assimilate.observe import Observations
from assimilate.observe.files import open_observation_file
from assimilate.observe.times import Calendar
from pde.io.errors import ConfigError

__all__ = ["CheckedInputs", "RunInputs", "Start", "check_observation_source", "check_run_inputs",
           "check_start", "read_observations", "run_steps"]


@dataclasses.dataclass(frozen=True)
class Start:
    """What a run starts from, checked: the loaded forecaster, the first background
    (None: drawn from the climatology) and the climatology (None: simulated afresh)."""

    forecaster: Any
    background: np.ndarray | None
    climatology: Any


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What ``assimilate run`` is given: the method (``method`` and its ``settings``,
    ``controller`` a controller checkpoint for a method that needs one), the files
    (``observations``; ``forecaster``, ``background``, ``climatology`` and ``truth`` where
    given) and the run's sizes. ``calendar``: ``"ORIGIN,STEP"`` or a
    :class:`~assimilate.observe.times.Calendar`, to read datetimes in the files."""

    method: str
    observations: str | Path
    settings: dict[str, str] | None = None
    controller: str | Path | None = None
    forecaster: str | Path | None = None
    background: str | Path | None = None
    climatology: str | Path | None = None
    truth: str | Path | None = None
    verify: str | Path | None = None
    """Observations never assimilated (withheld stations) to score the analysis against."""
    n_members: int = 16
    n_steps: int | None = None
    spin_up: int | None = None
    seed: int = 0
    calendar: str | Calendar | None = None

    def __post_init__(self) -> None:
        if isinstance(self.calendar, str):  # a bad one is refused before any work
            object.__setattr__(self, "calendar", Calendar.parse(self.calendar))

    @property
    def files(self) -> list[str | Path]:
        """Every input file given (the guarded output refuses to overwrite one)."""
        return [path for path in (self.observations, self.forecaster, self.background,
                                  self.climatology, self.truth, self.controller, self.verify)
                if path]


@dataclasses.dataclass(frozen=True)
class CheckedInputs:
    """The checked inputs of ``assimilate run``; ``truth`` ``(trajectory, n_steps + 1,
    *space)`` is None without ``--truth``."""

    observations: Observations
    n_steps: int
    start: Start
    truth: np.ndarray | None
    verify: Observations | None = None


def check_start(config: ExperimentConfig, method, *, n_members: int,
                forecaster: str | Path | None = None, background: str | Path | None = None,
                climatology: str | Path | None = None, seed: int = 0,
                background_option: str = "--background", grid: Grid | None = None) -> Start:
    """Check the method's needs, its checkpoints, the background and the climatology store
    against ``config``; load them. ``background_option`` names where the background was
    given (``--background``, the workflow key); ``grid``: the config's, when the caller
    holds it."""
    method.check_needs(forecaster=forecaster is not None)
    check_checkpoints(config, forecaster=forecaster, controllers=method.controllers)
    grid = grid_of(config) if grid is None else grid
    initial = None if background is None else load_background(background, config, grid)
    check_spread(initial, grid.space, method, n_members,
                 f"background file '{background}' ({background_option})")
    clim = None if climatology is None else load_climatology(climatology, config, grid,
                                                             seed=seed)
    learned = None
    if forecaster is not None:
        from assimilate.models.forecaster import load_forecaster

        learned = load_forecaster(forecaster)
    return Start(learned, initial, clim)


def check_observation_source(attrs: dict[str, Any], config: ExperimentConfig,
                             source: str) -> None:
    """Refuse observations synthesised (``assimilate observe``) from other physics than
    ``config``'s: the ``simulator`` (or older: ``pde``) attribute they carry."""
    section = attrs.get("simulator")
    if section is not None:
        check_physics(json.loads(str(section)), config, source)
    elif "pde" in attrs and str(attrs["pde"]) != config.simulator.pde:
        raise ConfigError(f"{source} was synthesised from {attrs['pde']!r} data; the config "
                          f"runs {config.simulator.pde!r}")


def read_observations(path: str | Path, config: ExperimentConfig, *,
                      calendar: Calendar | None = None,
                      grid: Grid | None = None) -> Observations:
    """The observations at ``path`` on the config's grid (datetimes read with
    ``calendar``), refused if synthesised from other physics."""
    source = f"observation file '{path}'"
    ds = open_observation_file(path)
    check_observation_source(ds.attrs, config, source)  # before its entries: the first cause
    grid = grid_of(config) if grid is None else grid
    return Observations.from_dataset(ds, **grid.observation_grid(), source=source,
                                     calendar=calendar)


def run_steps(observations: Observations, n_steps: int | None) -> int:
    """The run's number of steps: ``n_steps``, or up to the last observed step."""
    steps = int(max(observations.steps, default=0)) if n_steps is None else int(n_steps)
    if steps < 1:
        raise ConfigError("the observations end at step 0: nothing to assimilate; give the "
                          "number of steps (n_steps, --steps N)")
    return steps


def check_run_inputs(config: ExperimentConfig, method, inputs: RunInputs) -> CheckedInputs:
    """Every input of ``assimilate run``, checked and loaded (module doc)."""
    grid = grid_of(config)  # the simulator built once for every check
    observed = read_observations(inputs.observations, config, calendar=inputs.calendar,
                                 grid=grid)
    steps = run_steps(observed, inputs.n_steps)
    reference = None if inputs.truth is None else load_truth(
        inputs.truth, config, trajectories=observed.trajectory_labels, n_steps=steps,
        calendar=inputs.calendar, grid=grid)
    start = check_start(config, method, n_members=inputs.n_members,
                        forecaster=inputs.forecaster, background=inputs.background,
                        climatology=inputs.climatology, seed=inputs.seed, grid=grid)
    initial = start.background
    if initial is not None and initial.ndim == len(grid.space) + 2 \
            and initial.shape[0] != observed.n_trajectories:
        raise ConfigError(f"background file '{inputs.background}' holds {initial.shape[0]} "
                          f"trajectories, the observations {observed.n_trajectories}; give "
                          "one per observed trajectory, or one state or ensemble for all")
    withheld = None
    if inputs.verify is not None:
        from assimilate.da.withheld import check_withheld

        withheld = read_observations(inputs.verify, config, calendar=inputs.calendar, grid=grid)
        check_withheld(withheld, observed, f"withheld observations '{inputs.verify}' (--verify)")
    return CheckedInputs(observed, steps, start, reference, withheld)
