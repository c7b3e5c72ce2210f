"""Generation: resume after failure or kill -9, Dask fan-out, the CLI verbs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pde.generate
from assimilate.cli import main
from assimilate.config import load_config
from pde import StoreError, open_trajectories, simulate
from pde.generate import plan_batches
from pde.io.store import read_completion
from tests.conftest import TINY_KS, write_config


def test_plan_batches_groups_contiguous_runs() -> None:
    unfinished = np.array([1, 1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)
    assert plan_batches(unfinished, 2) == [(0, 2), (2, 3), (4, 5), (7, 9)]
    assert plan_batches(np.zeros(4, dtype=bool), 3) == []


def test_failed_write_resumes_without_recomputing(tiny_ks: Path, tmp_path: Path, monkeypatch):
    config = load_config(tiny_ks)
    reference = simulate(config, tmp_path / "reference.zarr", progress=False)
    real_write = pde.generate.write_trajectories
    calls = []

    def failing_write(path, variable, start, fields):
        calls.append(start)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, variable, start, fields)

    monkeypatch.setattr(pde.generate, "write_trajectories", failing_write)
    with pytest.raises(StoreError, match="failed after 2 of 6 trajectories.*No space.*rerun"):
        simulate(config, tmp_path / "store.zarr", progress=False)
    with pytest.raises(StoreError, match="incomplete"):
        open_trajectories(tmp_path / "store.zarr")
    monkeypatch.setattr(pde.generate, "write_trajectories", real_write)
    summary = simulate(config, tmp_path / "store.zarr", progress=False)
    assert summary.computed == 4
    np.testing.assert_array_equal(
        open_trajectories(tmp_path / "store.zarr")["u"].values,
        open_trajectories(reference.path)["u"].values,
    )


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "assimilate.cli", *args]


@pytest.mark.e2e
@pytest.mark.parametrize("kill_after", [0, 1, 3])
def test_kill_minus_nine_then_rerun_completes(tmp_path: Path, kill_after: int) -> None:
    data = TINY_KS | {
        "simulator": TINY_KS["simulator"] | {"n_points": 64},
        "dataset": {"trajectories": 8, "steps": 300, "seed": 5, "batch_size": 1},
    }
    config_path = write_config(tmp_path, data)
    store = tmp_path / "killed.zarr"
    process = subprocess.Popen(_cli("simulate", str(config_path), "--out", str(store), "--quiet"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (store / "zarr.json").exists() and read_completion(store).sum() >= kill_after:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = int(read_completion(store).sum()) if store.exists() else 0
    assert finished_before < 8, "the run finished before it could be killed; lengthen it"
    rerun = subprocess.run(_cli("simulate", str(config_path), "--out", str(store), "--quiet"),
                           capture_output=True, text=True, check=True)
    assert f"{8 - finished_before} of 8 trajectories" in rerun.stdout
    clean = simulate(load_config(config_path), tmp_path / "clean.zarr", progress=False)
    np.testing.assert_array_equal(
        open_trajectories(store)["u"].values, open_trajectories(clean.path)["u"].values
    )
    assert not list(tmp_path.glob(".*partial*")), "no scratch left behind"


@pytest.mark.e2e
def test_dask_workers_write_the_same_store(tiny_ks: Path, tiny_kolmogorov: Path,
                                           tmp_path: Path) -> None:
    for config_path, name in ((tiny_ks, "ks"), (tiny_kolmogorov, "kolmogorov")):
        config = load_config(config_path)
        serial = simulate(config, tmp_path / f"{name}-serial.zarr", progress=False)
        parallel = simulate(config, tmp_path / f"{name}-dask.zarr", workers=2, progress=False)
        assert parallel.computed == config.dataset.trajectories
        a, b = open_trajectories(serial.path), open_trajectories(parallel.path)
        variable = "u" if name == "ks" else "vorticity"
        np.testing.assert_allclose(a[variable].values, b[variable].values, rtol=0, atol=1e-6)


def test_cli_simulate_and_export(tiny_kolmogorov: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "kolmogorov.zarr"
    assert main(["simulate", str(tiny_kolmogorov), "--out", str(store), "--quiet"]) == 0
    assert "kolmogorov, 2 of 2 trajectories x 5 states" in capsys.readouterr().out
    ds = open_trajectories(store, pde="kolmogorov")
    assert ds["vorticity"].dims == ("trajectory", "time", "y", "x")
    assert ds["vorticity"].shape == (2, 5, 8, 8)
    assert main(["simulate", str(tiny_kolmogorov), "--out", str(store), "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["export", str(store), "--to", str(tmp_path / "k.nc")]) == 0
    assert (tmp_path / "k.nc").stat().st_size > 0


def test_cli_errors_exit_non_zero_with_a_message(tiny_ks: Path, tmp_path: Path, capsys) -> None:
    assert main(["simulate", str(tmp_path / "absent.yaml"), "--out", str(tmp_path / "s")]) == 2
    assert "absent.yaml' does not exist" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.zarr"), "--to", str(tmp_path / "x.nc")]) == 2
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "x.nc").exists()
    with pytest.raises(SystemExit):
        main(["simulate", str(tiny_ks), "--out", str(tmp_path / "s"), "--workers", "0"])
