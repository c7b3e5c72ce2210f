"""One controller for every regime, or one per regime? Both trained and scored alike.

    python benchmarks/controller_regimes.py configs/ks-small.yaml \
        --forecaster checkpoints/ks-small-forecaster.pt --workdir runs/controller-regimes \
        --steps 150 --jobs 2 [--eval-steps 640] [--reference checkpoints/ks-small-controller.pt]

Seven controllers of the config's controller section, each for the same number of training
steps on the same store (the config's dataset sizes, seed 0): one across all of the PDE's
regimes (they take turns, so each regime gets a sixth of its steps) and one on each
regime alone. Each regime is then assimilated by ``assimilate evaluate da`` on its
held-out test trajectories (the harness's seeds and sizes, every trajectory batched) with
the free run, the all-regime controller, that regime's own controller and, with
``--reference``, a controller trained elsewhere (the shipped one): analysis nRMSE of the
ensemble mean, mean ± standard error over test trajectories.

Everything goes through the ``assimilate`` command as a user runs it; training resumes
and finished evaluations are reused, so a killed run continues. ``--jobs`` trainings run
at once, one thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).with_name("assimilate"))
ALL = "all-regimes"


def _regimes(config: Path) -> list[str]:
    sys.path.insert(0, str(REPO))
    from assimilate.config import load_config
    from assimilate.observe import regime_names

    return list(regime_names(load_config(config).simulator.pde))


def train_all(config: Path, forecaster: Path, data: Path, workdir: Path, regimes: list[str],
              steps: int, jobs: int) -> dict[str, Path]:
    """The checkpoint of each controller (``ALL`` and one per regime), trained ``jobs`` at a
    time (or resumed; a finished one is left as it is)."""
    checkpoints = {name: workdir / f"{name}.pt" for name in [ALL, *regimes]}
    commands = {}
    for name, out in checkpoints.items():
        commands[name] = [COMMAND, "train", "controller", str(config), "--forecaster",
                          str(forecaster), "--data", str(data), "--out", str(out), "--steps",
                          str(steps), "--quiet"] + ([] if name == ALL else ["--regimes", name])
    run_trainings(commands, workdir, jobs, f"{steps} steps")
    return checkpoints


def run_trainings(commands: dict[str, list[str]], workdir: Path, jobs: int, note: str) -> None:
    """Run each named training command, ``jobs`` at a time with one thread each, its output
    in ``WORKDIR/NAME.log``; stop at the first that fails."""
    queue = list(commands.items())
    running: list[tuple[str, subprocess.Popen]] = []
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    while queue or running:
        while queue and len(running) < jobs:
            name, argv = queue.pop(0)
            log = open(workdir / f"{name}.log", "a")  # noqa: SIM115 (closed with the job)
            running.append((name, subprocess.Popen(argv, stdout=log, stderr=log,
                                                   env=environment)))
            print(f"training {name} ({note})", flush=True)
        name, job = running.pop(0)
        if job.wait() != 0:
            raise SystemExit(f"training {name} failed: see {workdir / (name + '.log')}")


def evaluate(config: Path, forecaster: Path, workdir: Path, regime: str,
             controllers: list[Path], eval_steps: int | None) -> xr.Dataset:
    """The harness's results for ``regime``: the free run and each controller."""
    out = workdir / f"eval-{regime}.zarr"
    if not out.exists():
        methods = ["free", *(f"controller:checkpoint={path}" for path in controllers)]
        argv = [COMMAND, "evaluate", "da", str(config), "--regimes", regime, "--methods",
                ",".join(methods), "--forecaster", str(forecaster), "--out", str(out),
                "--quiet"]
        if eval_steps:
            argv += ["--steps", str(eval_steps)]
        subprocess.run(argv, check=True)
    return xr.open_zarr(out).load()


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    values = values.astype(float)
    error = np.std(values, ddof=1) / np.sqrt(values.size) if values.size > 1 else np.nan
    return float(np.mean(values)), float(error)


def rows_of(results: dict[str, xr.Dataset], reference: Path | None) -> list[dict]:
    """Per regime: free, all-regime, own-regime (and reference) nRMSE and spread/RMSE."""
    rows = []
    for regime, result in results.items():
        labels = {"free": "free", "all regimes": f"controller:{ALL}",
                  "this regime only": f"controller:{regime}"}
        if reference is not None:
            labels["reference"] = f"controller:{reference.stem}"
        row: dict = {"regime": regime}
        for column, label in labels.items():
            cell = result.sel(da_method=label, regime=regime)
            row[column] = _mean_and_error(cell["nrmse_long"].values)
            row[column + " spread/RMSE"] = float(cell["spread_ratio"].mean())
        rows.append(row)
    return rows


def table(rows: list[dict], steps: int, reference: Path | None) -> str:
    columns = ["free", "all regimes", "this regime only"] + (["reference"] if reference else [])
    titles = ["free", f"all regimes ({steps} steps)", f"this regime only ({steps} steps)"]
    titles += [f"{reference.name}"] if reference else []
    lines = ["| regime | " + " | ".join(titles) + " | better |",
             "|---|" + "---:|" * len(columns) + "---|"]
    for row in rows:
        cells = [f"{row[c][0]:.3f} ± {row[c][1]:.3f}" for c in columns]
        (all_mean, all_error), (own_mean, own_error) = row["all regimes"], row["this regime only"]
        margin = 2 * np.hypot(all_error, own_error)
        better = ("tie" if abs(all_mean - own_mean) <= margin else
                  "all regimes" if all_mean < own_mean else "this regime only")
        lines.append(f"| {row['regime']} | " + " | ".join(cells) + f" | {better} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--forecaster", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("runs/controller-regimes"))
    parser.add_argument("--steps", type=int, default=150, help="training steps per controller")
    parser.add_argument("--eval-steps", type=int, help="assimilated steps (default: the long "
                        "horizon)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    parser.add_argument("--reference", type=Path, help="another controller to score alongside")
    parser.add_argument("--json", type=Path, help="write the rows here (and the table beside)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    regimes = _regimes(args.config)
    data = args.workdir / "train.zarr"
    subprocess.run([COMMAND, "simulate", str(args.config), "--out", str(data), "--quiet"],
                   check=True)
    checkpoints = train_all(args.config, args.forecaster, data, args.workdir, regimes,
                            args.steps, args.jobs)
    results = {}
    for regime in regimes:
        controllers = [checkpoints[ALL], checkpoints[regime]]
        controllers += [args.reference.resolve()] if args.reference else []
        results[regime] = evaluate(args.config, args.forecaster, args.workdir, regime,
                                   controllers, args.eval_steps)
    rows = rows_of(results, args.reference)
    text = table(rows, args.steps, args.reference)
    print(text)
    if args.json:
        settings = {"config": str(args.config), "forecaster": str(args.forecaster),
                    "steps": args.steps, "eval_steps": args.eval_steps,
                    "reference": str(args.reference) if args.reference else None,
                    "controller": yaml.safe_load(args.config.read_text())["controller"]}
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
