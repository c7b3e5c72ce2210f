"""``assimilate evaluate MODEL``: a forecaster's skill, DA methods across regimes."""

from __future__ import annotations

import argparse

from assimilate.cli.options import (
    CHECKPOINT,
    CONFIG,
    CONTROLLER,
    DATA,
    FORECASTER,
    MEMBERS,
    OUT,
    OVERWRITE,
    QUIET,
    REGIMES,
    SCHEDULER,
    SEED,
    STEPS,
    SUB_STEPS,
    WORKERS,
    add_verb,
    configured,
    keywords,
    names,
    option,
    positive,
    with_settings,
)

__all__ = ["add_verbs"]


def _evaluate_forecast(args: argparse.Namespace) -> None:
    from assimilate.evaluation.forecast_skill import SkillSettings, evaluate_forecast, format_table

    settings, rest = with_settings(keywords(args), SkillSettings)
    print(format_table(evaluate_forecast(settings=settings, **rest)))
    print(f"wrote {args.out} and {args.out}.png")


def _evaluate_da(args: argparse.Namespace) -> None:
    config, given = configured(args)
    from assimilate.evaluation.harness import (
        HarnessSettings,
        evaluate_da,
        format_da_table,
        summaries,
    )

    settings, rest = with_settings(given, HarnessSettings)
    result = evaluate_da(config, settings, **rest)
    print(summaries(result), format_da_table(result), sep="\n\n")
    print(f"wrote {args.out}, {args.out}.md and {args.out}.png")


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    models = verbs.add_parser("evaluate", help="measure a model's skill").add_subparsers(
        dest="model", required=True, metavar="MODEL")
    add_verb(models, "forecast", "forecast skill against baselines", _evaluate_forecast,
             CHECKPOINT, DATA(help="held-out trajectory store"),
             OUT(help="results store (a PNG figure lands beside)"),
             STEPS(dest="n_steps", help="lead steps (KS 640, Kolmogorov 180)"),
             MEMBERS(default=4),
             option("--initial", dest="n_initial", type=positive,
                    help="initial states (default: all)"),
             option("--every", type=positive, metavar="N",
                    help="start every N states along each test trajectory (default: once)"),
             option("--climatology", metavar="STORE",
                    help="imported data: the training store; its mean at each time of day "
                         "is the 'diurnal' baseline"),
             SUB_STEPS, SEED,
             option("--skip-robustness", dest="robust", action="store_false",
                    help="skip relaxation and nudging synchronisation (imperfect states)"),
             OVERWRITE(help="replace existing results"), QUIET)
    add_verb(
        models, "da", "DA methods x observation regimes on held-out trajectories, tuned on "
        "validation ones", _evaluate_da,
        CONFIG(help="experiment config (its simulator makes the truth)"),
        option("--methods", type=names,
               help="comma-separated, each NAME[:KEY=VALUE...], e.g. "
                    "free,dps,letkf:model=forecaster (default: the config's "
                    "evaluation.methods, every method)"),
        REGIMES(help="comma-separated regime names (default: all six)"),
        OUT(help="results store; OUT.md, OUT.png and OUT.work/ land beside"),
        FORECASTER(help="forecaster checkpoint (model=forecaster)"),
        CONTROLLER(help="controller checkpoint: adds the controller method (or fills its "
                        "checkpoint)"),
        option("--truth", metavar="STORE",
               help="imported data: the test store (its first --trajectories)"),
        option("--climatology", metavar="STORE",
               help="imported data: the training store (climatology; its last --validation "
                    "trajectories tune)"),
        option("--trajectories", dest="n_test", type=positive,
               help="held-out test trajectories (default: evaluation.trajectories)"),
        option("--validation", dest="n_validation", type=positive,
               help="validation trajectories for tuning (default: evaluation.validation)"),
        MEMBERS(help="ensemble members (default: evaluation.members)"),
        STEPS(dest="n_steps", help="assimilated steps (default: the long horizon, KS 640, "
                                   "Kolmogorov 180)"),
        option("--no-tune", dest="tune", action="store_false",
               help="use the methods' default hyper-parameters"),
        SEED, WORKERS(type=int), SCHEDULER(help="address of a Dask scheduler to join"),
        OVERWRITE(help="replace existing results"), QUIET)
