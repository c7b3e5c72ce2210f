"""``controller``: the amortised controller steers the forecaster in every sub-step.

Data assimilation is one causal forward rollout of the frozen forecaster with the trained
controller's corrections (:mod:`assimilate.control`): at each step it reads the
innovation of the sampler's denoised estimate against that step's observations and the
observations of the next ``Λ − 1`` steps, nothing beyond them; no adjoint, no test-time
optimisation ("Control-Augmented Autoregressive Diffusion for Data Assimilation",
Srivastava et al., arXiv 2510.06637).

``refine=K`` adds K test-time gradient (Adam, step ``rate``) steps on top of the
controller's proposal (the semi-amortised mode of "Hierarchical Variational Policies for
Reward-Guided Diffusion"): at each observed step an extra shift δ, spread evenly over the
sub-steps, descends the observation misfit (in noise stds) of the step's outcome,
back-propagated through the sub-steps from the same prior draw; the step is then taken
with the refined control. ``refine=0`` is the controller alone.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.control import ControlInputs, GridPlacement, StepObservations
from assimilate.control.inputs import features_of, preview_of
from assimilate.control.load import TrainedController, load_controller
from assimilate.control.steer import correction_for, policy_noise
from assimilate.control.testtime import optimised
from assimilate.da.contract import Method, Observed, Problem
from assimilate.diffusion import SubStep
from assimilate.models.forecaster import Control

__all__ = ["AmortisedController", "ControllerState"]


@functools.lru_cache(maxsize=4)
def _trained(path: str) -> TrainedController:
    return load_controller(path)


@dataclasses.dataclass(frozen=True)
class ControllerState:
    """What a controller run loads once: the trained network, and the observed steps
    (sorted ``(n,)`` and as a set) that its preview reads."""

    trained: TrainedController
    steps: np.ndarray
    observed: frozenset[int]


@dataclass(frozen=True)
class AmortisedController(Method):
    """``checkpoint``: the trained controller (``assimilate train controller``);
    ``refine``: test-time gradient steps per observed step; ``rate``: their step size;
    ``sub_steps``: the forecaster's sub-steps per step (0, the default: those it was trained
    at)."""

    name: ClassVar[str] = "controller"
    guides_every_step: ClassVar[bool] = True
    controller_setting: ClassVar[str] = "checkpoint"
    checkpoint: str = Field(min_length=1)
    refine: int = Field(0, ge=0, le=100)
    rate: float = Field(0.1, gt=0, le=100)
    sub_steps: int = Field(0, ge=0, le=1024)
    model: Literal["forecaster"] = "forecaster"

    def sampler_steps(self) -> int | None:
        return self.sub_steps or _trained(self.checkpoint).config.controller.sub_steps

    def prepare(self, problem: Problem) -> ControllerState:
        trained = _trained(self.checkpoint)
        trained.require_forecaster(problem.model.forecaster.checkpoint)
        if trained.net.ensemble and problem.n_members < 2:
            raise ValueError(f"the controller '{self.checkpoint}' reads ensemble statistics "
                             f"and needs at least 2 members, got {problem.n_members}")
        steps = np.asarray(problem.observations.steps)
        return ControllerState(trained, steps, frozenset(steps.tolist()))

    def guide(self, observed: Observed, problem: Problem, state: ControllerState) -> Control:
        model, trained = problem.model, state.trained
        lookahead = trained.lookahead
        device = model.device
        n_members = problem.n_members
        steps, observed_steps = state.steps, state.observed
        step = observed.step

        def at(s: int, seen: Observed | None = None) -> StepObservations | None:
            if s not in observed_steps:
                return None
            return on_device(seen or _observed_at(problem, s), problem)

        current = at(step, observed) if observed.operator.n_obs else None
        upcoming = [at(s) for s in range(step + 1, step + lookahead)]
        earlier = steps[steps < step]
        since = int(step - earlier[-1]) if earlier.size else lookahead
        batch = observed.values.shape[0] * n_members
        features = features_of(current, upcoming, since, lookahead, batch, device)
        net, forecaster, refine, rate = trained.net, model.forecaster, self.refine, self.rate

        def control(_: int, history: torch.Tensor):
            previous = history[:, -1]
            noise = policy_noise(forecaster, net, history, model.sub_steps, model.generator)
            inputs = ControlInputs(previous, current, preview_of(upcoming, previous), features,
                                   noise=noise, members=n_members)
            steered = correction_for(forecaster, net, history, inputs)
            if refine == 0 or current is None:
                return steered
            return _refined(steered, forecaster, history, current, refine, rate)

        return control


def _observed_at(problem: Problem, step: int) -> Observed:
    operator, values, error_std, mask = problem.observations.at(step)
    return Observed(step, operator, values, error_std, mask)


def on_device(observed: Observed, problem: Problem) -> StepObservations:
    """One step's observations for every member, on the model's device."""
    return StepObservations.for_members(
        observed.operator, observed.values, observed.error_std, observed.mask,
        problem.model.forecaster.normalisation, problem.n_members,
        GridPlacement(observed.operator, problem.model.device))


def _refined(steered, forecaster, history: torch.Tensor, current: StepObservations,
             refine: int, rate: float):
    """The controller's correction plus a shift δ, spread evenly over the sub-steps, after
    ``refine`` Adam steps on the step's misfit (:func:`assimilate.control.testtime.optimised`)."""
    n_sub = forecaster.config.forecaster.sampling.steps
    shape = (history.shape[0], 1, *history.shape[2:])

    def parametrised(parameters, energies):
        (delta,) = parameters

        def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
            return steered(x_next, sub) + delta / n_sub

        return correction

    return optimised(forecaster, history, current, parametrised,
                     [torch.zeros(shape, device=history.device)], iterations=refine, rate=rate)
