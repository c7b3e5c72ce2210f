"""The diffusion core against analytic answers: Gaussian data with its exact denoiser.

For data ``x ~ N(mu, s^2)`` per coordinate and Gaussian noise, the ideal denoiser is
``D*(x, sigma) = mu + s^2/(s^2 + sigma^2) (x - mu)`` and the probability-flow ODE
``dx/dsigma = (x - D*)/sigma`` has the exact solution
``x(sigma) = mu + sqrt(s^2 + sigma^2)/sqrt(s^2 + sigma_max^2) (x_T - mu)``,
which gives noise-free errors for the samplers' convergence orders.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from assimilate.diffusion import (
    Churn,
    Denoiser,
    FlowDenoiser,
    GaussianNoise,
    Guidance,
    StudentTNoise,
    SubStep,
    edm_loss,
    expand_to,
    flow_loss,
    flow_sigmas,
    karras_sigmas,
    make_noise,
    prior_sample,
    sample_euler,
    sample_heun,
    sample_stochastic,
    sigma_per_sample,
)

MU, S = 0.7, 1.3
SIGMA_MAX = 80.0
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    # These tensors are small and elementwise; on a shared 2-core machine intra-op
    # threads fight other processes and run ~10x slower than one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def ideal_denoiser(mu: float = MU, s: float = S):
    """Exact ``E[x_0 | x_sigma]`` for ``x_0 ~ N(mu, s^2)`` and Gaussian noise."""

    def denoise(x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        sigma = expand_to(sigma_per_sample(sigma, x), x)
        return mu + s**2 / (s**2 + sigma**2) * (x - mu)

    return denoise


def exact_endpoint(x_start: Tensor, sigma_start: float) -> Tensor:
    """The exact ODE solution at sigma = 0 from ``x_start`` at ``sigma_start``."""
    return MU + S / math.sqrt(S**2 + sigma_start**2) * (x_start - MU)


def gaussian_start(batch: int, dim: int, seed: int = 0) -> Tensor:
    # prior_sample ignores the data mean: from 0 the endpoint mean is biased by
    # mu s / sigma_max ~ 0.011, so start from mu + sigma_max n (the exact marginal up to
    # a relative s^2/sigma_max^2 in variance).
    g = torch.Generator().manual_seed(seed)
    return MU + prior_sample((batch, dim), SIGMA_MAX, GaussianNoise(), generator=g, dtype=F64)


class TinyBackbone(nn.Module):
    """A stand-in backbone: one circular conv over ``[x_in, c_noise, cond]`` channels."""

    def __init__(self, channels: int = 2, cond_channels: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels + 1 + cond_channels, channels, 3, padding=1,
                              padding_mode="circular")

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None = None) -> Tensor:
        level = expand_to(c_noise, x_in).expand(x_in.shape[0], 1, *x_in.shape[2:])
        parts = [x_in, level] + ([] if cond is None else [cond])
        return self.conv(torch.cat(parts, dim=1))


class IdealBackbone(nn.Module):
    """The ``F`` for which a Gaussian-noise Denoiser equals ``D*`` (inverts c_in, c_skip, c_out)."""

    def __init__(self, sigma_data: float, mu: float = MU, s: float = S) -> None:
        super().__init__()
        self.sigma_data, self.target = sigma_data, ideal_denoiser(mu, s)

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None = None) -> Tensor:
        sigma = torch.exp(4 * c_noise)
        total = expand_to(sigma**2 + self.sigma_data**2, x_in)
        x = x_in * total.sqrt()
        c_skip = self.sigma_data**2 / total
        c_out = expand_to(sigma, x_in) * self.sigma_data / total.sqrt()
        return (self.target(x, sigma) - c_skip * x) / c_out


class IdealVelocity(nn.Module):
    """Exact ``E[x_data - n | x_t]`` for ``x_data ~ N(mu, s^2)``, ``x_t = t x_data + (1-t) n``."""

    def __init__(self, mu: float = MU, s: float = S) -> None:
        super().__init__()
        self.mu, self.s = mu, s

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        t = expand_to(t, x_t)
        covariance = t * self.s**2 - (1 - t)  # Cov(v, x_t)
        variance = t**2 * self.s**2 + (1 - t) ** 2  # Var(x_t)
        return self.mu + covariance / variance * (x_t - t * self.mu)


# --- noise -----------------------------------------------------------------------------


@pytest.mark.parametrize("nu", [3.0, 5.0])
def test_student_t_marginal_is_student_t(nu: float) -> None:
    n = StudentTNoise(nu).sample((20000, 2, 3), generator=torch.Generator().manual_seed(1))
    for coordinate in (n[:, 0, 0], n[:, 1, 2]):
        assert stats.kstest(coordinate.numpy(), stats.t(df=nu).cdf).pvalue > 0.01


@pytest.mark.parametrize("nu", [3.0, 5.0])
def test_student_t_shares_kappa_within_each_sample(nu: float) -> None:
    # Mean of n^2 over 4096 coordinates of one sample ~ 1/kappa ~ nu/chi2_nu,
    # i.e. InvGamma(nu/2, scale=nu/2), if and only if kappa is shared by the sample.
    reference = stats.invgamma(nu / 2, scale=nu / 2).cdf
    g = torch.Generator().manual_seed(2)
    shared = StudentTNoise(nu).sample((2000, 4096), generator=g, dtype=F64)
    assert stats.kstest(shared.square().mean(dim=1).numpy(), reference).pvalue > 0.01
    rng = np.random.default_rng(2)
    independent = stats.t(df=nu).rvs(size=(2000, 4096), random_state=rng)
    assert stats.kstest((independent**2).mean(axis=1), reference).pvalue < 1e-6


def test_student_t_scale_is_exactly_shared() -> None:
    # Documented: t noise draws z first, so with equal seeds n / z is 1/sqrt(kappa_b).
    z = GaussianNoise().sample((6, 3, 5), generator=torch.Generator().manual_seed(4))
    n = StudentTNoise(4.0).sample((6, 3, 5), generator=torch.Generator().manual_seed(4))
    ratio = (n / z).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert ratio[:, 0].std() > 0.05  # ...and kappa differs between samples


@pytest.mark.parametrize("nu", [2.0, 1.5, 0.0, -3.0, math.nan, math.inf])
def test_student_t_rejects_bad_nu(nu: float) -> None:
    with pytest.raises(ValueError, match=r"nu=.*nu > 2 is required"):
        StudentTNoise(nu)


def test_make_noise_and_variance_factor() -> None:
    assert make_noise(None) == GaussianNoise() == make_noise(math.inf)
    assert make_noise(5) == StudentTNoise(5.0)
    assert GaussianNoise().variance_factor == 1.0
    assert StudentTNoise(5.0).variance_factor == pytest.approx(5 / 3)
    n = StudentTNoise(6.0).sample((40000, 8), generator=torch.Generator().manual_seed(3))
    assert n.var().item() == pytest.approx(1.5, rel=0.05)


# --- preconditioning -------------------------------------------------------------------


def test_t_edm_coefficients_match_hand_computation() -> None:
    # nu = 5, sigma = 1, sigma_d = 0.5: v = 5/3, v sigma^2 + sigma_d^2 = 23/12.
    c_skip, c_out, c_in, c_noise = Denoiser(TinyBackbone(), StudentTNoise(5.0)).preconditioning(
        torch.tensor([1.0], dtype=F64))
    expected = (0.25 / (23 / 12), math.sqrt(5 / 3) * 0.5 / math.sqrt(23 / 12),
                1 / math.sqrt(23 / 12), 0.0)
    for got, want in zip((c_skip, c_out, c_in, c_noise), expected, strict=True):
        assert got.item() == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_t_edm_tends_to_edm_as_nu_grows() -> None:
    sigma = torch.logspace(-3, 2, 30, dtype=F64)
    edm = Denoiser(TinyBackbone(), GaussianNoise()).preconditioning(sigma)
    t_edm = Denoiser(TinyBackbone(), StudentTNoise(1e6)).preconditioning(sigma)
    for a, b in zip(edm, t_edm, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    far = Denoiser(TinyBackbone(), StudentTNoise(3.0)).preconditioning(sigma)
    assert not torch.allclose(far[0], edm[0], rtol=1e-2)


@pytest.mark.parametrize("noise", [GaussianNoise(), StudentTNoise(3.0)])
def test_denoiser_is_identity_at_tiny_sigma(noise) -> None:
    torch.manual_seed(0)
    denoiser = Denoiser(TinyBackbone(cond_channels=1), noise).double()
    x = torch.randn(4, 2, 16, dtype=F64)
    cond = torch.randn(4, 1, 16, dtype=F64)
    out = denoiser(x, 1e-6, cond)
    assert (out - x).abs().max() < 1e-5
    assert (denoiser(x, 1.0, cond) - x).abs().max() > 1e-2  # the backbone does matter


def test_loss_weight_is_inverse_c_out_squared() -> None:
    denoiser = Denoiser(TinyBackbone(), StudentTNoise(4.0), sigma_data=0.7)
    sigma = torch.logspace(-2, 1, 7, dtype=F64)
    _, c_out, _, _ = denoiser.preconditioning(sigma)
    torch.testing.assert_close(denoiser.loss_weight(sigma), 1 / c_out**2)


def test_denoiser_forward_wires_the_backbone() -> None:
    denoiser = Denoiser(IdealBackbone(sigma_data=0.5), sigma_data=0.5)
    x = gaussian_start(8, 5) / 20
    sigma = torch.linspace(0.1, 5.0, 8, dtype=F64)
    torch.testing.assert_close(denoiser(x, sigma), ideal_denoiser()(x, sigma))
    torch.testing.assert_close(denoiser(x, 2.0), denoiser(x, torch.full((8,), 2.0, dtype=F64)))
    with pytest.raises(ValueError, match="one value per sample"):
        denoiser(x, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="sigma_data"):
        Denoiser(TinyBackbone(), sigma_data=0.0)


# --- schedules -------------------------------------------------------------------------


def test_karras_sigmas() -> None:
    sigmas = karras_sigmas(18)
    assert sigmas.shape == (19,) and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    torch.testing.assert_close(karras_sigmas(1), torch.tensor([80.0, 0.0], dtype=F64))
    for bad in ({"n_steps": 0}, {"n_steps": 4, "sigma_min": 0.0}, {"n_steps": 4, "rho": -1.0},
                {"n_steps": 4, "sigma_min": 90.0}):
        with pytest.raises(ValueError):
            karras_sigmas(**bad)


def test_flow_sigmas_are_uniform_in_t() -> None:
    sigmas = flow_sigmas(10, t_start=0.2)
    torch.testing.assert_close(1 / (1 + sigmas), torch.linspace(0.2, 1.0, 11, dtype=F64))
    assert sigmas[-1] == 0
    with pytest.raises(ValueError, match="t_start"):
        flow_sigmas(10, t_start=0.0)


# --- samplers --------------------------------------------------------------------------


def observed_orders(sampler, steps: tuple[int, ...]) -> list[float]:
    """log2 of successive error ratios against the exact ODE endpoint (steps double)."""
    x_start = gaussian_start(64, 16)
    exact = exact_endpoint(x_start, SIGMA_MAX)
    errors = [(sampler(ideal_denoiser(), x_start, karras_sigmas(n)) - exact).abs().max().item()
              for n in steps]
    return [math.log2(a / b) for a, b in pairwise(errors)]


def test_euler_is_first_order() -> None:
    orders = observed_orders(sample_euler, (8, 16, 32))
    assert all(0.9 < p < 1.1 for p in orders), orders


def test_heun_is_second_order() -> None:
    orders = observed_orders(sample_heun, (16, 32, 64))
    assert all(1.8 < p < 2.5 for p in orders), orders


@pytest.mark.parametrize(("sampler", "n_steps"), [(sample_euler, 512), (sample_heun, 64)])
def test_deterministic_samplers_reproduce_gaussian_data(sampler, n_steps: int) -> None:
    out = sampler(ideal_denoiser(), gaussian_start(4000, 64), karras_sigmas(n_steps))
    assert out.mean().item() == pytest.approx(MU, abs=0.012)
    assert out.var().item() == pytest.approx(S**2, rel=0.02)


def test_stochastic_sampler_reproduces_gaussian_data() -> None:
    g = torch.Generator().manual_seed(5)
    out = sample_stochastic(ideal_denoiser(), gaussian_start(4000, 64), karras_sigmas(128),
                            churn=Churn(10.0, noise_scale=1.0), generator=g)
    assert out.mean().item() == pytest.approx(MU, abs=0.012)
    assert out.var().item() == pytest.approx(S**2, rel=0.02)


def test_stochastic_sampler_without_churn_is_heun() -> None:
    x, sigmas = gaussian_start(16, 8), karras_sigmas(12)
    torch.testing.assert_close(sample_stochastic(ideal_denoiser(), x, sigmas, churn=Churn(0.0)),
                               sample_heun(ideal_denoiser(), x, sigmas))


def test_stochastic_sampler_accepts_student_t_noise() -> None:
    noise = StudentTNoise(5.0)
    x = prior_sample((8, 2, 16), SIGMA_MAX, noise, generator=torch.Generator().manual_seed(6))
    first = sample_stochastic(ideal_denoiser(), x, karras_sigmas(8), noise=noise,
                              generator=torch.Generator().manual_seed(7))
    again = sample_stochastic(ideal_denoiser(), x, karras_sigmas(8), noise=noise,
                              generator=torch.Generator().manual_seed(7))
    assert first.shape == x.shape and bool(first.isfinite().all())
    torch.testing.assert_close(first, again)  # the generator makes it reproducible


def zero_denoiser(x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
    return torch.zeros_like(x)


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, sample_stochastic])
def test_correction_and_callback_run_once_per_step(sampler) -> None:
    # With D = 0 every step scales x by sigma_next/sigma_i and the last one lands on 0,
    # so the output is exactly the last correction's constant.
    sigmas, corrections, reports = karras_sigmas(6), [], []

    def add_constant(x_next: Tensor, step: SubStep) -> Tensor:
        corrections.append((step.index, step.sigma_next))
        return x_next + 0.25

    x = torch.randn(3, 2, 4, dtype=F64)
    out = sampler(zero_denoiser, x, sigmas, correction=add_constant, callback=reports.append)
    torch.testing.assert_close(out, torch.full_like(x, 0.25))
    assert corrections == [(i, pytest.approx(s)) for i, s in enumerate(sigmas[1:].tolist())]
    assert [r["index"] for r in reports] == list(range(6))
    assert set(reports[0]) == {"index", "x", "sigma", "sigma_next", "denoised"}
    torch.testing.assert_close(sampler(zero_denoiser, x, sigmas), torch.zeros_like(x))


class CountingLinear:
    """D(x) = x / 2, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        self.calls += 1
        return 0.5 * x


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, sample_stochastic])
def test_correction_receives_the_samplers_own_denoised_estimate(sampler) -> None:
    denoiser, seen = CountingLinear(), []

    def record(x_next: Tensor, step: SubStep) -> Tensor:
        torch.testing.assert_close(step.denoised, 0.5 * step.x)  # D of the step's start
        seen.append(step.sigma)
        return x_next

    sigmas = karras_sigmas(5)
    plain = CountingLinear()
    sampler(plain, torch.ones(2, 1, 3, dtype=F64), sigmas)
    sampler(denoiser, torch.ones(2, 1, 3, dtype=F64), sigmas, correction=record)
    assert denoiser.calls == plain.calls, "the correction must not cost a denoiser call"
    assert len(seen) == 5


def test_a_differentiating_correction_gets_a_graph_inside_no_grad() -> None:
    def guide(x_next: Tensor, step: SubStep) -> Tensor:
        (gradient,) = torch.autograd.grad(step.denoised.sum(), step.x)
        torch.testing.assert_close(gradient, torch.full_like(step.x, 0.5))
        return x_next.detach()

    with torch.no_grad():
        out = sample_euler(CountingLinear(), torch.ones(2, 1, 3, dtype=F64), karras_sigmas(3),
                           correction=Guidance(guide, differentiable=True))
    assert not out.requires_grad


def test_samplers_share_one_signature() -> None:
    base = list(inspect.signature(sample_euler).parameters)
    assert list(inspect.signature(sample_heun).parameters) == base
    assert list(inspect.signature(sample_stochastic).parameters)[: len(base)] == base


def test_gradients_flow_through_the_sampler() -> None:
    x = gaussian_start(4, 3).requires_grad_(True)
    sample_heun(ideal_denoiser(), x, karras_sigmas(64)).sum().backward()
    gain = S / math.sqrt(S**2 + SIGMA_MAX**2)  # d x_0 / d x_T of the exact flow
    torch.testing.assert_close(x.grad, torch.full_like(x, gain), rtol=1e-2, atol=0)


def test_samplers_reject_bad_schedules() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="decreasing"):
        sample_euler(zero_denoiser, x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="n_steps"):
        sample_heun(zero_denoiser, x, torch.tensor([1.0]))


# --- flow ------------------------------------------------------------------------------


def test_flow_denoiser_with_ideal_velocity_is_ideal_denoiser() -> None:
    x, sigma = gaussian_start(8, 5) / 10, torch.logspace(-2, 1.5, 8, dtype=F64)
    torch.testing.assert_close(FlowDenoiser(IdealVelocity())(x, sigma),
                               ideal_denoiser()(x, sigma))


@pytest.mark.parametrize("schedule", [karras_sigmas(64), flow_sigmas(64, 1 / (1 + SIGMA_MAX))])
def test_flow_with_heun_reproduces_gaussian_data(schedule: Tensor) -> None:
    out = sample_heun(FlowDenoiser(IdealVelocity()), gaussian_start(4000, 64), schedule)
    assert out.mean().item() == pytest.approx(MU, abs=0.012)
    assert out.var().item() == pytest.approx(S**2, rel=0.02)


@pytest.mark.parametrize("t_sampler", ["logit_normal", "uniform"])
def test_flow_loss_is_per_sample_and_lowest_at_the_ideal(t_sampler: str) -> None:
    x0 = MU + S * torch.randn(512, 1, 8, generator=torch.Generator().manual_seed(8), dtype=F64)

    def loss(velocity: nn.Module) -> Tensor:
        return flow_loss(FlowDenoiser(velocity), x0, t_sampler=t_sampler,
                         generator=torch.Generator().manual_seed(9))

    ideal, perturbed = loss(IdealVelocity()), loss(IdealVelocity(mu=MU + 0.3))
    assert ideal.shape == (512,) and bool((ideal >= 0).all())
    assert ideal.mean() < perturbed.mean()
    with pytest.raises(ValueError, match="t_sampler"):
        flow_loss(FlowDenoiser(IdealVelocity()), x0, t_sampler="cosine")


# --- loss ------------------------------------------------------------------------------


def test_edm_loss_is_per_sample_and_lowest_at_the_ideal() -> None:
    x0 = MU + S * torch.randn(512, 1, 8, generator=torch.Generator().manual_seed(10), dtype=F64)

    def loss(backbone: nn.Module) -> Tensor:
        denoiser = Denoiser(backbone, GaussianNoise(), sigma_data=0.5)
        return edm_loss(denoiser, x0, generator=torch.Generator().manual_seed(11))

    ideal = loss(IdealBackbone(0.5))
    perturbed = loss(IdealBackbone(0.5, mu=MU + 0.3))
    assert ideal.shape == (512,) and bool((ideal >= 0).all())
    assert ideal.mean() < perturbed.mean()


def test_edm_loss_trains_through_a_backbone_with_cond() -> None:
    torch.manual_seed(0)
    denoiser = Denoiser(TinyBackbone(channels=2, cond_channels=1), StudentTNoise(5.0))
    x0, cond = torch.randn(6, 2, 16), torch.randn(6, 1, 16)
    loss = edm_loss(denoiser, x0, cond=cond, generator=torch.Generator().manual_seed(12))
    assert loss.shape == (6,) and bool((loss >= 0).all())
    loss.mean().backward()
    assert denoiser.backbone.conv.weight.grad is not None
