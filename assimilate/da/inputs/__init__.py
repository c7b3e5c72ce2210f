"""Every input of data assimilation, checked before any work, in one place.

``assimilate run``, ``assimilate cycle`` and ``assimilate evaluate da`` call these
functions; each refuses a wrong input in one line naming the file, the value and what is
allowed (a :class:`pde.io.errors.ConfigError`: exit code 2), before a climatology is
simulated, a model loaded or a filter run.

- checkpoints (:mod:`.physics`): a forecaster or controller trained on other physics than
  the config's, or a controller trained to steer another forecaster;
- observations (:func:`read_observations`; the entries in
  :mod:`assimilate.observe.files`): malformed files, times off the model axis or beyond
  ``MAX_STEPS``, values and error stds outside their ranges, datetimes without a calendar
  (:mod:`assimilate.observe.times`), a synthesised file of other physics;
- the truth (:mod:`.truth`): a trajectory store or a NetCDF/Zarr file on the config's
  grid and physics, with a state at every model step of the run, picked by time;
- the first background and the climatology (:mod:`.fields`): grid, physics, and spread
  for the ensemble filters;
- a cycled store's physics against the workflow's config (:mod:`assimilate.cycle`).

Callers: :func:`assimilate.da.run.run` (:func:`check_run_inputs`), the cycle's
``_Cycling.load_models`` (:func:`check_start`, :func:`read_observations` through the
inbox), :func:`assimilate.evaluation.harness.evaluate_da` (:func:`check_checkpoints`).

May import ``pde``, ``assimilate.config``, ``observe``, ``da`` (grid, methods) and, for
checkpoints, ``models`` and ``training``.
"""

from __future__ import annotations

from assimilate.da.inputs.checked import (
    CheckedInputs,
    RunInputs,
    Start,
    check_observation_source,
    check_run_inputs,
    check_start,
    read_observations,
    run_steps,
)
from assimilate.da.inputs.fields import (
    check_grid,
    check_spread,
    config_grid,
    grid_of,
    load_background,
    load_climatology,
)
from assimilate.da.inputs.physics import check_checkpoints, check_forecaster, check_physics
from assimilate.da.inputs.truth import load_truth, matching_steps
from assimilate.observe.times import Calendar

__all__ = ["Calendar", "CheckedInputs", "RunInputs", "Start", "check_checkpoints",
           "check_forecaster", "check_grid", "check_observation_source", "check_physics",
           "check_run_inputs", "check_spread", "check_start", "config_grid", "grid_of",
           "load_background",
           "load_climatology", "load_truth", "matching_steps", "read_observations",
           "run_steps"]
