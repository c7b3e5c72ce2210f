"""The ``assimilate`` command. Thin: parse, validate, call the function of the same name.

One module per group of verbs adds its verbs (``add_verbs``); options shared by several
verbs are declared once in :mod:`assimilate.cli.options`, and each verb's options are
declared only when that verb runs. Nothing heavy (torch, JAX, xarray)
is imported before a verb needs it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from assimilate.cli import da, data, evaluate, extremes, sample, train
from assimilate.cli.messages import say
from assimilate.cli.options import Parser, positive
from assimilate.errors import TrainingError
from pde.io.errors import ClusterError, ConfigError, OutputError, StoreError
from pde.io.threads import configure as configure_threads

# Errors a user can cause: one line, exit code 2. Anything else is a bug: exit code 70.
USER_ERRORS = (ConfigError, StoreError, OutputError, ClusterError, TrainingError,
               FileNotFoundError, ValueError)
GROUPS = (data, train, sample, evaluate, extremes, da)  # in the order of `assimilate --help`

__all__ = ["USER_ERRORS", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="assimilate", description="Amortised data assimilation with diffusion models."
    )
    parser.add_argument("--threads", type=positive, metavar="N",
                        help="threads per pool of torch, BLAS and XLA (default: "
                             "ASSIMILATE_THREADS, else half the cores nobody is using, "
                             "1 to 4)")
    parser.add_argument("--verbose", action="store_true",
                        help="say how many threads were chosen and why (on stderr)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for group in GROUPS:
        group.add_verbs(verbs)
    return parser


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
        say(f"error: {error}")
        return 2
    except OSError as error:
        if debug:
            raise
        where = f" ('{error.filename}')" if error.filename else ""
        say(f"error: {error.strerror or error}{where}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; nothing half-written was kept: rerun the same command to resume")
        return 130
    except Exception as error:  # a bug: say so in one line, not with a traceback
        if debug:
            raise
        say(f"internal error: {type(error).__name__}: {error}; rerun with ASSIMILATE_DEBUG=1 "
            "for a traceback and please report it")
        return 70
    finally:
        signal.signal(signal.SIGTERM, previous)
