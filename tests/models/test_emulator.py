"""The emulator end to end through the CLI, and its configuration errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from assimilate.cli import main
from assimilate.config import ConfigError, load_config
from assimilate.models.emulator import SAMPLES_SCHEMA, load_emulator, train_emulator
from assimilate.training.loop import load_checkpoint
from pde import StoreError
from tests.conftest import TINY_EMULATOR, TINY_KOLMOGOROV, TINY_KS, write_config


@pytest.fixture(scope="module")
def ks_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("emulator")
    config = write_config(root, TINY_KS | {"emulator": TINY_EMULATOR})
    assert main(["simulate", str(config), "--out", str(root / "ks.zarr"), "--quiet"]) == 0
    return root


@pytest.mark.e2e
@pytest.mark.parametrize("family, nu", [("edm", None), ("edm", 4.0), ("flow", 5.0)])
def test_train_and_sample_through_the_cli(ks_store: Path, tmp_path: Path, family, nu,
                                          capsys) -> None:
    settings = TINY_EMULATOR | {"family": family}
    config = write_config(tmp_path, TINY_KS | {"emulator": settings})
    checkpoint = tmp_path / "emulator.pt"
    args = ["train", "emulator", str(config), "--data", str(ks_store / "ks.zarr"),
            "--out", str(checkpoint), "--quiet"]
    assert main(args + ([] if nu is None else ["--nu", str(nu)])) == 0
    saved = load_checkpoint(checkpoint)
    assert saved["step"] == 30 and saved["kind"] == "emulator"
    assert json.loads(saved["config"])["emulator"]["nu"] == nu
    log = [json.loads(line) for line in Path(f"{checkpoint}.metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 30 and np.isfinite(log[-1]["validation_loss"])

    samples = tmp_path / "samples.zarr"
    assert main(["sample", "emulator", str(checkpoint), "--n", "5", "--out", str(samples),
                 "--batch-size", "2"]) == 0
    printed = capsys.readouterr()
    assert "wrote 5 samples" in printed.out and "5/5" in printed.err  # the progress bar
    ds = xr.open_zarr(samples)
    assert ds["u"].dims == ("sample", "x") and ds["u"].shape == (5, 32)
    assert ds.attrs["schema"] == SAMPLES_SCHEMA and ds.attrs["family"] == family
    assert ds.attrs["nfe"] == 7 and ds.attrs["pde"] == "kuramoto_sivashinsky"
    assert np.isfinite(ds["u"].values).all()
    np.testing.assert_array_equal(ds["x"].values, xr.open_zarr(ks_store / "ks.zarr")["x"].values)


def test_more_steps_continue_a_finished_run(ks_store: Path, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, TINY_KS | {"emulator": TINY_EMULATOR}))
    out = train_emulator(config, ks_store / "ks.zarr", tmp_path / "e.pt", steps=10,
                         progress=False)
    assert load_checkpoint(out)["step"] == 10
    train_emulator(config, ks_store / "ks.zarr", out, steps=20, progress=False)
    assert load_checkpoint(out)["step"] == 20
    model, loaded, _ = load_emulator(out)
    assert loaded.emulator.training.steps == 20 and not model.training


def test_configuration_errors(ks_store: Path, tmp_path: Path, capsys) -> None:
    bad = copy.deepcopy(TINY_KS) | {"emulator": TINY_EMULATOR | {"nu": 2.0}}
    with pytest.raises(ConfigError, match="emulator.nu.*nu > 2"):
        load_config(write_config(tmp_path, bad, "nu.yaml"))
    bad = copy.deepcopy(TINY_KS) | {"emulator": TINY_EMULATOR | {"backbone": "huge"}}
    with pytest.raises(ConfigError, match="emulator.backbone.*'tiny'.*'small'"):
        load_config(write_config(tmp_path, bad, "size.yaml"))
    config = write_config(tmp_path, TINY_KS | {"emulator": TINY_EMULATOR})
    code = main(["train", "emulator", str(config), "--data", str(ks_store / "ks.zarr"),
                 "--out", str(tmp_path / "x.pt"), "--nu", "1.5", "--quiet"])
    assert code == 2 and "nu > 2" in capsys.readouterr().err
    kolmogorov = write_config(tmp_path, TINY_KOLMOGOROV | {"emulator": TINY_EMULATOR}, "k.yaml")
    with pytest.raises(StoreError, match="holds 'kuramoto_sivashinsky' data, expected 'kolm"):
        train_emulator(load_config(kolmogorov), ks_store / "ks.zarr", tmp_path / "k.pt",
                       progress=False)
    assert not (tmp_path / "k.pt").exists() and not (tmp_path / "x.pt").exists()


@pytest.mark.e2e
def test_kill_minus_nine_then_rerun_resumes_exactly(ks_store: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    settings = TINY_EMULATOR | {"training": TINY_EMULATOR["training"] | {"steps": 60}}
    config = write_config(tmp_path, TINY_KS | {"emulator": settings})
    command = [sys.executable, "-m", "assimilate.cli", "train", "emulator", str(config),
               "--data", str(ks_store / "ks.zarr"), "--quiet"]
    killed, clean = tmp_path / "killed.pt", tmp_path / "clean.pt"
    process = subprocess.Popen([*command, "--out", str(killed)])
    deadline = time.monotonic() + 240
    while not killed.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reached = load_checkpoint(killed)["step"]
    assert reached < 60, "training finished before it could be killed"
    subprocess.run([*command, "--out", str(killed)], check=True, timeout=300)
    subprocess.run([*command, "--out", str(clean)], check=True, timeout=300)
    resumed, reference = load_checkpoint(killed), load_checkpoint(clean)
    assert resumed["step"] == reference["step"] == 60
    for name, value in reference["ema"].items():
        assert torch.equal(value, resumed["ema"][name]), f"ema.{name} differs after resume"
