"""Methods by name: what the CLI and the evaluation harness build from strings.

    build_method("letkf", {"radius": "3", "inflation": "1.05"})

A method named ``x-y`` is the :class:`~assimilate.da.contract.Method` of that ``name`` defined in
``assimilate/da/methods/x_y.py``: adding a method is adding its file. Only the module of the
method asked for is imported, so a filter on the true simulator never loads torch.

Each value is validated by the method's own field types and bounds (pydantic), so a bad
setting is refused with one line naming the method, the key and what is allowed.

Methods are found in the modules on the package's ``__path__``: a directory appended to it
(a plugin location) adds its methods the same way. :func:`methods_help` names them without
importing any (it reads each module's source for the class attributes ``name`` and
``note``), so the command line starts fast.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

import pydantic

from pde.io.errors import ConfigError

if TYPE_CHECKING:  # the contract imports JAX: the command line's help does without it
    from assimilate.da.contract import Method

__all__ = ["all_methods", "build_method", "method_class", "method_keys", "methods_help",
           "parse_settings", "with_controller"]


def _defined_in(module: ModuleType) -> dict[str, type[Method]]:
    """The methods ``module`` itself defines (not those it imports), by name."""
    from assimilate.da.contract import Method

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


def _declared(path: str) -> dict[str, str]:
    """``{name: note}`` of the method classes a module's source declares (class attributes
    ``name: ClassVar[str] = "..."`` and ``note: ClassVar[str] = "..."``)."""
    found = {}
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):  # noqa: SIM115
        if not isinstance(node, ast.ClassDef):
            continue
        values = {statement.target.id: statement.value.value for statement in node.body
                  if isinstance(statement, ast.AnnAssign)
                  and isinstance(statement.target, ast.Name)
                  and isinstance(statement.value, ast.Constant)
                  and isinstance(statement.value.value, str)}
        if "name" in values:
            found[values["name"]] = values.get("note", "")
    return found


def methods_help() -> str:
    """The ``--method`` help: every method's name, and how those named like DAPPER's differ
    from them (each method's ``note``); no method module is imported."""
    package = importlib.import_module(__package__)
    declared: dict[str, str] = {}
    for info in pkgutil.iter_modules(package.__path__):
        spec = importlib.util.find_spec(f"{__package__}.{info.name}")
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            declared.update(_declared(spec.origin))
    names = sorted(declared)
    notes = "; ".join(f"{name} {note}" for name, note in sorted(declared.items()) if note)
    text = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    return text + (f". Unlike DAPPER's methods of those names: {notes}" if notes else "")


def with_controller(name: str, settings: Mapping[str, str] | None,
                    controller: str | None) -> dict[str, str]:
    """``settings`` with ``controller`` (``--controller CKPT``) as the checkpoint of a method
    that needs one (its :attr:`~assimilate.da.contract.Method.controller_setting`); a
    setting already there is kept; refused for a method that needs none."""
    settings = dict(settings or {})
    key = method_class(name).controller_setting
    if controller is None:
        return settings
    if key is None:
        raise ConfigError(f"method {name!r} runs no controller: --controller "
                          f"'{controller}' is for a method that needs one")
    settings.setdefault(key, str(controller))
    return settings


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
            hint = " (--controller CKPT)" if key == method.controller_setting else ""
            raise ConfigError(f"method {name!r} needs the setting {key}=...{hint}") from None
        raise ConfigError(f"method {name!r}: {key}={settings.get(key)!r}: "
                          f"{problem['msg'].lower()}") from None
