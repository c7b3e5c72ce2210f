"""The scheduler wrappers of ``assimilate cycle`` in ``workflows/``: cron, systemd, Cylc.

Each is installed as its comments tell a user (the placeholder paths replaced) on the small
KS project of ``test_cycle``, and run:

- the crontab line, run by ``sh`` as cron runs it: silent while there is nothing to do
  (exit code 75), one line for cron's mail when a person is needed (bad input);
- the systemd units: the keys that matter, ``systemd-analyze verify`` (where it exists),
  and the service's command on a project waiting for observations: a success for systemd;
- the Cylc tasks' checks (``workflows/cylc/bin/cycle-check``): Cylc's points other than
  the workflow's (exit 2), a window not ready yet (75), a damaged cycle (1) while the others
  still check out (a check reads only its own cycle);
- the Cylc workflow validates, refuses to run without its template variables, and plays
  three cycles whose analysis store equals three direct ``assimilate cycle`` calls, its
  ``check_inbox`` retrying while the third window's observations are missing.
"""

from __future__ import annotations

import configparser
import importlib.machinery
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cycle import test_cycle
from tests.cycle.test_cycle import assert_same_store, events, project

# The small KS project of test_cycle, fixtures used here by name: its observations, and
# three direct cycles of them (the reference).
observations, reference = test_cycle.observations, test_cycle.reference

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
BIN = Path(sys.executable).parent  # the venv's bin: assimilate, cylc, python3
CYLC = BIN / "cylc"
FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")  # a cron time field

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]


def install(text: str, root: Path) -> str:
    """A wrapper's text with its placeholder paths pointing at this venv and ``root``."""
    return text.replace("/path/to/venv", str(BIN.parent)).replace("/path/to/project", str(root))


def waiting_project(root: Path, observations: Path) -> Path:
    """A project whose inbox is empty: ``assimilate cycle`` has nothing to do (exit 75)."""
    (project(root, observations, files="")).rename(root / "workflow.yaml")
    return root / "workflow.yaml"


def test_the_crontab_line_is_silent_while_waiting_and_speaks_when_a_person_is_needed(
        tmp_path, observations) -> None:
    lines = [line for line in (WORKFLOWS / "cron" / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    *fields, command = lines[0].split(None, 5)
    assert all(FIELD.match(field) for field in fields), fields
    assert "%" not in command  # cron would turn it into a newline
    workflow = waiting_project(tmp_path, observations)

    def cron() -> subprocess.CompletedProcess:  # cron's shell, environment and PATH
        return subprocess.run(["/bin/sh", "-c", install(command, tmp_path)], cwd="/",
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                   "SHELL": "/bin/sh", "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True, timeout=300, check=False)

    waiting = cron()
    assert (waiting.returncode, waiting.stdout, waiting.stderr) == (0, "", "")
    log = tmp_path / "cycle.log"
    assert "cycle 0 waits for an observation at step 4" in log.read_text()
    workflow.write_text(workflow.read_text().replace("cycle_length: 4", "cycle_length: 0"))
    broken = cron()
    assert broken.stdout == (f"assimilate cycle in {tmp_path}: exit code 2, see "
                             f"{tmp_path}/cycle.log\n"), broken.stdout
    assert "key 'cycle_length'" in log.read_text().splitlines()[-1]
    assert [e["event"] for e in events(workflow)] == ["wait"]


def units() -> tuple[configparser.ConfigParser, configparser.ConfigParser]:
    parsed = []
    for name in ("assimilate-cycle.service", "assimilate-cycle.timer"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # systemd's keys are case-sensitive
        unit.read_string((WORKFLOWS / "systemd" / name).read_text())
        parsed.append(unit)
    return parsed[0], parsed[1]


def test_the_systemd_service_is_a_oneshot_run_whose_nothing_to_do_is_a_success(
        tmp_path, observations) -> None:
    service, timer = units()
    assert service["Service"]["Type"] == "oneshot"
    success = {0, *map(int, service["Service"]["SuccessExitStatus"].split())}
    assert 75 in success
    directory = Path(install(service["Service"]["WorkingDirectory"], tmp_path))
    command = shlex.split(install(service["Service"]["ExecStart"], tmp_path))
    assert Path(command[0]).is_absolute() and command[1] == "cycle"
    assert timer["Timer"]["Persistent"] == "true"
    assert {"OnCalendar", "OnUnitActiveSec"} & set(timer["Timer"])
    assert timer["Timer"]["Unit"] == "assimilate-cycle.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    waiting_project(tmp_path, observations)
    run = subprocess.run(command, cwd=directory, env=os.environ | {"OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode in success and run.returncode == 75, run.stderr[-2000:]
    assert "cycle 0 waits" in run.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_installed_units(tmp_path) -> None:
    for unit in (WORKFLOWS / "systemd").glob("assimilate-cycle.*"):
        (tmp_path / unit.name).write_text(install(unit.read_text(), tmp_path))
    checked = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                             capture_output=True, text=True, timeout=120, check=False)
    said = [line for line in (checked.stdout + checked.stderr).splitlines()
            if "assimilate-cycle" in line]  # not other units' noise
    assert checked.returncode == 0 and not said, said


def cycle_check():
    """``workflows/cylc/bin/cycle-check``, the Cylc tasks' checks, as a module."""
    path = WORKFLOWS / "cylc" / "bin" / "cycle-check"
    loader = importlib.machinery.SourceFileLoader("cycle_check", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_cylc_checks_wait_refuse_a_foreign_point_and_read_only_their_cycle(
        tmp_path, reference, capsys) -> None:
    shutil.copytree(reference.parent, tmp_path, dirs_exist_ok=True)
    workflow, check = str(tmp_path / "wf.yaml"), cycle_check().main
    assert check(["workflow", workflow, "0", "4"]) == 0
    assert check(["workflow", workflow, "0", "8"]) == 2
    assert "Cylc cycles START=0, LENGTH=8 but" in capsys.readouterr().err
    assert check(["ready", workflow, "8"]) == 0  # done
    assert check(["ready", workflow, "12"]) == 75
    assert "cycle 12 waits for an observation at step 16" in capsys.readouterr().err
    assert check(["ready", workflow, "6"]) == 2
    assert "pass the same START and LENGTH to Cylc" in capsys.readouterr().err
    assert check(["done", workflow, "12"]) == 1
    assert check(["done", workflow, "8"]) == 0
    said = capsys.readouterr()
    assert "cycle 12 is not done" in said.err and "cycle 8 (steps 9..12): 32 obs" in said.out
    chunk = tmp_path / "analysis.zarr" / "u" / "c" / "0" / "0" / "2" / "0"  # steps 9..12
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert check(["done", workflow, "8"]) == 1
    assert "checksum" in capsys.readouterr().err
    assert check(["done", workflow, "4"]) == 0  # another cycle's chunk is not read


needs_cylc = pytest.mark.skipif(
    not CYLC.exists() or shutil.which("rsync") is None,
    reason="the Cylc workflow's tests need cylc-flow (pip install -e '.[cylc]') and rsync "
           "(apt-get install rsync), which `cylc install` runs")


def cylc_environment(root: Path) -> dict[str, str]:
    """Cylc confined to ``root``: its own HOME (so ``~/cylc-run``) and a global.cylc that
    puts this venv on the jobs' PATH and ends a stalled workflow at once."""
    (root / "conf").mkdir()
    (root / "conf" / "global.cylc").write_text(f"""
[platforms]
    [[localhost]]
        cylc path = {BIN}
[scheduler]
    [[events]]
        stall timeout = PT0S
        abort on stall timeout = True
""")
    (root / "home").mkdir()
    return os.environ | {"HOME": str(root / "home"), "CYLC_CONF_PATH": str(root / "conf"),
                         "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}


def template(**values: object) -> list[str]:
    return [f"--set={name}={value!r}" for name, value in values.items()]


@needs_cylc
def test_the_cylc_workflow_validates_and_names_its_missing_template_variables(
        tmp_path) -> None:
    env = cylc_environment(tmp_path)
    source = str(WORKFLOWS / "cylc")
    valid = subprocess.run([str(CYLC), "validate", source, *template(
        WORKFLOW="/data/ks/workflow.yaml", START=8, LENGTH=4, FINAL=40, BIN=str(BIN))],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert valid.returncode == 0 and "Valid for cylc-8" in valid.stdout, valid.stderr
    missing = subprocess.run([str(CYLC), "validate", source, *template(LENGTH=4)], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode != 0
    assert "set the template variables WORKFLOW" in missing.stderr, missing.stderr


def wait_for(condition, seconds: float, what: str, play: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if play.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {what}; cylc play (exit code {play.poll()}) said: "
                                 f"{log.read_text()[-3000:]}")
        time.sleep(0.5)


@needs_cylc
def test_cylc_plays_three_cycles_equal_to_three_direct_cycles(
        tmp_path, observations, reference) -> None:
    workflow = project(tmp_path / "project", observations, files="ab")  # c comes later
    env = cylc_environment(tmp_path)
    installed = subprocess.run([str(CYLC), "install", str(WORKFLOWS / "cylc"),
                                "--workflow-name=da", "--no-run-name"], env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert installed.returncode == 0, installed.stderr
    jobs = tmp_path / "home" / "cylc-run" / "da" / "log" / "job"
    log = tmp_path / "play.log"
    with open(log, "w") as output:
        play = subprocess.Popen(
            [str(CYLC), "play", "da", "--no-detach", *template(
                WORKFLOW=str(workflow), START=0, LENGTH=4, FINAL=8,
                INBOX_RETRY_DELAYS="30*PT2S")],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = jobs / "8" / "check_inbox" / "01" / "job.err"
        wait_for(lambda: "cycle 8 waits" in (first.read_text() if first.exists() else ""),
                 240, "first check of cycle 8's inbox", play, log)
        hidden = workflow.parent / "inbox" / ".obs-c.nc"  # arrives whole, as a rename
        shutil.copy(observations / "obs-c.nc", hidden)
        hidden.rename(hidden.with_name("obs-c.nc"))
        play.wait(timeout=480)
    finally:
        if play.poll() is None:
            os.killpg(play.pid, signal.SIGTERM)
            play.wait()
    assert play.returncode == 0, log.read_text()[-4000:]
    assert (jobs / "8" / "check_inbox" / "02").is_dir()  # retried, then found it
    for point, name in ((0, "a"), (4, "b"), (8, "c")):
        said = (jobs / str(point) / "diagnose" / "01" / "job.out").read_text()
        assert f"cycle {point} (steps {point + 1}..{point + 4}): " in said
        assert f" observations (obs-{name}.nc), nudging" in said
    assert [(e["event"], e["point"]) for e in events(workflow)] == [
        ("start", 0), ("done", 0), ("start", 4), ("done", 4), ("start", 8), ("done", 8)]
    assert_same_store(workflow, reference)
