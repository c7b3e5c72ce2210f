"""What the rest of the system knows about each PDE, declared once per PDE.

A :class:`Descriptor` holds a simulator's registry name (``pde:`` in a configuration, the
``pde`` attribute of every store and output), its stored field and spatial dims, its
physical series and energy spectrum as functions of field arrays (:mod:`pde.physics`),
and the simulator class. Code outside :mod:`pde` asks for a descriptor (:func:`descriptor`,
:func:`descriptor_of`) instead of switching on a PDE name: a third model is its simulator
file, its configuration section (:mod:`pde.config`) and one more descriptor here (and,
to be evaluated, its entry in :mod:`assimilate.evaluation.defaults`).

Imported data (``assimilate import``: a reanalysis, any gridded product) have a descriptor
too, :data:`IMPORTED`, with no simulator: its variable is the store's own (``variable``
attribute), its space latitude by longitude, not periodic, and its series the area mean
(weighted by the cosine of latitude), maximum and minimum.

The functions take NumPy arrays ``(..., *space)`` (any leading dims, space last, as in a
Dask chunk or ``xarray.apply_ufunc`` with the space dims as core dims) and return float64.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from pde import physics

__all__ = [
    "DESCRIPTORS",
    "IMPORTED",
    "KOLMOGOROV",
    "KURAMOTO_SIVASHINSKY",
    "Descriptor",
    "Measures",
    "descriptor",
    "descriptor_of",
    "find",
    "series_names",
]


class Measures(NamedTuple):
    """The physical series ``{name: (...)}`` of fields ``(..., *space)`` and their
    spectrum summed over the fields ``(n_wavenumbers,)``, float64, from one pass."""

    series: dict[str, np.ndarray]
    spectrum_sum: np.ndarray


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """One PDE as the rest of the system sees it.

    ``measure(field, attrs)`` is the one implementation of the physical series and the
    summed spectrum; ``attrs`` are the simulator's attributes (a store's attrs), from which
    a series takes its parameters (``requires``: ``(series, attribute)`` pairs; without the
    attribute the series is left out). ``spectrum(field)`` is the per-field energy spectrum
    ``(..., n_wavenumbers)`` of the same definition.
    """

    name: str
    variable: str
    space: tuple[str, ...]
    simulator: str | None  # "module:Class", imported when asked for (JAX is slow to import)
    series_names: tuple[str, ...]
    measure: Callable[[np.ndarray, Mapping[str, Any]], Measures]
    spectrum: Callable[[np.ndarray], np.ndarray]
    requires: tuple[tuple[str, str], ...] = ()
    periodic: bool = True

    def series(self, field: Any, attrs: Mapping[str, Any] | None = None
               ) -> dict[str, np.ndarray]:
        """The physical series ``{name: (...)}`` of fields ``(..., *space)``."""
        return self.measure(np.asarray(field), attrs or {}).series

    def available_series(self, attrs: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The names :meth:`series` returns given the simulator attributes ``attrs``."""
        attrs = attrs or {}
        missing = {name for name, key in self.requires if attrs.get(key) is None}
        return tuple(name for name in self.series_names if name not in missing)

    def parameters(self, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Those of the simulator attributes ``attrs`` that the series use."""
        attrs = attrs or {}
        return {key: attrs[key] for _, key in self.requires if attrs.get(key) is not None}

    def n_wavenumbers(self, space_shape: tuple[int, ...]) -> int:
        """Length of the spectrum of a field of spatial shape ``space_shape``."""
        return physics.n_wavenumbers(space_shape)

    def simulator_class(self) -> type:
        """The simulator class (implements :class:`pde.simulator.Simulator`)."""
        if self.simulator is None:
            raise ValueError(f"{self.name} data have no simulator: there is no true model to "
                             "run; use the learned one (model=forecaster)")
        module, name = self.simulator.split(":")
        return getattr(importlib.import_module(module), name)


def _kuramoto_sivashinsky(u: np.ndarray, attrs: Mapping[str, Any]) -> Measures:
    spectra = physics.spectrum_1d(u)
    series = {"total_variation": physics.total_variation(u),
              "energy": spectra.sum(-1)}  # ½⟨u²⟩ by Parseval
    return Measures(series, spectra.reshape(-1, spectra.shape[-1]).sum(0))


def _kolmogorov(w: np.ndarray, attrs: Mapping[str, Any]) -> Measures:
    viscosity = attrs.get("viscosity")
    found = physics.vorticity_statistics(w, None if viscosity is None else float(viscosity))
    series = {"energy": found.energy, "enstrophy": found.enstrophy}
    if found.dissipation is not None:
        series["dissipation"] = found.dissipation
    return Measures(series, found.spectrum_sum)


def _imported(field: np.ndarray, attrs: Mapping[str, Any]) -> Measures:
    field = np.asarray(field, dtype=np.float64)
    weights = np.ones(field.shape[-2])
    if attrs.get("latitude") is not None:  # a regular grid from the first to the last
        first, last = (float(v) for v in attrs["latitude"])
        weights = np.cos(np.deg2rad(np.linspace(first, last, field.shape[-2])))
    weights = weights[:, None] / (weights.sum() * field.shape[-1])
    series = {"area_mean": (field * weights).sum((-2, -1)),
              "area_max": field.max((-2, -1)), "area_min": field.min((-2, -1))}
    spectra = _regional_spectrum(field)
    return Measures(series, spectra.reshape(-1, spectra.shape[-1]).sum(0))


def _regional_spectrum(field: np.ndarray) -> np.ndarray:
    """The isotropic spectrum of the anomaly from each field's mean, tapered to zero at the
    edges by a Hann window: a regional field is not periodic, and its edges' jump would
    otherwise leak power to every wavenumber."""
    field = np.asarray(field, dtype=np.float64)
    window = np.outer(np.hanning(field.shape[-2] + 2)[1:-1], np.hanning(field.shape[-1] + 2)[1:-1])
    anomaly = field - field.mean((-2, -1), keepdims=True)
    return physics.spectrum_2d(anomaly * window / np.sqrt((window ** 2).mean()))


KURAMOTO_SIVASHINSKY = Descriptor(
    name="kuramoto_sivashinsky",
    variable="u",
    space=("x",),
    simulator="pde.kuramoto_sivashinsky:KuramotoSivashinsky",
    series_names=("total_variation", "energy"),
    measure=_kuramoto_sivashinsky,
    spectrum=physics.spectrum_1d,
)

KOLMOGOROV = Descriptor(
    name="kolmogorov",
    variable="vorticity",
    space=("y", "x"),
    simulator="pde.kolmogorov:KolmogorovFlow",
    series_names=("energy", "enstrophy", "dissipation"),
    measure=_kolmogorov,
    spectrum=physics.spectrum_2d,
    requires=(("dissipation", "viscosity"),),
)

IMPORTED = Descriptor(
    name="imported",
    variable="field",  # a template: each store names its own (descriptor_of)
    space=("y", "x"),
    simulator=None,
    series_names=("area_mean", "area_max", "area_min"),
    measure=_imported,
    spectrum=_regional_spectrum,
    periodic=False,
)

DESCRIPTORS: Mapping[str, Descriptor] = types.MappingProxyType(
    {d.name: d for d in (KOLMOGOROV, KURAMOTO_SIVASHINSKY, IMPORTED)})


def descriptor(name: str) -> Descriptor:
    """The descriptor registered as ``name``; a ``ValueError`` lists the known names."""
    found = find(name)
    if found is None:
        raise ValueError(f"unknown pde {name!r}; known: {', '.join(DESCRIPTORS)}")
    return found


def find(name: Any) -> Descriptor | None:
    """The descriptor registered as ``name``, or None (for data of unknown origin)."""
    return DESCRIPTORS.get(name) if isinstance(name, str) else None


def descriptor_of(source: Any) -> Descriptor:
    """The descriptor of a simulator (its ``pde``), a Dataset or store (its ``attrs``), or
    an attribute mapping (its ``"pde"``)."""
    if isinstance(getattr(source, "pde", None), str):
        return descriptor(source.pde)
    attrs = getattr(source, "attrs", source)
    if not isinstance(attrs, Mapping) or "pde" not in attrs:
        raise ValueError(f"{type(source).__name__} names no pde (no 'pde' attribute); "
                         f"known: {', '.join(DESCRIPTORS)}")
    found = descriptor(attrs["pde"])
    if found.simulator is None and isinstance(attrs.get("variable"), str):
        return dataclasses.replace(found, variable=attrs["variable"])
    return found


def series_names() -> tuple[str, ...]:
    """Every physical series some PDE defines, each once, in registry order."""
    return tuple(dict.fromkeys(name for d in DESCRIPTORS.values() for name in d.series_names))
