"""``assimilate run``: one DA method over a file of observations, written as an analysis.

    run(config, RunInputs(method="letkf", settings={"radius": "3"},
                          observations="obs.zarr", truth="truth.zarr"), out="analysis.zarr")

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
from assimilate.da.inputs import RunInputs, check_run_inputs
from pde.io.output import claim
from pde.io.store import write_zarr

__all__ = ["RunInputs", "run"]


def run(config: str | Path | ExperimentConfig, inputs: RunInputs, *, out: str | Path,
        overwrite: bool = False, progress: bool = True) -> tuple[xr.Dataset, dict[str, float]]:
    """Run ``inputs.method`` and write the analysis to ``out``; ``(analysis, scores)``."""
    from assimilate.da.contract import assimilate, score
    from assimilate.da.methods import build_method, with_controller

    config = config if isinstance(config, ExperimentConfig) else load_config(config)
    settings = with_controller(inputs.method, inputs.settings, inputs.controller)
    chosen = build_method(inputs.method, settings)  # a bad setting fails before any work
    with claim(out, kind="directory", inputs=inputs.files, overwrite=overwrite) as output:
        checked = check_run_inputs(config, chosen, inputs)
        start, seed = checked.start, inputs.seed
        clim = start.climatology
        if clim is None and checked.truth is not None:
            clim = Climatology.of_states(checked.truth,
                                         f"truth '{Path(inputs.truth).resolve()}'", seed=seed)
        observations = checked.observations.on_calendar(inputs.calendar)
        analysis = assimilate(chosen, observations, initial=start.background,
                              config=config, forecaster=start.forecaster,
                              climatology=clim, n_members=inputs.n_members,
                              n_steps=checked.n_steps, seed=seed, progress=progress)
        if inputs.calendar is not None:
            analysis.attrs["calendar"] = str(inputs.calendar)
        scores: dict[str, float] = {}
        spin_up = checked.n_steps // 4 if inputs.spin_up is None else inputs.spin_up
        if checked.truth is not None:
            scores = score(analysis, checked.truth, spin_up=spin_up)
            analysis.attrs.update(truth=str(Path(inputs.truth).resolve()))
        if checked.verify is not None:
            from assimilate.da.withheld import withheld_scores

            scores |= withheld_scores(analysis, checked.verify, spin_up=spin_up,
                                      source=f"withheld observations '{inputs.verify}'")
            analysis.attrs.update(verified_against=str(Path(inputs.verify).resolve()))
        if scores:
            analysis.attrs.update(scores=json.dumps(scores), spin_up=spin_up)
        write_zarr(analysis, output)
    return analysis, scores
