"""Extreme-event diagnostics of any gridded field, computed lazily with Dask.

``diagnose(ds)`` turns a field with named dims (our trajectory, sample and forecast
stores, or any xarray/Zarr/NetCDF data such as a (time, lat, lon) reanalysis) into one
small Dataset of schema ``assimilate.diagnostics/1``, the input of ``assimilate.report``.

Dims have roles: one *time* dim (``time`` by default), *space* dims (``y``, ``x``,
``lat``, ``lon``, ``latitude``, ``longitude`` by default) and *realisation* dims (all
others: trajectories, ensemble members, samples), which are pooled as independent copies.

The store is read about once: a pre-pass over a few evenly spread chunks fixes the
thresholds and a shift for the moments, then one Dask pass (``statistics``, lazy until
computed) gives power sums, extrema, exact exceedance counts, a relative-resolution
histogram (``sketch``) from which quantiles and densities follow, maps over space, and
the physical series (spatial maximum, and those the data's PDE declares in its descriptor,
:mod:`pde.descriptor`: energy, enstrophy and dissipation for Kolmogorov flow; total
variation and energy for Kuramoto-Sivashinsky) and spectrum. No step holds more than a few chunks, so
stores larger than the workers' memory stream through. The extreme-value analysis of one
series follows, in memory (series are small): :mod:`assimilate.diagnostics.series`, and,
with ``per_point``, fits at every spatial point: :mod:`assimilate.diagnostics.gridded`.
Values that recur exactly (the zeros of dry days) are found in the pre-pass and counted
exactly; for dated time axes return periods are in years (:mod:`assimilate.diagnostics.calendar`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.diagnostics
import numpy as np
import scoringrules
import xarray as xr

from assimilate.diagnostics import calendar, onepass, sketch, tails
from assimilate.diagnostics.series import extreme_values
from assimilate.diagnostics.trend import MIN_TREND_BLOCKS
from pde.descriptor import Descriptor, find, series_names
from pde.io.cluster import DEFAULT_SCHEDULER_TIMEOUT, dask_client

__all__ = [
    "DEFAULT_PROBABILITIES",
    "SCHEMA",
    "Layout",
    "diagnose",
    "layout",
    "open_data",
    "statistics",
    "summary",
]

SCHEMA = "assimilate.diagnostics/1"
SPACE_NAMES = ("y", "x", "lat", "lon", "latitude", "longitude")
DEFAULT_PROBABILITIES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 0.9999)
THRESHOLD_QUANTILES = (0.9, 0.99, 0.999)
DISPLAY_BINS = 120
PRE_PASS_CHUNKS = 32  # chunks read to fix the thresholds before the main pass
PRE_PASS_VALUES = 2_000_000
ATOM_FRACTION = 0.01  # a value this frequent in the pre-pass sample is counted exactly
MAX_ATOMS = 8


class Layout:
    """The roles of a field's dims: time, space, and pooled realisations."""

    def __init__(self, field: xr.DataArray, time: str | None, space: Sequence[str]) -> None:
        self.time = time
        self.space = tuple(space)
        self.realisation = tuple(d for d in field.dims if d != time and d not in self.space)

    def attrs(self) -> dict[str, str]:
        return {"time_dim": self.time or "", "space_dims": json.dumps(list(self.space)),
                "realisation_dims": json.dumps(list(self.realisation))}


# --- input ---------------------------------------------------------------------------------


def open_data(path: str | Path) -> xr.Dataset:
    """Open a Zarr store or NetCDF file lazily (Dask-backed); our trajectory stores are
    validated and only their finished trajectories are used."""
    from pde.io.errors import IntegrityError
    from pde.io.store import open_store, open_trajectories

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data at '{path}'")
    try:
        if path.is_file():
            return xr.open_dataset(path, chunks={})
        ds = open_store(path)
    except IntegrityError:  # a damaged store: its own message names what and where
        raise
    except Exception as error:  # noqa: BLE001 - report any reader failure with the path
        raise ValueError(f"'{path}' is neither a Zarr store nor a NetCDF file that xarray "
                         f"can read: {error}") from None
    if ds.attrs.get("schema", "").startswith("assimilate.trajectories"):
        return open_trajectories(path, finished_only=True)
    return ds


def layout(ds: xr.Dataset | xr.DataArray, variable: str | None = None,
           dims: Sequence[str] | None = None, *, source: str = "the data"
           ) -> tuple[xr.DataArray, Layout]:
    """The field to diagnose and its dims' roles.

    ``variable`` defaults to the only numeric non-boolean data variable. ``dims`` names the
    time dim first, then the space dims (``""`` first for data without time); by default
    ``time`` and the space dims found among ``SPACE_NAMES``.
    """
    if isinstance(ds, xr.DataArray):
        field = ds
    else:
        numeric = [name for name, v in ds.data_vars.items()
                   if v.ndim and np.issubdtype(v.dtype, np.number) and v.dtype != bool]
        if variable is None:
            if len(numeric) != 1:
                raise ValueError(f"{source} has {len(numeric)} numeric variables "
                                 f"({', '.join(map(str, numeric)) or 'none'}); choose one with "
                                 "--var NAME")
            variable = str(numeric[0])
        if variable not in ds.data_vars:
            raise ValueError(f"{source} has no variable '{variable}'; its variables are: "
                             f"{', '.join(map(str, ds.data_vars)) or 'none'}")
        field = ds[variable]
        if variable not in numeric:
            raise ValueError(f"variable '{variable}' of {source} is not a numeric field "
                             f"(dtype {field.dtype}, dims {field.dims})")
    if field.size == 0:
        raise ValueError(f"variable '{field.name}' of {source} holds no values (sizes "
                         f"{dict(field.sizes)}); a trajectory store with no finished "
                         "trajectory has none: finish it with `assimilate simulate`")
    if dims is None:
        time = "time" if "time" in field.dims else None
        space = [d for d in field.dims if d in SPACE_NAMES]
    else:
        dims = list(dims)
        missing = [d for d in dims if d and d not in field.dims]
        if not dims or missing:
            raise ValueError(f"variable '{field.name}' of {source} lacks the dims {missing or dims}; "
                             f"its dims are {', '.join(map(str, field.dims))}")
        time, space = (dims[0] or None), dims[1:]
    return field, Layout(field, time, space)


# --- the lazy pass -------------------------------------------------------------------------


def statistics(field: xr.DataArray, lay: Layout, thresholds: Sequence[float],
               map_threshold: float, *, shift: float = 0.0, physics: Descriptor | None = None,
               parameters: Mapping[str, Any] | None = None, atoms: Sequence[float] = (),
               floor: float | None = None) -> xr.Dataset:
    """Everything the one pass over ``field`` yields, lazy (see ``onepass.statistics``)."""
    return onepass.statistics(field, lay.realisation, lay.time, lay.space, thresholds,
                              map_threshold, shift=shift, physics=physics,
                              parameters=parameters, atoms=atoms, floor=floor)


def _pre_pass(field: xr.DataArray) -> np.ndarray:
    """Finite values from up to ``PRE_PASS_CHUNKS`` chunks spread evenly over the store."""
    data = field.data if isinstance(field.data, da.Array) else da.from_array(field.values)
    n_blocks = int(np.prod(data.numblocks))
    chosen = np.unique(np.linspace(0, n_blocks - 1, min(PRE_PASS_CHUNKS, n_blocks)).astype(int))
    blocks = [data.blocks[np.unravel_index(i, data.numblocks)] for i in chosen]
    values = np.concatenate([np.ravel(b) for b in dask.compute(*blocks)]).astype(np.float64)
    values = values[np.isfinite(values)]
    if len(values) > PRE_PASS_VALUES:
        values = np.random.default_rng(0).choice(values, PRE_PASS_VALUES, replace=False)
    return values


# --- from the pass to the diagnostics ------------------------------------------------------


def _moments(c: xr.Dataset, shift: float) -> dict[str, float]:
    n = float(c["count"])
    s1, s2, s3, s4 = (float(c[f"power_sum_{k}"]) / n for k in range(1, 5))
    m2 = s2 - s1**2
    m3 = s3 - 3 * s1 * s2 + 2 * s1**3
    m4 = s4 - 4 * s1 * s3 + 6 * s1**2 * s2 - 3 * s1**4
    return {"count": n, "mean": shift + s1, "variance": m2,
            "skewness": m3 / m2**1.5 if m2 > 0 else np.nan,
            "kurtosis": m4 / m2**2 if m2 > 0 else np.nan}


def _atoms(sample: np.ndarray) -> tuple[float, ...]:
    """Values that recur exactly in at least ``ATOM_FRACTION`` of the pre-pass sample (the
    zeros of dry days, a bound, a quantised reading), the most frequent ``MAX_ATOMS``."""
    if not len(sample):
        return ()
    values, counts = np.unique(sample, return_counts=True)  # -0.0 and 0.0 are one value
    frequent = np.flatnonzero(counts >= ATOM_FRACTION * len(sample))
    chosen = frequent[np.argsort(counts[frequent])[::-1][:MAX_ATOMS]]
    return tuple(float(values[i]) + 0.0 for i in sorted(chosen))


def _display_histogram(counts: np.ndarray, lo: float, hi: float,
                       edges: np.ndarray | None = None, total: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Density on ``DISPLAY_BINS`` even bins over [lo, hi] from sketch counts, normalised
    by ``total`` values (default: the counts' sum; more when atoms were taken out)."""
    if edges is None:
        edges = np.linspace(lo, hi, DISPLAY_BINS + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    left, right = sketch.bin_edges()
    filled = counts > 0
    centre = np.clip(0.5 * (np.maximum(left, lo) + np.minimum(right, hi)), lo, hi)[filled]
    histogram, _ = np.histogram(np.clip(centre, edges[0], edges[-1]), bins=edges,
                                weights=counts[filled])
    total = counts.sum() if total is None else total
    return histogram / max(total, 1) / np.diff(edges), edges


def _comparison(field: xr.DataArray, others: Mapping[str, xr.DataArray],
                tail_quantile: float, tail_threshold: float,
                edges: np.ndarray) -> xr.Dataset:
    """Tail scores of each compared field against ``field`` (the truth)."""
    rows = []
    for label, other in others.items():
        other = other if isinstance(other.data, da.Array) else other.chunk()
        scores, counts, lo, hi = dask.compute(  # one graph: the compared store read together
            tails.tail_scores(other, field, quantile=tail_quantile),
            sketch.sketch_counts(other.data), other.min(), other.max())
        for score in scores.data_vars.values():
            score.attrs = {}  # ratios and distances: not in the field's units
        density, _ = _display_histogram(np.asarray(counts), float(lo), float(hi), edges)
        scores["compared_histogram_density"] = ("bin", density)
        scores["twcrps"] = _twcrps(other, field, tail_threshold)
        rows.append(scores.expand_dims(compared=[label]))
    out = xr.concat(rows, "compared")
    out = out.assign_coords(compared=np.array(list(others), dtype=object))
    return out.rename({"quantile": "tail_quantile"}) if "quantile" in out.dims else out


def _twcrps(forecast: xr.DataArray, truth: xr.DataArray, threshold: float) -> float:
    """Mean threshold-weighted CRPS (weight on values above ``threshold``) of a paired
    ensemble (dim ``member``); NaN when ``forecast`` is not an ensemble of ``truth``."""
    if "member" not in forecast.dims:
        return np.nan
    rest = forecast.isel(member=0, drop=True)
    if dict(rest.sizes) != dict(truth.sizes):
        return np.nan
    forecast, truth = xr.align(forecast, truth, join="exact", exclude=["member"])
    forecast = forecast.chunk({"member": -1}) if forecast.chunks else forecast
    score = xr.apply_ufunc(
        lambda f, o: scoringrules.twcrps_ensemble(o, f, threshold, np.inf, m_axis=-1),
        forecast, truth, input_core_dims=[["member"], []], dask="parallelized",
        output_dtypes=[np.float64])
    return float(score.mean().compute())


def diagnose(data: xr.Dataset | xr.DataArray, variable: str | None = None, *,
             dims: Sequence[str] | None = None, thresholds: Sequence[float] = (),
             probabilities: Sequence[float] = DEFAULT_PROBABILITIES,
             tail_quantile: float = 0.99, series: str | None = None,
             pot_quantile: float = 0.9, run_length: int | None = None,
             block_steps: int | None = None, return_periods: Sequence[float] | None = None,
             confidence: float = 0.95, compare: Mapping[str, xr.Dataset | xr.DataArray] | None = None,
             floor: float | None = None, block: str | None = None, trend: bool = False,
             covariate: xr.DataArray | None = None, trend_at: float | None = None,
             per_point: bool = False, label: str = "", source: str = "",
             workers: int | None = None, scheduler: str | None = None,
             scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT,
             progress: bool = False) -> xr.Dataset:
    """Diagnostics of one field (see the module docstring), an in-memory Dataset.

    ``thresholds`` are counted exactly besides the levels at ``THRESHOLD_QUANTILES``;
    ``series`` picks the series for the extreme-value analysis (default: ``dissipation``
    for Kolmogorov flow, else the spatial maximum, else the field itself); ``compare``
    maps labels to fields compared against this one (emulator, forecast or analysis).
    ``floor`` leaves out values below it (the dry days of a precipitation record: the
    statistics are then those of the wet days) and counts them. For a calendar time axis
    ``block`` is ``year`` (default), ``season`` or ``month``, and return periods are in
    years. ``trend`` adds a GEV whose location moves linearly with time in years (or with
    ``covariate``, a series on the time axis, averaged over each block), its likelihood-
    ratio test against the stationary GEV and effective return levels at ``trend_at``
    (default: the last block). ``per_point`` adds GPD and GEV fits at every spatial point
    (:mod:`assimilate.diagnostics.gridded`).
    """
    source = source or "the data"
    if not 0.0 < pot_quantile <= 1.0:
        raise ValueError(f"pot_quantile must lie in (0, 1], got {pot_quantile}")
    for option, value in (("tail_quantile", tail_quantile), ("confidence", confidence)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{option} must lie strictly between 0 and 1, got {value}")
    if not np.isfinite(np.asarray(thresholds, dtype=np.float64)).all():
        raise ValueError(f"thresholds must be finite numbers, got {list(thresholds)}")
    if series is not None and series not in _SERIES:
        raise ValueError(f"series must be one of {', '.join(_SERIES)}, got '{series}'")
    if floor is not None and not np.isfinite(floor):
        raise ValueError(f"floor must be a finite number, got {floor}")
    field, lay = layout(data, variable, dims, source=source)
    if per_point and not (lay.time and lay.space):
        raise ValueError(f"per-point fits need a time dim and space dims; {source} has time "
                         f"'{lay.time or 'none'}' and space {list(lay.space) or 'none'} "
                         "(name them with --dims TIME,SPACE...)")
    calendar.check_block(field[lay.time] if lay.time in field.coords else None, block,
                         source)  # before the pass, not after it
    if lay.time and lay.time in field.coords:
        calendar.check_time(field[lay.time], source)
        if trend and calendar.is_calendar(field[lay.time]) and block_steps is None:
            years = len(calendar.blocks(field[lay.time], block or "year", source).kept)
            if years < MIN_TREND_BLOCKS:
                raise ValueError(f"{source} holds {years} complete {block or 'year'} blocks; "
                                 f"a trend needs at least {MIN_TREND_BLOCKS}")
    attrs = data.attrs if isinstance(data, xr.Dataset) else field.attrs
    pde = str(attrs.get("pde", ""))
    with dask_client(workers, scheduler, timeout=scheduler_timeout):
        sample = _pre_pass(field)
        if floor is not None:
            sample = sample[sample >= floor]
        atoms = _atoms(sample)
        shift = float(np.median(sample)) if len(sample) else 0.0
        nominal = np.quantile(sample, THRESHOLD_QUANTILES) if len(sample) else \
            np.full(len(THRESHOLD_QUANTILES), np.nan)
        levels = [*THRESHOLD_QUANTILES, *[np.nan] * len(thresholds)]
        cut = [*nominal, *map(float, thresholds)]
        map_threshold = float(np.quantile(sample, tail_quantile)) if len(sample) else np.nan
        lazy = statistics(field, lay, cut, map_threshold, shift=shift, physics=find(pde),
                          parameters=attrs, atoms=atoms, floor=floor)
        bar = dask.diagnostics.ProgressBar(out=sys.stderr) if progress and not (workers or scheduler) \
            else contextlib.nullcontext()
        with bar:
            c = lazy.compute()
        if float(c["count"]) == 0:
            raise ValueError(f"variable '{field.name}' of {source} holds only NaN values")
        below_floor = int(c["below_floor_count"])
        non_finite = int(field.size - float(c["count"])) - below_floor
        if non_finite:
            warnings.warn(f"{non_finite} of {field.size} values of '{field.name}' in {source} "
                          "are NaN or infinite; the diagnostics leave them out", stacklevel=2)
        moments = _moments(c, shift)
        lo, hi = float(c["minimum"]), float(c["maximum"])
        counts = np.asarray(c["sketch"].values)
        exact = {a: int(n) for a, n in zip(atoms, np.asarray(c["atom_count"]), strict=True)
                 if n > 0}
        density, edges = _display_histogram(sketch.without_atoms(counts, exact), lo, hi,
                                            total=counts.sum())
        out = xr.Dataset(
            {**moments, "non_finite_count": non_finite, "minimum": lo, "maximum": hi,
             "quantile": ("probability",
                          sketch.sketch_quantiles(counts, probabilities, lo, hi, exact)),
             "exceedance_probability": ("threshold",
                                        np.asarray(c["exceedance_count"]) / moments["count"]),
             "threshold_quantile": ("threshold", np.asarray(levels, dtype=np.float64)),
             "histogram_density": ("bin", density)},
            coords={"probability": list(probabilities), "threshold": cut,
                    "bin_left": ("bin", edges[:-1]), "bin_right": ("bin", edges[1:])})
        if exact:  # point masses: left out of the density, their probabilities exact
            out["atom_probability"] = ("atom", np.array(list(exact.values())) / moments["count"])
            out = out.assign_coords(atom=np.array(list(exact), dtype=np.float64))
        if floor is not None:
            out["below_floor_fraction"] = below_floor / max(below_floor + moments["count"], 1)
        for name in ("temporal_maximum", "exceedance_map", "spatial_maximum",
                     *series_names(), "energy_spectrum"):
            if name in c:
                out[name] = c[name].astype(np.float64)
        if "exceedance_map" in out:
            out["exceedance_map"].attrs = {"threshold": map_threshold,
                                           "threshold_quantile": tail_quantile}
        ex_attrs: dict = {}
        if lay.time:
            chosen = series or ("dissipation" if "dissipation" in out else
                                "spatial_maximum" if "spatial_maximum" in out else None)
            if chosen and chosen not in out:
                raise ValueError(f"series '{chosen}' is not among the computed series "
                                 f"({', '.join(n for n in out if n in _SERIES) or 'none'})")
            target = out[chosen] if chosen else field.astype(np.float64).load()
            if floor is not None and not chosen:
                target = target.where(target >= floor)  # the wet days' series
            target.name = chosen or str(field.name)
            extreme, ex_attrs = extreme_values(
                target, lay, pot_quantile=pot_quantile, run_length=run_length,
                block_steps=block_steps, block=block, return_periods=return_periods,
                confidence=confidence, trend=trend, covariate=covariate, trend_at=trend_at,
                source=source)
            out = out.merge(extreme)
        else:
            ex_attrs = {"pot_note": "no time dimension: no peaks-over-threshold analysis"}
        if compare:
            others = {name: layout(other, variable or str(field.name), None,
                                   source=f"compared data '{name}'")[0]
                      for name, other in compare.items()}
            out = out.merge(_comparison(field, others, tail_quantile, map_threshold, edges))
        point_attrs: dict = {}
        if per_point:
            from assimilate.diagnostics import gridded

            periods = out["return_period"].values if "return_period" in out.coords \
                else return_periods
            maps = gridded.fit_per_point(
                field if floor is None else field.where(field >= floor), time=lay.time,
                space=lay.space, block=block or block_steps, return_periods=periods,
                pot_quantile=pot_quantile, run_length=run_length, confidence=confidence,
                trend=trend, source=source)
            with bar:
                maps = maps.compute()
            point_attrs = dict(maps.attrs)
            out = out.merge(maps, compat="override")
    out.attrs = {
        "schema": SCHEMA, "label": label or str(field.name), "source": source,
        "variable": str(field.name), "units": str(field.attrs.get("units", "")), "pde": pde,
        **lay.attrs(), "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tail_quantile": tail_quantile, "confidence": confidence, **ex_attrs,
        **({} if floor is None else {"floor": float(floor)}), **point_attrs,
    }
    return out


def summary(diag: xr.Dataset) -> str:
    """A few lines for the terminal: moments, tail quantiles, the GPD fit, return levels."""
    def g(value) -> str:
        return f"{float(value):.4g}"

    lines = [(f"{diag.attrs['label']}: '{diag.attrs['variable']}' over {int(diag['count'])} "
             f"values; mean {g(diag['mean'])}, std {g(np.sqrt(diag['variance']))}, skewness "
             f"{g(diag['skewness'])}, kurtosis {g(diag['kurtosis'])}, range [{g(diag['minimum'])}"
             f", {g(diag['maximum'])}]")]
    if int(diag.get("non_finite_count", 0)):
        lines.append(f"left out: {int(diag['non_finite_count'])} NaN or infinite values")
    q = diag["quantile"]
    lines.append("quantiles: " + ", ".join(f"{float(p)}: {g(v)}"
                                           for p, v in zip(q["probability"].values, q.values,
                                                           strict=True) if p >= 0.5))
    series = diag.attrs.get("extremes_series")
    if "gpd_shape" in diag:
        shape, scale = diag["gpd_shape"].values, diag["gpd_scale"].values
        lines.append(f"{series}: {int(diag['n_clusters'])} clusters above {g(diag['pot_threshold'])}"
                     f"; GPD shape {g(shape[0])} [{g(shape[1])}, {g(shape[2])}], scale "
                     f"{g(scale[0])} [{g(scale[1])}, {g(scale[2])}]")
        levels = diag["return_level"].dropna("return_period", how="all")
        for period in levels["return_period"].values[:: max(1, len(levels["return_period"]) // 3)]:
            e, lo, hi = levels.sel(return_period=period).values
            units = diag.attrs.get("time_units") or "time units"
            lines.append(f"  return level over {g(period)} {units}: {g(e)} [{g(lo)}, {g(hi)}]")
    if "floor" in diag.attrs:
        lines.append(f"floor {g(diag.attrs['floor'])}: a fraction "
                     f"{g(diag['below_floor_fraction'])} of the values lies below it and is "
                     "left out")
    if "atom" in diag.coords:
        lines.append("exact values: " + ", ".join(
            f"{g(a)} (probability {g(p)})"
            for a, p in zip(diag["atom"].values, diag["atom_probability"].values, strict=True)))
    units = diag.attrs.get("time_units") or "time units"
    if "gev_shape" in diag and units == "years":
        shape = diag["gev_shape"].values
        levels = diag["gev_return_level"]
        lines.append(f"GEV of the {diag.attrs.get('block', 'block')} maxima: shape "
                     f"{g(shape[0])} [{g(shape[1])}, {g(shape[2])}]; " + "; ".join(
                         f"{g(t)}-year level {g(levels.sel(return_period=t)[0])}"
                         for t in levels["return_period"].values))
    if "trend_gev_trend" in diag:
        trend, at = diag["trend_gev_trend"].values, diag.attrs["trend_at"]
        lines.append(f"trend of the GEV location per {diag.attrs['trend_covariate']}: "
                     f"{g(trend[0])} [{g(trend[1])}, {g(trend[2])}]; likelihood ratio "
                     f"{g(diag['trend_likelihood_ratio'])}, p = {g(diag['trend_p_value'])}; "
                     f"effective levels at {g(at)}: " + "; ".join(
                         f"{g(t)} {units}: {g(v)}" for t, v in zip(
                             diag["return_period"].values,
                             diag["effective_return_level"].sel(interval="estimate").values,
                             strict=True)))
    if "point_gev_return_level" in diag:
        levels = diag["point_gev_return_level"].sel(interval="estimate")
        t = float(levels["return_period"].values[np.argmin(np.abs(np.log(
            levels["return_period"].values / 20.0)))])
        at = levels.sel(return_period=t)
        lines.append(f"per-point fits at {at.size} points ({int(at.isnull().sum())} without "
                     f"one): {g(t)}{'-year' if units == 'years' else ' ' + units} return "
                     f"level from {g(at.min())} to "
                     f"{g(at.max())}, median {g(at.median())}")
    if "point_trend_p_value" in diag:
        from assimilate.diagnostics.gridded import SIGNIFICANCE, trend_tests

        passed, tested, by_chance = trend_tests(diag)
        lines.append(f"per-point trends: a changing GEV location at p < {SIGNIFICANCE:g} at "
                     f"{passed} of {tested} points (about {by_chance:.0f} by chance alone); "
                     "median trend "
                     f"{g(diag['point_gev_trend'].median())} per "
                     f"{'year' if units == 'years' else units}")
    for key in ("pot_note", "gev_note"):
        if key in diag.attrs:
            lines.append(f"note: {diag.attrs[key]}")
    if "compared" in diag.dims:
        for label in diag["compared"].values:
            row = diag.sel(compared=label)
            line = (f"vs {label}: kurtosis ratio {g(row['kurtosis_ratio'])}, tail KS "
                    f"{g(row['tail_ks_statistic'])}")
            if np.isfinite(float(row["twcrps"])):  # only for a paired ensemble on this grid
                line += f", twCRPS {g(row['twcrps'])}"
            lines.append(line)
    return "\n".join(lines)


_SERIES = ("spatial_maximum", *series_names())
