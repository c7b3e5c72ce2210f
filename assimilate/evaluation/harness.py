"""The DA evaluation harness: methods × regimes × held-out trajectories, tuned honestly.

    evaluate_da(config, methods=["free", "dps", "letkf"], regimes=["dense", "gap-5"],
                out="results.zarr", forecaster="checkpoints/ks-small-forecaster.pt")

Sizes (test and validation trajectories, members) and the default method list come from
the config's ``evaluation`` section: small for the CPU configs, the published scale for
the reference ones.

1. Truth stores are simulated into ``OUT.work/`` from the config's simulator: test
   trajectories and validation trajectories of two seeds other than the training one, and
   a climatology (first backgrounds, OI's covariance). Observations are synthesised for
   each regime from both.
2. **Tuning**, on validation trajectories only (never test ones): each method's main
   hyper-parameter (DPS ζ, filter inflation, LETKF radius, OI scale, nudging α,
   optimised control's energy weight λ) over a small grid, scored by the analysis nRMSE
   over half the short horizon; a value the user set with ``name:key=value`` is kept as
   given. The tuned values are recorded.
3. **Test** cells (method, regime), every test trajectory batched in one run, scored by
   :func:`assimilate.evaluation.scores.analysis_scores`.

Each cell is a task: in this process by default, fanned out over Dask with ``workers``
(a LocalCluster) or ``scheduler`` (an existing cluster). A finished cell is saved in
``OUT.work/cells/`` at once (atomically), so a killed run resumes without redoing it.
Outputs: the results store ``OUT``, the Markdown table ``OUT.md`` (DAPPER's style: mean ±
its standard error over test trajectories) and the figure ``OUT.png`` (nRMSE against time
per regime).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.config import ExperimentConfig, load_config
from assimilate.evaluation.defaults import evaluation_defaults
from pde.descriptor import descriptor
from pde.io.errors import ConfigError, OutputError
from pde.io.output import claim
from pde.io.progress import tqdm

__all__ = ["TUNING", "evaluate_da", "format_da_summary", "format_da_table", "parse_method"]

# The main hyper-parameter of each method and the values tried on validation trajectories.
# LETKF radii are in grid spacings (converted to length units per grid).
TUNING: dict[str, tuple[str, tuple[float, ...]]] = {
    "dps": ("zeta", (0.3, 1.0, 3.0, 10.0)),
    "enkf": ("inflation", (1.0, 1.05, 1.1, 1.2, 1.4)),
    "etkf": ("inflation", (1.0, 1.05, 1.1, 1.2, 1.4)),
    "letkf": ("radius", (1.0, 2.0, 4.0, 8.0)),
    "oi": ("scale", (0.003, 0.01, 0.03, 0.1, 0.3)),
    "nudging": ("alpha", (0.25, 0.5, 1.0)),
    "optimised-control": ("energy", (0.1, 1.0, 10.0)),
}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method as the user named it: ``name`` and the settings they fixed."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """``name:key=value...``, a checkpoint by its file name alone."""
        return ":".join([self.name, *(Path(v).stem if k == "checkpoint" else f"{k}={v}"
                                      for k, v in self.settings)])


def with_controller(methods: Sequence[str], controller: str | Path) -> list[str]:
    """``methods`` (``NAME[:KEY=VALUE...]``) with the controller checkpoint filled in where
    a ``controller`` lacks one, and a ``controller`` added if none is named (``evaluate da
    --controller``)."""
    def named(text: str) -> str:
        return text.strip().split(":")[0]

    filled = [f"{text}:checkpoint={controller}"
              if named(text) == "controller" and ":checkpoint=" not in text else text
              for text in methods]
    if not any(named(text) == "controller" for text in methods):
        filled.append(f"controller:checkpoint={controller}")
    return filled


def parse_method(text: str) -> MethodSpec:
    """``"letkf:model=forecaster:inflation=1.05"`` -> a :class:`MethodSpec`, validated."""
    from assimilate.da.methods import build_method

    name, *pairs = text.strip().split(":")
    settings = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"method {text!r}: {pair!r} is not key=value")
        settings.append((key, value))
    build_method(name, dict(settings))  # refuse a bad method before any work
    return MethodSpec(name, tuple(settings))


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
        from assimilate.da.methods import build_method

        fields = dataclasses.asdict(self)
        if not fields["models"]:  # a cell of the true simulator alone
            del fields["models"]
        resolved = dataclasses.asdict(build_method(self.method, dict(self.settings)))
        fields["settings"] = sorted((name, str(value)) for name, value in resolved.items())
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


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

    def cell(self, cell: Cell) -> Path:
        return self.root / "cells" / f"{cell.key}.nc"

    def shared_analysis(self, cell: Cell) -> Path:
        """The analysis of a method that ignores observations: one for every regime."""
        return self.root / "analyses" / f"{dataclasses.replace(cell, regime='*').key}.nc"


def _prepare(workspace: Workspace, config: ExperimentConfig, regimes: Sequence[str],
             n_test: int, n_validation: int, n_steps: int, validation_steps: int,
             progress: bool) -> None:
    """Simulate the truth and climatology stores and synthesise observations, once."""
    from assimilate.observe import observe
    from pde.generate import simulate

    training_seed = config.dataset.seed
    seeds = {"test": training_seed + 1, "validation": training_seed + 2,
             "climatology": training_seed + 3}
    sizes = {"test": (n_test, n_steps + 1), "validation": (n_validation, validation_steps + 1),
             "climatology": (8, 200)}
    for split, (trajectories, steps) in sizes.items():
        path = workspace.store(split)
        if not path.exists() or not _complete(path):
            simulate(config, path, trajectories=trajectories, steps=steps, seed=seeds[split],
                     overwrite=path.exists(), progress=progress)
    for split in ("test", "validation"):
        for regime in regimes:
            path = workspace.observations(split, regime)
            if not path.exists():
                observe(workspace.store(split), regime, path, seed=seeds[split],
                        progress=False)


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


def _run_cell(workspace: Workspace, cell: Cell) -> Path:
    from assimilate.da.contract import assimilate
    from assimilate.da.methods import build_method
    from assimilate.evaluation.scores import analysis_scores
    from assimilate.observe import load_observations, model_grid
    from pde.io.store import field_variable, open_trajectories

    path = workspace.cell(cell)
    if path.exists():
        return path
    _one_thread_in_a_worker()
    config = ExperimentConfig.model_validate_json(workspace.config_json)
    method = build_method(cell.method, dict(cell.settings))
    truth_ds = open_trajectories(workspace.store(cell.split))
    observations = load_observations(workspace.observations(cell.split, cell.regime),
                                     **model_grid(truth_ds))
    climatology = _climatology(str(workspace.store("climatology")))
    shared = None if method.uses_observations else workspace.shared_analysis(cell)
    if shared is not None and shared.exists():
        analysis = xr.load_dataset(shared)
    else:
        forecaster = _forecaster(workspace.forecaster) if method.model == "forecaster" \
            else None
        analysis = assimilate(method, observations, initial=None, config=config,
                              forecaster=forecaster, climatology=climatology,
                              n_members=cell.n_members, n_steps=cell.n_steps,
                              seed=cell.seed, progress=False, on_divergence="stop")
        if shared is not None:
            try:
                with claim(shared, kind="file", overwrite=True) as output, \
                        output.atomic() as scratch:
                    analysis.to_netcdf(scratch)
            except OutputError:  # another worker is saving the same analysis
                pass
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
    scores = analysis_scores(
        analysis[variable].values, truth, std=climatology.std, mean=climatology.mean,
        observed_points=observed, horizons=horizons, spin_up=min(horizons[0], cell.n_steps // 4),
        series=lambda field: found.series(field, attrs)[series_name])
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


def _run_cells(workspace: Workspace, cells: list[Cell], client, progress: bool,
               what: str) -> None:
    todo = [cell for cell in cells if not workspace.cell(cell).exists()]
    todo.sort(key=_cost)  # the cheap cells first: results accumulate while the rest runs
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


def _cost(cell: Cell) -> int:
    """A rough order of cost: the true simulator, then the forecaster, guidance last."""
    from assimilate.da.methods import build_method

    model = build_method(cell.method, dict(cell.settings)).model
    return {"none": 0, "simulator": 1, "forecaster": 2}[model] + {
        "dps": 1, "optimised-control": 2}.get(cell.method, 0)


def _candidates(spec: MethodSpec, config: ExperimentConfig) -> list[tuple[tuple[str, str], ...]]:
    """The settings to try on validation: one per value of the main hyper-parameter,
    unless the user fixed it."""
    if spec.name not in TUNING or spec.name == "letkf" and dict(spec.settings).get(
            "radius") or dict(spec.settings).get(TUNING[spec.name][0]):
        return [spec.settings]
    key, values = TUNING[spec.name]
    if spec.name == "letkf":
        simulator = config.simulator.build()
        _, x, _ = simulator.coordinates()[-1]
        values = tuple(float(v * (x[1] - x[0])) for v in values)
    return [(*spec.settings, (key, f"{value:g}")) for value in values]


def _tune(workspace, specs, regimes, config, validation_steps, n_members, seed, client,
          progress) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """The chosen settings of each (method label, regime), by validation nRMSE."""
    cells = {(spec.label, regime): [Cell(spec.name, settings, regime, "validation",
                                         validation_steps, n_members, seed,
                                         _models(spec, workspace.forecaster))
                                    for settings in _candidates(spec, config)]
             for spec in specs for regime in regimes}
    tried = [cell for group in cells.values() if len(group) > 1 for cell in group]
    _run_cells(workspace, tried, client, progress, "tune on validation")
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


def evaluate_da(config: str | Path | ExperimentConfig, *, out: str | Path,
                methods: Sequence[str] | None = None, regimes: Sequence[str] | None = None,
                forecaster: str | Path | None = None, controller: str | Path | None = None,
                n_test: int | None = None, n_validation: int | None = None,
                n_members: int | None = None, n_steps: int | None = None, tune: bool = True,
                seed: int = 0,
                workers: int | None = None, scheduler: str | None = None,
                overwrite: bool = False, progress: bool = True) -> xr.Dataset:
    """Run the harness (module doc); the results dataset, also written to ``out``.

    ``methods``, ``n_test``, ``n_validation`` and ``n_members`` default to the config's
    ``evaluation`` section, ``regimes`` to the PDE's six. ``controller``: a controller
    checkpoint for the ``controller`` method, which is added if ``methods`` lacks it.
    """
    from assimilate.da.inputs import check_checkpoints
    from assimilate.observe import load_regime, regime_names
    from pde.io.cluster import dask_client

    for option, path in (("--forecaster", forecaster), ("--controller", controller)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{option} '{path}': no such checkpoint file")
    config = config if isinstance(config, ExperimentConfig) else load_config(config)
    sizes = config.evaluation
    methods = list(methods or sizes.methods)
    if controller is not None:
        methods = with_controller(methods, controller)
    specs = [parse_method(text) for text in methods]
    regimes = list(regimes or regime_names(config.simulator.pde))
    n_test = n_test or sizes.trajectories
    n_validation = n_validation or sizes.validation
    n_members = n_members or sizes.members
    for regime in regimes:
        load_regime(regime, config.simulator.pde)  # an unknown regime fails now
    if forecaster is None and any(_model_of(spec) == "forecaster" for spec in specs):
        raise ConfigError("methods on the learned model need --forecaster CKPT")
    check_checkpoints(config, forecaster=forecaster, controllers=sorted(
        {value for spec in specs for key, value in spec.settings if key == "checkpoint"}))
    horizons = evaluation_defaults(config.simulator.pde).assimilation.horizons
    n_steps = n_steps or horizons[1]
    validation_steps = min(n_steps, horizons[0] // 2)  # tuning: half the short horizon
    out = Path(out)
    inputs = [path for path in (forecaster, controller) if path]
    work = out.with_name(out.name + ".work")
    outputs = [Path(f"{out}.md"), Path(f"{out}.png")]
    with claim(out, kind="directory", inputs=inputs, overwrite=overwrite) as output, \
            claim(outputs[0], kind="file", inputs=inputs, overwrite=overwrite) as table, \
            claim(outputs[1], kind="file", inputs=inputs, overwrite=overwrite) as figure, \
            claim(work, kind="directory", inputs=inputs, resumable=True):
        workspace = Workspace(work, config.model_dump_json(),
                              None if forecaster is None else str(Path(forecaster).resolve()))
        (work / "cells").mkdir(parents=True, exist_ok=True)
        (work / "analyses").mkdir(exist_ok=True)
        started = time.perf_counter()
        _prepare(workspace, config, regimes, n_test, n_validation, n_steps, validation_steps,
                 progress)
        with dask_client(workers, scheduler) as client:
            chosen = _tune(workspace, specs, regimes, config, validation_steps, n_members,
                           seed, client, progress) if tune else \
                {(s.label, r): s.settings for s in specs for r in regimes}
            cells = {(spec.label, regime): Cell(spec.name, chosen[spec.label, regime], regime,
                                                "test", n_steps, n_members, seed,
                                                _models(spec, workspace.forecaster))
                     for spec in specs for regime in regimes}
            _run_cells(workspace, list(cells.values()), client, progress, "test cells")
        result = _collect(workspace, cells, specs, regimes)
        result.attrs.update(config=config.model_dump_json(), pde=config.simulator.pde,
                            forecaster=str(forecaster), n_test=n_test, n_members=n_members,
                            n_steps=n_steps,
                            horizons=json.dumps([min(h, n_steps) for h in horizons]),
                            wall_time_s=round(time.perf_counter() - started, 1))
        from pde.io.store import write_zarr

        # everything computed before anything lands
        text = f"{format_da_summary(result)}\n\n{format_da_table(result)}\n"
        with figure.atomic() as scratch:
            plot_da(result, scratch)
        with table.atomic() as scratch:
            Path(scratch).write_text(text)
        write_zarr(result, output)
    return result


def _models(spec: MethodSpec, forecaster: str | None) -> str:
    """The content hashes of the checkpoints a method runs (see :attr:`Cell.models`)."""
    paths = [forecaster] if _model_of(spec) == "forecaster" and forecaster else []
    paths += [value for key, value in spec.settings if key == "checkpoint"]
    return ",".join(_identity(path, Path(path).stat().st_mtime_ns) for path in paths)


@functools.lru_cache(maxsize=16)
def _identity(path: str, mtime_ns: int) -> str:
    """A checkpoint's content hash, read once per version of the file (not once per cell)."""
    from assimilate.training.loop import file_identity

    return file_identity(path)


def _model_of(spec: MethodSpec) -> str:
    from assimilate.da.methods import build_method

    return build_method(spec.name, dict(spec.settings)).model


def _collect(workspace, cells, specs, regimes) -> xr.Dataset:
    """One dataset with dims (da_method, regime, ...) from the finished test cells."""
    rows = []
    for spec in specs:
        column = []
        for regime in regimes:
            cell = cells[spec.label, regime]
            with xr.open_dataset(workspace.cell(cell)) as ds:
                ds = ds.load()
            for name in ("nfe_per_step", "seconds_per_step", "wall_time_s"):
                ds[name] = ((), float(ds.attrs[name]))
            ds["settings"] = ((), np.array(json.dumps(dict(cell.settings)), dtype=object))
            ds["model"] = ((), np.array(ds.attrs["model"], dtype=object))
            ds.attrs = {}
            column.append(ds)
        rows.append(xr.concat(column, dim="regime"))
    result = xr.concat(rows, dim="da_method")  # not "method": xarray's .sel has that keyword
    labels = np.array([s.label for s in specs], dtype=object)  # Zarr's variable-length strings
    return result.assign_coords(da_method=labels,
                                regime=np.array(list(regimes), dtype=object))


TABLE_COLUMNS = (("nrmse_short", "nRMSE short"), ("nrmse_long", "nRMSE long"),
                 ("nrmse_unobserved", "unobserved"), ("spread_ratio", "spread/RMSE"),
                 ("crps", "CRPS"), ("series_error", "series error"),
                 ("spectrum_error", "spectrum"), ("stable", "stable"))


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    """Mean over test trajectories and its standard error (NaN for one trajectory)."""
    data = values.astype(float)
    mean = np.nanmean(data) if np.isfinite(data).any() else np.nan
    error = np.nanstd(data, ddof=1) / np.sqrt(data.size) if data.size > 1 else np.nan
    return mean, error


def format_da_table(result: xr.Dataset) -> str:
    """Markdown: one row per (regime, method), mean ± standard error over trajectories."""
    horizons = json.loads(result.attrs.get("horizons", "[0, 0]"))
    header = ["regime", "method", "settings",
              *[label + (f" ({horizons[0]})" if name == "nrmse_short" else
                         f" ({horizons[1]})" if name == "nrmse_long" else "")
                for name, label in TABLE_COLUMNS], "s / step", "NFE / step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for regime in result["regime"].values:
        for method in result["da_method"].values:
            cell = result.sel(da_method=method, regime=regime)
            values = []
            for name, _ in TABLE_COLUMNS:
                mean, error = _mean_and_error(cell[name].values)
                values.append(f"{mean:.3g}" if name == "stable" or not np.isfinite(error)
                              else f"{mean:.3g} ± {error:.2g}")
            settings = json.loads(str(cell["settings"].values))
            lines.append("| " + " | ".join([
                str(regime), str(method),
                ", ".join(f"{k}={v}" for k, v in settings.items()) or "–", *values,
                f"{float(cell['seconds_per_step']):.3g}",
                f"{float(cell['nfe_per_step']):.3g}"]) + " |")
    return "\n".join(lines)


SYMBOLS = {"zeta": "ζ", "inflation": "i", "radius": "r", "scale": "s", "alpha": "α",
           "energy": "λ"}


def format_da_summary(result: xr.Dataset, score: str = "nrmse_long") -> str:
    """Markdown, DAPPER's layout: one row per regime, one column per method, ``score``'s
    mean ± standard error over test trajectories with the tuned value in brackets; the
    lowest mean of each row in bold."""
    methods = [str(m) for m in result["da_method"].values]
    lines = ["| regime | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for regime in result["regime"].values:
        cells, means = [], []
        for method in methods:
            cell = result.sel(da_method=method, regime=regime)
            mean, error = _mean_and_error(cell[score].values)
            text = f"{mean:.3f}" + (f" ± {error:.3f}" if np.isfinite(error) else "")
            tuned = TUNING.get(method.split(":")[0], ("",))[0]
            value = json.loads(str(cell["settings"].values)).get(tuned)
            cells.append((text, f" ({SYMBOLS.get(tuned, tuned)}={value})" if value else ""))
            means.append(mean if np.isfinite(mean) else np.inf)
        best = int(np.argmin(means))
        lines.append(f"| {regime} | " + " | ".join(
            (f"**{text}**" if i == best else text) + tuned
            for i, (text, tuned) in enumerate(cells)) + " |")
    return "\n".join(lines)


def plot_da(result: xr.Dataset, path) -> None:
    """nRMSE of the ensemble mean against time, one panel per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(result["regime"].values)
    columns = min(3, len(regimes))
    rows = -(-len(regimes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows),
                             squeeze=False, sharey=True)
    for ax, regime in zip(axes.flat, regimes, strict=False):
        for i, method in enumerate(result["da_method"].values):
            curve = result["nrmse_time"].sel(da_method=method, regime=regime).mean(
                "trajectory")
            ax.plot(np.arange(curve.size), curve.values, label=str(method), lw=1.2,
                    color=plt.cm.tab20(i % 20))  # 11 methods: more than the default cycle
        ax.set_yscale("log")
        ax.set_title(f"regime {regime}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(regimes):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("nRMSE of the ensemble mean")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
