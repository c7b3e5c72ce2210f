"""The one training recipe every trainer follows (emulator, forecaster, controller).

:func:`train` runs, top to bottom:

1. claim the checkpoint output (:func:`~assimilate.training.loop.claim_checkpoint`);
2. open the training store: the trainer's :meth:`Trainer.open` gives its field, and the
   normalisation when it is fixed already (the controller's is its forecaster's);
3. split the trajectories into training and validation sets and normalise with the
   training set's statistics (:class:`TrainingData`);
4. ask the trainer for its :class:`Recipe` on these data: the network, the per-sample
   loss, how a step's windows become the loss's batch, the validation, the metadata;
5. draw the held-out validation windows once;
6. seed torch and build the network (its initial weights depend on the seed alone);
7. write the checkpoint metadata and train with :func:`~assimilate.training.loop.fit`.

A trainer is a small object with the two methods of :class:`Trainer`; what it does not
say (resume, EMA, validation cadence, checkpoints) is the same for every model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import xarray as xr
from torch import nn

from assimilate.config import ExperimentConfig, TrainingConfig
from assimilate.training.batches import (
    DEFAULT_MEMORY_LIMIT,
    Normalisation,
    WindowSampler,
    split_trajectories,
)
from assimilate.training.loop import BatchFn, LossFn, claim_checkpoint, fit, select_device
from pde.io import threads
from pde.io.store import simulator_section, store_identity

__all__ = ["Recipe", "RunOptions", "Store", "Trainer", "TrainingData", "checkpoint_metadata",
           "mean_loss", "train"]


@dataclasses.dataclass(frozen=True)
class Store:
    """A training store as a trainer opens it."""

    path: str | Path
    """The store as the user named it (``--data``)."""
    ds: xr.Dataset
    field: xr.DataArray
    """The trained variable ``(trajectory, time, *space)``."""
    normalisation: Normalisation | None = None
    """Fixed by the trainer, or None: the training trajectories' statistics."""
    validation: int | None = None
    """Trajectories held out to validate, the last ones (None: a tenth)."""


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The training store split by trajectory, normalised, and the device to train on."""

    store: Store
    train: np.ndarray
    validation: np.ndarray
    """Trajectory indices of each set (:func:`split_trajectories`)."""
    normalisation: Normalisation
    device: torch.device

    @property
    def field(self) -> xr.DataArray:
        return self.store.field

    @property
    def dims(self) -> int:
        """Spatial dimensions of the field (1 for KS, 2 for Kolmogorov flow)."""
        return self.store.field.ndim - 2


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What one trainer brings to :func:`train`; the rest of the recipe is shared."""

    kind: str
    """The checkpoint's kind and the configuration section trained (``"forecaster"``)."""
    config: ExperimentConfig
    window: int
    """Consecutive states per drawn window: 1 for single states."""
    build: Callable[[], nn.Module]
    """The network, built once torch is seeded."""
    loss: LossFn
    """``(model, batch, generator) -> (batch,)``: the per-sample loss."""
    batch: Callable[[torch.Tensor, int, torch.Generator], Any]
    """``(windows, step, generator) -> batch``: a step's normalised windows ``(batch,
    window, *space)``, on the device, as the loss takes them."""
    validation: Callable[[torch.Tensor], Callable[[nn.Module], float]]
    """The held-out windows (on the device) -> the validation of the EMA weights."""
    validation_windows: int = 256
    windows_from_step_generator: bool = False
    """Draw each step's windows with the step's generator, which the loss then goes on
    drawing from (the controller), instead of the prefetching loader, whose windows depend
    on ``(seed, step, rank)`` alone."""
    features: np.ndarray | None = None
    """Per stored state ``(trajectory, time, F)``, drawn with the windows: the batch function
    then takes the pair ``(windows, features (batch, window, F))``."""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Stored beside :func:`checkpoint_metadata`'s entries."""
    identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Added to what must match for a rerun to resume."""

    @property
    def training(self) -> TrainingConfig:
        return getattr(self.config, self.kind).training


class Trainer(Protocol):
    """A model's part of the recipe."""

    def open(self) -> Store:
        """The training store (run once the output is claimed)."""
        ...

    def recipe(self, data: TrainingData) -> Recipe:
        """The model, loss, batches, validation and metadata for ``data``."""
        ...


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a training run goes, beside its configuration."""

    progress: bool = True
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    """Stores larger than this many bytes are read lazily by background threads."""
    allow_other_data: bool = False
    """Resume a checkpoint on another store than the one it was trained on."""


def train(trainer: Trainer, out: str | Path, *, inputs: Sequence[str | Path],
          options: RunOptions = RunOptions()) -> Path:
    """Train ``trainer``'s model, checkpointing at ``out`` (module doc, steps 1-7).

    ``inputs`` are the files the run reads (the output may be none of them). A rerun
    resumes from ``out``; on another store only with ``options.allow_other_data``.
    """
    with claim_checkpoint(out, inputs=inputs) as output:
        data = _split(trainer.open())
        recipe = trainer.recipe(data)
        windows = WindowSampler(data.field, data.train, data.normalisation,
                                window=recipe.window, memory_limit=options.memory_limit,
                                features=recipe.features)
        validation_fn = None
        if len(data.validation):
            held_out = WindowSampler(data.field, data.validation, data.normalisation,
                                     window=recipe.window, features=recipe.features)
            fixed = held_out(recipe.validation_windows, torch.Generator().manual_seed(0))
            validation_fn = recipe.validation(_to(fixed, data.device))
        torch.manual_seed(recipe.training.seed)  # initial weights depend on the seed alone
        model = recipe.build()
        with _batches(recipe, windows, data.device) as batch_fn:
            return fit(model, recipe.loss, batch_fn, recipe.training, output,
                       metadata=_metadata(recipe, data), validation_fn=validation_fn,
                       progress=options.progress, allow_other_data=options.allow_other_data)


def _split(store: Store) -> TrainingData:
    train_set, validation = split_trajectories(store.field.sizes["trajectory"],
                                               n_validation=store.validation)
    normalisation = store.normalisation
    if normalisation is None:
        normalisation = Normalisation.of(store.field.isel(trajectory=train_set))
    return TrainingData(store, train_set, validation, normalisation, select_device())


@contextlib.contextmanager
def _batches(recipe: Recipe, windows: WindowSampler, device: torch.device
             ) -> Iterator[BatchFn]:
    """``batch_fn(step, generator)`` for :func:`fit`: the step's windows, as the loss takes them."""
    training = recipe.training
    if recipe.windows_from_step_generator:
        yield lambda step, generator: recipe.batch(
            _to(windows(training.batch_size, generator), device), step, generator)
        return
    with windows.loader(training.batch_size, training.seed, stop=training.steps) as loaded:
        yield lambda step, generator: recipe.batch(_to(loaded(step), device), step, generator)


def _to(drawn: torch.Tensor | tuple[torch.Tensor, ...], device: torch.device):
    """A draw of :class:`WindowSampler` (windows, or windows and features) on ``device``."""
    if isinstance(drawn, tuple):
        return tuple(part.to(device) for part in drawn)
    return drawn.to(device)


def mean_loss(loss: LossFn, batch: Any, device: torch.device) -> Callable[[nn.Module], float]:
    """Validation by the mean per-sample ``loss`` on a fixed ``batch``, drawing the same
    noise every time (seed 1), so that successive values compare weights alone."""
    def validate(model: nn.Module) -> float:
        generator = torch.Generator(device=device).manual_seed(1)
        with torch.no_grad():
            return float(loss(model, batch, generator).mean())

    return validate


def _metadata(recipe: Recipe, data: TrainingData) -> dict[str, Any]:
    store = data.store
    return checkpoint_metadata(recipe.kind, recipe.config, store.ds, store.field,
                               data.normalisation, store.path, identity=recipe.identity,
                               **recipe.metadata)


def checkpoint_metadata(kind: str, config: ExperimentConfig, ds: xr.Dataset,
                        field: xr.DataArray, normalisation: Normalisation,
                        data: str | Path, identity: Mapping[str, Any] | None = None,
                        **extra: Any) -> dict[str, Any]:
    """What a model checkpoint stores beside its weights (see :func:`assimilate.training.loop.fit`).

    ``identity`` (what must match to resume) is the configuration without the training
    step count, so a larger ``--steps`` continues a finished run, and whatever else the
    trainer names in ``identity`` (the controller: its frozen forecaster). ``simulator`` is the
    training store's full simulator section (the physics the model knows; forecasting from
    a store of other physics is refused), ``data_identity`` tells that store from another.
    """
    resumable = config.model_dump(mode="json")
    resumable[kind]["training"].pop("steps")
    return {
        "simulator": json.dumps(simulator_section(ds), sort_keys=True),
        "data_identity": store_identity(ds),
        "kind": kind,
        "config": config.model_dump_json(),
        "identity": json.dumps(resumable | dict(identity or {}), sort_keys=True),
        "normalisation": normalisation.to_state(),
        "variable": field.name,
        "coordinates": {name: torch.tensor(np.asarray(ds[name].values, dtype=np.float64))
                        for name in field.dims[2:]},
        "data": str(Path(data).resolve()),
        "threads": json.dumps(threads.in_effect()),  # of the process that trained it
        **extra,
    }
