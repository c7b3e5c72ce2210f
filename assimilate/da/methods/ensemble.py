"""What the ensemble Kalman analyses share: inflation, localisation taper, missing data.

Conventions for every analysis in ``assimilate.da.methods``: an ensemble is ``(N, n)``
(members, flattened state), its image under the observation operator is ``(N, m)`` (the
caller applies any operator, linear or not: DAPPER's "HE" formulation), ``y`` and
``error_std`` are ``(m,)`` with R = diag(error_std²). Observations that are not finite in
``y`` are missing: their rows are zeroed after standardisation, which is exactly an
infinite error variance, and shapes stay static so analyses jit once per layout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "anomalies",
    "check_shapes",
    "gaspari_cohn",
    "inflate",
    "mean_preserving_rotation",
    "periodic_distance",
    "post_process",
    "standardised_observations",
]


def check_shapes(name: str, ensemble: ArrayLike, observed: ArrayLike, y: ArrayLike,
                 error_std: ArrayLike) -> None:
    """Raise ``ValueError`` naming ``name`` if the shapes do not follow the conventions."""
    shapes = {k: jnp.shape(v) for k, v in
              {"ensemble": ensemble, "observed": observed, "y": y, "error_std": error_std}.items()}
    n_members, m = (shapes["observed"] + (None, None))[:2]
    if (len(shapes["ensemble"]) != 2 or len(shapes["observed"]) != 2
            or shapes["ensemble"][0] != n_members or shapes["y"] != (m,)
            or shapes["error_std"] != (m,)):
        raise ValueError(f"{name}: shapes {shapes}; expected ensemble (N, n), observed (N, m), "
                         "y (m,) and error_std (m,)")
    if n_members < 2:
        raise ValueError(f"{name}: {n_members} member(s); an ensemble needs at least 2")


def anomalies(ensemble: Array) -> tuple[Array, Array]:
    """Mean ``(n,)`` and anomalies ``(N, n)`` of an ensemble ``(N, n)``."""
    mean = ensemble.mean(axis=0)
    return mean, ensemble - mean


def inflate(ensemble: Array, inflation: ArrayLike) -> Array:
    """Multiplicative inflation: anomalies times ``inflation`` (covariance times its square)."""
    mean, deviations = anomalies(ensemble)
    return mean + inflation * deviations


def standardised_observations(observed: Array, y: Array,
                              error_std: Array) -> tuple[Array, Array]:
    """Observed anomalies and innovations in units of the observation error, missing zeroed.

    Returns ``(R^{-1/2} (HE_i - mean HE), R^{-1/2} (y - HE_i))``, both ``(N, m)``; columns of
    missing (non-finite) observations are zero, so they weigh nothing in any analysis.
    """
    present = jnp.isfinite(y)
    y_present = jnp.where(present, y, 0.0)
    _, observed_anomalies = anomalies(observed)
    scaled_anomalies = jnp.where(present, observed_anomalies / error_std, 0.0)
    innovations = jnp.where(present, (y_present - observed) / error_std, 0.0)
    return scaled_anomalies, innovations


def gaspari_cohn(r: ArrayLike) -> Array:
    """Gaspari–Cohn compactly supported correlation, as a function of ``r = distance / c``.

    The fifth-order piecewise rational function of eq. (4.10) in Gaspari & Cohn (1999),
    "Construction of correlation functions in two and three dimensions" (QJRMS 125): 1 at
    ``r = 0``, twice continuously differentiable, 0 for ``r >= 2`` (support ``2 c``).
    """
    r = jnp.abs(jnp.asarray(r))
    inner = (((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r**2 + 1.0
    # The outer branch, (r⁵/12 − r⁴/2 + 5r³/8 + 5r²/3 − 5r + 4 − 2/(3r)), factored so that it
    # stays non-negative in float32 near r = 2; the clamp keeps 1/r finite where it is unused.
    outer_r = jnp.clip(r, 1.0, 2.0)
    outer = (2.0 - outer_r) ** 4 * (outer_r**2 + 2.0 * outer_r - 0.5) / (12.0 * outer_r)
    return jnp.where(r <= 1.0, inner, jnp.where(r < 2.0, outer, 0.0))


def periodic_distance(a: ArrayLike, b: ArrayLike, lengths: ArrayLike) -> Array:
    """Euclidean distance between points ``(..., d)`` on a torus of side ``lengths`` ``(d,)``.

    Each coordinate difference is wrapped to the nearest image; an infinite length leaves
    that axis unwrapped. ``a`` and ``b`` broadcast against each other.
    """
    delta = jnp.mod(jnp.abs(jnp.asarray(a) - jnp.asarray(b)), lengths)
    delta = jnp.minimum(delta, lengths - delta)
    return jnp.sqrt(jnp.sum(delta**2, axis=-1))


def mean_preserving_rotation(gaussian: ArrayLike) -> Array:
    """A random orthogonal ``(N, N)`` matrix T with T 1 = 1 from a standard Gaussian
    ``(N − 1, N − 1)``: it leaves the ensemble mean alone and turns the anomalies,
    uniformly (Haar) among such rotations.

    T = H diag(1, Q) H, with Q Haar-distributed on O(N − 1) (QR of the Gaussian matrix, the
    signs of R's diagonal moved into Q) and H the Householder reflection that swaps e₁ and
    1/√N, so that T 1 = √N H diag(1, Q) e₁ = √N H e₁ = 1. The rotation of Sakov & Oke
    (2008), "Implications of the form of the ensemble transformation in the ensemble
    square root filters" (Monthly Weather Review 136): it keeps the symmetric square root's
    analysis from drifting into a few dominant members over long runs.
    """
    gaussian = jnp.asarray(gaussian)
    n_members, dtype = gaussian.shape[-1] + 1, gaussian.dtype
    q, r = jnp.linalg.qr(gaussian)
    q = q * jnp.sign(jnp.diagonal(r))
    block = jnp.eye(n_members, dtype=dtype).at[1:, 1:].set(q)
    v = jnp.full(n_members, -1.0 / jnp.sqrt(n_members), dtype).at[0].add(1.0)
    householder = jnp.eye(n_members, dtype=dtype) - 2.0 * jnp.outer(v, v) / (v @ v)
    return householder @ block @ householder


@jax.jit
def post_process(ensembles: ArrayLike, inflation: ArrayLike,
                 gaussian: ArrayLike | None = None) -> Array:
    """Analysis-side inflation and random rotation of ensembles ``(T, N, n)``.

    Each ensemble's anomalies A ``(N, n)`` become ``inflation · R A``, with R the
    :func:`mean_preserving_rotation` of its standard Gaussian ``gaussian[t]`` ``(N − 1,
    N − 1)`` (no rotation when ``gaussian`` is None): the analysis covariance grows by
    ``inflation²`` and the mean is unchanged.
    """
    ensembles = jnp.asarray(ensembles)
    mean = ensembles.mean(axis=1, keepdims=True)
    deviations = inflation * (ensembles - mean)
    if gaussian is not None:
        rotations = jax.vmap(mean_preserving_rotation)(jnp.asarray(gaussian, ensembles.dtype))
        deviations = rotations @ deviations
    return mean + deviations
