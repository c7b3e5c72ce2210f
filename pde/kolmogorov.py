r"""Kolmogorov flow: forced 2-D Navier–Stokes with drag, pseudo-spectral (``jax_cfd.spectral``).

Vorticity form on the periodic square [0, 2π]²::

    ω_t + u·∇ω = ν Δω − α ω + curl f,    f = A sin(k y) e_x,    ν = 1 / Re,
    u = (∂ψ/∂y, −∂ψ/∂x),   −Δψ = ω,      curl f = −A k cos(k y).

The reference set-up (Re = 1000, k = 4, α = 0.1, 256² solver grid coarsened to 64²,
0.2 time units between stored states) is that of "Machine learning–accelerated
computational fluid dynamics" (Kochkov et al. 2021, arXiv:2102.01010) and "Score-based
Data Assimilation" (Rozet & Louppe 2023, arXiv:2306.10574). At Re = 40, α = 0, k = 4 the
dissipation rate bursts intermittently ("A variational approach to probing extreme events
in turbulent dynamical systems", Farazmand & Sapsis, Science Advances 2017).

Numerics: ``NavierStokes2D`` with the 2/3 rule on the nonlinear term, stepped by the
Crank–Nicolson/low-storage RK4 scheme. The state is ``rfft2`` of ω on the solver grid in
jax-cfd's layout ``[x, y]`` (grid axis 0 is x), shape ``(batch, N, N//2 + 1)``, complex64.

Grid convention: array index ``j`` sits at ``j · 2π/N`` (nodes, not cell centres). The
forcing is sampled there too (offset 0, as in jax-cfd's ``ForcedNavierStokes2D``), so that
coarsening is a plain spectral truncation: with the cell-centre convention the stored and
solver grids would sit half a (different) cell apart and every resize would need a phase
shift. Stored fields are ``(batch, y, x)`` on M × M nodes, obtained by keeping the modes
|k_x|, |k_y| < M/2 (Nyquist dropped), rescaling by (M/N)² for numpy's unnormalised FFT and
inverting on M × M.

The physical series of the stored vorticity (``energy``, ``enstrophy``, ``dissipation``,
re-exported here) live in :mod:`pde.physics`, and what the rest of the system knows about
this PDE in its descriptor, :data:`pde.descriptor.KOLMOGOROV`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import jax_cfd.base as cfd
import numpy as np
from jax_cfd import spectral
from jax_cfd.base import forcings, funcutils

from pde.descriptor import KOLMOGOROV
from pde.physics import dissipation, energy, enstrophy
from pde.simulator import Coordinate

__all__ = ["KolmogorovFlow", "KolmogorovParameters", "dissipation", "energy", "enstrophy"]

_SOLVER = "jax_cfd.spectral NavierStokes2D, crank_nicolson_rk4, 2/3 dealiasing"


@dataclasses.dataclass(frozen=True)
class KolmogorovParameters:
    """The simulator's parameters and their defaults, the reference set-up (module doc).

    ``dt`` is the requested solver step (None: the CFL-stable step); ``max_velocity``,
    ``max_courant`` and ``peak_wavenumber`` bound the CFL step and shape the initial
    spectrum; ``burn_in`` is model time discarded before storing.
    """

    reynolds: float = 1000.0
    forcing_wavenumber: int = 4
    forcing_amplitude: float = 1.0
    drag: float = 0.1
    solver_grid: int = 256
    stored_grid: int = 64
    interval: float = 0.2
    burn_in: float = 40.0
    dt: float | None = None
    max_velocity: float = 7.0
    max_courant: float = 0.5
    peak_wavenumber: float = 4.0


@dataclasses.dataclass(frozen=True, init=False)
class KolmogorovFlow:
    """Kolmogorov flow simulator implementing :class:`pde.simulator.Simulator`.

    Built from :class:`KolmogorovParameters`, or from keywords that change its defaults:
    ``KolmogorovFlow(reynolds=40.0, solver_grid=64)``. ``burn_in`` (model time) is stored
    as ``burn_in_time`` because the protocol's ``burn_in(state)`` method owns the name.
    ``dt`` holds the *resolved* solver step ``interval / inner_steps`` (≤ the requested or
    CFL step), so ``attrs()`` rebuilds the same simulator; pass ``dt=None`` again when
    changing grids with ``dataclasses.replace``.
    """

    reynolds: float
    forcing_wavenumber: int
    forcing_amplitude: float
    drag: float
    solver_grid: int
    stored_grid: int
    interval: float
    burn_in_time: float
    dt: float
    max_velocity: float
    max_courant: float
    peak_wavenumber: float

    pde: ClassVar[str] = KOLMOGOROV.name
    variable: ClassVar[str] = KOLMOGOROV.variable

    def __init__(self, parameters: KolmogorovParameters | None = None, /,
                 **changes: Any) -> None:
        """``changes``: any of :class:`KolmogorovParameters`'s fields by name."""
        chosen = dataclasses.replace(parameters or KolmogorovParameters(), **changes)
        params = dataclasses.asdict(chosen)
        params["burn_in_time"] = params.pop("burn_in")
        _validate(params)
        params["dt"] = chosen.interval / _inner_steps(params)
        for name, value in params.items():
            object.__setattr__(self, name, value)

    @property
    def viscosity(self) -> float:
        return 1.0 / self.reynolds

    @property
    def inner_steps(self) -> int:
        """Solver steps per stored interval."""
        return round(self.interval / self.dt)

    @property
    def burn_in_steps(self) -> int:
        """Stored intervals discarded by :meth:`burn_in`."""
        return round(self.burn_in_time / self.interval)

    def initial_state(self, key: jax.Array, batch: int) -> jax.Array:
        """Random states ``(batch, N, N//2+1)``, one split of ``key`` per trajectory.

        ω = curl of ``filtered_velocity_field`` (speed ≤ ``max_velocity``, spectrum peaked
        at ``peak_wavenumber``); deterministic in ``key``.
        """
        return _functions(self).initial(jax.random.split(key, batch))

    def burn_in(self, state: jax.Array) -> jax.Array:
        """Advance ``(batch, N, N//2+1)`` states by ``burn_in_steps`` intervals."""
        return _functions(self).burn_in(state)

    def step(self, state: jax.Array) -> jax.Array:
        """Advance ``(batch, N, N//2+1)`` states by one interval (``inner_steps`` × dt)."""
        return _functions(self).step(state)

    def trajectory(self, state: jax.Array, n_steps: int) -> tuple[jax.Array, jax.Array]:
        """``(final_state, fields)``, fields ``(batch, n_steps, M, M)`` float32 ``[y, x]``."""
        return _functions(self).trajectory(state, n_steps)

    def to_physical(self, state: jax.Array) -> jax.Array:
        """Vorticity ``(batch, M, M)`` on the stored grid, indexed ``[y, x]``."""
        return _functions(self).to_physical(state)

    def from_physical(self, field: Any) -> jax.Array:
        """State for vorticity ``(batch, S, S)`` ``[y, x]``, S even ≤ N (zero-padded)."""
        field = jnp.asarray(field, jnp.float32)
        size = field.shape[-1]
        if field.ndim != 3 or field.shape[-2] != size or size % 2 or size > self.solver_grid:
            raise ValueError(
                f"from_physical: field shape {field.shape} must be (batch, S, S) with S "
                f"even and <= solver_grid={self.solver_grid}"
            )
        return _functions(self).from_physical(field)

    def step_physical(self, field: Any) -> jax.Array:
        """``to_physical(step(from_physical(field)))`` for vorticity ``(batch, M, M)``, in
        one compiled call."""
        field = jnp.asarray(field, jnp.float32)
        if field.ndim != 3 or field.shape[-2:] != (self.stored_grid, self.stored_grid):
            raise ValueError(f"step_physical: field shape {field.shape} must be (batch, "
                             f"{self.stored_grid}, {self.stored_grid})")
        return _functions(self).step_physical(field)

    def coordinates(self) -> list[Coordinate]:
        nodes = np.arange(self.stored_grid) * (2 * np.pi / self.stored_grid)
        return [
            ("y", nodes.copy(), {"units": "1", "long_name": "y position (grid nodes)"}),
            ("x", nodes.copy(), {"units": "1", "long_name": "x position (grid nodes)"}),
        ]

    def attrs(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self)]
        values = {n.replace("burn_in_time", "burn_in"): getattr(self, n) for n in names}
        derived = {"viscosity": self.viscosity, "inner_steps": self.inner_steps}
        return {"pde": self.pde, **values, **derived, "solver": _SOLVER}


MAX_INNER_STEPS = 100_000  # solver steps per stored state; more is a mistyped dt


def _validate(p: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first impossible parameter and what is allowed."""
    checks = [
        ("reynolds", p["reynolds"] > 0, "> 0"),
        ("drag", p["drag"] >= 0, ">= 0"),
        ("interval", p["interval"] > 0, "> 0"),
        ("burn_in", p["burn_in_time"] >= 0, ">= 0"),
        ("max_velocity", p["max_velocity"] > 0, "> 0"),
        ("max_courant", 0 < p["max_courant"] <= 1, "in (0, 1]"),
        ("peak_wavenumber", p["peak_wavenumber"] > 0, "> 0"),
        ("dt", p["dt"] is None or p["dt"] > 0, "> 0 or None"),
    ]
    for grid in ("solver_grid", "stored_grid"):
        n = p[grid]
        whole = isinstance(n, (int, np.integer))
        checks.append((grid, whole and n >= 8 and n % 2 == 0, "an even int >= 8"))
    n = p["solver_grid"]
    checks += [
        ("stored_grid", p["stored_grid"] <= n, f"<= solver_grid={n}"),
        (
            "forcing_wavenumber",
            1 <= p["forcing_wavenumber"] < n / 3,
            f"an int in [1, solver_grid/3={n / 3:.4g}) so the 2/3 rule keeps the forcing",
        ),
    ]
    for name, ok, allowed in checks:
        if not ok:
            value = p["burn_in_time"] if name == "burn_in" else p[name]
            raise ValueError(f"KolmogorovFlow: {name}={value!r} is not allowed; must be {allowed}")


def _inner_steps(p: dict[str, Any]) -> int:
    """Solver steps per interval: the largest step ≤ dt (or the CFL step) dividing it."""
    grid = _grid(p["solver_grid"])
    # Diffusion is treated implicitly (Crank–Nicolson), so only advection bounds dt.
    dt_max = cfd.equations.stable_time_step(
        p["max_velocity"], p["max_courant"], 1 / p["reynolds"], grid, implicit_diffusion=True
    )
    dt = p["dt"]
    if dt is not None and dt > dt_max * (1 + 1e-6):
        raise ValueError(
            f"KolmogorovFlow: dt={dt} exceeds the CFL-stable step {dt_max:.6g} "
            f"(max_velocity={p['max_velocity']}, max_courant={p['max_courant']}, "
            f"solver_grid={p['solver_grid']}); allowed: 0 < dt <= {dt_max:.6g}"
        )
    # The tolerance stops a resolved dt (from attrs) rounding up to one extra step.
    steps = p["interval"] / (dt or dt_max) * (1 - 1e-9)
    if not steps <= MAX_INNER_STEPS:
        raise ValueError(f"KolmogorovFlow: dt={dt!r} gives {steps:.3g} solver steps per stored "
                         f"state (interval={p['interval']}); allowed: at most {MAX_INNER_STEPS}")
    return max(1, math.ceil(steps))


def _grid(n: int) -> cfd.grids.Grid:
    return cfd.grids.Grid((n, n), domain=((0, 2 * np.pi), (0, 2 * np.pi)))


def _resize_spectrum(w_hat: jax.Array, size: int) -> jax.Array:
    """rfft2 coefficients ``(..., n, n//2+1)`` → ``(..., size, size//2+1)``.

    Keeps the modes |k_x|, |k_y| < min(n, size)/2 (truncation when coarsening, zero padding
    when refining; the Nyquist modes are dropped because a real field cannot carry them
    consistently across grids) and rescales by (size/n)² for numpy's FFT normalisation.
    """
    n = w_hat.shape[-2]
    h = min(n, size) // 2
    out = jnp.zeros(w_hat.shape[:-2] + (size, size // 2 + 1), w_hat.dtype)
    out = out.at[..., :h, :h].set(w_hat[..., :h, :h])
    out = out.at[..., size - h + 1 :, :h].set(w_hat[..., n - h + 1 :, :h])
    return out * (size / n) ** 2


class _Functions(NamedTuple):
    initial: Callable[[jax.Array], jax.Array]
    burn_in: Callable[[jax.Array], jax.Array]
    step: Callable[[jax.Array], jax.Array]
    trajectory: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]
    to_physical: Callable[[jax.Array], jax.Array]
    from_physical: Callable[[jax.Array], jax.Array]
    step_physical: Callable[[jax.Array], jax.Array]


@functools.lru_cache(maxsize=16)
def _functions(sim: KolmogorovFlow) -> _Functions:
    """Jitted batched functions, built once per parameter set (compilation is costly)."""
    n, m = sim.solver_grid, sim.stored_grid
    grid = _grid(n)
    step = jax.vmap(_interval_step(sim, grid))

    def to_physical(state: jax.Array) -> jax.Array:
        field = jnp.fft.irfft2(_resize_spectrum(state, m), s=(m, m))
        return jnp.swapaxes(field, -1, -2)  # jax-cfd [x, y] → stored [y, x]

    def from_physical(field: jax.Array) -> jax.Array:
        return _resize_spectrum(jnp.fft.rfft2(jnp.swapaxes(field, -1, -2)), n)

    def initial(keys: jax.Array) -> jax.Array:
        def one(key: jax.Array) -> jax.Array:
            v = cfd.initial_conditions.filtered_velocity_field(
                key, grid, sim.max_velocity, sim.peak_wavenumber
            )
            return cfd.finite_differences.curl_2d(v).data

        vorticity = jax.vmap(one)(keys)  # [x, y]
        return _resize_spectrum(jnp.fft.rfft2(vorticity), n)

    def trajectory(state: jax.Array, n_steps: int) -> tuple[jax.Array, jax.Array]:
        rollout = funcutils.trajectory(step, n_steps, to_physical, start_with_input=True)
        final, fields = rollout(state)
        return final, jnp.swapaxes(fields, 0, 1)

    return _Functions(
        initial=jax.jit(initial),
        burn_in=jax.jit(funcutils.repeated(step, sim.burn_in_steps)),
        step=jax.jit(step),
        trajectory=jax.jit(trajectory, static_argnums=1),
        to_physical=jax.jit(to_physical),
        from_physical=jax.jit(from_physical),
        step_physical=jax.jit(lambda field: to_physical(step(from_physical(field)))),
    )


def _interval_step(sim: KolmogorovFlow, grid: cfd.grids.Grid) -> Callable[[jax.Array], jax.Array]:
    """One stored interval (``inner_steps`` solver steps) for a single state ``(N, N//2+1)``."""

    def forcing(g: cfd.grids.Grid) -> forcings.ForcingFn:
        # Offset 0 samples sin(k y) on the nodes j·2π/N, matching the module's convention.
        return forcings.kolmogorov_forcing(
            g, scale=sim.forcing_amplitude, k=sim.forcing_wavenumber, offsets=((0, 0), (0, 0))
        )

    equation = spectral.equations.NavierStokes2D(
        sim.viscosity, grid, drag=sim.drag, smooth=True, forcing_fn=forcing
    )
    solver_step = spectral.time_stepping.crank_nicolson_rk4(equation, sim.dt)
    return funcutils.repeated(solver_step, sim.inner_steps)
