"""``assimilate cycle`` on a small KS project (64 points, the shipped checkpoints): three
cycles of four steps, three members, a two-step forecast.

- three cycles append the analysis, the forecast and a record, inputs with their sha256;
  the next call waits (exit code 75), a rerun of a done cycle is a no-op;
- a call killed (SIGKILL) after its journal, midway through the store's growth, or after
  its record leaves the store as before; the rerun gives the uninterrupted run's store;
- a second call is refused at once while one runs; a killed one's lock file blocks nothing;
- a window without observations is a flagged forecast-only cycle; a late file is noted,
  ``--redo`` replaces that cycle and every later one; ``--until`` backfills;
- a failed cycle keeps nothing (exit code 1); bad workflow files are refused in one line
  naming the file and the key;
- the verb as a user runs it: a fresh process, default options (the controller, progress
  bars), its exit codes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
import yaml

import assimilate.da.contract
from assimilate.cli import main
from assimilate.config import load_config
from assimilate.cycle import CycleBusy, CycleFailed, cycle, load_workflow
from assimilate.cycle.inbox import read_inbox, sha256
from assimilate.cycle.journal import CycledStore
from assimilate.da.inputs import config_grid
from pde.io.errors import ConfigError
from pde.io.output import claim

REPO = Path(__file__).resolve().parents[2]
COMMAND = str(Path(sys.executable).with_name("assimilate"))
FORECASTER = REPO / "checkpoints" / "ks-small-forecaster.pt"
CONTROLLER = REPO / "checkpoints" / "ks-small-controller.pt"
WINDOWS = {"a": range(1, 5), "b": range(5, 9), "c": range(9, 13)}  # cycles 0, 4 and 8
WORKFLOW = {"config": "ks.yaml", "method": "nudging", "forecaster": str(FORECASTER),
            "members": 3, "cycle_length": 4, "lead": 2, "inbox": "inbox",
            "analysis": "analysis.zarr"}

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def observations(tmp_path_factory) -> Path:
    """``ks.yaml`` (small KS, a short burn-in) and ``obs-{a,b,c}.nc``: every 8th point of one
    true trajectory at steps 1-4, 5-8 and 9-12, noise 0.1, one value missing in b."""
    root = tmp_path_factory.mktemp("observations")
    data = yaml.safe_load((REPO / "configs" / "ks-small.yaml").read_text())
    data["simulator"]["burn_in"] = 10.0  # a numerical setting: the checkpoints still fit
    (root / "ks.yaml").write_text(yaml.safe_dump(data))
    simulator = load_config(root / "ks.yaml").simulator.build()
    state = simulator.burn_in(simulator.initial_state(jax.random.PRNGKey(7), 1))
    truth = np.asarray(simulator.trajectory(state, 16)[1])[0]  # (time, x)
    x = simulator.coordinates()[0][1]
    rng = np.random.default_rng(0)
    for name, steps in WINDOWS.items():
        step, point = np.repeat(list(steps), 8), np.tile(np.arange(0, 64, 8), len(steps))
        value = truth[step, point] + 0.1 * rng.standard_normal(len(step))
        if name == "b":
            value[9] = np.nan  # step 6, missing
        xr.Dataset({"value": ("obs", value), "error_std": ("obs", np.full(len(step), 0.1))},
                   coords={"time": ("obs", step * simulator.interval), "x": ("obs", x[point])}
                   ).to_netcdf(root / f"obs-{name}.nc")
    return root


def project(root: Path, observations: Path, files: str = "abc", **changes) -> Path:
    """A workflow directory at ``root`` whose inbox holds ``obs-{files}.nc``; the workflow."""
    (root / "inbox").mkdir(parents=True)
    shutil.copy(observations / "ks.yaml", root)
    for name in files:
        shutil.copy(observations / f"obs-{name}.nc", root / "inbox")
    (root / "wf.yaml").write_text(yaml.safe_dump(WORKFLOW | changes))
    return root / "wf.yaml"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, observations) -> Path:
    """Three uninterrupted cycles; the workflow file."""
    workflow = project(tmp_path_factory.mktemp("reference"), observations)
    for point in (0, 4, 8):
        assert cycle(workflow, progress=False).points == (point,)
    return workflow


def events(workflow: Path) -> list[dict]:
    log = workflow.parent / "analysis.zarr.log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def state(workflow: Path) -> dict[str, str]:
    """Every file of the store and its records (relative path -> sha256)."""
    root = workflow.parent
    return {str(p.relative_to(root)): sha256(p) for folder in ("analysis.zarr",
            "analysis.zarr.cycles") for p in sorted((root / folder).rglob("*")) if p.is_file()}


def assert_same_store(workflow: Path, reference: Path) -> None:
    """The same values, times and attributes (but the creation time) as ``reference``'s,
    in the same chunk files."""
    with xr.open_zarr(workflow.parent / "analysis.zarr") as ds, \
            xr.open_zarr(reference.parent / "analysis.zarr") as expected:
        xr.testing.assert_identical(ds.drop_attrs(deep=False), expected.drop_attrs(deep=False))
        assert {**ds.attrs, "created": 0} == {**expected.attrs, "created": 0}
    files = {name for name in state(workflow) if name.startswith("analysis.zarr/")}
    assert files == {name for name in state(reference) if name.startswith("analysis.zarr/")}


def test_cycles_append_analysis_forecast_and_records_then_wait(reference, observations) -> None:
    ds = xr.open_zarr(reference.parent / "analysis.zarr").load()
    assert dict(ds["u"].sizes) == {"trajectory": 1, "member": 3, "time": 12, "x": 64}
    np.testing.assert_allclose(ds["time"], 0.2 * np.arange(1, 13))
    assert ds["cycle"].values.tolist() == [0, 4, 8]
    assert dict(ds["u_forecast"].sizes) == {"trajectory": 1, "cycle": 3, "member": 3, "lead": 2,
                                            "x": 64}
    assert ds["n_observations"].values.tolist() == [8] * 5 + [7] + [8] * 6  # one missing
    assert not ds["forecast_only"].values.any()
    # nudging with alpha = 1 inserts each step's observations: the right ones, in place
    obs = xr.open_dataset(observations / "obs-c.nc")
    at = obs.isel(obs=obs["time"].values > 2.3)  # step 12
    np.testing.assert_allclose(ds["u"].isel(trajectory=0, time=11, x=slice(0, None, 8)),
                               np.broadcast_to(at["value"].values, (3, 8)), atol=1e-5)
    record = json.loads((reference.parent / "analysis.zarr.cycles" / "4.json").read_text())
    assert record["inputs"] == [{"file": "obs-b.nc", "observations": 32,
                                 "sha256": sha256(observations / "obs-b.nc")}]
    assert record["method"] == "nudging" and record["parameters"]["alpha"] == 1.0
    assert {"torch", "jax", "zarr", "assimilate"} <= set(record["versions"])
    assert set(record["seconds"]) == {"read", "assimilate", "write", "total"}
    assert [(e["event"], e["point"]) for e in events(reference)] == [
        ("start", 0), ("done", 0), ("start", 4), ("done", 4), ("start", 8), ("done", 8)]

    before = state(reference)
    waiting = cycle(reference, progress=False)
    assert (waiting.status, waiting.exit_code) == ("waiting", 75)
    assert "cycle 12 waits for an observation at step 16" in waiting.message
    again = cycle(reference, until=8, progress=False)
    assert (again.status, again.exit_code) == ("up to date", 0)
    assert "already done" in again.message
    assert state(reference) == before
    assert [e["event"] for e in events(reference)[-2:]] == ["wait", "skip"]


def test_a_killed_cycle_leaves_the_store_as_before_and_its_rerun_as_if_uninterrupted(
        tmp_path, observations, reference) -> None:
    workflow = project(tmp_path, observations)
    cycle(workflow, progress=False)
    before = state(workflow)
    for phase in ("journal", "append", "record"):
        killed = subprocess.run([COMMAND, "cycle", "wf.yaml", "--quiet"], cwd=tmp_path,
                                env=os.environ | {"ASSIMILATE_CYCLE_CRASH_AT": phase},
                                capture_output=True, text=True, timeout=300, check=False)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert (tmp_path / "analysis.zarr.cycles" / "journal.json").exists()
        grown = {k: v for k, v in state(workflow).items() if k.startswith("analysis.zarr/")}
        assert (grown == {k: v for k, v in before.items() if k in grown}) == (phase == "journal")
        assert cycle(workflow, until=0, progress=False).status == "up to date"  # recovers
        assert state(workflow) == before, phase
    assert [e["event"] for e in events(workflow)].count("recover") == 3
    assert cycle(workflow, progress=False).points == (4,)
    assert cycle(workflow, progress=False).points == (8,)
    assert_same_store(workflow, reference)


def test_a_second_call_is_refused_at_once_and_a_killed_ones_lock_blocks_nothing(
        tmp_path, observations) -> None:
    workflow = project(tmp_path, observations)
    store = tmp_path / "analysis.zarr"
    held = rf"being cycled by process {os.getpid()} .*retry later"
    with claim(store, kind="directory", resumable=True), pytest.raises(CycleBusy, match=held):
        cycle(workflow, progress=False)
    assert not store.exists() and events(workflow)[-1]["event"] == "busy"
    lock = tmp_path / ".analysis.zarr.lock"  # as a process killed while cycling leaves it
    lock.write_text(json.dumps({"pid": 999999, "host": "gone", "command": "cycle",
                                "since": "2026-01-01T00:00:00+00:00"}))
    assert cycle(workflow, progress=False).points == (0,)


def test_a_window_without_observations_is_a_flagged_forecast_only_cycle(
        tmp_path, observations) -> None:
    workflow = project(tmp_path, observations, files="ac")  # b has not arrived
    cycle(workflow, progress=False)
    outcome = cycle(workflow, progress=False)  # c has passed the end of cycle 4's window
    assert outcome.points == (4,) and "forecast only" in outcome.message
    ds = xr.open_zarr(tmp_path / "analysis.zarr")
    assert ds["forecast_only"].values.tolist() == [False, True]
    assert ds["n_observations"].values.tolist() == [8] * 4 + [0] * 4
    record = json.loads((tmp_path / "analysis.zarr.cycles" / "4.json").read_text())
    assert record["forecast_only"] and record["inputs"] == []


def test_late_observations_are_noted_and_redo_replaces_that_cycle_and_later_ones(
        tmp_path, observations, reference) -> None:
    workflow = project(tmp_path, observations, files="ac")
    for _ in range(2):
        cycle(workflow, progress=False)
    shutil.copy(observations / "obs-b.nc", tmp_path / "inbox")  # late
    outcome = cycle(workflow, progress=False)
    assert outcome.points == (8,)
    assert outcome.notes == (("'obs-b.nc' has observations for cycle 4, which was done "
                              "without them; --redo 4 takes them in"),)
    assert ("late", 4) in [(e["event"], e["point"]) for e in events(workflow)]
    redone = cycle(workflow, redo=4, progress=False)
    assert redone.points == (4, 8) and not redone.notes
    assert_same_store(workflow, reference)
    backfill = cycle(workflow, until=16, progress=False)  # no observations beyond step 12
    assert backfill.points == (12, 16)
    ds = xr.open_zarr(tmp_path / "analysis.zarr")
    assert ds["forecast_only"].values.tolist() == [False] * 3 + [True] * 2
    with pytest.raises(ConfigError, match="--redo 5 is not a cycle point"):
        cycle(workflow, redo=5, progress=False)


def test_a_failed_cycle_keeps_nothing_and_exits_1(tmp_path, observations, monkeypatch,
                                                  capsys) -> None:
    workflow = project(tmp_path, observations)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:  # the first cycle's store written, then no space
        patch.setattr(CycledStore, "write_record", full)
        with pytest.raises(CycleFailed, match=r"cycle 0: cannot write it .*No space left"):
            cycle(workflow, progress=False)
    assert not (tmp_path / "analysis.zarr").exists()
    assert not list((tmp_path / "analysis.zarr.cycles").iterdir())
    cycle(workflow, progress=False)
    before = state(workflow)

    def diverge(*args, **kwargs):
        raise FloatingPointError("method 'nudging' produced non-finite states at step 3")

    monkeypatch.setattr(assimilate.da.contract, "assimilate", diverge)
    with pytest.raises(CycleFailed, match="cycle 4: method 'nudging' produced non-finite"):
        cycle(workflow, progress=False)
    assert main(["cycle", str(workflow), "--quiet"]) == 1
    assert "failed: cycle 4" in capsys.readouterr().err
    assert state(workflow) == before and events(workflow)[-1]["event"] == "fail"


def test_a_changed_workflow_is_refused_naming_the_key(reference) -> None:
    changed = reference.with_name("changed.yaml")
    changed.write_text(yaml.safe_dump(WORKFLOW | {"cycle_length": 5}))
    before = state(reference)
    with pytest.raises(ConfigError, match=r"'.*changed.yaml': key 'cycle_length': .*"
                                          "cycle_length=4, here 5"):
        cycle(changed, until=20, progress=False)
    assert state(reference) == before


def copy_of(reference: Path, tmp_path: Path) -> Path:
    """A copy of the reference project (three cycles done); its workflow file."""
    shutil.copytree(reference.parent, tmp_path / "p")
    return tmp_path / "p" / "wf.yaml"


def tear(path: Path) -> None:
    path.write_text(path.read_text()[:60])


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: p.write_text(""), "is empty"),
    (tear, r"is not valid JSON \(torn or edited: "),
    (lambda p: p.write_text('{"point": 4, "inputs": null}'), "has no list of 'inputs'"),
    (lambda p: p.write_text('{"point": 8, "inputs": []}'), "has 'point' 8, expected 4"),
], ids=["empty", "torn", "edited-inputs", "edited-point"])
def test_a_damaged_cycle_record_is_named_with_its_repair(reference, tmp_path, capsys, damage,
                                                         problem) -> None:
    workflow = copy_of(reference, tmp_path)
    damage(workflow.parent / "analysis.zarr.cycles" / "4.json")
    before = state(workflow)
    assert main(["cycle", str(workflow), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: cycle record '.*/analysis.zarr.cycles/4.json' {problem}.*; "
                        r"run the cycle again: `assimilate cycle .*/wf.yaml --redo 4`\n", err), err
    assert state(workflow) == before


def test_the_named_repair_works_for_a_torn_or_lost_record(reference, tmp_path, capsys) -> None:
    workflow = copy_of(reference, tmp_path)
    records = workflow.parent / "analysis.zarr.cycles"
    tear(records / "8.json")
    assert main(["cycle", str(workflow), "--redo", "8", "--quiet"]) == 0
    assert_same_store(workflow, reference)
    (records / "8.json").unlink()  # the store holds a cycle its records lack
    assert main(["cycle", str(workflow), "--quiet"]) == 2
    assert re.search(r"holds cycles 0..8 \(3\) but .* records 0..4 \(2\); restore the one that "
                     r"lost some, or run `assimilate cycle .*wf.yaml --redo 8`",
                     capsys.readouterr().err)
    assert main(["cycle", str(workflow), "--redo", "8", "--quiet"]) == 0
    assert_same_store(workflow, reference)


def test_a_damaged_cycle_journal_rolls_back_to_the_records_and_says_so(reference,
                                                                        tmp_path) -> None:
    workflow = copy_of(reference, tmp_path)
    before = state(workflow)
    journal = workflow.parent / "analysis.zarr.cycles" / "journal.json"
    journal.write_text('{"point": 12, "action": "cycle", "keep_cycles": "thr')  # torn
    outcome = cycle(workflow, progress=False)
    assert outcome.status == "waiting" and not journal.exists()
    assert re.fullmatch(r"the cycle journal '.*journal.json' is not valid JSON \(torn or "
                        r"edited: .*\); rolled back to the 3 recorded cycle\(s\)",
                        outcome.notes[0])
    assert state(workflow) == before


def test_a_climatology_store_of_another_grid_is_refused_before_any_cycle(
        tmp_path, observations, capsys) -> None:
    from pde import simulate
    from tests.conftest import TINY_KS, write_config

    small = TINY_KS | {"dataset": TINY_KS["dataset"] | {"trajectories": 1, "steps": 3}}
    simulate(load_config(write_config(tmp_path, small, "small.yaml")), tmp_path / "clim.zarr",
             progress=False)  # 32 points; the workflow's config has 64
    workflow = project(tmp_path / "p", observations, climatology=str(tmp_path / "clim.zarr"))
    assert main(["cycle", str(workflow), "--quiet"]) == 2
    assert re.fullmatch(r"error: climatology store '.*clim.zarr' holds other physics than the "
                        r"config: simulator.n_points: 32 here, 64 expected \(here: the input, "
                        r"expected: the config\)\n", capsys.readouterr().err)
    assert not (tmp_path / "p" / "analysis.zarr").exists()


def test_a_config_of_other_physics_is_refused_naming_workflow_store_and_difference(
        reference, capsys) -> None:
    """The config edited from length 22 to 30: no cycle of the new physics is appended."""
    config = yaml.safe_load((reference.parent / "ks.yaml").read_text())
    config["simulator"]["length"] = 30.0
    (reference.parent / "ks-30.yaml").write_text(yaml.safe_dump(config))
    edited = reference.with_name("edited.yaml")
    edited.write_text(yaml.safe_dump(WORKFLOW | {"config": "ks-30.yaml"}))
    before = state(reference)
    with pytest.raises(ConfigError) as error:
        cycle(edited, until=20, progress=False)
    message = str(error.value)
    for piece in ("edited.yaml", "key 'config'", "ks-30.yaml", "analysis.zarr",
                  "simulator.length: 30.0 here, 22.0 expected"):
        assert piece in message and "\n" not in message, message
    assert main(["cycle", str(edited), "--until", "20", "--quiet"]) == 2
    assert "error: workflow file" in capsys.readouterr().err
    assert state(reference) == before
    record = json.loads((reference.parent / "analysis.zarr.cycles" / "8.json").read_text())
    assert record["config_sha256"] == sha256(reference.parent / "ks.yaml")


@pytest.fixture
def no_work(monkeypatch) -> None:
    """The assimilation fails if entered: a refusal under this came before any work."""
    def started(*args, **kwargs):
        raise AssertionError("a cycle started before the inputs were refused")

    monkeypatch.setattr(assimilate.da.contract, "assimilate", started)


def _dated(observations: Path, target: Path) -> None:
    """``obs-a.nc`` with its times as datetimes: one model step (0.2) is 6 hours."""
    with xr.open_dataset(observations / "obs-a.nc") as ds:
        ds = ds.load()
    hours = np.rint(ds["time"].values / 0.2) * 6
    ds.assign_coords(time=("obs", hours, {"units": "hours since 2020-01-01"})).to_netcdf(target)


def test_datetime_observations_need_the_workflow_calendar(tmp_path, observations,
                                                          no_work) -> None:
    workflow = project(tmp_path, observations, files="")
    _dated(observations, tmp_path / "inbox" / "dated.nc")
    with pytest.raises(ConfigError) as error:  # as model times: steps 30..120, no window
        cycle(workflow, until=4, progress=False)
    message = str(error.value)
    assert "dated.nc" in message and "holds datetimes" in message, message
    assert "the workflow key 'calendar'" in message and not (tmp_path / "analysis.zarr").exists()
    dated = project(tmp_path / "dated", observations, files="",
                    calendar="2020-01-01T00:00,6h")
    _dated(observations, tmp_path / "dated" / "inbox" / "dated.nc")
    flow, config = load_workflow(dated), load_config(dated.parent / "ks.yaml")
    grid = config_grid(config)
    (arrival,) = read_inbox(flow.inbox, grid, calendar=flow.time_calendar, config=config)
    (plain,) = read_inbox(_only(observations, "a", tmp_path / "plain"), grid)
    np.testing.assert_array_equal(arrival.steps, plain.steps)
    np.testing.assert_array_equal(arrival.dataset["time"], plain.dataset["time"])
    bad = dated.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump(WORKFLOW | {"calendar": "2020-01-01"}))
    with pytest.raises(ConfigError, match=r"bad.yaml': key 'calendar': '2020-01-01': "
                                          "expected ORIGIN,STEP"):
        load_workflow(bad)


def _only(observations: Path, name: str, folder: Path) -> Path:
    folder.mkdir()
    shutil.copy(observations / f"obs-{name}.nc", folder)
    return folder


def test_a_first_background_without_spread_is_refused_for_an_ensemble_filter(
        tmp_path, observations, no_work) -> None:
    simulator = load_config(observations / "ks.yaml").simulator.build()
    x = simulator.coordinates()[0][1]
    xr.Dataset({"u": ("x", np.sin(x))}, coords={"x": x}).to_netcdf(tmp_path / "one.nc")
    workflow = project(tmp_path / "wf", observations, files="a", method="etkf",
                       settings={"model": "simulator"}, background=str(tmp_path / "one.nc"))
    with pytest.raises(ConfigError) as error:
        cycle(workflow, progress=False)
    message = str(error.value)
    for piece in ("one.nc", "key 'background' of", "wf.yaml", "zero spread", "method 'etkf'"):
        assert piece in message, message
    assert not (tmp_path / "wf" / "analysis.zarr").exists()


BAD = [  # (change to the workflow, the key the message must name)
    ({"cycle_length": None}, "cycle_length"),
    ({"cycle_length": 0}, "cycle_length"),
    ({"members": "many"}, "members"),
    ({"lead_time": 3}, "lead_time"),
    ({"inbox": "no-such-inbox"}, "inbox"),
    ({"forecaster": "missing.pt"}, "forecaster"),
    ({"method": "kalman"}, "method"),
    ({"settings": {"alpha": 2}}, "settings"),
    ({"method": "controller"}, "controller"),
    ({"method": "dps", "forecaster": None}, "forecaster"),
]


@pytest.mark.parametrize(("change", "key"), BAD, ids=[key for _, key in BAD])
def test_a_bad_workflow_file_is_refused_in_one_line_naming_file_and_key(
        tmp_path, observations, change, key) -> None:
    workflow = project(tmp_path, observations)
    data = {name: value for name, value in (WORKFLOW | change).items() if value is not None}
    workflow.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_workflow(workflow)
    message = str(error.value)
    assert "\n" not in message and f"'{key}'" in message and "wf.yaml" in message, message


def test_the_verb_as_a_user_runs_it_with_the_controller_and_its_exit_codes(
        tmp_path, observations) -> None:
    project(tmp_path, observations, files="a", method="controller",
            controller=str(CONTROLLER), members=2)

    def run(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run([COMMAND, "cycle", "wf.yaml", *options], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, check=False)

    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cycle 0 (steps 1..4): 32 observations from 1 file(s), controller" in done.stdout
    assert "100%" in done.stderr and "Traceback" not in done.stderr
    waiting = run()
    assert waiting.returncode == 75 and "cycle 4 waits" in waiting.stdout
    with claim(tmp_path / "analysis.zarr", kind="directory", resumable=True):
        busy = run("--quiet")
    assert busy.returncode == 75 and "busy: analysis store 'analysis.zarr'" in busy.stderr
    bad = run("--redo", "3")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "error: --redo 3 is not a cycle point" in bad.stderr
    record = json.loads((tmp_path / "analysis.zarr.cycles" / "0.json").read_text())
    assert record["method"] == "controller" and record["checkpoints"]["controller"]["sha256"]
