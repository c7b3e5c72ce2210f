"""Input validation and moments shared by the diagnostics (tails, quantiles).

Inputs are xarray.DataArrays reduced over ``dims`` (all dims when None); values are cast to
float64 and NaNs are skipped. Moments are Dask reductions, so Dask inputs stay lazy.

- ``single`` and ``pair``: one input (or a generated/reference pair) checked, as float64,
  with its reduction dims;
- ``probabilities``: quantile levels checked to lie in (0, 1);
- ``checked_count``: the non-NaN count, an error where a group has none;
- ``moments``: the mean and central moments.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import xarray as xr

__all__ = ["Dims", "as_float", "checked_count", "moments", "pair", "probabilities", "single"]

Dims = str | Iterable[Hashable] | None


def single(data: xr.DataArray, dims: Dims, name: str) -> tuple[xr.DataArray, tuple]:
    """``data`` as float64 with its reduction dims (all when ``dims`` is None)."""
    if not isinstance(data, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray, got {type(data).__name__}")
    if data.ndim == 0 or data.size == 0:
        raise ValueError(f"{name} must have at least one dim and one value, got {data.sizes}")
    if dims is None:
        return as_float(data), tuple(data.dims)
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    missing = [d for d in dims if d not in data.dims]
    if not dims or missing:
        raise ValueError(f"{name} lacks the reduction dims {missing or '(none given)'}; "
                         f"its dims are {data.dims}")
    return as_float(data), dims


def pair(generated: xr.DataArray, reference: xr.DataArray,
         dims: Dims) -> tuple[xr.DataArray, tuple, xr.DataArray, tuple]:
    """Both inputs checked; the dims they keep after the reduction must match."""
    gen, gen_dims = single(generated, dims, "generated")
    ref, ref_dims = single(reference, dims, "reference")
    kept_gen = {d: gen.sizes[d] for d in gen.dims if d not in gen_dims}
    kept_ref = {d: ref.sizes[d] for d in ref.dims if d not in ref_dims}
    if kept_gen != kept_ref:
        raise ValueError(f"the dims kept after reducing over {gen_dims} must match: generated "
                         f"keeps {kept_gen}, reference keeps {kept_ref}")
    return gen, gen_dims, ref, ref_dims


def probabilities(quantiles: float | Sequence[float]) -> tuple[float, ...]:
    """``quantiles`` as a tuple of floats, each strictly between 0 and 1."""
    values = tuple(float(q) for q in np.atleast_1d(quantiles))
    if not values or not all(0.0 < q < 1.0 for q in values):
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {quantiles!r}")
    return values


def as_float(x: xr.DataArray) -> xr.DataArray:
    # float64 moments: float32 sums lose the 1e-6 agreement with scipy on 1e5+ values.
    return x if x.dtype == np.float64 else x.astype(np.float64)


def checked_count(x: xr.DataArray, dims: tuple, name: str) -> xr.DataArray:
    """Non-NaN count; raises ValueError when (or, for Dask, once computed) a group has none."""

    def check(count: np.ndarray) -> np.ndarray:
        if np.any(count == 0):
            raise ValueError(f"{name} holds only NaN values along {dims} "
                             f"({int(np.sum(count == 0))} of {np.size(count)} groups)")
        return count

    count = x.count(dims)
    return xr.apply_ufunc(check, count, dask="parallelized", output_dtypes=[count.dtype])


def moments(x: xr.DataArray, dims: tuple, name: str,
             highest: int = 4) -> tuple[xr.DataArray, ...]:
    """Mean and central moments m2 ... m_highest (two-pass, biased, NaN skipped)."""
    count = checked_count(x, dims, name)
    mean = x.sum(dims) / count
    deviation = x - mean
    return (mean, *((deviation**j).sum(dims) / count for j in range(2, highest + 1)))
