"""The DA evaluation harness: tuning on validation only, resumable cells, the outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from assimilate.da.methods import method_class
from assimilate.evaluation.harness import (
    HarnessSettings,
    evaluate_da,
    fill_controller,
    format_da_summary,
    format_da_table,
    parse_method,
)
from assimilate.evaluation.harness.cells import Cell
from assimilate.evaluation.harness.tuning import candidates
from pde.io.errors import ConfigError
from tests.conftest import TINY_KS, write_config

COMMAND = str(Path(sys.executable).with_name("assimilate"))
METHODS = "free:model=simulator,etkf,oi"


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("harness"), TINY_KS, "tiny.yaml")


def test_method_specs_are_validated_before_any_work() -> None:
    spec = parse_method("letkf:model=forecaster:inflation=1.05")
    assert spec.name == "letkf" and dict(spec.settings) == {"model": "forecaster",
                                                            "inflation": "1.05"}
    for bad, named in (("letkf:radius", "not key=value"), ("kalman", "unknown method"),
                       ("etkf:inflation=0.5", "inflation")):
        with pytest.raises(ConfigError, match=named):
            parse_method(bad)


def test_a_controller_checkpoint_joins_the_methods_under_its_file_name() -> None:
    """``evaluate da --controller CKPT``: added when missing, filled in where not fixed."""
    methods = fill_controller(["free"], "runs/ks-dense.pt")
    assert methods == ["free", "controller:checkpoint=runs/ks-dense.pt"]
    assert [parse_method(m).label for m in methods] == ["free", "controller:ks-dense"]
    assert fill_controller(["controller:refine=1", "controller:checkpoint=other.pt"],
                           "ctl.pt") == ["controller:refine=1:checkpoint=ctl.pt",
                                         "controller:checkpoint=other.pt"]


def test_a_missing_checkpoint_is_refused_before_any_work(config: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--controller 'missing.pt': no such checkpoint"):
        evaluate_da(config, HarnessSettings(methods=["free"], controller="missing.pt"),
                    out=tmp_path / "da.zarr", progress=False)
    assert not list(tmp_path.iterdir()), "nothing simulated, nothing written"


def test_a_setting_the_user_fixed_is_not_tuned(config: Path) -> None:
    spacing = 22.0 / 32
    assert len(candidates(parse_method("etkf"), spacing)) > 1
    assert candidates(parse_method("etkf:inflation=1.05"), spacing) == [(("inflation",
                                                                          "1.05"),)]
    assert candidates(parse_method("free"), spacing) == [()]
    radii = [dict(c)["radius"] for c in candidates(parse_method("letkf"), spacing)]
    tuning = method_class("letkf").tuning
    assert float(radii[0]) == pytest.approx(tuning.values[0] * spacing)  # spacings -> length
    # the LETKF's radius and inflation are tuned jointly: every pair, unless one is fixed
    joint = candidates(parse_method("letkf"), spacing)
    assert len(joint) == len(tuning.values) * len(tuning.joint.values)
    assert len({(dict(c)["radius"], dict(c)["inflation"]) for c in joint}) == len(joint)
    fixed = candidates(parse_method("letkf:inflation=1.1"), spacing)
    assert [dict(c)["inflation"] for c in fixed] == ["1.1"] * len(tuning.values)


@pytest.mark.e2e
def test_harness_tunes_on_validation_and_scores_on_test(config: Path, tmp_path: Path) -> None:
    from assimilate.config import load_config

    out = tmp_path / "da.zarr"
    sized = load_config(config).with_changes("evaluation", trajectories=2, validation=1,
                                             members=8)  # sizes from the config
    result = evaluate_da(sized, HarnessSettings(methods=METHODS.split(","), regimes=["dense"],
                                                n_steps=40), out=out, progress=False)
    assert result.attrs["n_members"] == 8
    assert out.exists() and Path(f"{out}.md").exists() and Path(f"{out}.png").exists()
    assert list(result["da_method"].values) == METHODS.split(",")
    assert result["nrmse_time"].dims == ("da_method", "regime", "trajectory", "time")
    assert result.sizes["trajectory"] == 2 and result.sizes["time"] == 41
    cells = [json.loads(xr.open_dataset(p).attrs["cell"])
             for p in (tmp_path / "da.zarr.work" / "cells").glob("*.nc")]
    splits = {(c["method"], c["split"]) for c in cells}
    assert ("etkf", "validation") in splits and ("etkf", "test") in splits
    assert ("free", "validation") not in splits, "nothing to tune: no validation runs"
    assert all(c["n_steps"] == 40 for c in cells if c["split"] == "test")
    tuned = json.loads(str(result["settings"].sel(da_method="etkf", regime="dense").values))
    assert "inflation" in tuned
    # The filters beat the free run and the bound: the table ranks them that way.
    error = result["nrmse_long"].mean("trajectory").sel(regime="dense")
    assert float(error.sel(da_method="etkf")) < float(error.sel(da_method="free:model=simulator"))
    table = format_da_table(result)
    assert "| dense | etkf |" in table and "±" in table
    # every table sees the distribution, not just the mean
    assert {"crps", "spread_ratio", "rank_reliability", "spectrum_error", "tail_ks",
            "exceedance_ratio"} <= set(result.data_vars)
    assert all(f"| {label} |" in table.splitlines()[0] or f" {label} " in table.splitlines()[0]
               for label in ("CRPS", "spread/RMSE", "rank RI", "tail KS", "exceedance 0.99"))
    summary = format_da_summary(result).splitlines()
    assert summary[0] == "| regime | " + " | ".join(METHODS.split(",")) + " |"
    row = summary[2].split(" | ")
    assert row[0] == "| dense" and "(i=" in row[2] and "**" not in row[1]  # free is not best


@pytest.mark.e2e
def test_a_killed_harness_resumes_without_redoing_finished_cells(config: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "resumed.zarr"
    cells = tmp_path / "resumed.zarr.work" / "cells"
    argv = [COMMAND, "evaluate", "da", str(config), "--methods", METHODS, "--regimes",
            "dense,gap-5", "--trajectories", "2", "--validation", "1", "--members", "6",
            "--steps", "24", "--out", str(out)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(cells.glob("*.nc"))) < 3:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in cells.glob("*.nc")}
    assert len(finished) >= 3 and not out.exists()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| gap-5 | oi |" in run.stdout and "100%" in run.stderr
    for name, mtime in finished.items():
        assert (cells / name).stat().st_mtime_ns == mtime, f"cell {name} was redone"
    again = evaluate_da(config, HarnessSettings(methods=METHODS.split(","),
                                                regimes=["dense", "gap-5"], n_test=2,
                                                n_validation=1, n_members=6, n_steps=24),
                        out=tmp_path / "fresh.zarr", progress=False)
    resumed = xr.open_zarr(out)
    np.testing.assert_allclose(resumed["nrmse_time"].values, again["nrmse_time"].values,
                               rtol=1e-5)
    # The free run ignores observations: one analysis serves both regimes.
    assert len(list((tmp_path / "resumed.zarr.work" / "analyses").glob("*.nc"))) == 1
    free = resumed["nrmse_time"].sel(da_method="free:model=simulator")
    np.testing.assert_array_equal(free.sel(regime="dense"), free.sel(regime="gap-5"))


def test_the_default_methods_are_every_method_and_need_the_forecaster(config: Path,
                                                                      tmp_path: Path) -> None:
    from assimilate.config import DA_METHODS, load_config

    assert load_config(config).evaluation.methods == list(DA_METHODS)
    with pytest.raises(ConfigError, match="--forecaster"):
        evaluate_da(config, HarnessSettings(), out=tmp_path / "da.zarr", progress=False)
    assert not (tmp_path / "da.zarr").exists()


def test_cell_keys_differ_by_every_field() -> None:
    base = Cell("etkf", (("inflation", "1.05"),), "dense", "test", 24, 6, 0)
    others = [Cell("etkf", (("inflation", "1.1"),), "dense", "test", 24, 6, 0),
              Cell("etkf", (("inflation", "1.05"),), "gap-5", "test", 24, 6, 0),
              Cell("etkf", (("inflation", "1.05"),), "dense", "validation", 24, 6, 0),
              Cell("etkf", (("inflation", "1.05"),), "dense", "test", 24, 6, 1)]
    assert len({base.key, *(cell.key for cell in others)}) == 5


def test_cell_keys_resolve_the_methods_defaults() -> None:
    """A cell left at a method's default is the cell that names the default, and a changed
    default would be another cell (so a stale result is never reused)."""
    from assimilate.da.methods import build_method

    default = build_method("optimised-control").energy
    cell = Cell("optimised-control", (), "dense", "test", 24, 6, 0, "m")
    named = Cell("optimised-control", (("energy", f"{default:g}"),), "dense", "test", 24, 6, 0,
                 "m")
    other = Cell("optimised-control", (("energy", f"{default * 10:g}"),), "dense", "test", 24,
                 6, 0, "m")
    assert cell.key == named.key != other.key


@pytest.mark.e2e
def test_a_cell_on_a_dask_worker_reads_its_stores_in_its_own_thread(config: Path,
                                                                     tmp_path: Path) -> None:
    """A cell's lazy store reads inside a worker must not become tasks of the cluster
    (queued behind other cells, on any worker): the cell is the only task that runs, and
    it scores as in this process."""
    from distributed import Client, LocalCluster, get_task_stream

    from assimilate.config import load_config
    from assimilate.evaluation.harness.cells import Workspace, run_cell

    out = tmp_path / "here.zarr"
    evaluate_da(config, HarnessSettings(methods=["oi"], regimes=["dense"], n_test=1,
                                        n_validation=1, n_members=4, n_steps=12, tune=False),
                out=out, progress=False)
    (path,) = (tmp_path / "here.zarr.work" / "cells").glob("*.nc")
    with xr.open_dataset(path) as done:
        cell, expected = Cell(**json.loads(done.attrs["cell"])), done["nrmse_time"].values
    path.unlink()
    workspace = Workspace(tmp_path / "here.zarr.work", load_config(config).model_dump_json(),
                          None)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            get_task_stream(client) as stream:
        assert client.submit(run_cell, workspace, cell, pure=False).result(timeout=300) == path
    assert [task["key"].split("-")[0] for task in stream.data] == ["run_cell"]
    with xr.open_dataset(path) as again:
        np.testing.assert_allclose(again["nrmse_time"].values, expected, rtol=1e-6)


def test_a_retrained_checkpoint_at_the_same_path_is_another_cell(tmp_path: Path) -> None:
    from assimilate.evaluation.harness.cells import checkpoint_hashes

    spec = parse_method("free:model=simulator")
    assert checkpoint_hashes(spec, None) == "", "the true simulator alone: no checkpoint"
    cell = Cell("free", (("model", "simulator"),), "dense", "test", 10, 4, 0)
    assert cell.key == Cell("free", (("model", "simulator"),), "dense", "test", 10, 4, 0,
                            checkpoint_hashes(spec, None)).key
    forecaster = tmp_path / "forecaster.pt"
    forecaster.write_bytes(b"a forecaster")
    first = checkpoint_hashes(parse_method("free"), str(forecaster))
    forecaster.write_bytes(b"the forecaster retrained")
    second = checkpoint_hashes(parse_method("free"), str(forecaster))
    assert first and second and first != second
    keys = {dataclasses.replace(cell, models=models).key for models in (first, second)}
    assert len(keys) == 2


PLUGIN = """
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Tuning
from assimilate.da.methods.linear import update_each


@dataclass(frozen=True)
class Relaxation(Method):
    name: ClassVar[str] = "relaxation"
    note: ClassVar[str] = "is no DAPPER method"
    tuning: ClassVar[Tuning] = Tuning("alpha", (0.5, 1.0), "a")
    alpha: float = Field(0.5, gt=0, le=1)
    model: Literal["simulator"] = "simulator"

    def analyse(self, prior, observed, problem, state):
        def insert(h, misfit, error_std):
            return self.alpha * np.linalg.solve(h @ h.T, misfit.T).T @ h

        return update_each(prior, observed, insert)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on the methods package's path holding one new method file, and
    nothing else changed."""
    import assimilate.da.methods as package
    from assimilate.da.methods import all_methods

    directory = tmp_path / "plugins"
    directory.mkdir()
    (directory / "relaxation.py").write_text(PLUGIN)
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(directory)])
    all_methods.cache_clear()
    yield directory
    all_methods.cache_clear()
    sys.modules.pop("assimilate.da.methods.relaxation", None)


def test_a_method_added_in_one_file_runs_through_run_and_the_harness(config: Path,
                                                                     tmp_path: Path,
                                                                     plugin: Path) -> None:
    from assimilate.da.methods import methods_help
    from assimilate.da.run import RunInputs, run

    assert "relaxation" in methods_help() and "relaxation is no DAPPER method" in methods_help()
    out = tmp_path / "da.zarr"
    result = evaluate_da(config, HarnessSettings(methods=["relaxation", "free:model=simulator"],
                                                 regimes=["dense"], n_test=1, n_validation=1,
                                                 n_members=4, n_steps=12), out=out,
                         progress=False)
    tuned = json.loads(str(result["settings"].sel(da_method="relaxation", regime="dense").values))
    assert tuned["alpha"] in ("0.5", "1")  # tuned over the grid its class declares
    assert "(a=" in format_da_summary(result).splitlines()[2]
    error = result["nrmse_long"].sel(regime="dense").mean("trajectory")
    assert float(error.sel(da_method="relaxation")) < float(
        error.sel(da_method="free:model=simulator"))
    work = tmp_path / "da.zarr.work"
    analysis, scores = run(config, RunInputs("relaxation", work / "obs-test-dense.zarr",
                                             settings={"alpha": "1"}, truth=work / "test.zarr",
                                             n_members=4), out=tmp_path / "an.zarr",
                           progress=False)
    assert analysis.attrs["method"] == "relaxation" and scores["nrmse.a"] < 0.5
