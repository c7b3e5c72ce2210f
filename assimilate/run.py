"""``assimilate run``: one DA method over a file of observations, written as an analysis.

    run(config, method="letkf", settings={"radius": "3"}, observations="obs.zarr",
        out="analysis.zarr", truth="truth.zarr")

The grid and time step come from the config's simulator, so any domain length and grid
the simulator accepts work; the observations (synthesised by ``assimilate observe`` or a
user's own NetCDF/Zarr file) are checked against them. The first background is a state
or an ensemble from a file, or members drawn from a climatology (a store, or simulated
afresh): the hard, honest start. With ``truth`` the scores of :func:`assimilate.da.score`
are computed against the matching trajectories and stamped on the analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.config import ExperimentConfig, load_config
from pde.errors import ConfigError
from pde.output import claim
from pde.store import field_variable, open_trajectories, write_zarr

__all__ = ["check_forecaster", "config_grid", "load_background", "run"]


def config_grid(config: ExperimentConfig) -> dict:
    """The model grid of ``config``'s simulator, as :func:`load_observations` takes it."""
    simulator = config.simulator.build()
    coordinates = [values for _, values, _ in simulator.coordinates()]
    return {"space": tuple(len(c) for c in coordinates), "coordinates": coordinates,
            "time0": 0.0, "interval": float(simulator.interval)}


def load_background(path: str | Path, variable: str, space: tuple[int, ...]) -> np.ndarray:
    """A first background from a NetCDF file or Zarr store: ``variable`` with dims
    ``(*space)``, ``(member, *space)`` or ``(trajectory, member, *space)``; a trajectory
    store gives its first stored state of every trajectory, one member each."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"background file '{path}' does not exist")
    ds = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path, engine="netcdf4")
    if variable not in ds:
        raise ConfigError(f"background file '{path}' has no variable '{variable}' "
                          f"(it has {', '.join(map(str, ds.data_vars)) or 'none'})")
    field = ds[variable]
    if "time" in field.dims:
        field = field.isel(time=0)
        if "trajectory" in field.dims and "member" not in field.dims:
            field = field.expand_dims("member", axis=1)
    values = np.asarray(field.values, dtype=np.float32)
    if values.shape[-len(space):] != space:
        raise ConfigError(f"background file '{path}': '{variable}' has shape "
                          f"{values.shape}; its last dims must be the grid {space}")
    if not np.isfinite(values).all():
        raise ConfigError(f"background file '{path}': '{variable}' holds non-finite values")
    return values


def _truth(path: str | Path, trajectories: np.ndarray, n_steps: int) -> np.ndarray:
    """``(trajectory, n_steps + 1, *space)`` from the truth store, the observed trajectories."""
    ds = open_trajectories(path)
    field = ds[field_variable(ds)]
    if field.sizes["time"] <= n_steps or int(np.max(trajectories)) >= field.sizes["trajectory"]:
        raise ConfigError(f"truth store '{path}' holds {field.sizes['trajectory']} "
                          f"trajectories x {field.sizes['time']} states; the run needs "
                          f"trajectories {trajectories.tolist()} and {n_steps + 1} states")
    return field.isel(trajectory=trajectories.tolist(), time=slice(0, n_steps + 1)).values


def run(config: str | Path | ExperimentConfig, *, method: str, observations: str | Path,
        out: str | Path, settings: dict[str, str] | None = None, n_members: int = 16,
        forecaster: str | Path | None = None, background: str | Path | None = None,
        climatology: str | Path | None = None, truth: str | Path | None = None,
        n_steps: int | None = None, spin_up: int | None = None, seed: int = 0, overwrite: bool = False,
        progress: bool = True) -> tuple[xr.Dataset, dict[str, float]]:
    """Run ``method`` and write the analysis to ``out``; ``(analysis, scores)``."""
    from assimilate.climatology import Climatology
    from assimilate.da import assimilate, score
    from assimilate.forecast import load_forecaster
    from assimilate.methods import build_method
    from assimilate.observe import load_observations

    config = config if isinstance(config, ExperimentConfig) else load_config(config)
    chosen = build_method(method, settings)  # a bad setting fails before any work
    inputs = [p for p in (observations, forecaster, background, climatology, truth) if p]
    with claim(out, kind="directory", inputs=inputs, overwrite=overwrite) as output:
        grid = config_grid(config)
        observed = load_observations(observations, **grid)
        learned = None if forecaster is None else load_forecaster(forecaster)
        if learned is not None:
            check_forecaster(learned, config, forecaster)
        variable = config.simulator.build().variable
        initial = None if background is None else load_background(background, variable,
                                                                  grid["space"])
        clim = None if climatology is None else Climatology.from_store(climatology, seed=seed)
        analysis = assimilate(chosen, observed, initial=initial, config=config,
                              forecaster=learned, climatology=clim, n_members=n_members,
                              n_steps=n_steps, seed=seed, progress=progress)
        scores: dict[str, float] = {}
        if truth is not None:
            n_steps = analysis.sizes["time"] - 1
            reference = _truth(truth, analysis["trajectory"].values, n_steps)
            spin_up = n_steps // 4 if spin_up is None else spin_up
            scores = score(analysis, reference, spin_up=spin_up)
            analysis.attrs.update(scores=json.dumps(scores), truth=str(Path(truth).resolve()),
                                  spin_up=spin_up)
        write_zarr(analysis, output)
    return analysis, scores


def check_forecaster(forecaster, config: ExperimentConfig, path: str | Path) -> None:
    """Refuse a forecaster trained on other physics than ``config``'s, naming ``path``."""
    from pde.config import physics_difference

    difference = physics_difference(forecaster.simulator, config.simulator.model_dump())
    if difference:
        raise ConfigError(f"forecaster '{path}' was trained on other physics than the "
                          f"config: {difference}")
