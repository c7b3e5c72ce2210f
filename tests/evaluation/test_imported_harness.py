"""``assimilate evaluate da`` on imported data (a cut of the shipped ERA5 file): the truth is
the user's test store, the climatology and the tuning trajectories the training store's, and
a regime that holds stations back is also scored at them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assimilate.config import load_config
from assimilate.evaluation.harness import HarnessSettings, evaluate_da
from pde.io.errors import ConfigError
from pde.io.store import open_store, open_trajectories

COMMAND = str(Path(sys.executable).with_name("assimilate"))


@pytest.mark.e2e
def test_evaluate_da_runs_on_imported_data_as_a_user_runs_it(pilot, tmp_path) -> None:
    out = tmp_path / "da.zarr"
    run = subprocess.run(
        [COMMAND, "evaluate", "da", str(pilot["root"] / "config.yaml"),
         "--methods", "free:model=forecaster,oi:model=forecaster", "--regimes", "stations-15-3h",
         "--forecaster", str(pilot["checkpoint"]), "--truth", str(pilot["test"]),
         "--climatology", str(pilot["train"]), "--members", "2", "--steps", "8",
         "--validation", "1", "--no-tune", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
        env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "withheld RMSE" in run.stdout
    result = open_store(out)
    assert list(result["da_method"].values) == ["free:model=forecaster", "oi:model=forecaster"]
    withheld = result["withheld_rmse"].values.ravel()
    assert np.isfinite(withheld).all() and 0 < withheld.min()
    assert withheld[1] < withheld[0]  # OI's analysis is closer to the stations it never saw
    work = Path(f"{out}.work")
    test = open_trajectories(work / "test.zarr")
    source = open_trajectories(pilot["test"])
    np.testing.assert_array_equal(test["t2m"].values, source["t2m"].values[:, :9])
    np.testing.assert_array_equal(test["valid_time"].values, source["valid_time"].values[:, :9])
    train = open_trajectories(pilot["train"])
    validation = open_trajectories(work / "validation.zarr")
    np.testing.assert_array_equal(validation["valid_time"].values[:, 0],
                                  train["valid_time"].values[-1:, 0])  # the last day tunes
    climatology = open_trajectories(work / "climatology.zarr")
    assert climatology.sizes["trajectory"] == train.sizes["trajectory"] - 1


def test_imported_data_need_a_truth_and_a_climatology_store(pilot, tmp_path) -> None:
    config = load_config(pilot["root"] / "config.yaml")
    settings = HarnessSettings(methods=["free:model=forecaster"], regimes=["stations-40"],
                               forecaster=pilot["checkpoint"], climatology=pilot["train"])
    with pytest.raises(ConfigError, match="give --truth STORE"):
        evaluate_da(config, settings, out=tmp_path / "x.zarr", progress=False)
    assert not (tmp_path / "x.zarr").exists()
    withheld = HarnessSettings(methods=["free:model=forecaster"],
                               regimes=["stations-40-withheld"], forecaster=pilot["checkpoint"],
                               truth=pilot["test"], climatology=pilot["train"])
    with pytest.raises(ConfigError, match="observes withheld stations"):
        evaluate_da(config, withheld, out=tmp_path / "x.zarr", progress=False)
    from pde.ingest import import_data

    import_data([pilot["root"] / "cut.nc"], tmp_path / "elsewhere.zarr", region="56,57,-10,-9",
                progress=False)  # the same variable over another region
    elsewhere = HarnessSettings(methods=["free:model=forecaster"], regimes=["stations-40"],
                                forecaster=pilot["checkpoint"], truth=tmp_path / "elsewhere.zarr",
                                climatology=pilot["train"])
    with pytest.raises(Exception, match="elsewhere.zarr"):
        evaluate_da(config, elsewhere, out=tmp_path / "x.zarr", progress=False)
    assert not (tmp_path / "x.zarr").exists()


def test_simulated_data_refuse_a_truth_store(tmp_path) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "ks-small.yaml")
    settings = HarnessSettings(methods=["free"], regimes=["dense"], truth=tmp_path / "t.zarr")
    with pytest.raises(ConfigError, match="--truth: only for imported data"):
        evaluate_da(config, settings, out=tmp_path / "x.zarr", progress=False)
