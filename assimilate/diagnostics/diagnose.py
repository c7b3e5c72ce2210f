"""Extreme-event diagnostics of any gridded field, computed lazily with Dask.

``diagnose(ds, DiagnoseSettings(...))`` turns a field with named dims (our trajectory,
sample and forecast stores, or any xarray/Zarr/NetCDF data such as a (time, lat, lon)
reanalysis) into one small Dataset of schema ``assimilate.diagnostics/1``, the input of
``assimilate.report``; with ``out`` it also writes it, as a Zarr store, through the guarded
write path (:func:`pde.io.output.claim`). The dims' roles (time, space, pooled
realisations) are those of :mod:`assimilate.diagnostics.layout`.

The store is read about once: a pre-pass over a few evenly spread chunks fixes the
thresholds and a shift for the moments, then one Dask pass (``onepass.statistics``, lazy
until computed) gives power sums, extrema, exact exceedance counts, a relative-resolution
histogram (``sketch``) from which quantiles and densities follow, maps over space, and
the physical series (spatial maximum, and those the data's PDE declares in its descriptor,
:mod:`pde.descriptor`: energy, enstrophy and dissipation for Kolmogorov flow; total
variation and energy for Kuramoto-Sivashinsky) and spectrum. No step holds more than a few
chunks, so stores larger than the workers' memory stream through. The extreme-value
analysis of one series follows, in memory (series are small):
:mod:`assimilate.diagnostics.series`, and, with ``per_point``, fits at every spatial point:
:mod:`assimilate.diagnostics.gridded`. Values that recur exactly (the zeros of dry days)
are found in the pre-pass and counted exactly; for dated time axes return periods are in
years (:mod:`assimilate.diagnostics.calendar`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array as da
import dask.diagnostics
import numpy as np
import xarray as xr

from assimilate.diagnostics import calendar, choice, sketch
from assimilate.diagnostics.comparison import comparison
from assimilate.diagnostics.layout import Layout, layout, open_data
from assimilate.diagnostics.onepass import PassSettings, statistics
from assimilate.diagnostics.series import extreme_values
from assimilate.diagnostics.settings import SERIES, ComputeSettings, DiagnoseSettings
from assimilate.diagnostics.trend import MIN_TREND_BLOCKS
from assimilate.diagnostics.units import convert, magnitude
from pde.descriptor import find
from pde.io.cluster import dask_client
from pde.io.output import claim

__all__ = ["SCHEMA", "THRESHOLD_QUANTILES", "diagnose"]

SCHEMA = "assimilate.diagnostics/1"
THRESHOLD_QUANTILES = (0.9, 0.99, 0.999)
PRE_PASS_CHUNKS = 32  # chunks read to fix the thresholds before the main pass
PRE_PASS_VALUES = 2_000_000
ATOM_FRACTION = 0.01  # a value this frequent in the pre-pass sample is counted exactly
MAX_ATOMS = 8

Data = xr.Dataset | xr.DataArray | str | os.PathLike


def diagnose(data: Data, settings: DiagnoseSettings | None = None, *,
             compare: Mapping[str, Data] | None = None,
             covariate: xr.DataArray | None = None, label: str = "", source: str = "",
             out: str | os.PathLike | None = None, overwrite: bool = False,
             compute: ComputeSettings | None = None) -> xr.Dataset:
    """Diagnostics of one field (see the module docstring), an in-memory Dataset.

    ``data`` and the values of ``compare`` are Datasets, DataArrays or paths of Zarr stores
    or NetCDF files (opened with ``open_data``; a path's name is the default ``label``).
    ``compare`` maps labels to fields compared against this one (emulator, forecast or
    analysis). ``covariate``, a series on the time axis, replaces time as what the GEV
    location follows when ``settings.trend`` (averaged over each block). ``out``: also
    write the result there as a Zarr store, refused before any work where it exists
    (unless ``overwrite``) or is one of the inputs. ``compute``: where the pass runs (by
    default in this process). ``settings`` default to ``DiagnoseSettings()``.
    """
    settings, compute = settings or DiagnoseSettings(), compute or ComputeSettings()
    given = int(bool(label))  # a label given wins over the long name in reports
    paths = [item for item in (data, *(compare or {}).values())
             if isinstance(item, str | os.PathLike)]
    if isinstance(data, str | os.PathLike):
        label, source = label or Path(data).stem, source or str(data)
    if out is None:
        result = _diagnosed(data, settings, compare, covariate, label, source, compute)
        result.attrs["label_given"] = given
        return result
    from pde.io.store import write_zarr

    with claim(out, kind="directory", inputs=paths, overwrite=overwrite) as output:
        result = _diagnosed(data, settings, compare, covariate, label, source, compute)
        result.attrs["label_given"] = given
        write_zarr(result, output)
    return result


def _diagnosed(data: Data, settings: DiagnoseSettings, compare: Mapping[str, Data] | None,
               covariate: xr.DataArray | None, label: str, source: str,
               compute: ComputeSettings) -> xr.Dataset:
    source = source or "the data"
    others = {name: open_data(other) if isinstance(other, str | os.PathLike) else other
              for name, other in (compare or {}).items()}
    data = open_data(data) if isinstance(data, str | os.PathLike) else data
    field, lay = layout(data, settings.variable, settings.dims, source=source)
    field = convert(field, settings.units, source)
    settings = _in_field_units(settings, field, source)
    _check(field, lay, settings, source)
    attrs = data.attrs if isinstance(data, xr.Dataset) else field.attrs
    pde = str(attrs.get("pde", ""))
    bar = dask.diagnostics.ProgressBar(out=sys.stderr) \
        if compute.progress and not (compute.workers or compute.scheduler) \
        else contextlib.nullcontext()
    with dask_client(compute.workers, compute.scheduler, timeout=compute.scheduler_timeout):
        passed = _pass_settings(_pre_pass(field), settings, pde, attrs)
        with bar:
            counted = statistics(field, lay, passed).compute()
        out = _distribution(counted, field, passed, settings, source)
        out, extreme_attrs = _extremes(out, field, lay, settings, covariate, source)
        if others:
            others = {name: convert(layout(other, settings.variable or str(field.name), None,
                                           source=f"compared data '{name}'")[0],
                                    settings.units, f"compared data '{name}'")
                      for name, other in others.items()}
            edges = np.append(out["bin_left"].values, out["bin_right"].values[-1])
            out = out.merge(comparison(field, others, settings.tail_quantile,
                                       passed.map_threshold, edges, shift=passed.shift))
        point_attrs: dict = {}
        if settings.per_point:
            out, point_attrs = _per_point(out, field, lay, settings, source, bar)
    out.attrs = {
        "schema": SCHEMA, "label": label or str(field.name), "source": source,
        "variable": str(field.name), "units": str(field.attrs.get("units", "")), "pde": pde,
        **({"long_name": str(field.attrs["long_name"])} if "long_name" in field.attrs else {}),
        **lay.attrs(), "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tail_quantile": settings.tail_quantile, "confidence": settings.confidence,
        **extreme_attrs, **({} if settings.floor is None else {"floor": float(settings.floor)}),
        **point_attrs,
        **({} if (bound := _lower_bound(out, settings)) is None else {"lower_bound": bound}),
    }
    return out


def _check(field: xr.DataArray, lay: Layout, settings: DiagnoseSettings, source: str) -> None:
    """What the field's layout and time axis must allow, checked before the pass."""
    if settings.per_point and not (lay.time and lay.space):
        raise ValueError(f"per-point fits need a time dim and space dims; {source} has time "
                         f"'{lay.time or 'none'}' and space {list(lay.space) or 'none'} "
                         "(name them with --dims TIME,SPACE...)")
    coordinate = field[lay.time] if lay.time in field.coords else None
    calendar.check_block(coordinate, settings.block, source)
    calendar.check_season(coordinate, settings.season, source)
    if coordinate is not None:
        calendar.check_time(coordinate, source)
    if lay.time:  # a run length this time axis cannot read is refused before the pass
        calendar.run_length_steps(settings.run_length, coordinate, source)
    if coordinate is None:
        return
    if settings.trend and calendar.is_calendar(coordinate) and settings.block_steps is None:
        block = settings.season or settings.block or "year"
        years = len(calendar.blocks(coordinate, "season" if settings.season else block, source,
                                    settings.season).kept)
        if years < MIN_TREND_BLOCKS:
            raise ValueError(f"{source} holds {years} complete {block} blocks; a trend needs "
                             f"at least {MIN_TREND_BLOCKS}")


# --- before the pass -----------------------------------------------------------------------


def _in_field_units(settings: DiagnoseSettings, field: xr.DataArray,
                    source: str) -> DiagnoseSettings:
    """The floor and thresholds as numbers in the field's units (quantities converted)."""
    floor = None if settings.floor is None else \
        magnitude(settings.floor, field, "--floor", source)
    threshold = None if settings.pot_threshold is None else \
        magnitude(settings.pot_threshold, field, "--pot-threshold", source)
    return dataclasses.replace(settings, floor=floor, pot_threshold=threshold, thresholds=tuple(
        magnitude(t, field, "--threshold", source) for t in settings.thresholds))


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


def _pass_settings(sample: np.ndarray, settings: DiagnoseSettings, pde: str,
                   attrs: Mapping) -> PassSettings:
    """Thresholds (the ``THRESHOLD_QUANTILES`` of the pre-pass ``sample``, then those asked
    for), the map's threshold, the shift and the atoms of the pass."""
    if settings.floor is not None:
        sample = sample[sample >= settings.floor]
    nominal = np.quantile(sample, THRESHOLD_QUANTILES) if len(sample) else \
        np.full(len(THRESHOLD_QUANTILES), np.nan)
    return PassSettings(
        thresholds=(*nominal, *map(float, settings.thresholds)),
        map_threshold=float(np.quantile(sample, settings.tail_quantile)) if len(sample)
        else np.nan,
        shift=float(np.median(sample)) if len(sample) else 0.0, physics=find(pde),
        parameters=attrs, atoms=_atoms(sample), floor=settings.floor)


def _atoms(sample: np.ndarray) -> tuple[float, ...]:
    """Values that recur exactly in at least ``ATOM_FRACTION`` of the pre-pass sample (the
    zeros of dry days, a bound, a quantised reading), the most frequent ``MAX_ATOMS``."""
    if not len(sample):
        return ()
    values, counts = np.unique(sample, return_counts=True)  # -0.0 and 0.0 are one value
    frequent = np.flatnonzero(counts >= ATOM_FRACTION * len(sample))
    chosen = frequent[np.argsort(counts[frequent])[::-1][:MAX_ATOMS]]
    return tuple(float(values[i]) + 0.0 for i in sorted(chosen))


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


def _distribution(c: xr.Dataset, field: xr.DataArray, passed: PassSettings,
                  settings: DiagnoseSettings, source: str) -> xr.Dataset:
    """Moments, quantiles, exceedances, the histogram, exact values, maps and series."""
    below_floor = int(c["below_floor_count"])
    if float(c["count"]) == 0 and below_floor:
        units = field.attrs.get("units", "")
        raise ValueError(f"every value of '{field.name}' in {source} lies below the floor "
                         f"{passed.floor:g} {units}".rstrip() + "; give the floor in the "
                         "field's units or as a quantity, e.g. --floor '1 mm/day'")
    if float(c["count"]) == 0:
        raise ValueError(f"variable '{field.name}' of {source} holds only NaN values")
    non_finite = int(field.size - float(c["count"])) - below_floor
    if non_finite:
        warnings.warn(f"{non_finite} of {field.size} values of '{field.name}' in {source} "
                      "are NaN or infinite; the diagnostics leave them out", stacklevel=4)
    moments = _moments(c, passed.shift)
    lo, hi, shift = float(c["minimum"]), float(c["maximum"]), passed.shift
    counts = np.asarray(c["sketch"].values)  # of the values less the shift (onepass)
    exact = {a: int(n) for a, n in zip(passed.atoms, np.asarray(c["atom_count"]), strict=True)
             if n > 0}
    shifted = {a - shift: n for a, n in exact.items()}
    density, edges = sketch.display_histogram(sketch.without_atoms(counts, shifted),
                                              lo - shift, hi - shift, total=counts.sum())
    edges = edges + shift
    levels = [*THRESHOLD_QUANTILES, *[np.nan] * len(settings.thresholds)]
    out = xr.Dataset(
        {**moments, "non_finite_count": non_finite, "minimum": lo, "maximum": hi,
         "quantile": ("probability", shift + sketch.sketch_quantiles(
             counts, settings.probabilities, lo - shift, hi - shift, shifted)),
         "exceedance_probability": ("threshold",
                                    np.asarray(c["exceedance_count"]) / moments["count"]),
         "threshold_quantile": ("threshold", np.asarray(levels, dtype=np.float64)),
         "histogram_density": ("bin", density)},
        coords={"probability": list(settings.probabilities), "threshold": list(passed.thresholds),
                "bin_left": ("bin", edges[:-1]), "bin_right": ("bin", edges[1:])})
    if exact:  # point masses: left out of the density, their probabilities exact
        out["atom_probability"] = ("atom", np.array(list(exact.values())) / moments["count"])
        out = out.assign_coords(atom=np.array(list(exact), dtype=np.float64))
    if settings.floor is not None:
        out["below_floor_fraction"] = below_floor / max(below_floor + moments["count"], 1)
    for name in ("temporal_maximum", "exceedance_map", *SERIES, "energy_spectrum"):
        if name in c:
            out[name] = c[name].astype(np.float64)
    if "exceedance_map" in out:
        out["exceedance_map"].attrs = {"threshold": passed.map_threshold,
                                       "threshold_quantile": settings.tail_quantile}
    return out


def _extremes(out: xr.Dataset, field: xr.DataArray, lay: Layout, settings: DiagnoseSettings,
              covariate: xr.DataArray | None, source: str) -> tuple[xr.Dataset, dict]:
    """The extreme-value analysis of the chosen series (``series.extreme_values``)."""
    if not lay.time:
        return out, {"pot_note": "no time dimension: no peaks-over-threshold analysis"}
    chosen = settings.series or ("dissipation" if "dissipation" in out else
                                 "spatial_maximum" if "spatial_maximum" in out else None)
    if chosen and chosen not in out:
        raise ValueError(f"series '{chosen}' is not among the computed series "
                         f"({', '.join(n for n in out if n in SERIES) or 'none'})")
    target = out[chosen] if chosen else field.astype(np.float64).load()
    if settings.floor is not None and not chosen:
        target = target.where(target >= settings.floor)  # the wet days' series
    target.name = chosen or str(field.name)
    bound = 0.0 if float(target.min()) >= 0 else None  # a non-negative series: rain, energy
    extreme, attrs = extreme_values(target, lay,
                                    dataclasses.replace(settings.extremes(), lower_bound=bound),
                                    covariate=covariate, source=source)
    return out.merge(extreme), {**attrs, **choice.advice(extreme, settings.pot_quantile)}


def _per_point(out: xr.Dataset, field: xr.DataArray, lay: Layout, settings: DiagnoseSettings,
               source: str, bar) -> tuple[xr.Dataset, dict]:
    """GEV and GPD fits at every spatial point (``gridded.fit_per_point``), computed."""
    from assimilate.diagnostics import gridded

    periods = out["return_period"].values if "return_period" in out.coords \
        else settings.return_periods
    extremes = dataclasses.replace(settings.extremes(), return_periods=periods)
    maps = gridded.fit_per_point(
        field if settings.floor is None else field.where(field >= settings.floor), extremes,
        time=lay.time, space=lay.space, source=source, lower_bound=_lower_bound(out, settings))
    with bar:
        maps = maps.compute()
    return out.merge(maps, compat="override"), dict(maps.attrs)


def _lower_bound(out: xr.Dataset, settings: DiagnoseSettings) -> float | None:
    """0 where no analysed value is negative (rain, wind speed), the bound that per-point
    GEV levels' intervals respect; None where the data reach below 0."""
    floor = settings.floor
    return 0.0 if float(out["minimum"]) >= 0 or (floor is not None and floor >= 0) else None
