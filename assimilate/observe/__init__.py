"""Observation operators as data, named regimes, synthesis from a truth store, and the
reading of a user's own observation files.

- :class:`Operator` (``operator.py``): H for one time, as indices, weights and a transform;
  applies to NumPy, JAX and torch arrays. One builder per kind: :func:`strided`,
  :func:`stations`, :func:`blocks`, :func:`saturating`.
- :func:`load_regime`, :func:`regime_names` (``regimes.py``): presets in YAML
  (``configs/regimes.yaml``).
- :func:`observe` (``synthesise.py``): ``H(truth) + noise``, written through the guarded path.
- :class:`Observations`, :func:`load_observations`, :func:`model_grid` (``files.py``): the
  observation dataset format and its checks.

May import ``pde`` only (its config and ``pde.io``): every other room reads observations.
"""

from __future__ import annotations

from assimilate.observe.blocks import blocks
from assimilate.observe.files import (
    ObservationError,
    Observations,
    ObservationsAt,
    load_observations,
    model_grid,
)
from assimilate.observe.operator import Operator
from assimilate.observe.regimes import DEFAULT_REGIMES, Regime, load_regime, regime_names
from assimilate.observe.saturating import saturating
from assimilate.observe.stations import stations
from assimilate.observe.strided import strided
from assimilate.observe.synthesise import observe, summary

__all__ = [
    "DEFAULT_REGIMES",
    "ObservationError",
    "Observations",
    "ObservationsAt",
    "Operator",
    "Regime",
    "blocks",
    "load_observations",
    "load_regime",
    "model_grid",
    "observe",
    "regime_names",
    "saturating",
    "stations",
    "strided",
    "summary",
]
