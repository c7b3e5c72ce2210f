"""Which training makes the forecaster contract like the physics? Candidates compared.

Each candidate is a forecaster section (``benchmarks/robust_forecaster.yaml``) trained
with the same budget on the same store, then scored by ``assimilate evaluate forecast``
on held-out trajectories: the free-run skill (high-correlation time, stability), the
relaxation from the truth plus noise of 0.5 stds and the nudging synchronisation, each
beside the true simulator's figure from the same run.

    python benchmarks/robust_forecaster.py --workdir /tmp/robust --steps 2000

Training resumes and finished evaluations are reused, so a killed run continues. The
stores are simulated on first use (configs/ks-small.yaml: 64 x 400 training states,
8 x 700 test states of another seed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).with_name("assimilate"))


def _run(*argv: str) -> None:
    subprocess.run([COMMAND, *argv, "--quiet"], check=True)


def _stores(workdir: Path, config: Path) -> tuple[Path, Path]:
    train, test = workdir / "train.zarr", workdir / "test.zarr"
    _run("simulate", str(config), "--out", str(train), "--trajectories", "64")
    _run("simulate", str(config), "--out", str(test), "--trajectories", "8", "--steps", "700",
         "--seed", "1")
    return train, test


def candidate(workdir: Path, base: Path, name: str, section: dict, steps: int,
              train: Path, test: Path) -> xr.Dataset:
    """Train (or resume) and evaluate one candidate; its results store."""
    data = yaml.safe_load(base.read_text())
    data["forecaster"].update(section)
    data["forecaster"]["training"]["steps"] = steps
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    checkpoint, results = workdir / f"{name}.pt", workdir / f"{name}.eval.zarr"
    _run("train", "forecaster", str(config), "--data", str(train), "--out", str(checkpoint))
    if not results.exists():
        _run("evaluate", "forecast", str(checkpoint), "--data", str(test), "--out",
             str(results), "--members", "2")
    return xr.open_zarr(results).load()


def summary(result: xr.Dataset, method: str) -> dict[str, float]:
    row = result.sel({"method": method})
    ratio = row["relaxation_std_ratio"].sel(noise=0.5)
    return {
        "high_correlation_time": float(row["high_correlation_time"]),
        "stable_fraction": float(row["stable_fraction"]),
        "nudging_nrmse": float(row["nudging_nrmse"]),
        "relaxation_std_at_10": float(ratio.sel(step=10)),
        "relaxation_std_at_200": float(ratio.sel(step=200)),
        "relaxation_max_departure": float(abs(ratio.sel(step=slice(10, None)) - 1).max()),
        "relaxation_spectrum_at_200": float(
            row["relaxation_spectrum_distance"].sel(noise=0.5, step=200)),
    }


def table(rows: dict[str, dict[str, float]]) -> str:
    keys = list(next(iter(rows.values())))
    lines = ["| candidate | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {name} | " + " | ".join(f"{row[key]:.3g}" for key in keys) + " |"
              for name, row in rows.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/robust-forecaster"))
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ks-small.yaml")
    parser.add_argument("--candidates", type=Path,
                        default=REPO / "benchmarks" / "robust_forecaster.yaml")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per candidate")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    train, test = _stores(args.workdir, args.config)
    rows, simulator = {}, None
    for name, section in yaml.safe_load(args.candidates.read_text()).items():
        result = candidate(args.workdir, args.config, name, section, args.steps, train, test)
        rows[name] = summary(result, "ardm")
        simulator = simulator or summary(result, "simulator")
    rows["simulator"] = simulator
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
