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

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from pde.errors import IntegrityError

__all__ = [
    "Finding",
    "IntegrityError",
    "Verification",
    "checked_dataset",
    "checked_field",
    "checksummed_encoding",
    "has_checksums",
    "missing_chunks",
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
    present = {str(p.relative_to(root)).replace(os.sep, "/")
               for p in (root / "c").rglob("*") if p.is_file()} if (root / "c").is_dir() else set()
    missing = []
    for key in _chunk_slices(array.shape, array.chunks):
        coords = tuple(s.start // c for s, c in zip(key, array.chunks, strict=True))
        if encoding.encode_chunk_key(coords) not in present:
            missing.append(key)
    return missing


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

    Damage: a chunk that is missing (in arrays written by this version, which writes every
    chunk, and in the finished trajectories of a trajectory store), fails its checksum or
    cannot be decoded; non-finite values in a trajectory store's field. Non-finite values
    elsewhere (results may hold NaN by design) are counted as notes.
    """
    import zarr

    from pde.progress import tqdm

    path = Path(store)
    group = zarr.open_group(path, mode="r")
    schema = str(group.attrs.get("schema", ""))
    arrays = sorted(((str(name), array) for name, array in group.arrays()), key=lambda a: a[0])
    complete = _completion(group) if schema.startswith("assimilate.trajectories") else None
    field = str(group.attrs.get("variable", "")) or _trajectory_field(arrays, complete)
    findings: list[Finding] = []
    total = sum(int(np.prod(a.cdata_shape)) for _, a in arrays)
    with tqdm(total=total, unit="chunk", desc=path.name, disable=not progress) as bar:
        for name, array in arrays:
            findings += _verify_array(path, name, array, complete if name == field else None,
                                      trajectory_field=name == field, bar=bar)
    if not any(has_checksums(a) for _, a in arrays):
        findings.append(Finding("*", "every array", "written without checksums (an older "
                                "version): only damage that breaks decoding shows", False))
    return Verification(path, schema, total, tuple(findings))


_COMPLETION = "complete"  # the trajectory store's per-trajectory completion mask


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


def _verify_array(path: Path, name: str, array, complete: np.ndarray | None, *,
                  trajectory_field: bool, bar) -> list[Finding]:
    dims = _field_dims(array)
    absent = {tuple((s.start, s.stop) for s in key) for key in missing_chunks(path, name)}
    # a missing chunk of the completion mask reads as "unfinished": simulate redoes it
    every_chunk = (has_checksums(array) or trajectory_field) and name != _COMPLETION
    findings, non_finite = [], 0
    for key in _chunk_slices(array.shape, array.chunks):
        bar.update(1)
        place = where(dims, key, array.shape)
        finished = complete is None or bool(complete[key[0]].all())
        if tuple((s.start, s.stop) for s in key) in absent:
            if every_chunk and finished:
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
