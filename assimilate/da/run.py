"""``assimilate run``: one DA method over a file of observations, written as an analysis.

    run(config, method="letkf", settings={"radius": "3"}, observations="obs.zarr",
        out="analysis.zarr", truth="truth.zarr")

The grid and time step come from the config's simulator, so any domain length and grid
the simulator accepts work. Every input (the observations, synthesised by ``assimilate
observe`` or a user's own NetCDF/Zarr file; the checkpoints; the first background; the
climatology; the truth) is checked against them before any work
(:mod:`assimilate.da.inputs`). The first background is a state or an ensemble from a file,
or members drawn from a climatology: the hard, honest start. The climatology (those draws,
OI's covariance, the normalising std of the scores) is the ``climatology`` store, else the
truth's states when a truth is given, else simulated afresh. With ``truth`` (a trajectory store, or a NetCDF/Zarr file of states on the model's
time axis) the scores of :func:`assimilate.da.contract.score` are computed against the observed
trajectories and stamped on the analysis. ``calendar`` reads datetimes in the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from assimilate.config import ExperimentConfig, load_config
from assimilate.da.climatology import Climatology
from assimilate.da.inputs import (
    Calendar,
    check_forecaster,
    check_run_inputs,
    config_grid,
    load_background,
)
from pde.io.output import claim
from pde.io.store import write_zarr

__all__ = ["check_forecaster", "config_grid", "load_background", "run"]


def run(config: str | Path | ExperimentConfig, *, method: str, observations: str | Path,
        out: str | Path, settings: dict[str, str] | None = None, n_members: int = 16,
        forecaster: str | Path | None = None, background: str | Path | None = None,
        climatology: str | Path | None = None, truth: str | Path | None = None,
        n_steps: int | None = None, spin_up: int | None = None, seed: int = 0,
        calendar: str | Calendar | None = None, overwrite: bool = False,
        progress: bool = True) -> tuple[xr.Dataset, dict[str, float]]:
    """Run ``method`` and write the analysis to ``out``; ``(analysis, scores)``.

    ``calendar``: ``"ORIGIN,STEP"`` (:class:`assimilate.observe.times.Calendar`), the
    datetime of model time 0 and the length of one model step, to read datetimes.
    """
    from assimilate.da.contract import assimilate, score
    from assimilate.da.methods import build_method

    config = config if isinstance(config, ExperimentConfig) else load_config(config)
    chosen = build_method(method, settings)  # a bad setting fails before any work
    if isinstance(calendar, str):
        calendar = Calendar.parse(calendar)
    inputs = [p for p in (observations, forecaster, background, climatology, truth) if p]
    with claim(out, kind="directory", inputs=inputs, overwrite=overwrite) as output:
        checked = check_run_inputs(config, chosen, observations=observations,
                                   n_members=n_members, n_steps=n_steps,
                                   forecaster=forecaster, background=background,
                                   climatology=climatology, truth=truth, calendar=calendar,
                                   seed=seed)
        start = checked.start
        clim = start.climatology
        if clim is None and checked.truth is not None:
            clim = Climatology.of_states(checked.truth, f"truth '{Path(truth).resolve()}'",
                                         seed=seed)
        analysis = assimilate(chosen, checked.observations, initial=start.background,
                              config=config, forecaster=start.forecaster,
                              climatology=clim, n_members=n_members,
                              n_steps=checked.n_steps, seed=seed, progress=progress)
        if calendar is not None:
            analysis.attrs["calendar"] = str(calendar)
        scores: dict[str, float] = {}
        if checked.truth is not None:
            spin_up = checked.n_steps // 4 if spin_up is None else spin_up
            scores = score(analysis, checked.truth, spin_up=spin_up)
            analysis.attrs.update(scores=json.dumps(scores), truth=str(Path(truth).resolve()),
                                  spin_up=spin_up)
        write_zarr(analysis, output)
    return analysis, scores
