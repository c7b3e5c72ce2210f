"""``assimilate evaluate da``: the harness's verb (the package doc)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from assimilate.config import ExperimentConfig, load_config
from assimilate.evaluation.defaults import evaluation_defaults
from assimilate.evaluation.harness.cells import (
    Cell,
    ImportedSources,
    Workspace,
    checkpoint_hashes,
    prepare_workspace,
    run_cells,
)
from assimilate.evaluation.harness.specs import MethodSpec, fill_controller, parse_method
from assimilate.evaluation.harness.tables import (
    collect,
    format_da_table,
    plot_da,
    summaries,
)
from assimilate.evaluation.harness.tuning import tune
from pde.io.errors import ConfigError
from pde.io.output import claim

__all__ = ["HarnessSettings", "evaluate_da"]


@dataclasses.dataclass(frozen=True)
class HarnessSettings:
    """What ``evaluate da`` runs. ``methods`` (``NAME[:KEY=VALUE...]``), ``n_test``,
    ``n_validation`` and ``n_members`` default to the config's ``evaluation`` section,
    ``regimes`` to the PDE's six, ``n_steps`` to its long horizon. ``controller``: a
    controller checkpoint for the methods that need one, ``controller`` added if none is
    named. ``workers`` (a LocalCluster) or ``scheduler`` (an existing cluster) fan the cells
    out over Dask; neither: in this process. Imported data have no simulator to make the
    truth: ``truth`` is the test store (its first ``n_test`` trajectories) and
    ``climatology`` the training store (its last ``n_validation`` trajectories tune the
    methods, the others are the climatology); regimes that hold stations back are also
    scored at them."""

    methods: Sequence[str] | None = None
    regimes: Sequence[str] | None = None
    forecaster: str | Path | None = None
    controller: str | Path | None = None
    truth: str | Path | None = None
    climatology: str | Path | None = None
    n_test: int | None = None
    n_validation: int | None = None
    n_members: int | None = None
    n_steps: int | None = None
    tune: bool = True
    seed: int = 0
    workers: int | None = None
    scheduler: str | None = None


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The settings resolved against the config, checked before any work."""

    specs: list[MethodSpec]
    regimes: list[str]
    n_test: int
    n_validation: int
    test: Cell
    """A test cell whose sizes and seed every cell shares (``validation``: half the short
    horizon, for tuning)."""
    validation: Cell
    horizons: tuple[int, int]
    sources: ImportedSources | None = None


def _sources(config: ExperimentConfig, settings: HarnessSettings,
             n_validation: int) -> tuple[ImportedSources | None, int | None]:
    """The user's stores the harness cuts imported data from, each refused unless its data
    are the config's, and the truth's number of trajectories; None for simulated data."""
    given = {"--truth": settings.truth, "--climatology": settings.climatology}
    if config.simulator.simulated:
        named = [option for option, path in given.items() if path is not None]
        if named:
            raise ConfigError(f"{' and '.join(named)}: only for imported data; the simulator "
                              f"of '{config.simulator.pde}' makes the truth and climatology")
        return None, None
    from assimilate.models.core import training_field

    sizes = {}
    for option, path in given.items():
        if path is None:
            raise ConfigError(f"imported data ('{config.simulator.variable}') have no "
                              f"simulator to make the truth: give {option} STORE (--truth: "
                              "the test store; --climatology: the training store)")
        sizes[option] = training_field(config, path)[1].sizes["trajectory"]  # same data?
    sources = ImportedSources(Path(settings.truth), Path(settings.climatology), n_validation)
    return sources, sizes["--truth"]


def _plan(config: ExperimentConfig, settings: HarnessSettings) -> _Plan:
    from assimilate.da.inputs import check_checkpoints
    from assimilate.observe import load_regime, regime_names

    for option, path in (("--forecaster", settings.forecaster),
                         ("--controller", settings.controller)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{option} '{path}': no such checkpoint file")
    sizes = config.evaluation
    n_test, n_validation = settings.n_test or sizes.trajectories, \
        settings.n_validation or sizes.validation
    sources, n_truth = _sources(config, settings, n_validation)  # the truth comes first
    methods = list(settings.methods or sizes.methods)
    if settings.controller is not None:
        methods = fill_controller(methods, settings.controller)
    specs = [parse_method(text) for text in methods]
    regimes = list(settings.regimes or
                   [name for name in regime_names(config.simulator.pde)
                    if not load_regime(name, config.simulator.pde).withheld])
    for regime in regimes:
        if load_regime(regime, config.simulator.pde).withheld:  # an unknown one fails too
            raise ConfigError(f"regime '{regime}' observes withheld stations, which are never "
                              "assimilated: name the regime that holds them back; its "
                              "withheld stations are scored with it")
    built = [spec.build() for spec in specs]
    for method in built:
        method.check_needs(forecaster=settings.forecaster is not None)
    check_checkpoints(config, forecaster=settings.forecaster, controllers=sorted(
        {path for method in built for path in method.controllers}))
    horizons = evaluation_defaults(config.simulator.pde).assimilation.horizons
    n_steps = settings.n_steps or horizons[1]
    n_members = settings.n_members or sizes.members
    test = Cell("", (), "", "test", n_steps, n_members, settings.seed)
    validation = dataclasses.replace(test, split="validation",
                                     n_steps=min(n_steps, horizons[0] // 2))
    if n_truth is not None:
        n_test = min(n_test, n_truth)  # a test store may hold a single long trajectory
    return _Plan(specs, regimes, n_test, n_validation, test, validation, horizons, sources)


def evaluate_da(config: str | Path | ExperimentConfig, settings: HarnessSettings, *,
                out: str | Path, overwrite: bool = False, progress: bool = True) -> xr.Dataset:
    """Run the harness (package doc); the results dataset, also written to ``out``."""
    from assimilate.da.inputs import grid_of
    from pde.io.cluster import dask_client
    from pde.io.store import write_zarr

    config = config if isinstance(config, ExperimentConfig) else load_config(config)
    plan = _plan(config, settings)
    out, forecaster = Path(out), settings.forecaster
    inputs = [path for path in (forecaster, settings.controller, settings.truth,
                                settings.climatology) if path]
    work = out.with_name(out.name + ".work")
    with claim(out, kind="directory", inputs=inputs, overwrite=overwrite) as output, \
            claim(Path(f"{out}.md"), kind="file", inputs=inputs, overwrite=overwrite) as table, \
            claim(Path(f"{out}.png"), kind="file", inputs=inputs, overwrite=overwrite) as figure, \
            claim(work, kind="directory", inputs=inputs, resumable=True):
        workspace = Workspace(work, config.model_dump_json(),
                              None if forecaster is None else str(Path(forecaster).resolve()))
        (work / "cells").mkdir(parents=True, exist_ok=True)
        (work / "analyses").mkdir(exist_ok=True)
        started = time.perf_counter()
        prepare_workspace(workspace, config, plan.regimes, {
            "test": (plan.n_test, plan.test.n_steps + 1),
            "validation": (plan.n_validation, plan.validation.n_steps + 1)}, progress,
            plan.sources)
        with dask_client(settings.workers, settings.scheduler) as client:
            chosen = tune(workspace, plan.specs, plan.regimes, plan.validation,
                          grid_of(config).spacing, client, progress) if settings.tune else \
                {(s.label, r): s.settings for s in plan.specs for r in plan.regimes}
            cells = {(spec.label, regime): dataclasses.replace(
                plan.test, method=spec.name, settings=chosen[spec.label, regime], regime=regime,
                models=checkpoint_hashes(spec, workspace.forecaster))
                for spec in plan.specs for regime in plan.regimes}
            run_cells(workspace, list(cells.values()), client, progress, "test cells")
        result = collect(workspace, cells, plan.specs, plan.regimes)
        result.attrs.update(config=config.model_dump_json(), pde=config.simulator.pde,
                            forecaster=str(forecaster), n_test=plan.n_test,
                            n_members=plan.test.n_members, n_steps=plan.test.n_steps,
                            horizons=json.dumps([min(h, plan.test.n_steps)
                                                 for h in plan.horizons]),
                            wall_time_s=round(time.perf_counter() - started, 1))
        # everything computed before anything lands
        text = f"{summaries(result)}\n\n{format_da_table(result)}\n"
        with figure.atomic() as scratch:
            plot_da(result, scratch)
        with table.atomic() as scratch:
            Path(scratch).write_text(text)
        write_zarr(result, output)
    return result
