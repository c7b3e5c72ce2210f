"""``controller``: the amortised controller steers the forecaster in every sub-step.

Data assimilation is one causal forward rollout of the frozen forecaster with the trained
controller's corrections (:mod:`assimilate.control`): at each step it reads the
innovation of the sampler's denoised estimate against that step's observations and the
observations of the next ``Λ − 1`` steps, nothing beyond them; no adjoint, no test-time
optimisation ("Control-Augmented Autoregressive Diffusion for Data Assimilation",
Srivastava et al., arXiv 2510.06637).

``refine=K`` adds K test-time gradient steps on top of the controller's proposal (the
semi-amortised mode of "Hierarchical Variational Policies for Reward-Guided Diffusion"):
at each observed step an extra shift δ, spread evenly over the sub-steps, descends the
observation misfit (in noise stds) of the step's outcome, back-propagated through the
sub-steps from the same prior draw; the step is then taken with the refined control.
``refine=0`` is the controller alone.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.control import ControlInputs, GridPlacement, StepObservations
from assimilate.control.inputs import features_of, preview_of
from assimilate.control.load import TrainedController, load_controller
from assimilate.control.steer import correction_for
from assimilate.da import Method, Observed, Problem
from assimilate.diffusion import SubStep
from assimilate.forecast import Control

__all__ = ["AmortisedController"]


@functools.lru_cache(maxsize=4)
def _trained(path: str) -> TrainedController:
    return load_controller(path)


@dataclass(frozen=True)
class AmortisedController(Method):
    """``checkpoint``: the trained controller (``assimilate train controller``);
    ``refine``: test-time gradient steps per observed step; ``rate``: their step size."""

    name: ClassVar[str] = "controller"
    guides_every_step: ClassVar[bool] = True
    checkpoint: str = Field(min_length=1)
    refine: int = Field(0, ge=0, le=100)
    rate: float = Field(0.1, gt=0, le=100)
    model: Literal["forecaster"] = "forecaster"

    def guide(self, observed: Observed, problem: Problem) -> Control:
        model = problem.model
        trained = problem.cache.get("controller")
        if trained is None:
            trained = problem.cache["controller"] = _trained(self.checkpoint)
            trained.require_forecaster(model.forecaster.checkpoint)
        lookahead = trained.lookahead
        device = model.device
        n_members = problem.n_members
        if "steps" not in problem.cache:
            problem.cache["steps"] = np.asarray(problem.observations.steps)
            problem.cache["observed"] = set(problem.cache["steps"].tolist())
        steps, observed_steps = problem.cache["steps"], problem.cache["observed"]
        step = observed.step

        def at(s: int, seen: Observed | None = None) -> StepObservations | None:
            if s not in observed_steps:
                return None
            seen = seen or _observed_at(problem, s)
            return _on_device(seen, model.forecaster.normalisation, n_members, device,
                              problem.cache)

        current = at(step, observed) if observed.operator.n_obs else None
        upcoming = [at(s) for s in range(step + 1, step + lookahead)]
        earlier = steps[steps < step]
        since = int(step - earlier[-1]) if earlier.size else lookahead
        batch = observed.values.shape[0] * n_members
        features = features_of(current, upcoming, since, lookahead, batch, device)
        net, forecaster, refine, rate = trained.net, model.forecaster, self.refine, self.rate

        def control(_: int, history: torch.Tensor):
            previous = history[:, -1]
            inputs = ControlInputs(previous, current, preview_of(upcoming, previous), features)
            steered = correction_for(forecaster, net, history, inputs)
            if refine == 0 or current is None:
                return steered
            return _refined(steered, forecaster, history, current, refine, rate)

        return control


def _observed_at(problem: Problem, step: int) -> Observed:
    operator, values, error_std, mask = problem.observations.at(step)
    return Observed(step, operator, values, error_std, mask)


def _on_device(observed: Observed, normalisation, n_members: int, device,
               cache: dict) -> StepObservations:
    """One step's observations for every member (members of a trajectory together)."""
    values = torch.as_tensor(observed.values, dtype=torch.float32, device=device)
    present = torch.as_tensor(observed.mask, device=device) & torch.isfinite(values)
    values = torch.where(present, values, 0).repeat_interleave(n_members, dim=0)
    present = present.repeat_interleave(n_members, dim=0)
    key = ("placement", id(observed.operator))
    if key not in cache:
        cache[key] = (observed.operator, GridPlacement(observed.operator, device))
    noise = float(np.mean(observed.error_std)) / normalisation.std
    return StepObservations(observed.operator, values, present, noise, normalisation.mean,
                            normalisation.std, cache[key][1])


def _refined(steered, forecaster, history: torch.Tensor, current: StepObservations,
             refine: int, rate: float):
    """The correction of the controller plus a shift δ refined by ``refine`` gradient
    steps (module doc), found when the sampler calls it at its first sub-step."""
    state: dict[str, torch.Tensor] = {}
    error_std = current.noise * current.std

    def misfit(noise: torch.Tensor, delta: torch.Tensor, n_sub: int) -> torch.Tensor:
        def shifted(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
            return steered(x_next, sub) + delta / n_sub

        following = forecaster.step_from(noise, history, correction=shifted)
        outcome = forecaster.normalisation.denormalise(following[:, 0])
        residual = (current.values - current.operator.apply(outcome)) / error_std
        return torch.where(current.mask, residual, 0).pow(2).sum()

    def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
        n_sub = forecaster.config.forecaster.sampling.steps
        if "delta" not in state:  # the first sub-step: sub.x is the prior draw
            delta = torch.zeros_like(sub.x)
            with torch.enable_grad():
                for _ in range(refine):
                    delta.requires_grad_(True)
                    (gradient,) = torch.autograd.grad(misfit(sub.x, delta, n_sub), delta)
                    scale = gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
                    delta = (delta - rate * gradient / scale.reshape(-1, *(1,) * (
                        gradient.ndim - 1))).detach()
            state["delta"] = delta
        return steered(x_next, sub) + state["delta"] / n_sub

    return correction
