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
from assimilate.da.inputs.fields import (
    check_spread,
    config_grid,
    load_background,
    load_climatology,
)
from assimilate.da.inputs.physics import check_checkpoints, check_physics
from assimilate.da.inputs.truth import load_truth
from assimilate.observe import Observations
from assimilate.observe.files import open_observation_file
from assimilate.observe.times import Calendar
from pde.io.errors import ConfigError

__all__ = ["RunInputs", "Start", "check_observation_source", "check_run_inputs",
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
    """The checked inputs of ``assimilate run``; ``truth`` ``(trajectory, n_steps + 1,
    *space)`` is None without ``--truth``."""

    observations: Observations
    n_steps: int
    start: Start
    truth: np.ndarray | None


def controllers_of(method) -> list[str]:
    """The controller checkpoint a method runs (its ``checkpoint`` setting), if any."""
    checkpoint = getattr(method, "checkpoint", None)
    return [checkpoint] if checkpoint else []


def check_start(config: ExperimentConfig, method, *, n_members: int,
                forecaster: str | Path | None = None, background: str | Path | None = None,
                climatology: str | Path | None = None, seed: int = 0,
                background_option: str = "--background") -> Start:
    """Check the method's needs, its checkpoints, the background and the climatology store
    against ``config``; load them. ``background_option`` names where the background was
    given (``--background``, the workflow key)."""
    if method.model == "forecaster" and forecaster is None:
        raise ConfigError(f"method '{method.name}' with model=forecaster needs a forecaster "
                          "checkpoint (--forecaster CKPT), or set model=simulator")
    check_checkpoints(config, forecaster=forecaster, controllers=controllers_of(method))
    space = config_grid(config)["space"]
    initial = None if background is None else load_background(
        background, config.simulator.build().variable, space, config)
    check_spread(initial, space, method, n_members,
                 f"background file '{background}' ({background_option})")
    clim = None if climatology is None else load_climatology(climatology, config, seed=seed)
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
                      calendar: Calendar | None = None) -> Observations:
    """The observations at ``path`` on the config's grid (datetimes read with
    ``calendar``), refused if synthesised from other physics."""
    source = f"observation file '{path}'"
    ds = open_observation_file(path)
    check_observation_source(ds.attrs, config, source)  # before its entries: the first cause
    return Observations.from_dataset(ds, **config_grid(config), source=source,
                                     calendar=calendar)


def run_steps(observations: Observations, n_steps: int | None) -> int:
    """The run's number of steps: ``n_steps``, or up to the last observed step."""
    steps = int(max(observations.steps, default=0)) if n_steps is None else int(n_steps)
    if steps < 1:
        raise ConfigError("the observations end at step 0: nothing to assimilate; give the "
                          "number of steps (n_steps, --steps N)")
    return steps


def trajectory_labels(observations: Observations) -> np.ndarray:
    """The labels of the observed trajectories (the analysis's ``trajectory`` coordinate)."""
    ds = observations.dataset
    if "trajectory" in ds.coords:
        return np.asarray(ds["trajectory"].values)
    return np.arange(observations.n_trajectories)


def check_run_inputs(config: ExperimentConfig, method, *, observations: str | Path,
                     n_members: int, n_steps: int | None = None,
                     forecaster: str | Path | None = None,
                     background: str | Path | None = None,
                     climatology: str | Path | None = None, truth: str | Path | None = None,
                     calendar: Calendar | None = None, seed: int = 0) -> RunInputs:
    """Every input of ``assimilate run``, checked and loaded (module doc)."""
    observed = read_observations(observations, config, calendar=calendar)
    steps = run_steps(observed, n_steps)
    reference = None if truth is None else load_truth(
        truth, config, trajectories=trajectory_labels(observed), n_steps=steps,
        calendar=calendar)
    start = check_start(config, method, n_members=n_members, forecaster=forecaster,
                        background=background, climatology=climatology, seed=seed)
    initial, space = start.background, config_grid(config)["space"]
    if initial is not None and initial.ndim == len(space) + 2 \
            and initial.shape[0] != observed.n_trajectories:
        raise ConfigError(f"background file '{background}' holds {initial.shape[0]} "
                          f"trajectories, the observations {observed.n_trajectories}; give "
                          "one per observed trajectory, or one state or ensemble for all")
    return RunInputs(observed, steps, start, reference)
