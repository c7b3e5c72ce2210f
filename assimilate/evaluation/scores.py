"""Scores of one analysis against the truth, as the DA evaluation harness tabulates them.

All errors are normalised by the climatological std. For an analysis ``(trajectory,
member, time, *space)`` and its truth ``(trajectory, time, *space)``:

- ``nrmse_time (trajectory, time)``: RMSE of the ensemble mean over the grid;
- ``nrmse_short`` / ``nrmse_long``: its mean over steps 1..h for the short and long
  horizon (the whole run, spin-up included: slow convergence counts against a method);
- ``nrmse_observed`` / ``nrmse_unobserved``: after the spin-up, at the grid points some
  observation touches and at the others;
- ``spread_ratio``: ensemble spread / RMSE of the mean after the spin-up (1 is reliable);
- ``crps``: the ensemble CRPS per point (``scoringrules.crps_ensemble``), after the spin-up;
- ``rank_histogram (trajectory, rank)``: where the truth falls among the sorted members;
- ``series_error``: relative error of the run mean of the PDE's physical series (total
  variation for KS, dissipation for Kolmogorov flow) against the truth's;
- ``spectrum_error``: log-spectral distance of the mean energy spectra after the spin-up;
- ``stable``: every state finite and within ten climatological stds of the mean.
"""

from __future__ import annotations

import numpy as np
import scoringrules
import xarray as xr

__all__ = ["analysis_scores"]


def _mean_over(values: np.ndarray, first: int, last: int) -> np.ndarray:
    return values[:, first:last + 1].mean(axis=1)


def analysis_scores(states: np.ndarray, truth: np.ndarray, *, std: float, mean: float,
                    observed_points: np.ndarray, horizons: tuple[int, int], spin_up: int,
                    series, spectrum) -> xr.Dataset:
    """The scores above; ``observed_points`` a boolean grid ``(*space)``; ``series(field)``
    the physical series ``(..., )`` and ``spectrum(field)`` ``(..., n_wavenumbers)``."""
    n_traj, n_members, n_time = states.shape[:3]
    space_axes = tuple(range(2, truth.ndim))
    ensemble_mean = states.mean(axis=1)
    error = (ensemble_mean - truth) / std
    nrmse_time = np.sqrt(np.mean(error**2, axis=space_axes))  # (trajectory, time)
    short, long = (min(h, n_time - 1) for h in horizons)
    late = slice(spin_up, None)
    observed_error = error[:, late][..., observed_points]
    unobserved_error = error[:, late][..., ~observed_points]
    spread = np.sqrt(np.mean(states[:, :, late].var(axis=1, ddof=1), axis=space_axes)) \
        if n_members > 1 else np.full((n_traj, n_time - spin_up), np.nan)
    members = np.moveaxis(states[:, :, late], 1, -1)  # (trajectory, time, *space, member)
    crps = scoringrules.crps_ensemble(truth[:, late], members, m_axis=-1)
    ranks = (members < truth[:, late][..., None]).sum(axis=-1).reshape(n_traj, -1)
    histogram = np.stack([np.bincount(r, minlength=n_members + 1) for r in ranks])
    truth_series, analysis_series = series(truth), series(ensemble_mean)
    series_error = analysis_series.mean(axis=1) / truth_series.mean(axis=1) - 1
    truth_spectrum = spectrum(truth[:, late]).mean(axis=1)
    analysis_spectrum = spectrum(states[:, :, late]).mean(axis=(1, 2))
    positive = (truth_spectrum > 1e-6 * truth_spectrum.max(axis=-1, keepdims=True))
    log_ratio = np.log10(np.maximum(analysis_spectrum, 1e-30) / np.maximum(truth_spectrum,
                                                                             1e-30))
    spectrum_error = np.sqrt(np.sum(np.where(positive, log_ratio**2, 0), axis=-1)
                             / positive.sum(axis=-1))
    stable = np.isfinite(states).all(axis=tuple(range(1, states.ndim))) & \
        (np.abs(states - mean).max(axis=tuple(range(1, states.ndim))) < 10 * std)
    per_trajectory = {
        "nrmse_short": _mean_over(nrmse_time, 1, short),
        "nrmse_long": _mean_over(nrmse_time, 1, long),
        "nrmse_observed": np.sqrt(np.mean(observed_error**2, axis=(1, 2))),
        "nrmse_unobserved": np.sqrt(np.mean(unobserved_error**2, axis=(1, 2)))
        if (~observed_points).any() else np.full(n_traj, np.nan),
        "spread_ratio": np.mean(spread / std, axis=1) / np.mean(nrmse_time[:, late], axis=1),
        "crps": np.mean(crps, axis=tuple(range(1, crps.ndim))) / std,
        "series_error": series_error,
        "spectrum_error": spectrum_error,
        "stable": stable.astype(np.float64),
    }
    return xr.Dataset(
        {"nrmse_time": (("trajectory", "time"), nrmse_time),
         "rank_histogram": (("trajectory", "rank"), histogram),
         **{name: ("trajectory", values) for name, values in per_trajectory.items()}})
