"""Shared fixtures: tiny configurations that run in seconds on two CPU cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_KS = {
    "simulator": {
        "pde": "kuramoto_sivashinsky",
        "length": 22.0,
        "n_points": 32,
        "dt": 0.05,
        "interval": 0.2,
        "burn_in": 2.0,
    },
    "dataset": {"trajectories": 6, "steps": 12, "seed": 3, "batch_size": 2},
}

TINY_KOLMOGOROV = {
    "simulator": {
        "pde": "kolmogorov",
        "reynolds": 100.0,
        "solver_grid": 16,
        "stored_grid": 8,
        "forcing_wavenumber": 2,
        "interval": 0.2,
        "burn_in": 1.0,
    },
    "dataset": {"trajectories": 2, "steps": 5, "seed": 1, "batch_size": 2},
}


def write_config(directory: Path, data: dict, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: the tiny networks of the tests are far faster on one
    thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_ks(tmp_path: Path) -> Path:
    return write_config(tmp_path, TINY_KS, "tiny-ks.yaml")


@pytest.fixture
def tiny_kolmogorov(tmp_path: Path) -> Path:
    return write_config(tmp_path, TINY_KOLMOGOROV, "tiny-kolmogorov.yaml")

TINY_EMULATOR = {
    "family": "edm",
    "backbone": "tiny",
    "training": {"steps": 30, "batch_size": 16, "learning_rate": 1e-3, "warmup_steps": 5,
                 "checkpoint_every": 10, "log_every": 10, "validate_every": 10},
    "sampling": {"sampler": "heun", "steps": 4},
}

TINY_CONTROLLER = {
    "lookahead": 2, "width": 16, "blocks": 1, "spin_up": 1, "energy": 0.01,
    "regimes": ["dense"],
    "training": {"steps": 30, "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 2,
                 "ema_decay": 0.5, "checkpoint_every": 10, "log_every": 5,
                 "validate_every": 10},
}

TINY_FORECASTER = {
    "backbone": "tiny",
    "history": 1,
    "training": {"steps": 60, "batch_size": 16, "learning_rate": 2e-3, "warmup_steps": 5,
                 "ema_decay": 0.8,
                 "checkpoint_every": 30, "log_every": 10, "validate_every": 10},
    "sampling": {"sampler": "euler", "steps": 4},
}


ERA5_NETCDF = Path(__file__).resolve().parents[1] / "examples" / "era5" / "era5-t2m-uk-2019-03.nc"


@pytest.fixture(scope="session")
def pilot(tmp_path_factory) -> dict[str, Path]:
    """A cut of the shipped ERA5 file (9 x 13 points, 6 days) imported as days 1-4 (train,
    daily segments; day 4 validates) and days 5-6 (test, one segment), and a tiny
    forecaster conditioned on the hour of day trained on it: imported data end to end, in
    seconds."""
    import xarray as xr

    from assimilate.config import load_config
    from assimilate.models.forecaster import train_forecaster
    from pde.ingest import import_data
    from pde.io.store import open_trajectories

    root = tmp_path_factory.mktemp("imported")
    with xr.open_dataset(ERA5_NETCDF) as ds:
        cut = ds.isel(time=slice(0, 6 * 24), latitude=slice(0, 9), longitude=slice(0, 13)).load()
    cut.to_netcdf(root / "cut.nc")
    import_data([root / "cut.nc"], root / "train.zarr", period="2019-03-01/2019-03-05",
                segment="1D", progress=False)
    import_data([root / "cut.nc"], root / "test.zarr", period="2019-03-05/2019-03-07",
                progress=False)
    section = json.loads(open_trajectories(root / "train.zarr").attrs["config"])
    forecaster = TINY_FORECASTER | {
        "history": 2, "increment_scale": "point", "calendar": ["hour_of_day"],
        "training": TINY_FORECASTER["training"] | {"steps": 20, "validation_trajectories": 1}}
    config = write_config(root, section | {"forecaster": forecaster})
    train_forecaster(load_config(config), root / "train.zarr", root / "forecaster.pt",
                     progress=False)
    return {"root": root, "train": root / "train.zarr", "test": root / "test.zarr",
            "checkpoint": root / "forecaster.pt"}
