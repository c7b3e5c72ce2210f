"""Methods by name: what the CLI and the evaluation harness build from strings.

    build_method("letkf", {"radius": "3", "inflation": "1.05"})

Each value is validated by the method's own field types and bounds (pydantic), so a bad
setting is refused with one line naming the method, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pydantic

from assimilate.da import Method
from assimilate.methods.climatology import ClimatologyMethod
from assimilate.methods.controller import AmortisedController
from assimilate.methods.dps import DiffusionPosteriorSampling
from assimilate.methods.enkf import EnsembleKalmanFilter
from assimilate.methods.etkf import EnsembleTransformKalmanFilter
from assimilate.methods.free import Free
from assimilate.methods.letkf import LocalEnsembleTransformKalmanFilter
from assimilate.methods.nudging import Nudging
from assimilate.methods.oi import OptimalInterpolation
from assimilate.methods.optimised_control import OptimisedControl
from pde.errors import ConfigError

__all__ = ["METHODS", "build_method", "method_keys", "parse_settings"]

METHODS: dict[str, type[Method]] = {method.name: method for method in (
    Free, DiffusionPosteriorSampling, EnsembleKalmanFilter, EnsembleTransformKalmanFilter,
    LocalEnsembleTransformKalmanFilter, Nudging, OptimalInterpolation, ClimatologyMethod,
    AmortisedController, OptimisedControl)}


def method_keys(name: str) -> list[str]:
    return [field.name for field in dataclasses.fields(METHODS[name])]


def parse_settings(settings: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's repeated ``--set``) as a dict."""
    parsed = {}
    for setting in settings or []:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {setting!r}: expected key=value")
        parsed[key.strip()] = value.strip()
    return parsed


def build_method(name: str, settings: Mapping[str, object] | None = None) -> Method:
    """The method called ``name`` with hyper-parameters ``settings`` (strings allowed)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    settings = dict(settings or {})
    keys = method_keys(name)
    unknown = sorted(set(settings) - set(keys))
    if unknown:
        raise ConfigError(f"method {name!r} has no setting {unknown[0]!r}; allowed: "
                          f"{', '.join(keys) or '(none)'}")
    try:
        return METHODS[name](**settings)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"]) or "?"
        if problem["type"] == "missing":
            hint = " (--controller CKPT)" if key == "checkpoint" else ""
            raise ConfigError(f"method {name!r} needs the setting {key}=...{hint}") from None
        raise ConfigError(f"method {name!r}: {key}={settings.get(key)!r}: "
                          f"{problem['msg'].lower()}") from None
