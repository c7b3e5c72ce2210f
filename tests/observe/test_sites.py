"""Stations between grid points: bilinear weights, drawn and withheld networks, station
files, and the imported regimes on the shipped ERA5 cut-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.observe import observe
from assimilate.observe.regimes import load_regime
from assimilate.observe.sites import bilinear, draw_sites, read_sites
from pde.ingest import import_data
from pde.io.errors import ConfigError

LAT, LON = np.linspace(50, 58, 33), np.linspace(-10, 2, 49)
SPACE = (33, 49)
NETCDF = Path(__file__).resolve().parents[2] / "examples" / "era5" / "era5-t2m-uk-2019-03.nc"


def test_bilinear_weights_are_exact_for_a_plane_and_sum_to_one() -> None:
    sites = np.array([[51.1, -3.3], [57.99, 1.99], [50.0, -10.0], [54.25, 0.5], [58.0, 2.0]])
    operator = bilinear(SPACE, [LAT, LON], sites)
    lat, lon = np.meshgrid(LAT, LON, indexing="ij")
    plane = 280.0 + 0.7 * lat - 0.3 * lon + 0.05 * lat * lon  # bilinear: reproduced exactly
    expected = 280.0 + 0.7 * sites[:, 0] - 0.3 * sites[:, 1] + 0.05 * sites[:, 0] * sites[:, 1]
    np.testing.assert_allclose(operator.apply(plane), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(operator.weights.sum(1), 1.0)
    assert (operator.weights >= 0).all() and operator.support == 4
    on_node = operator.weights[3]  # 54.25 N, 0.5 E is a grid point
    assert np.isclose(on_node.max(), 1.0)
    np.testing.assert_array_equal(operator.locations, sites)


def test_the_adjoint_is_the_transpose() -> None:
    operator = bilinear(SPACE, [LAT, LON], draw_sites([LAT, LON], 25, seed=3)[0])
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal(SPACE), requires_grad=True)
    y = rng.standard_normal(operator.n_obs)
    (operator.apply(x) @ torch.tensor(y)).backward()  # <H x, y>: its gradient is H^T y
    np.testing.assert_allclose(x.grad.numpy().ravel(), operator.matrix().T @ y, atol=1e-12)
    vector = rng.standard_normal(SPACE)
    np.testing.assert_allclose(operator.apply(vector) @ y,
                               vector.ravel() @ (operator.matrix().T @ y), rtol=1e-12)


def test_drawn_networks_are_reproducible_and_withheld_stations_are_never_assimilated() -> None:
    kept, withheld = draw_sites([LAT, LON], 40, seed=0, withheld=20)
    again, _ = draw_sites([LAT, LON], 40, seed=0, withheld=20)
    np.testing.assert_array_equal(kept, again)
    assert kept.shape == (40, 2) and withheld.shape == (20, 2)
    assert not {tuple(s) for s in kept} & {tuple(s) for s in withheld}
    assert (kept[:, 0] >= 50).all() and (kept[:, 0] <= 58).all()
    assert (withheld[:, 1] >= -10).all() and (withheld[:, 1] <= 2).all()


def test_stations_outside_the_grid_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"station 1 at \(59, 0\) lies outside the grid "
                                         r"\(dim 0 runs from 50 to 58\)"):
        bilinear(SPACE, [LAT, LON], np.array([[55.0, 0.0], [59.0, 0.0]]))


def test_station_files_csv_and_netcdf(tmp_path) -> None:
    (tmp_path / "sites.csv").write_text("name,Latitude,longitude\nA,51.5,-0.1\nB,55.9,-3.2\n")
    np.testing.assert_array_equal(read_sites(tmp_path / "sites.csv"),
                                  [[51.5, -0.1], [55.9, -3.2]])
    xr.Dataset({"lat": ("station", [52.0]), "lon": ("station", [1.0])}).to_netcdf(
        tmp_path / "sites.nc")
    np.testing.assert_array_equal(read_sites(tmp_path / "sites.nc"), [[52.0, 1.0]])
    (tmp_path / "bad.csv").write_text("name,x,y\nA,1,2\n")
    with pytest.raises(ValueError, match="needs 'latitude' and 'longitude' columns.*name, x, y"):
        read_sites(tmp_path / "bad.csv")


def test_regime_keys_are_checked(tmp_path) -> None:
    cases = {
        "{operator: sites, count: 4, file: s.csv, error_std: 0.5}": "count .drawn from seed. or file",
        "{operator: sites, count: 4, observe: withheld, error_std: 0.5}": "needs withheld stations",
        "{operator: sites, count: 4, noise: 0.1, error_std: 0.5}": "give the noise once",
    }
    for spec, message in cases.items():
        path = tmp_path / "regimes.yaml"
        path.write_text(f"imported:\n  r: {spec}\n")
        with pytest.raises(ConfigError, match=message):
            load_regime("r", "imported", path)


def test_the_pilot_regimes_observe_era5_in_kelvin(tmp_path) -> None:
    with xr.open_dataset(NETCDF) as ds:
        ds.isel(time=slice(0, 24)).to_netcdf(tmp_path / "day.nc")
    import_data([tmp_path / "day.nc"], tmp_path / "day.zarr", progress=False)
    (tmp_path / "sites.csv").write_text("latitude,longitude\n51.5,-0.13\n55.95,-3.19\n")
    (tmp_path / "regimes.yaml").write_text(
        "imported:\n"
        "  listed: {operator: sites, file: sites.csv, every: 2, error_std: 0.5}\n")
    listed = observe(tmp_path / "day.zarr", "listed", regimes_path=tmp_path / "regimes.yaml",
                     progress=False)
    assert listed.sizes["obs"] == 2 * 12 and float(listed["error_std"][0]) == 0.5
    assimilated = observe(tmp_path / "day.zarr", "stations-40", progress=False)
    withheld = observe(tmp_path / "day.zarr", "stations-40-withheld", progress=False)
    assert assimilated.sizes["obs"] == 40 * 23 and withheld.sizes["obs"] == 20 * 23
    places = {(float(y), float(x)) for y, x in zip(assimilated["y"].values,
                                                   assimilated["x"].values, strict=True)}
    assert not places & {(float(y), float(x)) for y, x in zip(
        withheld["y"].values, withheld["x"].values, strict=True)}
    truth = xr.open_zarr(tmp_path / "day.zarr")["t2m"].values[0].astype(np.float64)
    operator = load_regime("stations-40", "imported").operator(SPACE, [LAT, LON])
    clean = np.concatenate([operator.apply(truth[t]) for t in range(1, 24)])
    error = assimilated["value"].values[0] - clean
    assert 0.4 < error.std() < 0.6  # 0.5 K
    withheld_clean = load_regime("stations-40-withheld", "imported").operator(
        SPACE, [LAT, LON]).apply(truth[1])
    first = withheld["value"].values[0, :20] - withheld_clean
    assert not np.allclose(first, error[:20])  # its own noise, not the assimilated draws
