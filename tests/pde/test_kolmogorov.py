"""Kolmogorov flow: analytic solutions, coarsening, statistics and parameter checks."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pde.kolmogorov import (
    KolmogorovFlow,
    KolmogorovParameters,
    _functions,
    dissipation,
    energy,
    enstrophy,
)
from pde.simulator import Simulator


def nodes(n: int) -> np.ndarray:
    return np.arange(n) * 2 * np.pi / n


def mesh(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) node meshes, indexed [y, x] like the stored fields."""
    return np.meshgrid(nodes(n), nodes(n), indexing="ij")


@pytest.fixture(scope="module")
def turbulent() -> tuple[KolmogorovFlow, np.ndarray]:
    """Re 1000 on 64² stored at 32²: 3 trajectories × 150 states after 40 time units."""
    sim = KolmogorovFlow(solver_grid=64, stored_grid=32, burn_in=40.0)
    state = sim.burn_in(sim.initial_state(jax.random.PRNGKey(0), 3))
    _, fields = sim.trajectory(state, 150)
    return sim, np.asarray(fields, dtype=np.float64)


def test_protocol_shapes_and_coordinates() -> None:
    sim = KolmogorovFlow(solver_grid=32, stored_grid=16, burn_in=0.4)
    assert isinstance(sim, Simulator)
    state = sim.initial_state(jax.random.PRNGKey(3), 2)
    assert state.shape == (2, 32, 17) and state.dtype == jnp.complex64
    final, fields = sim.trajectory(state, 4)
    assert fields.shape == (2, 4, 16, 16) and fields.dtype == jnp.float32
    np.testing.assert_array_equal(fields[:, 0], sim.to_physical(state))
    stepped = state
    for _ in range(4):
        stepped = sim.step(stepped)
    np.testing.assert_allclose(final, stepped, atol=1e-4 * float(jnp.abs(stepped).max()))
    assert sim.burn_in_steps == 2
    (y_name, y, y_attrs), (x_name, x, _) = sim.coordinates()
    assert (y_name, x_name) == ("y", "x") and y_attrs["units"] == "1"
    np.testing.assert_allclose(y, nodes(16))
    np.testing.assert_allclose(x, nodes(16))


def test_attrs_rebuild_the_simulator_and_dt_divides_interval() -> None:
    sim = KolmogorovFlow(solver_grid=64, stored_grid=32, dt=0.0065)
    assert sim.inner_steps == 31  # ceil(0.2 / 0.0065)
    assert sim.dt * sim.inner_steps == pytest.approx(sim.interval, rel=1e-12)
    attrs = json.loads(json.dumps(sim.attrs()))
    assert attrs["pde"] == "kolmogorov" and attrs["viscosity"] == pytest.approx(1e-3)
    names = {f.name for f in dataclasses.fields(sim)} - {"burn_in_time"} | {"burn_in"}
    rebuilt = KolmogorovFlow(**{name: attrs[name] for name in names})
    assert rebuilt == sim
    assert _functions(rebuilt) is _functions(sim)  # no second compilation


def test_parameters_or_keyword_changes_build_the_same_simulator() -> None:
    parameters = KolmogorovParameters(reynolds=40.0, solver_grid=32, stored_grid=16)
    sim = KolmogorovFlow(parameters)
    assert sim == KolmogorovFlow(reynolds=40.0, solver_grid=32, stored_grid=16)
    assert KolmogorovFlow(parameters, drag=0.0).drag == 0.0 and sim.drag == 0.1
    assert sim.burn_in_time == KolmogorovParameters().burn_in
    with pytest.raises(TypeError, match="viscosity"):
        KolmogorovFlow(viscosity=0.01)


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"reynolds": 0.0}, "reynolds"),
        ({"drag": -0.1}, "drag"),
        ({"solver_grid": 63}, "solver_grid"),
        ({"solver_grid": 6, "stored_grid": 6}, "solver_grid"),
        ({"solver_grid": 32, "stored_grid": 64}, "stored_grid"),
        ({"forcing_wavenumber": 0}, "forcing_wavenumber"),
        ({"solver_grid": 32, "stored_grid": 32, "forcing_wavenumber": 11}, "forcing_wavenumber"),
        ({"interval": 0.0}, "interval"),
        ({"burn_in": -1.0}, "burn_in"),
        ({"solver_grid": 64, "dt": 0.05}, "dt"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(changes: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}="):
        KolmogorovFlow(**changes)


def test_coarsening_keeps_band_limited_fields_exactly() -> None:
    sim = KolmogorovFlow(solver_grid=64, stored_grid=32)
    rng = np.random.default_rng(0)
    modes = [
        (rng.integers(-15, 16), rng.integers(-15, 16), rng.normal(), rng.uniform(0, 6))
        for _ in range(20)
    ]

    def field(n: int, extra: float = 0.0) -> np.ndarray:
        y, x = mesh(n)
        total = sum(a * np.cos(kx * x + ky * y + phase) for kx, ky, a, phase in modes)
        return total + extra * np.cos(20 * x - 17 * y)  # beyond the stored band

    fine = field(64, extra=1.0)[None]
    coarse = np.asarray(sim.to_physical(sim.from_physical(fine)))
    scale = np.abs(field(32)).max()
    np.testing.assert_allclose(coarse[0], field(32), atol=2e-6 * scale)
    round_trip = sim.to_physical(sim.from_physical(field(32)[None]))
    np.testing.assert_allclose(round_trip[0], field(32), atol=2e-6 * scale)


@pytest.mark.parametrize(("wavenumber", "drag"), [(1, 0.0), (1, 0.1), (3, 0.0), (2, 0.1)])
def test_taylor_green_vortex_decays_at_the_viscous_rate(wavenumber: int, drag: float) -> None:
    """ω = 2 sin(m x) sin(m y) solves Euler, so it decays as exp(−(2 ν m² + α) t)."""
    sim = KolmogorovFlow(
        reynolds=100.0,
        drag=drag,
        forcing_amplitude=0.0,
        solver_grid=32,
        stored_grid=32,
        burn_in=0.0,
    )
    y, x = mesh(32)
    basis = 2 * np.sin(wavenumber * x) * np.sin(wavenumber * y)
    _, fields = sim.trajectory(sim.from_physical(basis[None]), 11)
    fields = np.asarray(fields[0], dtype=np.float64)
    amplitude = np.sum(fields * basis, axis=(-2, -1)) / np.sum(basis**2)
    times = sim.interval * np.arange(11)
    rate = 2 * sim.viscosity * wavenumber**2 + drag
    np.testing.assert_allclose(amplitude, np.exp(-rate * times), rtol=1e-4)
    residual = fields - amplitude[:, None, None] * basis
    assert np.abs(residual).max() < 1e-5


@pytest.mark.parametrize(("amplitude", "wavenumber", "drag"), [(1.0, 4, 0.0), (2.0, 3, 0.5)])
def test_flow_settles_on_the_laminar_kolmogorov_solution(
    amplitude: float, wavenumber: int, drag: float
) -> None:
    """Steady u = A sin(k y) / (ν k² + α) e_x, so ω = −∂u/∂y = −A k cos(k y) / (ν k² + α).

    This pins the [y, x] layout (a transposed field varies along x), the forcing's sign
    and amplitude, and the node convention: forcing sampled half a cell off would leave
    an error of about |ω|·k·h/2 ≈ 0.3 |ω| here. In float32 the iteration stalls once an
    update dt·γ·|ν k² + α|·error falls below half an ulp of ω (observed 1.3e-5 |ω|, float64
    reaches 1e-13), hence the 1e-4 relative tolerance.
    """
    sim = KolmogorovFlow(
        reynolds=10.0,
        drag=drag,
        forcing_amplitude=amplitude,
        forcing_wavenumber=wavenumber,
        solver_grid=32,
        stored_grid=32,
        burn_in=12.0,
    )
    state = sim.burn_in(jnp.zeros((1, 32, 17), jnp.complex64))
    y, _ = mesh(32)
    peak = amplitude * wavenumber / (sim.viscosity * wavenumber**2 + drag)
    expected = -peak * np.cos(wavenumber * y)
    np.testing.assert_allclose(sim.to_physical(state)[0], expected, atol=1e-4 * peak)


def test_diagnostics_on_the_taylor_green_vortex() -> None:
    """ω = 2 sin x sin y: ψ = sin x sin y, ½⟨|u|²⟩ = 1/4, ½⟨ω²⟩ = 1/2, ν⟨ω²⟩ = ν."""
    y, x = mesh(16)
    vorticity = np.stack([2 * np.sin(x) * np.sin(y), -4 * np.cos(2 * y)])
    np.testing.assert_allclose(energy(vorticity), [0.25, 1.0], rtol=1e-12)
    np.testing.assert_allclose(enstrophy(vorticity), [0.5, 4.0], rtol=1e-12)
    np.testing.assert_allclose(dissipation(vorticity, 0.01), [0.01, 0.08], rtol=1e-12)


def test_vorticity_has_zero_mean(turbulent: tuple[KolmogorovFlow, np.ndarray]) -> None:
    _, fields = turbulent
    assert np.abs(fields.mean(axis=(-2, -1))).max() < 1e-4 * fields.std()


def test_energy_and_enstrophy_are_statistically_stationary(
    turbulent: tuple[KolmogorovFlow, np.ndarray],
) -> None:
    """Ensemble means over the two halves of the run agree within 25%.

    Single trajectories wander by ~10–30% over tens of time units (observed std of E
    ≈ 0.1 around E ≈ 1), so only the 3-member mean over 15 time units is compared;
    a blow-up or a still-decaying transient would break the bounds.
    """
    _, fields = turbulent
    assert np.isfinite(fields).all() and np.abs(fields).max() < 100
    for series in (energy(fields), enstrophy(fields)):
        first, second = series[:, :75].mean(), series[:, 75:].mean()
        assert abs(first - second) < 0.25 * (first + second) / 2
    assert 0.3 < energy(fields).mean() < 3.0


def test_same_key_gives_bit_identical_fields() -> None:
    sim = KolmogorovFlow(solver_grid=32, stored_grid=16, burn_in=0.0)
    runs = [sim.trajectory(sim.initial_state(jax.random.PRNGKey(7), 2), 3)[1] for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = sim.trajectory(sim.initial_state(jax.random.PRNGKey(8), 2), 3)[1]
    assert not np.allclose(runs[0], other)
    assert not np.allclose(runs[0][0], runs[0][1])  # batch members differ
