"""Tuning on validation trajectories only (never test ones): each method's main
hyper-parameter (the :attr:`~assimilate.da.contract.Method.tuning` its class declares) over
its small grid, jointly with a second one where it declares one (the LETKF: radius and
inflation), scored by the analysis nRMSE over half the short horizon; a value the user
set with ``name:key=value`` is kept as given."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.evaluation.harness.cells import Cell, Workspace, checkpoint_hashes, run_cells
from assimilate.evaluation.harness.specs import MethodSpec

__all__ = ["candidates", "tune"]

Settings = tuple[tuple[str, str], ...]


def candidates(spec: MethodSpec, spacing: float) -> list[Settings]:
    """The settings to try on validation: one per combination of the tuned
    hyper-parameters' values, those the user fixed kept as given; ``spacing``: the grid's
    (radii tuned in grid spacings)."""
    from assimilate.da.methods import method_class

    tuning = method_class(spec.name).tuning
    fixed = {key for key, value in spec.settings if value}
    grid = [] if tuning is None else tuning.grid(spacing, fixed)
    if not any(grid):  # nothing to tune, or the user fixed every tuned setting
        return [spec.settings]
    return [(*spec.settings, *((key, f"{value:g}") for key, value in values.items()))
            for values in grid]


def tune(workspace: Workspace, specs: Sequence[MethodSpec], regimes: Sequence[str],
         template: Cell, spacing: float, client,
         progress: bool) -> dict[tuple[str, str], Settings]:
    """The chosen settings of each (method label, regime), by validation nRMSE;
    ``template``: a validation cell whose sizes and seed every tried cell shares."""
    cells = {(spec.label, regime): [
        Cell(spec.name, settings, regime, "validation", template.n_steps, template.n_members,
             template.seed, checkpoint_hashes(spec, workspace.forecaster))
        for settings in candidates(spec, spacing)] for spec in specs for regime in regimes}
    tried = [cell for group in cells.values() if len(group) > 1 for cell in group]
    run_cells(workspace, tried, client, progress, "tune on validation")
    chosen = {}
    for label, group in cells.items():
        if len(group) == 1:
            chosen[label] = group[0].settings
            continue
        errors = [_validation_error(workspace.cell(cell)) for cell in group]
        chosen[label] = group[int(np.nanargmin(errors))].settings
    return chosen


def _validation_error(path: Path) -> float:
    with xr.open_dataset(path) as ds:
        error = float(ds["nrmse_short"].mean())
        return error if np.isfinite(error) and float(ds["stable"].min()) == 1 else np.inf
