"""Amortised data assimilation with diffusion forecasters, and the tails of what it produces.

The public Python API: one function per command-line verb, with the same keywords, and the
settings objects of the verbs that take many options, imported on first use (``import
assimilate`` loads neither torch nor JAX).

    from assimilate import load_config, run, diagnose
    from assimilate.observe import observe     # a room's own verb: from its package
    from assimilate.cycle import cycle

The rooms of the data flow, each a package (see its docstring for what it may import):
``observe`` (observations), ``models`` with ``nets`` and ``diffusion`` (the learned models),
``training`` (the one loop), ``da`` (the contract, its methods and its inputs), ``control``
(the amortised controller), ``evaluation`` (scores, forecast skill, the DA harness),
``cycle`` (scheduled runs), ``diagnostics`` and ``report`` (extremes), ``cli`` (the command).
Simulators and stores are the sibling package :mod:`pde`.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "load_config": "assimilate.config",
    "load_observations": "assimilate.observe.files",
    "train_emulator": "assimilate.models.emulator",
    "train_forecaster": "assimilate.models.forecaster",
    "forecast": "assimilate.models.forecast",
    "train_controller": "assimilate.control.training",
    "assimilate": "assimilate.da.contract",
    "build_method": "assimilate.da.methods",
    "run": "assimilate.da.run",
    "evaluate_forecast": "assimilate.evaluation.forecast_skill",
    "evaluate_da": "assimilate.evaluation.harness.evaluate",
    "diagnose": "assimilate.diagnostics.diagnose",
    "render": "assimilate.report.page",
    "RunInputs": "assimilate.da.inputs.checked",
    "HarnessSettings": "assimilate.evaluation.harness.evaluate",
    "ForecastSettings": "assimilate.models.forecast",
    "DiagnoseSettings": "assimilate.diagnostics.settings",
    "ComputeSettings": "assimilate.diagnostics.settings",
    "SkillSettings": "assimilate.evaluation.forecast_skill",
}
__all__ = [
    "ComputeSettings",
    "DiagnoseSettings",
    "ForecastSettings",
    "HarnessSettings",
    "RunInputs",
    "SkillSettings",
    "assimilate",
    "build_method",
    "diagnose",
    "evaluate_da",
    "evaluate_forecast",
    "forecast",
    "load_config",
    "load_observations",
    "render",
    "run",
    "train_controller",
    "train_emulator",
    "train_forecaster",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'assimilate' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
