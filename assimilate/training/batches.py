"""From trajectory stores to PyTorch batches.

Fields are standardised with one mean and one standard deviation per store, computed
once with Dask over the training trajectories and saved in every checkpoint, so a model
always undoes exactly the normalisation it was trained with. Trajectories, not states,
are split into training and validation sets, because neighbouring states of one
trajectory are strongly correlated.

Small stores (below ``memory_limit`` bytes) are read into memory once; larger ones are
read lazily, one batch of random windows at a time, from the store's chunks, by
background threads that stay a few training steps ahead (``WindowSampler.loader``).
Which windows a training step sees depends only on the seed, the step and the rank, so
both paths give the same batches and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import dask
import numpy as np
import torch
import xarray as xr

__all__ = [
    "Normalisation",
    "Prefetcher",
    "WindowSampler",
    "split_trajectories",
    "windows_and_features",
]

DEFAULT_MEMORY_LIMIT = 2 * 2**30


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """x_normalised = (x - mean) / std, one scalar pair per field."""

    mean: float
    std: float

    @classmethod
    def of(cls, field: xr.DataArray) -> Normalisation:
        """Statistics over every element of ``field`` (lazy inputs are reduced with Dask)."""
        wide = field.astype(np.float64)
        mean, std = (float(value) for value in dask.compute(wide.mean(), wide.std()))
        if not np.isfinite([mean, std]).all() or std <= 0:
            raise ValueError(f"field '{field.name}' has non-finite values or no spread "
                             f"(mean {mean}, std {std})")
        return cls(mean, std)

    def to_state(self) -> dict[str, torch.Tensor]:
        return {"mean": torch.tensor(self.mean, dtype=torch.float64),
                "std": torch.tensor(self.std, dtype=torch.float64)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Normalisation:
        return cls(float(state["mean"]), float(state["std"]))

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.std + self.mean


def split_trajectories(n_trajectories: int, validation_fraction: float = 0.1,
                       n_validation: int | None = None):
    """``(train, validation)`` trajectory indices; the last ones validate: ``n_validation``
    of them, or by default ``validation_fraction`` (at least one). One is always trained."""
    if n_trajectories < 2:
        return np.arange(n_trajectories), np.arange(0)
    if n_validation is None:
        n_validation = max(1, round(validation_fraction * n_trajectories))
    n_validation = min(n_validation, n_trajectories - 1)
    indices = np.arange(n_trajectories)
    cut = n_trajectories - n_validation
    return indices[:cut], indices[cut:]


def windows_and_features(drawn) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(windows, features or None)`` of a :class:`WindowSampler` draw."""
    return drawn if isinstance(drawn, tuple) else (drawn, None)


class WindowSampler:
    """Random windows of consecutive states ``(batch, window, *space)``, normalised.

    ``window = 1`` gives single states (the emulator); ``window = k + 1`` gives a history of
    ``k`` states and the state that follows (the forecaster). Windows never cross from one
    trajectory into the next. With ``features`` ``(trajectory, time, F)`` (the calendar of
    every stored state) a draw is the pair ``(windows, their features (batch, window, F))``.
    """

    def __init__(self, field: xr.DataArray, trajectories: np.ndarray,
                 normalisation: Normalisation, window: int = 1,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT,
                 features: np.ndarray | None = None):
        if len(trajectories) == 0:
            raise ValueError("no trajectories to sample windows from")
        if not 1 <= window <= field.sizes["time"]:
            raise ValueError(f"window={window} must lie in [1, {field.sizes['time']}] "
                             "(the number of stored states per trajectory)")
        self.field = field.isel(trajectory=np.asarray(trajectories))
        self.normalisation = normalisation
        self.window = window
        self.in_memory: torch.Tensor | None = None
        self.features = None
        if features is not None:
            if features.shape[:2] != field.shape[:2]:
                raise ValueError(f"features {features.shape[:2]} must cover the field's "
                                 f"(trajectory, time) {field.shape[:2]}")
            selected = np.asarray(features, dtype=np.float32)[np.asarray(trajectories)]
            self.features = torch.from_numpy(selected)
        if self.field.size * 4 <= memory_limit:
            self.in_memory = torch.from_numpy(np.asarray(self.field.values, dtype=np.float32))

    @property
    def n_windows(self) -> int:
        n_traj, n_time = self.field.shape[:2]
        return n_traj * (n_time - self.window + 1)

    def __call__(self, batch_size: int, generator: torch.Generator
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        flat = torch.randint(0, self.n_windows, (batch_size,), generator=generator,
                             device=generator.device).cpu()
        starts_per_trajectory = self.field.shape[1] - self.window + 1
        trajectory, start = np.divmod(flat.numpy(), starts_per_trajectory)
        time = start[:, None] + np.arange(self.window)[None, :]
        if self.in_memory is not None:
            windows = self.in_memory[trajectory[:, None], time]
        else:
            picked = self.field.isel(
                trajectory=xr.DataArray(np.broadcast_to(trajectory[:, None], time.shape),
                                        dims=("batch", "window")),
                time=xr.DataArray(time, dims=("batch", "window")))
            windows = torch.from_numpy(np.asarray(picked.values, dtype=np.float32))
        windows = self.normalisation.normalise(windows).float()
        if self.features is None:
            return windows
        return windows, self.features[trajectory[:, None], time]

    @contextlib.contextmanager
    def loader(self, batch_size: int, seed: int, *, stop: int | None = None,
               rank: int | None = None, workers: int = 2,
               depth: int = 4) -> Iterator[Callable[[int], torch.Tensor]]:
        """``batch(step)``: the windows of one training step, a pure function of the step.

        The windows come from a generator seeded by ``(seed, step, rank)`` (``rank`` from
        the ``RANK`` environment variable under torchrun). On the lazy path ``workers``
        threads read the next ``depth`` steps' windows while the model trains (Zarr
        decompression and Dask release the GIL); ``stop`` is the first step not to read.
        """
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank

        def draw(step: int) -> torch.Tensor:
            entropy = np.random.SeedSequence([seed, step, rank]).generate_state(2)
            generator = torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))
            return self(batch_size, generator)

        if self.in_memory is not None or workers == 0:
            yield draw
            return
        with contextlib.closing(Prefetcher(draw, workers=workers, depth=depth,
                                           stop=stop)) as prefetched:
            yield prefetched


class Prefetcher:
    """``make(step)`` computed ahead on background threads for the next ``depth`` steps.

    Calling it with ``step`` returns ``make(step)`` (waiting if it is not ready yet) and
    schedules the steps after it; steps may be skipped or revisited (after a resume).
    An exception raised by ``make`` surfaces at the call that asks for that step.
    """

    def __init__(self, make: Callable[[int], torch.Tensor], *, workers: int = 2,
                 depth: int = 4, stop: int | None = None) -> None:
        if workers < 1 or depth < 1:
            raise ValueError(f"workers and depth must be >= 1, got {workers}, {depth}")
        self._make, self._depth, self._stop = make, depth, stop
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="assimilate-batches")
        self._pending: dict[int, Future] = {}

    def __call__(self, step: int) -> torch.Tensor:
        for stale in [ahead for ahead in self._pending if ahead < step]:
            self._pending.pop(stale).cancel()
        last = step + self._depth if self._stop is None else min(step + self._depth, self._stop)
        for ahead in range(step, max(last, step + 1)):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._make, ahead)
        return self._pending.pop(step).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
