"""Options that several verbs share, declared once, and the value types of the command line.

Each option's ``dest`` is the keyword of the function its verb calls (``--members`` is
``n_members`` where that function says so, ``--quiet`` is ``progress``), so a handler
passes :func:`keywords` of the parsed arguments on unchanged. The flag names the value in
``--help`` (``--members MEMBERS``) whatever the dest.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence

from pde.io.cluster import DEFAULT_SCHEDULER_TIMEOUT

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "CONTROLLER",
    "DASK",
    "DATA",
    "FORECASTER",
    "MAX_COUNT",
    "MEMBERS",
    "OUT",
    "OVERWRITE",
    "PARSER_DESTS",
    "QUIET",
    "REGIMES",
    "SCHEDULER",
    "SCHEDULER_TIMEOUT",
    "SEED",
    "STEPS",
    "SUB_STEPS",
    "WORKERS",
    "Option",
    "Parser",
    "add_options",
    "add_verb",
    "configured",
    "keywords",
    "names",
    "option",
    "periods",
    "point",
    "positive",
    "seconds",
    "trajectory_selection",
    "with_settings",
]

MAX_COUNT = 10_000_000  # --steps, --members, --n ...: beyond any real use
# set by the top-level parser, not by a verb: never a keyword of a verb's function
PARSER_DESTS = frozenset({"threads", "verbose", "verb", "model", "handler"})
VALUELESS = frozenset({"store_true", "store_false", "store_const", "append_const", "count"})


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not low <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be an integer in {low}..{MAX_COUNT}, got {value}")
    return value


def positive(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def point(text: str) -> int:
    """A cycle point: a model step, ``0..MAX_COUNT``."""
    return _integer(text, 0, "a cycle point (a model step)")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 3600], got {text!r}")
    return value


def periods(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") \
            from None
    if not all(v > 0 and v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"return periods must be positive, got {text!r}")
    return values


def names(text: str) -> list[str] | None:
    """``A,B,...`` as a list; empty: none given (the function's default)."""
    return text.split(",") if text else None


def trajectory_selection(text: str) -> int | list[int]:
    """``N`` (the first N trajectories) or ``I,J,...`` (those indices)."""
    try:
        if "," not in text:
            return positive(text)
        return [int(part) for part in text.split(",") if part.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"must be a count N or indices I,J,..., got "
                                         f"{text!r}") from None


class Option:
    """One ``add_argument`` call; calling it gives a variant, e.g. ``SEED(default=None)``.

    A plain class, not a dataclass: building a dataclass cost every command ~1 ms (measured).
    """

    __slots__ = ("flags", "settings")

    def __init__(self, flags: tuple[str, ...], settings: Mapping[str, object]) -> None:
        self.flags = flags
        self.settings = settings

    def __repr__(self) -> str:
        return f"Option{self.flags!r}"

    def __call__(self, **changes: object) -> Option:
        return Option(self.flags, {**self.settings, **changes})

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        settings = dict(self.settings)
        if callable(settings.get("help")):  # costly help, built only when the verb parses
            settings["help"] = settings["help"]()
        named = self.flags[0].startswith("-") and settings.get("action") not in VALUELESS
        if named and "dest" in settings and "metavar" not in settings:
            settings["metavar"] = self.flags[0].lstrip("-").replace("-", "_").upper()
        parser.add_argument(*self.flags, **settings)


def option(*flags: str, **settings: object) -> Option:
    return Option(flags, settings)


def add_options(parser: argparse.ArgumentParser, *options: Option | Sequence[Option]) -> None:
    """Add ``options`` to ``parser`` in order; a sequence is a named group (``DASK``)."""
    for item in options:
        for one in (item,) if isinstance(item, Option) else item:
            one.add_to(parser)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that declares its ``options`` when it first parses, so that
    ``assimilate VERB`` declares VERB's options only, and pays for a costly help text (``run``
    reads every method file for its ``--method`` help) only when that verb runs. Its
    subparsers are Parsers too."""

    def __init__(self, *args, options: Sequence[Option | Sequence[Option]] = (),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pending = tuple(options)

    def declare(self) -> Parser:
        """Add the options not added yet (parsing, ``--help`` included, does it first)."""
        pending, self.pending = self.pending, ()
        add_options(self, *pending)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.declare()
        return super().parse_known_args(args, namespace)


def add_verb(verbs: argparse._SubParsersAction, name: str, summary: str,
             handler: Callable[[argparse.Namespace], int | None],
             *options: Option | Sequence[Option], **settings: object) -> Parser:
    """The parser of the verb ``name`` (``summary``: its line in the list of verbs): it
    takes ``options``, and ``handler`` runs it."""
    parser = verbs.add_parser(name, help=summary, options=options, **settings)
    parser.set_defaults(handler=handler)
    return parser


def keywords(args: argparse.Namespace) -> dict[str, object]:
    """The parsed options of the verb: the keyword arguments of its function."""
    return {dest: value for dest, value in vars(args).items() if dest not in PARSER_DESTS}


def with_settings(given: dict[str, object], settings: type) -> tuple[object, dict[str, object]]:
    """The settings object (a dataclass) of a verb built from its keywords in ``given``,
    and the keywords left for the function itself."""
    fields = {field.name for field in dataclasses.fields(settings)}
    return (settings(**{k: v for k, v in given.items() if k in fields}),
            {k: v for k, v in given.items() if k not in fields})


def configured(args: argparse.Namespace) -> tuple[object, dict[str, object]]:
    """The verb's configuration, loaded and validated (before torch or JAX is imported), and
    its other keywords."""
    from assimilate.config import load_config

    given = keywords(args)
    return load_config(given.pop("config")), given


CONFIG = option("config", help="YAML configuration (configs/*.yaml)")
CHECKPOINT = option("checkpoint", help="forecaster checkpoint")
OUT = option("--out", required=True, help="output Zarr store")
OVERWRITE = option("--overwrite", action="store_true", help="replace an existing output")
QUIET = option("--quiet", dest="progress", action="store_false", help="no progress bar")
SEED = option("--seed", type=int, default=0)
MEMBERS = option("--members", dest="n_members", type=positive, help="ensemble members")
STEPS = option("--steps", type=positive)
SUB_STEPS = option("--sub-steps", type=positive, help="denoising sub-steps per step")
DATA = option("--data", required=True)
FORECASTER = option("--forecaster", help="forecaster checkpoint")
CONTROLLER = option("--controller", help="controller checkpoint")
REGIMES = option("--regimes", type=names, help="comma-separated regime names")

WORKERS = option("--workers", type=positive, help="local Dask worker processes")
SCHEDULER = option("--scheduler", help="address of an existing Dask scheduler")
SCHEDULER_TIMEOUT = option("--scheduler-timeout", type=seconds,
                           default=DEFAULT_SCHEDULER_TIMEOUT, metavar="SECONDS",
                           help="give up joining --scheduler after this long "
                                "(default %(default)g)")
DASK = (SCHEDULER, SCHEDULER_TIMEOUT)  # joining an existing Dask scheduler
