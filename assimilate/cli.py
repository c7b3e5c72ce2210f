"""The ``assimilate`` command. Thin: parse, validate, call the function of the same name."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from assimilate.errors import TrainingError
from pde.io.errors import ClusterError, ConfigError, OutputError, StoreError
from pde.io.threads import configure as configure_threads

MAX_COUNT = 10_000_000  # --steps, --members, --n ...: beyond any real use
# Errors a user can cause: one line, exit code 2. Anything else is a bug: exit code 70.
USER_ERRORS = (ConfigError, StoreError, OutputError, ClusterError, TrainingError,
               FileNotFoundError, ValueError)

__all__ = ["build_parser", "main"]


def _simulate(args: argparse.Namespace) -> None:
    from assimilate.config import load_config

    config = load_config(args.config)  # a bad config fails before JAX is imported
    from pde.generate import simulate

    summary = simulate(
        config,
        args.out,
        trajectories=args.trajectories,
        steps=args.steps,
        seed=args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        scheduler_timeout=args.scheduler_timeout,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(summary)


def _export(args: argparse.Namespace) -> None:
    from pde.io.store import export

    written = export(args.store, args.to, overwrite=args.overwrite)
    print(f"wrote {written}")


def _train_emulator(args: argparse.Namespace) -> None:
    from assimilate.config import load_config

    config = load_config(args.config)
    from assimilate.models.emulator import train_emulator

    out = train_emulator(config, args.data, args.out, nu=args.nu,
                         steps=args.steps, progress=not args.quiet,
                         allow_other_data=args.allow_other_data)
    print(f"wrote {out} (metrics: {out}.metrics.jsonl)")


def _train_forecaster(args: argparse.Namespace) -> None:
    from assimilate.config import load_config

    config = load_config(args.config)
    from assimilate.models.forecaster import train_forecaster

    out = train_forecaster(config, args.data, args.out, steps=args.steps, nu=args.nu,
                           progress=not args.quiet, allow_other_data=args.allow_other_data)
    print(f"wrote {out} (metrics: {out}.metrics.jsonl)")


def _train_controller(args: argparse.Namespace) -> None:
    from assimilate.config import load_config

    config = load_config(args.config)
    from assimilate.control import train_controller

    out = train_controller(config, args.forecaster, args.data, args.out,
                           regimes=args.regimes and args.regimes.split(","),
                           steps=args.steps, progress=not args.quiet,
                           allow_other_data=args.allow_other_data)
    print(f"wrote {out} (metrics: {out}.metrics.jsonl)")


def _forecast(args: argparse.Namespace) -> None:
    from assimilate.models.forecaster import ForecastSettings, forecast

    settings = ForecastSettings(trajectory=args.trajectory, time=args.time, steps=args.steps,
                                members=args.members, seed=args.seed, sub_steps=args.sub_steps)
    out = forecast(args.checkpoint, args.init, settings, args.out, overwrite=args.overwrite,
                   progress=not args.quiet)
    print(f"wrote {args.members} member(s) x {args.steps} steps to {out}")


def _evaluate_forecast(args: argparse.Namespace) -> None:
    from assimilate.evaluation.forecast_skill import evaluate_forecast, format_table

    result = evaluate_forecast(args.checkpoint, args.data, args.out, n_steps=args.steps,
                               n_members=args.members, n_initial=args.initial,
                               sub_steps=args.sub_steps, seed=args.seed,
                               overwrite=args.overwrite, progress=not args.quiet,
                               robust=not args.skip_robustness)
    print(format_table(result))
    print(f"wrote {args.out} and {args.out}.png")


def _sample_emulator(args: argparse.Namespace) -> None:
    from assimilate.models.emulator import sample_emulator

    out = sample_emulator(args.checkpoint, args.n, args.out, batch_size=args.batch_size,
                          seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {args.n} samples to {out}")


def _covariate(spec: str):
    """``PATH:VARIABLE`` (or ``PATH`` holding one numeric variable) as a DataArray."""
    from assimilate.diagnostics.diagnose import open_data

    path, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    import numpy as np

    try:
        ds = open_data(path)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"--covariate: {error}") from None
    numeric = [v for v in ds.data_vars if np.issubdtype(ds[v].dtype, np.number)]
    if not name and len(numeric) != 1:
        raise ValueError(f"--covariate '{path}' holds {len(numeric)} numeric variables "
                         f"({', '.join(map(str, numeric)) or 'none'}); name one as PATH:VAR")
    name = name or str(numeric[0])
    if name not in ds.data_vars:
        raise ValueError(f"--covariate '{path}' has no variable '{name}'; its variables are: "
                         f"{', '.join(map(str, ds.data_vars))}")
    return ds[name].load()


def _diagnose(args: argparse.Namespace) -> None:
    from assimilate.diagnostics import ComputeSettings, DiagnoseSettings, diagnose, summary

    compare = {}
    for item in args.compare:
        label, _, path = item.rpartition("=") if "=" in item else (Path(item).stem, "", item)
        compare[label] = path
    covariate = _covariate(args.covariate) if args.covariate else None
    settings = DiagnoseSettings(
        variable=args.var, dims=args.dims.split(",") if args.dims is not None else None,
        thresholds=tuple(args.threshold), series=args.series, floor=args.floor,
        pot_quantile=args.pot_quantile, run_length=args.run_length,
        block_steps=args.block_steps, block=args.block, return_periods=args.return_periods,
        trend=args.trend or covariate is not None, trend_at=args.trend_at,
        per_point=args.per_point)
    compute = ComputeSettings(args.workers, args.scheduler, args.scheduler_timeout,
                              progress=not args.quiet)
    result = diagnose(args.store, settings, compare=compare, covariate=covariate,
                      label=args.label or "", out=args.out, overwrite=args.overwrite,
                      compute=compute)
    print(summary(result))
    print(f"wrote {args.out}")


def _evaluate_da(args: argparse.Namespace) -> None:
    from assimilate.config import load_config

    config = load_config(args.config)
    from assimilate.evaluation.harness import (
        HarnessSettings,
        evaluate_da,
        format_da_summary,
        format_da_table,
    )

    settings = HarnessSettings(
        methods=args.methods and args.methods.split(","),
        regimes=args.regimes and args.regimes.split(","), forecaster=args.forecaster,
        controller=args.controller, n_test=args.trajectories, n_validation=args.validation,
        n_members=args.members, n_steps=args.steps, tune=not args.no_tune, seed=args.seed,
        workers=args.workers, scheduler=args.scheduler)
    result = evaluate_da(config, settings, out=args.out, overwrite=args.overwrite,
                         progress=not args.quiet)
    print(format_da_summary(result), format_da_table(result), sep="\n\n")
    print(f"wrote {args.out}, {args.out}.md and {args.out}.png")


def _run(args: argparse.Namespace) -> int:
    from assimilate.da.methods import parse_settings
    from assimilate.da.run import RunInputs, run

    inputs = RunInputs(method=args.method, observations=args.obs,
                       settings=parse_settings(args.set), controller=args.controller,
                       forecaster=args.forecaster, background=args.background,
                       climatology=args.climatology, truth=args.truth, n_members=args.members,
                       n_steps=args.steps, spin_up=args.spin_up, seed=args.seed,
                       calendar=args.calendar)
    try:
        analysis, scores = run(args.config, inputs, out=args.out, overwrite=args.overwrite,
                               progress=not args.quiet)
    except FloatingPointError as error:  # the method diverged: not a bug, not bad input
        _say(f"failed: {error}; nothing was written")
        return 1
    attrs = analysis.attrs
    print(f"{attrs['method']} ({attrs['parameters']}) on regime {attrs['regime']}: "
          f"{analysis.sizes['trajectory']} trajectory(ies) x {attrs['n_members']} members x "
          f"{analysis.sizes['time'] - 1} steps in {attrs['wall_time_s']:.1f} s, "
          f"NFE {attrs['nfe']}")
    if scores:
        print("| " + " | ".join(scores) + " |")
        print("|" + "---|" * len(scores))
        print("| " + " | ".join(f"{value:.4g}" for value in scores.values()) + " |")
    print(f"wrote {args.out}")
    return 0


def _observe(args: argparse.Namespace) -> None:
    from assimilate.observe import observe, summary

    ds = observe(args.store, args.regime, args.out, trajectories=args.trajectories,
                 seed=args.seed, regimes_path=args.regimes, overwrite=args.overwrite,
                 progress=not args.quiet)
    print(summary(ds))
    print(f"wrote {args.out}")


def _cycle(args: argparse.Namespace) -> int:
    from assimilate.cycle import EXIT_FAILED, EXIT_RETRY, CycleBusy, CycleFailed, cycle

    try:
        outcome = cycle(args.workflow, until=args.until, redo=args.redo,
                        progress=not args.quiet)
    except CycleBusy as error:
        _say(f"busy: {error}")
        return EXIT_RETRY
    except CycleFailed as error:
        _say(f"failed: {error}")
        return EXIT_FAILED
    for note in outcome.notes:
        _say(f"note: {note}")
    print(outcome.message)
    return outcome.exit_code


def _trajectory_selection(text: str) -> int | list[int]:
    """``N`` (the first N trajectories) or ``I,J,...`` (those indices)."""
    try:
        if "," not in text:
            return _positive(text)
        return [int(part) for part in text.split(",") if part.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"must be a count N or indices I,J,..., got "
                                         f"{text!r}") from None


def _verify(args: argparse.Namespace) -> int:
    from pde.io.verify import verify

    path = Path(args.store)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"'{path}' is not a Zarr store (expected a directory with zarr.json)")
    report = verify(path, progress=not args.quiet)
    print(report)
    return 1 if report.damaged else 0


def _report(args: argparse.Namespace) -> None:
    from assimilate.report import render

    out = render(args.diagnostics, args.out, title=args.title, pdf=args.pdf,
                 overwrite=args.overwrite)
    print(f"wrote {out}" + (f" and {args.pdf}" if args.pdf else ""))


def _periods(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") \
            from None
    if not all(v > 0 and v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"return periods must be positive, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be an integer in 1..{MAX_COUNT}, got {value}")
    return value


def _point(text: str) -> int:
    """A cycle point: a model step, ``0..MAX_COUNT``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a cycle point (a model step), got "
                                         f"{text!r}") from None
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_COUNT}, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 3600], got {text!r}")
    return value


def _add_scheduler(parser: argparse.ArgumentParser) -> None:
    from pde.io.cluster import DEFAULT_SCHEDULER_TIMEOUT

    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    parser.add_argument("--scheduler-timeout", type=_seconds, default=DEFAULT_SCHEDULER_TIMEOUT,
                        metavar="SECONDS", help="give up joining --scheduler after this long "
                                                "(default %(default)g)")


def _training_parser(verbs, model: str, description: str, *,
                     nu: bool = False) -> argparse.ArgumentParser:
    """``assimilate train MODEL CONFIG --data STORE --out CKPT [--nu NU] [--steps N]
    [--quiet]``; ``--nu`` for the diffusion models."""
    parser = verbs.add_parser(model, help=description)
    parser.add_argument("config", help=f"YAML configuration with a {model} section")
    parser.add_argument("--data", required=True, help="trajectory store to learn from")
    parser.add_argument("--out", required=True, help="checkpoint file (resumed if present)")
    if nu:
        parser.add_argument("--nu", type=float,
                            help=f"override {model}.nu: Student-t degrees of freedom (> 2)")
    parser.add_argument("--steps", type=_positive, help=f"override {model}.training.steps")
    parser.add_argument("--allow-other-data", action="store_true",
                        help="resume a checkpoint on another --data store than it began on")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assimilate", description="Amortised data assimilation with diffusion models."
    )
    parser.add_argument("--threads", type=_positive, metavar="N",
                        help="threads per pool of torch, BLAS and XLA (default: "
                             "ASSIMILATE_THREADS, else half the cores nobody is using, "
                             "1 to 4)")
    parser.add_argument("--verbose", action="store_true",
                        help="say how many threads were chosen and why (on stderr)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    simulate = verbs.add_parser("simulate", help="write a trajectory store from a config")
    simulate.add_argument("config", help="YAML configuration (configs/*.yaml)")
    simulate.add_argument("--out", required=True, help="output Zarr store directory")
    simulate.add_argument("--trajectories", type=_positive, help="override dataset.trajectories")
    simulate.add_argument("--steps", type=_positive, help="override dataset.steps")
    simulate.add_argument("--seed", type=int, help="override dataset.seed (e.g. for a test set)")
    simulate.add_argument("--workers", type=_positive, default=1,
                          help="Dask worker processes (1: run in this process)")
    _add_scheduler(simulate)
    simulate.add_argument("--overwrite", action="store_true",
                          help="replace a store written with another configuration")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(handler=_simulate)

    export = verbs.add_parser("export", help="write a trajectory store as NetCDF")
    export.add_argument("store", help="trajectory store directory")
    export.add_argument("--to", required=True, help="output NetCDF file")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    export.set_defaults(handler=_export)

    train = verbs.add_parser("train", help="train a model").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    emulator = _training_parser(train, "emulator", "unconditional (t-)EDM / (t-)Flow of states",
                                nu=True)
    emulator.set_defaults(handler=_train_emulator)

    forecaster = _training_parser(train, "forecaster", "autoregressive diffusion forecaster",
                                  nu=True)
    forecaster.set_defaults(handler=_train_forecaster)

    controller = _training_parser(train, "controller", "amortised DA controller that steers a "
                                  "frozen forecaster")
    controller.add_argument("--forecaster", required=True, help="forecaster checkpoint to steer")
    controller.add_argument("--regimes", help="regimes to train on, comma-separated "
                            "(default: controller.regimes, else all of the PDE's)")
    controller.set_defaults(handler=_train_controller)

    run = verbs.add_parser("forecast", help="ensemble forecast from a stored state")
    run.add_argument("checkpoint", help="forecaster checkpoint")
    run.add_argument("--init", required=True, help="trajectory store holding the initial state")
    run.add_argument("--trajectory", type=int, default=0, help="trajectory index in --init")
    run.add_argument("--time", type=int, default=0, help="time index of the initial state")
    run.add_argument("--steps", type=_positive, required=True, help="forecast steps")
    run.add_argument("--members", type=_positive, default=1, help="ensemble members")
    run.add_argument("--sub-steps", type=_positive, help="denoising sub-steps per step")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", required=True, help="output Zarr store")
    run.add_argument("--overwrite", action="store_true", help="replace an existing store")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_forecast)

    evaluate = verbs.add_parser("evaluate", help="measure a model's skill").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    skill = evaluate.add_parser("forecast", help="forecast skill against baselines")
    skill.add_argument("checkpoint", help="forecaster checkpoint")
    skill.add_argument("--data", required=True, help="held-out trajectory store")
    skill.add_argument("--out", required=True, help="results store (a PNG figure lands beside)")
    skill.add_argument("--steps", type=_positive, help="lead steps (KS 640, Kolmogorov 180)")
    skill.add_argument("--members", type=_positive, default=4, help="ensemble members")
    skill.add_argument("--initial", type=_positive, help="initial states (default: all)")
    skill.add_argument("--sub-steps", type=_positive, help="denoising sub-steps per step")
    skill.add_argument("--seed", type=int, default=0)
    skill.add_argument("--skip-robustness", action="store_true",
                       help="skip relaxation and nudging synchronisation (imperfect states)")
    skill.add_argument("--overwrite", action="store_true", help="replace existing results")
    skill.add_argument("--quiet", action="store_true", help="no progress bar")
    skill.set_defaults(handler=_evaluate_forecast)
    harness = evaluate.add_parser("da", help="DA methods x observation regimes on held-out "
                                  "trajectories, tuned on validation ones")
    harness.add_argument("config", help="experiment config (its simulator makes the truth)")
    harness.add_argument("--methods",
                         help="comma-separated, each NAME[:KEY=VALUE...], e.g. "
                              "free,dps,letkf:model=forecaster (default: the config's "
                              "evaluation.methods, every method)")
    harness.add_argument("--regimes", help="comma-separated regime names (default: all six)")
    harness.add_argument("--out", required=True,
                         help="results store; OUT.md, OUT.png and OUT.work/ land beside")
    harness.add_argument("--forecaster", help="forecaster checkpoint (model=forecaster)")
    harness.add_argument("--controller", help="controller checkpoint: adds the controller "
                         "method (or fills its checkpoint)")
    harness.add_argument("--trajectories", type=_positive,
                         help="held-out test trajectories (default: evaluation.trajectories)")
    harness.add_argument("--validation", type=_positive,
                         help="validation trajectories for tuning (default: "
                              "evaluation.validation)")
    harness.add_argument("--members", type=_positive,
                         help="ensemble members (default: evaluation.members)")
    harness.add_argument("--steps", type=_positive,
                         help="assimilated steps (default: the long horizon, KS 640, "
                              "Kolmogorov 180)")
    harness.add_argument("--no-tune", action="store_true",
                         help="use the methods' default hyper-parameters")
    harness.add_argument("--seed", type=int, default=0)
    harness.add_argument("--workers", type=int, help="local Dask worker processes")
    harness.add_argument("--scheduler", help="address of a Dask scheduler to join")
    harness.add_argument("--overwrite", action="store_true", help="replace existing results")
    harness.add_argument("--quiet", action="store_true", help="no progress bar")
    harness.set_defaults(handler=_evaluate_da)

    sample = verbs.add_parser("sample", help="draw samples from a model").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    emulator = sample.add_parser("emulator", help="draw states from an emulator checkpoint")
    emulator.add_argument("checkpoint", help="emulator checkpoint")
    emulator.add_argument("--n", type=_positive, required=True, help="number of samples")
    emulator.add_argument("--out", required=True, help="output Zarr store")
    emulator.add_argument("--batch-size", type=_positive, default=64)
    emulator.add_argument("--seed", type=int, default=0)
    emulator.add_argument("--overwrite", action="store_true", help="replace an existing store")
    emulator.add_argument("--quiet", action="store_true", help="no progress bar")
    emulator.set_defaults(handler=_sample_emulator)

    diag = verbs.add_parser("diagnose", help="extreme-event diagnostics of a store (Dask)")
    diag.add_argument("store", help="Zarr store or NetCDF file")
    diag.add_argument("--out", required=True, help="output diagnostics store (Zarr)")
    diag.add_argument("--var", help="variable (default: the only numeric one)")
    diag.add_argument("--dims", help="TIME,SPACE... e.g. time,lat,lon ('' first: no time); "
                                     "other dims are pooled realisations")
    diag.add_argument("--compare", action="append", default=[], metavar="[LABEL=]STORE",
                      help="a store to score against this one (repeatable)")
    diag.add_argument("--threshold", type=float, action="append", default=[],
                      help="a threshold whose exceedance probability is counted (repeatable)")
    diag.add_argument("--series", help="series for the extreme-value analysis "
                                       "(default: dissipation or the spatial maximum)")
    diag.add_argument("--pot-quantile", type=float, default=0.9,
                      help="peaks-over-threshold threshold as a quantile of the series")
    diag.add_argument("--run-length", type=_positive,
                      help="declustering run length in steps (default: decorrelation time)")
    diag.add_argument("--block-steps", type=_positive, help="block length in steps (GEV)")
    diag.add_argument("--block", choices=("year", "season", "month"),
                      help="calendar block of the block maxima for datetime data (default: "
                           "year)")
    diag.add_argument("--return-periods", type=_periods, metavar="T,T,...",
                      help="return periods: years for datetime data (default 2,5,10,20,50,"
                           "100), else the time coordinate's units")
    diag.add_argument("--floor", type=float,
                      help="leave out values below this (e.g. 1 for wet days of "
                           "precipitation in mm) and count them")
    diag.add_argument("--per-point", action="store_true",
                      help="also fit GPD and GEV at every spatial point (maps)")
    diag.add_argument("--trend", action="store_true",
                      help="also fit a GEV whose location moves linearly in time (years "
                           "for datetime data) and test it against the stationary one")
    diag.add_argument("--covariate", metavar="PATH[:VAR]",
                      help="a series along time that the GEV location follows instead of "
                           "time (implies --trend; averaged over each block)")
    diag.add_argument("--trend-at", type=float, metavar="VALUE",
                      help="the year (or covariate value) of the effective return levels "
                           "(default: the last block)")
    diag.add_argument("--label", help="name shown in reports (default: the store's name)")
    diag.add_argument("--workers", type=_positive, help="local Dask worker processes")
    _add_scheduler(diag)
    diag.add_argument("--overwrite", action="store_true", help="replace an existing output")
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    diag.set_defaults(handler=_diagnose)

    report = verbs.add_parser("report", help="HTML tail-analysis report from diagnostics")
    report.add_argument("diagnostics", nargs="+", help="diagnostics stores (assimilate diagnose)")
    report.add_argument("--out", required=True, help="output HTML file")
    report.add_argument("--pdf", help="also write the figures to this PDF")
    report.add_argument("--title", help="report title")
    report.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out or --pdf file")
    report.set_defaults(handler=_report)

    from assimilate.da.methods import methods_help

    assim = verbs.add_parser("run", help="assimilate observations with one DA method")
    assim.add_argument("config", help="experiment config (its simulator sets grid and time step)")
    assim.add_argument("--method", required=True,
                       help=methods_help())
    assim.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="a method hyper-parameter, e.g. --set inflation=1.05 (repeatable)")
    assim.add_argument("--obs", required=True, help="observations (NetCDF or Zarr)")
    assim.add_argument("--out", required=True, help="analysis store to write (Zarr)")
    assim.add_argument("--members", type=_positive, default=16, help="ensemble members")
    assim.add_argument("--forecaster", help="forecaster checkpoint (methods on model=forecaster)")
    assim.add_argument("--controller", help="controller checkpoint (--method controller; the "
                       "same as --set checkpoint=CKPT)")
    assim.add_argument("--background", help="first background: a state or ensemble (NetCDF/"
                       "Zarr), e.g. members around a first guess near the truth; without it "
                       "the members are drawn from the climatology (a cold start); ensemble "
                       "filters (enkf, etkf, letkf) need distinct members: a single state is "
                       "refused")
    assim.add_argument("--climatology", help="store to draw the first background and OI's "
                       "covariance from (default: simulated afresh)")
    assim.add_argument("--truth", help="truth: a trajectory store, or NetCDF/Zarr with a "
                       "variable (time, x) or (trajectory, time, x) on the model's time axis "
                       "(a state at every step; picked by time); print rmse.a / rmse.f after "
                       "the spin-up")
    assim.add_argument("--calendar", metavar="ORIGIN,STEP",
                       help="read datetimes in --obs/--truth: the datetime of model time 0 and "
                            "the length of one model step, e.g. 2020-01-01T00:00,6h "
                            "(without it, datetimes are refused)")
    assim.add_argument("--steps", type=_positive, help="assimilate only the first N steps "
                       "(default: up to the last observation)")
    assim.add_argument("--spin-up", type=int, help="steps left out of the scores "
                       "(default: a quarter of the run)")
    assim.add_argument("--seed", type=int, default=0)
    assim.add_argument("--overwrite", action="store_true", help="replace an existing analysis")
    assim.add_argument("--quiet", action="store_true", help="no progress bar")
    assim.set_defaults(handler=_run)

    obs = verbs.add_parser("observe", help="synthetic observations of a truth store "
                                           "under a named regime")
    obs.add_argument("store", help="truth trajectory store")
    obs.add_argument("--regime", required=True, help="regime name (configs/regimes.yaml)")
    obs.add_argument("--out", required=True, help="output observations store (Zarr)")
    obs.add_argument("--trajectories", type=_trajectory_selection, metavar="N|I,J,...",
                     help="the first N trajectories, or these indices (default: all)")
    obs.add_argument("--seed", type=int, default=0, help="seed of the observation noise")
    obs.add_argument("--regimes", help="regimes file (default: configs/regimes.yaml)")
    obs.add_argument("--overwrite", action="store_true", help="replace an existing output")
    obs.add_argument("--quiet", action="store_true", help="no progress bar")
    obs.set_defaults(handler=_observe)

    cyc = verbs.add_parser(
        "cycle", help="one idempotent assimilation cycle, for schedulers (cron, Cylc)",
        description="Run the next cycle of a workflow whose observations have arrived in its "
                    "inbox: assimilate them from the last analysis, append the analysis and "
                    "a forecast to the analysis store, record the cycle. Safe to rerun, to "
                    "kill, and to start twice (see assimilate/cycle/__init__.py).",
        epilog="exit codes: 0 done (or already done: a no-op); 75 retry later (nothing to "
               "do yet, or another call is cycling the store); 1 the cycle failed, nothing "
               "kept; 2 bad input; 130 interrupted; 70 internal error")
    cyc.add_argument("workflow", help="workflow file (YAML: config, method, inbox, "
                                      "analysis, cycle_length, ...)")
    cyc.add_argument("--until", type=_point, metavar="POINT",
                     help="run every cycle up to this point, ready or not (a backfill; "
                          "forecast-only where no observations)")
    cyc.add_argument("--redo", type=_point, metavar="POINT",
                     help="discard this cycle and every later one and run them again "
                          "(late observations)")
    cyc.add_argument("--quiet", action="store_true", help="no progress bar")
    cyc.set_defaults(handler=_cycle)

    check = verbs.add_parser("verify", help="check every chunk and value of a store "
                                            "(exit code 1 on damage)")
    check.add_argument("store", help="Zarr store (trajectories, forecasts, diagnostics ...)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(handler=_verify)
    return parser


def _say(message: str) -> None:
    """``message`` on stderr on a line of its own, after closing any progress bar that the
    failure left open (it would otherwise share the line)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    print(message, file=sys.stderr)


def _terminate(signum: int, frame) -> None:
    raise KeyboardInterrupt  # clean up as for Ctrl-C: temporaries removed, locks released


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; exit codes: 0 done, 1 damage found (verify), a failed cycle or a
    diverged run, 2 a user error (one line on stderr), 70 an internal error, 75 retry later
    (cycle: nothing to do yet, or busy), 130 interrupted (Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("ASSIMILATE_DEBUG"))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        chosen = configure_threads(args.threads)  # before torch, NumPy or JAX load
        if args.verbose:
            print(chosen, file=sys.stderr)
        return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        if debug:
            raise
        _say(f"error: {error}")
        return 2
    except OSError as error:
        if debug:
            raise
        where = f" ('{error.filename}')" if error.filename else ""
        _say(f"error: {error.strerror or error}{where}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted; nothing half-written was kept: rerun the same command to resume")
        return 130
    except Exception as error:  # a bug: say so in one line, not with a traceback
        if debug:
            raise
        _say(f"internal error: {type(error).__name__}: {error}; rerun with ASSIMILATE_DEBUG=1 "
             "for a traceback and please report it")
        return 70
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
