"""Verbs that draw states from a trained model: ``forecast``, ``sample emulator``."""

from __future__ import annotations

import argparse

from assimilate.cli.options import (
    CHECKPOINT,
    MEMBERS,
    OUT,
    OVERWRITE,
    QUIET,
    SEED,
    STEPS,
    SUB_STEPS,
    add_verb,
    keywords,
    option,
    positive,
    with_settings,
)

__all__ = ["add_verbs"]


def _forecast(args: argparse.Namespace) -> None:
    from assimilate.models.forecast import ForecastSettings, forecast

    settings, rest = with_settings(keywords(args), ForecastSettings)
    out = forecast(settings=settings, **rest)
    print(f"wrote {args.members} member(s) x {args.steps} steps to {out}")


def _sample_emulator(args: argparse.Namespace) -> None:
    from assimilate.models.emulator import sample_emulator

    out = sample_emulator(**keywords(args))
    print(f"wrote {args.n} samples to {out}")


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    add_verb(verbs, "forecast", "ensemble forecast from a stored state", _forecast,
             CHECKPOINT,
             option("--init", required=True, help="trajectory store holding the initial state"),
             option("--trajectory", type=int, default=0, help="trajectory index in --init"),
             option("--time", type=int, default=0, help="time index of the initial state"),
             STEPS(required=True, help="forecast steps"),
             MEMBERS(dest="members", default=1), SUB_STEPS, SEED,
             OUT, OVERWRITE(help="replace an existing store"), QUIET)
    models = verbs.add_parser("sample", help="draw samples from a model").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    add_verb(models, "emulator", "draw states from an emulator checkpoint", _sample_emulator,
             CHECKPOINT(help="emulator checkpoint"),
             option("--n", type=positive, required=True, help="number of samples"),
             OUT, option("--batch-size", type=positive, default=64), SEED,
             OVERWRITE(help="replace an existing store"), QUIET)
