"""Integrity of the stores we write: checksummed chunks, checked reads, ``verify``.

Every array we write carries Zarr v3's ``crc32c`` codec after compression, so a chunk
whose bytes changed on disk fails to decode instead of reading as other numbers, and
every chunk is written, even one that equals the fill value, so a missing chunk is
always damage (Zarr would otherwise read it back silently as NaN).

Readers see a field through :func:`checked_field`: a Dask array whose chunk reads turn a
checksum mismatch, a truncated chunk or a non-finite value into one :class:`IntegrityError`
that names the store, the variable and where (``trajectory 3, time 64..127``).
:func:`missing_chunks` lists absent chunks from the store's directory without reading
data; :func:`verify` reads every chunk of every array and reports all it finds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from pde.io.errors import IntegrityError, StoreError

__all__ = [
    "AXES",
    "Finding",
    "IntegrityError",
    "Verification",
    "check_metadata",
    "checked_dataset",
    "checked_field",
    "checksummed_encoding",
    "coordinate_problem",
    "damaged_metadata",
    "has_checksums",
    "lost_chunks",
    "missing_chunks",
    "open_checked",
    "verify",
]


def checksummed_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """``to_zarr`` encoding that adds the crc32c checksum to every variable of ``ds``."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    encoding = {}
    for name, variable in ds.variables.items():
        compressors = [Crc32cCodec()] if variable.dtype == object else \
            [ZstdCodec(level=0), Crc32cCodec()]
        encoding[str(name)] = {"compressors": compressors}
    return encoding


def has_checksums(array) -> bool:
    """Whether a Zarr array was written with the crc32c codec."""
    codecs = getattr(array.metadata, "codecs", ())  # Zarr v2 arrays have none
    return any(type(codec).__name__ == "Crc32cCodec" for codec in codecs)


def _chunk_slices(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    grid = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    for starts in np.ndindex(*[len(g) for g in grid]):
        yield tuple(slice(g[i], min(g[i] + c, n))
                    for g, i, c, n in zip(grid, starts, chunks, shape, strict=True))


def _span(part: Any, size: int) -> tuple[int, int]:
    """``(first, stop)`` of one index: a slice, an integer or an integer array."""
    if isinstance(part, slice):
        start, stop, _ = part.indices(size)
        return start, stop
    values = np.asarray(part).ravel() % max(size, 1)
    return (int(values.min()), int(values.max()) + 1) if values.size else (0, 0)


def where(dims: Sequence[str], key: tuple[Any, ...], shape: Sequence[int]) -> str:
    """``trajectory 3, time 64..127`` for the dims a chunk does not cover whole."""
    parts = []
    for dim, part, size in zip(dims, key, shape, strict=True):
        start, stop = _span(part, size)
        if (start, stop) == (0, size) and dim not in ("trajectory", "time"):
            continue
        parts.append(f"{dim} {start}" if stop - start == 1 else f"{dim} {start}..{stop - 1}")
    return ", ".join(parts) or "the whole array"


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
                f"damaged ({_reason(error)}); run `assimilate verify {self.store}`") from None
        if self.finite and not np.isfinite(values).all():
            raise IntegrityError(
                f"store '{self.store}': variable '{self.name}' holds "
                f"{int((~np.isfinite(values)).sum())} non-finite values at {self._where(key)}; "
                f"run `assimilate verify {self.store}`")
        return values

    def _where(self, key: tuple[slice, ...]) -> str:
        full = tuple(key) + (slice(None),) * (self.ndim - len(key))
        return where(self.dims, full, self.shape)


def _reason(error: BaseException) -> str:
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


def missing_chunks(store: str | Path, name: str) -> list[tuple[slice, ...]]:
    """The chunks of ``store/name`` absent from disk, as index slices (no data is read)."""
    import zarr

    array = zarr.open_array(Path(store) / name, mode="r")
    encoding = array.metadata.chunk_key_encoding
    root = Path(store) / name
    # every file but the metadata: a 0-d array's one chunk is the file ``c`` itself
    present = {str(Path(folder, file).relative_to(root)).replace(os.sep, "/")
               for folder, _, files in os.walk(root) for file in files} - _METADATA
    missing = []
    for key in _chunk_slices(array.shape, array.chunks):
        coords = tuple(s.start // c for s, c in zip(key, array.chunks, strict=True))
        if encoding.encode_chunk_key(coords) not in present:
            missing.append(key)
    return missing


_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
_COMPLETION = "complete"  # the trajectory store's per-trajectory completion mask


@dataclasses.dataclass(frozen=True)
class _Absence:
    """Which absent chunks of one store are damage (Zarr would read them as fill values).

    Arrays written with checksums have every chunk written, and so does a trajectory
    store's field for its finished trajectories. Not damage: a chunk of an unfinished
    trajectory, of the completion mask (it reads as "unfinished": ``simulate`` redoes
    it), of an array of an older version (no checksums: it left out chunks equal to the
    fill value), and the trajectory index ``[0]`` of a one-trajectory store (versions
    before every chunk was written left it out, as it equals the fill value 0).
    """

    field: str = ""
    complete: np.ndarray | None = None

    @classmethod
    def of(cls, group) -> _Absence:
        if not str(group.attrs.get("schema", "")).startswith("assimilate.trajectories"):
            return cls()
        complete = _completion(group)
        arrays = sorted(((str(name), array) for name, array in group.arrays()),
                        key=lambda a: a[0])
        return cls(str(group.attrs.get("variable", "")) or _trajectory_field(arrays, complete),
                   complete)

    def damage(self, name: str, array, key: tuple[slice, ...]) -> bool:
        if name == _COMPLETION:
            return False
        if name == self.field:
            return self.complete is None or bool(self.complete[key[0]].all())
        if name == "trajectory" and self.complete is not None:
            expected = np.arange(key[0].start, key[0].stop)
            return not np.all(expected == array.metadata.fill_value)
        return has_checksums(array)


def lost_chunks(store: str | Path, group=None) -> dict[str, list[tuple[slice, ...]]]:
    """The absent chunks of each array of the Zarr store ``store`` that are damage."""
    import zarr

    group = group if group is not None else zarr.open_group(Path(store), mode="r")
    absence = _Absence.of(group)
    lost = {}
    for name, array in group.arrays():
        keys = [key for key in missing_chunks(store, str(name))
                if absence.damage(str(name), array, key)]
        if keys:
            lost[str(name)] = keys
    return lost


AXES = ("time", "x", "y", "lat", "lon", "latitude", "longitude")  # finite, strictly monotonic


def damaged_metadata(store: str | Path) -> dict[Path, str]:
    """The metadata files of ``store`` (its own and its arrays') that cannot be parsed,
    each with the reason in words (``is empty``, ``is not valid JSON ...``)."""
    root = Path(store)
    files = [root / name for name in sorted(_METADATA)] + \
        [path for name in sorted(_METADATA) for path in sorted(root.glob(f"*/{name}"))]
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
                                  f"({_reason(failure)}); run `assimilate verify {path}`")
    return StoreError(f"'{path}' cannot be opened as a Zarr store: {str(error)[:300]}")


def _lost_arrays(path: Path, names) -> list[str]:
    """Arrays the (consolidated) metadata lists whose own metadata file is gone."""
    if not (path / "zarr.json").is_file():  # Zarr v2: another layout
        return []
    return [str(name) for name in names if not (path / str(name) / "zarr.json").is_file()]


def check_metadata(path: Path, *, what: str = "store") -> None:
    """Refuse a missing path, a path that is no Zarr store, or a store whose metadata
    files do not parse, naming ``what`` and the file."""
    if not path.exists():
        raise StoreError(f"no store at '{path}'")
    if not path.is_dir() or not any((path / name).is_file() for name in _METADATA):
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
    (:class:`_Absence`: Zarr would read it as fill values), a damaged index coordinate, a
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
    for name in _lost_arrays(path, ds.variables):
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


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem (or, with ``damage=False``, one remark) about one array."""

    variable: str
    where: str
    what: str
    damage: bool = True

    def __str__(self) -> str:
        return f"{'damaged' if self.damage else 'note'}: '{self.variable}' at {self.where}: {self.what}"


@dataclasses.dataclass(frozen=True)
class Verification:
    """What :func:`verify` found in one store."""

    path: Path
    schema: str
    chunks: int
    findings: tuple[Finding, ...]

    @property
    def damaged(self) -> bool:
        return any(finding.damage for finding in self.findings)

    def __str__(self) -> str:
        lines = [str(finding) for finding in self.findings]
        problems = sum(finding.damage for finding in self.findings)
        verdict = (f"{problems} problem(s) found" if problems else "no damage found")
        lines.append(f"{self.path}: {self.schema or 'Zarr store'}, {self.chunks} chunks read; "
                     f"{verdict}")
        return "\n".join(lines)


def _field_dims(array) -> tuple[str, ...]:
    names = array.metadata.dimension_names
    return tuple(names) if names else tuple(f"dim_{i}" for i in range(array.ndim))


def verify(store: str | Path, *, progress: bool = False) -> Verification:
    """Read every chunk of every array of the Zarr store ``store`` and report damage.

    Damage: a metadata file that cannot be parsed; a chunk that is missing (see
    :class:`_Absence`), fails its checksum or cannot be decoded; non-finite values in a
    trajectory store's field. Non-finite values elsewhere (results may hold NaN by design)
    are counted as notes.
    """
    import zarr

    from pde.io.progress import tqdm

    path = Path(store)
    torn = damaged_metadata(path)
    findings = [Finding(file.parent.name if file.parent != path else "*",
                        f"its metadata file '{file.name}'", reason)
                for file, reason in torn.items()]
    if any(file.parent == path for file in torn):  # nothing more can be read
        return Verification(path, "", 0, tuple(findings))
    group = zarr.open_group(path, mode="r")
    schema = str(group.attrs.get("schema", ""))
    lost = _lost_arrays(path, [name for name, _ in group.arrays()])
    findings += [Finding(name, "its metadata file 'zarr.json'", "is missing") for name in lost]
    arrays = sorted(((str(name), array) for name, array in group.arrays()
                     if path / str(name) / "zarr.json" not in torn and name not in lost),
                    key=lambda a: a[0])
    absence = _Absence.of(group)
    field = str(group.attrs.get("variable", "")) or absence.field
    total = sum(int(np.prod(a.cdata_shape)) for _, a in arrays)
    with tqdm(total=total, unit="chunk", desc=path.name, disable=not progress) as bar:
        for name, array in arrays:
            findings += _verify_array(path, name, array, absence, trajectory_field=name == field,
                                      bar=bar)
    damaged = {finding.variable for finding in findings if finding.damage}
    findings += [f for f in _verify_axes(arrays) if f.variable not in damaged]
    if not any(has_checksums(a) for _, a in arrays):
        findings.append(Finding("*", "every array", "written without checksums (an older "
                                "version): only damage that breaks decoding shows", False))
    return Verification(path, schema, total, tuple(findings))


def _completion(group) -> np.ndarray | None:
    try:
        return np.asarray(group[_COMPLETION][:], dtype=bool)
    except Exception:  # noqa: BLE001 - reported as damage of 'complete' itself
        return None


def _trajectory_field(arrays, complete) -> str:
    if complete is None:
        return ""
    for name, array in arrays:
        if _field_dims(array)[:2] == ("trajectory", "time"):
            return name
    return ""


def _verify_axes(arrays) -> list[Finding]:
    findings = []
    for name, array in arrays:
        if name in AXES and _field_dims(array) == (name,):
            with contextlib.suppress(Exception):  # a damaged chunk is reported already
                problem = coordinate_problem(name, np.asarray(array[...]))
                if problem:
                    findings.append(Finding(name, "the whole array", problem))
    return findings


def _verify_array(path: Path, name: str, array, absence: _Absence, *,
                  trajectory_field: bool, bar) -> list[Finding]:
    dims = _field_dims(array)
    absent = {tuple((s.start, s.stop) for s in key) for key in missing_chunks(path, name)}
    complete = absence.complete if trajectory_field else None
    findings, non_finite = [], 0
    for key in _chunk_slices(array.shape, array.chunks):
        bar.update(1)
        place = where(dims, key, array.shape)
        finished = complete is None or bool(complete[key[0]].all())
        if tuple((s.start, s.stop) for s in key) in absent:
            if absence.damage(name, array, key):
                findings.append(Finding(name, place, "chunk missing"))
            continue
        try:
            values = np.asarray(array[key])
        except Exception as error:  # noqa: BLE001 - report and go on to the next chunk
            findings.append(Finding(name, place, _reason(error)))
            continue
        if np.issubdtype(values.dtype, np.floating):
            bad = int((~np.isfinite(values)).sum())
            if bad and trajectory_field and finished:
                findings.append(Finding(name, place, f"{bad} non-finite values"))
            non_finite += bad
    if non_finite and not trajectory_field:
        findings.append(Finding(name, "all chunks", f"{non_finite} NaN/inf values "
                                "(allowed in results)", False))
    return findings
