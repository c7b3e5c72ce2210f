"""Ensemble transform Kalman filter (ETKF), symmetric square root, in ensemble space.

Hunt, Kostelich & Szunyogh (2007), "Efficient data assimilation for spatiotemporal chaos:
a local ensemble transform Kalman filter", arXiv physics/0511236, eqs. (20)–(25). With
observed anomalies and innovation standardised by the observation error,
S = R^{-1/2}(HE - mean HE) ``(N, m)`` and d = R^{-1/2}(y - mean HE) ``(m,)``:

    P̃ = [(N − 1) I + S Sᵀ]^{-1}            (N, N)
    w̄ = P̃ S d,   W = [(N − 1) P̃]^{1/2}      (symmetric square root)
    Eᵃ = mean E + (w̄ + W) (E − mean E)

both from one eigendecomposition of S Sᵀ (or, with fewer observations than members, of
SᵀS: the same weights). Inflation multiplies the forecast anomalies of
E and HE before the update (Hunt's ρ is ``inflation**2``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
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

__all__ = ["EnsembleTransformKalmanFilter", "etkf_analysis", "transform_weights"]


def transform_weights(observed_anomalies: Array, innovation: Array) -> tuple[Array, Array]:
    """ETKF weights ``(w̄ (N,), W (N, N))`` from standardised S ``(N, m)`` and d ``(m,)``.

    One eigendecomposition of the smaller Gram matrix: S Sᵀ ``(N, N)`` when N ≤ m, else
    SᵀS = V diag(λ) Vᵀ ``(m, m)``, with U = S V, w̄ = U diag(1/(λ + c)) Vᵀ d and
    W = I + U diag(f(λ)) Uᵀ, f(λ) = (√(c/(λ + c)) − 1)/λ, where c = N − 1.
    """
    n_members, m = observed_anomalies.shape
    c = jnp.asarray(n_members - 1, observed_anomalies.dtype)
    if m < n_members:
        eigenvalues, V = jnp.linalg.eigh(observed_anomalies.T @ observed_anomalies)
        precision = jnp.maximum(eigenvalues, 0.0) + c
        U = observed_anomalies @ V  # (N, m)
        mean_weights = U @ ((V.T @ innovation) / precision)
        # f(λ) rewritten without the 0/0 at λ = 0 (a masked or zero-weight observation)
        f = -1.0 / (jnp.sqrt(precision) * (jnp.sqrt(c) + jnp.sqrt(precision)))
        return mean_weights, jnp.eye(n_members, dtype=U.dtype) + (U * f) @ U.T
    eigenvalues, V = jnp.linalg.eigh(observed_anomalies @ observed_anomalies.T)
    precision = jnp.maximum(eigenvalues, 0.0) + c  # eigenvalues of P̃^{-1}; S Sᵀ is PSD
    mean_weights = V @ ((V.T @ (observed_anomalies @ innovation)) / precision)
    return mean_weights, (V * jnp.sqrt(c / precision)) @ V.T


@jax.jit
def etkf_analysis(ensemble: ArrayLike, observed: ArrayLike, y: ArrayLike,
                  error_std: ArrayLike, inflation: ArrayLike = 1.0) -> Array:
    """ETKF analysis ensemble ``(N, n)``.

    ensemble ``(N, n)`` forecast; observed ``(N, m)`` = H(member) for each member; y
    ``(m,)`` (non-finite entries are missing and ignored); error_std ``(m,)`` with R =
    diag(error_std²); inflation: multiplicative, on the anomalies (1.0 = none).
    """
    check_shapes("etkf_analysis", ensemble, observed, y, error_std)
    mean, deviations = anomalies(inflate(jnp.asarray(ensemble), inflation))
    S, innovations = standardised_observations(
        inflate(jnp.asarray(observed), inflation), jnp.asarray(y), jnp.asarray(error_std))
    mean_weights, transform = transform_weights(S, innovations.mean(axis=0))
    return mean + (mean_weights + transform) @ deviations


_etkf_each = jax.jit(jax.vmap(etkf_analysis, in_axes=(0, 0, 0, None, None)))


@dataclass(frozen=True)
class EnsembleTransformKalmanFilter(EnsembleFilter):
    """ETKF with the true simulator (default) or the forecaster as model; ``inflate`` and
    ``rotate`` as in :mod:`assimilate.da.methods.filtering` (DAPPER's ``EnKF('Sqrt', infl=1.03,
    rot=True)`` is ``inflation=1.03, inflate=analysis, rotate=true``)."""

    name: ClassVar[str] = "etkf"

    def _analysis(self, ensembles, observed, y, error_std, inflation, operator, problem,
                  state):
        return _etkf_each(ensembles, observed, y, error_std, inflation)
