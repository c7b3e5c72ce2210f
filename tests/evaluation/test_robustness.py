"""Relaxation and nudging metrics against analytic answers; the conditioning noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.config import ConditioningNoise, ForecasterConfig
from assimilate.evaluation import scores
from assimilate.evaluation.robustness import (
    Nudging,
    lattice,
    nudging_nrmse,
    relaxation,
    rollout_from,
)
from assimilate.models.augment import coloured_noise, perturb_history
from assimilate.models.forecaster import training_pair

N = 64


def ar1(a: float, seed: int = 11):
    """x_{t+1} = a x_t + sqrt(1 - a²) ξ: stationary N(0, 1) at every point (its noise is
    seeded apart from the perturbations of `relaxation`, which would else correlate)."""
    rng = np.random.default_rng(seed)

    def advance(history: np.ndarray) -> np.ndarray:
        last = history[:, -1]
        return (a * last + np.sqrt(1 - a**2) * rng.standard_normal(last.shape)).astype(
            np.float32)

    return advance


def white_spectrum() -> xr.DataArray:
    samples = np.random.default_rng(9).standard_normal((4000, N))
    return scores.energy_spectrum(xr.DataArray(samples, dims=("sample", "x"))).mean("sample")


def test_relaxation_of_a_damped_linear_model_follows_its_analytic_rate() -> None:
    """From N(0, 1) states plus ε noise, var_t = 1 + a^(2t) ε²: the ratio is
    sqrt(1 + a^(2t) ε²), and the spectrum sits log10(1 + a^(2t) ε²) above the flat one."""
    a = 0.8
    start = np.random.default_rng(1).standard_normal((64, 1, N))
    result = relaxation(rollout_from(ar1(a)), start, mean=0.0, std=1.0,
                        spectrum=white_spectrum(), members=8, noise=(0.1, 0.5), n_steps=30)
    steps = result["step"].values
    for level in (0.1, 0.5):
        expected = np.sqrt(1 + a ** (2 * steps) * level**2)
        np.testing.assert_allclose(result["std_ratio"].sel(noise=level), expected, rtol=0.01)
    distance = result["spectrum_distance"].sel(noise=0.5)
    assert float(distance.sel(step=0)) == pytest.approx(np.log10(1.25), rel=0.25)
    assert float(distance.sel(step=30)) < 0.3 * float(distance.sel(step=0))


def test_an_undamped_model_does_not_relax() -> None:
    start = np.random.default_rng(2).standard_normal((32, 1, N))
    result = relaxation(rollout_from(lambda h: h[:, -1].copy()), start, mean=0.0, std=1.0,
                        spectrum=white_spectrum(), members=4, noise=(0.5,), n_steps=10)
    np.testing.assert_allclose(result["std_ratio"], np.sqrt(1.25), rtol=0.02)


def test_nudging_a_pointwise_damped_model_matches_the_exact_error() -> None:
    """x -> a x with truth 0: observed points are exact after insertion, unobserved errors
    decay as a^t, so NRMSE² = (1 - f) mean_t a^(2t) mean(e_0²) over the unobserved points."""
    a, stride, window = 0.97, 8, (5, 20)
    start = np.random.default_rng(3).standard_normal((4, 1, N)).astype(np.float32)
    truth = np.zeros((4, window[1] + 1, N), dtype=np.float32)
    nrmse = nudging_nrmse(lambda h: a * h[:, -1], truth, start,
                          Nudging(stride=stride, noise=0.0, window=window), std=1.0)
    unobserved = np.ones(N, dtype=bool)
    unobserved[lattice((N,), stride).indices[:, 0]] = False
    assert unobserved.sum() == N - N // stride
    steps = np.arange(window[0], window[1] + 1)
    expected = np.sqrt(np.mean(a ** (2 * steps)) * np.mean(start[:, 0, unobserved] ** 2)
                       * unobserved.mean())
    assert nrmse == pytest.approx(expected, rel=1e-5)


def test_nudging_error_of_a_perfect_model_is_the_observation_noise_it_inserts() -> None:
    """a = 0 keeps the unobserved points at the truth (0); the observed ones carry noise of
    std 0.1: NRMSE = 0.1 sqrt(f), f the observed fraction (2-D: every 4th along each dim)."""
    truth = np.zeros((16, 51, 32, 32), dtype=np.float32)
    start = np.ones((16, 1, 32, 32), dtype=np.float32)
    nrmse = nudging_nrmse(lambda h: 0.0 * h[:, -1], truth, start,
                          Nudging(stride=4, noise=0.1, window=(10, 50)), std=2.0)
    assert lattice((32, 32), 4).n_obs == 64
    assert nrmse == pytest.approx(0.1 * np.sqrt(64 / 1024), rel=0.03)


def test_nudging_needs_the_truth_over_its_window() -> None:
    with pytest.raises(ValueError, match="needs 201 states, it has 50"):
        nudging_nrmse(lambda h: h[:, -1], np.zeros((1, 50, N)), np.zeros((1, 1, N)),
                      Nudging(stride=8, noise=0.1, window=(100, 200)), std=1.0)


def test_coloured_noise_has_unit_std_zero_mean_and_its_slope() -> None:
    generator = torch.Generator().manual_seed(0)
    slopes = torch.tensor([0.0, 2.0] * 200)
    noise = coloured_noise((400, 1, 128), slopes, generator)
    torch.testing.assert_close(noise.std(dim=-1), torch.ones(400, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(noise.mean(dim=-1), torch.zeros(400, 1), atol=1e-5, rtol=0)
    power = (torch.fft.rfft(noise, dim=-1).abs() ** 2)[:, 0]
    k = torch.arange(1, 65)
    for offset, slope in ((0, 0.0), (1, 2.0)):
        fitted = np.polyfit(np.log(k.numpy()), np.log(power[offset::2, 1:].mean(0).numpy()), 1)[0]
        assert fitted == pytest.approx(-slope, abs=0.15)


def test_zero_amplitude_leaves_the_training_batch_and_random_stream_untouched() -> None:
    window = torch.randn(8, 2, 32)
    generator = torch.Generator().manual_seed(5)
    before = generator.get_state()
    settings = ForecasterConfig(conditioning_noise=ConditioningNoise(amplitude=0.0))
    target, history = training_pair(window, settings, 0.1, generator)
    clean_target, clean_history = training_pair(window, settings, 0.1, None)
    assert torch.equal(target, clean_target) and torch.equal(history, clean_history)
    assert torch.equal(generator.get_state(), before), "no random number may be drawn"


def test_perturbed_history_keeps_the_clean_next_state_as_target() -> None:
    window = torch.randn(2000, 2, 32)
    noisy = ConditioningNoise(amplitude=0.5, probability=0.5)
    for target_kind in ("increment", "state"):
        settings = ForecasterConfig(target=target_kind, conditioning_noise=noisy)
        target, history = training_pair(window, settings, 0.1, torch.Generator().manual_seed(1))
        perturbed = (history - window[:, :1]).flatten(1).std(dim=1) > 1e-6
        assert 0.45 < perturbed.float().mean() < 0.55
        next_state = target * 0.1 + history[:, -1:] if target_kind == "increment" else target
        torch.testing.assert_close(next_state, window[:, 1:], atol=1e-5, rtol=0)
    amplitude = (perturb_history(window[:, :1], noisy, torch.Generator().manual_seed(2))
                 - window[:, :1]).flatten(1).std(dim=1)
    assert float(amplitude.max()) <= 0.5 + 1e-4 and 0.22 < float(amplitude[amplitude > 0].mean()) < 0.28


def test_observation_marks_are_regular_lattices_where_the_error_is_small() -> None:
    from assimilate.models.augment import MARK_NOISE, observation_marks

    generator = torch.Generator().manual_seed(3)
    marks = observation_marks((500, 1, 64), generator)
    counts = marks.sum(dim=-1).flatten()
    assert set(counts.long().tolist()) == {32, 16, 8, 4}  # strides 2, 4, 8, 16
    grid = observation_marks((50, 1, 16, 16), generator)[:, 0]
    for marked in grid:
        rows, cols = (torch.unique(index).tolist() for index in torch.nonzero(marked).T)
        stride = 16 // len(cols)
        assert stride in (2, 4, 8) and len(rows) == len(cols)  # the same stride along both
        assert rows == list(range(rows[0], 16, stride)) and cols == list(range(cols[0], 16,
                                                                                 stride))
    settings = ConditioningNoise(amplitude=1.0, probability=1.0, marks=1.0)
    history = torch.zeros(400, 1, 64)
    perturbed = perturb_history(history, settings, torch.Generator().manual_seed(4))
    small = perturbed.abs() <= 5 * MARK_NOISE  # marks carry only observation-sized noise
    lattice_sizes = small.sum(dim=-1).flatten()
    assert (lattice_sizes >= 4).all()
