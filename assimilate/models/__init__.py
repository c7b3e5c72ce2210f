"""The learned models: the emulator, the forecaster, and what the two share.

- ``core.py``: construction, loss, sampling and checkpoint metadata of a diffusion model.
- ``emulator.py``: the unconditional model of single states (``assimilate train emulator``).
- ``forecaster.py``: the autoregressive forecaster and its rollouts
  (``assimilate train forecaster``, ``assimilate forecast``).
- ``augment.py``: training-time perturbations of the forecaster's conditioning history.

May import ``pde``, ``assimilate.config``, ``assimilate.nets``, ``assimilate.diffusion``,
``assimilate.training`` and ``assimilate.da.dynamics`` (the forecaster is a DA model).
"""
