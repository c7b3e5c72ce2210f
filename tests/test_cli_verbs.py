"""Every verb as a user runs it: the installed ``assimilate`` command in a fresh process,
default options (progress bars on), one after another on a tiny project.

A verb that works only after some other module happened to be imported fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_EMULATOR, TINY_FORECASTER, TINY_KS, write_config

COMMAND = str(Path(sys.executable).with_name("assimilate"))
LONG = TINY_KS | {"dataset": TINY_KS["dataset"] | {"trajectories": 1, "steps": 642}}
PROJECT = TINY_KS | {"dataset": TINY_KS["dataset"] | {"steps": 40},
                     "emulator": TINY_EMULATOR, "forecaster": TINY_FORECASTER}

# (command line, a piece of what it prints on stdout); in the order a user would run them
VERBS = [
    ("simulate project.yaml --out ks.zarr", "6 of 6 trajectories"),
    ("simulate long.yaml --out long.zarr --seed 5", "1 of 1 trajectories"),
    ("export ks.zarr --to ks.nc", "wrote ks.nc"),
    ("verify ks.zarr", "no damage found"),
    ("train emulator project.yaml --data ks.zarr --out emulator.pt", "wrote emulator.pt"),
    ("sample emulator emulator.pt --n 8 --out samples.zarr", "wrote 8 samples"),
    ("train forecaster project.yaml --data ks.zarr --out forecaster.pt", "wrote forecaster.pt"),
    ("forecast forecaster.pt --init ks.zarr --steps 5 --out forecast.zarr", "x 5 steps"),
    ("evaluate forecast forecaster.pt --data long.zarr --out skill.zarr", "| ardm |"),
    ("diagnose ks.zarr --out ks.diag.zarr", "wrote ks.diag.zarr"),
    ("report ks.diag.zarr --out report.html", "wrote report.html"),
]
BARS = {"simulate", "verify", "train", "sample", "forecast", "evaluate", "diagnose"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    write_config(root, PROJECT, "project.yaml")
    write_config(root, LONG, "long.yaml")
    return root


@pytest.mark.parametrize(("line", "printed"), VERBS, ids=[v[0].split(" --")[0] for v in VERBS])
def test_each_verb_runs_bare_in_a_fresh_process(project: Path, line: str, printed: str) -> None:
    run = subprocess.run([COMMAND, *line.split()], cwd=project, capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert printed in run.stdout, run.stdout
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    if line.split()[0] in BARS:
        assert "100%" in run.stderr, f"no progress bar for '{line}': {run.stderr[-500:]}"
