"""The calibrated controller on the tiny KS project: the variational objective's Gaussian
policy, ensemble training, and few-step control through ``assimilate run``.

- a stochastic controller's sub-step is the ancestral step plus its control, and its
  energy is the KL divergence of its Gaussian transition to the uncontrolled one
  (against ``torch.distributions``);
- an untrained stochastic controller costs no KL, its step is a function of the noise
  drawn before it, and checkpointed gradients equal plain ones (the recomputation sees
  the same noise);
- a controller trained with the fair CRPS over jointly rolled members, reading its
  ensemble, at 2 sub-steps, runs through ``assimilate run`` as a user runs it (fresh
  process, progress bar on) at the sub-steps it was trained for, and at 4 when told;
- a variational controller trains and assimilates, reproducibly for a seed;
- a checkpoint whose network reads other ensemble inputs is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from assimilate.control import build_controller, controlled_step, network, train_controller
from assimilate.control.load import load_controller
from assimilate.control.steer import correction_for, policy_noise
from assimilate.da.contract import assimilate
from assimilate.da.methods import build_method
from assimilate.diffusion import SubStep
from assimilate.errors import TrainingError
from assimilate.observe import Observations, model_grid, observe
from pde.io.store import open_store, open_trajectories
from tests.control.conftest import inputs_of, regime_of, windows_of

COMMAND = str(Path(sys.executable).with_name("assimilate"))
REGIMES = "kuramoto_sivashinsky:\n  dense: {operator: strided, stride: 4, every: 1, noise: 0.1}\n"

pytestmark = pytest.mark.usefixtures("one_thread")


def _variational(project):
    return project.config.with_changes("controller", objective="variational")


def _acting(config, seed: int = 0):
    torch.manual_seed(seed)
    controller = build_controller(config, dims=1)
    for parameter in controller.outputs.parameters():  # an untrained output layer is zero
        torch.nn.init.normal_(parameter, std=0.1)
    return controller


def test_a_stochastic_sub_step_is_ancestral_plus_a_gaussian_control(project) -> None:
    regime, _ = regime_of(project)
    controller = _acting(_variational(project))
    history = windows_of(project, 4)[:, :1]
    inputs = inputs_of(project, regime, history, torch.randn(4, regime.operator.n_obs))
    inputs.noise = torch.randn(1, 4, 1, 32, generator=torch.Generator().manual_seed(1))
    x, denoised = torch.randn(4, 1, 32), torch.randn(4, 1, 32)
    sigma, following = 2.0, 1.0
    x_next = denoised + following / sigma * (x - denoised)  # the sampler's Euler step
    energies: list[torch.Tensor] = []
    with torch.no_grad():
        moved = correction_for(project.forecaster, controller, history, inputs, energies)(
            x_next, SubStep(0, x, sigma, following, denoised))
        estimate = project.forecaster.state_of(history, denoised)
        innovation, covered = inputs.current.innovation(estimate)
        scale, shift, log_scale = controller(
            x, torch.full((4,), sigma), denoised, inputs.previous, innovation, covered,
            inputs.preview, inputs.features)
    up = (following**2 * (sigma**2 - following**2)) ** 0.5 / sigma  # 0.866
    mean = denoised + (following**2 - up**2) ** 0.5 / sigma * (x - denoised)  # ancestral
    control = up * (scale * mean / (1 + following**2) ** 0.5 + shift)  # in units of the std
    torch.testing.assert_close(moved, mean + control + up * log_scale.exp() * inputs.noise[0])
    kl = kl_divergence(Normal(mean + control, up * log_scale.exp()), Normal(mean, up))
    torch.testing.assert_close(energies[0], kl.flatten(1).mean(1))


def test_an_untrained_stochastic_controller_costs_nothing_and_recomputes_exactly(project):
    regime, _ = regime_of(project)
    config = _variational(project)
    history = windows_of(project, 4)[:, :1]
    values = torch.randn(4, regime.operator.n_obs)
    prior = project.forecaster.prior(history, torch.Generator().manual_seed(0))

    def step(controller, seed: int, checkpointed: bool = False):
        inputs = inputs_of(project, regime, history, values)
        inputs.noise = policy_noise(project.forecaster, controller, history, None,
                                    torch.Generator().manual_seed(seed))
        return controlled_step(project.forecaster, controller, history, prior, inputs,
                               checkpointed=checkpointed)

    untrained = build_controller(config, dims=1)
    with torch.no_grad():
        (first, energy), (again, _), (other, _) = (step(untrained, s) for s in (5, 5, 6))
    assert torch.all(energy == 0) and torch.equal(first, again)
    assert not torch.allclose(first, other), "the sub-steps draw noise"
    controller = _acting(config, seed=3)
    gradients = []
    for checkpointed in (False, True):
        controller.zero_grad()
        following, energy = step(controller, 7, checkpointed)
        (following.pow(2).mean() + energy.mean()).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in controller.parameters()]))
    assert gradients[0].abs().max() > 0
    torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def ensemble_controller(project) -> Path:
    (project.root / "regimes.yaml").write_text(REGIMES)
    config = project.config.with_changes("controller", objective="crps", members=2,
                                         ensemble=True, sub_steps=2,
                                         **{"training.batch_size": 4})
    out = project.root / "ensemble-controller.pt"
    train_controller(config, project.root / "forecaster.pt", project.root / "truth.zarr", out,
                     steps=6, progress=False)
    return out


def test_the_ensemble_controller_keeps_its_training(ensemble_controller) -> None:
    trained = load_controller(ensemble_controller)
    assert trained.net.ensemble and not trained.net.stochastic
    assert trained.config.controller.sub_steps == 2
    assert trained.config.controller.objective == "crps"


def test_a_controller_with_other_ensemble_inputs_is_refused(ensemble_controller,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(network, "N_POOLED", network.N_POOLED - 2)  # as before the increments
    with pytest.raises(ValueError, match=r"reads \d+ input fields.*retrain it"):
        load_controller(ensemble_controller)


def test_resuming_a_checkpoint_of_other_shapes_is_refused(project, ensemble_controller,
                                                         monkeypatch, tmp_path) -> None:
    out = tmp_path / "resumed.pt"
    out.write_bytes(ensemble_controller.read_bytes())
    config = load_controller(ensemble_controller).config
    monkeypatch.setattr(network, "N_POOLED", network.N_POOLED - 2)  # as before the increments
    with pytest.raises(TrainingError, match=r"other shapes.*inputs\.weight.*delete it"):
        train_controller(config, project.root / "forecaster.pt", project.root / "truth.zarr",
                         out, steps=8, progress=False)
    assert out.read_bytes() == ensemble_controller.read_bytes()


@pytest.mark.e2e
def test_few_step_control_through_assimilate_run(project, ensemble_controller, tmp_path):
    obs = tmp_path / "obs.zarr"
    observe(project.root / "truth.zarr", "dense", obs, trajectories=[0],
            regimes_path=project.root / "regimes.yaml", progress=False)
    nfe = {}
    for extra in ([], ["--set", "sub_steps=4"]):
        out = tmp_path / f"analysis{len(extra)}.zarr"
        run = subprocess.run(
            [COMMAND, "run", str(project.config_path), "--method", "controller",
             "--controller", str(ensemble_controller), "--forecaster",
             str(project.root / "forecaster.pt"), "--obs", str(obs), "--members", "4",
             "--out", str(out), *extra],
            cwd=project.root, capture_output=True, text=True, timeout=600, check=False,
            env=os.environ | {"OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert "100%" in run.stderr, f"no progress bar: {run.stderr[-500:]}"
        nfe[len(extra)] = float(open_store(out).attrs["nfe_per_step"])
    assert nfe == {0: 2.0, 2: 4.0}, nfe


def test_a_variational_controller_trains_and_assimilates_reproducibly(project) -> None:
    (project.root / "regimes.yaml").write_text(REGIMES)
    out = project.root / "variational.pt"
    train_controller(_variational(project), project.root / "forecaster.pt",
                     project.root / "truth.zarr", out, steps=4, progress=False)
    logged = [json.loads(line) for line in Path(f"{out}.metrics.jsonl").read_text().splitlines()]
    assert logged and all(torch.isfinite(torch.tensor(row["loss"])) for row in logged)
    assert load_controller(out).net.stochastic
    truth = open_trajectories(project.root / "truth.zarr")
    dataset = observe(project.root / "truth.zarr", "dense", trajectories=[0],
                      regimes_path=project.root / "regimes.yaml", progress=False)
    observations = Observations.from_dataset(dataset, **model_grid(truth))
    method = build_method("controller", {"checkpoint": str(out)})
    runs = [assimilate(method, observations, initial=None, config=project.config,
                       forecaster=project.forecaster, n_members=3, n_steps=3, seed=seed,
                       progress=False)["u"].values for seed in (0, 0, 1)]
    assert (runs[0] == runs[1]).all() and not (runs[0] == runs[2]).all()
