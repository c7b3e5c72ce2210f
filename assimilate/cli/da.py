"""Data assimilation: ``run`` one method over observations, ``cycle`` a workflow."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from assimilate.cli.messages import say
from assimilate.cli.options import (
    CONFIG,
    CONTROLLER,
    FORECASTER,
    MEMBERS,
    OUT,
    OVERWRITE,
    QUIET,
    SEED,
    STEPS,
    add_verb,
    keywords,
    option,
    point,
    with_settings,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["add_verbs"]

def _methods_help() -> str:
    from assimilate.da.methods import methods_help

    return methods_help()


def _run(args: argparse.Namespace) -> int:
    from assimilate.da.methods import parse_settings
    from assimilate.da.run import RunInputs, run

    given = keywords(args)
    given["settings"] = parse_settings(given["settings"])
    inputs, rest = with_settings(given, RunInputs)
    try:
        analysis, scores = run(inputs=inputs, **rest)
    except FloatingPointError as error:  # the method diverged: not a bug, not bad input
        say(f"failed: {error}; nothing was written")
        return 1
    _describe(analysis, scores)
    print(f"wrote {args.out}")
    return 0


def _describe(analysis: xr.Dataset, scores: dict[str, float]) -> None:
    """What ran, on what, how fast; then the scores as a Markdown table."""
    attrs = analysis.attrs
    print(f"{attrs['method']} ({attrs['parameters']}) on regime {attrs['regime']}: "
          f"{analysis.sizes['trajectory']} trajectory(ies) x {attrs['n_members']} members x "
          f"{analysis.sizes['time'] - 1} steps in {attrs['wall_time_s']:.1f} s, "
          f"NFE {attrs['nfe']}")
    if scores:
        print("| " + " | ".join(scores) + " |")
        print("|" + "---|" * len(scores))
        print("| " + " | ".join(f"{value:.4g}" for value in scores.values()) + " |")


def _cycle(args: argparse.Namespace) -> int:
    from assimilate.cycle import EXIT_FAILED, EXIT_RETRY, CycleBusy, CycleFailed, cycle

    try:
        outcome = cycle(**keywords(args))
    except CycleBusy as error:
        say(f"busy: {error}")
        return EXIT_RETRY
    except CycleFailed as error:
        say(f"failed: {error}")
        return EXIT_FAILED
    for note in outcome.notes:
        say(f"note: {note}")
    print(outcome.message)
    return outcome.exit_code


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    add_verb(
        verbs, "run", "assimilate observations with one DA method", _run,
        CONFIG(help="experiment config (its simulator sets grid and time step)"),
        option("--method", required=True, help=_methods_help),
        option("--set", dest="settings", action="append", metavar="KEY=VALUE",
               help="a method hyper-parameter, e.g. --set inflation=1.05 (repeatable)"),
        option("--obs", dest="observations", required=True,
               help="observations (NetCDF or Zarr)"),
        OUT(help="analysis store to write (Zarr)"), MEMBERS(default=16),
        FORECASTER(help="forecaster checkpoint (methods on model=forecaster)"),
        CONTROLLER(help="controller checkpoint (--method controller; the same as --set "
                        "checkpoint=CKPT)"),
        option("--background", help="first background: a state or ensemble (NetCDF/Zarr), "
               "e.g. members around a first guess near the truth; without it the members are "
               "drawn from the climatology (a cold start); ensemble filters (enkf, etkf, "
               "letkf) need distinct members: a single state is refused"),
        option("--climatology", help="store to draw the first background and OI's covariance "
               "from (default: simulated afresh)"),
        option("--truth", help="truth: a trajectory store, or NetCDF/Zarr with a variable "
               "(time, x) or (trajectory, time, x) on the model's time axis (a state at every "
               "step; picked by time); print rmse.a / rmse.f after the spin-up"),
        option("--verify", metavar="OBS",
               help="observations never assimilated (withheld stations): print the "
                    "analysis' and background's RMSE against them after the spin-up"),
        option("--calendar", metavar="ORIGIN,STEP",
               help="read datetimes in --obs/--truth: the datetime of model time 0 and the "
                    "length of one model step, e.g. 2020-01-01T00:00,6h (without it, "
                    "datetimes are refused)"),
        STEPS(dest="n_steps", help="assimilate only the first N steps (default: up to the "
                                   "last observation)"),
        option("--spin-up", type=int, help="steps left out of the scores (default: a quarter "
               "of the run)"),
        SEED, OVERWRITE(help="replace an existing analysis"), QUIET)
    add_verb(
        verbs, "cycle", "one idempotent assimilation cycle, for schedulers (cron, Cylc)",
        _cycle,
        option("workflow", help="workflow file (YAML: config, method, inbox, analysis, "
                                "cycle_length, ...)"),
        option("--until", type=point, metavar="POINT",
               help="run every cycle up to this point, ready or not (a backfill; "
                    "forecast-only where no observations)"),
        option("--redo", type=point, metavar="POINT",
               help="discard this cycle and every later one and run them again "
                    "(late observations)"),
        QUIET,
        description="Run the next cycle of a workflow whose observations have arrived in its "
                    "inbox: assimilate them from the last analysis, append the analysis and "
                    "a forecast to the analysis store, record the cycle. Safe to rerun, to "
                    "kill, and to start twice (see assimilate/cycle/__init__.py).",
        epilog="exit codes: 0 done (or already done: a no-op); 75 retry later (nothing to "
               "do yet, or another call is cycling the store); 1 the cycle failed, nothing "
               "kept; 2 bad input; 130 interrupted; 70 internal error")
