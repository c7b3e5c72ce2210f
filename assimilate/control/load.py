"""Reading a trained controller back: the EMA weights and what it was trained for."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from assimilate.config import ExperimentConfig
from assimilate.control.network import ControllerNet
from assimilate.control.training import build_controller
from assimilate.training.loop import file_identity, load_checkpoint, select_device

__all__ = ["TrainedController", "load_controller"]


@dataclasses.dataclass
class TrainedController:
    net: ControllerNet
    config: ExperimentConfig
    forecaster_identity: str
    """The content hash of the forecaster checkpoint it was trained to steer."""
    regimes: list[str]
    checkpoint: str

    @property
    def lookahead(self) -> int:
        return self.net.lookahead

    def require_forecaster(self, checkpoint: str | Path) -> None:
        """Refuse a forecaster other than the one the controller was trained with."""
        if file_identity(checkpoint) != self.forecaster_identity:
            raise ValueError(f"the controller '{self.checkpoint}' was trained to steer another "
                             f"forecaster than '{checkpoint}'; train one for it with "
                             "`assimilate train controller`")


def load_controller(checkpoint: str | Path) -> TrainedController:
    """The controller stored at ``checkpoint`` (EMA weights, frozen, on the selected device)."""
    payload = load_checkpoint(checkpoint, kind="controller")
    config = ExperimentConfig.model_validate_json(payload["config"])
    identity = json.loads(payload["identity"])
    net = build_controller(config, dims=len(payload["coordinates"]))
    expected = net.state_dict()
    changed = sorted(key for key, value in payload["ema"].items()
                     if key in expected and value.shape != expected[key].shape)
    if changed:  # e.g. trained before the pooled ensemble inputs gained two increments
        stored = payload["ema"]["inputs.weight"].shape[1]
        raise ValueError(f"the controller '{checkpoint}' reads {stored} input fields, this "
                         f"version's reads {net.inputs.weight.shape[1]} (shapes changed: "
                         f"{', '.join(changed)}); retrain it with `assimilate train controller`")
    net.load_state_dict(payload["ema"])
    net.eval().requires_grad_(False).to(select_device())
    return TrainedController(net, config, identity["forecaster"], json.loads(payload["regimes"]),
                             str(Path(checkpoint).resolve()))
