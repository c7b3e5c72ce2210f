"""The project's configuration file: one YAML per experiment, validated at the edge.

Sections: ``simulator`` and ``dataset`` (see :mod:`pde.config`); model and assimilation
sections join here as the project grows. Errors name the file, the key and what is
allowed (:class:`pde.config.ConfigError`).
"""

from __future__ import annotations

from pathlib import Path

from pde.config import ConfigError, SimulationConfig, load_yaml_model

__all__ = ["ConfigError", "ExperimentConfig", "load_config"]


class ExperimentConfig(SimulationConfig):
    """Everything one configuration file describes."""


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate the YAML configuration at ``path``."""
    return load_yaml_model(path, ExperimentConfig)
