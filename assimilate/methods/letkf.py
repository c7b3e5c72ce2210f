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

import functools
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.methods.ensemble import (
    anomalies,
    check_shapes,
    gaspari_cohn,
    inflate,
    periodic_distance,
    standardised_observations,
)
from assimilate.methods.etkf import transform_weights
from assimilate.methods.filtering import EnsembleFilter, grid_locations

__all__ = ["LocalEnsembleTransformKalmanFilter", "letkf_analysis"]


@functools.partial(jax.jit, static_argnames=("batch_size", "nearest"))
def letkf_analysis(ensemble: ArrayLike, observed: ArrayLike, y: ArrayLike,
                   error_std: ArrayLike, inflation: ArrayLike = 1.0, *,
                   grid_locations: ArrayLike, observation_locations: ArrayLike,
                   lengths: ArrayLike, radius: ArrayLike, batch_size: int | None = None,
                   nearest: int | None = None) -> Array:
    """LETKF analysis ensemble ``(N, n)``.

    ensemble ``(N, n)``, observed ``(N, m)``, y ``(m,)`` (non-finite entries are missing),
    error_std ``(m,)`` and inflation as in ``etkf_analysis``; grid_locations ``(n, d)`` of
    the state entries, observation_locations ``(m, d)``, lengths ``(d,)`` of the periodic
    domain (``inf`` for an unwrapped axis), radius: the Gaspari–Cohn half-width (support
    ``2 radius``); batch_size: a static chunk of grid points, None for all at once;
    nearest: static, keep only this many nearest observations per grid point (None: all):
    exact when it covers every observation within ``2 radius`` of any point, and cheaper
    when it is below N (the local Gram matrix is then ``(nearest, nearest)``).
    """
    check_shapes("letkf_analysis", ensemble, observed, y, error_std)
    _check_locations(jnp.shape(ensemble)[1], jnp.shape(y)[0], jnp.shape(grid_locations),
                     jnp.shape(observation_locations), jnp.shape(lengths))
    mean, deviations = anomalies(inflate(jnp.asarray(ensemble), inflation))
    S, innovations = standardised_observations(
        inflate(jnp.asarray(observed), inflation), jnp.asarray(y), jnp.asarray(error_std))
    innovation = innovations.mean(axis=0)

    def local_analysis(point: tuple[Array, Array, Array]) -> Array:
        location, point_mean, point_deviations = point  # (d,), (), (N,)
        distance = periodic_distance(location, observation_locations, lengths)  # (m,)
        local_S, local_innovation = S, innovation
        if nearest is not None and nearest < distance.shape[0]:
            distance, kept = jax.lax.top_k(-distance, nearest)
            distance, local_S, local_innovation = -distance, S[:, kept], innovation[kept]
        taper = jnp.sqrt(gaspari_cohn(distance / radius)).astype(S.dtype)
        mean_weights, transform = transform_weights(local_S * taper,
                                                     local_innovation * taper)
        return point_mean + (mean_weights + transform) @ point_deviations

    points = (jnp.asarray(grid_locations), mean, deviations.T)
    if batch_size is None:
        return jax.vmap(local_analysis)(points).T
    return jax.lax.map(local_analysis, points, batch_size=batch_size).T


def _check_locations(n: int, m: int, grid: tuple, observations: tuple, lengths: tuple) -> None:
    if len(grid) != 2 or grid[0] != n or observations != (m, grid[1]) or lengths != grid[1:]:
        raise ValueError(f"letkf_analysis: grid_locations {grid}, observation_locations "
                         f"{observations}, lengths {lengths}; expected (n, d) = ({n}, d), "
                         f"(m, d) = ({m}, d) and (d,)")


@dataclass(frozen=True)
class LocalEnsembleTransformKalmanFilter(EnsembleFilter):
    """LETKF; ``radius``: the Gaspari–Cohn half-width in physical length units (the taper
    reaches zero at ``2 radius``)."""

    name: ClassVar[str] = "letkf"
    inflation: float = Field(1.02, ge=1, le=3)
    radius: float = Field(3.0, gt=0)
    model: Literal["forecaster", "simulator"] = "simulator"

    def _analysis(self, ensemble, observed, y, error_std, operator, problem):
        if operator.locations is None:
            raise ValueError("letkf needs observation locations; this operator has none")
        if "grid_locations" not in problem.cache:
            problem.cache["grid_locations"] = jnp.asarray(grid_locations(problem),
                                                          dtype=ensemble.dtype)
        return letkf_analysis(ensemble, observed, y, error_std, self.inflation,
                              grid_locations=problem.cache["grid_locations"],
                              observation_locations=jnp.asarray(operator.locations,
                                                                dtype=ensemble.dtype),
                              lengths=jnp.asarray(problem.lengths, dtype=ensemble.dtype),
                              radius=self.radius)
