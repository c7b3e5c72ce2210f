"""Fields a run starts from: the grid, the first background and the climatology.

A field from a file must lie on the config's grid (sizes, and coordinates within
``GRID_TOLERANCE`` of a grid spacing where the file has them) and, where the file records
the simulator it came from (a trajectory store, its NetCDF export), follow the config's
physics. A first background given to an ensemble filter must have spread: a single state
copied to every member makes the Kalman gain zero, and the analysis would be the forecast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from assimilate.config import ExperimentConfig
from assimilate.da.grid import Grid
from assimilate.da.inputs.physics import check_physics
from pde.io.errors import ConfigError

__all__ = ["GRID_TOLERANCE", "check_grid", "check_spread", "config_grid", "grid_of",
           "load_background",
           "load_climatology", "stored_simulator"]

GRID_TOLERANCE = 1e-4  # of a grid spacing


def grid_of(config: ExperimentConfig) -> Grid:
    """The model grid of ``config``'s simulator section (:class:`assimilate.da.grid.Grid`)."""
    return Grid.of_config(config.simulator)


def config_grid(config: ExperimentConfig) -> dict[str, Any]:
    """The model grid of ``config``'s simulator, as :func:`load_observations` takes it:
    ``space``, ``coordinates`` (one array per dim, grid order), ``time0`` and ``interval``."""
    return grid_of(config).observation_grid()


def stored_simulator(ds: xr.Dataset) -> dict[str, Any] | None:
    """The simulator section a dataset records in its ``config`` attribute (a trajectory
    store, its NetCDF export, an analysis), or None."""
    try:
        section = json.loads(ds.attrs["config"])["simulator"]
    except (KeyError, TypeError, ValueError):
        return None
    return section if isinstance(section, dict) else None


def check_grid(ds: xr.Dataset, grid: Grid, source: str, *, required: bool) -> None:
    """Refuse coordinates of ``ds`` that are not the config's ``grid``; a missing
    coordinate is refused only if ``required``."""
    for name, expected in grid.named.items():
        if name not in ds.variables:
            if required:
                raise ConfigError(f"{source} has no coordinate '{name}'; it needs the grid's "
                                  f"coordinates ({', '.join(grid.dims)}) and 'time'")
            continue
        found = np.asarray(ds[name].values, dtype=np.float64).ravel()
        spacing = float(expected[1] - expected[0])
        if found.shape != expected.shape or not np.allclose(
                found, expected, rtol=0, atol=GRID_TOLERANCE * spacing):
            shown = f"{len(found)} points" + (f", {found[0]:g} to {found[-1]:g}"
                                               if len(found) else "")
            raise ConfigError(f"{source}: coordinate '{name}' ({shown}) is not the config's "
                              f"grid ({len(expected)} points, {expected[0]:g} to "
                              f"{expected[-1]:g}, spacing {spacing:g})")


def load_background(path: str | Path, config: ExperimentConfig, grid: Grid) -> np.ndarray:
    """A first background from a NetCDF file or Zarr store: the field variable with dims
    ``(*space)``, ``(member, *space)`` or ``(trajectory, member, *space)``; a trajectory
    store gives its first stored state of every trajectory, one member each. Its
    coordinates (where present) and recorded physics are checked against ``config``'s."""
    variable, space = grid.variable, grid.space
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"background file '{path}' does not exist")
    from pde.io.store import open_store

    ds = open_store(path) if path.is_dir() else xr.open_dataset(path, engine="netcdf4")
    source = f"background file '{path}'"
    if variable not in ds:
        raise ConfigError(f"{source} has no variable '{variable}' "
                          f"(it has {', '.join(map(str, ds.data_vars)) or 'none'})")
    if (physics := stored_simulator(ds)) is not None:
        check_physics(physics, config, source)
    check_grid(ds, grid, source, required=False)
    field = ds[variable]
    if "time" in field.dims:
        field = field.isel(time=0)
        if "trajectory" in field.dims and "member" not in field.dims:
            field = field.expand_dims("member", axis=1)
    values = np.asarray(field.values, dtype=np.float32)
    if values.shape[-len(space):] != space:
        raise ConfigError(f"{source}: '{variable}' has shape {values.shape}; its last dims "
                          f"must be the grid {space}")
    if not np.isfinite(values).all():
        raise ConfigError(f"{source}: '{variable}' holds non-finite values")
    return values


def check_spread(background: np.ndarray | None, space: tuple[int, ...], method,
                 n_members: int, source: str) -> None:
    """Refuse what would give an ensemble filter (EnKF, ETKF, LETKF: their analysis weighs
    the observations by the ensemble's spread) an ensemble without spread: fewer than 2
    members, or a first ``background`` whose members are all one state (a single state is
    copied to every member). ``source`` names the background (file and option)."""
    from assimilate.da.methods.filtering import EnsembleFilter

    if not isinstance(method, EnsembleFilter):
        return
    if n_members < 2:
        raise ConfigError(f"method '{method.name}' is an ensemble filter and needs at least "
                          f"2 members, got {n_members}")
    if background is None:
        return
    members = background.reshape(-1, *background.shape[-len(space) - 1:]) \
        if background.ndim > len(space) else background[None, None]
    same = np.all(members == members[:, :1], axis=tuple(range(1, members.ndim)))
    if same.any():
        where = f" (trajectory {int(np.flatnonzero(same)[0])})" if len(members) > 1 else ""
        one = "holds one state" if members.shape[1] == 1 else "holds identical members"
        raise ConfigError(f"{source} {one}{where}: every member would start the same, zero "
                          f"spread, and method '{method.name}' (an ensemble filter) would "
                          "leave the forecast unchanged; give an ensemble of distinct states "
                          "(member, *space), or no background to draw the members from the "
                          "climatology")


def load_climatology(path: str | Path, config: ExperimentConfig, grid: Grid, *, seed: int):
    """The climatology of the trajectory store ``path`` (:class:`Climatology`), whose
    physics and grid must be the config's."""
    from assimilate.da.climatology import Climatology
    from pde.io.store import field_variable, open_trajectories, simulator_section

    source = f"climatology store '{path}'"
    ds = open_trajectories(path)
    check_physics(simulator_section(ds), config, source)
    check_grid(ds, grid, source, required=True)
    return Climatology.of_states(ds[field_variable(ds)].values, str(Path(path).resolve()),
                                 seed=seed)
