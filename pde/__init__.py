"""PDE simulators and the trajectory stores they write.

This package knows physics and storage only; it never imports torch or ``assimilate``.
Its names are imported on first use, so that ``import pde.io.errors`` (the command line's
error handling) does not pay for JAX, xarray and Zarr.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ConfigError",
    "Descriptor",
    "SimulationConfig",
    "SimulationSummary",
    "Simulator",
    "StoreError",
    "descriptor_of",
    "export",
    "load_simulation_config",
    "open_trajectories",
    "simulate",
]

_HOMES = {
    "ConfigError": "pde.io.errors",
    "StoreError": "pde.io.errors",
    "Descriptor": "pde.descriptor",
    "descriptor_of": "pde.descriptor",
    "SimulationConfig": "pde.config",
    "load_simulation_config": "pde.config",
    "SimulationSummary": "pde.generate",
    "simulate": "pde.generate",
    "Simulator": "pde.simulator",
    "export": "pde.io.store",
    "open_trajectories": "pde.io.store",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pde' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
