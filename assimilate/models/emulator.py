"""The emulator: an unconditional diffusion model of single PDE states.

It learns the distribution of one stored state (KS ``u(x)`` or Kolmogorov vorticity
``ω(y, x)``), with Gaussian noise (EDM, "Elucidating the Design Space of Diffusion-Based
Generative Models", arXiv 2206.00364) or Student-t noise (t-EDM, "Heavy-Tailed Diffusion
Models", arXiv 2410.14171), in the denoiser family ``edm`` or the flow family ``flow``
(Gaussian flow matching, or t-Flow when ``nu`` is set). Samples are written into a
store with dims ``(sample, x)`` or ``(sample, y, x)`` and provenance attributes.

    train_emulator(config, data, out)      # = assimilate train emulator CONFIG --data --out
    sample_emulator(checkpoint, n, out)    # = assimilate sample emulator CKPT --n --out
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from torch import nn

from assimilate.config import ExperimentConfig
from assimilate.diffusion import EvaluationCounter
from assimilate.models.core import StoreTrainer, build_model, generate, loss_function, periodic
from assimilate.training.batches import DEFAULT_MEMORY_LIMIT, Normalisation
from assimilate.training.loop import load_checkpoint, select_device
from assimilate.training.recipe import (
    Recipe,
    RunOptions,
    TrainingData,
    mean_loss,
    train,
)
from pde.io.output import claim
from pde.io.progress import tqdm
from pde.io.store import write_zarr

__all__ = ["SAMPLES_SCHEMA", "EmulatorTrainer", "load_emulator", "sample_emulator", "train_emulator"]

SAMPLES_SCHEMA = "assimilate.samples/1"


def train_emulator(
    config: ExperimentConfig,
    data: str | Path,
    out: str | Path,
    *,
    nu: float | None = None,
    steps: int | None = None,
    progress: bool = True,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    allow_other_data: bool = False,
) -> Path:
    """Train the emulator of ``config`` on the trajectory store ``data``; checkpoint at ``out``.

    ``nu`` and ``steps`` override ``emulator.nu`` and ``emulator.training.steps``. Rerunning
    resumes from ``out``; a larger ``steps`` continues a finished run. Stores larger than
    ``memory_limit`` bytes are read lazily by background threads.
    """
    config = config.with_changes("emulator", nu=nu, **{"training.steps": steps})
    return train(EmulatorTrainer(config, data), out, inputs=[data],
                 options=RunOptions(progress=progress, memory_limit=memory_limit,
                                    allow_other_data=allow_other_data))


@dataclasses.dataclass(frozen=True)
class EmulatorTrainer(StoreTrainer):
    """The emulator's part of the training recipe (:mod:`assimilate.training.recipe`):
    single states, the family's denoising loss."""

    section: ClassVar[str] = "emulator"

    def recipe(self, data: TrainingData) -> Recipe:
        settings = self.config.emulator
        loss = loss_function(settings.family)
        return Recipe(
            "emulator", self.config, window=1,
            build=lambda: build_model(settings, dims=data.dims, periodic=periodic(self.config)),
            loss=loss,
            batch=lambda windows, step, generator: windows,
            validation=lambda windows: mean_loss(loss, windows, data.device))


def load_emulator(checkpoint: str | Path) -> tuple[nn.Module, ExperimentConfig, dict[str, Any]]:
    """``(denoiser with EMA weights, config, checkpoint payload)`` from an emulator checkpoint."""
    payload = load_checkpoint(checkpoint, kind="emulator")
    config = ExperimentConfig.model_validate_json(payload["config"])
    model = build_model(config.emulator, dims=len(payload["coordinates"]),
                        periodic=periodic(config))
    model.load_state_dict(payload["ema"])
    return model.eval(), config, payload


def sample_emulator(
    checkpoint: str | Path,
    n: int,
    out: str | Path,
    *,
    batch_size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Draw ``n`` states from the emulator at ``checkpoint`` into the store ``out``
    (``progress``: a progress bar in samples/s)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    with claim(out, kind="directory", inputs=[checkpoint], overwrite=overwrite) as output:
        model, config, payload = load_emulator(checkpoint)
        device = select_device()
        model.to(device)
        coords = {name: values.numpy() for name, values in payload["coordinates"].items()}
        shape = tuple(len(values) for values in coords.values())
        normalisation = Normalisation.from_state(payload["normalisation"])
        generator = torch.Generator(device=device).manual_seed(seed)
        started, chunks = time.perf_counter(), []
        with torch.no_grad(), EvaluationCounter(model) as counter, \
                tqdm(total=n, unit="sample", desc="sample", disable=not progress) as bar:
            for first in range(0, n, batch_size):
                count = min(batch_size, n - first)
                drawn = generate(model, config.emulator, (count, 1, *shape), generator)
                chunks.append(normalisation.denormalise(drawn[:, 0].double()).float().cpu())
                bar.update(count)
        seconds = time.perf_counter() - started
        samples = torch.cat(chunks).numpy()
        nfe = counter.calls // math.ceil(n / batch_size)  # per sample: batches run in turn
        ds = _samples_dataset(samples, coords, payload, config, checkpoint, seed, seconds, nfe)
        return write_zarr(ds, output)


def _samples_dataset(samples, coords, payload, config, checkpoint, seed, seconds,
                     nfe) -> xr.Dataset:
    steps = config.emulator.sampling.steps
    variable = payload["variable"]
    ds = xr.Dataset(
        {variable: (("sample", *coords), samples, {"units": "1"})},
        coords={"sample": np.arange(len(samples)),
                **{name: (name, values, {"units": "1"}) for name, values in coords.items()}},
    )
    ds.attrs = {
        "schema": SAMPLES_SCHEMA,
        "kind": "emulator",
        "pde": config.simulator.pde,
        "family": config.emulator.family,
        "nu": "gaussian" if config.emulator.nu is None else config.emulator.nu,
        "sampler": config.emulator.sampling.sampler,
        "sampling_steps": steps,
        "nfe": nfe,
        "seed": seed,
        "checkpoint": str(Path(checkpoint).resolve()),
        "training_step": int(payload["step"]),
        "config": payload["config"],
        "wall_time_s": round(seconds, 3),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "package_version": metadata.version("assimilate"),
    }
    return ds
