"""The single pass over a store: one task per chunk, partial results merged in a tree.

Each chunk is read once, by one task that turns it into a small partial result (counts,
shifted power sums, extrema, the quantile sketch, exceedance counts, its piece of the
maps and of the series); partials merge in groups of ``SPLIT_EVERY``. No chunk outlives
its task, so worker memory stays at a few chunks plus the merged maps and series however
large the store is. (Separate Dask reductions sharing the chunks would keep every chunk
alive until the last of them ran, and spill a larger-than-memory store to disk.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import threading
from collections.abc import Callable, Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import cached_cumsum

from assimilate.diagnostics import sketch
from assimilate.diagnostics.layout import Layout
from pde.descriptor import Descriptor

__all__ = ["SPLIT_EVERY", "PassSettings", "statistics"]

SPLIT_EVERY = 8
SCRATCH_LIMIT = 16 << 20  # bytes: larger chunk-sized temporaries are not kept between chunks
_SCRATCH = threading.local()


def _buffer(name: str, shape: tuple[int, ...], dtype: np.typing.DTypeLike) -> np.ndarray:
    """A per-thread buffer for a chunk-sized temporary, reused from chunk to chunk.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which stops glibc from
    reusing large freed blocks: every chunk-sized temporary then maps and zeroes fresh
    pages, and on 1 MiB chunks that cost more than the statistics themselves (7 ms per
    chunk in a plain process, 20 ms under the worker's setting). Buffers over
    ``SCRATCH_LIMIT`` are not kept, so a worker holds at most a few of those per thread.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > SCRATCH_LIMIT:
        return np.empty(shape, dtype)
    buffers = vars(_SCRATCH).setdefault("buffers", {})
    held = buffers.get((name, dtype))
    if held is None or held.size < size:
        held = buffers[name, dtype] = np.empty(size, dtype)
    return held[:size].reshape(shape)


@dataclasses.dataclass(frozen=True)
class PassSettings:
    """What the pass counts besides the moments, sketch, extrema, maps and series."""

    thresholds: tuple[float, ...] = ()
    """Thresholds whose exceedances are counted exactly (``exceedance_count``)."""
    map_threshold: float = np.nan
    """The threshold of the exceedance map."""
    shift: float = 0.0
    """Subtracted before the power sums (near the mean: accurate float64 sums)."""
    physics: Descriptor | None = None
    """A PDE's descriptor: its physical series and ``energy_spectrum``."""
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The simulator's attributes, which give the physical series their parameters."""
    atoms: tuple[float, ...] = ()
    """Values that recur exactly, counted exactly (``atom_count``)."""
    floor: float | None = None
    """Values below it are left out and counted (``below_floor_count``)."""


def _leaf(block: np.ndarray, offsets: tuple[int, ...], *, n_lead: int, n_space: int,
          has_time: bool, settings: PassSettings) -> dict:
    """Partial statistics of one chunk laid out as (realisations..., time?, space...).

    Values below ``settings.floor`` are left out like NaN and counted apart; ``atoms``
    (values that recur exactly, such as the zeros of dry days) get exact counts.
    """
    part, values, finite = _scalars(np.asarray(block), settings)
    lead, space = tuple(range(n_lead)), tuple(range(n_lead, n_lead + n_space))
    masked = values if finite is None else np.where(finite, values, -np.inf)
    mask = _buffer("mask", values.shape, bool)
    if n_space and n_lead:
        part["maps"] = (offsets[n_lead:], {
            "temporal_maximum": masked.max(axis=lead).astype(np.float64),
            "exceedance": np.count_nonzero(np.greater(values, settings.map_threshold, out=mask),
                                           axis=lead).astype(np.float64),
            "count": np.full(values.shape[n_lead:], float(np.prod(values.shape[:n_lead])))
            if finite is None else finite.sum(axis=lead).astype(np.float64)})
    series = {"spatial_maximum": masked.max(axis=space).astype(np.float64)} \
        if has_time and n_space else {}
    if settings.physics is not None:
        measured = settings.physics.measure(values, settings.parameters)
        series |= measured.series
        part["spectrum"] = (measured.spectrum_sum, int(np.prod(values.shape[:n_lead])))
    if series and has_time:
        part["series"] = [(offsets[:n_lead], series)]
    return part


def _scalars(values: np.ndarray, settings: PassSettings
             ) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """The chunk's count, power sums, extrema, sketch and exact counts; the values (NaN
    below the floor) and where they are finite (None: everywhere)."""
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    values = np.ascontiguousarray(values)
    below = 0
    floor = settings.floor
    if floor is not None:
        low = values < floor
        below = int(np.count_nonzero(low))
        if below:
            values = np.where(low, values.dtype.type(np.nan), values)
    # NaN propagates through min and max: both finite means every value is
    minimum, maximum = (values.min(), values.max()) if values.size else (np.inf, -np.inf)
    all_finite = bool(np.isfinite(minimum) and np.isfinite(maximum))
    finite = None if all_finite else np.isfinite(values)
    if not all_finite:
        minimum = np.nanmin(values) if finite.any() else np.inf
        maximum = np.nanmax(values) if finite.any() else -np.inf
    # products in the data's precision (float32 stores stay float32), sums in float64
    d = np.subtract(values, values.dtype.type(settings.shift),
                    out=_buffer("d", values.shape, values.dtype))
    # The sketch bins values relative to their size (2^-7): binned raw, a temperature near
    # 280 K would fall in 2 K bins; shifted near the median, its anomalies keep 2^-7 of
    # their own size.
    counts = sketch.key_counts(d)  # NaN stays NaN: left out
    if finite is not None:
        d[~finite] = 0
    d2 = np.multiply(d, d, out=_buffer("d2", values.shape, values.dtype))
    scratch = _buffer("product", values.shape, values.dtype)
    mask = _buffer("mask", values.shape, bool)
    part = {
        "count": int(values.size if all_finite else finite.sum()),
        "power": np.array([d.sum(dtype=np.float64), d2.sum(dtype=np.float64),
                           np.multiply(d2, d, out=scratch).sum(dtype=np.float64),
                           np.multiply(d2, d2, out=scratch).sum(dtype=np.float64)]),
        "minimum": float(minimum),
        "maximum": float(maximum),
        "sketch": counts,  # of values - shift; ordered like the values once, at the end
        "exceedance": np.array([np.count_nonzero(np.greater(values, t, out=mask))
                                for t in settings.thresholds], dtype=np.int64),
        "atoms": np.array([np.count_nonzero(np.equal(values, a, out=mask))
                           for a in settings.atoms], dtype=np.int64),
        "below_floor": below,
    }
    return part, values, None if all_finite else finite


def _merge(parts: list[dict], *, map_shape: tuple[int, ...]) -> dict:
    """Sum, min and max the scalars; place the pieces of maps and series in full arrays."""
    out: dict = {"count": 0, "power": 0.0, "minimum": np.inf, "maximum": -np.inf,
                 "exceedance": 0, "atoms": 0, "below_floor": 0}
    maps: dict[str, np.ndarray] = {}
    series: list = []  # pieces, placed only at the end: merges stay as small as their subtree
    spectrum = None
    for part in parts:
        out["count"] += part["count"]
        out["power"] = out["power"] + part["power"]
        out["minimum"] = min(out["minimum"], part["minimum"])
        out["maximum"] = max(out["maximum"], part["maximum"])
        out["exceedance"] = out["exceedance"] + part["exceedance"]
        out["atoms"] = out["atoms"] + part["atoms"]
        out["below_floor"] += part["below_floor"]
        series += part.get("series", [])
        if "maps" in part:
            offsets, pieces = part["maps"]
            for name, piece in pieces.items():
                region = (tuple(slice(None) for _ in map_shape) if offsets is None  # merged
                          else tuple(slice(o, o + n) for o, n in zip(offsets, piece.shape,
                                                                     strict=True)))
                is_max = name == "temporal_maximum"
                if name not in maps:
                    maps[name] = np.full(map_shape, -np.inf if is_max else 0.0)
                combine = np.fmax if is_max else np.add
                maps[name][region] = combine(maps[name][region], piece)
        if "spectrum" in part:
            total, n = part["spectrum"]
            spectrum = (total, n) if spectrum is None else (spectrum[0] + total, spectrum[1] + n)
    out["sketch"] = parts[0]["sketch"].copy()  # one new array per merge, added in place
    for part in parts[1:]:
        out["sketch"] += part["sketch"]
    if maps:
        out["maps"] = (None, maps)
    if series:
        out["series"] = series
    if spectrum is not None:
        out["spectrum"] = spectrum
    return out


def statistics(field: xr.DataArray, lay: Layout,
               settings: PassSettings = PassSettings()) -> xr.Dataset:
    """Everything one pass over ``field`` yields, as a lazy (Dask-backed) Dataset.

    ``settings.thresholds`` get exact exceedance counts, ``map_threshold`` the exceedance
    map; ``shift`` (near the mean) keeps the float64 power sums accurate; ``atoms`` get
    exact counts (``atom_count``); values below ``floor`` are left out and counted
    (``below_floor_count``). ``physics`` (a PDE's descriptor) adds its physical series and
    ``energy_spectrum`` when the layout's space holds its spatial dims; ``parameters`` (the
    simulator's attributes) give the series theirs.
    """
    time, space, physics = lay.time, lay.space, settings.physics
    lead = lay.realisation + ((time,) if time else ())
    if physics is not None and set(space) != set(physics.space):
        physics = None
    if physics is not None:
        space = physics.space
    settings = dataclasses.replace(
        settings, thresholds=tuple(float(t) for t in settings.thresholds),
        map_threshold=float(settings.map_threshold), shift=float(settings.shift),
        physics=physics, atoms=tuple(float(a) for a in settings.atoms),
        parameters=physics.parameters(settings.parameters) if physics is not None else {},
        floor=None if settings.floor is None else float(settings.floor))
    ordered = field.transpose(*lead, *space)
    data = (ordered if isinstance(ordered.data, da.Array) else ordered.chunk()).data
    if physics and len(data.chunks) and any(len(c) > 1 for c in data.chunks[len(lead):]):
        data = data.rechunk({axis: -1 for axis in range(len(lead), data.ndim)})
    map_shape = tuple(ordered.sizes[d] for d in space)
    total = _reduction(data, functools.partial(_leaf, n_lead=len(lead), n_space=len(space),
                                               has_time=time is not None, settings=settings),
                       functools.partial(_merge, map_shape=map_shape))
    out = _lazy_dataset(total, settings, lead, tuple(ordered.sizes[d] for d in lead),
                        space, map_shape, time is not None)
    coords = {name: ordered[name] for name in (*lead, *space) if name in ordered.coords}
    return out.assign_coords({k: v for k, v in coords.items() if set(v.dims) <= set(out.dims)})


def _lazy_dataset(total: Delayed, settings: PassSettings, lead: tuple, lead_shape: tuple,
                  space: tuple, map_shape: tuple, has_time: bool) -> xr.Dataset:
    """The merged partial result ``total`` as a Dataset of Dask arrays."""
    def lazy(getter, shape, dtype=np.float64):
        return da.from_delayed(dask.delayed(getter)(total), shape=shape, dtype=dtype)

    n_thresholds, n_atoms, physics = len(settings.thresholds), len(settings.atoms), \
        settings.physics
    out = xr.Dataset({
        "count": ((), lazy(operator.itemgetter("count"), (), np.int64)),
        **{f"power_sum_{k}": ((), lazy(lambda t, k=k: t["power"][k - 1], ()))
           for k in range(1, 5)},
        "minimum": ((), lazy(operator.itemgetter("minimum"), ())),
        "maximum": ((), lazy(operator.itemgetter("maximum"), ())),
        "sketch": ("sketch_bin", lazy(lambda t: sketch.in_value_order(t["sketch"]),
                                      (sketch.N_BINS,), np.int64)),
        "exceedance_count": ("threshold", lazy(lambda t: np.broadcast_to(
            t["exceedance"], (n_thresholds,)), (n_thresholds,), np.int64)),
        "atom_count": ("atom", lazy(lambda t: np.broadcast_to(t["atoms"], (n_atoms,)),
                                    (n_atoms,), np.int64)),
        "below_floor_count": ((), lazy(operator.itemgetter("below_floor"), (), np.int64)),
    })
    if space and lead:
        out["temporal_maximum"] = (space, lazy(lambda t: _finite(t["maps"][1]["temporal_maximum"]),
                                               map_shape))
        out["exceedance_map"] = (space, lazy(_exceedance_fraction, map_shape))
    if has_time and space:
        names = ["spatial_maximum",
                 *(physics.available_series(settings.parameters) if physics else ())]
        for name in names:
            out[name] = (lead, lazy(lambda t, name=name: _series(t["series"], name, lead_shape),
                                    lead_shape))
    if physics is not None:
        out["energy_spectrum"] = ("wavenumber", lazy(lambda t: t["spectrum"][0] / t["spectrum"][1],
                                                     (physics.n_wavenumbers(map_shape),)))
    return out


def _reduction(data: da.Array, leaf: Callable, merge: Callable) -> Delayed:
    """``leaf(chunk, offsets)`` for every chunk, merged ``SPLIT_EVERY`` at a time, as one
    hand-built task graph: building it with ``dask.delayed`` calls merged a graph per call
    and took seconds per thousand chunks on the client before any worker started."""
    token = tokenize(data.name, leaf, merge, SPLIT_EVERY)
    # the reads fused as for ``to_delayed``, then one leaf task per chunk
    graph = dict(data.__dask_optimize__(data.__dask_graph__(), data.__dask_keys__()))
    starts = [cached_cumsum(c, initial_zero=True) for c in data.chunks]
    level = []
    for i, index in enumerate(np.ndindex(data.numblocks)):
        offsets = tuple(int(start[j]) for start, j in zip(starts, index, strict=True))
        graph[f"leaf-{token}", i] = (leaf, (data.name, *index), offsets)
        level.append((f"leaf-{token}", i))
    depth = 0
    while depth == 0 or len(level) > 1:
        depth += 1
        groups = [level[i:i + SPLIT_EVERY] for i in range(0, len(level), SPLIT_EVERY)]
        level = [(f"merge-{token}", depth, j) for j in range(len(groups))]
        graph.update({key: (merge, group) for key, group in zip(level, groups, strict=True)})
    name = f"diagnostics-{token}"
    return Delayed(level[0], HighLevelGraph.from_collections(name, graph, dependencies=()),
                   layer=name)


def _series(pieces: list, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One series assembled from its pieces (their maxima where space was chunked)."""
    out = np.full(shape, -np.inf)
    for offsets, piece in pieces:
        values = piece[name]
        region = tuple(slice(o, o + n) for o, n in zip(offsets, values.shape, strict=True))
        out[region] = np.fmax(out[region], values)
    return _finite(out)


def _exceedance_fraction(total: dict) -> np.ndarray:
    maps = total["maps"][1]
    with np.errstate(invalid="ignore", divide="ignore"):  # no finite value: NaN
        return maps["exceedance"] / maps["count"]


def _finite(values: np.ndarray) -> np.ndarray:
    """-inf marks "no finite value reached this cell"; report it as NaN."""
    return np.where(np.isneginf(values), np.nan, values)
