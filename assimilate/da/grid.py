"""The model grid a run lives on, computed once from the simulator: one grid function.

Every consumer reads it from here: the observation files (sizes, coordinates, the time
axis), the truth and background checks (dims and coordinates), the analysis dataset
(coordinates), the localised filters (periodic lengths, flattened grid positions, the grid
spacing that radii in ``"8dx"`` are counted in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Grid"]


@dataclass(frozen=True, eq=False)
class Grid:
    """A uniform grid, periodic (a simulator's) or bounded (imported regional data):
    ``dims`` in grid order, one coordinate array per dim, the model's time step
    ``interval`` and the field ``variable`` the data hold."""

    dims: tuple[str, ...]
    coordinates: tuple[np.ndarray, ...]
    interval: float = 1.0
    variable: str = "u"
    time0: float = 0.0
    periodic: bool = True
    cf: tuple[dict[str, str], ...] = ()
    """CF attributes of each dim's coordinate, where the data give them (imported data:
    latitude and longitude); none for a simulator's model coordinates."""

    @classmethod
    def of_config(cls, section: Any) -> Grid:
        """The grid of a configuration's simulator section: the simulator's, or for
        imported data the latitude-longitude grid the section records (it gives
        coordinates, interval and variable as a simulator does)."""
        if section.simulated:
            return cls.of(section.build())
        grid = cls.of(section)
        return cls(grid.dims, grid.coordinates, grid.interval, grid.variable,
                   periodic=section.periodic,
                   cf=tuple(attrs for _, _, attrs in section.coordinates()))

    @classmethod
    def of(cls, simulator: Any) -> Grid:
        """The grid of a simulator (:class:`pde.simulator.Simulator` protocol)."""
        found = simulator.coordinates()
        return cls(tuple(name for name, _, _ in found),
                   tuple(np.asarray(values) for _, values, _ in found),
                   float(simulator.interval), simulator.variable)

    @classmethod
    def from_coordinates(cls, coordinates: dict[str, np.ndarray], **options: Any) -> Grid:
        """A grid from named coordinate arrays (a toy problem in tests and notebooks)."""
        return cls(tuple(coordinates), tuple(np.asarray(v) for v in coordinates.values()),
                   **options)

    @property
    def space(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.coordinates)

    @property
    def named(self) -> dict[str, np.ndarray]:
        """``{dim: coordinate}`` in grid order."""
        return dict(zip(self.dims, self.coordinates, strict=True))

    @property
    def lengths(self) -> tuple[float, ...]:
        """Periodic domain length along each dim: ``n * spacing``; infinite on a bounded
        grid (distances never wrap)."""
        if not self.periodic:
            return tuple(float("inf") for _ in self.coordinates)
        return tuple(float(len(values) * (values[1] - values[0]))
                     for values in self.coordinates)

    @property
    def spacing(self) -> float:
        """The spacing of the last dim (the unit of radii written ``"8dx"``)."""
        x = self.coordinates[-1]
        return float(x[1] - x[0])

    def coordinate_attrs(self, dim: str) -> dict[str, str]:
        """Attributes of a dim's coordinate: its CF attributes where the data give them
        (latitude and longitude: maps draw them on the globe), model units otherwise."""
        return dict(self.cf[self.dims.index(dim)]) if self.cf else {"units": "1"}

    def locations(self) -> np.ndarray:
        """``(n_grid, d)`` physical positions of the flattened grid, dims in grid order."""
        mesh = np.meshgrid(*self.coordinates, indexing="ij")
        return np.stack([axis.ravel() for axis in mesh], axis=-1)

    def observation_grid(self) -> dict[str, Any]:
        """What :func:`assimilate.observe.load_observations` takes: ``space``,
        ``coordinates`` (one array per dim, grid order), ``time0`` and ``interval``."""
        return {"space": self.space, "coordinates": list(self.coordinates),
                "time0": self.time0, "interval": self.interval}
