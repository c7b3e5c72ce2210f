"""``make demo``: the main job on small default settings.

1. Simulates the small Kuramoto-Sivashinsky and Kolmogorov stores into ``demo-output/``
   and prints what was written, where, and how fast (finished stores are reused).
2. With the shipped forecaster checkpoints (``checkpoints/*-forecaster.pt``), forecasts
   held-out trajectories (a seed the forecasters never saw) and prints their skill against
   persistence, climatology and the perturbed true simulator, with a skill figure.
3. Assimilates sparse noisy observations of two held-out KS trajectories (every 8th point,
   noise 0.1) from one climatological first guess: the free run and the LETKF of the true
   simulator, then on the learned forecaster the free run, DPS, the LETKF driven by its
   ensemble and the shipped amortised controller (``checkpoints/ks-small-controller.pt``).
4. Runs three cycles of ``assimilate cycle`` (the controller, cycles of 4 steps) on a
   third held-out trajectory, as a scheduler would, into ``demo-output/cycling/``.
5. Diagnoses the extremes of the small KS store (Dask, peaks over threshold of the
   spatial maximum) and renders the tail-analysis report as HTML. The report of the
   bursting low-Reynolds Kolmogorov flow needs a longer store: ``make report-bursts``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.config import load_config
from pde import open_trajectories, simulate
from pde.store import field_variable

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("ks-small", "kolmogorov-small")
HELD_OUT_SEED = 1000
DEMO_LEADS = {"ks-small": 200, "kolmogorov-small": 60}


def simulate_stores(out: Path) -> None:
    print(f"Simulating {len(CONFIGS)} small trajectory stores into {out}/ ...")
    for name in CONFIGS:
        config = load_config(REPO / "configs" / f"{name}.yaml")
        summary = simulate(config, out / f"{name}.zarr")
        ds = open_trajectories(summary.path)
        field = ds[field_variable(ds)]
        print(f"  {summary}")
        print(f"    {field.name}{tuple(field.shape)} dims={field.dims} "
              f"mean={float(field.mean()):+.3f} std={float(field.std()):.3f}")


def forecast_skill(out: Path) -> None:
    from assimilate.evaluate import evaluate_forecast, format_table

    for name in CONFIGS:
        checkpoint = REPO / "checkpoints" / f"{name}-forecaster.pt"
        if not checkpoint.exists():
            print(f"\n(no shipped checkpoint {checkpoint.relative_to(REPO)}; skipping its forecast)")
            continue
        steps = DEMO_LEADS[name]
        config = load_config(REPO / "configs" / f"{name}.yaml")
        test = simulate(config, out / f"{name}-test.zarr", trajectories=4, steps=steps + 1,
                        seed=HELD_OUT_SEED, progress=False)
        print(f"\nForecast skill of {checkpoint.relative_to(REPO)}: 4 held-out initial states, "
              f"4 members, {steps} steps")
        result = evaluate_forecast(checkpoint, test.path, out / f"{name}-skill.zarr",
                                   n_steps=steps, n_members=4, overwrite=True, robust=False)
        print(format_table(result))
        print(f"  figure: {out / f'{name}-skill.zarr.png'}")


def assimilation(out: Path) -> None:
    from assimilate.da import assimilate, score
    from assimilate.methods import build_method
    from assimilate.observe import Observations, model_grid, observe

    name, steps = "ks-small", 100
    checkpoint = REPO / "checkpoints" / f"{name}-forecaster.pt"
    truth = open_trajectories(out / f"{name}-test.zarr")
    config = load_config(REPO / "configs" / f"{name}.yaml")
    observed = Observations.from_dataset(observe(out / f"{name}-test.zarr", "dense",
                                                 trajectories=2, progress=False),
                                         **model_grid(truth))
    reference = truth[field_variable(truth)].isel(trajectory=[0, 1]).values
    forecaster = None
    if checkpoint.exists():
        from assimilate.forecast import load_forecaster

        forecaster = load_forecaster(checkpoint)
    print(f"\nData assimilation on {name}: 2 held-out trajectories, regime 'dense' (every 8th "
          f"point, noise 0.1), 8 members from climatology, {steps} steps")
    print("| method | model | nRMSE analysis | nRMSE forecast | s / step |\n|---|---|---|---|---|",
          flush=True)
    controller = REPO / "checkpoints" / f"{name}-controller.pt"
    methods = [("free", {"model": "simulator"}), ("letkf", {}), ("free", {}),
               ("dps", {"zeta": "3"}), ("letkf", {"model": "forecaster"})]
    if controller.exists():
        methods.append(("controller", {"checkpoint": str(controller)}))
    for method, settings in methods:
        if build_method(method, settings).model == "forecaster" and forecaster is None:
            continue
        analysis = assimilate(build_method(method, settings), observed, initial=None,
                              config=config, forecaster=forecaster, n_members=8,
                              n_steps=steps, progress=False)
        scores = score(analysis, reference[:, : steps + 1], spin_up=steps // 4)
        print(f"| {method} | {analysis.attrs['model']} | {scores['nrmse.a']:.3f} | "
              f"{scores['nrmse.f']:.3f} | {analysis.attrs['seconds_per_step']:.3f} |", flush=True)


def cycling(out: Path) -> None:
    """Three cycles of ``assimilate cycle`` on one held-out KS trajectory (the controller)."""
    import yaml

    from assimilate.cycle import cycle
    from assimilate.observe import observe

    project = out / "cycling"
    inbox = project / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    observations = inbox / "obs.zarr"
    if not observations.exists():
        observe(out / "ks-small-test.zarr", "dense", observations, trajectories=[2],
                progress=False)
    workflow = project / "workflow.yaml"
    workflow.write_text(yaml.safe_dump({
        "config": str(REPO / "configs" / "ks-small.yaml"), "method": "controller",
        "forecaster": str(REPO / "checkpoints" / "ks-small-forecaster.pt"),
        "controller": str(REPO / "checkpoints" / "ks-small-controller.pt"),
        "members": 8, "cycle_length": 4, "lead": 8, "inbox": "inbox",
        "analysis": "analysis.zarr"}, sort_keys=False))
    print(f"\nCycling assimilation ({workflow}): three cycles of 4 steps, the controller, "
          "an 8-step forecast after each")
    for _ in range(3):
        outcome = cycle(workflow, progress=False)
        print(f"  {outcome.message}")
    print(f"  records: {project / 'analysis.zarr.cycles'}/; log: {project / 'analysis.zarr.log.jsonl'}"
          "; run again with: .venv/bin/assimilate cycle " + str(workflow))


def tail_report(out: Path) -> None:
    from assimilate.diagnostics import diagnose, open_data, summary
    from assimilate.report import render
    from pde.output import claim
    from pde.store import write_zarr

    store = out / "ks-small.zarr"
    print(f"\nExtreme-event diagnostics of {store} (Dask):")
    with claim(out / "ks-small.diag.zarr", kind="directory", inputs=[store],
               overwrite=True) as output:
        diag = diagnose(open_data(store), label="ks-small", source=str(store))
        write_zarr(diag, output)
    print(summary(diag))
    print(f"  report: {render([diag], out / 'ks-small-report.html')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="output directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    simulate_stores(out)
    forecast_skill(out)
    assimilation(out)
    if (REPO / "checkpoints" / "ks-small-controller.pt").exists():
        cycling(out)
    tail_report(out)
    print("\nOpen a store with: pde.open_trajectories('demo-output/ks-small.zarr')")


if __name__ == "__main__":
    main()
