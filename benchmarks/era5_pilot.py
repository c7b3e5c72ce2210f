"""The ERA5 pilot: assimilation of station observations of real 2-m temperature, scored
against the reanalysis and against stations that were never assimilated.

    python benchmarks/era5_pilot.py [--forecaster checkpoints/era5-t2m-forecaster.pt]
        [--workdir runs/era5-pilot] [--methods free,oi,letkf,nudging,dps]
        [--regimes stations-40,stations-15-3h] [--members 8] [--steps 72]
        [--json benchmarks/results/era5-pilot.json]

From the shipped file ``examples/era5/era5-t2m-uk-2019-03.nc`` (imported into
``--workdir`` on first use): the training store (days 1-24 as daily segments; the
climatology every run draws its first members from, and OI's covariance) and the test week
(days 25-31, one segment). Each regime observes the test week at its stations (bilinear
weights, 0.5 K noise) and, separately, at its 20 withheld stations. Each method runs on
the learned forecaster from a cold start (members drawn from the training days), over
``--steps`` hours, and is scored after a quarter of them: ``rmse.a`` against the ERA5 field
itself (every grid point), ``withheld_rmse.a`` against the withheld stations (observation
minus analysis, the noise included, as operational verification), CRPS and spread/RMSE of
the ensemble, and its wall time. One thread per pool (the machine's other core is left to
whatever else runs). The table is printed as Markdown; ``--json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("ASSIMILATE_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "examples" / "era5" / "era5-t2m-uk-2019-03.nc"
CONFIG = REPO / "configs" / "era5-t2m.yaml"
COLUMNS = (("rmse.a", "RMSE vs ERA5 (K)"), ("withheld_rmse.a", "withheld stations RMSE (K)"),
           ("withheld_rmse.f", "withheld, background (K)"), ("crps.a", "CRPS / clim. std"),
           ("spread_ratio.a", "spread/RMSE"), ("seconds_per_step", "s / step"))


def prepare(workdir: Path, regimes: list[str]) -> dict[str, Path]:
    """The training and test stores and each regime's observations, made once."""
    from assimilate.observe import observe
    from pde.ingest import import_data

    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"train": workdir / "train.zarr", "test": workdir / "test.zarr"}
    if not paths["train"].exists():
        import_data([SOURCE], paths["train"], period="2019-03-01/2019-03-25", segment="1D",
                    progress=False)
    if not paths["test"].exists():
        import_data([SOURCE], paths["test"], period="2019-03-25/2019-04-01", progress=False)
    for regime in regimes:
        for name in (regime, f"{regime}-withheld"):
            paths[name] = workdir / f"{name}.zarr"
            if not paths[name].exists():
                observe(paths["test"], name, paths[name], progress=False)
    return paths


def run_one(method: str, regime: str, paths: dict[str, Path], forecaster: Path,
            members: int, steps: int, workdir: Path) -> dict[str, float]:
    from assimilate.da.run import RunInputs, run

    inputs = RunInputs(method, paths[regime], settings={"model": "forecaster"},
                       forecaster=forecaster, climatology=paths["train"], truth=paths["test"],
                       verify=paths[f"{regime}-withheld"], n_members=members, n_steps=steps)
    started = time.perf_counter()
    analysis, scores = run(CONFIG, inputs, out=workdir / f"{regime}-{method}.zarr",
                           overwrite=True, progress=False)
    return {**scores, "seconds_per_step": float(analysis.attrs["seconds_per_step"]),
            "wall_s": time.perf_counter() - started}


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for regime, rows in results.items():
        lines += [f"**{regime}**", "", "| method | " + " | ".join(c for _, c in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        for method, scores in rows.items():
            cells = [f"{scores[key]:.3g}" if key in scores else "–" for key, _ in COLUMNS]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forecaster", type=Path,
                        default=REPO / "checkpoints" / "era5-t2m-forecaster.pt")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "era5-pilot")
    parser.add_argument("--methods", default="free,oi,letkf,nudging,dps")
    parser.add_argument("--regimes", default="stations-40,stations-15-3h")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=72)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    regimes = args.regimes.split(",")
    paths = prepare(args.workdir, regimes)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for regime in regimes:
        for method in args.methods.split(","):
            found = run_one(method, regime, paths, args.forecaster, args.members, args.steps,
                            args.workdir)
            results.setdefault(regime, {})[method] = found
            print(f"{regime} {method}: rmse.a {found['rmse.a']:.3f} K, withheld "
                  f"{found['withheld_rmse.a']:.3f} K, {found['wall_s']:.0f} s", flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"members": args.members, "steps": args.steps,
                                         "forecaster": str(args.forecaster),
                                         "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
