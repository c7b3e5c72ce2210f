"""What the DA harness tunes of a method: :class:`Tuning`, declared by each method class
(:attr:`assimilate.da.contract.Method.tuning`) and read by
:mod:`assimilate.evaluation.harness.tuning`."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["Tuning"]


@dataclass(frozen=True)
class Tuning:
    """A method's main hyper-parameter as the harness tunes it on validation data: the
    setting ``key``, the ``values`` tried, and the ``symbol`` the tables show it by;
    ``in_grid_spacings``: the values count grid spacings (converted per grid); ``joint``:
    a second hyper-parameter tuned jointly with it (every pair of values is tried)."""

    key: str
    values: tuple[float, ...]
    symbol: str
    in_grid_spacings: bool = False
    joint: Tuning | None = None

    def candidates(self, spacing: float) -> tuple[float, ...]:
        """The values tried on a grid of ``spacing`` (its last dim), in the setting's units."""
        if self.in_grid_spacings:
            return tuple(float(value * spacing) for value in self.values)
        return self.values

    @property
    def parameters(self) -> tuple[Tuning, ...]:
        """This hyper-parameter and those tuned jointly with it."""
        return (self,) if self.joint is None else (self, *self.joint.parameters)

    def grid(self, spacing: float, fixed: Collection[str] = ()) -> list[dict[str, float]]:
        """Every combination of the values tried, leaving out the ``fixed`` keys."""
        free = [t for t in self.parameters if t.key not in fixed]
        return [dict(zip([t.key for t in free], values, strict=True))
                for values in itertools.product(*(t.candidates(spacing) for t in free))]
