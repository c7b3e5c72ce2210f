"""Parity with DAPPER on its own Kuramoto–Sivashinsky twin: accuracy and speed per cycle.

    make benchmark-dapper                      # installs DAPPER (constraints/dapper.txt)
    python benchmarks/dapper_parity.py [--cycles 3000] [--seeds 3] [--json PATH]

The twin is DAPPER's ``dapper.mods.KS.bocquet2019`` (after Bocquet, Brajard, Carrassi &
Bertino, arXiv:1903.00741): L = 32π, 128 points, ETDRK4 steps of 0.5, every point
observed once per time unit with unit noise, the truth and the first ensemble drawn around
DAPPER's attractor state ``x0`` with variance 0.001 (a first guess near the truth). DAPPER
simulates the truth and the observations; both sides then assimilate the same
observations, back to back in this process, each with its own model (ours:
``configs/ks-dapper.yaml``, which dealiases; at this resolution the aliased modes are
damped a thousandfold per time unit). Scores are DAPPER's: ``rmse.a``, the RMSE of the
analysis mean over the grid, averaged over the analysis times after the burn-in (the
first tenth of the cycles, DAPPER's ratio). "worst" is the largest ``rmse.a`` of any 100
consecutive cycles after the burn-in: a filter that lost the truth shows there even when
the mean hides it; above 0.5 (half the observation noise, five times the error of a
filter that tracks) the filter has lost the truth, and its run is counted as lost, not
averaged. Filters of this size lose the truth on some twins, DAPPER's as ours: the table
counts them.

With ``--cli`` (on by default) the LETKF N = 16 also runs as a user runs it: the twin
written as files (observations and truth as NetCDF in the documented layouts, the first
ensemble as a ``--background``), then ``assimilate run`` in a fresh process; the table
gives its whole wall time, the time in the assimilation loop (the analysis's
``wall_time_s``) and the rest: start-up, reading the observations and the truth, writing.

Seconds per cycle are wall times of whole runs divided by the number of cycles: DAPPER's
``assimilate`` (its statistics included, as it runs) and ours (``assimilate.da.contract.assimilate``,
its JIT compilation included). The ratio is DAPPER's over ours: above 1 ours is faster.
NumPy's BLAS and XLA each run on one thread unless ``OPENBLAS_NUM_THREADS`` or
``XLA_FLAGS`` are set, so the two sides share the machine alike. The settings are DAPPER's
suggested tunings for this twin (``bocquet2019.py``: expected ``rmse.a`` 0.11, 0.14 and
0.115); ours are the same filters, written as our settings. DAPPER's LETKF on this twin
solves one local analysis per batch of 4 neighbouring points (its ``nd_Id_localization``
batches); ours solves one per point, or with ``stride=4`` one every 4th point with the
weights interpolated in between: the "stride 4" row is the same amount of work as
DAPPER's, at the same localisation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import numpy as np
import xarray as xr

try:
    import dapper.da_methods as dapper_methods
    import dapper.mods as dapper_mods
    import dapper.tools.progressbar as dapper_progressbar
    from dapper.mods.KS import Model as dapper_ks
    from dapper.tools.localization import nd_Id_localization
    from dapper.tools.seeding import set_seed as dapper_seed
except ImportError as error:
    raise SystemExit(f"benchmarks/dapper_parity.py needs DAPPER ({error}); install it with "
                     "`make benchmark-dapper` or `.venv/bin/pip install --no-deps -r "
                     "constraints/dapper.txt`") from None

from assimilate.config import load_config
from assimilate.da.climatology import Climatology
from assimilate.da.contract import assimilate, score
from assimilate.da.methods import build_method
from assimilate.observe import Observations

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ks-dapper.yaml"
BLOCK = 100  # cycles per block of the "worst" column
LOST = 0.5  # a filter whose worst block's rmse.a exceeds this has lost the truth


@dataclass(frozen=True)
class Pair:
    """One filter as DAPPER writes it and as we do."""

    label: str
    n_members: int
    dapper: str  # evaluated against dapper.da_methods only: DAPPER's own syntax, shown
    ours: dict[str, str]
    method: str


PAIRS = (
    Pair("LETKF N=16", 16, "LETKF(N=16, loc_rad=51/1.82, infl=1.02, rot=True, taper='GC')",
         {"radius": "51dx", "inflation": "1.02", "inflate": "analysis", "rotate": "true"},
         "letkf"),
    Pair("LETKF N=16 stride 4", 16,
         "LETKF(N=16, loc_rad=51/1.82, infl=1.02, rot=True, taper='GC')",
         {"radius": "51dx", "inflation": "1.02", "inflate": "analysis", "rotate": "true",
          "stride": "4"}, "letkf"),
    Pair("LETKF N=6", 6, "LETKF(N=6, loc_rad=25/1.82, infl=1.06, rot=True, taper='GC')",
         {"radius": "25dx", "inflation": "1.06", "inflate": "analysis", "rotate": "true"},
         "letkf"),
    Pair("ETKF N=20", 20, "EnKF('Sqrt', N=20, infl=1.03, rot=True)",
         {"inflation": "1.03", "inflate": "analysis", "rotate": "true"}, "etkf"),
)
DAPPER_FILTERS = {  # the expressions above, built without eval
    "LETKF N=16": lambda: dapper_methods.LETKF(N=16, loc_rad=51 / 1.82, infl=1.02, rot=True,
                                               taper="GC"),
    "LETKF N=16 stride 4": lambda: dapper_methods.LETKF(N=16, loc_rad=51 / 1.82, infl=1.02,
                                                        rot=True, taper="GC"),
    "LETKF N=6": lambda: dapper_methods.LETKF(N=6, loc_rad=25 / 1.82, infl=1.06, rot=True,
                                              taper="GC"),
    "ETKF N=20": lambda: dapper_methods.EnKF("Sqrt", N=20, infl=1.03, rot=True),
}


def twin(cycles: int, seed: int):
    """DAPPER's hidden Markov model, its truth ``(2 cycles + 1, 128)`` and observations
    ``(cycles, 128)`` (the first at t = 1)."""
    model = dapper_ks(dt=0.5)
    chronology = dapper_mods.Chronology(model.dt, dko=2, Ko=cycles - 1, BurnIn=cycles // 10)
    observation = dapper_mods.Id_Obs(model.Nx)
    observation["noise"] = 1
    observation["localizer"] = nd_Id_localization((model.Nx,), (4,))
    hmm = dapper_mods.HiddenMarkovModel(
        {"M": model.Nx, "model": model.step, "linear": model.dstep_dx, "noise": 0},
        observation, chronology, dapper_mods.GaussRV(mu=model.x0, C=0.001))
    dapper_seed(1000 + seed)  # DAPPER draws from its own generator (and refuses 0)
    truth, observations = hmm.simulate()
    return hmm, model, truth, np.stack(list(observations))


def run_dapper(pair: Pair, hmm, truth, observations, seed: int) -> tuple[float, float, float]:
    """``(rmse.a, worst block, seconds per cycle)`` of DAPPER's filter."""
    experiment = DAPPER_FILTERS[pair.label]()
    dapper_seed(2000 + seed)
    started = time.perf_counter()
    experiment.assimilate(hmm, truth, observations)
    seconds = time.perf_counter() - started
    experiment.stats.average_in_time()
    errors = np.asarray(experiment.stats.err.rms.a)  # (cycles,) analysis RMSE
    burn_in = len(errors) // 10
    return (float(experiment.avrgs.err.rms.a.val), _worst(errors[burn_in:]),
            seconds / len(errors))


def run_ours(pair: Pair, model, truth, observations, seed: int) -> tuple[float, float, float]:
    """``(rmse.a, worst block, seconds per cycle)`` of our filter on the same twin."""
    config = load_config(CONFIG)
    x = config.simulator.build().coordinates()[0][1]
    cycles, n_points = observations.shape
    data = xr.Dataset(
        {"value": ("obs", observations.ravel()), "error_std": ("obs", np.ones(observations.size))},
        coords={"time": ("obs", np.repeat(np.arange(1.0, cycles + 1), n_points)),
                "x": ("obs", np.tile(x, cycles))})
    states = truth[::2]  # (cycles + 1, 128): the truth at t = 0, 1, ..., cycles
    rng = np.random.default_rng(seed + 1)
    first_guess = model.x0 + np.sqrt(0.001) * rng.standard_normal((1, pair.n_members, n_points))
    started = time.perf_counter()
    observed = Observations.from_dataset(data, space=(n_points,), coordinates=[x], time0=0.0,
                                         interval=1.0)
    analysis = assimilate(build_method(pair.method, pair.ours), observed, initial=first_guess,
                          config=config, climatology=Climatology(states[::10], "truth"),
                          n_members=pair.n_members, seed=seed, progress=False)
    seconds = time.perf_counter() - started
    burn_in = cycles // 10
    scores = score(analysis, states[None], spin_up=burn_in)
    mean = analysis["u"].values[0].mean(axis=0)[1:]  # (cycles, 128)
    errors = np.sqrt(np.mean((mean - states[1:]) ** 2, axis=1))
    return scores["rmse.a"], _worst(errors[burn_in:]), seconds / cycles


def run_cli(model, truth, observations, seed: int) -> dict[str, float]:
    """``assimilate run`` of the LETKF N = 16 on the twin written as files, in a fresh
    process: its wall time, the loop's and the difference."""
    pair = PAIRS[0]
    x = load_config(CONFIG).simulator.build().coordinates()[0][1]
    cycles, n_points = observations.shape
    rng = np.random.default_rng(seed + 1)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        xr.Dataset({"value": ("obs", observations.ravel()),
                    "error_std": ("obs", np.ones(observations.size))},
                   coords={"time": ("obs", np.repeat(np.arange(1.0, cycles + 1), n_points)),
                           "x": ("obs", np.tile(x, cycles))}).to_netcdf(folder / "obs.nc")
        xr.Dataset({"u": (("time", "x"), truth[::2])},
                   coords={"time": np.arange(cycles + 1.0), "x": x}).to_netcdf(
            folder / "truth.nc")
        members = model.x0 + np.sqrt(0.001) * rng.standard_normal((pair.n_members, n_points))
        xr.Dataset({"u": (("member", "x"), members)}, coords={"x": x}).to_netcdf(
            folder / "background.nc")
        command = [str(Path(sys.executable).with_name("assimilate")), "run", str(CONFIG),
                   "--method", pair.method, "--members", str(pair.n_members),
                   "--obs", str(folder / "obs.nc"), "--truth", str(folder / "truth.nc"),
                   "--background", str(folder / "background.nc"), "--spin-up",
                   str(cycles // 10), "--out", str(folder / "analysis.zarr"), "--quiet",
                   *[part for key, value in pair.ours.items()
                     for part in ("--set", f"{key}={value}")]]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        attrs = xr.open_zarr(folder / "analysis.zarr").attrs
    scores = json.loads(attrs["scores"])
    return {"wall": wall, "loop": float(attrs["wall_time_s"]),
            "outside": wall - float(attrs["wall_time_s"]), "rmse.a": scores["rmse.a"]}


def _worst(errors: np.ndarray) -> float:
    blocks = errors[: len(errors) // BLOCK * BLOCK].reshape(-1, BLOCK)
    return float(blocks.mean(axis=1).max()) if len(blocks) else float(errors.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=5, help="twins, seeds 0..S-1")
    parser.add_argument("--filters", default=",".join(p.label for p in PAIRS),
                        help="a comma-separated subset of: "
                             + ", ".join(p.label for p in PAIRS))
    parser.add_argument("--no-cli", dest="cli", action="store_false",
                        help="skip the end-to-end `assimilate run` timing")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    dapper_progressbar.disable_progbar = True
    chosen = [p for p in PAIRS if p.label in args.filters.split(",")]
    rows, runs = [], []
    for seed in range(args.seeds):
        hmm, model, truth, observations = twin(args.cycles, seed)
        if args.cli:
            runs.append(run_cli(model, truth, observations, seed))
            print(f"assimilate run, seed {seed}: " + ", ".join(
                f"{key} {value:.3f}" for key, value in runs[-1].items()), flush=True)
        theirs_by_filter: dict[str, tuple[float, float, float]] = {}
        for pair in chosen:
            if pair.dapper not in theirs_by_filter:  # the stride row shares DAPPER's run
                theirs_by_filter[pair.dapper] = run_dapper(pair, hmm, truth, observations, seed)
            theirs = theirs_by_filter[pair.dapper]
            ours = run_ours(pair, model, truth, observations, seed)
            rows.append({"filter": pair.label, "seed": seed, "dapper": pair.dapper,
                         "ours": pair.method + " " + " ".join(f"{k}={v}" for k, v in
                                                              pair.ours.items()),
                         "rmse.a DAPPER": theirs[0], "rmse.a ours": ours[0],
                         "worst DAPPER": theirs[1], "worst ours": ours[1],
                         "s/cycle DAPPER": theirs[2], "s/cycle ours": ours[2]})
            print(_line(rows[-1]), flush=True)
    print(_table(rows, args.cycles))
    if runs:
        walls = {key: np.array([run[key] for run in runs]) for key in runs[0]}
        print(f"\n`assimilate run` of the LETKF N=16, {args.cycles} cycles: whole run "
              f"{_spread(walls['wall'], 1)} s, loop {_spread(walls['loop'], 1)} s, outside "
              f"the loop {_spread(walls['outside'], 1)} s, rmse.a {_spread(walls['rmse.a'])}")
    if args.json:
        args.json.write_text(json.dumps({"cycles": args.cycles, "rows": rows, "cli": runs},
                                        indent=1))


def _line(row: dict) -> str:
    return (f"{row['filter']:<19} seed {row['seed']}: rmse.a DAPPER {row['rmse.a DAPPER']:.3f} "
            f"ours {row['rmse.a ours']:.3f}; worst {row['worst DAPPER']:.3f} / "
            f"{row['worst ours']:.3f}; ms/cycle {1e3 * row['s/cycle DAPPER']:.1f} / "
            f"{1e3 * row['s/cycle ours']:.1f}")


def _table(rows: list[dict], cycles: int) -> str:
    lines = [(f"\nDAPPER's KS twin, {cycles} cycles; rmse.a: median (range) over the twins "
             f"where the filter kept the truth (no 100 cycles above {LOST}); ours / DAPPER "
             "over the twins where both kept it\n"),
             ("| filter | twins | lost DAPPER | lost ours | rmse.a DAPPER | rmse.a ours | "
              "ours / DAPPER | ms per cycle DAPPER | ms per cycle ours | speed-up |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in dict.fromkeys(row["filter"] for row in rows):
        mine = [row for row in rows if row["filter"] == label]

        def column(key: str, scale: float = 1.0, mine: list[dict] = mine) -> np.ndarray:
            return scale * np.array([row[key] for row in mine])

        kept_theirs, kept_ours = column("worst DAPPER") < LOST, column("worst ours") < LOST
        both = kept_theirs & kept_ours
        theirs, ours = column("rmse.a DAPPER"), column("rmse.a ours")
        ratio = np.median(ours[both]) / np.median(theirs[both]) if both.any() else np.nan
        fast = column("s/cycle DAPPER") / column("s/cycle ours")
        lines.append(
            f"| {label} | {len(mine)} | {int((~kept_theirs).sum())} | "
            f"{int((~kept_ours).sum())} | {_spread(theirs[kept_theirs])} | "
            f"{_spread(ours[kept_ours])} | {ratio:.3f} | "
            f"{_spread(column('s/cycle DAPPER', 1e3), 1)} | "
            f"{_spread(column('s/cycle ours', 1e3), 1)} | {_spread(fast, 1)}× |")
    return "\n".join(lines)


def _spread(values: np.ndarray, digits: int = 3) -> str:
    if len(values) == 0:
        return "–"
    median = np.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({values.min():.{digits}f}–{values.max():.{digits}f})"


if __name__ == "__main__":
    main()
