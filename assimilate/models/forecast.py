"""``assimilate forecast``: an ensemble forecast from a state of a trajectory store, written
as a store beside the stored continuation.

    forecast(checkpoint, init, ForecastSettings(trajectory=0, time=10, steps=50, members=8),
             out)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from assimilate.models.calendar import require_calendar
from assimilate.models.forecaster import load_forecaster, open_matching, rollout
from pde.io.output import claim
from pde.io.store import write_zarr

__all__ = ["ForecastSettings", "forecast"]


@dataclasses.dataclass(frozen=True)
class ForecastSettings:
    """What ``assimilate forecast`` runs: from state ``time`` of ``trajectory`` of the
    initial store, ``steps`` forecast steps for ``members`` members (``sub_steps``
    overrides the sampler's steps)."""

    trajectory: int
    time: int
    steps: int
    members: int
    seed: int = 0
    sub_steps: int | None = None


def forecast(checkpoint: str | Path, init: str | Path, settings: ForecastSettings,
             out: str | Path, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Forecast from the store ``init`` as ``settings`` say; write ``out``.

    The stored continuation, where the store has it, is saved beside the forecast as
    ``truth`` (NaN past the end of the trajectory).
    """
    trajectory, time, steps = settings.trajectory, settings.time, settings.steps
    with claim(out, kind="directory", inputs=[init, checkpoint], overwrite=overwrite) as output:
        forecaster = load_forecaster(checkpoint)
        field = open_matching(forecaster, init)[forecaster.variable]
        n_traj, n_time = field.shape[:2]
        k = forecaster.history
        if not 0 <= trajectory < n_traj:
            raise ValueError(f"--trajectory {trajectory} outside 0..{n_traj - 1} of '{init}'")
        if not k - 1 <= time < n_time:
            raise ValueError(f"--time {time} must lie in {k - 1}..{n_time - 1}: the forecaster "
                             f"needs {k} stored states up to it")
        states = field.isel(trajectory=trajectory)
        initial = states.isel(time=slice(time - k + 1, time + 1)).values
        valid_time = None
        if forecaster.calendar:
            valid_time = require_calendar(field.to_dataset(), init, forecaster.calendar)[
                trajectory, time]
        ds = rollout(forecaster, initial, steps, settings.members, settings.sub_steps,
                     seed=settings.seed, progress=progress, valid_time=valid_time)
        truth = np.full(ds[forecaster.variable].shape[1:], np.nan, dtype=np.float32)
        available = states.isel(time=slice(time, time + steps + 1)).values
        truth[: len(available)] = available
        ds["truth"] = (ds[forecaster.variable].dims[1:], truth, {"units": "1"})
        ds.attrs.update(init_store=str(Path(init).resolve()), init_trajectory=trajectory,
                        init_time=time)
        return write_zarr(ds, output)
