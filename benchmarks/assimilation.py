"""Cost of one assimilated step of each DA method, as a ratio to the free run of its model.

    python benchmarks/assimilation.py [--config ks-small] [--workdir DIR] [--trajectories 4]
                                      [--members 8] [--steps 60] [--threads 1]
                                      [--only M1,M2] [--json PATH]

On ``configs/CONFIG.yaml`` (``ks-small``: 64 points; ``kolmogorov-small``: 32²) with the
shipped forecaster ``checkpoints/CONFIG-forecaster.pt``: a truth store of ``--trajectories``
x 120 steps (seed 1, simulated into ``--workdir`` on first use), its ``dense``
observations (KS: every 8th point, every step, noise 0.1 climatological stds), ``--members``
members from a simulated climatology, ``--steps`` steps, all trajectories batched together
as :func:`assimilate.da.contract.assimilate` runs them. Two groups, each against the free run of the
same model in the same process:

- model = forecaster: free, dps, nudging, letkf, the shipped controller
  (``checkpoints/CONFIG-controller.pt``) alone and with ``refine`` = 1 and 3 test-time
  gradient steps (the semi-amortised mode), optimised-control (10 iterations), and the
  free run at 4 sub-steps (the shipped KS controller runs at 4: compare at the same S);
- model = simulator (the true KS): free, nudging, oi, enkf, etkf, letkf;

and the cost of the free run on the simulator over that on the forecaster. Seconds per
step are the analysis loop's own (``seconds_per_step``: no setup, no writing), after a
two-step warm-up run of the same case (JIT compilation of the simulator and analyses); a
cheap case is repeated (up to 5 s, 5 runs) and its fastest run kept. The free run of each
group is timed first and last, the faster is the baseline and the drift between the two
(``drift``) shows how much the machine's load moved meanwhile. nRMSE (after 20 steps of spin-up) says that the method
did assimilate. One torch and one XLA thread unless told otherwise: with more threads than
free cores the tiny per-step kernels wait on each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

# One thread each unless the caller says otherwise; set before the imports (XLA reads it).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax
import torch

from assimilate.config import load_config
from assimilate.da.climatology import Climatology
from assimilate.da.contract import assimilate, score
from assimilate.da.methods import build_method
from assimilate.models.forecaster import load_forecaster
from assimilate.observe import Observations, model_grid, observe
from pde import simulate
from pde.io.store import field_variable, open_trajectories
from pde.io.threads import configure as configure_threads

REPO = Path(__file__).resolve().parents[1]
REGIME, SPIN_UP, TRUTH_STEPS, TRUTH_SEED = "dense", 20, 120, 1
MIN_SECONDS, MAX_REPEATS = 5.0, 5
GROUPS = {
    "forecaster": ["dps", "nudging", "letkf", "controller", "controller:refine=1",
                   "controller:refine=3", "optimised-control", "free:sub_steps=4"],
    "simulator": ["nudging", "oi", "enkf", "etkf", "letkf"],
}


def paths(name: str) -> dict[str, Path]:
    """The config and shipped checkpoints of the small configuration ``name``."""
    return {"config": REPO / "configs" / f"{name}.yaml",
            "forecaster": REPO / "checkpoints" / f"{name}-forecaster.pt",
            "controller": REPO / "checkpoints" / f"{name}-controller.pt"}


def prepare(workdir: Path, name: str, trajectories: int) -> dict:
    """Config, truth, observations, forecaster and climatology, the truth simulated once."""
    files = paths(name)
    config = load_config(files["config"])
    store = workdir / f"{name}-truth-{trajectories}x{TRUTH_STEPS}-seed{TRUTH_SEED}.zarr"
    simulate(config, store, trajectories=trajectories, steps=TRUTH_STEPS, seed=TRUTH_SEED,
             progress=False)  # a finished store is left as it is
    truth = open_trajectories(store)
    observations = Observations.from_dataset(observe(store, REGIME, progress=False),
                                             **model_grid(truth))
    return {"config": config, "truth": truth[field_variable(truth)].values,
            "observations": observations, "forecaster": load_forecaster(files["forecaster"]),
            "climatology": Climatology.simulate(config.simulator.build(), seed=2),
            "settings": {"controller": {"checkpoint": str(files["controller"])}},
            "controller": files["controller"], "name": name}


def timed(case: dict, method: str, model: str, members: int, steps: int) -> dict:
    """Seconds per step of ``method`` (``NAME[:KEY=VALUE...]``) on ``model``: after a
    two-step warm-up of the same shapes, the fastest of as many timed runs as fit in ``MIN_SECONDS`` (at least one, at
    most ``MAX_REPEATS``), the least disturbed by whatever else the machine runs."""
    name, *pairs = method.split(":")
    given = {key: str(REPO / value) if key == "checkpoint" else value
             for key, value in (pair.split("=") for pair in pairs)}
    chosen = build_method(name, {"model": model, **case["settings"].get(name, {}), **given})
    options = {"initial": None, "config": case["config"], "forecaster": case["forecaster"],
               "climatology": case["climatology"], "n_members": members, "seed": 0,
               "progress": False}
    assimilate(chosen, case["observations"], n_steps=2, **options)
    seconds: list[float] = []
    while not seconds or (sum(seconds) * steps < MIN_SECONDS and len(seconds) < MAX_REPEATS):
        analysis = assimilate(chosen, case["observations"], n_steps=steps, **options)
        seconds.append(analysis.attrs["seconds_per_step"])
    scores = score(analysis, case["truth"][:, :steps + 1], spin_up=SPIN_UP)
    return {"method": method, "model": model, "seconds_per_step": min(seconds),
            "repeats": len(seconds), "nfe_per_step": analysis.attrs["nfe_per_step"],
            "nrmse_a": scores["nrmse.a"], "parameters": json.loads(analysis.attrs["parameters"])}


def _available(case: dict, method: str) -> bool:
    """A controller row runs only where its checkpoint is shipped."""
    if not method.startswith("controller"):
        return True
    named = [pair.split("=", 1)[1] for pair in method.split(":")[1:]
             if pair.startswith("checkpoint=")]
    return (REPO / named[0]).exists() if named else case["controller"].exists()


def run_group(case: dict, model: str, members: int, steps: int,
              only: list[str] | None = None) -> tuple[list[dict], dict]:
    """The group's rows with ``ratio`` to its free run, and the drift of that baseline;
    ``only``: just these of its methods."""
    first = timed(case, "free", model, members, steps)
    methods = [method.format(name=case["name"]) for method in GROUPS[model]]
    rows = [timed(case, method, model, members, steps) for method in methods
            if _available(case, method) and (only is None or method in only)]
    last = timed(case, "free", model, members, steps)
    baseline = min(first["seconds_per_step"], last["seconds_per_step"])
    free = first | {"seconds_per_step": baseline}
    for row in [free, *rows]:
        row["ratio"] = row["seconds_per_step"] / baseline
        print(json.dumps({k: row[k] for k in ("method", "model", "seconds_per_step", "ratio")}),
              flush=True)
    drift = {"first_s": first["seconds_per_step"], "last_s": last["seconds_per_step"],
             "drift": last["seconds_per_step"] / first["seconds_per_step"] - 1}
    return [free, *rows], drift


def table(rows: list[dict]) -> str:
    header = ("| method | model | seconds per step | ratio to free (same model) "
              "| NFE per step | nRMSE.a |")
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['model']} | {row['seconds_per_step']:.4g} | "
                     f"{row['ratio']:.3g} | {row['nfe_per_step']:.3g} | {row['nrmse_a']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the truth store is kept (default: a temporary directory)")
    parser.add_argument("--config", default="ks-small", choices=["ks-small", "kolmogorov-small"],
                        help="small configuration (configs/NAME.yaml, checkpoints/NAME-*.pt)")
    parser.add_argument("--trajectories", type=int, default=4, help="batched truths")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per pool of torch, BLAS and XLA")
    parser.add_argument("--only", help="comma-separated methods of the groups to time (the "
                        "free runs always are), e.g. controller,controller:refine=1")
    parser.add_argument("--json", type=Path, help="write the rows here (default: "
                        "benchmarks/results/assimilation-CONFIG.json)")
    args = parser.parse_args()
    configure_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; jax {jax.__version__}"
          f" on {jax.default_backend()}; {platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        case = prepare(workdir, args.config, args.trajectories)
        rows, drifts = [], {}
        for model in GROUPS:
            group, drifts[model] = run_group(case, model, args.members, args.steps,
                                             args.only and args.only.split(","))
            rows += group
    free = {row["model"]: row["seconds_per_step"] for row in rows if row["method"] == "free"}
    simulator_over_forecaster = free["simulator"] / free["forecaster"]
    print(table(rows))
    print(f"\nfree run, simulator / forecaster cost per step: {simulator_over_forecaster:.3g}")
    print("baseline drift (last free run / first - 1): " + ", ".join(
        f"{model} {d['drift']:+.0%}" for model, d in drifts.items()))
    files = paths(args.config)
    truth = {"trajectories": args.trajectories, "steps": TRUTH_STEPS, "seed": TRUTH_SEED}
    result = {"config": str(files["config"].relative_to(REPO)),
              "checkpoint": str(files["forecaster"].relative_to(REPO)), "truth": truth,
              "regime": REGIME, "members": args.members, "steps": args.steps,
              "spin_up": SPIN_UP, "torch_threads": torch.get_num_threads(),
              "simulator_over_forecaster": simulator_over_forecaster, "baseline": drifts,
              "rows": rows}
    args.json = args.json or REPO / "benchmarks" / "results" / f"assimilation-{args.config}.json"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
