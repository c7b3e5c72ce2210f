"""Generate trajectory stores: batches of trajectories fanned out over Dask.

``simulate`` plans the unfinished trajectories of a store as contiguous batches; each
task builds the simulator, integrates its batch, writes its own region of the store and
then marks those trajectories complete. Nothing holds the whole data set in memory, a
killed run resumes where it stopped, and trajectory ``i`` depends only on the seed and
``i`` (its initial condition uses ``fold_in(PRNGKey(seed), i)``), never on batching or
on the number of workers.

One worker runs in this process; more start a ``distributed.LocalCluster`` of single-
threaded worker processes; ``scheduler`` joins an existing cluster, whose workers must
see the store's path (a shared file system).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from pde.config import SimulationConfig
from pde.io.cluster import DEFAULT_SCHEDULER_TIMEOUT, dask_client
from pde.io.output import Output, claim
from pde.io.progress import tqdm
from pde.io.store import (
    StoreError,
    create_store,
    read_completion,
    stored_config,
    write_trajectories,
)
from pde.simulator import Simulator

__all__ = ["SimulationSummary", "plan_batches", "simulate", "simulate_batch"]


@dataclasses.dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate`` did: where, how much, how fast."""

    path: Path
    pde: str
    trajectories: int
    steps: int
    computed: int
    nbytes: int
    seconds: float

    @property
    def states_per_second(self) -> float:
        return self.computed * self.steps / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        if self.computed == 0:
            return f"{self.path}: already complete ({self.trajectories} trajectories), nothing to do"
        return (
            f"{self.path}: {self.pde}, {self.computed} of {self.trajectories} trajectories x "
            f"{self.steps} states ({self.nbytes / 2**20:.1f} MiB) in {self.seconds:.1f} s, "
            f"{self.computed / self.seconds:.2f} trajectories/s, "
            f"{self.states_per_second:.0f} states/s"
        )


@functools.lru_cache(maxsize=8)
def _simulator(config_json: str) -> Simulator:
    return SimulationConfig.model_validate_json(config_json).simulator.build()


def simulate_batch(config_json: str, path: str, start: int, stop: int) -> tuple[int, int]:
    """Integrate trajectories ``start..stop-1`` and write them into the store at ``path``."""
    config = SimulationConfig.model_validate_json(config_json)
    simulator = _simulator(config_json)
    root = jax.random.PRNGKey(config.dataset.seed)
    states = [simulator.initial_state(jax.random.fold_in(root, i), 1) for i in range(start, stop)]
    state = jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *states)
    state = simulator.burn_in(state)
    _, fields = simulator.trajectory(state, config.dataset.steps)
    fields = np.asarray(fields, dtype=np.float32)
    if not np.isfinite(fields).all():
        raise FloatingPointError(
            f"trajectories {start}..{stop - 1} blew up (non-finite values); "
            "reduce simulator.dt or check the parameters"
        )
    write_trajectories(path, simulator.variable, start, fields)
    return start, stop


def plan_batches(unfinished: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` runs of unfinished indices, at most ``batch_size`` long."""
    batches: list[tuple[int, int]] = []
    for index in np.flatnonzero(unfinished):
        if batches and batches[-1][1] == index and index - batches[-1][0] < batch_size:
            batches[-1] = (batches[-1][0], index + 1)
        else:
            batches.append((int(index), int(index) + 1))
    return batches


def _prepare(path: Path, config: SimulationConfig, overwrite: bool, output: Output) -> None:
    """Create the store, or check an existing one was written with the same config."""
    if path.is_dir() and any(path.iterdir()):
        try:
            existing = stored_config(path)
        except StoreError as error:
            raise StoreError(
                f"refusing to write into '{path}': it exists and is not a trajectory store "
                f"({error}); choose another path"
            ) from None
        if existing != config.model_dump(mode="json"):
            if not overwrite:
                raise StoreError(
                    f"store '{path}' was written with a different configuration "
                    f"({_difference(existing, config.model_dump(mode='json'))}); "
                    "pass --overwrite to replace it, or choose another path"
                )
            shutil.rmtree(path)
        elif overwrite:
            shutil.rmtree(path)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    if not path.exists():
        create_store(path, config, config.simulator.build(), output=output)


def _difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: stored {a!r}, requested {b!r}"
    return ""


def _run_in_process(config_json: str, path: str, batches: list) -> Iterator[tuple[int, int]]:
    for start, stop in batches:
        yield simulate_batch(config_json, path, start, stop)


def _run_on_dask(config_json: str, path: str, batches: list,
                 client) -> Iterator[tuple[int, int]]:
    from distributed import as_completed

    futures = [client.submit(simulate_batch, config_json, path, start, stop, pure=False)
               for start, stop in batches]
    for future in as_completed(futures):
        yield future.result()


def _run(config: SimulationConfig, path: Path, client, progress: bool) -> int:
    """Compute the unfinished trajectories of the store at ``path``; return how many."""
    batches = plan_batches(~read_completion(path), config.dataset.batch_size)
    todo = sum(stop - start for start, stop in batches)
    config_json = config.model_dump_json()
    if client is None:
        results = _run_in_process(config_json, str(path), batches)
    else:
        results = _run_on_dask(config_json, str(path), batches, client)
    done = 0
    with tqdm(total=todo, unit="traj", desc=path.name, disable=not progress or todo == 0) as bar:
        try:
            for start, stop in results:
                bar.update(stop - start)
                done += stop - start
        except KeyboardInterrupt:
            raise
        except Exception as error:
            raise StoreError(
                f"simulation into '{path}' failed after {done} of {todo} trajectories: "
                f"{type(error).__name__}: {error}. Finished trajectories are kept; rerun the "
                "same command to resume"
            ) from error
    return todo


def simulate(
    config: SimulationConfig,
    out: str | Path,
    *,
    trajectories: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT,
    overwrite: bool = False,
    progress: bool = True,
) -> SimulationSummary:
    """Write (or finish) the trajectory store ``out`` for ``config``.

    ``trajectories``, ``steps`` and ``seed`` override the config's dataset section (use
    another seed for a test set). Rerunning
    on a finished store does nothing; on an interrupted one it computes only the
    unfinished trajectories; on a store of another config it refuses unless
    ``overwrite``. The store is claimed (:mod:`pde.io.output`) for the whole run: a second
    ``simulate`` into it exits at once naming this one.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # The store depends on the simulator and dataset sections only: other sections of an
    # experiment file (models, assimilation) must not change its identity.
    config = SimulationConfig.model_validate(
        config.with_dataset(trajectories=trajectories, steps=steps, seed=seed).model_dump(
            include={"simulator", "dataset"}))
    path = Path(out)
    started = time.perf_counter()
    local = scheduler is None and workers == 1
    with claim(path, kind="directory", resumable=True) as output, \
            dask_client(None if local else workers, scheduler, timeout=scheduler_timeout) as client:
        _prepare(path, config, overwrite, output)
        todo = _run(config, path, client, progress)
    seconds = time.perf_counter() - started
    if not read_completion(path).all():
        raise StoreError(f"store '{path}' is still incomplete after the run; rerun to finish it")
    nbytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return SimulationSummary(
        path, config.simulator.pde, config.dataset.trajectories, config.dataset.steps,
        todo, nbytes, seconds,
    )
