"""The ``assimilate`` command. Thin: parse, validate, call the function of the same name."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from assimilate.errors import TrainingError
from pde.config import ConfigError
from pde.store import StoreError

__all__ = ["build_parser", "main"]


def _simulate(args: argparse.Namespace) -> None:
    from assimilate.config import load_config
    from pde.generate import simulate

    config = load_config(args.config)
    summary = simulate(
        config,
        args.out,
        trajectories=args.trajectories,
        steps=args.steps,
        seed=args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(summary)


def _export(args: argparse.Namespace) -> None:
    from pde.store import export

    written = export(args.store, args.to, overwrite=args.overwrite)
    print(f"wrote {written}")


def _train_emulator(args: argparse.Namespace) -> None:
    from assimilate.config import load_config
    from assimilate.emulator import train_emulator

    out = train_emulator(load_config(args.config), args.data, args.out, nu=args.nu,
                         steps=args.steps, progress=not args.quiet)
    print(f"wrote {out} (metrics: {out}.metrics.jsonl)")


def _train_forecaster(args: argparse.Namespace) -> None:
    from assimilate.config import load_config
    from assimilate.forecast import train_forecaster

    out = train_forecaster(load_config(args.config), args.data, args.out, steps=args.steps,
                           progress=not args.quiet)
    print(f"wrote {out} (metrics: {out}.metrics.jsonl)")


def _forecast(args: argparse.Namespace) -> None:
    from assimilate.forecast import forecast

    out = forecast(args.checkpoint, args.init, trajectory=args.trajectory, time=args.time,
                   steps=args.steps, members=args.members, out=args.out, seed=args.seed,
                   sub_steps=args.sub_steps, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {args.members} member(s) x {args.steps} steps to {out}")


def _evaluate_forecast(args: argparse.Namespace) -> None:
    from assimilate.evaluate import evaluate_forecast, format_table, plot_skill

    result = evaluate_forecast(args.checkpoint, args.data, args.out, n_steps=args.steps,
                               n_members=args.members, n_initial=args.initial,
                               sub_steps=args.sub_steps, seed=args.seed,
                               overwrite=args.overwrite, progress=not args.quiet)
    print(format_table(result))
    figure = plot_skill(result, f"{args.out}.png")
    print(f"wrote {args.out} and {figure}")


def _sample_emulator(args: argparse.Namespace) -> None:
    from assimilate.emulator import sample_emulator

    out = sample_emulator(args.checkpoint, args.n, args.out, batch_size=args.batch_size,
                          seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {args.n} samples to {out}")


def _diagnose(args: argparse.Namespace) -> None:
    from assimilate.data import write_dataset
    from assimilate.diagnostics.diagnose import diagnose, open_data, summary

    compare = {}
    for item in args.compare:
        label, _, path = item.rpartition("=") if "=" in item else (Path(item).stem, "", item)
        compare[label] = open_data(path)
    dims = args.dims.split(",") if args.dims is not None else None
    result = diagnose(open_data(args.store), args.var, dims=dims, thresholds=args.threshold,
                      series=args.series, pot_quantile=args.pot_quantile,
                      run_length=args.run_length, block_steps=args.block_steps,
                      compare=compare, label=args.label or Path(args.store).stem,
                      source=str(args.store), workers=args.workers, scheduler=args.scheduler,
                      progress=not args.quiet)
    write_dataset(result, args.out, overwrite=args.overwrite)
    print(summary(result))
    print(f"wrote {args.out}")


def _report(args: argparse.Namespace) -> None:
    from assimilate.report import render

    out = render(args.diagnostics, args.out, title=args.title, pdf=args.pdf)
    print(f"wrote {out}" + (f" and {args.pdf}" if args.pdf else ""))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _training_parser(verbs, model: str, description: str) -> argparse.ArgumentParser:
    """``assimilate train MODEL CONFIG --data STORE --out CKPT [--steps N] [--quiet]``."""
    parser = verbs.add_parser(model, help=description)
    parser.add_argument("config", help=f"YAML configuration with a {model} section")
    parser.add_argument("--data", required=True, help="trajectory store to learn from")
    parser.add_argument("--out", required=True, help="checkpoint file (resumed if present)")
    parser.add_argument("--steps", type=_positive, help=f"override {model}.training.steps")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assimilate", description="Amortised data assimilation with diffusion models."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    simulate = verbs.add_parser("simulate", help="write a trajectory store from a config")
    simulate.add_argument("config", help="YAML configuration (configs/*.yaml)")
    simulate.add_argument("--out", required=True, help="output Zarr store directory")
    simulate.add_argument("--trajectories", type=_positive, help="override dataset.trajectories")
    simulate.add_argument("--steps", type=_positive, help="override dataset.steps")
    simulate.add_argument("--seed", type=int, help="override dataset.seed (e.g. for a test set)")
    simulate.add_argument("--workers", type=_positive, default=1,
                          help="Dask worker processes (1: run in this process)")
    simulate.add_argument("--scheduler", help="address of an existing Dask scheduler")
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
    emulator = _training_parser(train, "emulator", "unconditional (t-)EDM / (t-)Flow of states")
    emulator.add_argument("--nu", type=float, help="Student-t degrees of freedom (> 2)")
    emulator.set_defaults(handler=_train_emulator)

    forecaster = _training_parser(train, "forecaster", "autoregressive diffusion forecaster")
    forecaster.set_defaults(handler=_train_forecaster)

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
    skill.add_argument("--overwrite", action="store_true", help="replace existing results")
    skill.add_argument("--quiet", action="store_true", help="no progress bar")
    skill.set_defaults(handler=_evaluate_forecast)

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
    diag.add_argument("--label", help="name shown in reports (default: the store's name)")
    diag.add_argument("--workers", type=_positive, help="local Dask worker processes")
    diag.add_argument("--scheduler", help="address of an existing Dask scheduler")
    diag.add_argument("--overwrite", action="store_true", help="replace an existing output")
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    diag.set_defaults(handler=_diagnose)

    report = verbs.add_parser("report", help="HTML tail-analysis report from diagnostics")
    report.add_argument("diagnostics", nargs="+", help="diagnostics stores (assimilate diagnose)")
    report.add_argument("--out", required=True, help="output HTML file")
    report.add_argument("--pdf", help="also write the figures to this PDF")
    report.add_argument("--title", help="report title")
    report.set_defaults(handler=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ConfigError, StoreError, TrainingError, FileNotFoundError, ValueError) as error:
        if os.environ.get("ASSIMILATE_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
