"""The models a data-assimilation method can advance its states with, on physical fields.

Two kinds, one interface: ``advance(history, control=None) -> next``, with ``history``
``(batch, k, *space)`` physical states (the last ``k`` states of every member of every
problem, batched together) and ``next`` ``(batch, *space)``.

- :class:`SimulatorModel`: the true PDE, restarted from each member's last state. On a CPU
  it is about a hundred times cheaper per step than the learned forecaster, which is why
  filters with the true model are a strong baseline here.
- :class:`ForecasterModel`: the learned ARDM. ``control`` is the per-step hook of
  :func:`assimilate.forecast.rollout_tensor`, returning the samplers' correction: the one
  place guidance enters. Its denoiser calls are counted (NFE) by an
  :class:`~assimilate.diffusion.EvaluationCounter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from assimilate.forecast import Control, Forecaster

__all__ = ["ForecasterModel", "Model", "SimulatorModel"]


class Model:
    """What a method needs of its model."""

    name: str
    history: int

    def advance(self, history: np.ndarray, control: Control | None = None) -> np.ndarray:
        raise NotImplementedError


@dataclass
class SimulatorModel(Model):
    """The true simulator (any object of the :class:`pde.simulator.Simulator` protocol)."""

    simulator: Any
    name: str = "simulator"
    history: int = 1

    def advance(self, history: np.ndarray, control: Control | None = None) -> np.ndarray:
        if control is not None:
            raise ValueError("the true simulator takes no sampler guidance: use "
                             "model=forecaster for guided methods")
        following = self.simulator.step_physical(np.ascontiguousarray(history[:, -1]))
        return np.asarray(following, dtype=np.float32)


@dataclass
class ForecasterModel(Model):
    """The learned forecaster; ``sub_steps`` overrides its sampler's steps."""

    forecaster: Forecaster
    sub_steps: int | None = None
    seed: int = 0
    name: str = "forecaster"
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.device = next(self.forecaster.model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.history = self.forecaster.history

    def normalise(self, values: np.ndarray) -> torch.Tensor:
        norm = self.forecaster.normalisation
        return norm.normalise(torch.from_numpy(np.asarray(values)).double()).float().to(
            self.device)

    def denormalise(self, values: torch.Tensor) -> np.ndarray:
        norm = self.forecaster.normalisation
        return norm.denormalise(values.detach().double()).float().cpu().numpy()

    def state_of(self, history: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """See :meth:`assimilate.forecast.Forecaster.state_of`."""
        return self.forecaster.state_of(history, drawn)

    def advance(self, history: np.ndarray, control: Control | None = None) -> np.ndarray:
        normalised = self.normalise(history)
        correction = None if control is None else control(0, normalised)
        with torch.no_grad():
            following = self.forecaster.step(normalised, self.generator, correction=correction,
                                             sub_steps=self.sub_steps)
        return self.denormalise(following[:, 0])
