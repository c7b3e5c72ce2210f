"""Diagnostics throughput on a store larger than the Dask workers' memory, in one run.

    python benchmarks/diagnostics.py [--quick] [--json PATH] [--store DIR]
                                     [--worker-memory 1GiB] [--factor 4]
                                     [--sections store gridded]

1. Store: a synthetic Kolmogorov-like ``vorticity`` field (trajectory, time, y, x),
   float32 on a 64×64 grid, chunks of (1, 64, 64, 64) (1 MiB), written chunk by chunk
   with Dask (never held in memory) to a Zarr v3 store (default zstd codec: about 92 % of
   its size on disk) whose uncompressed size is at least ``factor`` times the memory of
   one worker (4 × 1 GiB by default; ``--quick``: 2 × 512 MiB, since a worker that has
   imported the diagnostics holds 200-250 MiB before any data, and 256 MiB workers were
   killed by their nanny at their first task). Each chunk is a fixed mean flow cos(4y)
   plus a smooth random field (Gaussian spectrum around |k| ≈ 6, time-correlated within
   the chunk) scaled per time step by a heavy-tailed, smoothed Student-t amplitude; the
   seed of each chunk is its position, so the store is the same on every build and is
   reused when present. The attrs ``pde="kolmogorov"`` and ``viscosity`` make
   ``diagnose`` compute the energy, enstrophy and dissipation series and the energy
   spectrum as well: the full workload.
2. For 1 and 2 local worker processes (one thread each, ``memory_limit`` as given):
   a. raw read: every chunk read and decompressed by the same reader (``xr.open_zarr``)
      and reduced to its size (a trivial per-chunk task and a sum), on the same cluster;
      run twice, the first as a warm-up, the second timed.
   b. ``diagnose(xr.open_zarr(store), compute=ComputeSettings(scheduler=<the cluster>))``,
      timed end to end: its pre-pass, the one Dask pass, and the in-memory extreme-value fits (what a user waits
      for).
   Throughput is the store's uncompressed bytes over wall time (MB = 10⁶ bytes) for
   both, so the ratio is a ratio of wall times. The store may sit in the OS page cache
   (as with any repeated read); both numbers are measured the same way after the warm-up.
3. Peak worker memory: the resident set size of every worker process, sampled every
   0.2 s from a background thread (``client.run`` of ``psutil``), its maximum over the
   run and over workers, against the worker memory limit (a spike shorter than 0.2 s,
   such as the one before a nanny kills a worker, can be missed). Alongside: the task
   results the workers hold (in memory plus spilled, from the scheduler; what a
   streaming pass keeps small) at their largest and by task prefix, the bytes spilled to
   disk (the workers' ``disk-write`` metrics), and the worker time per task prefix.
   A diagnose call still running after ``--timeout`` seconds is reported as unfinished
   (a worker paused at 80 % of its limit by unmanaged memory never resumes).
4. Speed-up from 1 to 2 workers: the ratio of the diagnostics' wall times.
5. Per-point fits (section ``gridded``): ``gridded.fit_per_point`` (GEV of annual maxima
   and declustered GPD above each point's 0.95 quantile, with delta-method intervals) on
   a synthetic (time, lat, lon) field of 30 years of daily float32 anomalies on a 64×128
   grid (``--quick``: 16×32), generated lazily per chunk of (time, 4 lat, lon), each
   chunk seeded by its position: AR(1) anomalies (rho 0.6) whose Student-t innovations
   have 3 to 15 degrees of freedom from the first latitude row to the last. Rates are
   points per second, each point one GEV and one GPD fit, on 1 and 2 local workers (the
   field generated inside the same graph), with peak worker memory sampled as in 3.
   Baseline, in this process: a plain loop of ``scipy.stats.genextreme.fit`` and
   ``genpareto.fit(floc=0)`` over the first 256 points, fits only (their annual maxima
   and cluster excesses, with the same blocks, thresholds and run lengths, extracted
   beforehand and not timed: that favours the loop), and ``fit_per_point`` on the same
   256 points in this process on one thread. Also reported: at how many of the 256
   points our likelihood is at least scipy's (within 1e-6). ``--json`` keeps the rows
   of a section not run from the file it overwrites.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Self

import dask
import dask.array as da
import numpy as np
import pandas as pd
import psutil
import xarray as xr
from dask.utils import format_bytes, parse_bytes
from distributed import Client, LocalCluster
from scipy import signal, stats

GRID = 64
TIME_CHUNK = 64
STEPS = 4096  # per trajectory: 64 chunks, 64 MiB
DT = 0.2
VISCOSITY = 0.001
SEED = 20240611
CHUNK_BYTES = TIME_CHUNK * GRID * GRID * 4
SAMPLE_INTERVAL = 0.2


# --- the store -----------------------------------------------------------------------------


def _vorticity_block(block: np.ndarray, block_info=None) -> np.ndarray:
    """One (1, time, y, x) chunk of the synthetic field, seeded by its position."""
    location = block_info[0]["chunk-location"]
    _, nt, ny, nx = block.shape
    rng = np.random.default_rng([SEED, *location])
    ky = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
    kx = np.fft.rfftfreq(nx, 1.0 / nx)[None, :]
    k = np.hypot(ky, kx)
    envelope = k * np.exp(-((k / 6.0) ** 2))  # smooth: energy around |k| ≈ 6, none at k = 0
    noise = rng.standard_normal((nt, ny, nx // 2 + 1, 2)).view(np.complex128)[..., 0]
    rho = 0.9
    coefficients = np.empty_like(noise)
    coefficients[0] = noise[0]
    for t in range(1, nt):
        coefficients[t] = rho * coefficients[t - 1] + math.sqrt(1 - rho**2) * noise[t]
    turbulence = np.fft.irfft2(coefficients * envelope, s=(ny, nx))
    turbulence /= turbulence.std()
    bursts = np.abs(rng.standard_t(3, nt))  # heavy-tailed amplitudes, smoothed in time
    amplitude = np.empty(nt)
    amplitude[0] = bursts[0]
    for t in range(1, nt):
        amplitude[t] = 0.7 * amplitude[t - 1] + 0.3 * bursts[t]
    y = 2 * np.pi * np.arange(ny) / ny
    omega = 4.0 * np.cos(4 * y)[None, :, None] + (1 + amplitude)[:, None, None] * turbulence
    return omega[None].astype(np.float32)


def _shape(store_bytes: int) -> tuple[int, int, int, int]:
    trajectories = math.ceil(store_bytes / (STEPS * GRID * GRID * 4))
    return trajectories, STEPS, GRID, GRID


def _matches(path: Path, shape: tuple) -> bool:
    try:
        field = xr.open_zarr(path)["vorticity"]
    except Exception:  # noqa: BLE001 - anything unreadable is rebuilt
        return False
    return field.shape == shape and field.data.chunksize == (1, TIME_CHUNK, GRID, GRID)


def build_store(path: Path, shape: tuple) -> float:
    """Write the store (or reuse it); seconds spent writing, 0 when reused."""
    if path.exists() and _matches(path, shape):
        return 0.0
    shutil.rmtree(path, ignore_errors=True)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    chunks = (1, TIME_CHUNK, GRID, GRID)
    data = da.zeros(shape, chunks=chunks, dtype=np.float32).map_blocks(
        _vorticity_block, dtype=np.float32)
    side = 2 * np.pi * np.arange(GRID) / GRID
    ds = xr.Dataset(
        {"vorticity": (("trajectory", "time", "y", "x"), data)},
        coords={"time": DT * np.arange(shape[1]), "y": side, "x": side},
        attrs={"pde": "kolmogorov", "viscosity": VISCOSITY,
               "description": "synthetic Kolmogorov-like field for benchmarks/diagnostics.py"})
    started = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        ds.to_zarr(partial, mode="w", zarr_format=3, consolidated=True)
    partial.rename(path)  # only a complete store carries the final name
    return time.perf_counter() - started


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- measurements --------------------------------------------------------------------------


def _block_size(block: np.ndarray) -> np.ndarray:
    return np.full((1,) * block.ndim, block.size, dtype=np.int64)


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _cluster_data(dask_scheduler) -> tuple[int, int]:
    """Bytes of task results the workers hold (in memory and spilled), and spilled bytes."""
    memory = dask_scheduler.memory
    return memory.managed_total, memory.spilled


def _held_by_prefix(dask_scheduler) -> dict[str, list]:
    """Task results held by the workers now: [count, bytes] per task prefix, largest first."""
    held: dict[str, list] = {}
    for task in dask_scheduler.tasks.values():
        if task.state == "memory":
            entry = held.setdefault(task.prefix.name, [0, 0])
            entry[0] += 1
            entry[1] += max(task.nbytes, 0)
    return dict(sorted(held.items(), key=lambda item: -item[1][1])[:6])


def _worker_state(dask_worker) -> dict:
    return {"status": str(dask_worker.status.name),
            "spilled_now": int(dask_worker.data.spilled_total.disk)}


class PeakMemory:
    """Largest RSS of each worker process and largest data held by the cluster, sampled
    from a background thread; what the workers held (by task prefix) at that largest."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.peak: dict[str, int] = defaultdict(int)
        self.held = self.spilled = 0
        self.held_by_prefix: dict[str, list] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        tick = snapshot = 0
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a worker being restarted: skip a sample
                for worker, rss in self.client.run(_rss).items():
                    self.peak[worker] = max(self.peak[worker], rss)
                held, spilled = self.client.run_on_scheduler(_cluster_data)
                self.held, self.spilled = max(self.held, held), max(self.spilled, spilled)
                if tick % 25 == 0 and held > snapshot:  # every 5 s: it walks all tasks
                    self.held_by_prefix = self.client.run_on_scheduler(_held_by_prefix)
                    snapshot = held
            tick += 1
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def maximum(self) -> int:
        return max(self.peak.values(), default=0)


def _scheduler_metrics(dask_scheduler) -> dict:
    tasks = {name: prefix.state_counts.get("memory", 0)
             for name, prefix in dask_scheduler.task_prefixes.items()}
    return {"metrics": dict(dask_scheduler.cumulative_worker_metrics), "tasks": tasks}


def _worker_metrics(client: Client) -> dict:
    time.sleep(2.0)  # worker metrics reach the scheduler with the heartbeats
    return client.run_on_scheduler(_scheduler_metrics)


def where_time_goes(before: dict, after: dict) -> dict:
    """Worker seconds per task prefix, spilled bytes and tasks run between two snapshots."""
    seconds: dict[str, float] = defaultdict(float)
    activity: dict[str, float] = defaultdict(float)
    spilled = 0
    for key, value in after["metrics"].items():
        delta = value - before["metrics"].get(key, 0)
        if not isinstance(key, tuple) or not delta:
            continue
        if key[-2:] == ("disk-write", "bytes"):
            spilled += delta
        elif key[0] == "execute" and key[-1] == "seconds" and len(key) >= 4:
            seconds[str(key[-3])] += delta
            activity[str(key[-2])] += delta
    tasks = sum(n - before["tasks"].get(name, 0) for name, n in after["tasks"].items())
    top = dict(sorted(seconds.items(), key=lambda item: -item[1])[:8])
    return {"worker_seconds": round(sum(seconds.values()), 2),
            "top_prefixes_s": {k: round(v, 2) for k, v in top.items()},
            "activity_s": {k: round(v, 2) for k, v in sorted(activity.items())},
            "spilled_bytes": int(spilled), "tasks": int(tasks)}


def raw_read(client: Client, path: Path) -> tuple[float, int]:
    """Seconds to read and decompress every chunk with a trivial reduction; peak RSS."""
    data = xr.open_zarr(path)["vorticity"].data
    sizes = data.map_blocks(_block_size, chunks=tuple((1,) * len(c) for c in data.chunks),
                            dtype=np.int64)
    with PeakMemory(client) as memory:
        started = time.perf_counter()
        total = client.compute(sizes.sum()).result()
        elapsed = time.perf_counter() - started
    assert total == data.size, (total, data.size)
    return elapsed, memory.maximum


def run_cluster(path: Path, workers: int, worker_memory: str, logical: int,
                show_summary: bool, timeout: float, scratch: Path) -> dict:
    # imported here, not at the top: worker processes start by re-importing this module
    from assimilate.diagnostics import ComputeSettings, diagnose, summary

    limit = parse_bytes(worker_memory)
    row = {"workers": workers, "store_gib": logical / 2**30, "worker_memory_limit": limit}
    with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=worker_memory,
                      processes=True, dashboard_address=None,
                      local_directory=scratch) as cluster, \
            Client(cluster) as client:
        idle = client.run(_rss)
        row["idle_worker_rss"] = max(idle.values())
        raw_read(client, path)  # warm-up: page cache, worker imports
        raw_seconds, raw_peak = raw_read(client, path)
        row["raw_read_s"] = raw_seconds
        row["raw_read_mb_s"] = logical / 1e6 / raw_seconds
        row["raw_read_peak_rss"] = raw_peak
        before = _worker_metrics(client)
        names = set(client.scheduler_info()["workers"])
        result: dict = {}

        def run() -> None:
            try:
                result["diag"] = diagnose(xr.open_zarr(path), compute=ComputeSettings(
                    scheduler=cluster.scheduler_address))
            except Exception as error:  # noqa: BLE001 - a failure is a result to report
                result["error"] = f"{type(error).__name__}: {error}"

        with PeakMemory(client) as memory, warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            started = time.perf_counter()
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(timeout)
            elapsed = time.perf_counter() - started
            caught = [str(w.message) for w in seen]
        diag = result.get("diag")
        row["error"] = result.get("error")
        if thread.is_alive():
            row["error"] = f"not finished after {timeout:.0f} s"
        row["worker_state_after"] = client.run(_worker_state)
        row["held_at_end"] = client.run_on_scheduler(_held_by_prefix)
        row["diagnose_s"] = elapsed
        row["diagnose_mb_s"] = logical / 1e6 / elapsed if diag is not None else None
        row["ratio"] = raw_seconds / elapsed if diag is not None else None
        row["peak_worker_rss"] = memory.maximum
        row["peak_worker_rss_by_worker"] = dict(memory.peak)
        row["peak_held_bytes"] = memory.held
        row["peak_spilled_bytes"] = memory.spilled
        row["held_by_prefix_at_peak"] = memory.held_by_prefix
        row["workers_lost"] = len(names - set(client.scheduler_info()["workers"]))
        row["warnings"] = sorted(set(caught))
        row.update(where_time_goes(before, _worker_metrics(client)))
        if diag is not None and show_summary:
            print(summary(diag), flush=True)
    return row


# --- output --------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def table(rows: list[dict]) -> str:
    lines = [("| workers | store (GiB) | worker memory limit | raw read (MB/s) "
              "| diagnostics (MB/s) | diagnostics / raw read | peak worker memory |"),
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        limit = r["worker_memory_limit"]
        diag = (f"{r['diagnose_mb_s']:.0f}" if r["diagnose_mb_s"] else
                "unfinished" if r["error"].startswith("not finished") else "failed")
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "–"
        lines.append(f"| {r['workers']} | {r['store_gib']:.1f} | {format_bytes(limit)} | "
                     f"{r['raw_read_mb_s']:.0f} | {diag} | {ratio} | "
                     f"{_mib(r['peak_worker_rss'])} ({r['peak_worker_rss'] / limit:.0%}) |")
    return "\n".join(lines)


# --- per-point fits (section 5) ------------------------------------------------------------

GRIDDED_GRID, GRIDDED_QUICK_GRID = (64, 128), (16, 32)
GRIDDED_YEARS = 30
GRIDDED_LAT_CHUNK = 4
BASELINE_POINTS = 256


def _daily_block(block: np.ndarray, block_info=None) -> np.ndarray:
    """One (time, lat, lon) chunk of daily anomalies, seeded by its position: AR(1) with
    Student-t innovations, heavier-tailed towards the first latitude rows."""
    info = block_info[None]
    nt, ny, nx = block.shape
    rng = np.random.default_rng([SEED, 5, *info["chunk-location"]])
    row = info["array-location"][1][0] + np.arange(ny)
    degrees = 3.0 + 12.0 * row / max(info["shape"][1] - 1, 1)
    innovations = rng.standard_t(degrees[None, :, None], size=(nt, ny, nx))
    anomalies = signal.lfilter([1.0], [1.0, -0.6], innovations, axis=0)
    return anomalies.astype(np.float32)


def gridded_field(grid: tuple[int, int], years: int) -> xr.DataArray:
    """Lazy (time, lat, lon) daily field of ``years`` years (see ``_daily_block``)."""
    time_axis = pd.date_range("1991-01-01", f"{1990 + years}-12-31", freq="D")
    shape = (len(time_axis), *grid)
    data = da.zeros(shape, chunks=(-1, GRIDDED_LAT_CHUNK, -1), dtype=np.float32).map_blocks(
        _daily_block, dtype=np.float32)
    return xr.DataArray(data, dims=("time", "lat", "lon"), name="anomaly",
                        coords={"time": time_axis,
                                "lat": np.linspace(-90, 90, grid[0] + 2)[1:-1],
                                "lon": np.arange(grid[1]) * 360.0 / grid[1]},
                        attrs={"units": "K"})


def _import_gridded() -> None:
    import assimilate.diagnostics.gridded  # noqa: F401 - warm-up: imports are not fits


def run_gridded(field: xr.DataArray, workers: int, worker_memory: str, scratch: Path) -> dict:
    """``fit_per_point`` on a local cluster of ``workers`` single-threaded processes."""
    from assimilate.diagnostics.gridded import count_unfitted, fit_per_point

    limit, n_points = parse_bytes(worker_memory), field.sizes["lat"] * field.sizes["lon"]
    with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=worker_memory,
                      processes=True, dashboard_address=None,
                      local_directory=scratch) as cluster, Client(cluster) as client:
        client.run(_import_gridded)
        idle = max(client.run(_rss).values())
        before = _worker_metrics(client)
        lazy = fit_per_point(field, space=("lat", "lon"))
        with PeakMemory(client) as memory:
            started = time.perf_counter()
            result = lazy.compute()
            elapsed = time.perf_counter() - started
        spent = where_time_goes(before, _worker_metrics(client))
    return {"benchmark": "gridded", "method": f"fit_per_point, {workers} worker(s)",
            "workers": workers, "points": n_points, "wall_s": elapsed,
            "points_per_s": n_points / elapsed, "worker_memory_limit": limit,
            "idle_worker_rss": idle, "peak_worker_rss": memory.maximum,
            "chunks": lazy["point_gev_shape"].data.npartitions,
            "cpu_s": spent["activity_s"].get("thread-cpu", float("nan")),
            "unfitted": count_unfitted(result), **spent}


def scipy_loop(field: xr.DataArray, n_points: int) -> dict:
    """Baseline and reference in this process: scipy fits over the first ``n_points``
    points (fits only) and ``fit_per_point`` on the same points on one thread."""
    from assimilate.diagnostics import calendar, extremes, fitting
    from assimilate.diagnostics.gridded import fit_per_point

    rows = math.ceil(n_points / field.sizes["lon"])
    with dask.config.set(scheduler="threads"):
        subset = field.isel(lat=slice(0, rows)).compute()
    with dask.config.set(scheduler="synchronous"):
        started, cpu = time.perf_counter(), time.process_time()
        ours = fit_per_point(subset, space=("lat", "lon")).compute()
        ours_s, ours_cpu = time.perf_counter() - started, time.process_time() - cpu
    blocks = calendar.blocks(subset["time"], "year")
    cap = max(1, min(subset.sizes["time"] // (4 * fitting.MIN_PEAKS), 365 // 4))  # as ours
    series = subset.values.reshape(subset.sizes["time"], -1).T[:n_points].astype(np.float64)
    months = calendar.month_count(subset["time"])
    data = []
    for x in series:  # declustered as ours: the intervals estimator within exceedance years
        threshold = np.quantile(x, 0.95)
        segments = calendar.exceedance_years(months, x[None] > threshold)
        run_length = min(extremes.intervals_declustering(x[None], threshold, segments)[0], cap)
        peaks = extremes.peaks_over_threshold(x, threshold, run_length)
        data.append((blocks.maxima(x).ravel(), peaks.values - threshold))
    started, cpu = time.perf_counter(), time.process_time()
    fits = [(stats.genextreme.fit(maxima), stats.genpareto.fit(excesses, floc=0.0))
            for maxima, excesses in data]
    scipy_s, scipy_cpu = time.perf_counter() - started, time.process_time() - cpu
    estimate = ours.sel(interval="estimate")
    gev = np.stack([estimate[f"point_gev_{k}"].values.ravel()[:n_points]
                    for k in ("location", "scale", "shape")], axis=1)
    gpd = np.stack([estimate[f"point_gpd_{k}"].values.ravel()[:n_points]
                    for k in ("shape", "scale")], axis=1)
    gev_nll, gpd_nll = fitting.gev_negative_log_likelihood, fitting.gpd_negative_log_likelihood
    gev_ok = sum(gev_nll(m, *g) <= gev_nll(m, f[1], f[2], -f[0]) + 1e-6
                 for (m, _), g, (f, _) in zip(data, gev, fits, strict=True))
    gpd_ok = sum(gpd_nll(y, *g) <= gpd_nll(y, f[0], f[2]) + 1e-6
                 for (_, y), g, (_, f) in zip(data, gpd, fits, strict=True))
    return {"benchmark": "gridded", "method": "scipy loop, in process", "workers": 0,
            "points": n_points, "wall_s": scipy_s, "points_per_s": n_points / scipy_s,
            "cpu_s": scipy_cpu, "in_process_s": ours_s, "in_process_cpu_s": ours_cpu,
            "in_process_points_per_s": len(series) / ours_s,
            "gev_at_least_scipy": int(gev_ok), "gpd_at_least_scipy": int(gpd_ok)}


def _memory(peak: int, limit: int) -> str:
    return f"{_mib(peak)} ({peak / limit:.0%})"


def gridded_table(rows: list[dict]) -> str:
    """Rates, their ratio to the scipy loop, CPU seconds per point (on a busy machine the
    wall time of parallel workers grows, their CPU time does not) and peak worker memory."""
    base, reference = rows[0]["points_per_s"], rows[0]
    lines = [("| method | points | wall (s) | points/s (GEV + GPD) | vs scipy loop "
              "| CPU per point (ms) | peak worker memory |"), "|---|---:|---:|---:|---:|---:|---:|"]
    table_rows = [("scipy loop, in process, fits only", reference["points"],
                   reference["wall_s"], base, reference["cpu_s"], "–"),
                  ("fit_per_point, in process, 1 thread", reference["points"],
                   reference["in_process_s"], reference["in_process_points_per_s"],
                   reference["in_process_cpu_s"], "–")]
    table_rows += [(r["method"], r["points"], r["wall_s"], r["points_per_s"], r["cpu_s"],
                    _memory(r["peak_worker_rss"], r["worker_memory_limit"])) for r in rows[1:]]
    for method, points, wall, rate, cpu, memory in table_rows:
        lines.append(f"| {method} | {points} | {wall:.1f} | {rate:.1f} | {rate / base:.2f} | "
                     f"{1e3 * cpu / points:.1f} | {memory} |")
    return "\n".join(lines)


def store_benchmark(args: argparse.Namespace) -> list[dict]:
    """Sections 1-4: the diagnostics of a store larger than the workers' memory."""
    worker_memory = args.worker_memory or ("512MiB" if args.quick else "1GiB")
    factor = args.factor or (2.0 if args.quick else 4.0)
    timeout = args.timeout or (300.0 if args.quick else 1800.0)
    target = int(factor * parse_bytes(worker_memory))
    shape = _shape(target)
    logical = int(np.prod(shape)) * 4
    path = args.store or Path(tempfile.gettempdir()) / (
        f"diagnostics-benchmark-{shape[0]}x{shape[1]}x{GRID}x{GRID}.zarr")

    print(f"store: {path}, shape {shape}, {logical / 2**30:.2f} GiB uncompressed "
          f"({factor:g} × {worker_memory} workers), {shape[0] * shape[1] // TIME_CHUNK} "
          f"chunks of {_mib(CHUNK_BYTES)}", flush=True)
    built = build_store(path, shape)
    on_disk = disk_bytes(path)
    print(("reused the store" if not built else
           f"built the store in {built:.0f} s ({logical / 1e6 / built:.0f} MB/s)")
          + f"; {on_disk / 2**30:.2f} GiB on disk", flush=True)

    rows = []
    for n in args.workers:
        with tempfile.TemporaryDirectory(prefix="diagnostics-benchmark-dask-") as scratch:
            row = run_cluster(path, n, worker_memory, logical, not rows, timeout,
                              Path(scratch))
        row["benchmark"] = "store"
        row["store_disk_gib"] = on_disk / 2**30
        row["store_build_s"] = built
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(table(rows))
    times = {r["workers"]: r["diagnose_s"] for r in rows if r["error"] is None}
    if 1 in times and 2 in times:
        print(f"\nspeed-up from 1 to 2 workers (diagnostics wall time): "
              f"{times[1] / times[2]:.2f}×")
    print()
    for r in rows:
        print(f"{r['workers']} worker(s): raw read {r['raw_read_s']:.1f} s, diagnostics "
              f"{r['diagnose_s']:.1f} s ({r['tasks']} tasks, {r['worker_seconds']:.0f} worker-s"
              f"; {', '.join(f'{k} {v:.0f} s' for k, v in list(r['top_prefixes_s'].items())[:5])})"
              f"; peak data held by the workers {_mib(r['peak_held_bytes'])}, spilled "
              f"{_mib(r['spilled_bytes'])}; idle worker {_mib(r['idle_worker_rss'])}"
              + (f", workers lost {r['workers_lost']}" if r["workers_lost"] else "")
              + (f", error: {r['error']}" if r["error"] else ""))
    return rows


def gridded_benchmark(args: argparse.Namespace) -> list[dict]:
    """Section 5: per-point GEV + GPD fits against a loop of scipy fits."""
    grid = GRIDDED_QUICK_GRID if args.quick else GRIDDED_GRID
    worker_memory = args.worker_memory or ("512MiB" if args.quick else "1GiB")
    field = gridded_field(grid, GRIDDED_YEARS)
    chunk = field.data.nbytes // field.data.npartitions
    print(f"\ngridded fits: {grid[0]}×{grid[1]} points × {GRIDDED_YEARS} years of daily "
          f"float32 ({field.nbytes / 1e6:.0f} MB, generated in chunks of {_mib(chunk)}), "
          f"workers of {worker_memory}", flush=True)
    rows = [scipy_loop(field, min(BASELINE_POINTS, grid[0] * grid[1]))]
    print(json.dumps(rows[0]), flush=True)
    for n in args.workers:
        with tempfile.TemporaryDirectory(prefix="diagnostics-benchmark-dask-") as scratch:
            rows.append(run_gridded(field, n, worker_memory, Path(scratch)))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(gridded_table(rows))
    base = rows[0]
    if len(rows) > 2:
        print(f"\nspeed-up from {rows[1]['workers']} to {rows[-1]['workers']} workers (wall "
              f"time): {rows[1]['wall_s'] / rows[-1]['wall_s']:.2f}×")
    print(f"likelihood at least scipy's (within 1e-6) at {base['gev_at_least_scipy']} "
          f"(GEV) and {base['gpd_at_least_scipy']} (GPD) of {base['points']} points; "
          f"unfitted points: {rows[-1]['unfitted']}")
    return rows


def write_json(path: Path, rows: list[dict], sections: list[str]) -> None:
    """Write ``rows``, keeping the rows of the sections not run from an existing file."""
    kept = []
    if path.exists():
        with contextlib.suppress(ValueError):
            kept = [r for r in json.loads(path.read_text())
                    if r.get("benchmark", "store") not in sections]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept + rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="512 MiB workers, a 1 GiB store and a 16×32 grid, for a smoke run")
    parser.add_argument("--worker-memory", default=None,
                        help="memory limit of each Dask worker (default 1GiB; --quick 512MiB)")
    parser.add_argument("--factor", type=float, default=None,
                        help="store size as a multiple of the worker memory (default 4; "
                             "--quick 2)")
    parser.add_argument("--store", type=Path, default=None,
                        help="store directory, reused when it holds the right field "
                             "(default: under the temporary directory)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up waiting for a diagnose call after this many seconds "
                             "(reported as unfinished; default 1800, --quick 300)")
    parser.add_argument("--sections", nargs="+", choices=["store", "gridded"],
                        default=["store", "gridded"],
                        help="store: diagnose a store larger than memory (1-4); gridded: "
                             "per-point extreme-value fits (5); default both")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    if "store" in args.sections:
        rows += store_benchmark(args)
    if "gridded" in args.sections:
        rows += gridded_benchmark(args)
    if args.json:
        write_json(args.json, rows, args.sections)


if __name__ == "__main__":
    main()
