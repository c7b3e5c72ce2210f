"""The climatology of a field: first guesses, background covariances and the sanity bound.

A :class:`Climatology` holds attractor states ``(samples, *space)`` of one simulator, drawn
from a trajectory store or simulated afresh (burn-in, then states far enough apart to be
nearly independent). It gives

- the honest first guess of a DA run: members drawn at random from the climatology;
- the climatological std that every normalised error in the project divides by;
- a background covariance for optimal interpolation: on a periodic domain with
  statistically homogeneous fields the covariance is circulant, so it is estimated from
  the mean power spectrum of the samples (full rank from a few hundred states, where the
  sample covariance of a 32² field would not be).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from pde.io.store import field_variable, open_trajectories

__all__ = ["Climatology"]


@dataclass(frozen=True)
class Climatology:
    """Attractor states ``samples`` ``(S, *space)`` and where they came from."""

    samples: np.ndarray
    source: str

    @property
    def space(self) -> tuple[int, ...]:
        return self.samples.shape[1:]

    @property
    def mean(self) -> float:
        return float(self.samples.mean())

    @property
    def std(self) -> float:
        return float(self.samples.std())

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """States ``(*shape, *space)`` drawn with replacement."""
        chosen = rng.integers(0, len(self.samples), size=int(np.prod(shape)))
        return self.samples[chosen].reshape(*shape, *self.space).astype(np.float32)

    def covariance(self) -> np.ndarray:
        """Circulant background covariance ``(n, n)``, ``n`` the grid size (flattened)."""
        anomalies = self.samples - self.samples.mean(axis=0)
        axes = tuple(range(1, anomalies.ndim))
        power = np.mean(np.abs(np.fft.fftn(anomalies, axes=axes)) ** 2, axis=0)
        autocovariance = np.real(np.fft.ifftn(power)) / power.size  # lag -> covariance
        grid = np.indices(self.space).reshape(len(self.space), -1).T  # (n, d) grid indices
        lags = (grid[None, :, :] - grid[:, None, :]) % np.array(self.space)
        return autocovariance[tuple(lags.transpose(2, 0, 1))]

    @classmethod
    def from_store(cls, path: str | Path, *, max_samples: int = 2000,
                   seed: int = 0) -> Climatology:
        """Up to ``max_samples`` states of the complete trajectories in the store ``path``
        (checked against a configuration by :func:`assimilate.da.inputs.load_climatology`)."""
        ds = open_trajectories(path)
        return cls.of_states(ds[field_variable(ds)].values, str(Path(path).resolve()),
                             max_samples=max_samples, seed=seed)

    @classmethod
    def of_states(cls, states: np.ndarray, source: str, *, max_samples: int = 2000,
                  seed: int = 0) -> Climatology:
        """Up to ``max_samples`` of ``states`` ``(trajectory, time, *space)``, drawn without
        replacement (DAPPER's climatology is its truth's, likewise)."""
        n_traj, n_time = states.shape[:2]
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(n_traj * n_time, size=min(max_samples, n_traj * n_time),
                                   replace=False))
        values = np.asarray(states).reshape(n_traj * n_time, *states.shape[2:])[picks]
        return cls(np.asarray(values, dtype=np.float32), source)

    @classmethod
    def simulate(cls, simulator, *, n_trajectories: int = 8, n_states: int = 16,
                 spacing: int = 10, seed: int = 0) -> Climatology:
        """``n_trajectories × n_states`` attractor states, ``spacing`` stored steps apart."""
        state = simulator.burn_in(simulator.initial_state(jax.random.PRNGKey(seed),
                                                          n_trajectories))
        _, fields = simulator.trajectory(state, n_states * spacing)
        fields = np.asarray(fields, dtype=np.float32)[:, ::spacing]
        return cls(fields.reshape(-1, *fields.shape[2:]),
                   f"simulated: {n_trajectories} x {n_states} states, seed {seed}")

    def first_background(self, initial: np.ndarray | None, n_traj: int, n_members: int,
                         rng: np.random.Generator) -> np.ndarray:
        """First background ``(trajectory, member, *space)`` of a run: ``initial`` (a state, an
        ensemble or one per trajectory; members repeated or subsampled), or drawn from here."""
        space = self.space
        if initial is None:
            return self.draw(rng, (n_traj, n_members))
        initial = np.asarray(initial, dtype=np.float32)
        if initial.shape == space:
            initial = initial[None]
        if initial.shape[-len(space):] != space or initial.ndim not in (len(space) + 1,
                                                                        len(space) + 2):
            raise ValueError(f"the first background must be a state {space}, an ensemble "
                             f"(member, *{space}) or (trajectory, member, *{space}); got "
                             f"{initial.shape}")
        if initial.ndim == len(space) + 1:
            initial = np.broadcast_to(initial[None], (n_traj, *initial.shape))
        if initial.shape[0] != n_traj:
            raise ValueError(f"the first background holds {initial.shape[0]} trajectories, the "
                             f"observations {n_traj}")
        if not np.isfinite(initial).all():
            raise ValueError("the first background holds non-finite values")
        if initial.shape[1] > n_members:  # a larger ensemble: a subset of distinct members
            initial = initial[:, np.sort(rng.choice(initial.shape[1], n_members, replace=False))]
        elif initial.shape[1] < n_members:  # one state (or too few): members repeat them
            initial = initial[:, rng.integers(0, initial.shape[1], n_members)]
        return np.ascontiguousarray(initial)
