r"""Physical quantities of stored fields, in NumPy: one implementation of each.

The simulators' descriptors (:mod:`pde.descriptor`) name which of these belong to which
PDE; metrics, diagnostics and evaluation reach them only through a descriptor (or, for
the spectra, through the geometry of the field). Importable without JAX.

Fields are arrays ``(..., x)`` on N points of a periodic line, or ``(..., y, x)`` on the
periodic square [0, 2π]² (integer wavenumbers); leading dims index fields. Precision:
transforms run in the field's precision (float32 stays float32, as in NumPy's and SciPy's
FFTs: a one-pass reduction over a float32 store moves half the bytes), sums accumulate in
float64 and results are float64. Cast to float64 first for float64 accuracy.

- ``spectrum_1d``: ½|û_m|²/N² per mode m = 0..N/2, modes ±m together;
- ``spectrum_2d``: ½|ŵ_k|²/(ny nx)² summed over shells of integer |k| = round(√(kx²+ky²)),
  0..min(ny, nx)/2, the corner modes beyond dropped. Both sum to ½⟨f²⟩ (Parseval) when
  nothing is dropped; for a vorticity field the 2-D one is the enstrophy spectrum;
- ``total_variation`` Σ_i |u_{i+1} − u_i| (periodic), the KS metric of arXiv 2510.06637;
- ``vorticity_statistics``: kinetic energy ½⟨|u|²⟩, enstrophy ½⟨ω²⟩, dissipation
  ν⟨|∇u|²⟩ = 2ν·enstrophy and the summed spectrum of vorticity fields, from one FFT.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "VorticityStatistics",
    "dissipation",
    "energy",
    "enstrophy",
    "n_wavenumbers",
    "spectrum_1d",
    "spectrum_2d",
    "total_variation",
    "vorticity_statistics",
]


def n_wavenumbers(space_shape: tuple[int, ...]) -> int:
    """Length of the spectrum of a field on ``space_shape``: min(N) // 2 + 1."""
    return min(space_shape) // 2 + 1


def spectrum_1d(u: Any) -> np.ndarray:
    """Energy per Fourier mode ``(..., N//2 + 1)``, float64; sums to ½⟨u²⟩."""
    u = np.asarray(u)
    n = u.shape[-1]
    energy = 0.5 * np.abs(np.fft.rfft(u, axis=-1) / n) ** 2
    energy[..., 1:(n + 1) // 2] *= 2  # the negative wavenumbers
    return energy.astype(np.float64, copy=False)


def spectrum_2d(w: Any) -> np.ndarray:
    """Isotropic spectrum ``(..., min(ny, nx)//2 + 1)`` of fields ``(..., y, x)``, float64."""
    w = _real(w)
    power, _ = _power(w)
    shells = _tables(*w.shape[-2:], w.dtype.str).shells
    spectra = 0.5 * (np.asarray(power, dtype=np.float64) @ shells)
    return spectra.reshape(*w.shape[:-2], shells.shape[1])


def total_variation(u: Any) -> np.ndarray:
    """Σ_i |u_{i+1} − u_i| along the last (periodic) axis, ``(...)`` float64."""
    u = np.asarray(u)
    return np.abs(np.diff(u, axis=-1, append=u[..., :1])).sum(-1, dtype=np.float64)


class VorticityStatistics(NamedTuple):
    """Per field ``(...)`` float64, and the spectrum summed over the fields."""

    energy: np.ndarray
    enstrophy: np.ndarray
    dissipation: np.ndarray | None  # None without a viscosity
    spectrum_sum: np.ndarray  # (min(ny, nx)//2 + 1,)


def vorticity_statistics(w: Any, viscosity: float | None = None) -> VorticityStatistics:
    r"""Energy, enstrophy, dissipation and summed spectrum of vorticity ``(..., y, x)``.

    Energy ½⟨|u|²⟩ = ½ Σ_{k≠0} |ω̂_k|² / |k|² (|û_k| = |ω̂_k| / |k| through the
    streamfunction; the mean flow k = 0 is not determined by ω and counts as zero);
    enstrophy ½⟨ω²⟩ by Parseval; dissipation ε = ν⟨|∇u|²⟩ = ν⟨ω²⟩ (periodic,
    incompressible). All from one real FFT of the fields.
    """
    w = _real(w)
    ny, nx = w.shape[-2:]
    power, scratch = _power(w)
    tables = _tables(ny, nx, w.dtype.str)
    weighted = np.multiply(power, tables.inverse_k2, out=scratch)
    energy = 0.5 * weighted.sum(-1, dtype=np.float64).reshape(w.shape[:-2])
    enstrophy = 0.5 * power.sum(-1, dtype=np.float64).reshape(w.shape[:-2])
    spectrum_sum = 0.5 * (power.sum(0, dtype=np.float64) @ tables.shells)
    rate = None if viscosity is None else 2.0 * float(viscosity) * enstrophy
    return VorticityStatistics(energy, enstrophy, rate, spectrum_sum)


def energy(vorticity: Any) -> np.ndarray:
    """Mean kinetic energy ½⟨|u|²⟩ of vorticity fields ``(..., y, x)`` → ``(...)``, float64."""
    return vorticity_statistics(np.asarray(vorticity, dtype=np.float64)).energy


def enstrophy(vorticity: Any) -> np.ndarray:
    """Mean enstrophy ½⟨ω²⟩ over the last two axes ``(..., y, x)`` → ``(...)``, float64."""
    return vorticity_statistics(np.asarray(vorticity, dtype=np.float64)).enstrophy


def dissipation(vorticity: Any, viscosity: float) -> np.ndarray:
    """Energy dissipation rate ε = ν⟨|∇u|²⟩ = ν⟨ω²⟩ (periodic, incompressible), ``(...)``."""
    return vorticity_statistics(np.asarray(vorticity, dtype=np.float64), viscosity).dissipation


# --- the 2-D transform ----------------------------------------------------------------------


class _Tables(NamedTuple):
    weight: np.ndarray  # (nx//2 + 1,): |rfft2 coefficient|² → share of ⟨w²⟩
    inverse_k2: np.ndarray  # (ny (nx//2 + 1),): 1/|k|², 0 at k = 0
    shells: np.ndarray  # (ny (nx//2 + 1), n_shells) float64: 1 where round(|k|) is the shell


@functools.cache
def _tables(ny: int, nx: int, dtype: str) -> _Tables:
    """Weights of the ``rfft2`` half-plane of a (ny, nx) field, in ``dtype``: interior
    columns stand for their mirror images too and count twice."""
    weight = np.full(nx // 2 + 1, 2.0)
    weight[0] = 1.0
    if nx % 2 == 0:
        weight[-1] = 1.0
    ky = np.fft.fftfreq(ny, 1 / ny)[:, None]
    kx = np.fft.rfftfreq(nx, 1 / nx)[None, :]
    k2 = (kx**2 + ky**2).ravel()
    inverse = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    shell = np.rint(np.sqrt(k2)).astype(int)
    shells = (shell[:, None] == np.arange(n_wavenumbers((ny, nx)))[None, :]).astype(np.float64)
    return _Tables((weight / (ny * nx) ** 2).astype(dtype), inverse.astype(dtype), shells)


def _real(w: Any) -> np.ndarray:
    w = np.asarray(w)
    return w if w.dtype in (np.float32, np.float64) else w.astype(np.float64)


def _power(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(power, scratch)``, both ``(fields, ny (nx//2 + 1))`` in ``w``'s precision: the
    half-plane |ŵ|², weighted so that each row sums to ⟨w²⟩, and a free array of that shape.

    Both live in the FFT's own output (its real and imaginary parts): no other temporary of
    the chunk's size, which matters on Dask workers, where glibc does not reuse large freed
    blocks and every fresh one is mapped and zeroed again.
    """
    import scipy.fft  # here: configurations import the descriptors, and scipy.fft is slow to load

    ny, nx = w.shape[-2:]
    # scipy's FFT keeps float32 input in float32, like numpy's, and was 10x faster here
    coefficients = scipy.fft.rfft2(w.reshape(-1, ny, nx), axes=(-2, -1))
    power, scratch = coefficients.real, coefficients.imag
    np.multiply(power, power, out=power)
    np.multiply(scratch, scratch, out=scratch)
    power += scratch
    power *= _tables(ny, nx, w.dtype.str).weight
    flat = (len(power), ny * (nx // 2 + 1))
    return power.reshape(flat), scratch.reshape(flat)
