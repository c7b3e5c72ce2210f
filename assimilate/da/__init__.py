"""Data assimilation: the contract every method satisfies and what it runs on.

Room of the data flow: observations + a model + a first guess → an analysis ensemble.

- ``contract.py``: :class:`Method`, :class:`Problem`, :func:`assimilate` (the one loop every
  method runs in) and :func:`score`.
- ``dynamics.py``: the models a method advances states with (the simulator, the forecaster).
- ``climatology.py``: first guesses, background covariances, the sanity bound.
- ``inputs/``: every input checked before any work (truth, fields, physics).
- ``methods/``: one file per method, found by file name.
- ``run.py``: ``assimilate run``.

May import ``pde``, ``assimilate.config``, ``assimilate.observe``, ``assimilate.models`` and
``assimilate.control`` (the last two lazily: filters on the simulator never load torch).
``assimilate.da.assimilate`` and ``assimilate.da.score`` are the contract's functions.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["assimilate", "score"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'assimilate.da' has no attribute {name!r}")
    return getattr(importlib.import_module("assimilate.da.contract"), name)
