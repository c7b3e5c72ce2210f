"""The command line and the Python API cannot drift apart: every option of a verb is a
keyword of the function that the verb calls (``--members`` is ``n_members`` where the
function says so), and every function keyword the verb sets is spelled the same."""

from __future__ import annotations

import argparse
import importlib
import inspect

import pytest

from assimilate.cli import build_parser
from assimilate.cli.options import PARSER_DESTS, keywords

# each verb, what it calls (a function, or a settings class and the function taking it: the
# options are keywords of one of them), and the options its handler uses itself rather than
# passing on (diagnose's handler reads the covariate and gathers the Dask options)
CALLS: dict[str, tuple[str | tuple[str, ...], set[str]]] = {
    "simulate": ("pde.generate:simulate", set()),
    "import": ("pde.ingest:import_data", set()),
    "observe": ("assimilate.observe:observe", set()),
    "export": ("pde.io.store:export", set()),
    "verify": ("pde.io.verify:verify", set()),
    "train emulator": ("assimilate.models.emulator:train_emulator", set()),
    "train forecaster": ("assimilate.models.forecaster:train_forecaster", set()),
    "train controller": ("assimilate.control:train_controller", set()),
    "forecast": (("assimilate.models.forecast:ForecastSettings",
                  "assimilate.models.forecast:forecast"), set()),
    "sample emulator": ("assimilate.models.emulator:sample_emulator", set()),
    "evaluate forecast": (("assimilate.evaluation.forecast_skill:SkillSettings",
                           "assimilate.evaluation.forecast_skill:evaluate_forecast"), set()),
    "evaluate da": (("assimilate.evaluation.harness:HarnessSettings",
                     "assimilate.evaluation.harness:evaluate_da"), set()),
    "run": (("assimilate.da.run:RunInputs", "assimilate.da.run:run"), set()),
    "cycle": ("assimilate.cycle:cycle", set()),
    "diagnose": (("assimilate.diagnostics:DiagnoseSettings", "assimilate.diagnostics:diagnose"),
                 {"store", "covariate", "workers", "scheduler", "scheduler_timeout",
                  "progress"}),
    "indices": ("assimilate.diagnostics.indices:write_indices", set()),
    "report": ("assimilate.report:render", set()),
}


def _verbs(parser: argparse.ArgumentParser, prefix: str = ""):
    """``(verb, parser)`` of every leaf verb, e.g. ``("train emulator", ...)``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _verbs(sub, f"{prefix}{name} ")
            return
    yield prefix.strip(), parser.declare()  # a verb declares its options when it parses


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions
            if not isinstance(action, argparse._HelpAction)} - PARSER_DESTS


def _function(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


VERBS = dict(_verbs(build_parser()))


def test_every_verb_names_the_function_it_calls() -> None:
    assert set(VERBS) == set(CALLS)


@pytest.mark.parametrize("verb", sorted(CALLS))
def test_each_option_is_a_keyword_of_the_function(verb: str) -> None:
    targets, handled = CALLS[verb]
    targets = (targets,) if isinstance(targets, str) else targets
    keyword = {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
    accepted = {name for target in targets
                for name, p in inspect.signature(_function(target)).parameters.items()
                if p.kind in keyword}
    dests = _dests(VERBS[verb])
    assert handled <= dests, f"{verb}: the handler's own options are gone: {handled - dests}"
    assert dests - handled <= accepted, (
        f"{verb}: options {sorted(dests - handled - accepted)} are not keywords of {targets}; "
        f"its keywords: {sorted(accepted)}")


@pytest.mark.parametrize(("line", "expected"), [
    ("run c.yaml --method letkf --obs o.zarr --out a.zarr --members 4 --steps 9 --quiet",
     {"observations": "o.zarr", "n_members": 4, "n_steps": 9, "progress": False}),
    ("evaluate da c.yaml --out r.zarr --trajectories 3 --validation 2 --no-tune --methods a,b",
     {"n_test": 3, "n_validation": 2, "tune": False, "methods": ["a", "b"], "regimes": None}),
    ("evaluate forecast f.pt --data d.zarr --out s.zarr --initial 2 --skip-robustness",
     {"n_initial": 2, "robust": False, "n_members": 4, "progress": True}),
    ("diagnose s.zarr --out d.zarr --var u --threshold 1 --threshold 2",
     {"variable": "u", "thresholds": ["1", "2"]}),  # numbers or quantities, read by diagnose
    ("observe s.zarr --regime dense --out o.zarr --regimes r.yaml --trajectories 0,2",
     {"regimes_path": "r.yaml", "trajectories": [0, 2]}),
])
def test_flags_keep_their_spelling_and_land_on_keywords(line: str, expected: dict) -> None:
    given = keywords(build_parser().parse_args(["--threads", "1", *line.split()]))
    assert {name: given[name] for name in expected} == expected
    assert not set(given) & PARSER_DESTS
