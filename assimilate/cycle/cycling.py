"""One call of ``assimilate cycle``: lock, recover, decide which cycles to run, run them.

See :mod:`assimilate.cycle` for the semantics; :mod:`.journal` for the crash safety.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from assimilate.cycle import inbox
from assimilate.cycle.journal import CycledStore, crash_point, now
from assimilate.cycle.workflow import Workflow, load_workflow
from pde.io.errors import ConfigError, OutputError, StoreError
from pde.io.output import claim, holder
from pde.io.store import open_store

__all__ = ["EXIT_BAD_INPUT", "EXIT_DONE", "EXIT_FAILED", "EXIT_RETRY", "CycleBusy",
           "CycleFailed", "CycleOutcome", "cycle"]

EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_RETRY = 0, 1, 2, 75  # 75: EX_TEMPFAIL
VERSIONS = ("assimilate", "numpy", "torch", "jax", "xarray", "zarr")


class CycleBusy(OutputError):
    """Another call is cycling the same analysis store."""


class CycleFailed(RuntimeError):
    """A cycle failed while running (the method diverged); nothing of it was kept."""


@dataclasses.dataclass(frozen=True)
class CycleOutcome:
    """What a call did: ``status`` ``done`` (it ran the cycles ``points``), ``up to date``
    (a no-op) or ``waiting`` (nothing to do yet); ``message`` says it in words; ``notes``
    name late observations."""

    status: Literal["done", "up to date", "waiting"]
    points: tuple[int, ...]
    message: str
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_RETRY if self.status == "waiting" else EXIT_DONE


def cycle(workflow: str | Path | Workflow, *, until: int | None = None,
          redo: int | None = None, progress: bool = True) -> CycleOutcome:
    """Run the next ready cycle of ``workflow``; ``until=Q`` every cycle up to point Q;
    ``redo=P`` cycle P and every later one again (see :mod:`assimilate.cycle`).

    Raises :class:`CycleBusy` when another call holds the store, :class:`CycleFailed`
    when a cycle fails, ``ConfigError`` on bad input; nothing half-done is ever kept.
    """
    flow = workflow if isinstance(workflow, Workflow) else load_workflow(workflow)
    _check_points(flow, until, redo)
    store = CycledStore(flow.analysis, flow.start, flow.cycle_length, flow.file)
    inputs = [p for p in (flow.config, flow.forecaster, flow.controller, flow.climatology,
                          flow.background, flow.inbox) if p is not None]
    with contextlib.ExitStack() as stack:
        try:
            output = stack.enter_context(claim(store.path, kind="directory", inputs=inputs,
                                               resumable=True, option="analysis"))
        except OutputError as error:
            who = holder(store.path)
            if not _held(store.path):
                raise
            with contextlib.suppress(OSError):
                store.log("busy", holder=who)
            raise CycleBusy(f"analysis store '{store.path}' is being cycled by {who}; "
                            "retry later") from error
        return _Cycling(flow, store, output, progress).run(until, redo)


def _held(store: Path) -> bool:
    """Whether another process holds the lock of ``store`` (probed, without waiting)."""
    import filelock

    lock_file = store.with_name(f".{store.name}.lock")
    probe = filelock.FileLock(lock_file, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    try:
        lock_file.unlink(missing_ok=True)  # while held, as claim does: leave no litter
    finally:
        probe.release()
    return False


def _check_points(flow: Workflow, until: int | None, redo: int | None) -> None:
    for option, point in (("--until", until), ("--redo", redo)):
        if point is not None and point < flow.start:
            raise ConfigError(f"{option} {point} is before the first cycle point {flow.start} "
                              f"(key 'start' of '{flow.file}')")
    if redo is not None and (redo - flow.start) % flow.cycle_length:
        raise ConfigError(f"--redo {redo} is not a cycle point; points are {flow.start} + k x "
                          f"{flow.cycle_length} (keys 'start', 'cycle_length' of '{flow.file}')")


def _versions() -> dict[str, str]:
    found = {}
    for package in VERSIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


class _Cycling:
    """The work of one call, under the store's lock."""

    def __init__(self, flow: Workflow, store: CycledStore, output, progress: bool) -> None:
        from assimilate.config import load_config
        from assimilate.da.inputs import config_grid

        self.flow, self.store, self.output, self.progress = flow, store, output, progress
        self.L, self.point = flow.cycle_length, None
        self.config = load_config(flow.config)
        self.grid = config_grid(self.config)

    def run(self, until: int | None, redo: int | None) -> CycleOutcome:
        try:
            return self._run(until, redo)
        except BaseException as error:
            with contextlib.suppress(OSError):
                self.store.log("fail", point=self.point,
                               error=f"{type(error).__name__}: {error}"[:1000])
            raise

    def _run(self, until: int | None, redo: int | None) -> CycleOutcome:
        recovered = self.store.recover()
        if recovered and recovered["action"] == "cycle":
            self.store.log("recover", point=recovered["point"], since=recovered["started"])
        damaged = (recovered or {}).get("damaged")
        done = self.done(redo)
        arrivals = inbox.read_inbox(self.flow.inbox, self.grid,
                                    calendar=self.flow.time_calendar, config=self.config)
        last = max(-1 if until is None else until, done[-1] if done else -1)
        if redo is not None:
            done = self.discard(redo, done)
        notes = ((f"the cycle journal {damaged}",) if damaged else ()) + self.late(arrivals, done)
        following = done[-1] + self.L if done else self.flow.start
        if redo is None and until is None:
            newest = inbox.newest_step(arrivals)
            if newest is None or newest < following + self.L:
                self.store.log("wait", point=following, newest_step=newest)
                return CycleOutcome("waiting", (), f"cycle {following} waits for an "
                                    f"observation at step {following + self.L} or later "
                                    f"(newest: {newest}); nothing done", notes)
            last = following
        points = list(range(following, last + 1, self.L))
        if not points:
            self.store.log("skip", point=until, reason="done")
            return CycleOutcome("up to date", (), f"every cycle up to {until} is already "
                                f"done (the last: {done[-1]}); nothing to do", notes)
        self.load_models()
        lines = [self.one(point, arrivals) for point in points]
        return CycleOutcome("done", tuple(points), "\n".join(lines), notes)

    def done(self, redo: int | None = None) -> list[int]:
        """The done cycle points; the store must have been cycled as the workflow says."""
        points, attrs = self.store.points(redo)
        flow = self.flow
        for key, attr, value in (("start", "cycle_start", flow.start),
                                 ("cycle_length", "cycle_length", self.L),
                                 ("lead", "lead", flow.forecast_steps),
                                 ("members", "n_members", flow.members),
                                 ("config", "interval", self.grid["interval"])):
            if points and attrs.get(attr) != value:
                raise flow.problem(key, f"the analysis store '{self.store.path}' was cycled "
                                   f"with {attr}={attrs.get(attr)}, here {value}; use a new "
                                   "analysis store")
        if points:
            self.check_physics(attrs)
        return points

    def check_physics(self, attrs: dict[str, Any]) -> None:
        """Refuse to append cycles of other physics than the store's (an edited config)."""
        from pde.config import physics_difference

        stored = json.loads(attrs.get("config", "{}")).get("simulator", {})
        difference = physics_difference(self.config.simulator.model_dump(mode="json"), stored)
        if difference:
            raise self.flow.problem("config", f"'{self.flow.config}' gives other physics than "
                                    f"the analysis store '{self.store.path}' was cycled with: "
                                    f"{difference} (here: the config, expected: the store); "
                                    "use a new analysis store, or restore the config")

    def discard(self, redo: int, done: list[int]) -> list[int]:
        """Discard cycle ``redo`` and every later one; the cycles left."""
        if redo not in done:
            raise ConfigError(f"--redo {redo}: cycle {redo} is not done (done: "
                              f"{', '.join(map(str, done)) or 'none'}); nothing to redo")
        self.store.redo(redo)
        self.store.log("redo", point=redo)
        return done[: done.index(redo)]

    def late(self, arrivals: list[inbox.Arrival], done: list[int]) -> tuple[str, ...]:
        @functools.cache
        def used(point: int) -> set[tuple[str, str]]:
            return {(i["file"], i["sha256"]) for i in self.store.read_record(point)["inputs"]}

        notes = []
        for point, name in inbox.late(arrivals, done, self.flow.start, self.L, used):
            self.store.log("late", point=point, file=name)
            notes.append(f"'{name}' has observations for cycle {point}, which was done "
                         f"without them; --redo {point} takes them in")
        return tuple(notes)

    def load_models(self) -> None:
        """Check every input of the cycles (:func:`assimilate.da.inputs.check_start`), then
        load the models and the climatology."""
        from assimilate.da.climatology import Climatology
        from assimilate.da.inputs import check_start
        from assimilate.da.inputs.fields import grid_of

        flow = self.flow
        self.method = flow.build_method()
        start = check_start(self.config, self.method, n_members=flow.members,
                            forecaster=flow.forecaster, background=flow.background,
                            climatology=flow.climatology, seed=flow.seed,
                            background_option=f"key 'background' of '{flow.file}'")
        self.forecaster, self.background = start.forecaster, start.background
        self.variable = grid_of(self.config).variable  # imported data have no simulator
        self.climatology = start.climatology if start.climatology is not None else \
            Climatology.simulate(self.config.simulator.build(), seed=flow.seed + 1)
        self.checkpoints = {key: {"path": str(path.resolve()), "sha256": inbox.sha256(path)}
                            for key in ("forecaster", "controller")
                            if (path := getattr(flow, key)) is not None}

    def initial(self, point: int) -> np.ndarray | None:
        """The first background of cycle ``point``: the store's last analysis ``(member,
        *space)``; for the first cycle the background file (None: climatology)."""
        if point == self.flow.start:
            return self.background
        with open_store(self.store.path) as ds:
            last = ds[self.variable].isel(trajectory=0, time=-1)
            if not np.isclose(float(last["time"]), point * self.grid["interval"]):
                raise StoreError(f"analysis store '{self.store.path}' ends at time "
                                 f"{float(last['time'])}, not at the start of cycle {point}")
            return last.values

    def one(self, point: int, arrivals: list[inbox.Arrival]) -> str:
        """Compute cycle ``point`` (changing nothing), then commit it; a line about it."""
        from assimilate.da.contract import assimilate

        self.point, clock = point, time.perf_counter()
        observations, inputs = inbox.window(arrivals, point, self.L, self.grid,
                                            f"inbox '{self.flow.inbox}'")
        self.store.log("start", point=point, window=[point + 1, point + self.L],
                       files=[i["file"] for i in inputs])
        initial = self.initial(point)
        read = time.perf_counter() - clock
        seed = int(np.random.SeedSequence([self.flow.seed, point]).generate_state(1)[0])
        try:
            result = assimilate(self.method, observations.on_calendar(self.flow.time_calendar),
                                initial=initial, config=self.config,
                                forecaster=self.forecaster, climatology=self.climatology,
                                n_members=self.flow.members, seed=seed, progress=self.progress,
                                n_steps=self.L + self.flow.forecast_steps)
        except FloatingPointError as error:
            raise CycleFailed(f"cycle {point}: {error}; nothing of it was kept") from None
        ds = self.dataset(result, point, observations)
        n_obs = int(ds["n_observations"].sum())  # present values only
        record = {"point": point, "window_steps": [point + 1, point + self.L],
                  "forecast_only": not n_obs, "observations": n_obs, "inputs": inputs,
                  "background": "previous analysis" if point > self.flow.start else
                  str(self.flow.background or f"climatology ({self.climatology.source})"),
                  "method": self.method.name, "parameters": self.method.parameters(),
                  "members": self.flow.members, "seed": seed, "lead": self.flow.forecast_steps,
                  "nfe": result.attrs["nfe"], "checkpoints": self.checkpoints,
                  "config": str(self.flow.config.resolve()),
                  "config_sha256": inbox.sha256(self.flow.config),
                  "workflow": str(self.flow.file.resolve()),
                  "host": socket.gethostname(), "pid": os.getpid(), "versions": _versions()}
        seconds = {"read": read, "assimilate": time.perf_counter() - clock - read}
        self.commit(point, ds, record, seconds, clock)
        what = f"{n_obs} observations from {len(inputs)} file(s)" if n_obs else \
            "forecast only (no observations)"
        return (f"cycle {point} (steps {point + 1}..{point + self.L}): {what}, "
                f"{self.method.name}, {self.flow.members} members, "
                f"{self.flow.forecast_steps}-step forecast; appended to {self.store.path}")

    def commit(self, point: int, ds: xr.Dataset, record: dict[str, Any],
               seconds: dict[str, float], clock: float) -> None:
        """The journalled write of a computed cycle (:mod:`.journal`)."""
        started = time.perf_counter()
        self.store.begin(point)
        try:
            crash_point("journal")
            self.store.write(ds, self.output)
            seconds |= {"write": time.perf_counter() - started,
                        "total": time.perf_counter() - clock}
            seconds = {key: round(value, 3) for key, value in seconds.items()}
            self.store.write_record(point, record | {"seconds": seconds, "finished": now()})
            crash_point("record")
            self.store.commit()
        except BaseException as error:
            with contextlib.suppress(Exception):
                self.store.recover()  # in this process: roll back now, not on the next call
            if isinstance(error, OSError | OutputError):  # a full disk, a lost mount
                raise CycleFailed(f"cycle {point}: cannot write it ({error}); rolled back, "
                                  "nothing of it was kept") from error
            raise
        self.store.log("done", point=point, forecast_only=record["forecast_only"],
                       observations=record["observations"], seconds=seconds)

    def dataset(self, result: xr.Dataset, point: int, observations) -> xr.Dataset:
        """The cycle's part of the store (:mod:`assimilate.cycle`) from the assimilation
        ``result`` ``(trajectory, member, L + lead + 1, *space)``."""
        v, L, interval = self.variable, self.L, self.grid["interval"]
        window = result.isel(time=slice(1, L + 1)).drop_vars("time")
        counts = np.zeros(L, np.int32)
        for step in observations.steps:
            counts[int(step) - 1] = observations.at(int(step)).mask.sum()
        ds = xr.Dataset(
            {v: window[v], f"{v}_background": window[f"{v}_background"],
             "n_observations": ("time", counts, {"long_name": "observations at this step"}),
             "forecast_only": ("cycle", [not counts.any()],
                               {"long_name": "cycle without observations"})},
            coords={"time": ("time", (point + np.arange(1, L + 1)) * interval,
                             {"units": "1", "long_name": "model time"}),
                    "cycle": ("cycle", [point], {"long_name": "cycle point (model step)"})})
        if self.flow.forecast_steps:
            forecast = result[v].isel(time=slice(L + 1, None)).drop_vars("time")
            ds[f"{v}_forecast"] = forecast.rename(time="lead").expand_dims(cycle=1, axis=1) \
                .assign_attrs(long_name="forecast from the cycle's last analysis")
            ds.coords["lead"] = ("lead", np.arange(1, self.flow.forecast_steps + 1),
                                 {"units": "steps", "long_name": "steps after the cycle's end"})
        keep = ("pde", "config", "climatology", "climatological_std", "package_version")
        ds.attrs = {key: result.attrs[key] for key in keep} | {
            "schema": "assimilate.cycled-analysis/1", "cycle_start": self.flow.start,
            "cycle_length": L, "lead": self.flow.forecast_steps, "n_members": self.flow.members,
            "interval": interval, "records": self.store.records.name, "created": now()}
        return ds
