"""``assimilate train MODEL``: the emulator, the forecaster, the controller."""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.cli.options import (
    CONFIG,
    DATA,
    FORECASTER,
    OUT,
    QUIET,
    REGIMES,
    STEPS,
    Option,
    add_verb,
    configured,
    option,
)

__all__ = ["add_verbs"]


def _wrote(checkpoint: Path) -> None:
    print(f"wrote {checkpoint} (metrics: {checkpoint}.metrics.jsonl)")


def _train_emulator(args: argparse.Namespace) -> None:
    config, given = configured(args)
    from assimilate.models.emulator import train_emulator

    _wrote(train_emulator(config, **given))


def _train_forecaster(args: argparse.Namespace) -> None:
    config, given = configured(args)
    from assimilate.models.forecaster import train_forecaster

    _wrote(train_forecaster(config, **given))


def _train_controller(args: argparse.Namespace) -> None:
    config, given = configured(args)
    from assimilate.control import train_controller

    _wrote(train_controller(config, **given))


def _training(model: str, *extra: Option) -> tuple[Option, ...]:
    """``assimilate train MODEL CONFIG --data STORE --out CKPT [--steps N] [--quiet] ...``
    with the ``extra`` options of this model."""
    return (CONFIG(help=f"YAML configuration with a {model} section"),
            DATA(help="trajectory store to learn from"),
            OUT(help="checkpoint file (resumed if present)"), *extra,
            STEPS(help=f"override {model}.training.steps"),
            option("--allow-other-data", action="store_true",
                   help="resume a checkpoint on another --data store than it began on"),
            QUIET)


def _nu(model: str) -> Option:
    return option("--nu", type=float,
                  help=f"override {model}.nu: Student-t degrees of freedom (> 2)")


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    models = verbs.add_parser("train", help="train a model").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    add_verb(models, "emulator", "unconditional (t-)EDM / (t-)Flow of states",
             _train_emulator, _training("emulator", _nu("emulator")))
    add_verb(models, "forecaster", "autoregressive diffusion forecaster", _train_forecaster,
             _training("forecaster", _nu("forecaster")))
    add_verb(models, "controller", "amortised DA controller that steers a frozen forecaster",
             _train_controller, _training("controller"),
             FORECASTER(required=True, help="forecaster checkpoint to steer"),
             REGIMES(help="regimes to train on, comma-separated (default: "
                          "controller.regimes, else all of the PDE's)"))
