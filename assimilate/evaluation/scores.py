"""Every score of the project, each defined once: small functions over xarray objects.

Fields have spatial dims ``x`` (1-D) or ``y, x`` (2-D) on a periodic domain; ensembles
have a ``member`` dim. Each score computes per element (lazily under Dask where its
inputs are: ``apply_ufunc(..., dask="parallelized")`` per chunk) and then reduces the
dims it is given, keeping the others (``time`` for skill against lead time,
``trajectory`` for a table's mean ± standard error). NaN propagates: a diverged state
makes its scores NaN, never silently skipped.

Definitions (one each; ``assimilate evaluate forecast``, ``assimilate evaluate da``,
:func:`assimilate.da.contract.score` and the robustness tests all call these):

- the **climatological std** σ_c every normalised score divides by
  (:func:`climatological_std`): the population std (ddof 0) of every grid value of a
  sample of attractor states about their one scalar mean. The DA harness takes it from
  its climatology store (:class:`assimilate.da.climatology.Climatology`), ``evaluate
  forecast`` from the forecaster's normalisation (the training store): the same estimator
  on two samples of the attractor;
- ``rmse`` sqrt(mean_dims (f − t)²); nRMSE = RMSE / σ_c. ``evaluate da`` and ``score``
  score the ensemble mean; ``evaluate forecast`` reports the members' mean RMSE;
- ``correlation`` (Pearson over space) and ``high_correlation_time``;
- ``ensemble_spread`` sqrt(mean_dims var_m(f)), var with the unbiased (M − 1) estimator;
- ``spread_skill_ratio`` spread / RMSE of the ensemble mean, each averaged over ``over``:
  the spread-skill ratio of WeatherBench 2 (Rasp et al. 2024, arXiv 2308.15560), without
  the (M + 1)/M factor, so a calibrated ensemble of M members scores sqrt(M / (M + 1))
  (Fortin et al. 2014, "Why should ensemble spread match the RMSE of the ensemble
  mean?", J. Hydrometeor. 15);
- ``crps_ensemble`` the pointwise ensemble CRPS of ``scoringrules`` (its default
  estimator, not the fair one), ``rank_histogram`` and its flatness in one number,
  ``rank_reliability``: the reliability index Σ_r |p_r − 1/(M + 1)| of the rank
  frequencies p_r (Delle Monache et al. 2006, "Ozone ensemble forecasts: 2. A Kalman
  filter predictor bias correction", JGR 111), 0 for a flat histogram, 2M/(M + 1) when
  the truth always falls on one side of every member;
- ``energy_spectrum`` and ``log_spectral_distance`` sqrt(mean_k (log10 E(k) −
  log10 E_ref(k))²) over wavenumbers k >= 1 (optionally the energetic ones only);
- ``total_variation`` and ``relative_error`` of a physical series' mean;
- ``stable``: every value finite and within ``bound`` (10) σ_c of the climatological
  mean, over the dims given.

Tail scores live with the extreme-event diagnostics (:mod:`assimilate.diagnostics.tails`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scoringrules
import xarray as xr

from pde import physics

__all__ = [
    "STABILITY_BOUND",
    "analysis_scores",
    "climatological_std",
    "correlation",
    "crps_ensemble",
    "energy_spectrum",
    "ensemble_spread",
    "high_correlation_time",
    "log_spectral_distance",
    "rank_histogram",
    "rank_reliability",
    "relative_error",
    "rmse",
    "space_dims",
    "spread_skill_ratio",
    "stable",
    "total_variation",
]

STABILITY_BOUND = 10.0
"""A state further than this many climatological stds from the climatological mean (or
non-finite) has diverged."""


def space_dims(field: xr.DataArray) -> tuple[str, ...]:
    """The spatial dims of ``field``: ``("y", "x")`` or ``("x",)``."""
    dims = tuple(dim for dim in ("y", "x") if dim in field.dims)
    if "x" not in dims:
        raise ValueError(f"field '{field.name}' has dims {field.dims}; expected an 'x' dim")
    return dims


def climatological_std(states: xr.DataArray | np.ndarray) -> float:
    """σ_c: the population std (ddof 0) of every value of attractor ``states`` about their
    one mean, accumulated in float64."""
    values = states.data if isinstance(states, xr.DataArray) else states
    return float(np.std(np.asarray(values, dtype=np.float64)))


def rmse(forecast: xr.DataArray, truth: xr.DataArray, dims: Sequence[str] | None = None,
         where: xr.DataArray | None = None) -> xr.DataArray:
    """Root-mean-square error over ``dims`` (default: space); with ``where`` (a boolean
    grid), over the points where it is True only."""
    dims = space_dims(truth) if dims is None else dims
    squared = (forecast - truth) ** 2
    if where is None:
        return np.sqrt(squared.mean(dims, skipna=False))
    weights = where.astype(np.float64)
    count = weights.broadcast_like(squared).sum(dims)
    return np.sqrt((squared * weights).sum(dims, skipna=False) / count)


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


def ensemble_spread(forecast: xr.DataArray, dims: Sequence[str] | None = None,
                    member_dim: str = "member") -> xr.DataArray:
    """sqrt(mean over ``dims`` (default: space) of the unbiased ensemble variance); NaN for
    a single member."""
    dims = space_dims(forecast) if dims is None else dims
    if forecast.sizes[member_dim] < 2:
        return xr.full_like(forecast.isel({member_dim: 0}), np.nan, np.float64).mean(dims)
    return np.sqrt(forecast.var(member_dim, ddof=1, skipna=False).mean(dims, skipna=False))


def spread_skill_ratio(forecast: xr.DataArray, truth: xr.DataArray,
                       dims: Sequence[str] | None = None, over: Sequence[str] = (),
                       member_dim: str = "member") -> xr.DataArray:
    """Ensemble spread over RMSE of the ensemble mean (module doc): each the root of a mean
    over ``dims`` (default: space), then averaged over ``over``."""
    dims = space_dims(truth) if dims is None else dims
    spread = ensemble_spread(forecast, dims, member_dim)
    skill = rmse(forecast.mean(member_dim, skipna=False), truth, dims)
    return spread.mean(over, skipna=False) / skill.mean(over, skipna=False)


def crps_ensemble(forecast: xr.DataArray, truth: xr.DataArray,
                  member_dim: str = "member") -> xr.DataArray:
    """Pointwise ensemble CRPS, ``scoringrules.crps_ensemble`` (its default estimator)."""
    return xr.apply_ufunc(
        lambda f, o: scoringrules.crps_ensemble(o, f, m_axis=-1),
        forecast, truth, input_core_dims=[[member_dim], []], dask="parallelized",
        output_dtypes=[np.float64])


def rank_histogram(forecast: xr.DataArray, truth: xr.DataArray, dims: Sequence[str],
                   member_dim: str = "member") -> xr.DataArray:
    """How often the truth has r members below it (r = 0..M), counted over ``dims``;
    dim ``rank``. Flat for a calibrated ensemble."""
    below = (forecast < truth).sum(member_dim)
    counts = [(below == r).sum(dims) for r in range(forecast.sizes[member_dim] + 1)]
    return xr.concat(counts, dim="rank")


def rank_reliability(histogram: xr.DataArray, rank_dim: str = "rank") -> xr.DataArray:
    """The reliability index of a rank histogram (module doc): 0 when flat."""
    frequencies = histogram / histogram.sum(rank_dim)
    return np.abs(frequencies - 1 / histogram.sizes[rank_dim]).sum(rank_dim, skipna=False)


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
    ``floor`` keeps the logarithm of an empty mode finite.
    """
    spectrum = spectrum.isel(wavenumber=slice(1, None))
    reference = reference.isel(wavenumber=slice(1, None))
    squared = (np.log10(spectrum + floor) - np.log10(reference + floor)) ** 2
    counted = xr.ones_like(reference, dtype=bool)
    if dynamic_range is not None:
        counted = reference >= dynamic_range * reference.max("wavenumber")
    total = squared.where(counted, 0.0).sum("wavenumber", skipna=False)
    return np.sqrt(total / counted.sum("wavenumber"))


def total_variation(u: xr.DataArray, dim: str = "x") -> xr.DataArray:
    """Σ_i |u_{i+1} − u_i| along the periodic ``dim`` (:func:`pde.physics.total_variation`)."""
    return xr.apply_ufunc(physics.total_variation, u, input_core_dims=[[dim]],
                          dask="parallelized", output_dtypes=[np.float64])


def relative_error(predicted: xr.DataArray, actual: xr.DataArray,
                   dims: Sequence[str] | None = None) -> xr.DataArray:
    """mean(predicted) / mean(actual) − 1 over ``dims`` (default: all), for a physical
    series' climatology."""
    return predicted.mean(dims, skipna=False) / actual.mean(dims, skipna=False) - 1


def stable(states: xr.DataArray, *, mean: float, std: float, dims: Sequence[str],
           bound: float = STABILITY_BOUND) -> xr.DataArray:
    """True where every value over ``dims`` is finite and within ``bound`` climatological
    stds of the climatological ``mean`` (a NaN or infinite value compares False)."""
    return (np.abs(states - mean) < bound * std).all(dims)


def _positional(values: xr.DataArray | np.ndarray, leading: tuple[str, ...]) -> xr.DataArray:
    """``values`` with dims ``(*leading, *space)`` and no coordinates: scored by position
    (an analysis and its truth store may round their time coordinates differently)."""
    data = values.data if isinstance(values, xr.DataArray) else values
    return xr.DataArray(data, dims=(*leading, *("y", "x")[2 - (data.ndim - len(leading)):]))


def analysis_scores(states: xr.DataArray | np.ndarray, truth: xr.DataArray | np.ndarray, *,
                    std: float, mean: float, observed_points: np.ndarray,
                    horizons: tuple[int, int], spin_up: int, series) -> xr.Dataset:
    """The scores of one analysis that ``assimilate evaluate da`` tabulates.

    ``states`` ``(trajectory, member, time, *space)``, ``truth`` ``(trajectory, time,
    *space)``; ``std`` and ``mean`` the climatology's; ``observed_points`` a boolean grid
    ``(*space)``, True where some observation touches; ``series(field)`` the PDE's
    physical series ``(...)`` of fields ``(..., *space)``. Errors are over σ_c = ``std``.

    - ``nrmse_time (trajectory, time)``: nRMSE of the ensemble mean over the grid;
      ``nrmse_short`` / ``nrmse_long`` its mean over steps 1..h for the two ``horizons``
      (the whole run, spin-up included: slow convergence counts against a method);
    - after ``spin_up`` steps: ``nrmse_observed`` / ``nrmse_unobserved`` (at the points
      some observation touches and at the others), ``spread_ratio`` (spread-skill ratio,
      spread and RMSE averaged over time), ``crps`` (over σ_c), ``rank_histogram
      (trajectory, rank)`` and its ``rank_reliability``, and ``spectrum_error`` (log-spectral distance of the mean
      spectra over the energetic wavenumbers);
    - ``series_error``: relative error of the run mean of the physical series of the
      ensemble mean against the truth's; ``stable``: 1 if every state is (:func:`stable`).
    """
    states = _positional(states, ("trajectory", "member", "time"))
    truth = _positional(truth, ("trajectory", "time"))
    space = space_dims(truth)
    ensemble_mean = states.mean("member", skipna=False)
    nrmse_time = rmse(ensemble_mean, truth, space) / std
    short, long = (min(h, truth.sizes["time"] - 1) for h in horizons)
    late = {"time": slice(spin_up, None)}
    members, reference = states.isel(late), truth.isel(late)
    observed = xr.DataArray(np.asarray(observed_points, dtype=bool), dims=space)
    in_time_and_space = ("time", *space)

    def physical(field: xr.DataArray) -> xr.DataArray:
        return xr.apply_ufunc(series, field, input_core_dims=[space], dask="parallelized",
                              output_dtypes=[np.float64])

    spectrum = energy_spectrum(members).mean(("member", "time"), skipna=False)
    truth_spectrum = energy_spectrum(reference).mean("time", skipna=False)
    unobserved = rmse(ensemble_mean.isel(late), reference, in_time_and_space,
                      where=~observed) / std if (~observed).any() \
        else xr.full_like(nrmse_time.isel(time=0), np.nan)
    ranks = rank_histogram(members, reference, in_time_and_space)
    scores = xr.Dataset({
        "nrmse_time": nrmse_time,
        "rank_histogram": ranks,
        "rank_reliability": rank_reliability(ranks),
        "nrmse_short": nrmse_time.isel(time=slice(1, short + 1)).mean("time", skipna=False),
        "nrmse_long": nrmse_time.isel(time=slice(1, long + 1)).mean("time", skipna=False),
        "nrmse_observed": rmse(ensemble_mean.isel(late), reference, in_time_and_space,
                               where=observed) / std,
        "nrmse_unobserved": unobserved,
        "spread_ratio": spread_skill_ratio(members, reference, space, over=("time",)),
        "crps": crps_ensemble(members, reference).mean(in_time_and_space, skipna=False) / std,
        "series_error": relative_error(physical(ensemble_mean), physical(truth), ("time",)),
        "spectrum_error": log_spectral_distance(spectrum, truth_spectrum, 1e-6),
        "stable": stable(states, mean=mean, std=std,
                         dims=("member", *in_time_and_space)).astype(np.float64),
    })
    return scores.transpose("trajectory", ...)
