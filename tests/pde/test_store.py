"""Trajectory stores: schema, provenance, determinism, refusal, validation, export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from assimilate.config import load_config
from pde import StoreError, export, open_trajectories, simulate
from pde.io.errors import OutputError
from pde.io.store import COMPLETE, SCHEMA
from tests.conftest import TINY_KS, write_config


@pytest.fixture
def ks_store(tiny_ks: Path, tmp_path: Path) -> Path:
    simulate(load_config(tiny_ks), tmp_path / "ks.zarr", progress=False)
    return tmp_path / "ks.zarr"


def test_schema_coordinates_and_provenance(ks_store: Path) -> None:
    ds = open_trajectories(ks_store)
    assert ds["u"].dims == ("trajectory", "time", "x")
    assert ds["u"].shape == (6, 12, 32)
    assert isinstance(ds["u"].data, da.Array), "open_trajectories must stay lazy"
    assert ds["u"].data.chunks[0] == (1,) * 6, "one trajectory per chunk"
    assert ds["time"].attrs["units"] and ds["x"].attrs["units"]
    np.testing.assert_allclose(ds["time"].values, np.arange(12) * 0.2)
    assert ds.attrs["schema"] == SCHEMA and ds.attrs["pde"] == "kuramoto_sivashinsky"
    assert ds.attrs["seed"] == 3 and ds.attrs["n_points"] == 32
    for key in ("created", "package_version", "jax_version", "solver", "config"):
        assert ds.attrs[key]
    assert json.loads(ds.attrs["config"])["dataset"]["trajectories"] == 6
    assert bool(ds[COMPLETE].all())
    values = ds["u"].values
    assert np.isfinite(values).all() and values.std() > 0.1


def test_store_rebuilds_its_simulator(ks_store: Path) -> None:
    from pde.config import SimulationConfig

    ds = open_trajectories(ks_store)
    config = SimulationConfig.model_validate_json(ds.attrs["config"])
    simulator = config.simulator.build()
    state = simulator.from_physical(ds["u"].isel(trajectory=0, time=0).values[None])
    _, fields = simulator.trajectory(state, 3)
    np.testing.assert_allclose(fields[0], ds["u"].isel(trajectory=0, time=slice(0, 3)), atol=1e-4)


def test_same_seed_same_store_whatever_the_batching(ks_store: Path, tmp_path: Path) -> None:
    data = TINY_KS | {"dataset": TINY_KS["dataset"] | {"batch_size": 4}}
    again = simulate(load_config(write_config(tmp_path, data, "b4.yaml")), tmp_path / "b4.zarr",
                     progress=False)
    first, second = open_trajectories(ks_store), open_trajectories(again.path)
    np.testing.assert_array_equal(first["u"].values, second["u"].values)
    assert not np.allclose(first["u"][0].values, first["u"][1].values), "trajectories differ"


def test_rerun_on_complete_store_is_a_no_op(ks_store: Path, tiny_ks: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in ks_store.rglob("*") if p.is_file()}
    summary = simulate(load_config(tiny_ks), ks_store, progress=False)
    assert summary.computed == 0 and "nothing to do" in str(summary)
    after = {p: p.stat().st_mtime_ns for p in ks_store.rglob("*") if p.is_file()}
    assert before == after


def test_refuses_other_config_unless_overwrite(ks_store: Path, tiny_ks: Path) -> None:
    config = load_config(tiny_ks)
    with pytest.raises(StoreError, match="different configuration.*steps.*overwrite"):
        simulate(config, ks_store, steps=20, progress=False)
    assert open_trajectories(ks_store)["u"].shape[1] == 12, "refusal must keep the old data"
    simulate(config, ks_store, steps=20, overwrite=True, progress=False)
    assert open_trajectories(ks_store)["u"].shape[1] == 20


def test_refuses_store_of_another_pde(ks_store: Path, tiny_kolmogorov: Path) -> None:
    with pytest.raises(StoreError, match="different configuration"):
        simulate(load_config(tiny_kolmogorov), ks_store, progress=False)
    with pytest.raises(StoreError, match="holds 'kuramoto_sivashinsky' data, expected 'kolm"):
        open_trajectories(ks_store, pde="kolmogorov")


def test_output_path_that_is_a_file_or_foreign_directory(tiny_ks: Path, tmp_path: Path) -> None:
    config = load_config(tiny_ks)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    with pytest.raises(OutputError, match="notes.txt': it is a file"):
        simulate(config, a_file, progress=False)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("meow")
    with pytest.raises(StoreError, match="not a trajectory store"):
        simulate(config, foreign, overwrite=True, progress=False)
    assert a_file.read_text() == "keep me" and (foreign / "cat.jpg").exists()


def test_read_only_directory_leaves_nothing(tiny_ks: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/sys/assimilate-test.zarr")  # read-only even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "store.zarr"
    with pytest.raises(OutputError, match="cannot write '.*zarr': directory .* not writable"):
        simulate(load_config(tiny_ks), target, progress=False)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}")]


def test_open_rejects_missing_foreign_and_broken_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        open_trajectories(tmp_path / "absent.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a Zarr store"):
        open_trajectories(tmp_path / "plain")
    xr.Dataset({"t2m": ("x", np.zeros(3))}).to_zarr(tmp_path / "foreign.zarr", zarr_format=3)
    with pytest.raises(StoreError, match="not a trajectory store.*schema"):
        open_trajectories(tmp_path / "foreign.zarr")


def test_open_rejects_half_written_store(ks_store: Path) -> None:
    done = xr.Dataset({COMPLETE: ("trajectory", np.zeros(2, dtype=bool))})
    done.to_zarr(ks_store, region={"trajectory": slice(2, 4)}, mode="r+", zarr_format=3)
    with pytest.raises(StoreError, match="incomplete: 2 of 6 trajectories unfinished \\(2, 3\\)"):
        open_trajectories(ks_store)
    finished = open_trajectories(ks_store, finished_only=True)
    assert list(finished["trajectory"].values) == [0, 1, 4, 5]


def test_missing_variable_is_named(ks_store: Path) -> None:
    import shutil

    shutil.rmtree(ks_store / "u")
    with pytest.raises(StoreError, match="lacks variable 'u'|cannot be opened"):
        open_trajectories(ks_store)


def test_export_netcdf_round_trip(ks_store: Path, tmp_path: Path) -> None:
    target = export(ks_store, tmp_path / "ks.nc")
    with xr.open_dataset(target, engine="netcdf4") as nc:
        np.testing.assert_array_equal(nc["u"].values, open_trajectories(ks_store)["u"].values)
        assert nc.attrs["pde"] == "kuramoto_sivashinsky" and nc.attrs["schema"] == SCHEMA
        assert nc["x"].attrs["units"]
    with pytest.raises(OutputError, match="exists.*overwrite"):
        export(ks_store, target)
    assert not list(tmp_path.glob(".ks.nc.partial-*"))
