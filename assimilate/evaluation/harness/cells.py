"""The harness's cells: one run each (a method with all its settings, a regime, a split of
the truth), saved atomically in the workspace ``OUT.work/`` as soon as it finishes, so a
killed run resumes without redoing it."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.config import ExperimentConfig
from assimilate.evaluation.defaults import evaluation_defaults
from assimilate.evaluation.harness.specs import MethodSpec
from pde.descriptor import descriptor
from pde.io.errors import ConfigError, OutputError
from pde.io.output import claim
from pde.io.progress import tqdm

__all__ = ["Cell", "ImportedSources", "Workspace", "checkpoint_hashes", "prepare_workspace", "run_cell",
           "run_cells"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run: a method with all its settings, a regime, a split of the truth."""

    method: str
    settings: tuple[tuple[str, str], ...]
    regime: str
    split: str  # "validation" or "test"
    n_steps: int
    n_members: int
    seed: int
    models: str = ""
    """Content hashes of the trained models the cell runs (forecaster, controller): a
    retrained checkpoint at the same path is another cell."""

    @property
    def key(self) -> str:
        """A hash of the cell with its method's settings resolved, defaults included, so a
        changed default is another cell."""
        fields = dataclasses.asdict(self)
        if not fields["models"]:  # a cell of the true simulator alone
            del fields["models"]
        resolved = dataclasses.asdict(self.build())
        fields["settings"] = sorted((name, str(value)) for name, value in resolved.items())
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def build(self):
        """The cell's method value."""
        return MethodSpec(self.method, self.settings).build()


@dataclasses.dataclass(frozen=True)
class Workspace:
    """``OUT.work/``: truth stores, observations, climatology and finished cells."""

    root: Path
    config_json: str
    forecaster: str | None

    def store(self, split: str) -> Path:
        return self.root / f"{split}.zarr"

    def observations(self, split: str, regime: str) -> Path:
        return self.root / f"obs-{split}-{regime}.zarr"

    def withheld(self, split: str, regime: str) -> Path:
        """Observations of the regime's withheld stations (regimes with ``withheld: N``)."""
        return self.root / f"obs-{split}-{regime}-withheld.zarr"

    def cell(self, cell: Cell) -> Path:
        return self.root / "cells" / f"{cell.key}.nc"

    def shared_analysis(self, cell: Cell) -> Path:
        """The analysis of a method that ignores observations: one for every regime."""
        return self.root / "analyses" / f"{dataclasses.replace(cell, regime='*').key}.nc"


def prepare_workspace(workspace: Workspace, config: ExperimentConfig, regimes: Sequence[str],
                      sizes: dict[str, tuple[int, int]], progress: bool,
                      sources: ImportedSources | None = None) -> None:
    """Simulate the truth and climatology stores (imported data: cut them from the user's
    ``sources``) and synthesise observations, once; ``sizes``: ``{split: (trajectories,
    steps)}`` of ``test``, ``validation``."""
    from assimilate.observe import load_regime, observe
    from pde.generate import simulate

    training_seed = config.dataset.seed
    seeds = {"test": training_seed + 1, "validation": training_seed + 2,
             "climatology": training_seed + 3}
    for split, (trajectories, steps) in {**sizes, "climatology": (8, 200)}.items():
        path = workspace.store(split)
        if path.exists() and _complete(path):
            continue
        if sources is None:
            simulate(config, path, trajectories=trajectories, steps=steps, seed=seeds[split],
                     overwrite=path.exists(), progress=progress)
        else:
            sources.cut(split, trajectories, steps, path)
    for split in ("test", "validation"):
        for name in regimes:
            path = workspace.observations(split, name)
            if not path.exists():
                observe(workspace.store(split), name, path, seed=seeds[split],
                        progress=False)
            regime = load_regime(name, config.simulator.pde)
            path = workspace.withheld(split, name)
            if regime.verified and not path.exists():
                observe(workspace.store(split), regime.observing_withheld(), path,
                        seed=seeds[split], progress=False)


@dataclasses.dataclass(frozen=True)
class ImportedSources:
    """Imported data have no simulator: the harness cuts its stores from the user's, the
    test trajectories from the first of ``truth`` (held out from training), the validation
    ones from the last ``n_validation`` of ``climatology`` (the training store, whose last
    trajectories validated the forecaster), the climatology from its others."""

    truth: Path
    climatology: Path
    n_validation: int

    def cut(self, split: str, trajectories: int, steps: int, out: Path) -> None:
        from pde.io.store import open_trajectories, write_zarr

        source = self.truth if split == "test" else self.climatology
        ds = open_trajectories(source)
        n_traj, n_time = ds.sizes["trajectory"], ds.sizes["time"]
        if split == "climatology":
            ds = ds.isel(trajectory=slice(0, max(1, n_traj - self.n_validation)))
        else:
            if n_time < steps:
                raise ConfigError(f"{split} store '{source}' holds {n_time} states; the "
                                  f"evaluation needs {steps} (fewer --steps, or longer "
                                  "segments)")
            chosen = slice(0, trajectories) if split == "test" else \
                slice(max(0, n_traj - trajectories), n_traj)
            ds = ds.isel(trajectory=chosen, time=slice(0, steps))
        for name in ds.variables:
            ds[name].encoding = {}
        write_zarr(ds, out, overwrite=out.exists())


def _complete(path: Path) -> bool:
    from pde.io.errors import StoreError
    from pde.io.store import read_completion

    try:
        return bool(np.all(read_completion(path)))
    except (StoreError, OSError, KeyError, ValueError):  # half-created: simulate it again
        return False


def run_cell(workspace: Workspace, cell: Cell) -> Path:
    """Run one cell and save its scores in the workspace; its path. Idempotent.

    Its reads of the stores compute in this thread: inside a Dask worker, a lazy read would
    otherwise be submitted to the cluster and wait for a free worker thread, while every
    thread runs (or waits in) a cell of its own.
    """
    import dask

    with dask.config.set(scheduler="synchronous"):
        return _run_cell(workspace, cell)


def _analysis(workspace: Workspace, cell: Cell, method, observations, climatology,
              config: ExperimentConfig) -> xr.Dataset:
    """The cell's analysis; a method that ignores the observations runs once for every
    regime; a diverged run is kept (NaN from there on) and scored unstable."""
    from assimilate.da.contract import Diverged, assimilate

    shared = None if method.uses_observations else workspace.shared_analysis(cell)
    if shared is not None and shared.exists():
        return xr.load_dataset(shared)
    forecaster = _forecaster(workspace.forecaster) if "forecaster" in method.needs else None
    try:
        analysis = assimilate(method, observations, initial=None, config=config,
                              forecaster=forecaster, climatology=climatology,
                              n_members=cell.n_members, n_steps=cell.n_steps,
                              seed=cell.seed, progress=False)
    except Diverged as diverged:
        analysis = diverged.analysis
    if shared is not None:
        try:
            with claim(shared, kind="file", overwrite=True) as output, \
                    output.atomic() as scratch:
                analysis.to_netcdf(scratch)
        except OutputError:  # another worker is saving the same analysis
            pass
    return analysis


def _run_cell(workspace: Workspace, cell: Cell) -> Path:
    from assimilate.diagnostics.tails import analysis_tail_scores
    from assimilate.evaluation.scores import analysis_scores
    from assimilate.observe import load_observations, model_grid
    from pde.io.store import field_variable, open_trajectories

    path = workspace.cell(cell)
    if path.exists():
        return path
    _one_thread_in_a_worker()
    config = ExperimentConfig.model_validate_json(workspace.config_json)
    truth_ds = open_trajectories(workspace.store(cell.split))
    observations = load_observations(workspace.observations(cell.split, cell.regime),
                                     **model_grid(truth_ds))
    climatology = _climatology(str(workspace.store("climatology")))
    analysis = _analysis(workspace, cell, cell.build(), observations, climatology, config)
    variable = field_variable(truth_ds)
    truth = truth_ds[variable].isel(time=slice(0, cell.n_steps + 1)).values
    found = descriptor(config.simulator.pde)
    assimilation = evaluation_defaults(config.simulator.pde).assimilation
    horizons, series_name = assimilation.horizons, assimilation.series
    attrs = dict(truth_ds.attrs)
    observed = np.zeros(observations.space, dtype=bool)
    rows = observations.dataset["indices"].values
    weights = observations.dataset["weights"].values
    observed.flat[np.unique(rows[weights != 0])] = True
    spin_up = min(horizons[0], cell.n_steps // 4)
    scores = analysis_scores(
        analysis[variable].values, truth, std=climatology.std, mean=climatology.mean,
        observed_points=observed, horizons=horizons, spin_up=spin_up,
        series=lambda field: found.series(field, attrs)[series_name])
    scores = scores.assign(analysis_tail_scores(analysis[variable].values, truth, spin_up))
    withheld = workspace.withheld(cell.split, cell.regime)
    if withheld.exists():  # stations never assimilated: observation minus analysis
        from assimilate.da.withheld import withheld_scores

        found = withheld_scores(analysis, load_observations(withheld, **model_grid(truth_ds)),
                                spin_up=spin_up, source=f"withheld observations '{withheld}'")
        scores["withheld_rmse"] = ((), found["withheld_rmse.a"])
        scores["withheld_rmse_background"] = ((), found["withheld_rmse.f"])
    scores.attrs = {**{k: analysis.attrs[k] for k in ("method", "parameters", "model", "nfe",
                                                      "nfe_per_step", "wall_time_s",
                                                      "seconds_per_step")},
                    "cell": json.dumps(dataclasses.asdict(cell)), "series": series_name}
    with claim(path, kind="file") as output, output.atomic() as scratch:
        scores.to_netcdf(scratch)
    return path


@functools.lru_cache(maxsize=4)
def _climatology(path: str):
    """Read once per process: every cell of a run shares the workspace's climatology."""
    from assimilate.da.climatology import Climatology

    return Climatology.from_store(path)


@functools.lru_cache(maxsize=2)
def _forecaster(path: str):
    """Loaded once per process (a worker runs many cells; rollouts leave it unchanged)."""
    from assimilate.models.forecaster import load_forecaster

    return load_forecaster(path)


def _one_thread_in_a_worker() -> None:
    """A Dask worker here is a single-threaded process: torch's default of one thread per
    core would make the workers fight over the cores (tens of times slower, measured)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    import torch

    torch.set_num_threads(1)


def run_cells(workspace: Workspace, cells: list[Cell], client, progress: bool,
              what: str) -> None:
    """Run the cells not finished yet, the cheap ones first (results accumulate while the
    rest runs), in this process or on the Dask ``client``."""
    todo = [cell for cell in cells if not workspace.cell(cell).exists()]
    todo.sort(key=lambda cell: cell.build().rank)
    if not todo:
        return
    with tqdm(total=len(todo), disable=not progress, unit="cell", desc=what) as bar:
        if client is None:
            for cell in todo:
                run_cell(workspace, cell)
                bar.update(1)
            return
        from distributed import as_completed

        futures = [client.submit(run_cell, workspace, cell, pure=False) for cell in todo]
        for future in as_completed(futures):
            future.result()
            bar.update(1)


def checkpoint_hashes(spec: MethodSpec, forecaster: str | None) -> str:
    """The content hashes of the checkpoints a method runs (see :attr:`Cell.models`)."""
    method = spec.build()
    paths = [forecaster] if "forecaster" in method.needs and forecaster else []
    paths += method.controllers
    return ",".join(_identity(path, Path(path).stat().st_mtime_ns) for path in paths)


@functools.lru_cache(maxsize=16)
def _identity(path: str, mtime_ns: int) -> str:
    """A checkpoint's content hash, read once per version of the file (not once per cell)."""
    from assimilate.training.loop import file_identity

    return file_identity(path)
