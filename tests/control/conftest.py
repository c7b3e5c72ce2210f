"""The tiny KS project the controller's tests share (32 points, a 4-sub-step forecaster)
and helpers that build its windows and the controller's inputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from assimilate.config import load_config
from assimilate.control import ControlInputs, GridPlacement, StepObservations
from assimilate.control.inputs import features_of, preview_of
from assimilate.control.training import training_regimes
from assimilate.models.forecaster import load_forecaster, train_forecaster
from pde.generate import simulate
from pde.io.store import open_trajectories
from tests.conftest import TINY_CONTROLLER, TINY_FORECASTER, TINY_KS, write_config

PROJECT = TINY_KS | {"dataset": TINY_KS["dataset"] | {"trajectories": 4, "steps": 40},
                     "forecaster": TINY_FORECASTER, "controller": TINY_CONTROLLER}


@pytest.fixture(scope="module")
def project(tmp_path_factory, one_thread) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("control")
    config_path = write_config(root, PROJECT, "project.yaml")
    config = load_config(config_path)
    simulate(config, root / "truth.zarr", progress=False)
    train_forecaster(config, root / "truth.zarr", root / "forecaster.pt", steps=40,
                     progress=False)
    return SimpleNamespace(root=root, config=config, config_path=config_path,
                           forecaster=load_forecaster(root / "forecaster.pt"))


def regime_of(project):
    ds = open_trajectories(project.root / "truth.zarr")
    space = tuple(ds["u"].shape[2:])
    return training_regimes(project.config, ["sparse"], space, [ds["x"].values])[0], ds


def windows_of(project, n: int = 8, seed: int = 0, length: int = 5) -> torch.Tensor:
    """``n`` normalised windows of ``length`` consecutive true states."""
    values = torch.from_numpy(
        open_trajectories(project.root / "truth.zarr")["u"].values.astype(np.float32))
    picks = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, values.shape[1] - length + 1, (n,), generator=picks)
    trajectories = torch.randint(0, values.shape[0], (n,), generator=picks)
    chosen = torch.stack([values[t, s:s + length]
                          for t, s in zip(trajectories, starts, strict=True)])
    return project.forecaster.normalisation.normalise(chosen).float()


def inputs_of(project, regime, history: torch.Tensor, values: torch.Tensor,
              upcoming: list | None = None) -> ControlInputs:
    norm = project.forecaster.normalisation
    placement = GridPlacement(regime.operator, torch.device("cpu"))
    current = StepObservations(regime.operator, values, torch.ones_like(values, dtype=torch.bool),
                               regime.noise, norm.mean, norm.std, placement)
    upcoming = upcoming if upcoming is not None else [None] * (project.config.controller.lookahead - 1)
    previous = history[:, -1]
    return ControlInputs(previous, current, preview_of(upcoming, previous),
                         features_of(current, upcoming, 1, project.config.controller.lookahead,
                                     history.shape[0], torch.device("cpu")))
