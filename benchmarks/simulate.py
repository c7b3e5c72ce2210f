"""Simulator and store throughput, each against a baseline measured in the same run.

    python benchmarks/simulate.py [--quick]

1. Kuramoto-Sivashinsky: grid-point updates per second of the batched ETDRK4 solver,
   against an FFT floor: a jitted loop doing only the scheme's FFT pairs (ETDRK4 needs
   four nonlinear evaluations per step, each one inverse plus one forward real FFT)
   over the same batch, in the same precision.
2. Kolmogorov flow: stored states per second of ``simulate`` end to end (initial
   conditions, burn-in, trajectory, coarsening, Zarr writes, bookkeeping), against a
   bare ``jax_cfd.spectral`` trajectory call of the same configuration. Both are timed
   warm (compiled once before timing).
3. Zarr writes: MB/s of the store's region writes (xarray, with the completion mask)
   against bare zarr-python writes of the same chunks and ``numpy.save`` of the same
   bytes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import zarr

from assimilate.config import load_config
from pde import simulate
from pde.io.store import create_store, time_chunk, write_trajectories
from pde.kuramoto_sivashinsky import KuramotoSivashinsky

REPO = Path(__file__).resolve().parents[1]
FFT_PAIRS_PER_STEP = 4


def best_of(function, repeats: int = 3) -> float:
    """Smallest wall time of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def ks_row(batch: int, n_points: int, dtype: str, n_steps: int) -> tuple:
    sim = KuramotoSivashinsky(length=22.0 * n_points / 64, n_points=n_points, dt=0.05,
                              interval=0.2, burn_in=0.0, dtype=dtype)
    state = sim.initial_state(jax.random.PRNGKey(0), batch)
    solver = best_of(lambda: sim.trajectory(state, n_steps))
    solver_steps = n_steps * sim.inner_steps

    with jax.enable_x64(dtype == "float64"):
        u = jnp.asarray(np.random.default_rng(0).standard_normal((batch, n_points)), dtype)

        @jax.jit
        def floor(u):
            def body(v, _):
                for _ in range(FFT_PAIRS_PER_STEP):
                    v = jnp.fft.irfft(jnp.fft.rfft(v), n=n_points)
                return v, None
            return jax.lax.scan(body, u, None, length=solver_steps)[0]

        fft = best_of(lambda: floor(u).block_until_ready())
    updates = batch * n_points * solver_steps
    return batch, n_points, dtype, updates / solver, updates / fft, fft / solver


def kolmogorov_row(n_traj: int, n_steps: int) -> tuple:
    import jax_cfd.base as cfd
    from jax_cfd import spectral
    from jax_cfd.base import forcings

    config = load_config(REPO / "configs" / "kolmogorov-small.yaml").with_dataset(
        trajectories=n_traj, steps=n_steps, batch_size=n_traj)
    sim = config.simulator.build()
    scratch = Path(tempfile.mkdtemp())

    def end_to_end():
        shutil.rmtree(scratch / "store.zarr", ignore_errors=True)
        simulate(config, scratch / "store.zarr", progress=False)

    grid = cfd.grids.Grid((sim.solver_grid,) * 2, domain=((0, 2 * np.pi),) * 2)
    equation = spectral.equations.NavierStokes2D(
        sim.viscosity, grid, drag=sim.drag, smooth=True,
        forcing_fn=lambda g: forcings.kolmogorov_forcing(g, scale=sim.forcing_amplitude,
                                                          k=sim.forcing_wavenumber))
    step = spectral.time_stepping.crank_nicolson_rk4(equation, sim.dt)
    interval = cfd.funcutils.repeated(step, sim.inner_steps)
    burn = jax.jit(jax.vmap(cfd.funcutils.repeated(interval, sim.burn_in_steps)))
    roll = jax.jit(jax.vmap(cfd.funcutils.trajectory(interval, n_steps)))
    initial = sim.initial_state(jax.random.PRNGKey(0), n_traj)

    def bare():
        roll(burn(initial))[1].block_until_ready()

    try:
        ours, reference = best_of(end_to_end, 2), best_of(bare, 2)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    states = n_traj * n_steps
    return sim.solver_grid, sim.stored_grid, states / ours, states / reference, reference / ours


def zarr_row(n_traj: int, n_steps: int, size: int) -> tuple:
    config = load_config(REPO / "configs" / "kolmogorov-small.yaml")
    config = config.model_validate(config.model_dump() | {
        "simulator": config.simulator.model_dump() | {"stored_grid": size, "solver_grid": size},
        "dataset": config.dataset.model_dump() | {"trajectories": n_traj, "steps": n_steps},
    })
    sim = config.simulator.build()
    fields = np.random.default_rng(0).standard_normal((n_traj, n_steps, size, size), np.float32)
    scratch = Path(tempfile.mkdtemp())

    def store_write():
        shutil.rmtree(scratch / "s.zarr", ignore_errors=True)
        create_store(scratch / "s.zarr", config, sim)
        for start in range(n_traj):
            write_trajectories(scratch / "s.zarr", "vorticity", start, fields[start:start + 1])

    def raw_zarr_write():
        shutil.rmtree(scratch / "raw.zarr", ignore_errors=True)
        chunks = (1, time_chunk(n_steps, (size, size)), size, size)
        array = zarr.create_array(scratch / "raw.zarr", shape=fields.shape, chunks=chunks,
                                  dtype="f4")
        for start in range(n_traj):
            array[start:start + 1] = fields[start:start + 1]

    def numpy_write():
        np.save(scratch / "raw.npy", fields)

    try:
        ours, raw, reference = (best_of(f, 2) for f in (store_write, raw_zarr_write, numpy_write))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    megabytes = fields.nbytes / 1e6
    return megabytes, megabytes / ours, megabytes / raw, megabytes / reference, reference / ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    steps = 20 if args.quick else 100
    print(f"devices: {jax.devices()}\n")

    print("Kuramoto-Sivashinsky ETDRK4 (grid-point updates/s; floor = 4 rFFT pairs/step)")
    print(f"{'batch':>6} {'N':>5} {'dtype':>8} {'solver':>11} {'FFT floor':>11} {'ratio':>6}")
    for n_points, batches in ((64, (1, 16, 256, 1024)), (256, (256, 1024))):
        for batch in batches:
            for dtype in ("float64", "float32"):
                b, n, d, solver, floor, ratio = ks_row(batch, n_points, dtype, steps)
                print(f"{b:>6} {n:>5} {d:>8} {solver:>11.3g} {floor:>11.3g} {ratio:>6.2f}")

    print("\nKolmogorov flow (stored states/s; baseline = bare jax_cfd.spectral trajectory)")
    print(f"{'solver':>6} {'stored':>6} {'simulate':>9} {'bare':>9} {'ratio':>6}")
    row = kolmogorov_row(4, 25 if args.quick else 150)
    print(f"{row[0]:>5}² {row[1]:>5}² {row[2]:>9.1f} {row[3]:>9.1f} {row[4]:>6.2f}")

    print("\nZarr region writes vs numpy.save of the same bytes (MB/s)")
    print(f"{'MB':>7} {'store':>8} {'raw zarr':>9} {'numpy':>8} {'ratio':>6}")
    row = zarr_row(16, 50 if args.quick else 200, 128)
    print(f"{row[0]:>7.0f} {row[1]:>8.0f} {row[2]:>9.0f} {row[3]:>8.0f} {row[4]:>6.2f}")


if __name__ == "__main__":
    main()
