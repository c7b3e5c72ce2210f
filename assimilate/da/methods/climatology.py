"""``climatology``: members drawn afresh from the climatology at every step.

The sanity bound: its normalised RMSE is about sqrt(2) for each member and 1 for the
ensemble mean; a method that does worse has lost the attractor.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method

__all__ = ["ClimatologyMethod"]


@dataclass(frozen=True)
class ClimatologyMethod(Method):
    """No model and no observations: climatological draws."""

    name: ClassVar[str] = "climatology"
    note: ClassVar[str] = ("draws members afresh (DAPPER's: their mean)")
    uses_observations: ClassVar[bool] = False
    model: Literal["none"] = "none"
