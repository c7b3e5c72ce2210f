"""Methods by name: what the CLI and the evaluation harness build from strings.

    build_method("letkf", {"radius": "3", "inflation": "1.05"})

A method named ``x-y`` is the :class:`~assimilate.da.contract.Method` of that ``name`` defined in
``assimilate/da/methods/x_y.py``: adding a method is adding its file. Only the module of the
method asked for is imported, so a filter on the true simulator never loads torch.

Each value is validated by the method's own field types and bounds (pydantic), so a bad
setting is refused with one line naming the method, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from types import ModuleType

import pydantic

from assimilate.da.contract import Method
from pde.io.errors import ConfigError

__all__ = ["all_methods", "build_method", "method_class", "method_keys", "parse_settings"]


def _defined_in(module: ModuleType) -> dict[str, type[Method]]:
    """The methods ``module`` itself defines (not those it imports), by name."""
    return {value.name: value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Method)
            and value.__module__ == module.__name__ and "name" in vars(value)}


def method_class(name: str) -> type[Method]:
    """The method called ``name``, importing only its module."""
    module = f"{__package__}.{name.replace('-', '_')}"
    if name.replace("-", "_").isidentifier() and importlib.util.find_spec(module):
        found = _defined_in(importlib.import_module(module)).get(name)
        if found is not None:
            return found
    raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(sorted(all_methods()))}")


@functools.cache
def all_methods() -> dict[str, type[Method]]:
    """Every method of the package, by name (imports every method module)."""
    package = importlib.import_module(__package__)
    found: dict[str, type[Method]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        found.update(_defined_in(importlib.import_module(f"{__package__}.{info.name}")))
    return found


def method_keys(name: str) -> list[str]:
    return [field.name for field in dataclasses.fields(method_class(name))]


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
    method = method_class(name)
    settings = dict(settings or {})
    keys = method_keys(name)
    unknown = sorted(set(settings) - set(keys))
    if unknown:
        raise ConfigError(f"method {name!r} has no setting {unknown[0]!r}; allowed: "
                          f"{', '.join(keys) or '(none)'}")
    try:
        return method(**settings)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"]) or "?"
        if problem["type"] == "missing":
            hint = " (--controller CKPT)" if key == "checkpoint" else ""
            raise ConfigError(f"method {name!r} needs the setting {key}=...{hint}") from None
        raise ConfigError(f"method {name!r}: {key}={settings.get(key)!r}: "
                          f"{problem['msg'].lower()}") from None
