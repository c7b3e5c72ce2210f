"""The simulator descriptors: one registry, and series and spectra against independent
definitions written out here."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from assimilate.evaluation import scores
from assimilate.evaluation.defaults import DEFAULTS, evaluation_defaults
from pde import physics
from pde.config import _SECTIONS, SimulationConfig
from pde.descriptor import (
    DESCRIPTORS,
    KOLMOGOROV,
    KURAMOTO_SIVASHINSKY,
    descriptor,
    descriptor_of,
    find,
    series_names,
)
from tests.conftest import TINY_KOLMOGOROV, TINY_KS


@pytest.mark.parametrize("config", [TINY_KS, TINY_KOLMOGOROV], ids=lambda c: c["simulator"]["pde"])
def test_descriptor_matches_its_simulator_and_configuration(config: dict) -> None:
    simulator = SimulationConfig.model_validate(config).simulator.build()
    found = descriptor_of(simulator)
    assert found is descriptor(simulator.pde) is descriptor_of(simulator.attrs())
    assert isinstance(simulator, found.simulator_class())
    assert simulator.variable == found.variable
    assert tuple(name for name, _, _ in simulator.coordinates()) == found.space
    assert found.parameters(simulator.attrs()).keys() == {key for _, key in found.requires}


def test_one_registry_for_configurations_and_descriptors() -> None:
    assert set(_SECTIONS) == set(DESCRIPTORS)
    assert series_names() == ("energy", "enstrophy", "dissipation", "total_variation",
                              "area_mean", "area_max", "area_min")


def test_every_pde_has_evaluation_defaults_naming_its_series() -> None:
    assert set(DEFAULTS) == set(DESCRIPTORS)
    for name, defaults in DEFAULTS.items():
        found = descriptor(name)
        assert defaults.assimilation.series in found.series_names
        assert {series for _, series in defaults.forecast.climatology_errors} <= set(
            found.series_names)
        assert evaluation_defaults(name) is defaults
    with pytest.raises(ValueError, match="no evaluation defaults for pde 'burgers'; known: "):
        evaluation_defaults("burgers")


def test_unknown_pde_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown pde 'burgers'; known: kolmogorov, "
                                         "kuramoto_sivashinsky, imported"):
        descriptor("burgers")
    assert find("burgers") is None and find(None) is None
    with pytest.raises(ValueError, match="names no pde"):
        descriptor_of({"viscosity": 1.0})
    store_like = xr.Dataset(attrs={"pde": "kolmogorov"})
    assert descriptor_of(store_like) is descriptor_of(store_like.attrs) is KOLMOGOROV


def reference_vorticity(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy, enstrophy and per-field shell spectrum from the full-plane FFT, by loops."""
    ny, nx = w.shape[-2:]
    power = np.abs(np.fft.fft2(w.astype(np.float64))) ** 2 / (ny * nx) ** 2
    ky, kx = np.meshgrid(np.fft.fftfreq(ny, 1 / ny), np.fft.fftfreq(nx, 1 / nx), indexing="ij")
    k2 = kx**2 + ky**2
    energy = 0.5 * (power * np.where(k2 > 0, 1 / np.where(k2 > 0, k2, 1), 0)).sum((-2, -1))
    shells = np.rint(np.sqrt(k2)).astype(int)
    spectrum = np.stack([0.5 * (power * (shells == k)).sum((-2, -1))
                         for k in range(min(ny, nx) // 2 + 1)], axis=-1)
    return energy, 0.5 * (w.astype(np.float64) ** 2).mean((-2, -1)), spectrum


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 9, 7), (4, 6, 5), (8, 8)])
def test_kolmogorov_series_and_spectrum_match_their_definitions(shape) -> None:
    w = np.random.default_rng(5).standard_normal(shape)
    energy, enstrophy, spectrum = reference_vorticity(w)
    measured = KOLMOGOROV.measure(w, {"viscosity": 0.025})
    np.testing.assert_allclose(measured.series["energy"], energy, rtol=1e-12)
    np.testing.assert_allclose(measured.series["enstrophy"], enstrophy, rtol=1e-12)
    np.testing.assert_allclose(measured.series["dissipation"], 0.05 * enstrophy, rtol=1e-12)
    flat = spectrum.reshape(-1, spectrum.shape[-1])
    np.testing.assert_allclose(measured.spectrum_sum, flat.sum(0), rtol=1e-12)
    np.testing.assert_allclose(KOLMOGOROV.spectrum(w), spectrum, rtol=1e-12, atol=1e-300)
    assert KOLMOGOROV.n_wavenumbers(shape[-2:]) == spectrum.shape[-1]
    # float32 fields are transformed in float32: agreement to float32 rounding
    single = KOLMOGOROV.measure(w.astype(np.float32), {})
    assert set(single.series) == {"energy", "enstrophy"} == set(KOLMOGOROV.available_series())
    np.testing.assert_allclose(single.series["energy"], energy, rtol=1e-5)
    assert single.series["energy"].dtype == np.float64


def test_kuramoto_sivashinsky_series_by_hand() -> None:
    u = np.array([[0.0, 1.0, 0.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    measured = KURAMOTO_SIVASHINSKY.measure(u, {})
    assert set(measured.series) == set(KURAMOTO_SIVASHINSKY.available_series({}))
    np.testing.assert_allclose(measured.series["total_variation"], [4.0, 0.0])
    np.testing.assert_allclose(measured.series["energy"], [0.25, 2.0])
    # the mode-1 wave holds all of the first row's energy, the mean all of the second's
    np.testing.assert_allclose(KURAMOTO_SIVASHINSKY.spectrum(u), [[0, 0.25, 0], [2.0, 0, 0]],
                               atol=1e-15)
    np.testing.assert_allclose(measured.spectrum_sum, [2.0, 0.25, 0.0], atol=1e-15)


def test_dissipation_needs_the_viscosity() -> None:
    assert KOLMOGOROV.available_series({"viscosity": None}) == ("energy", "enstrophy")
    assert KOLMOGOROV.available_series({"viscosity": 1e-3}) == KOLMOGOROV.series_names
    w = np.random.default_rng(0).standard_normal((3, 8, 8))
    np.testing.assert_allclose(KOLMOGOROV.series(w, {"viscosity": 1e-3})["dissipation"],
                               physics.dissipation(w, 1e-3), rtol=1e-12)


def test_scores_spectrum_is_the_descriptors_and_stays_lazy() -> None:
    w = xr.DataArray(np.random.default_rng(1).standard_normal((4, 3, 8, 8)),
                     dims=("time", "member", "y", "x")).chunk({"time": 1})
    lazy = scores.energy_spectrum(w)
    assert lazy.chunks is not None, "the spectrum of a Dask field stays lazy"
    np.testing.assert_allclose(lazy.values, KOLMOGOROV.spectrum(w.values), rtol=1e-12)
    u = w.isel(y=0)
    np.testing.assert_allclose(scores.energy_spectrum(u).values,
                               KURAMOTO_SIVASHINSKY.spectrum(u.values), rtol=1e-12)
    np.testing.assert_allclose(scores.total_variation(u).values,
                               KURAMOTO_SIVASHINSKY.series(u.values)["total_variation"])


def test_the_imported_spectrum_finds_a_wave_and_does_not_leak_a_ramp() -> None:
    from pde.descriptor import IMPORTED

    ny, nx = 33, 49
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    wave = np.cos(2 * np.pi * 6 * x / nx)
    assert int(np.argmax(IMPORTED.spectrum(wave))) == 6
    ramp = 0.1 * x + 0.05 * y  # a regional gradient: no wave, but an edge if wrapped
    tapered = IMPORTED.spectrum(ramp)
    wrapped = physics.spectrum_2d(ramp - ramp.mean())
    high = slice(8, None)
    assert tapered[high].sum() / tapered.sum() < 0.1 * wrapped[high].sum() / wrapped.sum()
