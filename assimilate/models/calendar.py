"""Calendar features a forecaster may condition on (``forecaster.calendar``).

A regional record has a clock the simulators lack: the sun. From two past states alone a
model cannot tell a morning warming from an evening one, so a forecaster of real weather
may also see the valid time of the state it forecasts, as the phase of the day and of the
year, each a point on the unit circle (sine, cosine): 23:00 sits next to 00:00.

    calendar_features(valid_times, ["hour_of_day"])  # (..., 2) float32
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["calendar_features", "conditioning", "require_calendar"]

_DAY = np.timedelta64(86_400_000_000_000, "ns")
_YEAR_DAYS = 365.2425


def _phase(valid_times: np.ndarray, name: str) -> np.ndarray:
    """The fraction of the day or year elapsed at ``valid_times``, in [0, 1)."""
    times = valid_times.astype("datetime64[ns]")
    if name == "hour_of_day":
        since_midnight = times - times.astype("datetime64[D]")
        return since_midnight / _DAY
    year_start = times.astype("datetime64[Y]").astype("datetime64[ns]")
    return ((times - year_start) / _DAY) / _YEAR_DAYS


def calendar_features(valid_times: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``(*shape, 2 * len(names))`` float32: sine and cosine of each named phase
    (``hour_of_day``, ``day_of_year``) at ``valid_times`` ``(*shape)`` (datetime64)."""
    valid_times = np.asarray(valid_times)
    if not np.issubdtype(valid_times.dtype, np.datetime64):
        raise TypeError(f"calendar features need datetime64 valid times, got {valid_times.dtype}")
    channels = []
    for name in names:
        if name not in ("hour_of_day", "day_of_year"):
            raise ValueError(f"unknown calendar feature '{name}': use hour_of_day or day_of_year")
        angle = 2 * np.pi * _phase(valid_times, name)
        channels += [np.sin(angle), np.cos(angle)]
    return np.stack(channels, axis=-1).astype(np.float32) if channels else np.zeros(
        (*valid_times.shape, 0), np.float32)


def require_calendar(ds, path, names: Sequence[str]) -> np.ndarray:
    """The store's valid times ``(trajectory, time)``, refused in one line where a model that
    conditions on ``names`` meets a store without them."""
    if "valid_time" not in ds.coords:
        raise ValueError(f"store '{path}' has no calendar times (valid_time) but the forecaster "
                         f"conditions on {', '.join(names)}: use a store from `assimilate "
                         "import`, or a forecaster with calendar: []")
    return np.asarray(ds["valid_time"].values)


def conditioning(history: torch.Tensor, clock: torch.Tensor | None) -> torch.Tensor:
    """The denoiser's conditioning channels: the history ``(batch, k, *space)`` and, with a
    ``clock`` ``(batch, F)``, each calendar feature as a constant plane."""
    if clock is None:
        return history
    import torch

    planes = clock.to(history).reshape(*clock.shape, *(1,) * (history.ndim - 2))
    return torch.cat([history, planes.expand(-1, -1, *history.shape[2:])], dim=1)
