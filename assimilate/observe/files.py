"""Observations in memory and on disk: the dataset format, its checks and a user's files.

An observation dataset lists observations along one dimension ``obs``::

    time       (obs)                 model time, on the model time axis (t0 + k interval),
                                     or datetimes read with a calendar (:mod:`.times`)
    x [, y]    (obs)                 physical location: the point, or a block's centre
    value      ([trajectory,] obs)   float; NaN = missing
    error_std  (obs)                 float, physical units, finite and > 0
    indices    (obs, support)        int, optional: the operator row (flat grid indices)
    weights    (obs, support)        float, optional: its weights
    attrs      regime ("user" for a user's file), transform (default identity), and when
               synthesised: variable, source, the regime parameters, grid_shape

Synthesis (:func:`assimilate.observe.synthesise.observe`) writes the operator rows; a
user's file usually has none, and each observation is then a point observation,
linearly interpolated between the neighbouring grid points of the periodic grid (support 2
in 1-D, 4 in 2-D). Times may be irregular and the count may differ at each time.

Every entry is checked: a time on the model axis within ``MAX_STEPS`` steps, a location
inside the domain, ``|value| <= MAX_VALUE`` (NaN: missing) and ``error_std`` within
``ERROR_STD_RANGE``, in the field's units: beyond these the filters' arithmetic overflows
(a value of 1e30, an error std of 1e-300) instead of saying what is wrong.

Observation numbers in error messages are 0-based positions along ``obs``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from assimilate.observe.operator import TRANSFORMS, Operator, check_grid
from assimilate.observe.times import Calendar, CalendarTimes, model_times
from pde.config import MAX_COUNT
from pde.io.errors import ConfigError

__all__ = ["ERROR_STD_RANGE", "MAX_STEPS", "MAX_VALUE", "ObservationError", "Observations",
           "ObservationsAt", "load_observations", "model_grid", "open_observation_file"]

SPACE_DIMS = {1: ("x",), 2: ("y", "x")}
TOLERANCE = 1e-6  # of an interval: how far a time may be off the model time axis
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
MAX_STEPS = MAX_COUNT  # the longest run (--steps): a later observation is a wrong time
MAX_VALUE = 1e6
ERROR_STD_RANGE = (1e-6, 1e6)


class ObservationError(ConfigError):
    """An observation file or dataset is malformed or does not fit the model grid."""


class ObservationsAt(NamedTuple):
    """The observations at one model step (``n`` of them, for ``n_traj`` trajectories)."""

    operator: Operator  # H with n observations (entries missing in every trajectory dropped)
    values: np.ndarray  # (n_traj, n); NaN where missing
    error_std: np.ndarray  # (n,)
    mask: np.ndarray  # (n_traj, n) bool: True where a value is present


@dataclasses.dataclass(frozen=True, eq=False)
class Observations(CalendarTimes):
    """A checked observation dataset on a model grid and time axis.

    Build one with :meth:`from_dataset` or :func:`load_observations`; the dataset then
    holds the operator rows (``indices``, ``weights``) and is in memory.
    """

    dataset: xr.Dataset
    space: tuple[int, ...]
    coordinates: tuple[np.ndarray, ...]
    time0: float
    interval: float

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, *, space: tuple[int, ...],
                     coordinates: list[np.ndarray], time0: float, interval: float,
                     domain_lengths: tuple[float, ...] | None = None,
                     source: str = "observations",
                     calendar: Calendar | None = None) -> Observations:
        """Check ``ds`` (format above) against the grid; ``source`` names it in errors;
        ``calendar`` reads datetimes (without one they are refused)."""
        space = tuple(int(n) for n in space)
        coordinates = check_grid(space, coordinates)
        lengths = tuple(domain_lengths) if domain_lengths is not None else \
            tuple(len(c) * float(c[1] - c[0]) for c in coordinates)
        grid = _Grid(space, coordinates, float(time0), float(interval), lengths)
        checked = _Checker(ds.load().copy(), grid, source, calendar).run()  # ours to complete
        return cls(checked, space, tuple(coordinates), float(time0), float(interval))

    @functools.cached_property
    def _obs_steps(self) -> np.ndarray:
        """``(n_obs,)`` the model step of each observation."""
        time = self.dataset["time"].values
        return np.rint((time - self.time0) / self.interval).astype(np.int64)

    @functools.cached_property
    def _values(self) -> np.ndarray:
        """``(n_traj, n_obs)`` float64."""
        value = self.dataset["value"].values.astype(np.float64)
        return value if value.ndim == 2 else value[None]

    @property
    def times(self) -> np.ndarray:
        """Sorted unique observation times ``(n_times,)``."""
        return self.time0 + self.steps * self.interval

    @property
    def steps(self) -> np.ndarray:
        """Sorted unique observed model steps ``(n_times,)``: ``round((t - t0) / interval)``;
        a step whose every value is missing (NaN in every trajectory) is not observed."""
        present = ~np.isnan(self._values).all(axis=0)
        return np.unique(self._obs_steps[present])

    @property
    def n_trajectories(self) -> int:
        return int(self._values.shape[0])

    @property
    def trajectory_labels(self) -> np.ndarray:
        """The labels of the observed trajectories (an analysis's ``trajectory`` coordinate):
        the file's ``trajectory`` coordinate, else ``0..n_trajectories-1``."""
        if "trajectory" in self.dataset.coords:
            return np.asarray(self.dataset["trajectory"].values)
        return np.arange(self.n_trajectories)

    @property
    def transform(self) -> str:
        return str(self.dataset.attrs.get("transform", "identity"))

    def at(self, step: int) -> ObservationsAt:
        """The observations at model step ``step`` (none: an operator of 0 observations).

        An observation missing (NaN) in every trajectory is dropped from the operator; one
        missing in some trajectories only is kept, NaN in ``values`` and False in ``mask``,
        for the caller to leave out of those trajectories.
        """
        chosen = self._by_step.get(int(step), np.zeros(0, dtype=np.int64))
        values = self._values[:, chosen]
        mask = ~np.isnan(values)
        kept = mask.any(axis=0)
        rows = chosen[kept]
        indices, weights, error_std, locations = self._rows
        operator = Operator(indices[rows], weights[rows], self.space, self.transform,
                            locations[rows])
        return ObservationsAt(operator, values[:, kept], error_std[rows], mask[:, kept])

    @functools.cached_property
    def _by_step(self) -> dict[int, np.ndarray]:
        """The positions along ``obs`` of each step's observations, found once."""
        order = np.argsort(self._obs_steps, kind="stable")
        steps, starts = np.unique(self._obs_steps[order], return_index=True)
        return {int(step): group for step, group in
                zip(steps, np.split(order, starts[1:]), strict=True)}

    @functools.cached_property
    def _rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``indices``, ``weights``, ``error_std`` and locations ``(n_obs, ndim)``, read
        from the dataset once."""
        ds = self.dataset
        locations = np.stack([ds[d].values.astype(np.float64)
                              for d in SPACE_DIMS[len(self.space)]], axis=-1)
        return (ds["indices"].values, ds["weights"].values,
                ds["error_std"].values.astype(float), locations)


class _Grid(NamedTuple):
    space: tuple[int, ...]
    coordinates: list[np.ndarray]
    time0: float
    interval: float
    lengths: tuple[float, ...]


@dataclasses.dataclass
class _Checker:
    """Checks an observation dataset entry by entry; the first problem is the error."""

    ds: xr.Dataset
    grid: _Grid
    source: str
    calendar: Calendar | None = None

    def fail(self, problem: str) -> ObservationError:
        return ObservationError(f"{self.source}: {problem}")

    def run(self) -> xr.Dataset:
        self.check_structure()
        time = self.ds["time"].values.astype(np.float64)
        self.check_times(time)
        self.check_locations(time)
        self.check_entries(time)
        if "indices" not in self.ds:
            indices, weights = interpolation_rows(self.locations(), self.grid)
            self.ds["indices"] = (("obs", "support"), indices)
            self.ds["weights"] = (("obs", "support"), weights)
        self.ds.attrs.setdefault("regime", "user")
        self.ds.attrs.setdefault("transform", "identity")
        if self.ds.attrs["transform"] not in TRANSFORMS:
            raise self.fail(f"attribute transform={self.ds.attrs['transform']!r}; allowed: "
                            f"{', '.join(TRANSFORMS)}")
        return self.ds

    def check_structure(self) -> None:
        ds, dims = self.ds, SPACE_DIMS[len(self.grid.space)]
        if "obs" not in ds.dims:
            shown = ", ".join(map(str, ds.dims)) or "none"
            raise self.fail(f"no dimension 'obs' (dims: {shown}); observations are listed "
                            "along 'obs'")
        required = ("time", *dims, "value", "error_std")
        for name in required:
            if name not in ds.variables:
                raise self.fail(f"lacks variable '{name}' (required: {', '.join(required)})")
        for name in ("time", *dims, "error_std"):
            self.require_dims(name, [("obs",)])
        self.require_dims("value", [("obs",), ("trajectory", "obs")])
        for name in (*dims, "value", "error_std"):
            if not np.issubdtype(ds[name].dtype, np.number):
                raise self.fail(f"variable '{name}' holds {ds[name].dtype}, expected numbers")
        self.read_times()
        if ("indices" in ds) != ("weights" in ds):
            raise self.fail("has only one of 'indices' and 'weights'; give both or neither")
        if "indices" in ds:
            self.check_rows()

    def read_times(self) -> None:
        """``time`` in model time: datetimes converted with the calendar (:mod:`.times`)."""
        try:
            times = model_times(self.ds["time"], interval=self.grid.interval,
                                calendar=self.calendar, source=self.source, item="observation")
        except ConfigError as error:
            raise ObservationError(str(error)) from None
        where = self.ds.coords if "time" in self.ds.coords else self.ds
        where["time"] = ("obs", times, {"units": "1", "long_name": "model time"})

    def require_dims(self, name: str, allowed: list[tuple[str, ...]]) -> None:
        if self.ds[name].dims not in allowed:
            shown = " or ".join(f"({', '.join(a)})" for a in allowed)
            raise self.fail(f"variable '{name}' has dims ({', '.join(self.ds[name].dims)}), "
                            f"expected {shown}")

    def check_rows(self) -> None:
        indices, weights = self.ds["indices"], self.ds["weights"]
        if indices.ndim != 2 or indices.dims[0] != "obs" or weights.dims != indices.dims:
            raise self.fail("variables 'indices' and 'weights' must both have dims "
                            "(obs, support)")
        shape = self.ds.attrs.get("grid_shape")
        shape = None if shape is None else tuple(int(n) for n in np.atleast_1d(shape))
        if shape is not None and shape != self.grid.space:
            raise self.fail(f"was made for the grid {shape}, not {self.grid.space}")
        n_grid = int(np.prod(self.grid.space))
        bad = (indices.values < 0) | (indices.values >= n_grid) | ~np.isfinite(weights.values)
        if bad.any():
            first = int(np.flatnonzero(bad.any(axis=1))[0])
            raise self.fail(f"observation {first} has grid indices outside 0..{n_grid - 1} "
                            "or non-finite weights")

    def check_times(self, time: np.ndarray) -> None:
        t0, interval = self.grid.time0, self.grid.interval
        position = (time - t0) / interval
        axis = f"(steps of {interval:g} from {t0:g})"
        if (i := _first(~np.isfinite(time))) is not None:
            raise self.fail(f"observation {i} has time {time[i]}, not a number")
        if (i := _first(np.abs(position) > MAX_STEPS)) is not None:
            raise self.fail(f"observation {i} at time {time[i]:.6g} is model step "
                            f"{position[i]:.3g}; allowed: steps 0..{MAX_STEPS} "
                            f"{axis}")
        if (i := _first(position < -TOLERANCE)) is not None:
            raise self.fail(f"observation {i} at time {time[i]:.6g} is before the first "
                            f"model time {t0:g}")
        if (i := _first(np.abs(position - np.rint(position)) > TOLERANCE)) is not None:
            raise self.fail(f"observation {i} at time {time[i]:.6g} is not on the model "
                            f"time axis {axis}")

    def locations(self) -> np.ndarray:
        """``(n_obs, ndim)`` physical locations, ordered like the grid dims."""
        dims = SPACE_DIMS[len(self.grid.space)]
        return np.stack([self.ds[d].values.astype(np.float64) for d in dims], axis=-1)

    def check_locations(self, time: np.ndarray) -> None:
        dims = SPACE_DIMS[len(self.grid.space)]
        locations = self.locations()
        for d, name in enumerate(dims):
            origin, length, p = self.grid.coordinates[d][0], self.grid.lengths[d], locations[:, d]
            inside = np.isfinite(p) & (p >= origin) & (p < origin + length)
            if (i := _first(~inside)) is not None:
                raise self.fail(f"observation {i} at time {time[i]:.6g} has {name}={p[i]:.6g}, "
                                f"outside the domain [{origin:g}, {origin + length:g}) of {name}")

    def check_entries(self, time: np.ndarray) -> None:
        low, high = ERROR_STD_RANGE
        error_std = self.ds["error_std"].values.astype(np.float64)
        if (i := _first(~((error_std >= low) & (error_std <= high)))) is not None:
            raise self.fail(f"observation {i} at time {time[i]:.6g} has error_std "
                            f"{error_std[i]:g}; allowed: {low:g} to {high:g} (the field's "
                            "units)")
        value = np.atleast_2d(self.ds["value"].values.astype(np.float64))
        if (i := _first((np.abs(value) > MAX_VALUE).any(axis=0))) is not None:
            shown = value[:, i][np.abs(value[:, i]) > MAX_VALUE][0]
            raise self.fail(f"observation {i} at time {time[i]:.6g} has value {shown:g}; "
                            f"allowed: -{MAX_VALUE:g} to {MAX_VALUE:g} (the field's units; "
                            "NaN marks a missing value)")


def _first(bad: np.ndarray) -> int | None:
    """The first True position of ``bad (n_obs,)``, or None."""
    where = np.flatnonzero(bad)
    return int(where[0]) if len(where) else None


def interpolation_rows(locations: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Operator rows of point observations at ``locations (n_obs, ndim)``: (multi)linear
    interpolation between the ``2 ** ndim`` surrounding nodes of the periodic grid.

    Returns ``indices (n_obs, 2 ** ndim)`` (flat) and ``weights (n_obs, 2 ** ndim)``.
    """
    ndim = len(grid.space)
    origin = np.array([c[0] for c in grid.coordinates])
    spacing = np.array(grid.lengths) / np.array(grid.space)
    position = (locations - origin) / spacing  # (n_obs, ndim), in grid steps
    below = np.floor(position)
    fraction = position - below  # (n_obs, ndim) in [0, 1)
    corners = np.array(np.meshgrid(*[[0, 1]] * ndim, indexing="ij")).reshape(ndim, -1).T
    nodes = (below[:, None, :].astype(np.int64) + corners[None]) % np.array(grid.space)
    weights = np.where(corners[None], fraction[:, None, :], 1 - fraction[:, None, :]).prod(-1)
    indices = np.ravel_multi_index(tuple(np.moveaxis(nodes, -1, 0)), grid.space)
    return indices.astype(np.int64), weights


def model_grid(store: xr.Dataset) -> dict[str, Any]:
    """The grid keywords of :func:`load_observations` for a trajectory store's dataset:
    ``space``, ``coordinates``, ``time0``, ``interval`` and ``domain_lengths`` (uniform
    periodic grids: ``n * spacing`` per dim)."""
    from pde.io.store import field_variable

    field = store[field_variable(store)]
    dims = field.dims[2:]  # after (trajectory, time)
    coordinates = [np.asarray(store[d].values, dtype=np.float64) for d in dims]
    time = np.asarray(store["time"].values, dtype=np.float64)
    interval = float(store.attrs.get("interval", time[1] - time[0] if len(time) > 1 else 1.0))
    return {"space": tuple(field.shape[2:]), "coordinates": coordinates,
            "time0": float(time[0]), "interval": interval,
            "domain_lengths": tuple(len(c) * float(c[1] - c[0]) for c in coordinates)}


def open_observation_file(path: str | Path) -> xr.Dataset:
    """The dataset of the observation file ``path`` (NetCDF, or a Zarr store directory),
    in memory and unchecked: :meth:`Observations.from_dataset` checks it."""
    path = Path(path)
    if not path.exists():
        raise ObservationError(f"observation file '{path}' does not exist")
    if path.is_dir():
        from pde.io.store import open_store

        return open_store(path).load()
    if path.suffix.lower() not in NETCDF_SUFFIXES:
        raise ObservationError(f"observation file '{path}': expected NetCDF "
                               f"({', '.join(NETCDF_SUFFIXES)}) or a Zarr store directory")
    try:
        with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
            return ds.load()
    except (OSError, ValueError) as error:
        raise ObservationError(f"observation file '{path}' cannot be read as NetCDF: "
                               f"{error}") from None


def load_observations(path: str | Path, *, space: tuple[int, ...],
                      coordinates: list[np.ndarray], time0: float, interval: float,
                      domain_lengths: tuple[float, ...] | None = None,
                      calendar: Calendar | None = None) -> Observations:
    """Read and check the observations at ``path`` (NetCDF, or a Zarr store directory).

    The grid is ``space`` with ``coordinates`` (one 1-D array per dim, ``(y, x)`` in 2-D)
    on the domain ``[c0, c0 + L)`` per dim (``domain_lengths``; default: from the uniform
    coordinates); model times are ``time0 + k * interval``. :func:`model_grid` gives all
    of these for a trajectory store. ``calendar`` reads datetimes (:mod:`.times`); without
    one a file of datetimes is refused. Refuses a malformed file with one line naming it
    and the first offending entry (:class:`ObservationError`).
    """
    path = Path(path)
    return Observations.from_dataset(open_observation_file(path), space=space, coordinates=coordinates,
                                     time0=time0, interval=interval,
                                     domain_lengths=domain_lengths,
                                     source=f"observation file '{path}'", calendar=calendar)
