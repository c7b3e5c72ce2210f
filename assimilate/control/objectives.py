"""Proper scores of an ensemble against the truth, in torch (differentiable), that the
controller's ensemble objectives minimise.

Both are the *fair* estimators (Ferro 2014, "Fair scores for ensemble forecasts", QJRMS
140): the members' expected score is that of the distribution they are drawn from, so an
ensemble of any size M is rewarded for having the right spread, not a spread shrunk by
sqrt((M − 1) / M) (Gneiting & Raftery 2007, "Strictly proper scoring rules, prediction,
and estimation", JASA 102).

- :func:`fair_crps`, per grid point: ``mean_i |x_i − y| − Σ_{i≠j} |x_i − x_j| / (2 M (M − 1))``;
- :func:`fair_energy_score`, of the whole field: the same with Euclidean norms over the
  grid, divided by sqrt(number of points) so that it reads in the field's units (an RMS).

Members are dim 1: ``(ensemble, member, *space)``; the truth ``(ensemble, *space)``.
"""

from __future__ import annotations

import torch

__all__ = ["fair_crps", "fair_energy_score"]


def _check(members: torch.Tensor, truth: torch.Tensor) -> int:
    if members.ndim < 2 or members.shape[0] != truth.shape[0] \
            or members.shape[2:] != truth.shape[1:]:
        raise ValueError(f"members (ensemble, member, *space) and truth (ensemble, *space) "
                         f"do not match: {tuple(members.shape)} and {tuple(truth.shape)}")
    if members.shape[1] < 2:
        raise ValueError(f"a fair score needs at least 2 members, got {members.shape[1]}")
    return members.shape[1]


def fair_crps(members: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The fair CRPS ``(ensemble, *space)`` of each grid point (module doc)."""
    m = _check(members, truth)
    skill = (members - truth[:, None]).abs().mean(1)
    pairs = (members[:, :, None] - members[:, None, :]).abs().sum((1, 2))
    return skill - pairs / (2 * m * (m - 1))


def fair_energy_score(members: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The fair energy score ``(ensemble,)`` of the whole field, over sqrt(points)."""
    m = _check(members, truth)
    flat = members.flatten(2)
    points = flat.shape[-1]

    def norm(difference: torch.Tensor) -> torch.Tensor:  # finite gradient at 0
        return (difference.pow(2).sum(-1) + 1e-12).sqrt() / points**0.5

    skill = norm(flat - truth.flatten(1)[:, None]).mean(1)
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=members.device)
    pairs = norm(flat[:, :, None] - flat[:, None, :])[:, off_diagonal].sum(1)
    return skill - pairs / (2 * m * (m - 1))
