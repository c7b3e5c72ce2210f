"""Synthetic observations of a truth trajectory store under a named regime.

For every observed step ``s`` (``start, start + every, ...`` within the store) and every
selected trajectory::

    value = H(x_truth(s)) + noise * sigma_clim * N(0, 1),    error_std = noise * sigma_clim

``sigma_clim`` is the climatological std of the field (one scalar over the selected
trajectories, all times and points). A saturating operator bounds ``H(x)`` in (-1, 1), on
which the field's std would be meaningless; ``sigma_clim`` is then the std of the clean
``H(x)`` itself. All noise is drawn at once from ``numpy.random.default_rng(seed)``, so a
seed gives the same observations whatever else changes.

Attributes: the regime's name, file and parameters (``operator``, ``stride`` ..., a
stations regime's own ``seed``), ``pde``, ``simulator`` (the truth store's simulator
section as JSON: the physics the observations come from, checked against a run's config),
``variable``, ``source`` (the truth store) and its ``source_created`` stamp,
``noise_seed``, ``clim_std`` (what ``noise`` multiplies), ``field_std`` and
``grid_shape``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from assimilate.observe.files import SPACE_DIMS, model_grid
from assimilate.observe.operator import Operator
from assimilate.observe.regimes import Regime, load_regime
from pde.io.errors import ConfigError
from pde.io.output import claim
from pde.io.progress import tqdm
from pde.io.store import field_variable, open_trajectories, simulator_section, write_zarr

__all__ = ["observe", "select_trajectories", "summary"]


def select_trajectories(trajectories: int | Sequence[int] | None, n_stored: int) -> np.ndarray:
    """Positions of the chosen trajectories: all (None), the first N (an int) or a list."""
    if trajectories is None:
        return np.arange(n_stored)
    if isinstance(trajectories, (int, np.integer)):
        if not 1 <= trajectories <= n_stored:
            raise ConfigError(f"trajectories={trajectories}: the store holds {n_stored} "
                              f"trajectories; choose a count in 1..{n_stored}")
        return np.arange(int(trajectories))
    chosen = np.asarray(list(trajectories), dtype=np.int64)
    outside = [int(i) for i in chosen if not 0 <= i < n_stored]
    if outside or len(chosen) == 0 or len(set(chosen.tolist())) != len(chosen):
        what = f"trajectory {outside[0]} does not exist" if outside else "give distinct indices"
        raise ConfigError(f"trajectories={chosen.tolist()}: {what} (the store holds "
                          f"0..{n_stored - 1})")
    return chosen


def _clean(field: xr.DataArray, operator: Operator, steps: np.ndarray,
           progress: bool) -> np.ndarray:
    """``H(x_truth)`` at ``steps`` for each trajectory of ``field``: ``(n_traj, n_times * n_obs)``
    (time-major within a trajectory)."""
    rows = []
    for k in tqdm(range(field.sizes["trajectory"]), desc="observe", unit="trajectory",
                  disable=not progress):
        states = field.isel(trajectory=k, time=steps).values.astype(np.float64)
        rows.append(operator.apply(states).reshape(-1))  # (n_times, n_obs) -> flat
    return np.stack(rows)


def _dataset(values: np.ndarray, scale: float, operator: Operator, times: np.ndarray,
             trajectories: np.ndarray) -> xr.Dataset:
    """The observation dataset (format: :mod:`assimilate.observe.files`)."""
    n_times = len(times)
    dims = SPACE_DIMS[len(operator.space)]
    locations = np.tile(operator.locations, (n_times, 1))  # (n_times * n_obs, ndim)
    return xr.Dataset(
        {
            "value": (("trajectory", "obs"), values,
                      {"long_name": "observed value (NaN: missing)"}),
            "error_std": ("obs", np.full(values.shape[1], scale),
                          {"long_name": "observation error standard deviation"}),
            "indices": (("obs", "support"), np.tile(operator.indices, (n_times, 1)),
                        {"long_name": "flat grid indices of the operator row"}),
            "weights": (("obs", "support"), np.tile(operator.weights, (n_times, 1)),
                        {"long_name": "weights of the operator row"}),
        },
        coords={
            "trajectory": ("trajectory", trajectories, {"long_name": "trajectory index"}),
            "time": ("obs", np.repeat(times, operator.n_obs),
                     {"units": "1", "long_name": "model time"}),
            **{d: ("obs", locations[:, i], {"units": "1", "long_name": f"{d} position"})
               for i, d in enumerate(dims)},
        },
    )


def _synthesise(store: str | Path, regime: str | Regime, trajectories, seed: int,
                regimes_path, progress: bool) -> xr.Dataset:
    truth = open_trajectories(store)
    pde, variable = truth.attrs["pde"], field_variable(truth)
    if isinstance(regime, str):
        regime = load_regime(regime, pde, regimes_path)
    elif regime.pde != pde:
        raise ConfigError(f"regime '{regime.name}' is for {regime.pde}; '{store}' holds {pde}")
    chosen = select_trajectories(trajectories, truth.sizes["trajectory"])
    field = truth[variable].isel(trajectory=chosen)
    grid = model_grid(truth)
    operator = regime.operator(grid["space"], grid["coordinates"])
    steps = regime.steps(truth.sizes["time"])
    if len(steps) == 0:
        raise ConfigError(f"regime '{regime.name}' observes from step {regime.start}: "
                          f"'{store}' holds only {truth.sizes['time']} states")
    field_std = float(field.std().compute())
    clean = _clean(field, operator, steps, progress)
    clim_std = field_std if operator.is_linear else float(clean.std())
    scale = regime.noise_in(clim_std) * clim_std
    # withheld stations draw their own noise, not the assimilated stations' draws
    noise = np.random.default_rng([seed, 1] if regime.withheld else seed)
    values = clean + scale * noise.standard_normal(clean.shape)
    times = truth["time"].values[steps]
    ds = _dataset(values, scale, operator, times, truth["trajectory"].values[chosen])
    if "valid_time" in truth.coords:  # imported data: the calendar time of model time 0
        ds = ds.assign_coords(start_time=("trajectory", truth["valid_time"].values[chosen, 0],
                                          {"long_name": "calendar time of model time 0"}))
    ds.attrs = {**regime.attrs(), "pde": pde,
                "simulator": json.dumps(simulator_section(truth), sort_keys=True),
                "variable": variable, "source": str(store),
                "source_created": truth.attrs["created"], "noise_seed": int(seed),
                "clim_std": clim_std, "field_std": field_std,
                "grid_shape": list(operator.space)}
    return ds


def observe(store: str | Path, regime: str | Regime, out: str | Path | None = None, *,
            trajectories: int | Sequence[int] | None = None, seed: int = 0,
            regimes_path: str | Path | None = None, overwrite: bool = False,
            progress: bool = True) -> xr.Dataset:
    """Synthetic observations of the truth store ``store`` under ``regime``.

    Args:
        store: a finished trajectory store (the truth).
        regime: a regime name (of the store's PDE, in ``regimes_path``) or a :class:`Regime`.
        out: if given, the observations are written there as Zarr (guarded write path).
        trajectories: all (None), the first N, or a list of trajectory indices.
        seed: seed of the observation noise.
        regimes_path: a regimes file (default ``configs/regimes.yaml``).
        overwrite: replace an existing ``out``.
        progress: show a progress bar over trajectories.

    Returns:
        the observation dataset, ``value (trajectory, obs)`` and the operator rows.
    """
    if out is None:
        return _synthesise(store, regime, trajectories, seed, regimes_path, progress)
    with claim(out, kind="directory", inputs=[store], overwrite=overwrite) as output:
        ds = _synthesise(store, regime, trajectories, seed, regimes_path, progress)
        write_zarr(ds, output)
    return ds


def summary(ds: xr.Dataset) -> str:
    """One line: observation times, observations per time, noise std."""
    times, counts = np.unique(ds["time"].values, return_counts=True)
    per = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    noise = np.unique(ds["error_std"].values)
    std = f"{noise[0]:.4g}" if len(noise) == 1 else f"{noise.min():.4g}-{noise.max():.4g}"
    if "clim_std" in ds.attrs and "noise" in ds.attrs:
        std += f" ({ds.attrs['noise']:g} x climatological std {ds.attrs['clim_std']:.4g})"
    n_traj = ds.sizes.get("trajectory", 1)
    return (f"regime {ds.attrs.get('regime', 'user')}: {len(times)} observation times "
            f"({times[0]:g} to {times[-1]:g}), {per} observations per time, noise std {std}, "
            f"{n_traj} {'trajectory' if n_traj == 1 else 'trajectories'}")
