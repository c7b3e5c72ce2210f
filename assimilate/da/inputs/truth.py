"""The truth a run is scored against, read and checked before the run.

Accepted: a trajectory store (``assimilate simulate``), or a NetCDF file or Zarr store in
the style of the observation files: one variable (the config's field variable, e.g.
``u``, or the only one with these dims) with dims ``(time, *space)`` or ``(trajectory,
time, *space)``, and coordinates ``time`` and the grid's (``x``; ``y, x`` in 2-D)::

    u     (time, x)  or  (trajectory, time, x)
    time  model time (plain numbers), or datetimes read with the run's calendar
    x     the config's grid points

Checked: the grid (sizes and coordinates), the physics where the file records them (a
store, its NetCDF export), the trajectories the observations are of, and the **time
axis**: the run's states are at model times ``t0 + k·Δt``, ``k = 0..n_steps`` (Δt: the
config's interval), and each must be one of the truth's times. A truth stored more often
(every 0.5 under Δt = 1.0) gives the states at those times; one stored less often, or
too short, is refused naming its time step and the config's interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.config import ExperimentConfig
from assimilate.da.grid import Grid
from assimilate.da.inputs.fields import check_grid, grid_of, stored_simulator
from assimilate.da.inputs.physics import check_physics
from assimilate.observe.files import NETCDF_SUFFIXES
from assimilate.observe.times import Calendar, model_times
from pde.io.errors import ConfigError

__all__ = ["load_truth", "matching_steps"]

TOLERANCE = 1e-6  # of an interval: how far a truth time may be off a model time


def load_truth(path: str | Path, config: ExperimentConfig, *, trajectories: np.ndarray,
               n_steps: int, calendar: Calendar | None = None,
               grid: Grid | None = None) -> np.ndarray:
    """The true states ``(trajectory, n_steps + 1, *space)`` of the run's steps, for the
    observed ``trajectories`` (their labels), from the file at ``path`` (module doc);
    ``grid``: the config's, when the caller holds it."""
    path = Path(path)
    grid = grid_of(config) if grid is None else grid
    ds, source = _open(path)
    if (physics := stored_simulator(ds)) is not None:
        check_physics(physics, config, source)
    field = _field(ds, grid, source)
    check_grid(ds, grid, source, required=True)
    if "time" not in ds.variables:
        raise ConfigError(f"{source} has no coordinate 'time' (model time, or datetimes "
                          "with a calendar)")
    interval = grid.interval
    times = model_times(ds["time"], interval=interval, calendar=calendar, source=source,
                        item="state")
    steps = matching_steps(times, n_steps, interval, source)
    rows = _rows(field, np.asarray(trajectories), source)
    return np.asarray(field.isel(trajectory=rows, time=steps).values)


def _open(path: Path) -> tuple[xr.Dataset, str]:
    """``(dataset, how errors name it)``; a trajectory store is opened with its checks."""
    from pde.io.store import SCHEMA, open_store, open_trajectories

    if not path.exists():
        raise ConfigError(f"truth file '{path}' does not exist")
    if path.is_dir():
        ds = open_store(path)
        if ds.attrs.get("schema") == SCHEMA:
            return open_trajectories(path), f"truth store '{path}'"
        return ds, f"truth store '{path}'"
    if path.suffix.lower() not in NETCDF_SUFFIXES:
        raise ConfigError(f"truth file '{path}': expected a trajectory store, a Zarr store "
                          f"or NetCDF ({', '.join(NETCDF_SUFFIXES)})")
    try:
        return xr.open_dataset(path, engine="netcdf4", decode_times=False), \
            f"truth file '{path}'"
    except (OSError, ValueError) as error:
        raise ConfigError(f"truth file '{path}' cannot be read as NetCDF: {error}") from None


def _field(ds: xr.Dataset, grid: Grid, source: str) -> xr.DataArray:
    """The truth variable with dims ``(trajectory, time, *space)``."""
    space = grid.dims
    allowed = [("time", *space), ("trajectory", "time", *space)]
    variable = grid.variable
    if variable not in ds.data_vars:
        found = [name for name in ds.data_vars if ds[name].dims in allowed]
        if len(found) != 1:
            raise ConfigError(f"{source} has {'no' if not found else len(found)} variables "
                              f"with dims {' or '.join(map(str, allowed))} and no "
                              f"'{variable}'; give one")
        variable = found[0]
    field = ds[variable]
    if field.dims not in allowed:
        raise ConfigError(f"{source}: variable '{variable}' has dims {field.dims}; allowed: "
                          f"{' or '.join(map(str, allowed))}")
    return field if "trajectory" in field.dims else field.expand_dims("trajectory")


def matching_steps(times: np.ndarray, n_steps: int, interval: float, source: str,
                   time0: float = 0.0) -> np.ndarray:
    """Positions ``(n_steps + 1,)`` in ``times`` of the model times ``time0 + k·interval``,
    ``k = 0..n_steps``; refused, naming ``source``, where one is missing."""
    position = (np.asarray(times, dtype=np.float64) - time0) / interval
    on_axis = np.isfinite(position) & (np.abs(position - np.rint(position)) <= TOLERANCE)
    steps = np.rint(np.where(on_axis, position, -1)).astype(np.int64)
    found = np.full(n_steps + 1, -1, dtype=np.int64)
    for index in np.flatnonzero(on_axis & (steps >= 0) & (steps <= n_steps))[::-1]:
        found[steps[index]] = index  # the first state at a step wins
    if (missing := np.flatnonzero(found < 0)).size:
        raise ConfigError(_missing(times, int(missing[0]), n_steps, interval, time0, source))
    return found


def _missing(times: np.ndarray, step: int, n_steps: int, interval: float, time0: float,
             source: str) -> str:
    """Why the truth lacks the run's state at ``step``, in one line."""
    times = np.asarray(times, dtype=np.float64)
    gaps = np.diff(np.unique(times))
    spacing = f"{np.median(gaps):g} apart" if gaps.size else "one state"
    held = (f"{len(times)} states, {spacing}, from time {times.min():g} to {times.max():g}"
            if times.size else "no states")
    return (f"{source} has no state at model time {time0 + step * interval:g} (step {step} "
            f"of the {n_steps}-step run): it holds {held}; the run's states are at "
            f"{time0:g} + k x {interval:g} (the config's interval), k = 0..{n_steps}, and "
            "each must be one of the truth's times")


def _rows(field: xr.DataArray, labels: np.ndarray, source: str) -> list[int]:
    """Positions along ``trajectory`` of the observed trajectories ``labels``."""
    n = field.sizes["trajectory"]
    if "trajectory" not in field.coords:
        if n == 1 and len(labels) == 1:
            return [0]  # one truth trajectory for the one observed
        stored = np.arange(n)
    else:
        stored = np.asarray(field["trajectory"].values)
    rows = [int(np.flatnonzero(stored == label)[0]) if (stored == label).any() else -1
            for label in labels]
    if -1 in rows:
        absent = labels[rows.index(-1)]
        raise ConfigError(f"{source} holds trajectories {_span(stored)}; the observations "
                          f"are of trajectories {_span(labels)}, {absent} missing")
    return rows


def _span(values: np.ndarray) -> str:
    values = [int(v) for v in values]
    return ", ".join(map(str, values)) if len(values) <= 6 else \
        f"{values[0]}..{values[-1]} ({len(values)})"
