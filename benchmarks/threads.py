"""Thread counts against the work: the default policy, the libraries' defaults and one thread.

    python benchmarks/threads.py [--rounds 2] [--load N] [--settings A,B,...] [--json PATH]

Three workloads, each timed warm (after a short run that compiles and loads):

- ``rollout``: the shipped KS forecaster (``checkpoints/ks-small-forecaster.pt``), 4
  members, 3 steps of 16 Euler sub-steps;
- ``oi`` and ``enkf``: ``assimilate(build_method(NAME), ...)`` on ``configs/ks-small.yaml``
  with the true simulator, 2 trajectories x 16 members, 40 steps of the ``dense`` regime.

under these settings (``--settings``, the first one the baseline):

- ``library defaults``: what torch, OpenBLAS and XLA pick by themselves (one thread per
  core: ``ASSIMILATE_THREADS`` = the cores);
- ``default policy``: :func:`pde.io.threads.configure` with nothing set, what a user gets;
- ``1 thread``: ``ASSIMILATE_THREADS=1``;
- ``torch 1``, ``torch 1 + BLAS 1``: one library at a time, the others at their defaults
  (through their own variables), to tell which one matters;

on the machine as it is (``no added load``; its 1-minute load average is printed: on a
shared machine, other people's work) and with ``--load`` processes spinning on a core each
(default: one per core). XLA's pool is fixed when JAX starts, so each setting runs in a
fresh process (this script with ``--worker``) with the thread variables of this one
removed; the settings take turns in ``--rounds`` rounds so that they meet the same load,
and every ratio is the baseline's median time over the setting's, both measured in this
run: above 1 the setting is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
XLA_DEFAULT = "--xla_cpu_multi_thread_eigen=true"
SETTINGS = {  # name: the environment a worker runs in (the thread variables otherwise unset)
    "library defaults": {"ASSIMILATE_THREADS": str(len(os.sched_getaffinity(0)))},
    "default policy": {},
    "1 thread": {"ASSIMILATE_THREADS": "1"},
    "torch 1": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "2", "XLA_FLAGS": XLA_DEFAULT},
    "torch 1 + BLAS 1": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "XLA_FLAGS": XLA_DEFAULT},
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
STEPS = {"rollout": 3, "oi": 40, "enkf": 40}  # timed steps of each workload
WORKLOADS = tuple(STEPS)


def prepare(directory: Path) -> None:
    """The truth store and observations every worker reads (written once)."""
    from assimilate.config import load_config
    from assimilate.observe import observe
    from pde import simulate
    from pde.io.store import write_zarr

    config = load_config(REPO / "configs" / "ks-small.yaml")
    simulate(config, directory / "truth.zarr", trajectories=2, steps=60, seed=1000,
             progress=False)
    write_zarr(observe(directory / "truth.zarr", "dense", trajectories=2, progress=False),
               directory / "obs.zarr")


def work(directory: Path) -> dict:
    """One worker: each workload once to warm up, then once timed; with the threads used."""
    from assimilate.config import load_config
    from assimilate.da.climatology import Climatology
    from assimilate.da.contract import assimilate
    from assimilate.da.methods import build_method
    from assimilate.models.forecaster import load_forecaster, rollout
    from assimilate.observe import load_observations, model_grid
    from pde import open_trajectories
    from pde.io.threads import in_effect

    config = load_config(REPO / "configs" / "ks-small.yaml")
    truth = open_trajectories(directory / "truth.zarr")
    observations = load_observations(directory / "obs.zarr", **model_grid(truth))
    climatology = Climatology.from_store(directory / "truth.zarr")
    forecaster = load_forecaster(REPO / "checkpoints" / "ks-small-forecaster.pt")
    initial = truth.u.isel(trajectory=0, time=[0]).values

    def run(name: str, steps: int) -> None:
        if name == "rollout":
            rollout(forecaster, initial, n_steps=steps, n_members=4)
        else:
            assimilate(build_method(name, {}), observations, initial=None, config=config,
                       climatology=climatology, n_members=16, n_steps=steps, progress=False)

    seconds = {}
    for name in WORKLOADS:
        run(name, 2)
        started = time.perf_counter()
        run(name, STEPS[name])
        seconds[name] = time.perf_counter() - started
    return {"seconds": seconds, "threads": in_effect()}


def worker(directory: Path, setting: str) -> dict:
    environ = {name: value for name, value in os.environ.items()
               if name not in (*THREAD_VARIABLES, "ASSIMILATE_THREADS")}
    environ.update(SETTINGS[setting])
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                          environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, "--worker", str(directory)], env=environ,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the worker for '{setting}' failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


@contextlib.contextmanager
def spinning(processes: int) -> Iterator[None]:
    """``processes`` Python processes each keeping a core busy until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(processes)]
    try:
        time.sleep(1)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def phase(directory: Path, label: str, settings: list[str], rounds: int) -> list[dict]:
    """Rows of one phase: the median seconds of each (setting, workload), and their ratios
    to the first setting's."""
    times = {setting: {name: [] for name in WORKLOADS} for setting in settings}
    threads, loads = {}, []
    for _ in range(rounds):
        for setting in settings:
            loads.append(os.getloadavg()[0])
            result = worker(directory, setting)
            threads[setting] = result["threads"]
            for name, seconds in result["seconds"].items():
                times[setting][name].append(seconds)
    rows = []
    for setting in settings:
        row = {"phase": label, "load": round(float(np.mean(loads)), 1), "setting": setting,
               "threads": threads[setting]}
        for name in WORKLOADS:
            median = float(np.median(times[setting][name]))
            row[f"{name}_s"] = round(median, 3)
            row[f"{name}_ratio"] = round(float(np.median(times[settings[0]][name])) / median, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| machine | setting | threads (torch / BLAS / XLA) | "
             + " | ".join(f"{name} s | ratio" for name in WORKLOADS) + " |",
             "|---|---|---|" + "---:|---:|" * len(WORKLOADS)]
    for row in rows:
        used = row["threads"]
        threads = f"{used['torch']} / {used['blas']} / {used['xla']}"
        cells = " | ".join(f"{row[f'{name}_s']:.2f} | {row[f'{name}_ratio']:.2f}"
                           for name in WORKLOADS)
        lines.append(f"| {row['phase']} (load {row['load']}) | {row['setting']} | {threads} | "
                     f"{cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="turns of every setting")
    parser.add_argument("--load", type=int, default=len(os.sched_getaffinity(0)),
                        help="spinning processes in the loaded phase (default: one per core)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="comma-separated, the first the baseline (default: all)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(work(args.worker)))
        return
    with tempfile.TemporaryDirectory() as directory:
        prepare(Path(directory))
        settings = args.settings.split(",")
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            parser.error(f"--settings: unknown {sorted(unknown)}; known: {list(SETTINGS)}")
        rows = phase(Path(directory), "no added load", settings, args.rounds)
        with spinning(args.load):
            rows += phase(Path(directory), f"+{args.load} busy", settings, args.rounds)
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
