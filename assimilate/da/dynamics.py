"""The models a data-assimilation method can advance its states with, on physical fields.

Two kinds, one interface: ``advance(history, control=None, valid_times=None) -> next``,
with ``history`` ``(batch, k, *space)`` physical states (the last ``k`` states of every
member of every problem, batched together), ``next`` ``(batch, *space)`` and
``valid_times`` ``(batch,)`` the calendar time of ``next`` (imported data; a forecaster
conditioned on the hour of the day needs it, the others ignore it).

- :class:`SimulatorModel`: the true PDE, restarted from each member's last state. On a CPU
  it is about a hundred times cheaper per step than the learned forecaster, which is why
  filters with the true model are a strong baseline here.
- :class:`assimilate.models.forecaster.ForecasterModel`: the learned ARDM. ``control`` is the
  per-step hook of :func:`assimilate.models.forecaster.rollout_tensor`, returning the samplers'
  correction: the one place guidance enters. Its denoiser calls are counted (NFE) by an
  :class:`~assimilate.diffusion.EvaluationCounter`. It lives with the forecaster, so that
  a filter on the true simulator never loads torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from assimilate.models.forecaster import Control

__all__ = ["Model", "SimulatorModel"]


class Model:
    """What a method needs of its model."""

    name: str
    history: int

    def advance(self, history: np.ndarray, control: Control | None = None,
                valid_times: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError


@dataclass
class SimulatorModel(Model):
    """The true simulator (any object of the :class:`pde.simulator.Simulator` protocol)."""

    simulator: Any
    name: str = "simulator"
    history: int = 1

    def advance(self, history: np.ndarray, control: Control | None = None,
                valid_times: np.ndarray | None = None) -> np.ndarray:
        if control is not None:
            raise ValueError("the true simulator takes no sampler guidance: use "
                             "model=forecaster for guided methods")
        following = self.simulator.step_physical(np.ascontiguousarray(history[:, -1]))
        return np.asarray(following, dtype=np.float32)
