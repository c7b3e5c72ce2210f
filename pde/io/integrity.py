"""Checked reads of the stores we write: a damaged store is refused, not read as numbers.

Readers see a field through :func:`checked_field`: a Dask array whose chunk reads turn a
checksum mismatch, a truncated chunk or a non-finite value into one :class:`IntegrityError`
that names the store, the variable and where (``trajectory 3, time 64..127``).
:func:`open_checked` opens any store the project wrote and refuses at once what
``assimilate verify`` (:mod:`pde.io.verify`) would report: torn metadata, lost chunks
(:mod:`pde.io.chunks`), a damaged or non-monotonic axis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from pde.io.chunks import METADATA_FILES, has_checksums, lost_chunks, where
from pde.io.errors import IntegrityError, StoreError

__all__ = [
    "AXES",
    "IntegrityError",
    "check_metadata",
    "checked_dataset",
    "checked_field",
    "coordinate_problem",
    "damaged_metadata",
    "decode_failure",
    "lost_arrays",
    "open_checked",
]


class _CheckedChunks:
    """Array-like for ``da.from_array``: each read checks decoding and finiteness."""

    def __init__(self, store: Path, name: str, dims: Sequence[str], *, finite: bool = True) -> None:
        import zarr

        self.store, self.name, self.dims, self.finite = store, name, tuple(dims), finite
        self.array = zarr.open_array(store / name, mode="r")
        # Zarr's dtypes carry an explicit byte order ("<f4"), which netCDF writers reject
        self.dtype = np.dtype(self.array.dtype.str)
        self.shape, self.ndim = self.array.shape, self.array.ndim

    def __reduce__(self):  # reopen from the path in another process (Dask workers)
        return type(self), (self.store, self.name, self.dims), {"finite": self.finite}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.finite = state["finite"]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        try:
            values = np.asarray(self.array[key], dtype=self.dtype)
        except Exception as error:  # noqa: BLE001 - any decoding failure is damage here
            raise IntegrityError(
                f"store '{self.store}': variable '{self.name}' at {self._where(key)} is "
                f"damaged ({decode_failure(error)}); run `assimilate verify {self.store}`") from None
        if self.finite and not np.isfinite(values).all():
            raise IntegrityError(
                f"store '{self.store}': variable '{self.name}' holds "
                f"{int((~np.isfinite(values)).sum())} non-finite values at {self._where(key)}; "
                f"run `assimilate verify {self.store}`")
        return values

    def _where(self, key: tuple[slice, ...]) -> str:
        full = tuple(key) + (slice(None),) * (self.ndim - len(key))
        return where(self.dims, full, self.shape)


def decode_failure(error: BaseException) -> str:
    """Why a chunk failed to decode, in words: a checksum mismatch or the reader's error."""
    text = str(error)
    if "checksum" in text.lower():
        return "checksum mismatch"
    return f"cannot be decoded: {type(error).__name__}: {text[:120]}"


def checked_field(store: str | Path, name: str, dims: Sequence[str], *,
                  finite: bool = True) -> da.Array:
    """The Zarr array ``store/name`` as a lazy Dask array whose reads are checked.

    A read of a damaged chunk, or (``finite``) of a chunk holding NaN or infinity, raises
    :class:`IntegrityError` naming the store, the variable and the chunk's place.
    """
    reader = _CheckedChunks(Path(store), name, dims, finite=finite)
    return da.from_array(reader, chunks=reader.array.chunks, asarray=False, lock=False,
                         name=f"checked-{name}-{os.fspath(store)}-{reader.array.shape}")


def checked_dataset(ds: xr.Dataset, store: str | Path) -> xr.Dataset:
    """``ds`` (opened lazily from the Zarr store ``store``) with the numeric variables we
    wrote, those carrying checksums, read through :func:`checked_field` (NaN allowed)."""
    import zarr

    for name, variable in ds.data_vars.items():
        if not np.issubdtype(variable.dtype, np.number) or variable.encoding.get("scale_factor"):
            continue
        try:
            array = zarr.open_array(Path(store) / str(name), mode="r")
        except Exception:  # noqa: BLE001 - not a plain array of this store: leave it
            array = None
        if array is not None and has_checksums(array) and array.shape == variable.shape:
            ds[name] = variable.copy(data=checked_field(store, str(name), variable.dims,
                                                        finite=False))
    return ds


AXES = ("time", "x", "y", "lat", "lon", "latitude", "longitude")  # finite, strictly monotonic


def damaged_metadata(store: str | Path) -> dict[Path, str]:
    """The metadata files of ``store`` (its own and its arrays') that cannot be parsed,
    each with the reason in words (``is empty``, ``is not valid JSON ...``)."""
    root = Path(store)
    files = [root / name for name in sorted(METADATA_FILES)] + \
        [path for name in sorted(METADATA_FILES) for path in sorted(root.glob(f"*/{name}"))]
    torn = {}
    for file in files:
        try:
            text = file.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            torn[file] = f"cannot be read ({error.strerror})"
            continue
        try:
            if not isinstance(json.loads(text), dict):
                torn[file] = "does not hold a JSON object"
        except ValueError as error:
            torn[file] = "is empty" if not text.strip() else \
                f"is not valid JSON (torn or truncated: {str(error)[:80]})"
    return torn


def coordinate_problem(name: str, values: np.ndarray) -> str | None:
    """What is wrong with the axis coordinate ``values`` (1-D), or None: non-finite values
    (NaN, infinity, NaT) or a direction that changes or stalls."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        if np.isnat(values).any():
            return f"holds {int(np.isnat(values).sum())} missing (NaT) value(s)"
        values = values.astype("datetime64[ns]").view("int64")
    elif values.dtype.kind not in "fiu":
        return None
    bad = ~np.isfinite(values)
    if bad.any():
        return (f"holds {int(bad.sum())} non-finite value(s), the first at index "
                f"{int(np.argmax(bad))}")
    steps = np.diff(values)
    if steps.size and not ((steps > 0).all() or (steps < 0).all()):
        i = int(np.argmax(steps <= 0) if steps[0] > 0 else np.argmax(steps >= 0))
        return (f"is not strictly monotonic: {values[i]:g} at index {i}, then "
                f"{values[i + 1]:g}")
    return None


def _coordinate_check(ds: xr.Dataset, path: Path, what: str) -> None:
    for name in AXES:
        if name in ds.dims and name in ds.coords and ds[name].ndim == 1:
            problem = coordinate_problem(name, ds[name].values)
            if problem:
                raise IntegrityError(f"{what} '{path}' is damaged: coordinate '{name}' "
                                     f"{problem}; an axis must be finite and strictly "
                                     "monotonic")


def _unopenable(path: Path, what: str, error: BaseException) -> StoreError:
    """Which index coordinate (read whole at open) failed, else the reader's own words."""
    import zarr

    for folder in sorted(p.parent for p in path.glob("*/zarr.json")):
        try:
            array = zarr.open_array(folder, mode="r")
            if tuple(array.metadata.dimension_names or ()) == (folder.name,):
                array[...]
        except Exception as failure:  # noqa: BLE001 - any decoding failure is damage here
            return IntegrityError(f"{what} '{path}' is damaged: variable '{folder.name}' "
                                  f"({decode_failure(failure)}); run `assimilate verify {path}`")
    return StoreError(f"'{path}' cannot be opened as a Zarr store: {str(error)[:300]}")


def lost_arrays(path: Path, names) -> list[str]:
    """Arrays the (consolidated) metadata lists whose own metadata file is gone."""
    if not (path / "zarr.json").is_file():  # Zarr v2: another layout
        return []
    return [str(name) for name in names if not (path / str(name) / "zarr.json").is_file()]


def check_metadata(path: Path, *, what: str = "store") -> None:
    """Refuse a missing path, a path that is no Zarr store, or a store whose metadata
    files do not parse, naming ``what`` and the file."""
    if not path.exists():
        raise StoreError(f"no store at '{path}'")
    if not path.is_dir() or not any((path / name).is_file() for name in METADATA_FILES):
        raise StoreError(f"'{path}' is not a Zarr store (expected a directory with zarr.json)")
    torn = damaged_metadata(path)
    if torn:
        file, reason = next(iter(torn.items()))
        raise IntegrityError(f"{what} '{path}' is damaged: its metadata file '{file}' "
                             f"{reason}; the store must be written again")


def open_checked(path: str | Path, *, what: str = "store") -> xr.Dataset:
    """A Zarr store the project wrote, opened lazily and checked as :func:`verify` checks it.

    Refused at once, with one :class:`IntegrityError` naming the store, the variable and
    where: a metadata file that cannot be parsed, an absent chunk that is damage
    (:class:`pde.io.chunks.Absence`: Zarr would read it as fill values), a damaged index coordinate, a
    time or space axis that is not finite and strictly monotonic. Reads of the other
    arrays are checked as they happen (:func:`checked_dataset`). ``what`` names the store
    in messages (``"trajectory store"``).
    """
    path = Path(path)
    check_metadata(path, what=what)
    try:
        ds = xr.open_zarr(path)
    except Exception as error:  # noqa: BLE001 - any reader failure means a broken store
        raise _unopenable(path, what, error) from None
    for name in lost_arrays(path, ds.variables):
        raise IntegrityError(f"{what} '{path}' is damaged: it lacks variable '{name}' (no "
                             f"'{path / name / 'zarr.json'}'); the store must be written again")
    for name, keys in lost_chunks(path).items():
        variable = ds.variables.get(name)
        dims, shape = (variable.dims, variable.shape) if variable is not None else ((), ())
        finished = " of finished trajectories" if what == "trajectory store" and \
            dims[:2] == ("trajectory", "time") else ""
        place = where(dims, keys[0], shape) if len(dims) == len(keys[0]) else "its start"
        raise IntegrityError(f"{what} '{path}' is damaged: variable '{name}' lacks "
                             f"{len(keys)} chunk(s){finished}, the first at {place}; run "
                             f"`assimilate verify {path}`")
    _coordinate_check(ds, path, what)
    return checked_dataset(ds, path)
