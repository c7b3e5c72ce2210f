"""The controller's ensemble objectives and ensemble-aware inputs, on tiny shapes.

- the fair CRPS and the fair energy score against values computed by hand, and the fair
  CRPS against ``scoringrules``' fair estimator;
- a controller network trained with the fair CRPS on a linear-Gaussian toy (prior draws
  as members, one noisy observation per point) draws from the exact Kalman posterior:
  its members' mean and variance match the posterior's; trained with the squared error
  instead, the members collapse onto the posterior mean;
- an ensemble-aware controller is permutation-equivariant over members: permuting the
  members of an ensemble permutes its corrections, nothing else;
- the pooled ensemble-regression increment equals the tapered covariance sum written out
  point by point (1-D and 2-D, periodic), and for one observation under a wide taper the
  EnKF's update of the ensemble mean, ``cov(x, x_j) d / (s_j² + r²)``;
- a config asking for an ensemble objective or ensemble inputs with one member is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules
import torch

from assimilate.config import ControllerConfig
from assimilate.control import ControllerNet
from assimilate.control.inputs import N_FEATURES, ensemble_statistics, regression_increment
from assimilate.control.objectives import fair_crps, fair_energy_score

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fair_crps_by_hand() -> None:
    members = torch.tensor([[[0.0], [1.0], [3.0]]])  # one ensemble, 3 members, 1 point
    truth = torch.tensor([[2.0]])
    # mean |x - y| = (2 + 1 + 1) / 3; sum_{i != j} |x_i - x_j| = 2 (1 + 3 + 2) = 12
    expected = 4 / 3 - 12 / (2 * 3 * 2)
    assert float(fair_crps(members, truth)) == pytest.approx(expected, abs=1e-7)
    reference = scoringrules.crps_ensemble(np.array([2.0]), np.array([[0.0, 1.0, 3.0]]),
                                           estimator="fair")
    assert float(fair_crps(members, truth)) == pytest.approx(float(reference[0]), abs=1e-6)


def test_fair_energy_score_by_hand() -> None:
    members = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])  # 2 members of a 2-point field
    truth = torch.tensor([[0.0, 4.0]])
    # |x1 - y| = 4, |x2 - y| = 3, |x1 - x2| = 5; over sqrt(2 points)
    expected = ((4 + 3) / 2 - 2 * 5 / (2 * 2 * 1)) / np.sqrt(2)
    assert float(fair_energy_score(members, truth)) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2 members"):
        fair_energy_score(members[:, :1], truth)


# --- the linear-Gaussian toy -------------------------------------------------------------

N_POINTS, PRIOR_STD, NOISE = 8, 1.0, 0.7
GAIN = PRIOR_STD**2 / (PRIOR_STD**2 + NOISE**2)


def _analyses(net: ControllerNet, truth: torch.Tensor, members: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(analyses (ensemble, member, point), observations (ensemble, point))``: prior
    members x ~ N(0, P) corrected as in a sampler sub-step, ``x + scale x + shift``, from
    what the controller reads: x, its innovation y − x on the fully observed grid."""
    n = truth.shape[0]
    y = truth + NOISE * torch.randn(truth.shape, generator=generator)
    x = PRIOR_STD * torch.randn(n * members, N_POINTS, generator=generator)
    y_members = y.repeat_interleave(members, 0)
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    scale, shift = net(x[:, None], torch.ones(n * members), x[:, None], zeros, y_members - x,
                       ones, x.new_zeros(n * members, 0, N_POINTS),
                       torch.zeros(n * members, N_FEATURES))
    analyses = x + scale[:, 0] * x + shift[:, 0]
    return analyses.reshape(n, members, N_POINTS), y


def _trained(objective: str) -> ControllerNet:
    torch.manual_seed(0)
    net = ControllerNet(1, lookahead=1, width=16, blocks=1)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, 800)
    generator = torch.Generator().manual_seed(1)
    for _ in range(800):
        truth = PRIOR_STD * torch.randn(64, N_POINTS, generator=generator)
        analyses, _ = _analyses(net, truth, 8, generator)
        loss = (fair_crps(analyses, truth).mean() if objective == "crps"
                else (analyses - truth[:, None]).pow(2).mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return net.eval()


@pytest.fixture(scope="module")
def posterior_moments() -> dict[str, tuple[float, float, float]]:
    """Per objective: the members' mean gain on y (regression slope), their variance
    about their own mean, and the exact posterior variance (1 − K) P."""
    moments = {}
    for objective in ("crps", "truth"):
        net = _trained(objective)
        with torch.no_grad():
            truth = PRIOR_STD * torch.randn(256, N_POINTS, generator=torch.Generator()
                                            .manual_seed(7))
            analyses, y = _analyses(net, truth, 64, torch.Generator().manual_seed(8))
        mean = analyses.mean(1)
        slope = float((mean * y).sum() / (y * y).sum())
        variance = float(analyses.var(1).mean())
        moments[objective] = (slope, variance, (1 - GAIN) * PRIOR_STD**2)
    return moments


def test_the_fair_crps_controller_draws_from_the_kalman_posterior(posterior_moments) -> None:
    slope, variance, exact = posterior_moments["crps"]
    assert slope == pytest.approx(GAIN, abs=0.02), (slope, GAIN)
    assert variance == pytest.approx(exact, rel=0.08), (variance, exact)


def test_the_squared_error_controller_collapses_its_members(posterior_moments) -> None:
    slope, variance, exact = posterior_moments["truth"]
    assert slope == pytest.approx(GAIN, abs=0.02), (slope, GAIN)
    assert variance < 0.3 * exact, (variance, exact)


# --- ensemble-aware inputs -----------------------------------------------------------------

def test_an_ensemble_aware_controller_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    members, ensembles, space = 4, 2, (16,)
    net = ControllerNet(1, lookahead=2, width=8, blocks=1, ensemble=True)
    for parameter in net.outputs.parameters():  # an untrained output layer is zero
        torch.nn.init.normal_(parameter, std=0.3)
    batch = members * ensembles
    x, denoised = torch.randn(batch, 1, *space), torch.randn(batch, 1, *space)
    previous, innovation = torch.randn(batch, *space), torch.randn(batch, *space)
    covered = (torch.arange(16) % 4 == 0).float().expand(batch, *space)
    preview = torch.randn(ensembles, 2, *space).repeat_interleave(members, 0)
    features = torch.rand(batch, N_FEATURES)

    def corrections(order: torch.Tensor) -> torch.Tensor:
        pooled = ensemble_statistics(denoised[order, 0], innovation[order], covered, 0.1,
                                     members)
        scale, shift = net(x[order], torch.full((batch,), 2.0), denoised[order],
                           previous[order], innovation[order], covered, preview,
                           features[order], pooled)
        return torch.cat([scale, shift], 1)

    identity = torch.arange(batch)
    within = torch.cat([torch.randperm(members) + e * members for e in range(ensembles)])
    torch.testing.assert_close(corrections(within), corrections(identity)[within])
    across = torch.roll(identity, 1)  # members swapped between ensembles: other statistics
    assert not torch.allclose(corrections(across), corrections(identity)[across])


def _periodic_offsets(n: int) -> torch.Tensor:
    """The periodic distance between every pair of the ``n`` points of a ring."""
    index = torch.arange(n)
    difference = (index[:, None] - index[None]) % n
    return torch.minimum(difference, n - difference).float()


@pytest.mark.parametrize("space", [(16,), (8, 6)])
def test_the_regression_increment_is_the_tapered_covariance_sum(space) -> None:
    torch.manual_seed(0)
    ensembles, members, width = 2, 5, 0.2
    anomalies = torch.randn(ensembles, members, *space)
    anomalies = anomalies - anomalies.mean(1, keepdim=True)
    weight = torch.randn(ensembles, *space)
    coordinates = torch.stack(torch.meshgrid(*[torch.arange(n) for n in space],
                                             indexing="ij"), -1).reshape(-1, len(space))
    squared = torch.zeros(coordinates.shape[0], coordinates.shape[0])  # in taper widths
    for axis, n in enumerate(space):
        difference = (coordinates[:, None, axis] - coordinates[None, :, axis]) % n
        squared += (torch.minimum(difference, n - difference).float() / (width * n)) ** 2
    taper = torch.exp(-0.5 * squared)
    flat = anomalies.reshape(ensembles, members, -1)
    covariance = torch.einsum("emi,emj->eij", flat, flat) / (members - 1)
    expected = torch.einsum("ij,eij,ej->ei", taper, covariance, weight.reshape(ensembles, -1))
    torch.testing.assert_close(regression_increment(anomalies, weight, width),
                               expected.reshape(ensembles, *space), atol=1e-5, rtol=1e-5)


def test_the_pooled_increment_of_one_observation_is_the_enkf_mean_update() -> None:
    torch.manual_seed(1)
    members, n, j, noise = 6, 12, 5, 0.3
    estimate = torch.randn(members, n)
    covered = torch.zeros(members, n)
    covered[:, j] = 1
    observation = torch.tensor(0.7)
    innovation = (observation - estimate) * covered
    broad = ensemble_statistics(estimate, innovation, covered, noise, members)[0, -1]
    anomalies = estimate - estimate.mean(0)
    covariance = anomalies.T @ anomalies[:, j] / (members - 1)
    kalman = covariance * (observation - estimate[:, j].mean()) / (
        anomalies[:, j].pow(2).sum() / (members - 1) + noise**2)
    taper = torch.exp(-0.5 * (_periodic_offsets(n)[j] / (n / 4)) ** 2)  # the broad taper
    torch.testing.assert_close(broad, kalman * taper, atol=1e-6, rtol=1e-5)


def test_ensemble_settings_need_members() -> None:
    with pytest.raises(ValueError, match="objective crps.*at least 2 members"):
        ControllerConfig(objective="crps")
    with pytest.raises(ValueError, match="ensemble: true.*at least 2 members"):
        ControllerConfig(ensemble=True)
    assert ControllerConfig(objective="energy_score", members=4, ensemble=True).members == 4
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_statistics(torch.zeros(3, 8), torch.zeros(3, 8), torch.zeros(3, 8), 0.1, 2)
