"""The simulator protocol every PDE in :mod:`pde` implements.

A simulator is a small object built from its physical and numerical parameters. Its
numerical state is whatever the scheme advances (Fourier coefficients for both spectral
solvers here); users see physical fields on the stored grid through ``to_physical``.

Rollouts are combinators over ``step``: ``trajectory`` scans ``step`` and records the
physical field after each stored interval, so a store never sees the solver's state.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Coordinate", "Simulator"]

# (name, values, attributes) of one spatial coordinate on the stored grid.
Coordinate = tuple[str, np.ndarray, dict[str, str]]


@runtime_checkable
class Simulator(Protocol):
    """What :mod:`pde.generate` and the stores need from a PDE solver.

    Shapes: ``batch`` trajectories are advanced together; a physical field is
    ``(batch, x)`` in 1-D and ``(batch, y, x)`` in 2-D on the *stored* grid.
    """

    pde: str
    """Registry name, e.g. ``"kuramoto_sivashinsky"`` or ``"kolmogorov"``."""
    variable: str
    """Name of the stored field, e.g. ``"u"`` or ``"vorticity"``."""
    interval: float
    """Model time between two stored states."""

    def initial_state(self, key: Any, batch: int) -> Any:
        """Random initial conditions for ``batch`` trajectories (no burn-in)."""

    def burn_in(self, state: Any) -> Any:
        """Advance ``state`` through the configured burn-in time."""

    def step(self, state: Any) -> Any:
        """Advance ``state`` by one stored interval."""

    def trajectory(self, state: Any, n_steps: int) -> tuple[Any, Any]:
        """``(final_state, fields)`` with fields ``(batch, n_steps, *space)``.

        ``fields[:, 0]`` is ``to_physical(state)``; ``fields[:, i]`` is the field
        ``i`` stored intervals later; ``final_state`` is one interval after the last.
        """

    def to_physical(self, state: Any) -> Any:
        """The physical field ``(batch, *space)`` on the stored grid."""

    def from_physical(self, field: Any) -> Any:
        """The numerical state for a physical field ``(batch, *space)``."""

    def step_physical(self, field: Any) -> Any:
        """``to_physical(step(from_physical(field)))``: a physical field ``(batch, *space)``
        one stored interval on, in one call (filters restart every member at each step)."""

    def coordinates(self) -> list[Coordinate]:
        """Spatial coordinates of the stored grid, outermost first (``y`` before ``x``)."""

    def attrs(self) -> dict[str, Any]:
        """JSON-serialisable parameters that rebuild this simulator, plus solver name."""
