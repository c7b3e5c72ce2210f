"""The forecasts a forecaster is measured against, beside persistence and climatology.

- ``simulator``: for simulated data, the true simulator started from the initial state
  plus Gaussian noise of ``PERTURBATION`` (1 %) of the climatological std: the
  predictability limit of the chaos;
- ``diurnal``: for imported data, which have no simulator, the mean of the training days
  at the same time of day, per grid point (a forecast that knows the daily cycle and
  nothing of the weather).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from assimilate.da.dynamics import SimulatorModel
from assimilate.evaluation import robustness
from pde.config import SimulationConfig

__all__ = ["PERTURBATION", "diurnal_forecast", "simulator_forecast", "simulator_models"]

PERTURBATION = 0.01


def simulator_forecast(store_config: str, truth: np.ndarray, n_members: int, std: float,
                       seed: int) -> tuple[np.ndarray, float]:
    """The true simulator from perturbed initial states ``(I, M, n_steps + 1, *space)``,
    and its wall time per step."""
    simulator = SimulationConfig.model_validate_json(store_config).simulator.build()
    rng = np.random.default_rng(seed)
    initial = np.repeat(truth[:, 0], n_members, axis=0)
    perturbed = initial + PERTURBATION * std * rng.standard_normal(initial.shape)
    started = time.perf_counter()
    _, fields = simulator.trajectory(simulator.from_physical(perturbed.astype(np.float32)),
                                     truth.shape[1])
    seconds = (time.perf_counter() - started) / (truth.shape[1] - 1)
    fields = np.asarray(fields, dtype=np.float32)
    return fields.reshape(len(truth), n_members, *fields.shape[1:]), seconds


def simulator_models(store_config: str) -> tuple[robustness.Advance, robustness.Rollout]:
    """The true simulator restarted from each stored field (``advance``), and run
    continuously from the first (``rollout``)."""
    simulator = SimulationConfig.model_validate_json(store_config).simulator.build()
    advance = SimulatorModel(simulator).advance

    def rollout(history: np.ndarray, n_steps: int) -> np.ndarray:
        _, fields = simulator.trajectory(simulator.from_physical(history[:, -1]), n_steps + 1)
        return np.asarray(fields, dtype=np.float32)

    return advance, rollout


def diurnal_forecast(forecaster, climatology: str | Path, valid_times: np.ndarray
                     ) -> np.ndarray:
    """``(I, 1, T, *space)``: at each of ``valid_times`` ``(I, T)`` the mean over the
    training trajectories of the store ``climatology`` (those the forecaster trained on:
    its ``validation_trajectories`` left out) of the states at the same time of day."""
    from assimilate.models.forecaster import open_matching
    from assimilate.training.batches import split_trajectories

    ds = open_matching(forecaster, climatology)
    if "valid_time" not in ds.coords:
        raise ValueError(f"store '{climatology}' has no calendar times (valid_time); a "
                         "diurnal climatology needs imported data (`assimilate import`)")
    held_out = forecaster.config.forecaster.training.validation_trajectories
    train, _ = split_trajectories(ds.sizes["trajectory"], n_validation=held_out)
    field = ds[forecaster.variable].isel(trajectory=train)
    minutes = _time_of_day(ds["valid_time"].isel(trajectory=train).values)
    values = field.values.reshape(-1, *field.shape[2:]).astype(np.float64)
    wanted = _time_of_day(valid_times)
    known = np.unique(minutes.ravel())
    missing = np.setdiff1d(np.unique(wanted), known)
    if missing.size:
        raise ValueError(f"store '{climatology}' has no state at {int(missing[0]) // 60:02d}:"
                         f"{int(missing[0]) % 60:02d} of the day; a diurnal climatology needs "
                         "every time of day the test trajectories hold")
    means = {m: values[minutes.ravel() == m].mean(0) for m in known}
    out = np.stack([means[m] for m in wanted.ravel()]).astype(np.float32)
    return out.reshape(*valid_times.shape, *out.shape[1:])[:, None]


def _time_of_day(times: np.ndarray) -> np.ndarray:
    """Minutes since midnight of datetime64 ``times``, same shape."""
    times = np.asarray(times, dtype="datetime64[m]")
    return (times - times.astype("datetime64[D]")).astype(np.int64)
