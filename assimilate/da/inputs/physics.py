"""Physics checks: every input made under a simulator must follow the config's physics.

A checkpoint learned the map from one stored state to the next, so its whole simulator
section counts, ``interval`` included. A store of states (truth, climatology, a synthesised
observation file's source) may be sampled more or less often than the run steps: there
``interval`` is left to the time-axis check (:mod:`.truth`), and only the physics proper
(:func:`pde.config.physics_difference`: every parameter but the numerical ones) must agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assimilate.config import ExperimentConfig
from pde.config import physics_difference
from pde.io.errors import ConfigError

__all__ = ["SAMPLING", "check_checkpoints", "check_forecaster", "check_physics"]

SAMPLING = frozenset({"interval"})
"""Simulator parameters that say how often states are stored, not which physics they follow."""


def check_physics(stored: dict[str, Any], config: ExperimentConfig, what: str, *,
                  sampled: bool = True) -> None:
    """Refuse ``stored`` (a simulator section) unless its physics are ``config``'s.

    ``what`` names the input (``"truth store 'a.zarr'"``); ``sampled``: states that may be
    stored at another interval (a store, not a checkpoint).
    """
    expected = config.simulator.model_dump(mode="json")
    if sampled:
        stored = {k: v for k, v in stored.items() if k not in SAMPLING}
        expected = {k: v for k, v in expected.items() if k not in SAMPLING}
    difference = physics_difference(stored, expected)
    if difference:
        raise ConfigError(f"{what} holds other physics than the config: {difference} "
                          "(here: the input, expected: the config)")


def check_forecaster(forecaster, config: ExperimentConfig, path: str | Path) -> None:
    """Refuse a loaded forecaster trained on other physics than ``config``'s, naming ``path``."""
    difference = physics_difference(forecaster.simulator, config.simulator.model_dump())
    if difference:
        raise ConfigError(f"forecaster '{path}' was trained on other physics than the "
                          f"config: {difference}")


def _trained_on(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(simulator section, payload)`` of the checkpoint ``path`` of ``kind``."""
    from assimilate.models.core import checkpoint_simulator
    from assimilate.training.loop import load_checkpoint

    payload = load_checkpoint(path, kind=kind)
    config = ExperimentConfig.model_validate_json(payload["config"])
    return checkpoint_simulator(payload, config), payload


def check_checkpoints(config: ExperimentConfig, *, forecaster: str | Path | None = None,
                      controllers: Sequence[str | Path] = ()) -> None:
    """Refuse checkpoints trained on other physics than ``config``'s, and a controller
    trained to steer another forecaster than ``forecaster``; reads only their metadata."""
    if forecaster is not None:
        physics, _ = _trained_on(Path(forecaster), "forecaster")
        difference = physics_difference(physics, config.simulator.model_dump(mode="json"))
        if difference:
            raise ConfigError(f"forecaster '{forecaster}' was trained on other physics than "
                              f"the config: {difference}")
    for controller in controllers:
        physics, payload = _trained_on(Path(controller), "controller")
        difference = physics_difference(physics, config.simulator.model_dump(mode="json"))
        if difference:
            raise ConfigError(f"controller '{controller}' was trained on other physics than "
                              f"the config: {difference}")
        from assimilate.training.loop import file_identity

        steered = json.loads(payload["identity"]).get("forecaster")
        if forecaster is not None and steered != file_identity(forecaster):
            raise ConfigError(f"the controller '{controller}' was trained to steer another "
                              f"forecaster than '{forecaster}'; train one for it with "
                              "`assimilate train controller`")
