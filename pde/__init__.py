"""PDE simulators and the trajectory stores they write.

This package knows physics and storage only; it never imports torch or ``assimilate``.
"""

from pde.config import ConfigError, SimulationConfig, load_simulation_config
from pde.generate import SimulationSummary, simulate
from pde.simulator import Simulator
from pde.store import StoreError, export, open_trajectories

__all__ = [
    "ConfigError",
    "SimulationConfig",
    "SimulationSummary",
    "Simulator",
    "StoreError",
    "export",
    "load_simulation_config",
    "open_trajectories",
    "simulate",
]
