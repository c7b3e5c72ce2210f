"""Do heavy-tailed emulators reproduce heavy tails? EDM vs t-EDM vs (t-)Flow, in one run.

    python benchmarks/emulator_tails.py [--quick] [--datasets synthetic,ks_ux,kolmogorov]

Trains EDM, t-EDM (nu = 3, 5, 10), a Gaussian flow and a t-Flow (nu = 5) with the same
backbone, budget and sampler on each data set, draws samples, and scores their tails
against held-out data (assimilate.diagnostics.tails): kurtosis ratio, skewness ratio,
tail KS statistic beyond the 0.99 quantile, exceedance ratios at the 0.99 and 0.999
quantiles, log-density distance. Lower is better except exceedance ratios (1 is perfect).

Data sets:
- ``synthetic``: a skewed, heavy-tailed 1-D field, exp(g) for a smooth Gaussian random
  field g (64 periodic points), like precipitation-type fields;
- ``ks_ux``: the derivative u_x of Kuramoto-Sivashinsky states (configs/ks-small.yaml);
- ``kolmogorov``: vorticity of Kolmogorov flow (configs/kolmogorov-small.yaml, 32²).

Speed columns: training samples/s, and sampling seconds per sample against the
simulator's seconds to produce one independent state (one decorrelation time of the
stored trajectories, measured here) in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from assimilate.config import EmulatorConfig, SamplingConfig, load_config
from assimilate.diagnostics import tail_scores
from assimilate.models.core import build_model, generate, loss_function
from assimilate.training.loop import TrainingConfig, fit
from pde import open_trajectories, simulate
from pde.io.store import field_variable
from pde.io.threads import configure as configure_threads

REPO = Path(__file__).resolve().parents[1]
MODELS = (("EDM", "edm", None), ("t-EDM nu=3", "edm", 3.0), ("t-EDM nu=5", "edm", 5.0),
          ("t-EDM nu=10", "edm", 10.0), ("Flow", "flow", None), ("t-Flow nu=5", "flow", 5.0))


@dataclasses.dataclass
class Dataset:
    name: str
    train: np.ndarray  # (n, *space)
    reference: np.ndarray  # (n_ref, *space), held out
    simulator_seconds: float | None  # per independent state


def decorrelation_lag(field: np.ndarray) -> int:
    """First lag (in stored steps) where the mean autocorrelation drops below 1/e."""
    anomalies = field - field.mean(axis=(0, 1), keepdims=True)
    variance = (anomalies**2).mean()
    for lag in range(1, field.shape[1]):
        correlation = (anomalies[:, lag:] * anomalies[:, :-lag]).mean() / variance
        if correlation < np.exp(-1):
            return lag
    return field.shape[1]


def synthetic(n_train: int, n_reference: int) -> Dataset:
    rng = np.random.default_rng(0)
    k = np.fft.rfftfreq(64, 1 / 64)
    spectrum = np.exp(-((k / 6.0) ** 2))
    white = rng.standard_normal((n_train + n_reference, 64))
    smooth = np.fft.irfft(np.fft.rfft(white) * spectrum, n=64)
    field = np.exp(smooth / smooth.std()).astype(np.float32)
    return Dataset("synthetic exp(GRF)", field[:n_train], field[n_train:], None)


def from_simulator(name: str, config_name: str, scratch: Path, trajectories: int,
                   steps: int, transform=None) -> Dataset:
    config = load_config(REPO / "configs" / f"{config_name}.yaml")
    summary = simulate(config, scratch / f"{config_name}.zarr", trajectories=trajectories,
                       steps=steps, progress=False)
    ds = open_trajectories(summary.path)
    field = ds[field_variable(ds)].values
    if transform is not None:
        field = transform(field, ds)
    burn = config.simulator.burn_in / config.simulator.interval
    per_state = summary.seconds / (trajectories * (steps + burn))
    lag = decorrelation_lag(field)
    held_out = max(1, trajectories // 5)
    train = field[:-held_out].reshape(-1, *field.shape[2:])
    reference = field[-held_out:].reshape(-1, *field.shape[2:])
    return Dataset(name, train, reference, per_state * lag)


def ks_derivative(u: np.ndarray, ds: xr.Dataset) -> np.ndarray:
    length = float(ds.attrs["length"])
    k = 2j * np.pi * np.fft.rfftfreq(u.shape[-1], length / u.shape[-1])
    return np.fft.irfft(k * np.fft.rfft(u, axis=-1), n=u.shape[-1], axis=-1).astype(np.float32)


def train_and_sample(data: Dataset, family: str, nu: float | None, steps: int,
                     batch_size: int, n_samples: int, scratch: Path) -> dict:
    mean, std = float(data.train.mean()), float(data.train.std())
    states = torch.from_numpy((data.train - mean) / std).float().unsqueeze(1)
    settings = EmulatorConfig(
        family=family, nu=nu, backbone="small",
        training=TrainingConfig(steps=steps, batch_size=batch_size, learning_rate=1e-3,
                                warmup_steps=50, ema_decay=0.99, log_every=50,
                                checkpoint_every=steps, validate_every=steps),
        sampling=SamplingConfig(sampler="heun", steps=16),
    )
    model = build_model(settings, dims=states.ndim - 2)

    def batch_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        return states[torch.randint(0, len(states), (batch_size,), generator=generator)]

    checkpoint = scratch / f"{data.name.split()[0]}-{family}-{nu}.pt"
    started = time.perf_counter()
    fit(model, loss_function(family), batch_fn, settings.training, checkpoint,
        metadata={"config": settings.model_dump_json(), "kind": "benchmark"}, progress=False)
    train_seconds = time.perf_counter() - started
    ema = torch.load(checkpoint, weights_only=True)["ema"]
    model.load_state_dict(ema)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    with torch.no_grad():
        chunks = [generate(model, settings, (min(128, n_samples - i), 1, *states.shape[2:]),
                           generator) for i in range(0, n_samples, 128)]
    sample_seconds = (time.perf_counter() - started) / n_samples
    samples = torch.cat(chunks)[:, 0].numpy() * std + mean
    scores = tail_scores(xr.DataArray(samples), xr.DataArray(data.reference)).compute()
    return {
        "kurtosis_ratio": float(scores["kurtosis_ratio"]),
        "skewness_ratio": float(scores["skewness_ratio"]),
        "tail_ks": float(scores["tail_ks_statistic"]),
        "exceedance_0.99": float(scores["exceedance_ratio"].sel(quantile=0.99)),
        "exceedance_0.999": float(scores["exceedance_ratio"].sel(quantile=0.999)),
        "log_density": float(scores["log_density_distance"]),
        "train_samples_per_s": steps * batch_size / train_seconds,
        "sample_seconds": sample_seconds,
    }


def print_table(data: Dataset, rows: dict[str, dict]) -> None:
    simulator = "n/a" if data.simulator_seconds is None else f"{data.simulator_seconds:.3g}"
    print(f"\n### {data.name} (simulator s per independent state: {simulator})\n")
    print("| model | kurtosis ratio | skewness ratio | tail KS (0.99) | exceed. 0.99 | "
          "exceed. 0.999 | log-density | train samples/s | sample s/state |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['kurtosis_ratio']:.3f} | {row['skewness_ratio']:.3f} | "
              f"{row['tail_ks']:.3f} | {row['exceedance_0.99']:.2f} | "
              f"{row['exceedance_0.999']:.2f} | {row['log_density']:.3f} | "
              f"{row['train_samples_per_s']:.0f} | {row['sample_seconds']:.3g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, a smoke run")
    parser.add_argument("--datasets", default="synthetic,ks_ux,kolmogorov")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per pool of torch, BLAS and XLA (0: pde.io.threads' choice)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    configure_threads(args.threads or None)
    torch.manual_seed(0)
    scratch = Path(tempfile.mkdtemp(prefix="emulator-tails-"))
    budgets = {  # name: (training steps, batch size, samples)
        "synthetic": (40, 16, 64) if args.quick else (800, 64, 2000),
        "ks_ux": (40, 16, 64) if args.quick else (800, 64, 2000),
        "kolmogorov": (10, 4, 16) if args.quick else (300, 32, 512),
    }
    builders = {
        "synthetic": lambda: synthetic(8000, 4000),
        "ks_ux": lambda: from_simulator("KS u_x", "ks-small", scratch, 20, 400, ks_derivative),
        "kolmogorov": lambda: from_simulator("Kolmogorov vorticity", "kolmogorov-small",
                                             scratch, 16, 150),
    }
    results = {}
    try:
        for key in args.datasets.split(","):
            data = builders[key]()
            steps, batch, n_samples = budgets[key]
            rows = {name: train_and_sample(data, family, nu, steps, batch, n_samples, scratch)
                    for name, family, nu in MODELS}
            print_table(data, rows)
            results[data.name] = {"simulator_seconds": data.simulator_seconds,
                                  "budget": {"steps": steps, "batch": batch,
                                             "samples": n_samples}, "models": rows}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
