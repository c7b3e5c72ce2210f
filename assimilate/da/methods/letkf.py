"""Local ensemble transform Kalman filter (LETKF) with R-localisation.

Hunt, Kostelich & Szunyogh (2007), "Efficient data assimilation for spatiotemporal chaos:
a local ensemble transform Kalman filter", arXiv physics/0511236, section 2.3 and step 4
of section 2.4. Each grid point g runs its own ETKF (``etkf.transform_weights``) in which
observation j has its inverse error variance tapered by

    ρ_j(g) = gaspari_cohn(periodic_distance(g, j) / radius),

that is S and d get their columns scaled by √ρ. ``radius`` is Gaspari & Cohn's half-width
c: the taper is 1 at distance 0, about 0.21 at ``radius`` and exactly 0 from ``2 radius``
on (the support), where an observation weighs nothing. ``radius = inf`` gives ρ ≡ 1 and the
global ETKF. Grid points are vmapped; ``batch_size`` processes them in chunks of that many
(``jax.lax.map``) to bound the ``(chunk, N, N)`` memory.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike
from pydantic import BeforeValidator, Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Problem, Tuning
from assimilate.da.methods.ensemble import (
    anomalies,
    check_shapes,
    gaspari_cohn,
    inflate,
    periodic_distance,
    standardised_observations,
)
from assimilate.da.methods.etkf import transform_weights
from assimilate.da.methods.filtering import EnsembleFilter

__all__ = ["LetkfState", "LocalEnsembleTransformKalmanFilter", "Localisation", "Radius",
           "letkf_analysis", "radius_length"]


@dataclasses.dataclass(frozen=True)
class Localisation:
    """Where the state entries and the observations are, how far an observation reaches,
    and how the local problems are solved.

    grid_locations ``(n, d)`` of the state entries, observation_locations ``(m, d)``,
    lengths ``(d,)`` of the periodic domain (``inf`` for an unwrapped axis), radius: the
    Gaspari–Cohn half-width (support ``2 radius``); these four are traced. Static (part of
    the compiled function): batch_size, a chunk of grid points, None for all at once;
    nearest, keep only this many nearest observations per grid point (None: all): exact
    when it covers every observation within ``2 radius`` of any point, and cheaper when it
    is below N (the local Gram matrix is then ``(nearest, nearest)``); stride, solve the
    local problems only every ``stride`` points along each dim of the periodic
    ``grid_shape`` (C order of the flattened state) and interpolate the weight matrices
    linearly in between, the weight interpolation of Yang, Kalnay, Hunt & Bowler (2009),
    "Weight interpolation for efficient data assimilation with the Local Ensemble
    Transform Kalman Filter" (QJRMS 135): ``stride ** d`` times fewer eigendecompositions
    for weights that vary slowly on the scale of ``radius``.
    """

    grid_locations: ArrayLike
    observation_locations: ArrayLike
    lengths: ArrayLike
    radius: ArrayLike
    batch_size: int | None = None
    nearest: int | None = None
    stride: int = 1
    grid_shape: tuple[int, ...] | None = None


jax.tree_util.register_dataclass(
    Localisation, data_fields=["grid_locations", "observation_locations", "lengths", "radius"],
    meta_fields=["batch_size", "nearest", "stride", "grid_shape"])


@jax.jit
def letkf_analysis(ensemble: ArrayLike, observed: ArrayLike, y: ArrayLike,
                   error_std: ArrayLike, inflation: ArrayLike = 1.0, *,
                   localisation: Localisation) -> Array:
    """LETKF analysis ensemble ``(N, n)``.

    ensemble ``(N, n)``, observed ``(N, m)``, y ``(m,)`` (non-finite entries are missing),
    error_std ``(m,)`` and inflation as in ``etkf_analysis``; ``localisation``: the
    geometry and the solve (:class:`Localisation`).
    """
    grid_locations, observation_locations = (localisation.grid_locations,
                                             localisation.observation_locations)
    lengths, radius, nearest = localisation.lengths, localisation.radius, localisation.nearest
    stride, batch_size = localisation.stride, localisation.batch_size
    check_shapes("letkf_analysis", ensemble, observed, y, error_std)
    _check_locations(jnp.shape(ensemble)[1], jnp.shape(y)[0], jnp.shape(grid_locations),
                     jnp.shape(observation_locations), jnp.shape(lengths))
    mean, deviations = anomalies(inflate(jnp.asarray(ensemble), inflation))
    S, innovations = standardised_observations(
        inflate(jnp.asarray(observed), inflation), jnp.asarray(y), jnp.asarray(error_std))
    innovation = innovations.mean(axis=0)

    def local_weights(location: Array) -> Array:
        """``(N, N)``: analysis member i at this point is mean + Σ_j M_ij deviation_j."""
        distance = periodic_distance(location, observation_locations, lengths)  # (m,)
        local_S, local_innovation = S, innovation
        if nearest is not None and nearest < distance.shape[0]:
            distance, kept = jax.lax.top_k(-distance, nearest)
            distance, local_S, local_innovation = -distance, S[:, kept], innovation[kept]
        taper = jnp.sqrt(gaspari_cohn(distance / radius)).astype(S.dtype)
        mean_weights, transform = transform_weights(local_S * taper,
                                                     local_innovation * taper)
        return mean_weights[None, :] + transform

    locations = jnp.asarray(grid_locations)
    if stride > 1:
        coarse = _coarse_points(localisation.grid_shape, stride, locations.shape[0])
        locations = locations[coarse.ravel()]
    if batch_size is None:
        weights = jax.vmap(local_weights)(locations)
    else:
        weights = jax.lax.map(local_weights, locations, batch_size=batch_size)
    if stride > 1:
        weights = _interpolate(weights.reshape(*coarse.shape, *weights.shape[1:]), stride)
        weights = weights.reshape(-1, *weights.shape[-2:])
    return mean + jnp.einsum("pij,jp->ip", weights, deviations)


def _coarse_points(grid_shape: tuple[int, ...] | None, stride: int, n: int) -> np.ndarray:
    """Flat indices of every ``stride``-th point along each dim, shaped like that sub-grid."""
    if grid_shape is None or int(np.prod(grid_shape)) != n or any(
            size % stride for size in grid_shape):
        raise ValueError(f"letkf_analysis: stride={stride} needs grid_shape (static) whose "
                         f"product is the state size {n} and whose sizes it divides; got "
                         f"{grid_shape}")
    coarse = np.indices(tuple(size // stride for size in grid_shape)) * stride
    return np.ravel_multi_index(tuple(coarse), grid_shape)


def _interpolate(weights: Array, stride: int) -> Array:
    """Weights ``(*coarse, N, N)`` on every ``stride``-th point of a periodic grid,
    interpolated linearly along each dim to ``(*fine, N, N)``."""
    for axis in range(weights.ndim - 2):
        size = weights.shape[axis]
        fine = np.arange(size * stride)
        below, fraction = fine // stride, (fine % stride) / stride
        shape = [1] * weights.ndim
        shape[axis] = -1
        t = jnp.asarray(fraction, weights.dtype).reshape(shape)
        weights = (1 - t) * jnp.take(weights, below, axis=axis) + t * jnp.take(
            weights, (below + 1) % size, axis=axis)
    return weights


def _check_locations(n: int, m: int, grid: tuple, observations: tuple, lengths: tuple) -> None:
    if len(grid) != 2 or grid[0] != n or observations != (m, grid[1]) or lengths != grid[1:]:
        raise ValueError(f"letkf_analysis: grid_locations {grid}, observation_locations "
                         f"{observations}, lengths {lengths}; expected (n, d) = ({n}, d), "
                         f"(m, d) = ({m}, d) and (d,)")


def _radius(value: object) -> float | str:
    """A length (a number), or grid spacings as ``"<number>dx"``; positive either way."""
    text = str(value).strip()
    spacings = text.endswith("dx")
    try:
        number = float(text[:-2] if spacings else text)
    except ValueError:
        raise ValueError(f"{value!r} is neither a length nor grid spacings such as "
                         "'8dx'") from None
    if not number > 0:
        raise ValueError(f"{value!r} must be greater than 0")
    return f"{number:g}dx" if spacings else number


Radius = Annotated[float | str, BeforeValidator(_radius)]
"""A localisation radius: a length, or grid spacings written ``"8dx"``."""


def radius_length(radius: float | str, spacing: float) -> float:
    """``radius`` in length units on a grid of ``spacing`` along its last dim (``"8dx"``:
    8 spacings)."""
    if isinstance(radius, str):
        return float(radius[:-2]) * spacing
    return float(radius)


@jax.jit
def _letkf_each(ensembles: Array, observed: Array, y: Array, error_std: Array,
                inflation: ArrayLike, localisation: Localisation) -> Array:
    """:func:`letkf_analysis` of ensembles ``(T, N, n)`` with ``observed (T, N, m)`` and
    ``y (T, m)``, the trajectories sharing the operator, in one call."""
    def one(ensemble: Array, heights: Array, values: Array) -> Array:
        return letkf_analysis(ensemble, heights, values, error_std, inflation,
                              localisation=localisation)

    return jax.vmap(one)(ensembles, observed, y)


@dataclasses.dataclass(frozen=True)
class LetkfState:
    """What an LETKF run computes once: the grid positions ``(n_grid, d)``, the periodic
    lengths ``(d,)`` (float32, the ensembles' dtype), the radius in length units and the
    grid's shape."""

    grid_locations: Array
    lengths: np.ndarray
    radius: float
    grid_shape: tuple[int, ...]


@dataclass(frozen=True)
class LocalEnsembleTransformKalmanFilter(EnsembleFilter):
    """LETKF; ``radius``: the Gaspari–Cohn half-width in length units or grid spacings
    (``"8dx"``; the taper reaches zero at ``2 radius``); ``inflate`` and ``rotate`` as in
    :mod:`assimilate.da.methods.filtering`; ``stride``: local problems solved every ``stride``
    points along each dim, weights interpolated in between (1: at every point)."""

    name: ClassVar[str] = "letkf"
    tuning: ClassVar[Tuning] = Tuning("radius", (4.0, 8.0, 16.0, 32.0), "r",
                                      in_grid_spacings=True,
                                      joint=Tuning("inflation", (1.0, 1.05, 1.1, 1.2), "i"))
    radius: Radius = 3.0
    stride: int = Field(1, ge=1, le=64)

    def prepare(self, problem: Problem) -> LetkfState:
        grid = problem.grid
        if any(size % self.stride for size in grid.space):
            raise ValueError(f"letkf: stride={self.stride} must divide the grid "
                             f"{grid.space} along every dim")
        return LetkfState(jnp.asarray(grid.locations(), dtype=np.float32),
                          np.asarray(grid.lengths, dtype=np.float32),
                          radius_length(self.radius, grid.spacing), grid.space)

    def _analysis(self, ensembles, observed, y, error_std, inflation, operator, problem,
                  state):
        if operator.locations is None:
            raise ValueError("letkf needs observation locations; this operator has none")
        return _letkf_each(ensembles, observed, y, error_std, inflation, Localisation(
            state.grid_locations, np.asarray(operator.locations, dtype=ensembles.dtype),
            state.lengths, state.radius, stride=self.stride,
            grid_shape=state.grid_shape))
