"""How a model treats imperfect states: relaxation to the attractor, synchronisation.

Every data-assimilation method hands its model states that are not clean samples of the
attractor. Two measurements tell whether a model forgets such imperfections as the
physics does:

- **relaxation**: start from the truth plus white noise of ``ε`` climatological stds and
  follow the ensemble: its std relative to the climatological std (1 on the attractor;
  ``sqrt(1 + ε²)`` at the start) and the log-spectral distance of its mean energy spectrum
  to the climatological one, against the number of steps. The physics of KS damps
  wavenumber k at rate k⁴ − k², so its simulator relaxes within one stored step;
- **nudging synchronisation**: start from an unrelated attractor state and, after every
  step, insert noisy observations of the truth at the points of a strided lattice
  (:func:`assimilate.observe.strided`) with the DA method ``nudging`` at ``alpha = 1``
  (direct insertion). The normalised RMSE over a late window is small when the model
  carries the observed information to the unobserved points.

Both take a model as plain functions of physical fields (NumPy), so the same code scores
the learned forecaster, the true simulator and a toy with an analytic answer (tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from assimilate.evaluation import scores
from assimilate.observe import Operator, strided

__all__ = [
    "RELAXATION_NOISE",
    "RELAXATION_STEPS",
    "Advance",
    "Nudging",
    "Rollout",
    "lattice",
    "nudging_nrmse",
    "relaxation",
    "rollout_from",
]

# (batch, k, *space) history -> (batch, *space) next state, physical units
Advance = Callable[[np.ndarray], np.ndarray]
# (batch, k, *space) history, n_steps -> (batch, n_steps + 1, *space), lead 0 the last state
Rollout = Callable[[np.ndarray, int], np.ndarray]
RELAXATION_NOISE = (0.1, 0.5)
RELAXATION_STEPS = (1, 10, 50, 200)


def rollout_from(advance: Advance) -> Rollout:
    """A rollout that calls ``advance`` once per step."""
    def rollout(history: np.ndarray, n_steps: int) -> np.ndarray:
        states = [history[:, -1]]
        for _ in range(n_steps):
            following = advance(history)
            states.append(following)
            history = np.concatenate([history[:, 1:], following[:, None]], axis=1)
        return np.stack(states, axis=1)

    return rollout


def _space(shape: tuple[int, ...]) -> tuple[str, ...]:
    return ("y", "x") if len(shape) == 2 else ("x",)


def relaxation(rollout: Rollout, histories: np.ndarray, *, mean: float, std: float,
               spectrum: xr.DataArray, members: int = 4,
               noise: Sequence[float] = RELAXATION_NOISE, n_steps: int = max(RELAXATION_STEPS),
               seed: int = 0) -> xr.Dataset:
    """Ensemble std ratio and spectrum distance after each step, from perturbed truth.

    ``histories`` ``(I, k, *space)`` are clean states; each member of each starts from
    them plus white noise of ``ε · std`` (the same noise on every history state). ``mean``
    and ``std`` are the climatology; ``spectrum`` its energy spectrum (dim ``wavenumber``).
    Returns ``std_ratio`` and ``spectrum_distance`` with dims ``(noise, step)``, step 0 the
    perturbed start.
    """
    rng = np.random.default_rng(seed)
    start = np.repeat(histories, members, axis=0)
    batches = [start + level * std * rng.standard_normal((len(start), 1, *start.shape[2:]))
               for level in noise]
    states = rollout(np.concatenate(batches).astype(np.float32), n_steps)
    states = states.reshape(len(noise), len(start), n_steps + 1, *start.shape[2:])
    space = _space(start.shape[2:])
    field = xr.DataArray(states, dims=("noise", "sample", "step", *space),
                         coords={"noise": list(noise), "step": np.arange(n_steps + 1)})
    ratio = np.sqrt(((field - mean) ** 2).mean(("sample", *space))) / std
    energy = scores.energy_spectrum(field).mean("sample")
    distance = scores.log_spectral_distance(energy, spectrum, 1e-6)
    return xr.Dataset({"std_ratio": ratio, "spectrum_distance": distance})


@dataclasses.dataclass(frozen=True)
class Nudging:
    """Direct insertion of every observation: which points, how noisy, scored when.

    ``stride``: observed every ``stride``-th point along each spatial dim; ``noise``:
    observation error std in climatological stds; ``window``: the steps scored.
    """

    stride: int
    noise: float
    window: tuple[int, int]


def nudging_nrmse(advance: Advance, truth: np.ndarray, start: np.ndarray, nudging: Nudging,
                  *, std: float, seed: int = 0) -> float:
    """Normalised RMSE over ``nudging.window`` of a model nudged toward noisy observations.

    ``truth`` ``(I, n_steps + 1, *space)``; ``start`` ``(I, k, *space)``: the histories the
    model begins from (unrelated attractor states). After each step the observed points
    of the new state (the points of the ``strided`` operator, :func:`lattice`) are replaced
    by the truth plus noise of ``nudging.noise · std`` (drawn on the whole grid, in one
    stream): direct insertion, the DA method ``nudging`` at ``alpha = 1`` for this
    selection operator, written as the copy it is (the method's general solve costs
    seconds a step on a 64² grid).
    """
    first, last = nudging.window
    if truth.shape[1] <= last:
        raise ValueError(f"nudging scores steps {first}..{last}: the truth needs "
                         f"{last + 1} states, it has {truth.shape[1]}")
    rng = np.random.default_rng(seed)
    points = lattice(truth.shape[2:], nudging.stride).indices[:, 0]
    history = start.astype(np.float32)
    squared = []
    for step in range(1, last + 1):
        state = advance(history).astype(np.float32)
        noisy = truth[:, step] + nudging.noise * std * rng.standard_normal(truth[:, step].shape)
        flat = state.reshape(len(truth), -1)  # a view: the copy lands in state
        flat[:, points] = noisy.reshape(len(truth), -1)[:, points]
        history = np.concatenate([history[:, 1:], state[:, None]], axis=1)
        if step >= first:
            squared.append(np.mean((state - truth[:, step]) ** 2))
    return float(np.sqrt(np.mean(squared)) / std)


def lattice(space: tuple[int, ...], stride: int) -> Operator:
    """The observed points: every ``stride``-th grid point along each spatial dim."""
    return strided(space, [np.arange(n, dtype=np.float64) for n in space], stride)
