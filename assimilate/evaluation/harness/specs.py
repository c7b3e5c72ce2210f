"""Methods as the harness's user names them: ``NAME[:KEY=VALUE...]``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pde.io.errors import ConfigError

__all__ = ["MethodSpec", "fill_controller", "parse_method"]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method as the user named it: ``name`` and the settings they fixed."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """``name:key=value...``, a checkpoint by its file name alone."""
        return ":".join([self.name, *(Path(v).stem if k == "checkpoint" else f"{k}={v}"
                                      for k, v in self.settings)])

    def build(self) -> Any:
        """The method value (:func:`assimilate.da.methods.build_method`)."""
        from assimilate.da.methods import build_method

        return build_method(self.name, dict(self.settings))


def _named(text: str) -> str:
    return text.strip().split(":")[0]


def fill_controller(methods: Sequence[str], controller: str | Path) -> list[str]:
    """``methods`` (``NAME[:KEY=VALUE...]``) with the controller checkpoint filled in where
    a method that needs one lacks it, and a ``controller`` added if none is named
    (``evaluate da --controller``)."""
    from assimilate.da.methods import method_class

    filled, needing = [], 0
    for text in methods:
        key = method_class(_named(text)).controller_setting
        needing += key is not None
        filled.append(f"{text}:{key}={controller}"
                      if key is not None and f":{key}=" not in text else text)
    if not needing:
        filled.append(f"controller:checkpoint={controller}")
    return filled


def parse_method(text: str) -> MethodSpec:
    """``"letkf:model=forecaster:inflation=1.05"`` -> a :class:`MethodSpec`, validated."""
    name, *pairs = text.strip().split(":")
    settings = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"method {text!r}: {pair!r} is not key=value")
        settings.append((key, value))
    spec = MethodSpec(name, tuple(settings))
    spec.build()  # refuse a bad method before any work
    return spec
