"""Forecast skill on held-out trajectories, against the baselines physics gives for free.

``evaluate_forecast`` starts the forecaster from the first usable state of each test
trajectory and compares, lead by lead, against the stored truth:

- ``ardm``: the diffusion forecaster (an ensemble of ``n_members``);
- ``simulator``: the true simulator started from the initial state plus Gaussian noise of
  1 % of the climatological std — the predictability limit of the chaos (for Kolmogorov
  flow the stored state is also coarser than the solver grid, so this is a larger
  perturbation than 1 %: the unresolved scales start at zero); imported data have no
  simulator, and given the training store (``climatology``) the ``diurnal`` mean of its
  days at the same time of day stands in (:mod:`assimilate.evaluation.baselines`);
- ``persistence``: the initial state, held;
- ``climatology``: the climatological mean, a constant field.

The spectrum distance at the last lead is reported over the energetic range (wavenumbers
holding at least 1e-6 of the peak energy) as ``spectrum_distance`` and over every
wavenumber as ``spectrum_distance_all``.

Metrics: RMSE (raw and over the climatological std), correlation, high-correlation time
(correlation > 0.8), CRPS and spread-skill ratio (ensembles), the log-spectral distance
at the last lead, stability (rollouts whose energy stays below 10× climatology), the
relative errors of physical climatologies (total variation for KS, dissipation and
enstrophy for Kolmogorov flow: the descriptor's ``forecast.climatology_errors``); and, for
the forecaster beside the simulator, how they treat imperfect states (:mod:`assimilate.
robustness`): relaxation from the truth plus white noise of 0.1 and 0.5 stds (ensemble
std over the climatological std, and spectrum distance to climatology, after every step up
to 200) and the normalised RMSE under nudging toward observations (:func:`nudging`).
The horizon and the nudging lattice depend on the physics and come from the PDE's
descriptor (:class:`pde.descriptor.ForecastDefaults`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from assimilate.evaluation import robustness, scores
from assimilate.evaluation.baselines import (
    PERTURBATION,
    diurnal_forecast,
    simulator_forecast,
    simulator_models,
)
from assimilate.evaluation.defaults import ForecastDefaults, evaluation_defaults
from assimilate.models.calendar import require_calendar
from assimilate.models.forecaster import (
    Forecaster,
    ForecasterModel,
    load_forecaster,
    open_matching,
    rollout_tensor,
)
from pde.descriptor import Descriptor, descriptor
from pde.io.output import Output, claim
from pde.io.store import write_zarr

__all__ = ["SkillSettings", "evaluate_forecast", "forecast_scores", "format_table", "nudging", "plot_skill",
           "relaxation_table"]

def nudging(defaults: ForecastDefaults) -> robustness.Nudging:
    """The nudging synchronisation test of a PDE (its forecast defaults)."""
    return robustness.Nudging(stride=defaults.nudging_stride, noise=defaults.nudging_noise,
                              window=defaults.nudging_window)


def _initial_conditions(field: xr.DataArray, history: int, n_steps: int,
                        n_initial: int | None, every: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """``(histories (I, k, *space), truth (I, n_steps + 1, *space), starts)`` from the test
    trajectories: a start at each one's beginning, or every ``every`` states along it;
    ``starts`` holds each one's ``(trajectory, first state)``."""
    n_traj, n_time = field.shape[:2]
    if history - 1 + n_steps >= n_time:
        raise ValueError(f"test trajectories hold {n_time} states; a {n_steps}-step evaluation "
                         f"with history {history} needs at least {history + n_steps}")
    offsets = range(0, n_time - history - n_steps + 1, every) if every else [0]
    starts = [(t, o) for t in range(n_traj) for o in offsets][: n_initial or None]
    values = field.values.astype(np.float32)
    chosen = np.stack([values[t, o: o + history + n_steps] for t, o in starts])
    return chosen[:, :history], chosen[:, history - 1:], starts


def _ardm(forecaster: Forecaster, histories: np.ndarray, n_steps: int, n_members: int,
          sub_steps: int | None, seed: int, progress: bool,
          valid_times: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Forecasts ``(I, M, n_steps + 1, *space)`` and the wall time per forecast step;
    ``valid_times`` ``(I,)``: the calendar time of each history's last state."""
    device = next(forecaster.model.parameters()).device
    norm = forecaster.normalisation
    history = norm.normalise(torch.from_numpy(histories).double()).float().to(device)
    history = history.repeat_interleave(n_members, dim=0)
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.perf_counter()
    with torch.no_grad():
        states = rollout_tensor(
            forecaster, history, n_steps, generator, sub_steps=sub_steps, progress=progress,
            valid_times=None if valid_times is None else np.repeat(valid_times, n_members))
    seconds = (time.perf_counter() - started) / n_steps
    states = norm.denormalise(states.double()).float().cpu().numpy()
    states = states.reshape(len(histories), n_members, *states.shape[1:])
    initial = np.broadcast_to(histories[:, None, -1:], (*states.shape[:2], 1, *states.shape[3:]))
    return np.concatenate([initial, states], axis=2), seconds


@dataclasses.dataclass(frozen=True)
class SkillSettings:
    """What ``assimilate evaluate forecast`` measures: ``n_steps`` leads (default: the
    physics' own, :mod:`assimilate.evaluation.defaults`), ``n_members`` per initial state,
    ``n_initial`` initial states (default: one per test trajectory), the forecaster's
    ``sub_steps`` (default: its training setting), the ``seed`` of the draws, and whether to
    measure ``robust``-ness too (relaxation and nudging synchronisation, 200 more steps of
    each model)."""

    n_steps: int | None = None
    n_members: int = 4
    n_initial: int | None = None
    every: int | None = None
    """Start every this many states along each test trajectory (default: once, at its start)."""
    climatology: str | None = None
    """Imported data: the training store, whose mean at each time of day is the ``diurnal``
    baseline."""
    sub_steps: int | None = None
    seed: int = 0
    robust: bool = True


def evaluate_forecast(checkpoint: str | Path, data: str | Path,
                      settings: SkillSettings | None = None, out: str | Path | None = None,
                      *, overwrite: bool = False, progress: bool = True) -> xr.Dataset:
    """Skill of the forecaster at ``checkpoint`` on the test store ``data`` (see module doc).

    With ``out``, the results store is written there and the figure of :func:`plot_skill`
    beside it (``out`` + ``.png``); both outputs are claimed before any work.
    """
    settings = settings or SkillSettings()
    if out is None:
        return _evaluate(checkpoint, data, settings, progress)
    figure_path = Path(f"{out}.png")
    inputs = [checkpoint, data]
    with claim(out, kind="directory", inputs=inputs, overwrite=overwrite) as output, \
            claim(figure_path, kind="file", inputs=inputs, overwrite=overwrite) as figure:
        result = _evaluate(checkpoint, data, settings, progress)
        write_zarr(result, output)
        _save_figure(result, figure)
    return result


def _evaluate(checkpoint, data, settings: SkillSettings, progress: bool) -> xr.Dataset:
    n_members, sub_steps, seed = settings.n_members, settings.sub_steps, settings.seed
    forecaster = load_forecaster(checkpoint)
    physics = descriptor(forecaster.config.simulator.pde)
    ds = open_matching(forecaster, data)
    field = ds[forecaster.variable]
    n_steps = settings.n_steps or evaluation_defaults(physics.name).forecast.steps
    histories, truth, starts = _initial_conditions(field, forecaster.history, n_steps,
                                                   settings.n_initial, settings.every)
    std, mean = forecaster.normalisation.std, forecaster.normalisation.mean
    times = None  # the valid time of each start's leads (I, n_steps + 1), read once
    if forecaster.calendar or "valid_time" in ds.coords:
        calendar = require_calendar(ds, data, forecaster.calendar)
        k = forecaster.history
        times = np.stack([calendar[t, o + k - 1: o + k + n_steps] for t, o in starts])
    ardm, ardm_seconds = _ardm(forecaster, histories, n_steps, n_members, sub_steps, seed,
                               progress, None if times is None or not forecaster.calendar
                               else times[:, 0])
    forecasts, seconds = {"ardm": ardm}, [ardm_seconds]
    if physics.simulator is not None:
        forecasts["simulator"], sim_seconds = simulator_forecast(ds.attrs["config"], truth,
                                                                 n_members, std, seed)
        seconds.append(sim_seconds)
    elif settings.climatology is not None:
        if times is None:
            raise ValueError(f"store '{data}' has no calendar times (valid_time): the diurnal "
                             "baseline needs imported data (`assimilate import`)")
        forecasts["diurnal"] = diurnal_forecast(forecaster, settings.climatology, times)
        seconds.append(0.0)
    forecasts |= {
        "persistence": np.broadcast_to(truth[:, None, :1], ardm.shape[:1] + (1,) + ardm.shape[2:]),
        "climatology": np.full((len(truth), 1, *truth.shape[1:]), mean, dtype=np.float32),
    }
    space = field.dims[2:]
    coords = {"time": np.arange(n_steps + 1) * forecaster.interval,
              **{name: ds[name].values for name in space}}
    truth_da = xr.DataArray(truth, dims=("initial", "time", *space), coords=coords)
    results = [forecast_scores(xr.DataArray(values, dims=("initial", "member", "time", *space),
                                            coords=coords), truth_da, std=std, mean=mean,
                               physics=physics, attrs=ds.attrs).expand_dims(method=[name])
               for name, values in forecasts.items()]
    result = xr.concat(results, dim="method")
    result["seconds_per_step"] = ("method", [*seconds, 0.0, 0.0])
    if settings.robust:
        result = result.merge(_robustness(forecaster, ds, field, histories, n_members,
                                          sub_steps, seed, list(forecasts)))
    result.attrs = {"checkpoint": str(Path(checkpoint).resolve()),
                    "data": str(Path(data).resolve()), "pde": physics.name, "n_steps": n_steps,
                    "n_members": n_members, "n_initial": len(truth),
                    "perturbation": PERTURBATION, "climatological_std": std}
    return result


def _robustness(forecaster: Forecaster, ds: xr.Dataset, field: xr.DataArray,
                histories: np.ndarray, n_members: int, sub_steps: int | None, seed: int,
                methods: list[str]) -> xr.Dataset:
    """Relaxation and nudging synchronisation of the forecaster and the simulator."""
    std, mean = forecaster.normalisation.std, forecaster.normalisation.mean
    climatology = scores.energy_spectrum(field).mean(("trajectory", "time")).compute()
    advance = ForecasterModel(forecaster, sub_steps=sub_steps, seed=seed).advance
    models = {"ardm": (advance, robustness.rollout_from(advance))}
    if "simulator" in methods:
        sim_advance, sim_rollout = simulator_models(ds.attrs["config"])
        models["simulator"] = (sim_advance, sim_rollout)
    relax = {name: robustness.relaxation(rollout, histories, mean=mean, std=std,
                                         spectrum=climatology, members=n_members, seed=seed)
             for name, (_, rollout) in models.items()}
    test = nudging(evaluation_defaults(forecaster.config.simulator.pde).forecast)
    k, last = forecaster.history, test.window[1]
    nrmse = {name: np.nan for name in methods}
    if field.sizes["time"] >= k + last:
        truth = field.isel(time=slice(k - 1, k + last)).values[: len(histories)]
        start = np.roll(field.isel(time=slice(-k, None)).values[: len(histories)], 1, axis=0)
        for name, (model, _) in models.items():
            nrmse[name] = robustness.nudging_nrmse(model, truth, start, test, std=std,
                                                   seed=seed)
    empty = xr.full_like(relax["ardm"], np.nan)
    relaxed = xr.concat([relax.get(name, empty) for name in methods], dim="method")
    return xr.Dataset({
        "relaxation_std_ratio": relaxed["std_ratio"],
        "relaxation_spectrum_distance": relaxed["spectrum_distance"],
        "nudging_nrmse": ("method", [nrmse[name] for name in methods]),
    }).assign_coords(method=methods)


def forecast_scores(forecast: xr.DataArray, truth: xr.DataArray, *, std: float, mean: float,
                    physics: Descriptor, attrs: dict) -> xr.Dataset:
    """Per-lead and summary scores of one method: ``forecast`` ``(initial, member, time,
    *space)``, ``truth`` ``(initial, time, *space)``; ``std`` and ``mean`` the climatology's;
    ``attrs`` the simulator's attributes (the test store's), for the series' parameters."""
    rmse = scores.rmse(forecast, truth).mean(("initial", "member"))
    corr = scores.correlation(forecast, truth).fillna(0.0).mean(("initial", "member"))
    last = {"time": -1}
    spectrum = scores.energy_spectrum(forecast.isel(last)).mean(("initial", "member"))
    reference = scores.energy_spectrum(truth.isel(last)).mean("initial")
    space = scores.space_dims(truth)
    stable = scores.stable(forecast, mean=mean, std=std, dims=("time", *space))
    result = xr.Dataset({
        "rmse": rmse,
        "nrmse": rmse / std,
        "correlation": corr,
        "high_correlation_time": scores.high_correlation_time(corr),
        "spectrum_distance": scores.log_spectral_distance(spectrum, reference, 1e-6),
        "spectrum_distance_all": scores.log_spectral_distance(spectrum, reference),
        "stable_fraction": stable.mean(("initial", "member")),
    })
    if forecast.sizes["member"] > 1:
        crps = scores.crps_ensemble(forecast, truth)
        result["crps"] = crps.mean([d for d in crps.dims if d != "time"])
        result["spread_skill"] = scores.spread_skill_ratio(forecast, truth, over=("initial",))
    return result.merge(_climatology_errors(forecast, truth, physics, attrs))


def _climatology_errors(forecast: xr.DataArray, truth: xr.DataArray, physics: Descriptor,
                        attrs: dict) -> xr.Dataset:
    """Relative errors of the physical climatologies (series means over all leads);
    ``attrs``: the simulator's attributes (the test store's), for the series' parameters."""
    predicted = physics.series(forecast.transpose(..., *physics.space).values, attrs)
    actual = physics.series(truth.transpose(..., *physics.space).values, attrs)
    errors = evaluation_defaults(physics.name).forecast.climatology_errors
    return xr.Dataset({
        error: scores.relative_error(xr.DataArray(predicted[series]),
                                     xr.DataArray(actual[series]))
        for error, series in errors})


def format_table(result: xr.Dataset) -> str:
    """Markdown tables: summary metrics and the RMSE at a few leads; then relaxation."""
    times = result["time"].values
    leads = sorted({len(times) // 8, len(times) // 4, len(times) // 2, len(times) - 1})
    summary = [name for name in ("high_correlation_time", "spectrum_distance", "stable_fraction",
                                 "tv_error", "enstrophy_error", "dissipation_error",
                                 "mean_error",
                                 "nudging_nrmse", "seconds_per_step") if name in result]
    header = ["method", *summary, *(f"nRMSE t={times[i]:.1f}" for i in leads),
              *(f"CRPS t={times[leads[-1]]:.1f}",) * ("crps" in result)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in result["method"].values:
        row = result.sel({"method": method})
        cells = [str(method), *(f"{float(row[name]):.3g}" for name in summary),
                 *(f"{float(row['nrmse'].isel(time=i)):.3f}" for i in leads)]
        if "crps" in result:
            cells.append(f"{float(row['crps'].isel(time=leads[-1])):.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    if "relaxation_std_ratio" in result:
        lines += ["", relaxation_table(result)]
    return "\n".join(lines)


def relaxation_table(result: xr.Dataset) -> str:
    """Ensemble std / climatological std and spectrum distance after 1, 10, 50, 200 steps
    from the truth plus noise, with the largest departure of the std ratio from 1 over
    steps 10..200 (the target: below 0.1)."""
    steps = [s for s in robustness.RELAXATION_STEPS if s in result["step"].values]
    header = ["method", "noise", *(f"std ratio @{s}" for s in steps),
              "max abs(ratio - 1), steps 10-200", *(f"spectrum dist. @{s}" for s in steps)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in [m for m in ("ardm", "simulator") if m in result["method"].values]:
        for level in result["noise"].values:
            row = result.sel({"method": method, "noise": level})
            ratio = row["relaxation_std_ratio"]
            late = float(abs(ratio.sel(step=slice(10, None)) - 1).max())
            cells = [method, f"{float(level):g}",
                     *(f"{float(ratio.sel(step=s)):.3f}" for s in steps), f"{late:.3f}",
                     *(f"{float(row['relaxation_spectrum_distance'].sel(step=s)):.3f}"
                       for s in steps)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_skill(result: xr.Dataset, path: str | Path) -> Path:
    """Correlation and normalised RMSE against lead time, one line per method (PNG)."""
    with claim(path, kind="file", overwrite=True) as output:
        _save_figure(result, output)
    return Path(path)


def _save_figure(result: xr.Dataset, output: Output) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for method in result["method"].values:
        row = result.sel({"method": method})
        left.plot(result["time"], row["correlation"], label=str(method))
        right.plot(result["time"], row["nrmse"], label=str(method))
    left.axhline(0.8, color="grey", lw=0.8, ls="--")
    left.set(xlabel="lead time", ylabel="correlation", ylim=(-0.2, 1.02))
    right.set(xlabel="lead time", ylabel="RMSE / climatological std")
    left.legend(frameon=False)
    figure.suptitle(f"{result.attrs['pde']}: {result.attrs['n_initial']} initial states, "
                    f"{result.attrs['n_members']} members")
    try:
        with output.atomic() as scratch:
            figure.savefig(scratch, dpi=120, format="png")
    finally:
        plt.close(figure)
