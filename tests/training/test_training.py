"""The shared training loop: learning, atomic checkpoints, exact resume, NaN stop, DDP;
the recipe the trainers share: split, normalisation, validation windows, resume guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from assimilate.config import load_config
from assimilate.training.loop import TrainingConfig, TrainingError, fit, load_checkpoint
from assimilate.training.recipe import (
    Recipe,
    RunOptions,
    Store,
    TrainingData,
    mean_loss,
    train,
)

TRUE_WEIGHTS = torch.tensor([[1.5, -2.0, 0.5, 3.0]])


def batch_fn(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(16, 4, generator=generator)
    return x, x @ TRUE_WEIGHTS.T + 0.01 * torch.randn(16, 1, generator=generator)


def loss_fn(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean(dim=1)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 1)


CONFIG = TrainingConfig(steps=20, batch_size=16, learning_rate=0.05, warmup_steps=2,
                        ema_decay=0.9, checkpoint_every=5, log_every=5, validate_every=10)
META = {"config": json.dumps({"model": "linear"}), "kind": "test",
        "normalisation": {"mean": torch.zeros(1), "std": torch.ones(1)}}


def test_training_learns_and_checkpoints(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"steps": 300})
    model = make_model()
    out = fit(model, loss_fn, batch_fn, config, tmp_path / "linear.pt", metadata=META,
              validation_fn=lambda m: float(loss_fn(m, batch_fn(0, torch.Generator()), None)
                                            .mean()),
              progress=False)
    saved = load_checkpoint(out)
    assert saved["step"] == 300 and saved["kind"] == "test"
    assert torch.equal(saved["normalisation"]["std"], torch.ones(1))
    torch.testing.assert_close(saved["ema"]["weight"], TRUE_WEIGHTS, atol=0.05, rtol=0)
    records = [json.loads(line) for line in (tmp_path / "linear.pt.metrics.jsonl").open()]
    assert records[-1]["loss"] < 0.01 * records[0]["loss"]
    assert "validation_loss" in records[-1] and records[-1]["samples_per_s"] > 0
    assert not list(tmp_path.glob(".linear.pt.partial-*"))
    assert not list(tmp_path.glob(".linear.pt.lock"))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by the group: 0644


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path: Path) -> None:
    reference = make_model()
    fit(reference, loss_fn, batch_fn, CONFIG, tmp_path / "a.pt", metadata=META, progress=False)

    def interrupted(step: int, generator: torch.Generator):
        if step == 12:
            raise KeyboardInterrupt
        return batch_fn(step, generator)

    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), loss_fn, interrupted, CONFIG, tmp_path / "b.pt", metadata=META,
            progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 10
    resumed = nn.Linear(4, 1)  # fresh, different weights: everything must come from disk
    fit(resumed, loss_fn, batch_fn, CONFIG, tmp_path / "b.pt", metadata=META, progress=False)
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    steps = [json.loads(line)["step"] for line in (tmp_path / "b.pt.metrics.jsonl").open()]
    assert steps == [5, 10, 15, 20], "a resumed log has no duplicate records"


def test_non_finite_loss_names_last_good_checkpoint(tmp_path: Path) -> None:
    def poisoned(step: int, generator: torch.Generator):
        x, y = batch_fn(step, generator)
        return x, (y * float("nan") if step == 7 else y)

    with pytest.raises(TrainingError, match="at step 7.*'.*nan.pt' at step 5"):
        fit(make_model(), loss_fn, poisoned, CONFIG, tmp_path / "nan.pt", metadata=META,
            progress=False)
    assert load_checkpoint(tmp_path / "nan.pt")["step"] == 5


def test_refuses_checkpoint_of_another_configuration(tmp_path: Path) -> None:
    fit(make_model(), loss_fn, batch_fn, CONFIG.model_copy(update={"steps": 5}),
        tmp_path / "c.pt", metadata=META, progress=False)
    other = META | {"config": json.dumps({"model": "other"})}
    with pytest.raises(TrainingError, match="another configuration"):
        fit(make_model(), loss_fn, batch_fn, CONFIG, tmp_path / "c.pt", metadata=other,
            progress=False)
    with pytest.raises(TrainingError, match="not an assimilate checkpoint|not a readable"):
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        load_checkpoint(tmp_path / "junk.pt")


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_training import CONFIG, META, batch_fn, loss_fn, make_model
from assimilate.training.loop import fit
model = make_model()
fit(model, loss_fn, batch_fn, CONFIG, {out!r}, metadata=META, progress=False)
import os
torch.save(model.state_dict(), {out!r} + f".rank{{os.environ['RANK']}}")
"""


@pytest.mark.e2e
def test_distributed_data_parallel_on_two_cpu_processes(tmp_path: Path) -> None:
    out = str(tmp_path / "ddp.pt")
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=out))
    # Everything on the loopback interface: a host name that resolves to an unreachable
    # address (common in containers) would otherwise stall the rendezvous or gloo's connect.
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
               "--nproc-per-node", "2", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", "127.0.0.1:0", "--local-addr", "127.0.0.1", str(script)]
    try:
        done = subprocess.run(command, check=False, timeout=240, capture_output=True,
                              text=True, env=env)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"torchrun did not finish in 240 s; its output:\n{error.stdout}\n{error.stderr}")
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    rank0 = torch.load(out + ".rank0", weights_only=True)
    rank1 = torch.load(out + ".rank1", weights_only=True)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), "DDP keeps the ranks' weights equal"
    single = make_model()
    fit(single, loss_fn, batch_fn, CONFIG, tmp_path / "single.pt", metadata=META,
        progress=False)
    assert not torch.equal(single.weight, rank0["weight"]), "two ranks saw twice the data"
    assert load_checkpoint(out)["step"] == CONFIG.steps


# --- the recipe the three trainers share ------------------------------------------------

def _store(path: Path) -> Store:
    """A tiny store whose values name their trajectory: 100 × trajectory + time."""
    values = 100.0 * np.arange(4)[:, None, None] + np.arange(10)[None, :, None] + np.zeros(8)
    ds = xr.Dataset({"u": (("trajectory", "time", "x"), values.astype(np.float32))},
                    coords={"x": np.linspace(0, 1, 8)},
                    attrs={"created": "now", "config": json.dumps({"simulator": {"pde": "toy"}})})
    return Store(path, ds, ds["u"])


class _ToyTrainer:
    """Predicts the next state of a window of two; records what validation was given."""

    def __init__(self, path: Path, tag: str = "a") -> None:
        self.path, self.tag, self.held_out = path, tag, []

    def open(self) -> Store:
        return _store(self.path)

    def recipe(self, data: TrainingData) -> Recipe:
        # imported here: the DDP test imports this module with only tests/ on its path
        from tests.conftest import TINY_EMULATOR, TINY_KS, write_config

        config = load_config(write_config(self.path.parent, TINY_KS | {"emulator": TINY_EMULATOR}))
        config = config.with_changes("emulator", **{"training.steps": 6})

        def loss(model, windows, generator):
            return (model(windows[:, 0]) - windows[:, 1]).pow(2).mean(1)

        def validation(windows):
            self.held_out.append(data.normalisation.denormalise(windows))
            return mean_loss(loss, windows, data.device)

        return Recipe("emulator", config, window=2, build=lambda: nn.Linear(8, 8), loss=loss,
                      batch=lambda windows, step, generator: windows, validation=validation,
                      validation_windows=5, metadata={"extra": "kept"},
                      identity={"tag": self.tag})


def test_recipe_splits_normalises_validates_and_guards_resume(tmp_path: Path) -> None:
    trainer = _ToyTrainer(tmp_path / "toy.zarr")
    out = train(trainer, tmp_path / "toy.pt", inputs=[], options=RunOptions(progress=False))
    saved = load_checkpoint(out, kind="emulator")
    assert saved["step"] == 6 and saved["extra"] == "kept"
    assert json.loads(saved["identity"])["tag"] == "a"
    # the statistics are those of the training trajectories 0..2, never the validation one
    train_values = 100.0 * np.arange(3)[:, None] + np.arange(10)[None, :]
    assert float(saved["normalisation"]["mean"]) == pytest.approx(train_values.mean())
    (held_out,) = trainer.held_out
    assert held_out.shape == (5, 2, 8) and torch.all(held_out // 100 == 3)
    assert "validation_loss" in json.loads(Path(f"{out}.metrics.jsonl").read_text()
                                           .splitlines()[-1])
    with pytest.raises(TrainingError, match="another configuration"):
        train(_ToyTrainer(tmp_path / "toy.zarr", tag="b"), out, inputs=[],
              options=RunOptions(progress=False))
