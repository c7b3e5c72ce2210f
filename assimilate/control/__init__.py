"""The amortised data-assimilation controller: its network, its inputs, the controlled
forecast step and its offline training (the forecaster stays frozen).

- :class:`ControllerNet` (``network.py``): u_ψ, an affine correction per grid point and
  sub-step.
- ``inputs.py``: what it reads at each step (innovation, preview, regime features, and the
  pooled statistics of its ensemble), built the same way in training and in data
  assimilation.
- :func:`controlled_step` (``steer.py``): one forecast step with the controller inside
  every sub-step; a stochastic controller is a Gaussian policy on ancestral sub-steps.
- ``objectives.py``: the fair CRPS and energy score the ensemble objectives minimise.
- :func:`train_controller` (``training.py``): ``assimilate train controller``.

May import ``pde``, ``assimilate.config``, ``nets``, ``diffusion``, ``models``, ``training`` and
``observe``; ``da.methods.controller`` is its one user in data assimilation.
"""

from __future__ import annotations

from assimilate.control.inputs import ControlInputs, GridPlacement, StepObservations
from assimilate.control.network import ControllerNet
from assimilate.control.steer import controlled_step
from assimilate.control.training import build_controller, train_controller, window_loss

__all__ = ["ControlInputs", "ControllerNet", "GridPlacement", "StepObservations",
           "build_controller", "controlled_step", "train_controller", "window_loss"]
