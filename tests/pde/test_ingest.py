"""`assimilate import`: a user's gridded files (the shipped ERA5 cut-out) as a trajectory store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pde.config import ImportedConfig, load_simulation_config
from pde.descriptor import descriptor_of
from pde.ingest import import_data
from pde.io.errors import ConfigError, OutputError
from pde.io.output import claim
from pde.io.store import open_trajectories, stored_config

ERA5 = Path(__file__).resolve().parents[2] / "examples" / "era5"
GRIB, NETCDF = ERA5 / "era5-t2m-uk-2019-03.grib", ERA5 / "era5-t2m-uk-2019-03.nc"
ATTRIBUTION = (ERA5 / "ATTRIBUTION").read_text().strip()
COMMAND = str(Path(sys.executable).with_name("assimilate"))


@pytest.fixture(scope="module")
def source() -> xr.Dataset:
    with xr.open_dataset(NETCDF) as ds:
        return ds.load()


@pytest.fixture
def cut(source: xr.Dataset, tmp_path: Path) -> xr.Dataset:
    """Two days of a 9 x 13 corner, as a user's small file would be."""
    return source.isel(time=slice(0, 48), latitude=slice(0, 9), longitude=slice(0, 13))


def _write(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path)
    return path


def test_netcdf_round_trip_keeps_values_axes_units_attribution_and_checksums(source, tmp_path):
    summary = import_data([NETCDF], tmp_path / "t2m.zarr", segment="7D", progress=False)
    assert (summary.trajectories, summary.steps, summary.dropped) == (4, 168, 744 - 4 * 168)
    ds = open_trajectories(tmp_path / "t2m.zarr")
    field = ds["t2m"]
    assert field.dims == ("trajectory", "time", "y", "x") and field.attrs["units"] == "K"
    # the store's latitude rises; the file's falls (ERA5 runs north to south)
    expected = source["t2m"].isel(latitude=slice(None, None, -1)).values[:672]
    np.testing.assert_array_equal(field.values.reshape(672, 33, 49), expected)
    np.testing.assert_allclose(ds["y"], np.linspace(50, 58, 33))
    np.testing.assert_allclose(ds["x"], np.linspace(-10, 2, 49))
    np.testing.assert_array_equal(ds["valid_time"].values.reshape(-1),
                                  source["time"].values[:672])
    np.testing.assert_array_equal(ds["time"], np.arange(168.0))
    assert ds.attrs["attribution"] == source.attrs["attribution"] == ATTRIBUTION
    (recorded,) = json.loads(ds.attrs["sources"])
    assert recorded == {"name": NETCDF.name, "bytes": NETCDF.stat().st_size,
                        "sha256": hashlib.sha256(NETCDF.read_bytes()).hexdigest()}
    section = ImportedConfig.model_validate(stored_config(tmp_path / "t2m.zarr")["simulator"])
    assert (section.variable, section.units, section.grid, section.interval,
            section.periodic) == ("t2m", "K", (33, 49), 1.0, False)


def test_grib_and_netcdf_give_the_same_store(tmp_path):
    for path in (GRIB, NETCDF):
        import_data([path], tmp_path / f"{path.suffix[1:]}.zarr", segment="1D", progress=False,
                    attribution=ATTRIBUTION)
    grib, netcdf = (open_trajectories(tmp_path / f"{kind}.zarr") for kind in ("grib", "nc"))
    xr.testing.assert_identical(grib.drop_attrs(), netcdf.drop_attrs())
    assert stored_config(tmp_path / "grib.zarr") == stored_config(tmp_path / "nc.zarr")
    assert grib.attrs["attribution"] == netcdf.attrs["attribution"]


def test_files_in_any_order_give_the_store_of_one_file(cut, tmp_path):
    whole = _write(cut, tmp_path / "whole.nc")
    first = _write(cut.isel(time=slice(0, 24)), tmp_path / "day1.nc")
    second = _write(cut.isel(time=slice(24, 48)), tmp_path / "day2.nc")
    import_data([whole], tmp_path / "one.zarr", segment="12h", progress=False)
    import_data([second, first], tmp_path / "two.zarr", segment="12h", progress=False)
    one, two = (open_trajectories(tmp_path / f"{n}.zarr") for n in ("one", "two"))
    xr.testing.assert_identical(one.drop_attrs(), two.drop_attrs())
    assert one.sizes["trajectory"] == 4


def test_period_keeps_the_days_asked_for_and_the_stores_share_their_physics(source, tmp_path):
    import_data([NETCDF], tmp_path / "train.zarr", period="2019-03-01/2019-03-25",
                segment="1D", progress=False)
    import_data([NETCDF], tmp_path / "test.zarr", period="2019-03-25/2019-04-01",
                segment="1D", progress=False)
    train, test = (open_trajectories(tmp_path / f"{n}.zarr") for n in ("train", "test"))
    assert (train.sizes["trajectory"], test.sizes["trajectory"]) == (24, 7)
    assert str(train["valid_time"].values[-1, -1])[:13] == "2019-03-24T23"
    assert str(test["valid_time"].values[0, 0])[:13] == "2019-03-25T00"
    expected = source["t2m"].isel(time=24 * 24, latitude=slice(None, None, -1)).values
    np.testing.assert_array_equal(test["t2m"].values[0, 0], expected)
    assert stored_config(tmp_path / "train.zarr")["simulator"] == \
        stored_config(tmp_path / "test.zarr")["simulator"]
    with pytest.raises(ValueError, match="holds no time of the sources .* 2019-03-01T00:00"):
        import_data([NETCDF], tmp_path / "none.zarr", period="2020-01-01/2020-02-01",
                    progress=False)
    with pytest.raises(ValueError, match="expected START/END"):
        import_data([NETCDF], tmp_path / "none.zarr", period="March", progress=False)


def test_region_keeps_the_box(cut, tmp_path):
    path = _write(cut, tmp_path / "cut.nc")
    import_data([path], tmp_path / "box.zarr", region="56,57,-9,-8", progress=False)
    ds = open_trajectories(tmp_path / "box.zarr")
    np.testing.assert_allclose(ds["y"], [56, 56.25, 56.5, 56.75, 57])
    np.testing.assert_allclose(ds["x"], [-9, -8.75, -8.5, -8.25, -8])
    expected = cut["t2m"].sel(latitude=slice(57, 56), longitude=slice(-9, -8)).values[:, ::-1]
    np.testing.assert_array_equal(ds["t2m"].values[0], expected)


def test_the_imported_descriptor_measures_area_weighted_and_has_no_simulator(tmp_path, cut):
    path = _write(cut, tmp_path / "cut.nc")
    import_data([path], tmp_path / "s.zarr", progress=False)
    ds = open_trajectories(tmp_path / "s.zarr")
    found = descriptor_of(ds.attrs)
    assert (found.variable, found.space, found.periodic) == ("t2m", ("y", "x"), False)
    field = ds["t2m"].values[0, :3].astype(np.float64)
    weights = np.cos(np.deg2rad(ds["y"].values))[:, None] * np.ones(field.shape[-1])
    series = found.series(field, ds.attrs)
    np.testing.assert_allclose(series["area_mean"],
                               (field * weights).sum((1, 2)) / weights.sum())
    np.testing.assert_array_equal(series["area_max"], field.max((1, 2)))
    assert not np.allclose(series["area_mean"], field.mean((1, 2)))  # the weights matter
    with pytest.raises(ValueError, match="model=forecaster"):
        found.simulator_class()
    config = load_simulation_config(_config(tmp_path, ds))
    with pytest.raises(ConfigError, match="imported, not simulated.*model=forecaster"):
        config.simulator.build()


def _config(tmp_path: Path, ds: xr.Dataset) -> Path:
    path = tmp_path / "imported.yaml"
    section = json.loads(ds.attrs["config"])
    import yaml

    path.write_text(yaml.safe_dump(section))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda ds: ds.rename({"time": "when"}).drop_vars("when").assign_coords(
        when=np.arange(ds.sizes["time"])), "no time axis"),
    (lambda ds: ds.rename({"latitude": "row"}).assign_coords(row=np.arange(9.0)),
     "no latitude axis"),
    (lambda ds: ds.isel(time=[0, 1, 1, 2]), "repeated at 2019-03-01T01:00"),
    (lambda ds: ds.isel(time=[0, 2, 1, 3]), "goes backwards at 2019-03-01T01:00"),
    (lambda ds: ds.isel(time=[0, 1, 2, 4]), "the interval changes at 2019-03-01T04:00"),
    (lambda ds: ds.where(ds.latitude < 57.5), "missing or non-finite values .* latitude 57.5"),
    (lambda ds: ds.expand_dims(level=[1000, 850]), "level \\(2\\)"),
])
def test_bad_files_are_refused_in_one_line_and_nothing_is_written(cut, tmp_path, change,
                                                                   message):
    path = _write(change(cut), tmp_path / "bad.nc")
    with pytest.raises(ValueError, match=message) as error:
        import_data([path], tmp_path / "out.zarr", progress=False)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert not (tmp_path / "out.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nc"]


def test_bad_choices_are_refused_before_anything_is_written(cut, tmp_path):
    path = _write(cut, tmp_path / "cut.nc")
    other = _write(cut.isel(longitude=slice(1, None)), tmp_path / "other.nc")
    cases = [
        ({"variable": "u10"}, "has no variable 'u10'; it holds: t2m"),
        ({"segment": "5D"}, "longer than the record \\(48 states\\)"),
        ({"segment": "90min"}, "not a whole number of the data's 1 h interval"),
        ({"segment": "soon"}, "expected a duration"),
        ({"region": "40,45,-9,-8"}, "holds 0 x 5 grid points"),
        ({"region": "57,56,-9,-8"}, "needs -90 <= S < N <= 90"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            import_data([path], tmp_path / "out.zarr", progress=False, **options)
    with pytest.raises(ValueError, match="on another longitude grid"):
        import_data([path, other], tmp_path / "out.zarr", progress=False)
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(ValueError, match="unknown format '.txt'"):
        import_data([tmp_path / "notes.txt"], tmp_path / "out.zarr", progress=False)
    no_units = cut.copy()
    no_units["t2m"].attrs.pop("units")
    with pytest.raises(ValueError, match="units are missing; name them with --units"):
        import_data([_write(no_units, tmp_path / "nounits.nc")], tmp_path / "out.zarr",
                    progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_a_second_writer_is_refused(cut, tmp_path):
    path = _write(cut, tmp_path / "cut.nc")
    with claim(tmp_path / "out.zarr", kind="directory"), \
            pytest.raises(OutputError, match="is being written by"):
        import_data([path], tmp_path / "out.zarr", progress=False)
    with pytest.raises(OutputError, match="input of this command"):
        import_data([path], tmp_path, progress=False)  # around its input


@pytest.mark.e2e
def test_import_verb_as_a_user_runs_it(tmp_path):
    run = subprocess.run([COMMAND, "import", str(GRIB), "--out", "t2m.zarr", "--segment", "1D",
                          "--attribution", ATTRIBUTION], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False,
                         env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "100%" in run.stderr, "no progress bar"
    assert "31 trajectories x 24 states every 1 h from 2019-03-01T00:00" in run.stdout
    ds = open_trajectories(tmp_path / "t2m.zarr")
    assert ds.attrs["attribution"] == ATTRIBUTION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t2m.zarr"]  # no GRIB index left
    again = subprocess.run([COMMAND, "import", str(GRIB), "--out", "t2m.zarr"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == \
        "error: 't2m.zarr' exists; pass --overwrite to replace it"
