"""Stores to batches: windows are consecutive states of one trajectory, lazily or not."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.training.batches import Normalisation, Prefetcher, WindowSampler, split_trajectories


@pytest.fixture
def field() -> xr.DataArray:
    # value = 1000 * trajectory + time, so a window reveals where it came from
    values = (1000.0 * np.arange(5)[:, None, None] + np.arange(7)[None, :, None]
              + np.zeros((1, 1, 3)))
    return xr.DataArray(values.astype(np.float32), dims=("trajectory", "time", "x"),
                        name="u").chunk({"trajectory": 1})


@pytest.mark.parametrize("memory_limit", [2**30, 0], ids=["in-memory", "lazy"])
def test_windows_are_consecutive_states_of_one_trajectory(field, memory_limit) -> None:
    normalisation = Normalisation(mean=0.0, std=1.0)
    sampler = WindowSampler(field, np.array([1, 3, 4]), normalisation, window=3,
                            memory_limit=memory_limit)
    assert (sampler.in_memory is None) == (memory_limit == 0)
    windows = sampler(64, torch.Generator().manual_seed(0)).numpy()
    assert windows.shape == (64, 3, 3)
    trajectory, time = np.divmod(windows[:, :, 0], 1000.0)
    assert set(np.unique(trajectory)) <= {1.0, 3.0, 4.0}
    assert (trajectory == trajectory[:, :1]).all(), "a window never crosses trajectories"
    np.testing.assert_array_equal(np.diff(time, axis=1), 1.0)
    assert time.max() <= 6 and len(np.unique(trajectory)) == 3


def test_lazy_and_in_memory_draw_the_same_windows(field) -> None:
    normalisation = Normalisation.of(field)
    draws = [WindowSampler(field, np.arange(5), normalisation, window=2, memory_limit=limit)(
        16, torch.Generator().manual_seed(3)) for limit in (2**30, 0)]
    torch.testing.assert_close(draws[0], draws[1])


def test_loader_batches_are_a_function_of_the_step_on_both_paths(field) -> None:
    normalisation = Normalisation(mean=0.0, std=1.0)
    batches = {}
    for limit in (2**30, 0):
        sampler = WindowSampler(field, np.arange(5), normalisation, window=2,
                                memory_limit=limit)
        with sampler.loader(8, seed=4, stop=10, rank=0) as batch:
            # forwards, then a jump back as after a resume: still the same windows
            batches[limit] = [batch(step) for step in (*range(10), 3)]
    for lazy, eager in zip(batches[0], batches[2**30], strict=True):
        torch.testing.assert_close(lazy, eager)
    torch.testing.assert_close(batches[0][3], batches[0][-1])
    assert not torch.equal(batches[0][0], batches[0][1]), "each step draws new windows"
    sampler = WindowSampler(field, np.arange(5), normalisation, window=2, memory_limit=0)
    with sampler.loader(8, seed=4, rank=1, workers=0) as other_rank:
        assert not torch.equal(other_rank(0), batches[0][0]), "ranks see different windows"


def test_prefetcher_reads_ahead_on_background_threads_and_surfaces_errors() -> None:
    seen: dict[int, str] = {}

    def make(step: int) -> torch.Tensor:
        seen[step] = threading.current_thread().name
        if step == 6:
            raise OSError("chunk 6 is unreadable")
        return torch.tensor(step)

    prefetcher = Prefetcher(make, workers=2, depth=3, stop=7)
    try:
        assert int(prefetcher(0)) == 0
        assert int(prefetcher(4)) == 4  # skipped steps are dropped, not waited for
        with pytest.raises(OSError, match="chunk 6"):
            prefetcher(6)
    finally:
        prefetcher.close()
    assert set(seen) >= {0, 4, 5, 6} and 7 not in seen, "reads ahead, never past stop"
    assert all(name.startswith("assimilate-batches") for name in seen.values())
    with pytest.raises(ValueError, match="workers and depth"):
        Prefetcher(make, workers=0)


def test_normalisation_statistics_and_round_trip(field) -> None:
    normalisation = Normalisation.of(field)
    values = field.values.astype(np.float64)
    assert normalisation.mean == pytest.approx(values.mean())
    assert normalisation.std == pytest.approx(values.std())
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(normalisation.denormalise(normalisation.normalise(x)), x)
    assert Normalisation.from_state(normalisation.to_state()) == normalisation
    with pytest.raises(ValueError, match="no spread"):
        Normalisation.of(xr.zeros_like(field))


def test_split_and_bad_windows(field) -> None:
    train, validation = split_trajectories(20)
    assert list(validation) == [18, 19] and len(train) == 18
    assert len(split_trajectories(1)[1]) == 0
    train, validation = split_trajectories(24, n_validation=3)  # days 22-24 of 24 daily ones
    assert list(validation) == [21, 22, 23] and list(train) == list(range(21))
    assert len(split_trajectories(3, n_validation=5)[0]) == 1  # one is always trained
    assert len(split_trajectories(3, n_validation=0)[1]) == 0
    with pytest.raises(ValueError, match="window=8 must lie in \\[1, 7\\]"):
        WindowSampler(field, np.arange(5), Normalisation(0.0, 1.0), window=8)
