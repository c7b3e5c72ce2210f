"""Every verb as a user runs it: the installed ``assimilate`` command in a fresh process,
default options (progress bars on), one after another on a tiny project.

A verb that works only after some other module happened to be imported fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_EMULATOR, TINY_FORECASTER, TINY_KS, write_config

pytestmark = pytest.mark.e2e  # subprocesses or a whole project built by the CLI

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
    ("observe ks.zarr --regime dense --out obs.zarr", "wrote obs.zarr"),
    ("run project.yaml --method letkf --obs obs.zarr --truth ks.zarr --out analysis.zarr",
     "| rmse.a |"),
    (("run project.yaml --method dps --forecaster forecaster.pt --obs obs.zarr "
     "--steps 8 --out dps.zarr"), "wrote dps.zarr"),
    (("evaluate da project.yaml --methods etkf,free --forecaster forecaster.pt "
     "--regimes dense --steps 30 --out da.zarr"), "| dense | etkf |"),
]
BARS = {"simulate", "verify", "train", "sample", "forecast", "evaluate", "diagnose",
        "observe", "run"}


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


@pytest.mark.parametrize("after", [1.0, 3.5])
def test_ctrl_c_is_clean_while_a_cluster_starts_or_works(project: Path, after: float) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C: no traceback from this
    process or its workers; an interrupted run says so in one line (exit code 130) and
    leaves no output, temporary or lock; one interrupted while its cluster starts (when
    the workers are made deaf to SIGINT) finishes instead."""
    import signal
    import time

    if not (project / "ks.zarr").exists():  # run alone, without the verb tests before it
        subprocess.run([COMMAND, "simulate", "project.yaml", "--out", "ks.zarr", "--quiet"],
                       cwd=project, check=True)
    out = project / f"interrupted-{after}.diag.zarr"
    process = subprocess.Popen([COMMAND, "diagnose", "ks.zarr", "--out", out.name,
                                "--workers", "2"], cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(after)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err and "Error" not in err, err
    assert not [p for p in project.iterdir() if p.name.startswith(f".{out.name}")]
    if process.returncode == 130:
        assert err.strip().splitlines()[-1].startswith("interrupted"), err
        assert not out.exists()
    else:
        assert (out / "zarr.json").is_file()
