"""``make demo``: the data-assimilation chain on small settings, in a few minutes on 2 cores.

1. **Truth.** Simulates the small Kuramoto-Sivashinsky store (the distribution the shipped
   checkpoints were trained on) and four held-out trajectories, from a seed the checkpoints
   never saw, into ``demo-output/``. It prints what it wrote, where and how fast; finished
   stores are reused.
2. **Forecast.** Forecasts the held-out trajectories with the shipped forecaster
   (``checkpoints/ks-small-forecaster.pt``). It prints the skill against persistence,
   climatology and the perturbed true simulator, and draws a skill figure.
3. **Assimilation.** Observes the held-out truth under the ``dense`` regime (every 8th
   point, noise 0.1). It then assimilates 100 steps of two trajectories from a
   climatological first guess and prints one table. On the learned forecaster: the shipped
   amortised controller (``checkpoints/ks-small-controller.pt``) against two baselines, DPS
   and the ensemble-driven LETKF, and the free run. For reference, the LETKF of the true
   simulator.
4. **Cycling.** Runs three cycles of ``assimilate cycle`` on a third held-out trajectory,
   as a scheduler would: the controller, 64 steps a cycle, an 8-step forecast after each.
   The observations wait in an inbox; everything goes into ``demo-output/cycling/``.
5. **Tail report.** Dask diagnostics of the truth over the cycled window, with the
   analysis compared against it (tails, GPD fits and return levels of the field, each point
   a realisation: one short trajectory holds too few clusters of its spatial maximum),
   rendered as an HTML report, and a figure of truth, analysis and error.

Kolmogorov flow lives in ``notebooks/kolmogorov-assimilation.ipynb``. Its burst report
needs a longer store: ``make report-bursts``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.config import load_config
from pde import open_trajectories, simulate
from pde.io.output import claim
from pde.io.store import field_variable

REPO = Path(__file__).resolve().parents[1]
NAME = "ks-small"
HELD_OUT_SEED = 1000
SKILL_STEPS = 200  # forecast lead of the skill table (40 time units)
DA_STEPS = 100  # steps of the assimilation table
REGIME = "dense"
CYCLE_LENGTH, CYCLES, LEAD = 64, 3, 8
CYCLED_TRAJECTORY = 2  # the table uses held-out trajectories 0 and 1


def checkpoint(kind: str) -> Path:
    return REPO / "checkpoints" / f"{NAME}-{kind}.pt"


def simulate_truth(out: Path) -> Path:
    """The small store and the held-out truth; returns the truth store."""
    config = load_config(REPO / "configs" / f"{NAME}.yaml")
    print(f"Simulating the {NAME} store and 4 held-out trajectories into {out}/ ...")
    for path, options in ((out / f"{NAME}.zarr", {}),
                          (out / f"{NAME}-test.zarr", {"trajectories": 4,
                                                       "steps": SKILL_STEPS + 1,
                                                       "seed": HELD_OUT_SEED})):
        summary = simulate(config, path, **options)
        ds = open_trajectories(summary.path)
        field = ds[field_variable(ds)]
        print(f"  {summary}")
        print(f"    {field.name}{tuple(field.shape)} dims={field.dims} "
              f"mean={float(field.mean()):+.3f} std={float(field.std()):.3f}")
    return out / f"{NAME}-test.zarr"


def forecast_skill(truth: Path, out: Path) -> Path:
    from assimilate.evaluation.forecast_skill import SkillSettings, evaluate_forecast, format_table

    print(f"\nForecast skill of {checkpoint('forecaster').relative_to(REPO)}: 4 held-out "
          f"initial states, 4 members, {SKILL_STEPS} steps")
    result = evaluate_forecast(checkpoint("forecaster"), truth,
                               SkillSettings(n_steps=SKILL_STEPS, n_members=4, robust=False),
                               out / f"{NAME}-skill.zarr", overwrite=True)
    print(format_table(result))
    return out / f"{NAME}-skill.zarr.png"


def assimilation(truth_path: Path) -> None:
    from assimilate.da.contract import assimilate, score
    from assimilate.da.methods import build_method
    from assimilate.models.forecaster import load_forecaster
    from assimilate.observe import Observations, model_grid, observe

    truth = open_trajectories(truth_path)
    config = load_config(REPO / "configs" / f"{NAME}.yaml")
    observed = Observations.from_dataset(observe(truth_path, REGIME, trajectories=2,
                                                 progress=False), **model_grid(truth))
    reference = truth[field_variable(truth)].isel(trajectory=[0, 1]).values
    forecaster = load_forecaster(checkpoint("forecaster"))
    print(f"\nData assimilation on {NAME}: 2 held-out trajectories, regime '{REGIME}' (every "
          f"8th point, noise 0.1), 8 members from climatology, {DA_STEPS} steps")
    print("| method | model | nRMSE analysis | nRMSE forecast | CRPS | spread/RMSE | s / step |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    methods = [("controller", {"checkpoint": str(checkpoint("controller"))}),
               ("dps", {"zeta": "3"}), ("letkf", {"model": "forecaster"}), ("free", {}),
               ("letkf", {"model": "simulator"})]
    for method, settings in methods:
        analysis = assimilate(build_method(method, settings), observed, initial=None,
                              config=config, forecaster=forecaster, n_members=8,
                              n_steps=DA_STEPS, progress=False)
        scores = score(analysis, reference[:, : DA_STEPS + 1], spin_up=DA_STEPS // 4)
        print(f"| {method} | {analysis.attrs['model']} | {scores['nrmse.a']:.3f} | "
              f"{scores['nrmse.f']:.3f} | {scores['crps.a']:.3f} | "
              f"{scores['spread_ratio.a']:.2f} | {analysis.attrs['seconds_per_step']:.3f} |",
              flush=True)
    print("  nRMSE: RMSE of the ensemble mean over the climatological std, after a "
          f"{DA_STEPS // 4}-step spin-up; CRPS of the members over the climatological std; "
          "spread/RMSE near 1 (0.94 for 8 members) is a calibrated ensemble, below it an "
          "overconfident one. The true simulator is about 100x cheaper per step than the "
          "forecaster on a CPU, which is why its LETKF is the baseline to beat.")


def _workflow_text() -> str:
    import yaml

    return yaml.safe_dump({
        "config": str(REPO / "configs" / f"{NAME}.yaml"), "method": "controller",
        "forecaster": str(checkpoint("forecaster")),
        "controller": str(checkpoint("controller")), "members": 8,
        "cycle_length": CYCLE_LENGTH, "lead": LEAD, "inbox": "inbox",
        "analysis": "analysis.zarr"}, sort_keys=False)


def cycling(truth: Path, out: Path) -> Path:
    """Three cycles of ``assimilate cycle`` on one held-out trajectory; the project folder."""
    from assimilate.cycle import cycle
    from assimilate.observe import observe

    project = out / "cycling"
    workflow, text = project / "workflow.yaml", _workflow_text()
    if workflow.exists() and workflow.read_text() != text:  # an older demo's project
        print(f"\n(replacing {project}/: written by another version of the demo)")
        shutil.rmtree(project)
    (project / "inbox").mkdir(parents=True, exist_ok=True)
    observations = project / "inbox" / "obs.zarr"
    if not observations.exists():
        observe(truth, REGIME, observations, trajectories=[CYCLED_TRAJECTORY], progress=False)
    if not workflow.exists():
        with claim(workflow, kind="file") as output, output.atomic() as scratch:
            scratch.write_text(text)
    print(f"\nCycling assimilation ({workflow}): {CYCLES} cycles of {CYCLE_LENGTH} steps on "
          f"held-out trajectory {CYCLED_TRAJECTORY}, the controller, a {LEAD}-step forecast "
          "after each")
    for _ in range(CYCLES):
        print(f"  {cycle(workflow, progress=False).message}", flush=True)
    return project


def _truth_of(truth: Path, analysis: xr.Dataset) -> xr.DataArray:
    """The true field on the cycled analysis' times, with its coordinates."""
    ds = open_trajectories(truth)
    field = ds[field_variable(ds)].isel(trajectory=[CYCLED_TRAJECTORY])
    field = field.sel(time=analysis["time"].values, method="nearest", tolerance=1e-6)
    return field.assign_coords(trajectory=analysis["trajectory"].values,
                               time=analysis["time"].values)


def tail_report(truth: Path, project: Path, out: Path) -> tuple[Path, Path]:
    """Diagnostics of the truth with the cycled analysis compared; report and figure."""
    from assimilate.diagnostics import summary
    from assimilate.report import render
    from pde.io.store import open_store

    analysis = open_store(project / "analysis.zarr")
    true = _truth_of(truth, analysis)
    variable = str(true.name)
    window = f"steps 1..{analysis.sizes['time']} of held-out trajectory {CYCLED_TRAJECTORY}"
    print(f"\nExtreme-event diagnostics (Dask) of the truth over the cycled window ({window}), "
          "the controller's analysis compared; every point x is a realisation of the series:")
    diagnostics = truth_and_analysis(true, analysis[variable], str(truth),
                                     str(project / "analysis.zarr"), out)
    print(summary(diagnostics[0]))
    print(_cycled_tails(analysis[variable], true))
    report = render(diagnostics, out / f"{NAME}-report.html",
                    title=f"Cycled assimilation of {NAME}: analysis against the truth",
                    overwrite=True)
    return report, plot_cycles(true, analysis[variable], out / f"{NAME}-cycling.png")


def truth_and_analysis(truth: xr.DataArray, analysis: xr.DataArray, truth_source: str,
                       analysis_source: str, out: Path) -> list[xr.Dataset]:
    """Diagnostics of the truth (the analysis compared) and of the analysis, written to
    ``out``: the truth first, then the analysis above the truth's threshold, declustered
    with its run length, in its blocks and at its return periods, so that the report's two
    columns answer the same questions."""
    from assimilate.diagnostics import DiagnoseSettings, diagnose

    truth_diagnostics = diagnose(
        truth, DiagnoseSettings(dims=("time",)), label="truth (simulated, held out)",
        compare={"analysis (controller)": analysis}, source=truth_source,
        out=out / f"{NAME}-truth.diag.zarr", overwrite=True)
    attrs = truth_diagnostics.attrs
    step = float(truth["time"].values[1] - truth["time"].values[0])
    same = DiagnoseSettings(dims=("time",),  # the truth's threshold, declustering and blocks
                            pot_threshold=float(truth_diagnostics["pot_threshold"]),
                            run_length=int(attrs["pot_run_length"]) * step or "none",
                            block_steps=round(float(attrs["block_length"]) / step),
                            return_periods=tuple(truth_diagnostics["return_period"].values))
    return [truth_diagnostics, diagnose(
        analysis, same, label="analysis (controller)", source=analysis_source,
        out=out / f"{NAME}-analysis.diag.zarr", overwrite=True)]


def _cycled_tails(analysis: xr.DataArray, truth: xr.DataArray) -> str:
    """The cycled analysis members' upper tail against the truth's, in one line."""
    from assimilate.diagnostics.tails import ANALYSIS_TAIL_QUANTILE, analysis_tail_scores

    members = analysis.transpose("trajectory", "member", "time", ...).values
    tails = analysis_tail_scores(members, truth.transpose("trajectory", "time", ...).values)
    return (f"  cycled analysis ({analysis.sizes['member']} members) against the truth, beyond "
            f"the truth's {ANALYSIS_TAIL_QUANTILE} quantile: tail KS "
            f"{float(tails['tail_ks'].mean()):.3f}, exceedance ratio "
            f"{float(tails['exceedance_ratio'].mean()):.2f} (1 is right)")


def plot_cycles(truth: xr.DataArray, analysis: xr.DataArray, path: Path) -> Path:
    """Space-time panels of truth, analysis mean and error, cycle starts marked (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true = truth.isel(trajectory=0).values
    mean = analysis.isel(trajectory=0).mean("member").values
    time, x = truth["time"].values, truth["x"].values
    error = mean - true
    limit = float(np.abs(true).max())
    error_limit = float(np.quantile(np.abs(error), 0.99))  # the spin-up saturates
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True, constrained_layout=True)
    for ax, values, title, scale in ((axes[0], true, "truth", limit),
                                     (axes[1], mean, "analysis (ensemble mean)", limit),
                                     (axes[2], error, "analysis - truth (own scale)",
                                      error_limit)):
        image = ax.pcolormesh(x, time, values, cmap="RdBu_r", vmin=-scale, vmax=scale,
                              shading="nearest")
        ax.set(title=title, xlabel="x")
        for start in time[::CYCLE_LENGTH][1:]:
            ax.axhline(start, color="k", lw=0.6, ls="--")
        if ax is not axes[0]:
            figure.colorbar(image, ax=ax, shrink=0.9)
    axes[0].set_ylabel("time (dashed: cycle starts)")
    try:
        with claim(path, kind="file", overwrite=True) as output, output.atomic() as scratch:
            figure.savefig(scratch, dpi=110, format="png")
    finally:
        plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="output directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [str(path.relative_to(REPO)) for path in map(checkpoint,
                                                           ("forecaster", "controller"))
               if not path.exists()]
    if missing:
        raise SystemExit(f"demo: the shipped checkpoints {', '.join(missing)} are missing; "
                         "restore them with `git checkout -- checkpoints/`")
    truth = simulate_truth(out)
    skill = forecast_skill(truth, out)
    assimilation(truth)
    project = cycling(truth, out)
    report, figure = tail_report(truth, project, out)
    print("\nOpen:")
    for path, what in (
            (report, "tail report: truth against the cycled analysis (HTML)"),
            (figure, "truth, analysis and error over the three cycles"),
            (skill, "forecast skill against lead time"),
            (project / "analysis.zarr", "the cycled analysis store (pde.io.store.open_store)"),
            (project / "analysis.zarr.cycles",
             "one JSON record per cycle: inputs, checksums, timings, versions"),
            (project / "analysis.zarr.log.jsonl", "the cycling log"),
            (out / f"{NAME}-test.zarr", "the truth (pde.open_trajectories)")):
        print(f"  {path}  {what}")
    print(f"Run the next cycle yourself: .venv/bin/assimilate cycle {project / 'workflow.yaml'}"
          " (exit 75: its observations have not arrived yet)")


if __name__ == "__main__":
    main()
