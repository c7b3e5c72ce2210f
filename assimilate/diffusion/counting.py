"""Count denoiser evaluations (NFE) as they happen, rather than from a formula.

A method's cost is reported as the number of function evaluations of the denoiser: a
guided sampler, a Heun step that skips its corrector at ``sigma = 0`` or a controller that
calls the denoiser again all change it, and only counting the calls stays right.

    with EvaluationCounter(forecaster.model) as counter:
        rollout_tensor(...)
    counter.calls        # batched calls: one call denoises every member at once
"""

from __future__ import annotations

from typing import Self

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["EvaluationCounter"]


class EvaluationCounter:
    """Counts the forward calls of a denoiser module while the context is open."""

    def __init__(self, denoiser: nn.Module) -> None:
        self.denoiser = denoiser
        self.calls = 0
        self._handle: RemovableHandle | None = None

    def _count(self, module: nn.Module, args: tuple) -> None:
        self.calls += 1

    def __enter__(self) -> Self:
        self._handle = self.denoiser.register_forward_pre_hook(self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
