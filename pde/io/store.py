"""The trajectory store: a Zarr (v3) store with a fixed, self-describing schema.

Layout (``F``: the descriptor's variable, ``u`` for Kuramoto-Sivashinsky, ``vorticity``
for Kolmogorov flow; its spatial dims the descriptor's too, see :mod:`pde.descriptor`)::

    F         (trajectory, time, x)  or  (trajectory, time, y, x)   float32
    complete  (trajectory,)                                          bool
    coords    trajectory, time (model time after burn-in), x [, y]  with units

Chunks are one trajectory by a block of consecutive states by the whole field, sized
near 256 KiB, so a random training window (a few consecutive states of one trajectory)
touches one or two chunks, and every trajectory can be written by its own task without
touching another's chunks.

The attributes rebuild the simulator (``config`` is the resolved configuration as JSON,
and each simulator parameter is also a plain attribute), record provenance (seed,
package versions, creation time) and carry a ``schema`` tag. The ``complete`` mask is
set only after a trajectory's data are on disk, so an interrupted run never leaves
anything that a reader could mistake for data: :func:`open_trajectories` refuses a
store with unfinished trajectories unless asked for the finished ones only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from pde.config import SimulationConfig, physics_difference
from pde.descriptor import DESCRIPTORS, descriptor_of
from pde.io.chunks import checksummed_encoding
from pde.io.errors import OutputError, StoreError
from pde.io.integrity import check_metadata, checked_field, open_checked
from pde.io.output import Output, claim
from pde.simulator import Simulator

__all__ = [
    "SCHEMA",
    "StoreError",
    "create_store",
    "export",
    "field_variable",
    "open_store",
    "open_trajectories",
    "provenance",
    "read_completion",
    "require_physics",
    "simulator_section",
    "store_identity",
    "stored_config",
    "write_trajectories",
    "write_zarr",
]

SCHEMA = "assimilate.trajectories/1"
COMPLETE = "complete"
_CHUNK_BYTES = 256 * 1024


# Consolidated metadata is a zarr-python extension to Zarr v3; we rely on it knowingly.
warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")


def time_chunk(n_steps: int, field_shape: tuple[int, ...]) -> int:
    """States per chunk: about 256 KiB of float32, at least one, at most all."""
    state_bytes = 4 * int(np.prod(field_shape))
    return int(max(1, min(n_steps, _CHUNK_BYTES // state_bytes)))


def provenance() -> dict[str, str]:
    versions = {}
    for package in ("assimilate", "jax", "jax-cfd", "xarray", "zarr"):
        try:
            versions[f"{package.replace('-', '_')}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[f"{package.replace('-', '_')}_version"] = "unknown"
    versions["package_version"] = versions.pop("assimilate_version")
    return versions


def _skeleton(config: SimulationConfig, simulator: Simulator) -> xr.Dataset:
    """The store's lazy skeleton: metadata and coordinates, no field data."""
    n_traj, n_steps = config.dataset.trajectories, config.dataset.steps
    coords = simulator.coordinates()
    shape = tuple(len(values) for _, values, _ in coords)
    chunks = (1, time_chunk(n_steps, shape), *shape)
    field = da.zeros((n_traj, n_steps, *shape), dtype=np.float32, chunks=chunks)
    dims = ("trajectory", "time", *(name for name, _, _ in coords))
    ds = xr.Dataset(
        {
            simulator.variable: (dims, field, {"long_name": simulator.variable, "units": "1"}),
            COMPLETE: (("trajectory",), da.zeros(n_traj, dtype=bool, chunks=1)),
        },
        coords={
            "trajectory": ("trajectory", np.arange(n_traj), {"long_name": "trajectory index"}),
            "time": (
                "time",
                np.arange(n_steps) * simulator.interval,
                {"units": "1", "long_name": "model time after burn-in"},
            ),
            **{name: (name, values, attrs) for name, values, attrs in coords},
        },
    )
    ds[COMPLETE].attrs["long_name"] = "trajectory fully written"
    ds.attrs = {
        "schema": SCHEMA,
        **simulator.attrs(),
        "seed": config.dataset.seed,
        "config": config.canonical_json(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **provenance(),
    }
    return ds


def write_zarr(ds: xr.Dataset, output: Output | str | Path, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a checksummed Zarr v3 store through the guarded write path: into a
    temporary sibling, renamed onto the output path only once complete.

    ``output`` is an output claimed by the caller (:func:`pde.io.output.claim`, so that the
    checks come before the work) or a path, claimed here (``overwrite`` to replace it).
    """
    if not isinstance(output, Output):
        with claim(output, kind="directory", overwrite=overwrite) as claimed:
            return write_zarr(ds, claimed)
    with output.atomic() as scratch:
        ds.to_zarr(scratch, mode="w-", zarr_format=3, consolidated=True,
                   encoding=checksummed_encoding(ds), write_empty_chunks=True)
    return output.path


def create_store(path: str | Path, config: SimulationConfig, simulator: Simulator, *,
                 output: Output | None = None) -> None:
    """Write the store's metadata at ``path`` atomically (temporary sibling, then rename).

    ``output`` is the claim on ``path`` when the caller holds one (see :mod:`pde.io.output`).
    """
    if output is None:
        with claim(path, kind="directory") as claimed:
            return create_store(path, config, simulator, output=claimed)
    skeleton = _skeleton(config, simulator)
    try:
        with output.atomic() as scratch:
            skeleton.to_zarr(scratch, mode="w-", compute=False, zarr_format=3,
                             consolidated=True, encoding=checksummed_encoding(skeleton),
                             write_empty_chunks=True)  # the index [0] equals the fill value
    except OutputError as error:
        raise StoreError(f"cannot create store: {error}") from None


def write_trajectories(path: str | Path, variable: str, start: int, fields: np.ndarray) -> None:
    """Write ``fields`` (batch, time, *space) as trajectories ``start...``, then mark them done.

    The mask is written after the data, so a crash in between leaves the trajectories
    marked unfinished and a rerun recomputes them.
    """
    stop = start + len(fields)
    dims = ("trajectory", "time", *(["y", "x"] if fields.ndim == 4 else ["x"]))
    region = {"trajectory": slice(start, stop)}
    xr.Dataset({variable: (dims, fields.astype(np.float32))}).to_zarr(
        path, region=region, mode="r+", zarr_format=3, consolidated=False,
        write_empty_chunks=True)  # every chunk on disk: a missing one is always damage
    done = xr.Dataset({COMPLETE: (("trajectory",), np.ones(stop - start, dtype=bool))})
    done.to_zarr(path, region=region, mode="r+", zarr_format=3, consolidated=False)


def read_completion(path: str | Path) -> np.ndarray:
    """The per-trajectory completion mask; an unreadable mask chunk counts as unfinished."""
    import zarr

    array = zarr.open_array(Path(path) / COMPLETE, mode="r")
    with contextlib.suppress(Exception):  # a chunk torn by a kill mid-write: see below
        return np.asarray(array[:], dtype=bool)  # one read in the common case
    mask = np.zeros(array.shape[0], dtype=bool)
    for index in range(array.shape[0]):
        try:
            mask[index] = bool(array[index])
        except Exception:  # noqa: BLE001 - recompute the trajectory of a torn chunk
            mask[index] = False
    return mask


def _open_raw(path: Path) -> xr.Dataset:
    """The store's metadata, checked to parse, without reading or checking any chunk."""
    check_metadata(path)
    try:
        return xr.open_zarr(path, consolidated=True, zarr_format=3)
    except Exception as error:  # noqa: BLE001 - any reader failure means a broken store
        raise StoreError(f"'{path}' cannot be opened as a Zarr v3 store: {error}") from None


def open_store(path: str | Path) -> xr.Dataset:
    """Any Zarr store lazily, checked as ``assimilate verify`` checks it
    (:func:`pde.io.integrity.open_checked`): damaged metadata, a lost chunk or a broken time
    or space axis is refused at once, a damaged chunk when it is read, naming the store,
    variable and place."""
    return open_checked(path)


def stored_config(path: str | Path) -> dict[str, Any]:
    """The resolved configuration a trajectory store was written with."""
    path = Path(path)
    ds = _open_raw(path)
    _check_schema(ds, path)
    return json.loads(ds.attrs["config"])


def field_variable(ds: xr.Dataset) -> str:
    """The name of a trajectory store's field (``u``, ``vorticity``)."""
    return descriptor_of(ds.attrs).variable


def simulator_section(ds: xr.Dataset) -> dict[str, Any]:
    """The simulator section of the configuration a trajectory store was written with."""
    return json.loads(ds.attrs["config"])["simulator"]


def store_identity(ds: xr.Dataset) -> str:
    """What tells one trajectory store from another, wherever it was copied to."""
    return f"{ds.attrs['created']} {ds.attrs['config']}"


def require_physics(ds: xr.Dataset, expected: dict[str, Any], *, path: str | Path,
                    what: str) -> None:
    """Refuse a store whose simulator differs in physics from ``expected``, naming the
    first difference (numerical settings such as ``dt`` may differ)."""
    difference = physics_difference(simulator_section(ds), expected)
    if difference:
        raise StoreError(f"trajectory store '{path}' holds other physics than {what}: "
                         f"{difference}; a model knows only the physics it was trained on")


def _check_schema(ds: xr.Dataset, path: Path, pde: str | None = None) -> str:
    if ds.attrs.get("schema") != SCHEMA:
        raise StoreError(
            f"'{path}' is a Zarr store but not a trajectory store: attribute 'schema' is "
            f"{ds.attrs.get('schema')!r}, expected {SCHEMA!r}"
        )
    kind = ds.attrs.get("pde")
    if kind not in DESCRIPTORS:
        raise StoreError(f"trajectory store '{path}' has unknown pde {kind!r}; known: "
                         f"{', '.join(DESCRIPTORS)}")
    simulated = DESCRIPTORS[kind].simulator is not None  # imported data have no seed
    required = ("config", "seed", "created") if simulated else ("config", "created", "variable")
    missing = [key for key in required if key not in ds.attrs]
    if missing:
        raise StoreError(f"trajectory store '{path}' lacks attributes: {', '.join(missing)}")
    if pde is not None and kind != pde:
        raise StoreError(f"trajectory store '{path}' holds {kind!r} data, expected {pde!r}")
    found = descriptor_of(ds.attrs)
    variable, space = found.variable, found.space
    expected = {variable: ("trajectory", "time", *space), COMPLETE: ("trajectory",)}
    for name, dims in expected.items():
        if name not in ds.variables or not (path / name / "zarr.json").is_file():
            raise StoreError(f"trajectory store '{path}' lacks variable '{name}'")
        if ds[name].dims != dims:
            raise StoreError(
                f"variable '{name}' in '{path}' has dims {ds[name].dims}, expected {dims}"
            )
    return variable


def open_trajectories(
    path: str | Path, *, pde: str | None = None, finished_only: bool = False,
    finite: bool = True,
) -> xr.Dataset:
    """Open a trajectory store lazily (Dask-backed) after validating its schema.

    Every chunk of the finished trajectories must exist; reads of the field are checked
    (:func:`pde.io.integrity.checked_field`): a damaged chunk, or with ``finite`` a NaN or
    infinite value, raises :class:`pde.io.integrity.IntegrityError` naming where it is.

    Args:
        path: the store directory.
        pde: if given, the store must hold this PDE (``"kuramoto_sivashinsky"``, ...).
        finished_only: return only finished trajectories instead of refusing a store
            that an interrupted run left incomplete.
        finite: refuse non-finite values when they are read.
    """
    path = Path(path)
    ds = open_checked(path, what="trajectory store")
    variable = _check_schema(ds, path, pde)
    complete = read_completion(path)
    field = ds[variable]
    ds[variable] = field.copy(data=checked_field(path, variable, field.dims, finite=finite))
    if not complete.all():
        if not finished_only:
            missing = np.flatnonzero(~complete)
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise StoreError(
                f"trajectory store '{path}' is incomplete: {len(missing)} of {len(complete)} "
                f"trajectories unfinished ({shown}); rerun the same `assimilate simulate` "
                "command to finish it"
            )
        ds = ds.isel(trajectory=np.flatnonzero(complete))
    return ds


def export(store: str | Path, to: str | Path, *, overwrite: bool = False) -> Path:
    """Write a finished trajectory store to NetCDF-4 through the guarded write path."""
    with claim(to, kind="file", inputs=[store], overwrite=overwrite, option="--to") as output:
        ds = open_trajectories(store)
        ds[COMPLETE] = ds[COMPLETE].astype("i1")  # NetCDF-4 has no boolean type
        ds[COMPLETE].attrs["flag_values"] = "0 1"
        ds = ds.drop_encoding()  # Zarr's codecs and explicit "<f4" dtypes mean nothing here
        output.require(ds.nbytes, what="the NetCDF file (uncompressed)")
        # One thread: netCDF writes are serial anyway, and a failed read then stops the
        # export at once instead of leaving other threads writing into the temporary.
        with output.atomic() as scratch, dask.config.set(scheduler="synchronous"):
            ds.to_netcdf(scratch, engine="netcdf4", format="NETCDF4")
    return Path(to)
