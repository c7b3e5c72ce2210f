"""A one-pass, mergeable histogram with a fixed relative resolution (a quantile sketch).

Each value is binned by the top 16 bits of its float32 representation (sign, exponent
and 7 mantissa bits), so every bin spans at most 2^-7 (0.8 %) of the values in it and
bins are ordered like the values. No range is needed in advance, chunk histograms merge
by addition, and one pass over a store gives quantiles, densities and tail comparisons
with relative error below 2^-7: the idea of DDSketch ("DDSketch: a fast and fully-
mergeable quantile sketch with relative-error guarantees", arXiv:1908.10693), realised
through the floating-point format itself.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np

__all__ = ["DISPLAY_BINS", "N_BINS", "bin_edges", "chunk_counts", "display_histogram",
           "in_value_order", "key_counts", "sketch_counts", "sketch_quantiles", "value_bin",
           "without_atoms"]

N_BINS = 1 << 16
DISPLAY_BINS = 120
_HALF = 1 << 15
# keys: sign bit, 8 exponent bits, 7 mantissa bits; magnitudes from 0x7F80 up are inf/NaN
_NON_FINITE = np.r_[np.arange(0x7F80, _HALF), np.arange(_HALF + 0x7F80, N_BINS)]
# bin b (ascending values) holds key _VALUE_ORDER[b]: negatives by falling magnitude first
_VALUE_ORDER = np.r_[np.arange(N_BINS - 1, _HALF - 1, -1), np.arange(_HALF)]


def chunk_counts(block: np.ndarray) -> np.ndarray:
    """Counts of the finite values of ``block`` in the ``N_BINS`` ordered bins."""
    return in_value_order(key_counts(block))


def key_counts(block: np.ndarray) -> np.ndarray:
    """Counts of the finite values of ``block`` by key (the top 16 bits of their float32
    representation), in key order: they merge by addition like ordered counts, and
    ``in_value_order`` orders them once at the end.

    The keys are read through a 16-bit view of the float32 data and counted in place
    (``np.add.at``): no temporary the size of the block, which matters in Dask workers,
    where every large temporary maps fresh pages.
    """
    values = np.asarray(block)
    if values.dtype != np.float32:
        finite32 = np.finfo(np.float32).max  # beyond float32's range: the outermost bins
        clipped = np.clip(values, -finite32, finite32)
        values = np.where(np.isinf(values), np.nan, clipped).astype(np.float32)
    halves = np.ascontiguousarray(values).reshape(-1).view(np.uint16)
    high = halves[1::2] if sys.byteorder == "little" else halves[0::2]
    counts = np.zeros(N_BINS, dtype=np.int64)
    np.add.at(counts, high, 1)
    counts[_NON_FINITE] = 0
    return counts


def in_value_order(key_counts: np.ndarray) -> np.ndarray:
    """Counts by key (``key_counts``) rearranged into bins ordered like their values."""
    return np.asarray(key_counts)[_VALUE_ORDER]


def sketch_counts(data: da.Array | np.ndarray) -> da.Array | np.ndarray:
    """Bin counts of all finite values of ``data``: lazy for Dask input, chunk by chunk."""
    if not isinstance(data, da.Array):
        return chunk_counts(data)
    per_block = data.map_blocks(
        lambda block: key_counts(block).reshape((1,) * block.ndim + (N_BINS,)),
        chunks=tuple((1,) * len(c) for c in data.chunks) + ((N_BINS,),),
        new_axis=data.ndim, dtype=np.int64)
    return per_block.sum(axis=tuple(range(data.ndim))).map_blocks(in_value_order,
                                                                  dtype=np.int64)


def bin_edges() -> tuple[np.ndarray, np.ndarray]:
    """``(left, right)`` float64 edges of every bin (the outermost bins reach ±inf)."""
    magnitude_key = np.arange(_HALF, dtype=np.uint32)
    with np.errstate(invalid="ignore"):  # keys past infinity encode NaNs: never filled
        low = (magnitude_key << 16).view(np.float32).astype(np.float64)
        high = ((magnitude_key + 1) << 16).view(np.float32).astype(np.float64)
    low, high = np.where(np.isnan(low), np.inf, low), np.where(np.isnan(high), np.inf, high)
    high[-1] = np.inf  # the key after the last would wrap into the sign bit
    # bins 0 .. HALF-1 hold negative values, largest magnitude first
    left = np.concatenate([-high[::-1], low])
    right = np.concatenate([-low[::-1], high])
    return left, right


def value_bin(value: float) -> int:
    """The bin (in value order) that holds ``value``."""
    key = int(np.array([value], dtype=np.float32).view(np.uint32)[0] >> 16)
    return _HALF + key if key < _HALF else N_BINS - 1 - key


def _normal(atoms: Mapping[float, int]) -> dict[float, int]:
    """Atoms with -0.0 read as 0.0 (``== 0`` counts both, so they are one atom)."""
    out: dict[float, int] = {}
    for value, n in atoms.items():
        key = float(value) + 0.0  # -0.0 + 0.0 is +0.0
        out[key] = out.get(key, 0) + int(n)
    return out


def _zero_merged(counts: np.ndarray, atoms: Mapping[float, int]) -> np.ndarray:
    """``counts`` with -0.0's bin moved into +0.0's when 0 is an atom (``== 0`` counts both)."""
    if 0.0 in atoms and counts[_HALF - 1]:
        counts = counts.copy()
        counts[_HALF] += counts[_HALF - 1]
        counts[_HALF - 1] = 0
    return counts


def without_atoms(counts: np.ndarray, atoms: Mapping[float, int]) -> np.ndarray:
    """Bin counts of the values that are not atoms (``atoms``: value -> exact count)."""
    atoms = _normal(atoms)
    out = _zero_merged(np.asarray(counts, dtype=np.int64), atoms).copy()
    for value, n in atoms.items():
        b = value_bin(value)
        out[b] = max(out[b] - int(n), 0)
    return out


def _pieces(counts: np.ndarray, left: np.ndarray, right: np.ndarray,
            atoms: Mapping[float, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins with each atom split out as a piece of zero width holding its exact count.

    The other values of an atom's bin are spread over the bin as before, shared between
    the segments on either side of the atom in proportion to their widths.
    """
    atoms = _normal(atoms)
    counts = _zero_merged(np.asarray(counts, dtype=np.float64), atoms)
    by_bin: dict[int, list[tuple[float, int]]] = {}
    for value, n in atoms.items():
        by_bin.setdefault(value_bin(value), []).append((float(value), int(n)))
    for b in sorted(by_bin, reverse=True):  # later bins first: earlier indices stay valid
        inside = sorted(by_bin[b])
        values = [v for v, _ in inside]
        other = max(counts[b] - sum(n for _, n in inside), 0.0)
        edges = np.array([left[b], *values, right[b]])
        width = edges[-1] - edges[0]
        share = np.diff(edges) / width if width > 0 else np.r_[1.0, np.zeros(len(values))]
        lo, hi, n = [edges[0]], [values[0]], [other * share[0]]
        for i, (value, count) in enumerate(inside):
            lo += [value, value]
            hi += [value, edges[i + 2]]
            n += [count, other * share[i + 1]]
        left = np.concatenate([left[:b], lo, left[b + 1:]])
        right = np.concatenate([right[:b], hi, right[b + 1:]])
        counts = np.concatenate([counts[:b], n, counts[b + 1:]])
    return counts, left, right


def sketch_quantiles(counts: np.ndarray, probabilities: Sequence[float],
                     minimum: float, maximum: float,
                     atoms: Mapping[float, int] | None = None) -> np.ndarray:
    """Quantiles by numpy's linear definition, each within one bin's width of the exact one.

    The k-th smallest value is placed inside its bin as if the bin's values were evenly
    spread across it (the exact ``minimum`` and ``maximum`` clip the outer bins and are
    the first and last order statistics); a quantile interpolates linearly between the two
    order statistics around its rank, as ``numpy.quantile`` does. ``atoms`` (value ->
    exact count, e.g. the dry days of a precipitation record at 0) are exact: an order
    statistic among an atom's values is the atom itself.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.full(len(probabilities), np.nan)
    left, right = bin_edges()
    left, right = np.clip(left, minimum, maximum), np.clip(right, minimum, maximum)
    counts, left, right = _pieces(counts, left, right, atoms or {})
    cumulative = np.cumsum(counts)

    def order_statistic(k: int) -> float:
        if k <= 0:
            return minimum
        if k >= total - 1:
            return maximum
        b = int(np.searchsorted(cumulative, k, side="right"))
        position = min((k - (cumulative[b] - counts[b]) + 0.5) / counts[b], 1.0)
        return left[b] + position * (right[b] - left[b])

    out = []
    for p in probabilities:
        rank = p * (total - 1)
        k = int(np.floor(rank))
        low = order_statistic(k)
        out.append(low + (rank - k) * (order_statistic(k + 1) - low) if rank > k else low)
    return np.asarray(out)


def display_histogram(counts: np.ndarray, lo: float, hi: float,
                      edges: np.ndarray | None = None, total: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Density on ``DISPLAY_BINS`` even bins over [lo, hi] (or on ``edges``) from sketch
    counts ``(N_BINS,)``, normalised by ``total`` values (default: the counts' sum; more
    when atoms were taken out); returns the density and the edges."""
    if edges is None:
        edges = np.linspace(lo, hi, DISPLAY_BINS + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    left, right = bin_edges()
    filled = counts > 0
    centre = np.clip(0.5 * (np.maximum(left, lo) + np.minimum(right, hi)), lo, hi)[filled]
    histogram, _ = np.histogram(np.clip(centre, edges[0], edges[-1]), bins=edges,
                                weights=counts[filled])
    total = counts.sum() if total is None else total
    return histogram / max(total, 1) / np.diff(edges), edges
