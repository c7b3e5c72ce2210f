"""Observation operators, regimes, synthesis and user observation files (tiny grids)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from assimilate.config import load_config
from assimilate.observe import (
    ObservationError,
    Observations,
    Operator,
    blocks,
    load_observations,
    load_regime,
    model_grid,
    observe,
    regime_names,
    saturating,
    stations,
    strided,
)
from assimilate.observe.files import _Grid, interpolation_rows
from assimilate.observe.times import Calendar
from pde import simulate
from pde.io.errors import ConfigError
from pde.io.store import open_trajectories
from tests.conftest import TINY_KOLMOGOROV, TINY_KS, write_config

COMMAND = str(Path(sys.executable).with_name("assimilate"))
KS_GRID = ((64,), [np.arange(64) * 22.0 / 64])
KOLMOGOROV_GRID = ((32, 32), [np.arange(32) * 2 * np.pi / 32] * 2)


def _grid(space: tuple[int, ...]) -> list[np.ndarray]:
    return [np.arange(n) * 0.5 for n in space]  # spacing 0.5: domain [0, n / 2)


def _kinds(space: tuple[int, ...]) -> dict[str, Operator]:
    """One operator of each kind on ``space``, plus an interpolating (user-file) one."""
    coordinates = _grid(space)
    grid = _Grid(space, coordinates, 0.0, 1.0, tuple(n * 0.5 for n in space))
    points = np.random.default_rng(1).uniform(0, 1, (5, len(space))) * np.array(space) * 0.5
    rows = interpolation_rows(points, grid)
    return {"strided": strided(space, coordinates, 2, 1),
            "stations": stations(space, coordinates, 0.3, seed=4),
            "blocks": blocks(space, coordinates, 2),
            "interpolated": Operator(*rows, space, locations=points)}


# --- operators -------------------------------------------------------------------------

def test_strided_observes_every_stride_th_point_per_direction() -> None:
    one = strided((8,), _grid((8,)), 3, offset=1)
    np.testing.assert_array_equal(one.indices[:, 0], [1, 4, 7])
    np.testing.assert_array_equal(one.locations[:, 0], [0.5, 2.0, 3.5])
    two = strided((4, 6), _grid((4, 6)), 2)
    np.testing.assert_array_equal(two.indices[:, 0], [0, 2, 4, 12, 14, 16])
    np.testing.assert_array_equal(two.locations[1], [0.0, 1.0])  # (y, x) of point (0, 2)
    x = np.arange(24.0).reshape(4, 6)
    np.testing.assert_array_equal(two.apply(x), [0, 2, 4, 12, 14, 16])
    with pytest.raises(ValueError, match="stride=9 must lie in 1..8"):
        strided((8,), _grid((8,)), 9)


def test_stations_are_distinct_reproducible_and_at_least_one() -> None:
    first = stations((4, 4), _grid((4, 4)), 0.25, seed=7)
    assert first.n_obs == 4 and len(set(first.indices[:, 0])) == 4
    np.testing.assert_array_equal(first.indices, stations((4, 4), _grid((4, 4)), 0.25, 7).indices)
    others = [stations((64,), _grid((64,)), 0.25, seed).indices[:, 0] for seed in range(3)]
    assert not all(np.array_equal(others[0], o) for o in others[1:])
    assert stations((64,), _grid((64,)), 1e-6, 0).n_obs == 1
    assert stations((64,), _grid((64,)), 1.0, 0).n_obs == 64


def test_blocks_average_non_overlapping_blocks_at_their_centres() -> None:
    two = blocks((4, 6), _grid((4, 6)), 2)
    np.testing.assert_array_equal(two.indices[0], [0, 1, 6, 7])
    np.testing.assert_allclose(two.apply(np.arange(24.0).reshape(4, 6)),
                               [3.5, 5.5, 7.5, 15.5, 17.5, 19.5])
    np.testing.assert_allclose(two.locations[5], [1.25, 2.25])  # (y, x) of block (1, 2)
    one = blocks((7,), _grid((7,)), 3)  # the trailing point is not observed
    np.testing.assert_array_equal(one.indices, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_allclose(one.weights, 1 / 3)
    np.testing.assert_allclose(one.locations[:, 0], [0.5, 2.0])


def test_saturating_keeps_the_linear_part_and_bounds_the_output() -> None:
    base = strided((8,), _grid((8,)), 2)
    sat = saturating(base)
    assert base.is_linear and not sat.is_linear
    np.testing.assert_array_equal(sat.matrix(), base.matrix())
    x = np.array([-30.0, 0, 1, 0, 3, 0, 0.5, 0])
    np.testing.assert_allclose(sat.apply(x), [-30 / 31, 0.5, 0.75, 0.5 / 1.5])


@pytest.mark.parametrize("space", [(8,), (4, 6)], ids=["1d", "2d"])
@pytest.mark.parametrize("kind", ["strided", "stations", "blocks", "interpolated"])
def test_adjoint_from_autograd_equals_the_transpose(space, kind) -> None:
    operator = _kinds(space)[kind]
    x = torch.randn(3, *space, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, operator.n_obs, dtype=torch.float64)
    (vjp,) = torch.autograd.grad(operator.apply(x), x, grad_outputs=v)
    expected = v.numpy() @ operator.matrix()  # rows of (H^T v)^T
    np.testing.assert_allclose(vjp.reshape(3, -1).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("transform", ["identity", "saturating"])
@pytest.mark.parametrize("space", [(8,), (4, 6)], ids=["1d", "2d"])
def test_numpy_torch_and_jax_agree_with_batch_dims(space, transform) -> None:
    import jax
    import jax.numpy as jnp

    x = np.random.default_rng(0).standard_normal((2, 3, *space)).astype(np.float32)
    for operator in _kinds(space).values():
        operator = operator.with_transform(transform)
        expected = operator.apply(x)
        assert expected.shape == (2, 3, operator.n_obs) and expected.dtype == np.float32
        np.testing.assert_allclose(operator.apply(torch.from_numpy(x)).numpy(), expected,
                                   rtol=1e-6)
        np.testing.assert_allclose(np.asarray(operator.apply(jnp.asarray(x))), expected,
                                   rtol=1e-6)
    linear = _kinds(space)["blocks"]
    gradient = jax.grad(lambda z: linear.apply(z).sum())(jnp.asarray(x[0, 0]))
    np.testing.assert_allclose(np.asarray(gradient).ravel(), linear.matrix().sum(0), rtol=1e-6)


def test_matrix_and_subset() -> None:
    operator = _kinds((4, 6))["interpolated"]
    x = np.random.default_rng(2).standard_normal((4, 6))
    np.testing.assert_allclose(operator.matrix() @ x.ravel(), operator.apply(x))
    mask = np.array([True, False, True, False, False])
    part = operator.subset(mask)
    assert part.n_obs == 2 and part.locations.shape == (2, 2)
    np.testing.assert_allclose(part.apply(x), operator.apply(x)[mask])
    with pytest.raises(ValueError, match="indices must lie in 0..7"):
        Operator(np.array([[8]]), np.ones((1, 1)), (8,))
    with pytest.raises(ValueError, match="does not end in the grid"):
        operator.apply(np.zeros((6, 4)))


# --- regimes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pde", "grid", "counts"), [
    ("kuramoto_sivashinsky", KS_GRID, [8, 4, 3, 8, 8, 8]),
    ("kolmogorov", KOLMOGOROV_GRID, [64, 16, 51, 64, 64, 64]),
])
def test_the_shipped_regimes_build_on_the_shipped_grids(pde, grid, counts) -> None:
    names = regime_names(pde)
    assert names == ["dense", "sparse", "stations", "gap-5", "gap-10", "noisy"]
    regimes = [load_regime(name, pde) for name in names]
    assert [r.operator(*grid).n_obs for r in regimes] == counts
    assert [r.every for r in regimes] == [1, 1, 1, 5, 10, 1]
    assert [r.noise_in(2.0) for r in regimes] == [0.1] * 5 + [0.5]
    np.testing.assert_array_equal(regimes[3].steps(12), [1, 6, 11])


@pytest.mark.parametrize(("entry", "expected"), [
    ("{operator: strided, stride: 0, noise: 0.1}", "key 'kuramoto_sivashinsky.r.stride'"),
    ("{operator: strided, strid: 8, stride: 8, noise: 0.1}",
     "key 'kuramoto_sivashinsky.r.strid': unknown key; allowed keys here: every, start"),
    ("{operator: stations, fraction: 1.5, noise: 0.1}", "kuramoto_sivashinsky.r.fraction"),
    ("{operator: stations, fraction: 0, noise: 0.1}", "kuramoto_sivashinsky.r.fraction"),
    ("{operator: strided, stride: 8, noise: 0}", "kuramoto_sivashinsky.r.noise"),
    ("{operator: strided, stride: 8, noise: 0.1, every: 0}", "kuramoto_sivashinsky.r.every"),
    ("{operator: lidar, noise: 0.1}",
     ("key 'kuramoto_sivashinsky.r.operator': unknown operator 'lidar'; allowed: blocks, "
     "sites, stations, strided")),
    ("{operator: strided, stride: 8, noise: 0.1, transform: log}",
     "kuramoto_sivashinsky.r.transform"),
])
def test_a_bad_regimes_file_names_the_file_and_the_key(tmp_path, entry, expected) -> None:
    path = tmp_path / "regimes.yaml"
    path.write_text(f"kuramoto_sivashinsky:\n  r: {entry}\n")
    with pytest.raises(ConfigError) as error:
        load_regime("r", "kuramoto_sivashinsky", path)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message, message


def test_unknown_names_and_grids_too_small_are_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown regime 'dens' for kuramoto_sivashinsky in "
                                          ".*; allowed: dense, sparse, stations, gap-5"):
        load_regime("dens", "kuramoto_sivashinsky")
    with pytest.raises(ConfigError, match="no regimes for pde 'burgers'"):
        regime_names("burgers")
    path = tmp_path / "mine.yaml"
    path.write_text("kolmogorov:\n  wide: {operator: strided, stride: 64, noise: 0.1}\n")
    with pytest.raises(ConfigError, match=r"regime 'wide' for kolmogorov in '.*mine.yaml' does "
                                          r"not fit the grid \(32, 32\): stride=64"):
        load_regime("wide", "kolmogorov", path).operator(*KOLMOGOROV_GRID)


# --- synthesis ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ks_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("truth")
    simulate(load_config(write_config(root, TINY_KS)), root / "ks.zarr", progress=False)
    return root / "ks.zarr"


@pytest.fixture(scope="module")
def kolmogorov_store(tmp_path_factory) -> Path:
    """A 2-D store of Gaussian fields with std 2 (no simulation: only the schema matters)."""
    from pde.io.store import create_store, write_trajectories

    root = tmp_path_factory.mktemp("truth2d")
    config = load_config(write_config(root, TINY_KOLMOGOROV)).with_dataset(trajectories=4,
                                                                           steps=30)
    create_store(root / "k.zarr", config, config.simulator.build())
    fields = 2 * np.random.default_rng(0).standard_normal((4, 30, 8, 8))
    write_trajectories(root / "k.zarr", "vorticity", 0, fields)
    return root / "k.zarr"


def _residual_std(ds: xr.Dataset, store: Path) -> float:
    truth = open_trajectories(store)
    grid = model_grid(truth)
    observations = Observations.from_dataset(ds, **grid)
    field = truth[str(ds.attrs["variable"])].values
    residuals = []
    for step in observations.steps:
        operator, values, _, _ = observations.at(step)
        residuals.append(values - operator.apply(field[ds["trajectory"].values, step]))
    return float(np.concatenate(residuals, axis=1).std())


def test_synthesis_has_the_stated_noise_and_is_reproducible(ks_store, tmp_path) -> None:
    ds = observe(ks_store, "noisy", tmp_path / "obs.zarr", progress=False)
    field = open_trajectories(ks_store)["u"].values
    assert ds.attrs["clim_std"] == pytest.approx(field.std(), rel=1e-5)
    assert ds.attrs["regime"] == "noisy" and ds.attrs["stride"] == 8 and ds.attrs["noise"] == 0.5
    np.testing.assert_allclose(ds["error_std"].values, 0.5 * ds.attrs["clim_std"])
    assert ds["value"].shape == (6, 11 * 4)  # steps 1..11, 32 / 8 points
    assert _residual_std(ds, ks_store) == pytest.approx(0.5 * field.std(), rel=0.2)
    again = observe(ks_store, "noisy", progress=False)
    np.testing.assert_array_equal(again["value"].values, ds["value"].values)
    other = observe(ks_store, "noisy", seed=1, progress=False)
    assert not np.allclose(other["value"].values, ds["value"].values)
    stored = load_observations(tmp_path / "obs.zarr", **model_grid(open_trajectories(ks_store)))
    np.testing.assert_array_equal(stored.dataset["value"].values, ds["value"].values)
    np.testing.assert_allclose(stored.times, np.arange(1, 12) * 0.2)


def test_synthesis_selects_trajectories_and_refuses_an_existing_output(ks_store,
                                                                       tmp_path) -> None:
    ds = observe(ks_store, "gap-5", trajectories=[4, 1], progress=False)
    np.testing.assert_array_equal(ds["trajectory"].values, [4, 1])
    np.testing.assert_allclose(np.unique(ds["time"].values), [0.2, 1.2, 2.2])
    assert observe(ks_store, "dense", trajectories=2, progress=False).sizes["trajectory"] == 2
    with pytest.raises(ConfigError, match="trajectory 9 does not exist"):
        observe(ks_store, "dense", trajectories=[9], progress=False)
    (tmp_path / "taken.zarr").mkdir()
    (tmp_path / "taken.zarr" / "file").write_text("x")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        observe(ks_store, "dense", tmp_path / "taken.zarr", progress=False)


def test_synthesised_observations_through_netcdf_keep_their_rows_and_grid(ks_store,
                                                                          tmp_path) -> None:
    ds = observe(ks_store, "stations", seed=5, progress=False)
    assert ds.attrs["seed"] == 0 and ds.attrs["noise_seed"] == 5  # stations vs noise seed
    ds.to_netcdf(tmp_path / "stations.nc")
    grid = model_grid(open_trajectories(ks_store))
    observations = load_observations(tmp_path / "stations.nc", **grid)
    operator, values, _, mask = observations.at(4)
    np.testing.assert_array_equal(operator.indices, stations((32,), grid["coordinates"], 0.05,
                                                             0).indices)
    assert values.shape == (6, 2) and mask.all()
    with pytest.raises(ObservationError, match=r"was made for the grid \(32,\), not \(16,\)"):
        load_observations(tmp_path / "stations.nc", space=(16,),
                          coordinates=[np.arange(16.0)], time0=0.0, interval=0.2)


def test_synthesis_in_2d_with_blocks_and_a_saturating_sensor(kolmogorov_store, tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("kolmogorov:\n"
                    "  coarse: {operator: blocks, size: 2, every: 2, start: 0, noise: 0.2}\n"
                    "  soft: {operator: strided, stride: 2, noise: 0.2, transform: saturating}\n")
    ds = observe(kolmogorov_store, "coarse", regimes_path=path, progress=False)
    assert ds["indices"].shape == (15 * 16, 4) and set(ds.coords) >= {"time", "x", "y"}
    assert ds.attrs["clim_std"] == pytest.approx(2.0, rel=0.05)
    assert _residual_std(ds, kolmogorov_store) == pytest.approx(0.4, rel=0.2)
    soft = observe(kolmogorov_store, "soft", regimes_path=path, progress=False)
    assert soft.attrs["transform"] == "saturating" and soft.attrs["clim_std"] < 1
    assert _residual_std(soft, kolmogorov_store) == pytest.approx(0.2 * soft.attrs["clim_std"],
                                                                  rel=0.2)


# --- user files --------------------------------------------------------------------------

def _user_file(time, x, value, error_std, y=None) -> xr.Dataset:
    coords = {"time": ("obs", np.asarray(time, float)), "x": ("obs", np.asarray(x, float))}
    if y is not None:
        coords["y"] = ("obs", np.asarray(y, float))
    value = np.asarray(value, float)
    dims = ("obs",) if value.ndim == 1 else ("trajectory", "obs")
    return xr.Dataset({"value": (dims, value), "error_std": ("obs", np.asarray(error_std))},
                      coords=coords)


GRID_1D = {"space": (8,), "coordinates": [np.arange(8) * 0.5], "time0": 0.0, "interval": 0.2,
           "domain_lengths": (4.0,)}


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_user_file_round_trips_with_irregular_times_and_missing_values(tmp_path,
                                                                         suffix) -> None:
    times = [0.2, 0.2, 1.4, 0.6, 0.6, 0.6]  # irregular, unsorted, 2 / 3 / 1 per time
    x = [0.25, 3.75, 1.0, 2.2, 0.5, 3.9]
    value = [[1.0, np.nan, 2.0, 3.0, np.nan, 4.0], [5.0, np.nan, 6.0, np.nan, 7.0, 8.0]]
    ds = _user_file(times, x, value, [0.1] * 6)
    path = tmp_path / f"mine{suffix}"
    ds.to_netcdf(path, engine="netcdf4") if suffix == ".nc" else ds.to_zarr(path)
    observations = load_observations(path, **GRID_1D)
    np.testing.assert_array_equal(observations.steps, [1, 3, 7])
    np.testing.assert_allclose(observations.times, [0.2, 0.6, 1.4])
    operator, values, error_std, mask = observations.at(1)  # obs 1 is missing everywhere
    assert operator.n_obs == 1 and operator.support == 2
    np.testing.assert_allclose(operator.apply(np.arange(8) * 0.5), [0.25])  # linear field
    operator, values, error_std, mask = observations.at(3)
    np.testing.assert_array_equal(mask, [[True, False, True], [False, True, True]])
    np.testing.assert_allclose(values[mask], [3.0, 4.0, 7.0, 8.0])
    f = np.arange(8) * 0.5
    np.testing.assert_allclose(operator.apply(f)[:2], [2.2, 0.5])  # 3.9 wraps around
    np.testing.assert_allclose(operator.apply(f)[2], 0.2 * 3.5 + 0.8 * 0.0)
    np.testing.assert_allclose(error_std, 0.1)
    assert observations.at(2).operator.n_obs == 0
    assert observations.dataset.attrs["regime"] == "user"


def test_a_2d_user_file_interpolates_bilinearly(tmp_path) -> None:
    ds = _user_file([0.0, 0.4], x=[1.3, 0.5], y=[2.1, 0.0], value=[1.0, 2.0],
                    error_std=[0.5, 0.5])
    grid = {"space": (4, 4), "coordinates": [np.arange(4.0)] * 2, "time0": 0.0,
            "interval": 0.2}
    ds.to_netcdf(tmp_path / "two.nc")
    observations = load_observations(tmp_path / "two.nc", **grid)
    operator = observations.at(0).operator
    y, x = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij")
    np.testing.assert_allclose(operator.apply(3 * y + x), [3 * 2.1 + 1.3])
    np.testing.assert_allclose(operator.locations, [[2.1, 1.3]])
    assert operator.support == 4


@pytest.mark.parametrize(("change", "expected"), [
    ({"time": [0.2, 0.4, 0.33]}, ("observation 2 at time 0.33 is not on the model time axis "
                                 "(steps of 0.2 from 0)")),
    ({"time": [0.2, -0.2, 0.4]}, "observation 1 at time -0.2 is before the first model time 0"),
    ({"x": [0.0, 4.0, 1.0]}, "observation 1 at time 0.4 has x=4, outside the domain [0, 4)"),
    ({"x": [-0.1, 1.0, 1.0]}, "observation 0 at time 0.2 has x=-0.1, outside the domain"),
    ({"error_std": [0.1, 0.1, 0.0]}, ("observation 2 at time 0.4 has error_std 0; allowed: "
                                     "1e-06 to 1e+06")),
    ({"error_std": [np.nan, 0.1, 0.1]}, "observation 0 at time 0.2 has error_std nan"),
    ({"error_std": [0.1, 1e-300, 0.1]}, ("observation 1 at time 0.4 has error_std 1e-300; "
                                        "allowed: 1e-06 to 1e+06")),
    ({"value": [1.0, np.inf, 2.0]}, "observation 1 at time 0.4 has value inf; allowed: -1e+06"),
    ({"value": [1.0, 2.0, -1e30]}, ("observation 2 at time 0.4 has value -1e+30; allowed: "
                                   "-1e+06 to 1e+06")),
    ({"time": [0.2, 1e30, 0.4]}, ("observation 1 at time 1e+30 is model step 5e+30; allowed: "
                                 "steps 0..10000000")),
    ({"drop": "error_std"}, "lacks variable 'error_std' (required: time, x, value, error_std)"),
    ({"drop": "x"}, "lacks variable 'x'"),
    ({"rename": {"obs": "station"}}, "no dimension 'obs'"),
    ({"transpose": True}, ("variable 'value' has dims (obs, trajectory), expected (obs) or "
                          "(trajectory, obs)")),
])
def test_a_malformed_user_file_names_the_file_and_the_entry(tmp_path, change, expected) -> None:
    fields = {"time": [0.2, 0.4, 0.4], "x": [0.0, 1.0, 2.5], "value": [1.0, 2.0, 3.0],
              "error_std": [0.1, 0.1, 0.1]}
    fields |= {k: v for k, v in change.items() if k in fields}
    ds = _user_file(**fields)
    if "drop" in change:
        ds = ds.drop_vars(change["drop"])
    if "rename" in change:
        ds = ds.rename_dims(change["rename"])
    if "transpose" in change:
        ds["value"] = (("obs", "trajectory"), np.ones((3, 2)))
    path = tmp_path / "bad.nc"
    ds.to_netcdf(path)
    with pytest.raises(ObservationError) as error:
        load_observations(path, **GRID_1D)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message, message


# --- datetimes -----------------------------------------------------------------------------

SIX_HOURS = Calendar.parse("2020-01-01T00:00,6h")  # one model step (interval 0.2) is 6 h
STEPS = np.array([1, 1, 7, 3, 3, 3])


def _timed(time, attrs: dict | None = None) -> xr.Dataset:
    """The user file of the round-trip test above, its times replaced by ``time``."""
    ds = _user_file(STEPS * 0.2, [0.25, 3.75, 1.0, 2.2, 0.5, 3.9], np.arange(6.0), [0.1] * 6)
    return ds.assign_coords(time=("obs", time, attrs or {}))


DATETIMES = {  # the steps above as each form of real time the files may hold
    "datetime64": (np.datetime64("2020-01-01T00:00") + STEPS * np.timedelta64(6, "h"), None),
    "hours since": (STEPS * 6.0, {"units": "hours since 2020-01-01"}),
    "days since": (STEPS * 0.25 + 365.0, {"units": "days since 2019-01-01 00:00:00"}),
    "hours": (STEPS * 6.0, {"units": "hours"}),
}


@pytest.mark.parametrize("form", DATETIMES)
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_datetimes_read_with_the_calendar_are_the_model_times(tmp_path, form, suffix) -> None:
    time, attrs = DATETIMES[form]
    path = tmp_path / f"dated{suffix}"
    ds = _timed(time, attrs)
    ds.to_netcdf(path, engine="netcdf4") if suffix == ".nc" else ds.to_zarr(path)
    observations = load_observations(path, **GRID_1D, calendar=SIX_HOURS)
    np.testing.assert_array_equal(observations.steps, [1, 3, 7])
    np.testing.assert_allclose(observations.dataset["time"], STEPS * 0.2)
    with pytest.raises(ObservationError) as error:  # read as model time: another run
        load_observations(path, **GRID_1D)
    message = str(error.value)
    assert str(path) in message and "and the run has no calendar" in message, message
    assert "give plain model times" in message and "--calendar ORIGIN,STEP" in message
    assert "\n" not in message


@pytest.mark.parametrize(("time", "attrs", "expected"), [
    (STEPS * 6.0 + [0, 0, 1, 0, 0, 0], {"units": "hours since 2020-01-01"},
     ("observation 2 at 2020-01-02T19:00:00 is not on the model time axis (steps of 6h from "
     "2020-01-01T00:00:00)")),
    (STEPS * 6.0 - 12, {"units": "hours since 2020-01-01"},
     "observation 0 at 2019-12-31T18:00:00 is before model time 0"),
    (STEPS * 1.0, {"units": "days since 2020-01-01", "calendar": "noleap"},
     "uses the calendar 'noleap'; allowed: standard, gregorian, proleptic_gregorian"),
    (STEPS * 1e30, {"units": "days since 2020-01-01"},
     "holds 1e+30 to 7e+30: not all datetimes of the years 1678 to 2261"),
])
def test_datetimes_off_the_calendars_steps_are_refused_naming_them(tmp_path, time, attrs,
                                                                   expected) -> None:
    path = tmp_path / "dated.nc"
    _timed(time, attrs).to_netcdf(path)
    with pytest.raises(ObservationError) as error:
        load_observations(path, **GRID_1D, calendar=SIX_HOURS)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message, message


@pytest.mark.parametrize("text", ["2020-01-01", "2020-01-01T00:00,0h", "never,6h",
                                  "2020-01-01,six hours"])
def test_a_malformed_calendar_is_refused_showing_the_form(text) -> None:
    with pytest.raises(ConfigError, match="expected ORIGIN,STEP, the datetime of model time 0"):
        Calendar.parse(text)
    assert str(SIX_HOURS) == "2020-01-01T00:00:00,6h"
    assert Calendar.parse(str(SIX_HOURS)) == SIX_HOURS


# --- command line ------------------------------------------------------------------------

@pytest.mark.e2e
def test_the_observe_verb_runs_in_a_fresh_process(ks_store, tmp_path) -> None:
    run = subprocess.run([COMMAND, "observe", str(ks_store), "--regime", "dense", "--out",
                          "obs.zarr"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "11 observation times" in run.stdout and "4 observations per time" in run.stdout
    assert "wrote obs.zarr" in run.stdout and "100%" in run.stderr
    assert xr.open_zarr(tmp_path / "obs.zarr").attrs["regime"] == "dense"
    again = subprocess.run([COMMAND, "observe", str(ks_store), "--regime", "dens", "--out",
                            "other.zarr", "--trajectories", "0,2", "--quiet"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 2 and "allowed: dense, sparse" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
