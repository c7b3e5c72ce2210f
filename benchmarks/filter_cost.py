"""Cost of one ensemble Kalman analysis: ours (JAX, jit, LETKF vmapped) against NumPy.

    python benchmarks/filter_cost.py [--repeats 15] [--json PATH]

The baseline is the same algorithm in plain NumPy in the same process, at the same
(float32) precision: the ETKF and EnKF as dense array code, the LETKF as the usual Python
loop over grid points, each point keeping only its observations inside the taper's
support. Sizes are those of the KS and Kolmogorov problems: a 1-D periodic grid of 64
points observed at every 8th point (m = 8) and a 32 × 32 grid observed at every 4th point
in each direction (m = 64), the localisation radius (Gaspari–Cohn half-width) 4 grid
spacings, N = 20 and 40 members; the LETKF also with its ``nearest=16`` observations per
point on the 2-D grid (exact here: no point has more than 12 inside the support). Each analysis is timed ``--repeats`` times after a warm-up
(the JIT compilation) and the table gives the min and median seconds and the ratio of the
medians, NumPy over ours: above 1 ours is faster. Before timing, both are checked to give
the same analysis. NumPy's BLAS and XLA's CPU backend run on one thread each unless
``OPENBLAS_NUM_THREADS`` or ``XLA_FLAGS`` are already set; on a GPU, only ours moves.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

# One thread each unless the caller says otherwise: at these sizes threading costs more than
# it gains (and on a shared machine makes the timings erratic); set before the imports.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import jax
import numpy as np

from assimilate.da.methods.enkf import enkf_analysis
from assimilate.da.methods.etkf import etkf_analysis
from assimilate.da.methods.letkf import Localisation, letkf_analysis

RADIUS = 4.0
NEAREST = 16  # covers the support: at most 12 sites of the 2-D lattice lie within 2 RADIUS


def numpy_gaspari_cohn(r: np.ndarray) -> np.ndarray:
    r = np.abs(r)
    inner = (((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r**2 + 1.0
    outer_r = np.clip(r, 1.0, 2.0)
    outer = (2.0 - outer_r) ** 4 * (outer_r**2 + 2.0 * outer_r - 0.5) / (12.0 * outer_r)
    return np.where(r <= 1.0, inner, np.where(r < 2.0, outer, 0.0))


def numpy_weights(S: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``etkf.transform_weights``: the eigendecomposition of the smaller Gram matrix."""
    n_members, m = S.shape
    c = n_members - 1
    if m < n_members:
        eigenvalues, V = np.linalg.eigh(S.T @ S)
        precision = np.maximum(eigenvalues, 0.0) + c
        U = S @ V
        f = -1.0 / (np.sqrt(precision) * (np.sqrt(c) + np.sqrt(precision)))
        return U @ ((V.T @ d) / precision), np.eye(n_members, dtype=S.dtype) + (U * f) @ U.T
    eigenvalues, V = np.linalg.eigh(S @ S.T)
    precision = np.maximum(eigenvalues, 0.0) + c
    return V @ ((V.T @ (S @ d)) / precision), (V * np.sqrt(c / precision)) @ V.T


def numpy_etkf(E, HE, y, error_std):
    mean, A = E.mean(axis=0), E - E.mean(axis=0)
    S = (HE - HE.mean(axis=0)) / error_std
    w, W = numpy_weights(S, (y - HE.mean(axis=0)) / error_std)
    return mean + (w + W) @ A


def numpy_letkf(E, HE, y, error_std, grid, sites, lengths):
    mean, A = E.mean(axis=0), E - E.mean(axis=0)
    S = (HE - HE.mean(axis=0)) / error_std
    d = (y - HE.mean(axis=0)) / error_std
    analysis = E.copy()
    for g in range(E.shape[1]):
        delta = np.abs(grid[g] - sites) % lengths
        distance = np.sqrt((np.minimum(delta, lengths - delta) ** 2).sum(axis=-1))
        local = distance < 2 * RADIUS
        if not local.any():
            continue
        taper = np.sqrt(numpy_gaspari_cohn(distance[local] / RADIUS)).astype(E.dtype)
        w, W = numpy_weights(S[:, local] * taper, d[local] * taper)
        analysis[:, g] = mean[g] + (w + W) @ A[:, g]
    return analysis


def numpy_enkf(noise, E, HE, y, error_std):
    A = E - E.mean(axis=0)
    S = (HE - HE.mean(axis=0)) / error_std
    D = (y - HE) / error_std + noise - noise.mean(axis=0)
    gram = S.T @ S + (E.shape[0] - 1) * np.eye(len(y), dtype=E.dtype)
    return E + D @ np.linalg.solve(gram, S.T @ A)


def problem(shape: tuple[int, ...], every: int, n_members: int, seed: int = 0) -> dict:
    """A smooth random ensemble on a periodic grid of spacing 1, observed on a lattice."""
    rng = np.random.default_rng(seed)
    axes = [np.arange(size, dtype=np.float32) for size in shape]
    grid = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], -1)
    on_lattice = np.all(grid % every == 0, axis=1)
    sites = np.flatnonzero(on_lattice)
    E = rng.standard_normal((n_members, *shape)).cumsum(axis=-1).reshape(n_members, -1)
    E = E.astype(np.float32)
    return {"E": E, "HE": E[:, sites], "y": rng.standard_normal(len(sites)).astype(np.float32),
            "error_std": np.full(len(sites), 0.5, np.float32), "grid": grid,
            "sites": grid[sites], "lengths": np.array(shape, np.float32)}


def timings(run: Callable[[], object], repeats: int) -> list[float]:
    jax.block_until_ready(run())  # warm-up: compilation
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        seconds.append(time.perf_counter() - start)
    return seconds


def cases(p: dict) -> dict[str, tuple[Callable, Callable]]:
    """``method: (numpy, ours)`` closures on problem ``p``, checked to agree."""
    key = jax.random.key(0)
    noise = np.asarray(jax.random.normal(key, p["HE"].shape, np.float32))
    args = (p["E"], p["HE"], p["y"], p["error_std"])
    locations = (p["grid"], p["sites"], p["lengths"], RADIUS)
    methods = {
        "ETKF": (lambda: numpy_etkf(*args), lambda: etkf_analysis(*args)),
        "EnKF": (lambda: numpy_enkf(noise, *args), lambda: enkf_analysis(key, *args)),
        "LETKF": (lambda: numpy_letkf(*args, p["grid"], p["sites"], p["lengths"]),
                  lambda: letkf_analysis(*args, localisation=Localisation(*locations))),
    }
    if len(p["y"]) > NEAREST:
        methods[f"LETKF, {NEAREST} nearest"] = (methods["LETKF"][0], lambda: letkf_analysis(
            *args, localisation=Localisation(*locations, nearest=NEAREST)))
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    options = parser.parse_args()
    rows = []
    for label, shape, every in (("1-D 64", (64,), 8), ("2-D 32×32", (32, 32), 4)):
        for n_members in (20, 40):
            p = problem(shape, every, n_members)
            for method, (baseline, ours) in cases(p).items():
                np.testing.assert_allclose(np.asarray(ours()), baseline(), atol=2e-3,
                                           err_msg=f"{method} on {label}, N={n_members}")
                slow, fast = timings(baseline, options.repeats), timings(ours, options.repeats)
                rows.append({"method": method, "grid": label, "n": p["E"].shape[1],
                             "m": len(p["y"]), "N": n_members, "numpy_min": min(slow),
                             "numpy_median": float(np.median(slow)), "ours_min": min(fast),
                             "ours_median": float(np.median(fast)),
                             "ratio": float(np.median(slow) / np.median(fast)),
                             "ratio_min": min(slow) / min(fast)})
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {options.repeats} repeats, "
          "seconds per analysis (float32)\n")
    print("| method | grid | n | m | N | NumPy min | NumPy median | ours min | ours median "
          "| NumPy/ours (median) | NumPy/ours (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['grid']} | {r['n']} | {r['m']} | {r['N']} | "
              f"{r['numpy_min']:.2e} | {r['numpy_median']:.2e} | {r['ours_min']:.2e} | "
              f"{r['ours_median']:.2e} | {r['ratio']:.1f} | {r['ratio_min']:.1f} |")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
