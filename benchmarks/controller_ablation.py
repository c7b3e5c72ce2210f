"""Which part of the calibrated controller does what: objective × ensemble inputs × sub-steps.

    python benchmarks/controller_ablation.py configs/ks-small.yaml \
        --forecaster checkpoints/ks-small-forecaster.pt --workdir runs/controller-ablation \
        [--steps 400] [--eval-steps 200] [--jobs 2] [--only truth-s4,crps-ens-s4] \
        [--json benchmarks/results/controller-ablation-ks-small.json]

Each variant is the config's controller section with the objective, members per window,
ensemble inputs and sub-steps of :data:`VARIANTS`, trained for the same ``--steps`` on the
same store (``assimilate simulate CONFIG``, seed 0) with the same number of rolled samples
per step (16: 16 windows of one member, or 4 windows of 4), one thread each. All are then
assimilated by one ``assimilate evaluate da`` with the free run, in every regime, on the
harness's held-out test trajectories and first guesses (``--eval-steps`` steps, default
the config's long horizon), and tabulated averaged over the six regimes: nRMSE, CRPS,
spread/RMSE, the rank histogram's reliability index, tail KS and exceedance ratio at the
truth's 0.99 quantile, and seconds per step.

Everything goes through the ``assimilate`` command as a user runs it; a finished training
or evaluation is reused, so a killed run continues.
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
VARIANTS = {  # objective, members per window, ensemble inputs, sub-steps (None: the forecaster's)
    "truth-s16": ("truth", 1, False, None),
    "truth-s4": ("truth", 1, False, 4),
    "crps-s4": ("crps", 4, False, 4),
    "crps-ens-s4": ("crps", 4, True, 4),
    "variational-ens-s4": ("variational", 4, True, 4),
    "crps-ens-s2": ("crps", 4, True, 2),
    "crps-ens-s16": ("crps", 4, True, None),
}
SAMPLES_PER_STEP = 16
COLUMNS = (("nrmse_long", "nRMSE"), ("crps", "CRPS"), ("spread_ratio", "spread/RMSE"),
           ("rank_reliability", "rank RI"), ("tail_ks", "tail KS"),
           ("exceedance_ratio", "exceedance 0.99"))


def variant_config(config: Path, name: str, steps: int, workdir: Path) -> Path:
    """The config of variant ``name``: the config's with its controller settings."""
    objective, members, ensemble, sub_steps = VARIANTS[name]
    data = yaml.safe_load(config.read_text())
    section = data.setdefault("controller", {})
    section.update(objective=objective, members=members, ensemble=ensemble, sub_steps=sub_steps)
    section.setdefault("training", {}).update(steps=steps,
                                              batch_size=SAMPLES_PER_STEP // members)
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_all(config: Path, forecaster: Path, data: Path, workdir: Path, names: list[str],
              steps: int, jobs: int) -> dict[str, Path]:
    """Each variant's checkpoint, trained ``jobs`` at a time (a finished one is reused)."""
    from controller_regimes import run_trainings  # the sibling benchmark's job runner

    checkpoints = {name: workdir / f"{name}.pt" for name in names}
    run_trainings({name: [COMMAND, "train", "controller",
                          str(variant_config(config, name, steps, workdir)), "--forecaster",
                          str(forecaster), "--data", str(data), "--out", str(out), "--quiet"]
                   for name, out in checkpoints.items()}, workdir, jobs, f"{steps} steps")
    return checkpoints


def evaluate(config: Path, forecaster: Path, workdir: Path, checkpoints: dict[str, Path],
             eval_steps: int | None, workers: int) -> xr.Dataset:
    out = workdir / "evaluation.zarr"
    if not out.exists():
        methods = ["free", *(f"controller:checkpoint={path}" for path in checkpoints.values())]
        argv = [COMMAND, "evaluate", "da", str(config), "--methods", ",".join(methods),
                "--forecaster", str(forecaster), "--out", str(out), "--no-tune",
                "--workers", str(workers), "--quiet"]
        subprocess.run(argv + (["--steps", str(eval_steps)] if eval_steps else []), check=True)
    return xr.open_zarr(out).load()


def rows_of(result: xr.Dataset, names: list[str]) -> list[dict]:
    """Per method: each score's mean over regimes and test trajectories, and s / step."""
    rows = []
    for label, name in [("free", "free"), *((f"controller:{n}", n) for n in names)]:
        cell = result.sel(da_method=label)
        row = {"variant": name, **dict(zip(("objective", "members", "ensemble", "sub_steps"),
                                           VARIANTS.get(name, ("–", 8, False, None)),
                                           strict=True))}
        for key, _ in COLUMNS:
            row[key] = float(np.nanmean(cell[key].values))
        row["regimes_won_vs_free"] = int((cell["nrmse_long"].mean("trajectory") <
                                          result.sel(da_method="free")["nrmse_long"]
                                          .mean("trajectory")).sum())
        row["seconds_per_step"] = float(cell["seconds_per_step"].mean())
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    header = ["variant", "objective", "ensemble", "S", *(title for _, title in COLUMNS),
              "s / step"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|" + "---:|" * (len(COLUMNS) + 1)]
    for row in rows:
        cells = [row["variant"], str(row["objective"]), "yes" if row["ensemble"] else "no",
                 str(row["sub_steps"] or 16), *(f"{row[key]:.3f}" for key, _ in COLUMNS),
                 f"{row['seconds_per_step']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--forecaster", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("runs/controller-ablation"))
    parser.add_argument("--steps", type=int, default=400, help="training steps per variant")
    parser.add_argument("--eval-steps", type=int, help="assimilated steps (default: the long "
                        "horizon)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, and the "
                        "evaluation's workers")
    parser.add_argument("--only", help="comma-separated variants (default: all)")
    parser.add_argument("--no-train", action="store_true", help="evaluate the checkpoints "
                        "WORKDIR/VARIANT.pt as they are")
    parser.add_argument("--json", type=Path, help="write the rows here (and the table beside)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(VARIANTS)
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = {name: args.workdir / f"{name}.pt" for name in names}
    if not args.no_train:
        data = args.workdir / "train.zarr"
        subprocess.run([COMMAND, "simulate", str(args.config), "--out", str(data), "--quiet"],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        checkpoints = train_all(args.config, args.forecaster, data, args.workdir, names,
                                args.steps, args.jobs)
    result = evaluate(args.config, args.forecaster, args.workdir, checkpoints,
                      args.eval_steps, args.jobs)
    rows = rows_of(result, names)
    text = table(rows)
    print(text)
    if args.json:
        settings = {"config": str(args.config), "forecaster": str(args.forecaster),
                    "steps": args.steps, "eval_steps": args.eval_steps,
                    "n_test": int(result.attrs["n_test"]),
                    "n_members": int(result.attrs["n_members"])}
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
