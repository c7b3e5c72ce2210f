"""The chunks of the stores we write: checksummed, all present, and where each one sits.

Every array we write carries Zarr v3's ``crc32c`` codec after compression
(:func:`checksummed_encoding`), so a chunk whose bytes changed on disk fails to decode
instead of reading as other numbers, and every chunk is written, even one that equals the
fill value, so a missing chunk is always damage (Zarr would otherwise read it back
silently as NaN). :func:`missing_chunks` lists absent chunks from the store's directory
without reading data; :func:`lost_chunks` keeps those that are damage (:class:`Absence`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "METADATA_FILES",
    "Absence",
    "checksummed_encoding",
    "chunk_slices",
    "field_dims",
    "has_checksums",
    "lost_chunks",
    "missing_chunks",
    "where",
]


METADATA_FILES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
_COMPLETION = "complete"  # the trajectory store's per-trajectory completion mask


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


def chunk_slices(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    """The index slices of every chunk of an array of ``shape`` chunked by ``chunks``."""
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


def missing_chunks(store: str | Path, name: str) -> list[tuple[slice, ...]]:
    """The chunks of ``store/name`` absent from disk, as index slices (no data is read)."""
    import zarr

    array = zarr.open_array(Path(store) / name, mode="r")
    encoding = array.metadata.chunk_key_encoding
    root = Path(store) / name
    # every file but the metadata: a 0-d array's one chunk is the file ``c`` itself
    present = {str(Path(folder, file).relative_to(root)).replace(os.sep, "/")
               for folder, _, files in os.walk(root) for file in files} - METADATA_FILES
    missing = []
    for key in chunk_slices(array.shape, array.chunks):
        coords = tuple(s.start // c for s, c in zip(key, array.chunks, strict=True))
        if encoding.encode_chunk_key(coords) not in present:
            missing.append(key)
    return missing


@dataclasses.dataclass(frozen=True)
class Absence:
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
    def of(cls, group) -> Absence:
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
    absence = Absence.of(group)
    lost = {}
    for name, array in group.arrays():
        keys = [key for key in missing_chunks(store, str(name))
                if absence.damage(str(name), array, key)]
        if keys:
            lost[str(name)] = keys
    return lost


def _completion(group) -> np.ndarray | None:
    try:
        return np.asarray(group[_COMPLETION][:], dtype=bool)
    except Exception:  # noqa: BLE001 - reported as damage of 'complete' itself
        return None


def _trajectory_field(arrays, complete) -> str:
    if complete is None:
        return ""
    for name, array in arrays:
        if field_dims(array)[:2] == ("trajectory", "time"):
            return name
    return ""


def field_dims(array) -> tuple[str, ...]:
    """The dimension names of a Zarr array (``dim_0``, ... where it has none)."""
    names = array.metadata.dimension_names
    return tuple(names) if names else tuple(f"dim_{i}" for i in range(array.ndim))
