"""Forecaster cost on this machine, against the simulator it emulates, in one run.

    python benchmarks/forecast.py [--quick] [--json PATH]

For the small KS and Kolmogorov configurations:

1. Training throughput (samples/s) of ``train_forecaster`` with the store in memory, read
   lazily with the background loader (``WindowSampler.loader``), and read lazily one
   batch at a time on the training thread: the median of the training loop's own
   samples/s over intervals of 5 steps, the first interval (warm-up) left out.
2. Forecast-step wall time of the shipped checkpoint (Euler, the configured sub-steps),
   for one member and for an ensemble of members batched together.
3. The simulator's wall time for the same stored step (one interval), for one trajectory
   and for a batch as large as the ensemble, compiled before timing.

The ratios in the last columns divide the simulator's time by the forecaster's: above 1
the emulator is the faster way to produce a state.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import torch
import xarray as xr

from assimilate.config import load_config
from assimilate.models.forecaster import load_forecaster, rollout, train_forecaster
from assimilate.training.batches import WindowSampler
from pde import simulate
from pde.io.threads import configure as configure_threads

REPO = Path(__file__).resolve().parents[1]
LOG_EVERY = 5
CASES = ("ks-small", "kolmogorov-small")


@contextlib.contextmanager
def loader_workers(workers: int):
    """Temporarily make every ``WindowSampler.loader`` use ``workers`` threads."""
    original = WindowSampler.loader

    def patched(self, *args, **kwargs):
        return original(self, *args, **(kwargs | {"workers": workers}))

    WindowSampler.loader = patched
    try:
        yield
    finally:
        WindowSampler.loader = original


def training_rate(config, store: Path, steps: int, memory_limit: int) -> float:
    """Median samples/s of the logged intervals after the first (which holds the warm-up)."""
    config = config.with_changes("forecaster", **{"training.log_every": LOG_EVERY,
                                                  "training.validate_every": 10**7})
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "forecaster.pt"
        train_forecaster(config, store, out, steps=steps, progress=False,
                         memory_limit=memory_limit)
        log = Path(f"{out}.metrics.jsonl").read_text().splitlines()
    return float(np.median([json.loads(line)["samples_per_s"] for line in log[1:]]))


def forecast_seconds(checkpoint: Path, initial: np.ndarray, members: int, steps: int) -> float:
    """Wall seconds per forecast step for ``members`` batched members (after a warm-up)."""
    forecaster = load_forecaster(checkpoint)
    rollout(forecaster, initial, 1, members)
    started = time.perf_counter()
    rollout(forecaster, initial, steps, members)
    return (time.perf_counter() - started) / steps


def simulator_seconds(config, batch: int, steps: int) -> float:
    """Wall seconds per stored interval for ``batch`` trajectories (compiled first)."""
    sim = config.simulator.build()
    state = sim.initial_state(jax.random.PRNGKey(0), batch)
    jax.block_until_ready(sim.trajectory(state, steps))
    started = time.perf_counter()
    jax.block_until_ready(sim.trajectory(state, steps))
    return (time.perf_counter() - started) / steps


def run_case(name: str, scratch: Path, quick: bool) -> dict:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    store = scratch / f"{name}.zarr"
    trajectories, n_steps = (8, 60) if quick else (16, 200)
    simulate(config.with_dataset(trajectories=trajectories, steps=n_steps), store,
             progress=False)
    steps = 4 * LOG_EVERY if quick else 12 * LOG_EVERY
    rates = {"in_memory": training_rate(config, store, steps, 2**40)}
    rates["lazy_background"] = training_rate(config, store, steps, 0)
    with loader_workers(0):
        rates["lazy_sequential"] = training_rate(config, store, steps, 0)

    checkpoint = REPO / "checkpoints" / f"{name}-forecaster.pt"
    forecaster = load_forecaster(checkpoint)
    field = xr.open_zarr(store)[forecaster.variable]
    initial = field.isel(trajectory=0, time=slice(0, forecaster.history)).values
    members = 4 if quick else 16
    n_forecast = 3 if quick else 10
    row = {
        "config": name,
        "training_samples_per_s": rates,
        "forecast_s_per_step": {1: forecast_seconds(checkpoint, initial, 1, n_forecast),
                                members: forecast_seconds(checkpoint, initial, members,
                                                          n_forecast)},
        "simulator_s_per_step": {1: simulator_seconds(config, 1, 50),
                                 members: simulator_seconds(config, members, 50)},
        "members": members,
        "sub_steps": forecaster.config.forecaster.sampling.steps,
    }
    return row


def format_rows(rows: list[dict]) -> str:
    lines = [
        ("| config | train in memory (samples/s) | lazy, background loader | lazy, sequential "
        "| forecast s/step (1 / M members) | simulator s/step (1 / M) | sim/forecast (1 / M) |"),
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rates, m = row["training_samples_per_s"], row["members"]
        fc, sim = row["forecast_s_per_step"], row["simulator_s_per_step"]
        lines.append(
            f"| {row['config']} | {rates['in_memory']:.0f} | {rates['lazy_background']:.0f} "
            f"| {rates['lazy_sequential']:.0f} | {fc[1]:.3f} / {fc[m]:.3f} (M={m}) "
            f"| {sim[1]:.4f} / {sim[m]:.4f} | {sim[1] / fc[1]:.3f} / {sim[m] / fc[m]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, for a smoke run")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per pool of torch, BLAS and XLA (default: pde.io.threads)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    configure_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; jax {jax.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.cases:
            rows.append(run_case(name, Path(scratch), args.quick))
            print(json.dumps(rows[-1]), flush=True)
    print(format_rows(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
