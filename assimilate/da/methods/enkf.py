"""Stochastic ensemble Kalman filter with perturbed observations.

Burgers, van Leeuwen & Evensen (1998), "Analysis scheme in the ensemble Kalman filter"
(Monthly Weather Review 126); Evensen (2003), "The ensemble Kalman filter: theoretical
formulation and practical implementation" (Ocean Dynamics 53). Each member is updated
towards its own perturbed observation y + εᵢ, εᵢ ~ N(0, R), with the gain of the
ensemble covariance. With anomalies A ``(N, n)``, standardised observed anomalies
S = R^{-1/2}(HE − mean HE) ``(N, m)`` and perturbed innovations
Dᵢ = R^{-1/2}(y + εᵢ − HEᵢ) ``(N, m)``, the gain identity (push-through) gives

    Eᵃ − E = D (SᵀS + (N − 1) I)^{-1} Sᵀ A = D Sᵀ (S Sᵀ + (N − 1) I)^{-1} A,

solved in observation space (m × m) when m ≤ N, in ensemble space (N × N) otherwise:
never an n × n matrix. The perturbations are ``error_std * jax.random.normal(key,
(N, m))``, centred over members when ``centred`` (removes the sampling error of their mean;
DAPPER's default). Inflation multiplies the forecast anomalies of E and HE first.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.scipy.linalg
from jax import Array
from jax.typing import ArrayLike
from pydantic.dataclasses import dataclass

from assimilate.da.methods.ensemble import (
    anomalies,
    check_shapes,
    inflate,
    standardised_observations,
)
from assimilate.da.methods.filtering import EnsembleFilter

__all__ = ["EnsembleKalmanFilter", "enkf_analysis"]


@functools.partial(jax.jit, static_argnames="centred")
def enkf_analysis(key: Array, ensemble: ArrayLike, observed: ArrayLike, y: ArrayLike,
                  error_std: ArrayLike, inflation: ArrayLike = 1.0, *,
                  centred: bool = True) -> Array:
    """Perturbed-observation EnKF analysis ensemble ``(N, n)``.

    key: a JAX PRNG key for the observation perturbations; ensemble ``(N, n)`` forecast;
    observed ``(N, m)`` = H(member); y ``(m,)`` (non-finite entries are missing and
    ignored); error_std ``(m,)``; inflation on the anomalies (1.0 = none); centred: a
    static flag, subtract the members' mean perturbation.
    """
    check_shapes("enkf_analysis", ensemble, observed, y, error_std)
    ensemble = inflate(jnp.asarray(ensemble), inflation)
    _, A = anomalies(ensemble)
    S, innovations = standardised_observations(
        inflate(jnp.asarray(observed), inflation), jnp.asarray(y), jnp.asarray(error_std))
    n_members, m = S.shape
    noise = jax.random.normal(key, (n_members, m), S.dtype)
    if centred:
        noise = noise - noise.mean(axis=0)
    D = jnp.where(jnp.isfinite(jnp.asarray(y)), innovations + noise, 0.0)
    c = n_members - 1
    if m <= n_members:
        gram = S.T @ S + c * jnp.eye(m, dtype=S.dtype)
        increments = D @ jax.scipy.linalg.solve(gram, S.T @ A, assume_a="pos")
    else:
        gram = S @ S.T + c * jnp.eye(n_members, dtype=S.dtype)
        increments = (D @ S.T) @ jax.scipy.linalg.solve(gram, A, assume_a="pos")
    return ensemble + increments


_enkf_each = jax.jit(jax.vmap(enkf_analysis, in_axes=(0, 0, 0, 0, None, None)))


@dataclass(frozen=True)
class EnsembleKalmanFilter(EnsembleFilter):
    """Stochastic EnKF with the true simulator (default) or the forecaster as model."""

    name: ClassVar[str] = "enkf"

    def _analysis(self, ensembles, observed, y, error_std, inflation, operator, problem,
                  state):
        keys = jax.random.split(problem.next_key(), len(ensembles))
        return _enkf_each(keys, ensembles, observed, y, error_std, inflation)
