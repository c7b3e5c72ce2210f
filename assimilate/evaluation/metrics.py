"""Skill metrics on xarray objects: small functions, explicit dims, lazy where inputs are.

Fields have spatial dims ``x`` (1-D) or ``y, x`` (2-D) on a periodic domain; ensembles
have a ``member`` dim. Every metric reduces the dims it names and keeps the others (for
example ``time`` for skill against lead time).

- ``rmse`` and ``correlation`` (Pearson over space, the anomaly correlation for zero-mean
  fields); ``high_correlation_time``: the first lead at which correlation drops below a
  threshold (0.8), the horizon if it never does;
- ``energy_spectrum`` (radially binned for 2-D) and ``log_spectral_distance``
  sqrt(mean_k (log10 E_a(k) − log10 E_b(k))²);
- ``total_variation`` Σ_i |u_{i+1} − u_i| (periodic), the KS metric of arXiv 2510.06637;
- ``crps_ensemble`` (scoringrules) and ``spread_skill_ratio``;
- ``bounded``: whether a rollout stayed within a factor of the climatological energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scoringrules
import xarray as xr

from pde import physics

__all__ = [
    "bounded",
    "correlation",
    "crps_ensemble",
    "energy_spectrum",
    "high_correlation_time",
    "log_spectral_distance",
    "rmse",
    "space_dims",
    "spread_skill_ratio",
    "total_variation",
]


def space_dims(field: xr.DataArray) -> tuple[str, ...]:
    """The spatial dims of ``field``: ``("y", "x")`` or ``("x",)``."""
    dims = tuple(dim for dim in ("y", "x") if dim in field.dims)
    if "x" not in dims:
        raise ValueError(f"field '{field.name}' has dims {field.dims}; expected an 'x' dim")
    return dims


def rmse(forecast: xr.DataArray, truth: xr.DataArray,
         dims: Sequence[str] | None = None) -> xr.DataArray:
    """Root-mean-square error over ``dims`` (default: space)."""
    dims = space_dims(truth) if dims is None else dims
    return np.sqrt(((forecast - truth) ** 2).mean(dims))


def correlation(forecast: xr.DataArray, truth: xr.DataArray,
                dims: Sequence[str] | None = None) -> xr.DataArray:
    """Pearson correlation over ``dims`` (default: space)."""
    dims = space_dims(truth) if dims is None else dims
    return xr.corr(forecast, truth, dim=list(dims))


def high_correlation_time(correlation: xr.DataArray, threshold: float = 0.8,
                          dim: str = "time") -> xr.DataArray:
    """First ``dim`` coordinate where ``correlation < threshold`` (the last one if never)."""
    below = correlation < threshold
    first = below.argmax(dim)
    never = ~below.any(dim)
    times = correlation[dim]
    return xr.where(never, times[-1], times.isel({dim: first})).drop_vars(dim, errors="ignore")


def energy_spectrum(field: xr.DataArray) -> xr.DataArray:
    """Energy per wavenumber, ½|û(k)|² normalised per grid point; dim ``wavenumber``.

    1-D: one value per Fourier mode 0..N/2. 2-D: summed over shells of integer
    |k| = round(sqrt(kx² + ky²)), 0..N/2 (the corner modes beyond N/2 are left out).
    The spectra of :mod:`pde.physics`, which the simulators' descriptors name.
    """
    dims = space_dims(field)
    spectrum = physics.spectrum_1d if len(dims) == 1 else physics.spectrum_2d
    size = physics.n_wavenumbers(tuple(field.sizes[dim] for dim in dims))
    return xr.apply_ufunc(spectrum, field, input_core_dims=[dims],
                          output_core_dims=[["wavenumber"]], dask="parallelized",
                          dask_gufunc_kwargs={"output_sizes": {"wavenumber": size}},
                          output_dtypes=[np.float64])


def log_spectral_distance(spectrum: xr.DataArray, reference: xr.DataArray,
                          dynamic_range: float | None = None,
                          floor: float = 1e-30) -> xr.DataArray:
    """sqrt(mean_k (log10 E(k) − log10 E_ref(k))²) over ``wavenumber`` >= 1.

    With ``dynamic_range`` (e.g. 1e-6), only wavenumbers where the reference holds at least
    that fraction of its peak energy count: the energetic scales. Far down the dissipation
    range a dealiased solver and float32 storage leave round-off (1e-20 and below), where
    any learned model's small errors dominate the logarithm without mattering physically.
    """
    spectrum = spectrum.isel(wavenumber=slice(1, None))
    reference = reference.isel(wavenumber=slice(1, None))
    squared = (np.log10(spectrum + floor) - np.log10(reference + floor)) ** 2
    if dynamic_range is not None:
        squared = squared.where(reference >= dynamic_range * reference.max("wavenumber"))
    return np.sqrt(squared.mean("wavenumber"))


def total_variation(u: xr.DataArray, dim: str = "x") -> xr.DataArray:
    """Σ_i |u_{i+1} − u_i| along the periodic ``dim`` (:func:`pde.physics.total_variation`)."""
    return xr.apply_ufunc(physics.total_variation, u, input_core_dims=[[dim]],
                          dask="parallelized", output_dtypes=[np.float64])


def crps_ensemble(forecast: xr.DataArray, truth: xr.DataArray,
                  member_dim: str = "member") -> xr.DataArray:
    """Pointwise ensemble CRPS (fair=False) via ``scoringrules.crps_ensemble``."""
    return xr.apply_ufunc(
        lambda f, o: scoringrules.crps_ensemble(o, f, m_axis=-1),
        forecast, truth, input_core_dims=[[member_dim], []], dask="parallelized",
        output_dtypes=[np.float64])


def spread_skill_ratio(forecast: xr.DataArray, truth: xr.DataArray,
                       member_dim: str = "member",
                       dims: Sequence[str] | None = None) -> xr.DataArray:
    """sqrt((M+1)/M · mean ensemble variance) / RMSE of the ensemble mean (1: calibrated)."""
    dims = space_dims(truth) if dims is None else dims
    n_members = forecast.sizes[member_dim]
    spread = np.sqrt((n_members + 1) / n_members * forecast.var(member_dim, ddof=1).mean(dims))
    return spread / rmse(forecast.mean(member_dim), truth, dims)


def bounded(field: xr.DataArray, climatological_energy: float, factor: float = 10.0,
            dim: str = "time") -> xr.DataArray:
    """True where mean(field²) stayed finite and below ``factor`` × climatology at every step."""
    energy = (field**2).mean(space_dims(field))
    return (np.isfinite(energy) & (energy < factor * climatological_energy)).all(dim)
