"""Gridded data from files (NetCDF, GRIB, Zarr) as a trajectory store.

    import_data(["era5-t2m.grib"], "t2m.zarr", segment="7D")
    # = assimilate import era5-t2m.grib --out t2m.zarr --segment 7D

Everything downstream of the simulators (forecaster, observations, data assimilation,
diagnostics, the report) reads trajectory stores; this writes one from a user's own files.
The axes are found from their CF metadata (``cf_xarray``: standard names, units, axis
attributes, and its name heuristics where a file has none), never from fixed names:

- **time**: a datetime coordinate along one of the variable's dims (a GRIB file's
  ``valid_time`` along its ``time``), strictly increasing at one fixed interval across all
  the files, which may come in any order;
- **latitude and longitude**: 1-D coordinates, each along its own dim; the store holds
  them rising (latitude as ``y``, longitude as ``x``) whatever order the file has;
- any other dim of the variable must have length 1 (a GRIB file's ``number``, ``step``).

``period`` keeps the times from START up to END (excluded); a long record is cut into
trajectories of ``segment`` (``"7D"``, ``"24h"``; the tail that
does not fill one is left out, and said so); ``region`` keeps the points inside a latitude
and longitude box. The store carries the *imported* descriptor in place of a simulator
(:class:`pde.config.ImportedConfig`, :data:`pde.descriptor.IMPORTED`): variable, units,
grid, region, interval and ``periodic: false``; the calendar time of every state
(``valid_time``, trajectory by time); each source file's name, size and SHA-256; and the
source's attribution (its ``attribution`` attribute, or ``attribution=``), which must be
shown wherever the data are.

Missing values are refused, not masked: every method downstream needs a finite field
(choose a region or a period without them). Bad input of any kind (no time or
latitude/longitude axis, a variable that is not there, a duplicated or backwards time, two
files on different grids, an empty region) is one line naming the file and what is
allowed, before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pde.config import DatasetConfig, ImportedConfig, SimulationConfig
from pde.ingest.sources import ALLOWED, Field, engine, hours, iso, read
from pde.io.errors import ConfigError
from pde.io.output import claim

__all__ = ["ImportSummary", "import_data", "parse_period", "parse_region"]


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    """What an import wrote: one line for a person."""

    path: Path
    variable: str
    units: str
    trajectories: int
    steps: int
    interval_hours: float
    grid: tuple[int, int]
    start: str
    dropped: int
    seconds: float

    def __str__(self) -> str:
        dropped = (f"; the last {self.dropped} states fill no whole segment and were left out"
                   if self.dropped else "")
        plural = "trajectory" if self.trajectories == 1 else "trajectories"
        return (f"{self.path}: {self.variable} [{self.units}], {self.trajectories} "
                f"{plural} x {self.steps} states every {self.interval_hours:g} h from "
                f"{self.start}, on {self.grid[0]} x {self.grid[1]} points, in "
                f"{self.seconds:.1f} s{dropped}")


def parse_region(text: str) -> tuple[float, float, float, float]:
    """``"S,N,W,E"`` (degrees) as a tuple; a ``ValueError`` says what is allowed."""
    try:
        south, north, west, east = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"region {text!r}: expected S,N,W,E in degrees, e.g. 50,58,-10,2"
                         ) from None
    if not (-90 <= south < north <= 90 and west < east):
        raise ValueError(f"region {text!r}: needs -90 <= S < N <= 90 and W < E")
    return south, north, west, east

def parse_period(text: str) -> tuple[np.datetime64, np.datetime64]:
    """``"START/END"`` (ISO dates or times, END excluded) as datetimes; a ``ValueError`` says
    what is allowed."""
    try:
        start, end = (np.datetime64(part.strip(), "ns") for part in text.split("/"))
    except ValueError:
        raise ValueError(f"period {text!r}: expected START/END as ISO dates or times, END "
                         "excluded, e.g. 2019-03-01/2019-03-22 for days 1 to 21") from None
    if not start < end:
        raise ValueError(f"period {text!r}: START must come before END")
    return start, end


def _within(fields: list[Field], period: tuple[np.datetime64, np.datetime64]) -> list[Field]:
    """The fields cut to the times in ``[start, end)``; refused if none is left."""
    start, end = period
    kept = []
    for f in fields:
        keep = np.flatnonzero((f.times >= start) & (f.times < end))
        if len(keep):
            kept.append(dataclasses.replace(f, values=f.values.isel({f.values.dims[0]: keep}),
                                            times=f.times[keep]))
    if not kept:
        first = min(f.times.min() for f in fields)
        last = max(f.times.max() for f in fields)
        raise ValueError(f"period {iso(start)}/{iso(end)} holds no time of the sources (they "
                         f"run from {iso(first)} to {iso(last)})")
    return kept


def _join(fields: list[Field]) -> tuple[list[Field], np.ndarray, np.timedelta64]:
    """The fields in time order, their times, and the one interval between states."""
    first = fields[0]
    for other in fields[1:]:
        for label in ("latitude", "longitude"):
            a, b = getattr(first, label), getattr(other, label)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-6):
                raise ValueError(f"'{other.source}' is on another {label} grid than "
                                 f"'{first.source}' ({len(b)} points from {b[0]:g} against "
                                 f"{len(a)} from {a[0]:g}); allowed: files of one grid")
    fields = sorted(fields, key=lambda f: f.times[0] if len(f.times) else np.datetime64("NaT"))
    times = np.concatenate([f.times for f in fields])
    if len(times) < 2:
        raise ValueError(f"'{first.source}' holds {len(times)} time(s); at least 2 are needed")
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= np.timedelta64(0))
    if bad.size:
        i = int(bad[0])
        where = _source_of(fields, i + 1)
        kind = "repeated" if steps[i] == np.timedelta64(0) else "goes backwards"
        raise ValueError(f"'{where}': time {kind} at {iso(times[i + 1])} (after "
                         f"{iso(times[i])}); allowed: strictly increasing times, each once")
    interval = steps[0]
    uneven = np.flatnonzero(steps != interval)
    if uneven.size:
        i = int(uneven[0])
        raise ValueError(f"'{_source_of(fields, i + 1)}': the interval changes at "
                         f"{iso(times[i + 1])} ({hours(steps[i])} h after "
                         f"{hours(interval)} h); allowed: one interval (fill or drop the "
                         "gap first)")
    return fields, times, interval


def _source_of(fields: list[Field], index: int) -> Path:
    for f in fields:
        if index < len(f.times):
            return f.source
        index -= len(f.times)
    return fields[-1].source

def _segment_length(segment: str | None, interval: np.timedelta64, n_times: int) -> int:
    if segment is None:
        return n_times
    import pandas as pd

    try:
        length = pd.Timedelta(segment).to_timedelta64()
    except ValueError:
        raise ValueError(f"segment {segment!r}: expected a duration such as 7D, 24h or 90min"
                         ) from None
    states = length / interval
    if length <= np.timedelta64(0) or states != int(states):
        raise ValueError(f"segment {segment!r} is not a whole number of the data's "
                         f"{hours(interval):g} h interval")
    if int(states) > n_times:
        raise ValueError(f"segment {segment!r} ({int(states)} states) is longer than the "
                         f"record ({n_times} states)")
    return int(states)


def _checksum(path: Path) -> dict[str, Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest, size = hashlib.sha256(), 0
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return {"name": path.name, "bytes": size, "sha256": digest.hexdigest()}


def _values(fields: list[Field], region: tuple[float, float, float, float] | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat, lon = fields[0].latitude, fields[0].longitude
    rows, cols = np.arange(len(lat)), np.arange(len(lon))
    if region is not None:
        south, north, west, east = region
        rows = np.flatnonzero((lat >= south - 1e-9) & (lat <= north + 1e-9))
        cols = np.flatnonzero((lon >= west - 1e-9) & (lon <= east + 1e-9))
        if len(rows) < 2 or len(cols) < 2:
            raise ValueError(f"region {south:g},{north:g},{west:g},{east:g} holds "
                             f"{len(rows)} x {len(cols)} grid points of '{fields[0].source}' "
                             f"(latitude {lat[0]:g} to {lat[-1]:g}, longitude {lon[0]:g} to "
                             f"{lon[-1]:g}); allowed: at least 2 x 2")
    parts = []
    for f in fields:
        data = np.asarray(f.values.isel({f.values.dims[1]: rows, f.values.dims[2]: cols}).values,
                          dtype=np.float64)
        bad = ~np.isfinite(data)
        if bad.any():
            t, i, j = np.argwhere(bad)[0]
            raise ValueError(f"'{f.source}': {int(bad.sum())} missing or non-finite values "
                             f"(the first at {iso(f.times[t])}, latitude {lat[rows[i]]:g}, "
                             f"longitude {lon[cols[j]]:g}); allowed: finite values only "
                             "(choose a --region without them)")
        parts.append(data)
    return np.concatenate(parts), lat[rows], lon[cols]


def _regular(values: np.ndarray, label: str, source: Path) -> None:
    steps = np.diff(values)
    if not np.allclose(steps, steps[0], rtol=1e-4, atol=1e-6):
        raise ValueError(f"'{source}': {label} spacing varies ({steps.min():g} to "
                         f"{steps.max():g} degrees); allowed: a regular grid")


def import_data(sources: Sequence[str | Path], out: str | Path, *, variable: str | None = None,
                segment: str | None = None, region: str | tuple | None = None,
                period: str | None = None, units: str | None = None,
                attribution: str | None = None, overwrite: bool = False,
                progress: bool = True) -> ImportSummary:
    """Write the gridded ``variable`` of ``sources`` as a trajectory store at ``out`` (see
    the module doc); every check comes before anything is written."""
    import time as clock

    from pde.io.progress import tqdm
    from pde.io.store import write_zarr

    started = clock.perf_counter()
    paths = [Path(s) for s in sources]
    if not paths:
        raise ValueError("no source files given; allowed: " + ALLOWED)
    for path in paths:
        engine(path)
    if isinstance(region, str):
        region = parse_region(region)
    window = parse_period(period) if period else None
    with claim(out, kind="directory", inputs=paths, overwrite=overwrite) as output:
        fields = [read(p, variable) for p in tqdm(paths, desc="import", unit="file",
                                                  disable=not progress)]
        names = {f.values.name for f in fields}
        if len(names) > 1:
            raise ValueError(f"the sources hold different variables ({', '.join(sorted(names))})"
                             "; choose one with --variable")
        if window is not None:
            fields = _within(fields, window)
        fields, times, interval = _join(fields)
        data, lat, lon = _values(fields, region)
        for label, values in (("latitude", lat), ("longitude", lon)):
            _regular(values, label, fields[0].source)
        n_steps = _segment_length(segment, interval, len(times))
        grid = _Grid(str(fields[0].values.name), times, lat, lon, hours(interval), n_steps)
        ds = _dataset(fields, data, grid, _units(fields, units),
                      attribution or next((f.attribution for f in fields if f.attribution),
                                          None), paths)
        output.require(int(ds[grid.name].nbytes * 1.1) + (1 << 20))
        write_zarr(ds, output)
    return ImportSummary(Path(out), grid.name, ds.attrs["units"], grid.n_traj, n_steps,
                         grid.hours, (len(lat), len(lon)), iso(times[0]),
                         len(times) - grid.n_traj * n_steps, clock.perf_counter() - started)


def _units(fields: list[Field], units: str | None) -> str:
    found = {f.units for f in fields if f.units}
    if units is None:
        if len(found) != 1:
            raise ValueError(f"'{fields[0].source}': the variable's units are "
                             f"{'missing' if not found else sorted(found)}; name them with "
                             "--units (e.g. K, degC, kg m-2 s-1)")
        units = found.pop()
    return units


@dataclasses.dataclass(frozen=True)
class _Grid:
    """The imported field's name, times, latitudes and longitudes, and its cut into
    segments."""

    name: str
    times: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    hours: float
    n_steps: int

    @property
    def n_traj(self) -> int:
        return len(self.times) // self.n_steps


def _dataset(fields: list[Field], data: np.ndarray, grid: _Grid, units: str,
             attribution: str | None, paths: list[Path]):
    """The trajectory store's dataset: the field cut into segments, its calendar times, the
    imported descriptor's section and the sources' checksums and attribution."""
    import xarray as xr

    from pde.io.store import SCHEMA, provenance, time_chunk

    lat, lon, n_traj, n_steps = grid.latitude, grid.longitude, grid.n_traj, grid.n_steps
    name, used = grid.name, grid.n_traj * grid.n_steps
    section = ImportedConfig(pde="imported", variable=name, units=units,
                             latitude=(float(lat[0]), float(lat[-1])),
                             longitude=(float(lon[0]), float(lon[-1])),
                             grid=(len(lat), len(lon)), interval=grid.hours)
    try:
        config = SimulationConfig(simulator=section, dataset=DatasetConfig(
            trajectories=n_traj, steps=n_steps))
    except Exception as error:  # noqa: BLE001 - a count beyond the configured bounds
        raise ConfigError(f"cannot describe the import: {error}") from None
    (_, _, lat_attrs), (_, _, lon_attrs) = section.coordinates()  # the one CF description
    described = fields[0].values.attrs
    standard = described.get("standard_name", "unknown")
    ds = xr.Dataset(
        {name: (("trajectory", "time", "y", "x"),
                data[:used].reshape(n_traj, n_steps, len(lat), len(lon)).astype(np.float32),
                {"units": units, "long_name": str(described.get("long_name", name)),
                 **({"standard_name": standard} if standard != "unknown" else {})}),
         "complete": (("trajectory",), np.ones(n_traj, dtype=bool),
                      {"long_name": "trajectory fully written"})},
        coords={
            "trajectory": ("trajectory", np.arange(n_traj), {"long_name": "segment index"}),
            "time": ("time", np.arange(n_steps) * grid.hours,
                     {"units": "1", "long_name": "hours since the segment's start"}),
            "y": ("y", lat, lat_attrs),
            "x": ("x", lon, lon_attrs),
            "valid_time": (("trajectory", "time"), grid.times[:used].reshape(n_traj, n_steps),
                           {"long_name": "calendar time"}),
        })
    ds = ds.chunk({"trajectory": 1, "time": time_chunk(n_steps, (len(lat), len(lon)))})
    ds.attrs = {"schema": SCHEMA, **section.model_dump(mode="json"),
                "config": config.canonical_json(),
                "sources": json.dumps([_checksum(p) for p in paths]),
                **({"attribution": attribution} if attribution else {}),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **provenance()}
    return ds
