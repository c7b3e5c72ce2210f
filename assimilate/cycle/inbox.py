"""The inbox: observation files as they arrive, and the window each cycle assimilates.

A file in the inbox is a user's observation file (:mod:`assimilate.observe.files`:
``time``, ``x [, y]``, ``value ([trajectory=1,] obs)``, ``error_std``, in model time, or
datetimes with the workflow's ``calendar``, and physical units): NetCDF (``.nc``,
``.nc4``, ``.cdf``, ``.netcdf``) or a Zarr directory.
Names starting with ``.`` are ignored (write a file under a hidden name, then rename it
in); other names are not observation files and are ignored too. Every file is checked
on the model grid as it is read (a file synthesised from other physics than the
config's too, :func:`assimilate.da.inputs.read_observations`); a bad one is refused naming
it.

Model step s is model time s·Δt. The window of cycle point P is the steps P+1..P+L; its
observations are those of every file at those steps, gathered into one
:class:`~assimilate.observe.Observations` whose time axis starts at P.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from assimilate.observe import Observations, load_observations
from assimilate.observe.files import NETCDF_SUFFIXES, SPACE_DIMS, ObservationError
from assimilate.observe.times import Calendar

__all__ = ["Arrival", "late", "newest_step", "read_inbox", "sha256", "window"]


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One inbox file, checked: its observations with operator rows, ``value (obs,)``,
    each one's model ``steps (obs,)`` and whether it is ``present`` (not NaN)."""

    name: str
    sha256: str
    dataset: xr.Dataset
    steps: np.ndarray
    present: np.ndarray


def sha256(path: Path) -> str:
    """Of a file, or of a directory's files (relative names and contents, in order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def read_inbox(inbox: Path, grid: dict[str, Any], *, calendar: Calendar | None = None,
               config=None) -> list[Arrival]:
    """Every observation file in ``inbox``, by name, checked on ``grid`` (time0 = 0),
    datetimes read with ``calendar``; with ``config`` (whose grid is ``grid``), through
    :func:`assimilate.da.inputs.read_observations`: a file synthesised from other physics
    is refused too."""
    from assimilate.da.inputs import read_observations

    arrivals = []
    for path in sorted(inbox.iterdir()):
        wanted = path.is_dir() or path.suffix.lower() in NETCDF_SUFFIXES
        if path.name.startswith(".") or not wanted:
            continue
        ds = (load_observations(path, **grid | {"time0": 0.0}, calendar=calendar)
              if config is None else read_observations(path, config, calendar=calendar)).dataset
        if "trajectory" in ds["value"].dims:
            if ds.sizes["trajectory"] != 1:
                raise ObservationError(f"observation file '{path}' holds "
                                       f"{ds.sizes['trajectory']} trajectories; a cycle "
                                       "assimilates one")
            ds = ds.isel(trajectory=0, drop=True)
        steps = np.rint(ds["time"].values / grid["interval"]).astype(np.int64)
        arrivals.append(Arrival(path.name, sha256(path), ds, steps,
                                ~np.isnan(ds["value"].values)))
    return arrivals


def newest_step(arrivals: list[Arrival]) -> int | None:
    """The latest step with a present observation in any file (None: no observation)."""
    return max((int(a.steps[a.present].max()) for a in arrivals if a.present.any()),
               default=None)


def window(arrivals: list[Arrival], point: int, length: int, grid: dict[str, Any],
           source: str) -> tuple[Observations, list[dict[str, Any]]]:
    """``(observations, inputs)`` of the steps ``point+1 .. point+length``: every file's
    observations there, on a time axis starting at ``point``; ``inputs`` lists each file
    that has some (``file``, ``sha256``, ``observations``)."""
    parts, inputs = [], []
    for arrival in arrivals:
        chosen = (arrival.steps > point) & (arrival.steps <= point + length)
        if chosen.any():
            parts.append(arrival.dataset.isel(obs=np.flatnonzero(chosen)))
            inputs.append({"file": arrival.name, "sha256": arrival.sha256,
                           "observations": int(chosen.sum())})
    transforms = {str(part.attrs.get("transform", "identity")) for part in parts}
    if len(transforms) > 1:
        raise ObservationError(f"the observations of cycle {point} mix the transforms "
                               f"{sorted(transforms)} (files "
                               f"{', '.join(i['file'] for i in inputs)}); one per window")
    ds = _joined(parts, SPACE_DIMS[len(grid["space"])])
    ds.attrs = {"regime": "user", "transform": transforms.pop() if transforms else "identity",
                "source": ", ".join(i["file"] for i in inputs) or "none"}
    axis = grid | {"time0": point * grid["interval"]}
    return Observations.from_dataset(ds, **axis, source=source), inputs


def _joined(parts: list[xr.Dataset], space_dims: tuple[str, ...]) -> xr.Dataset:
    """The observations of ``parts`` in one dataset, ``value (trajectory=1, obs)``; operator
    rows of a smaller support are padded with weight 0."""
    support = max((part.sizes["support"] for part in parts), default=1)

    def joined(name: str) -> np.ndarray:
        rows = [part[name].values for part in parts]
        if name in ("indices", "weights"):
            rows = [np.pad(r, ((0, 0), (0, support - r.shape[1]))) for r in rows]
            return np.concatenate(rows) if rows else np.zeros((0, support))
        return np.concatenate(rows) if rows else np.zeros(0)

    return xr.Dataset(
        {"value": (("trajectory", "obs"), joined("value")[None]),
         "error_std": ("obs", joined("error_std")),
         "indices": (("obs", "support"), joined("indices").astype(np.int64)),
         "weights": (("obs", "support"), joined("weights"))},
        coords={"trajectory": [0], "time": ("obs", joined("time")),
                **{dim: ("obs", joined(dim)) for dim in space_dims}})


def late(arrivals: list[Arrival], done: list[int], start: int, length: int,
         used: Callable[[int], set[tuple[str, str]]]) -> list[tuple[int, str]]:
    """``(point, file)`` for each file with observations in a done window that its cycle
    did not use (``used(point)``: the (name, sha256) of that cycle's inputs)."""
    found = []
    for arrival in arrivals:
        steps = arrival.steps[arrival.present & (arrival.steps > start)]
        points = start + (steps - start - 1) // length * length
        for point in sorted(set(points.tolist()) & set(done)):
            if (arrival.name, arrival.sha256) not in used(point):
                found.append((point, arrival.name))
    return found
