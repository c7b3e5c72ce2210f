"""An observation operator H as data: which grid points each observation sums, with which
weights, and an optional pointwise transform.

For one observation time on a grid of shape ``space`` (``(x,)`` or ``(y, x)``), with the
state flattened to ``x_flat (n_grid,)``::

    w_i = sum_k weights[i, k] * x_flat[indices[i, k]]        (n_obs,)
    y_i = w_i                   transform "identity"
    y_i = w_i / (1 + |w_i|)     transform "saturating"  (bounded in (-1, 1))

The same arrays apply to NumPy arrays, JAX arrays and torch tensors (differentiably in
JAX and torch), so a method, a guided sampler and an OI analysis all share one H.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

__all__ = ["TRANSFORMS", "Operator", "check_grid", "point_operator"]

Transform = Literal["identity", "saturating"]
TRANSFORMS: tuple[str, ...] = ("identity", "saturating")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)  # a private copy, so that nobody can change H behind our back
    array.flags.writeable = False
    return array


def _library(x: Any) -> str:
    """``"torch"``, ``"jax"`` or ``"numpy"`` (anything else is read as a NumPy array)."""
    module = type(x).__module__
    return "torch" if module.startswith("torch") else "jax" if module.startswith("jax") \
        else "numpy"


def _in_library(x: Any, indices: np.ndarray, weights: np.ndarray) -> tuple[Any, Any, Any]:
    """``(x, indices, weights)`` as arrays of ``x``'s own library, device and float dtype."""
    library = _library(x)
    if library == "torch":
        import torch

        x = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        return (x, torch.tensor(indices, device=x.device),  # a copy: ours are read-only
                torch.tensor(weights, dtype=x.dtype, device=x.device))
    if library == "jax":
        import jax.numpy as jnp

        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
        return x, jnp.asarray(indices), jnp.asarray(weights, dtype=x.dtype)
    x = np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    return x, indices, weights.astype(x.dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class Operator:
    """H for one observation time.

    Attributes:
        indices: ``(n_obs, support)`` flat (C-order) grid indices each observation sums.
        weights: ``(n_obs, support)`` their weights.
        space: the grid shape, e.g. ``(64,)`` or ``(32, 32)`` as ``(y, x)``.
        transform: ``"identity"`` or ``"saturating"`` (``w / (1 + |w|)``, after the sum).
        locations: ``(n_obs, ndim)`` physical position of each observation, ordered like
            the grid dims (``(y, x)`` in 2-D), for localisation; ``None`` if unknown.
    """

    indices: np.ndarray
    weights: np.ndarray
    space: tuple[int, ...]
    transform: Transform = "identity"
    locations: np.ndarray | None = None

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices)
        weights = np.asarray(self.weights, dtype=np.float64)
        space = tuple(int(n) for n in self.space)
        if indices.ndim != 2 or weights.shape != indices.shape:
            raise ValueError(f"indices {indices.shape} and weights {weights.shape} must both "
                             "be (n_obs, support)")
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers, got {indices.dtype}")
        n_grid = int(np.prod(space))
        if indices.size and (indices.min() < 0 or indices.max() >= n_grid):
            raise ValueError(f"indices must lie in 0..{n_grid - 1} for the grid {space}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform {self.transform!r}; allowed: {', '.join(TRANSFORMS)}")
        object.__setattr__(self, "indices", _frozen(indices.astype(np.int64)))
        object.__setattr__(self, "weights", _frozen(weights))
        object.__setattr__(self, "space", space)
        if self.locations is not None:
            locations = np.asarray(self.locations, dtype=np.float64)
            if locations.shape != (len(indices), len(space)):
                raise ValueError(f"locations {locations.shape} must be (n_obs, ndim) = "
                                 f"({len(indices)}, {len(space)})")
            object.__setattr__(self, "locations", _frozen(locations))

    @property
    def n_obs(self) -> int:
        return int(self.indices.shape[0])

    @property
    def support(self) -> int:
        """Grid points per observation."""
        return int(self.indices.shape[1])

    @property
    def n_grid(self) -> int:
        return int(np.prod(self.space))

    @property
    def is_linear(self) -> bool:
        return self.transform == "identity"

    def apply(self, x: Any) -> Any:
        """``H(x)``: ``x (..., *space)`` -> ``(..., n_obs)`` in ``x``'s own library."""
        x, indices, weights = _in_library(x, self.indices, self.weights)
        ndim = len(self.space)
        if tuple(x.shape[x.ndim - ndim:]) != self.space:
            raise ValueError(f"state of shape {tuple(x.shape)} does not end in the grid "
                             f"{self.space}")
        flat = x.reshape(*x.shape[: x.ndim - ndim], self.n_grid)
        w = (flat[..., indices] * weights).sum(-1)  # (..., n_obs, support) -> (..., n_obs)
        return w if self.is_linear else w / (1 + abs(w))

    def __call__(self, x: Any) -> Any:
        return self.apply(x)

    def matrix(self) -> np.ndarray:
        """The linear part as a dense ``(n_obs, n_grid)`` matrix (the transform left out)."""
        matrix = np.zeros((self.n_obs, self.n_grid))
        rows = np.repeat(np.arange(self.n_obs), self.support)
        np.add.at(matrix, (rows, self.indices.ravel()), self.weights.ravel())
        return matrix

    def subset(self, mask: np.ndarray) -> Operator:
        """The operator restricted to the observations where ``mask (n_obs,)`` is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_obs,):
            raise ValueError(f"mask of shape {mask.shape}, expected ({self.n_obs},)")
        locations = None if self.locations is None else self.locations[mask]
        return dataclasses.replace(self, indices=self.indices[mask],
                                   weights=self.weights[mask], locations=locations)

    def with_transform(self, transform: Transform) -> Operator:
        """The same linear part under another transform."""
        return dataclasses.replace(self, transform=transform)


def check_grid(space: tuple[int, ...], coordinates: list[np.ndarray]) -> list[np.ndarray]:
    """``coordinates`` as 1-D float arrays, one per dim of ``space`` and of its length."""
    coordinates = [np.asarray(c, dtype=np.float64) for c in coordinates]
    lengths = tuple(len(c) for c in coordinates)
    if lengths != tuple(space) or any(c.ndim != 1 for c in coordinates):
        raise ValueError(f"coordinates of lengths {lengths} do not match the grid {tuple(space)}")
    return coordinates


def point_operator(space: tuple[int, ...], coordinates: list[np.ndarray],
                   flat: np.ndarray) -> Operator:
    """Observations of single grid points ``flat (n_obs,)`` (support 1, weight 1)."""
    coordinates = check_grid(space, coordinates)
    flat = np.asarray(flat, dtype=np.int64)
    where = np.unravel_index(flat, space)
    locations = np.stack([c[i] for c, i in zip(coordinates, where, strict=True)], axis=-1)
    return Operator(flat[:, None], np.ones((len(flat), 1)), tuple(space), locations=locations)
