"""Times in a user's file: plain model time, or datetimes read with the run's calendar.

Model time is a plain number on the model's axis ``t0 + k·Δt`` (Δt: the config's
``simulator.interval``), with ``units`` absent, ``"1"`` or empty. A file may hold real
time instead:

- datetimes: ``datetime64`` values, or numbers with a CF ``units`` attribute ``"U since
  DATE"`` (``U`` one of days, hours, minutes, seconds; the standard calendar);
- durations: numbers with ``units`` days, hours, minutes or seconds (elapsed since model
  time 0).

A :class:`Calendar` (``run --calendar ORIGIN,STEP``, workflow key ``calendar``) names the
datetime of model time 0 and the real length of one model step; a datetime ``t`` is then
model step ``k = (t − ORIGIN) / STEP``, model time ``k·Δt``, and must fall on a step.
Without a calendar, real time is refused: read as model time it would silently be another
run (hours since 1970 as thousands of model steps).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from pde.io.errors import ConfigError

__all__ = ["CALENDAR_HINT", "Calendar", "CalendarTimes", "model_times"]

TOLERANCE = 1e-6  # of a step: how far a datetime may be off the model time axis
DURATIONS = {unit: seconds for seconds, units in (
    (86400.0, ("days", "day", "d")), (3600.0, ("hours", "hour", "hr", "h")),
    (60.0, ("minutes", "minute", "min")), (1.0, ("seconds", "second", "sec", "s")))
    for unit in units}
MODEL_UNITS = ("", "1")
STANDARD_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")
CALENDAR_HINT = ("give plain model times (numbers t0 + k x interval, units '1' or none), "
                 "or the datetime of model time 0 and the length of one model step: "
                 "run --calendar ORIGIN,STEP or the workflow key 'calendar', e.g. "
                 "2020-01-01T00:00,6h")


@dataclasses.dataclass(frozen=True)
class Calendar:
    """Model time 0 is the datetime ``origin``; one model step lasts ``step`` (> 0)."""

    origin: np.datetime64
    step: np.timedelta64

    @classmethod
    def parse(cls, text: str, where: str = "--calendar") -> Calendar:
        """``"ORIGIN,STEP"``, e.g. ``"2020-01-01T00:00,6h"``; errors name ``where``."""
        origin, _, step = str(text).rpartition(",")
        try:
            stamp, length = pd.Timestamp(origin.strip()), pd.Timedelta(step.strip())
        except (ValueError, TypeError):
            stamp = length = None
        if stamp is None or pd.isna(stamp) or pd.isna(length) or length <= pd.Timedelta(0):
            raise ConfigError(f"{where} {text!r}: expected ORIGIN,STEP, the datetime of model "
                              "time 0 and the length of one model step (> 0), e.g. "
                              "2020-01-01T00:00,6h")
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return cls(stamp.to_datetime64().astype("datetime64[ns]"),
                   length.to_timedelta64().astype("timedelta64[ns]"))

    def __str__(self) -> str:
        """``ORIGIN,STEP`` as :meth:`parse` reads it, e.g. ``2020-01-01T00:00:00,6h``."""
        return f"{np.datetime_as_string(self.origin, unit='s')},{_duration(self.step)}"


def _duration(step: np.timedelta64) -> str:
    """``step`` in the largest unit that divides it: ``1d``, ``6h``, ``30min``, ``1.5s``."""
    seconds = step / np.timedelta64(1, "s")
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % length == 0:
            return f"{seconds / length:g}{unit}"
    return f"{seconds:g}s"


def model_times(time: xr.DataArray, *, interval: float, calendar: Calendar | None,
                source: str, item: str = "entry") -> np.ndarray:
    """The model times ``(n,)`` float64 of the ``time`` variable of a file (module doc).

    Errors name ``source`` (the file) and the ``item`` (``"observation"``, ``"state"``)
    by its 0-based position along ``time``.
    """
    units = str(time.attrs.get("units", "")).strip()
    if np.issubdtype(time.dtype, np.datetime64):
        steps = _datetime_steps(time.values, calendar, source, "datetime64 values", item)
    elif not np.issubdtype(time.dtype, np.number):
        raise ConfigError(f"{source}: variable 'time' holds {time.dtype}, expected numbers "
                          f"(model time) or datetimes; {CALENDAR_HINT}")
    elif " since " in f" {units.lower()} ":
        steps = _datetime_steps(_decoded(time, units, source, item), calendar, source,
                                f"units {units!r}", item)
    elif units.lower() in DURATIONS:
        steps = _duration_steps(time.values, units, calendar, source, item)
    else:
        return np.asarray(time.values, dtype=np.float64)
    return steps * interval


def _decoded(time: xr.DataArray, units: str, source: str, item: str) -> np.ndarray:
    """CF-encoded numbers as ``datetime64`` (the standard calendar only)."""
    calendar = str(time.attrs.get("calendar", "standard")).lower()
    if calendar not in STANDARD_CALENDARS:
        raise ConfigError(f"{source}: variable 'time' uses the calendar {calendar!r}; "
                          f"allowed: {', '.join(STANDARD_CALENDARS)}, or plain model times")
    values = np.asarray(time.values, dtype=np.float64)
    if (i := _first(~np.isfinite(values))) is not None:
        raise ConfigError(f"{source}: {item} {i} has time {values[i]}, not a time")
    encoded = xr.Dataset({"time": ("time", values, {"units": units})})
    try:
        decoded = xr.decode_cf(encoded)["time"].values
    except (ValueError, OverflowError, TypeError):
        raise ConfigError(f"{source}: variable 'time' ({units!r}) holds {values.min():.6g} to "
                          f"{values.max():.6g}: not all datetimes of the years 1678 to 2261 "
                          "(nanosecond datetimes); allowed: a date in that span, or plain "
                          "model times") from None
    if not np.issubdtype(decoded.dtype, np.datetime64):
        raise ConfigError(f"{source}: variable 'time' ({units!r}) could not be read as "
                          "datetimes of the standard calendar")
    return decoded


def _datetime_steps(values: np.ndarray, calendar: Calendar | None, source: str,
                    what: str, item: str) -> np.ndarray:
    """Model steps ``(n,)`` of datetimes, which must fall on the calendar's steps."""
    values = np.asarray(values).astype("datetime64[ns]")
    if calendar is None:
        shown = np.datetime_as_string(values[:1], unit="s")
        raise ConfigError(f"{source}: variable 'time' holds datetimes ({what}"
                          f"{', first ' + shown[0] if len(shown) else ''}) and the run has "
                          f"no calendar; {CALENDAR_HINT}")
    if (i := _first(np.isnat(values))) is not None:
        raise ConfigError(f"{source}: {item} {i} has no time (NaT)")
    steps = (values - calendar.origin) / calendar.step
    return _on_axis(steps, lambda i: np.datetime_as_string(values[i], unit="s"), calendar,
                    source, item)


def _duration_steps(values: np.ndarray, units: str, calendar: Calendar | None,
                    source: str, item: str) -> np.ndarray:
    """Model steps ``(n,)`` of durations since model time 0 in ``units``."""
    if calendar is None:
        raise ConfigError(f"{source}: variable 'time' holds durations (units {units!r}) and "
                          f"the run has no calendar; {CALENDAR_HINT}")
    seconds = np.asarray(values, dtype=np.float64) * DURATIONS[units.lower()]
    if (i := _first(~np.isfinite(seconds))) is not None:
        raise ConfigError(f"{source}: {item} {i} has time {values[i]}, not a time")
    steps = seconds / (calendar.step / np.timedelta64(1, "s"))
    return _on_axis(steps, lambda i: f"{values[i]:g} {units}", calendar, source, item)


def _on_axis(steps: np.ndarray, shown, calendar: Calendar, source: str,
             item: str) -> np.ndarray:
    """``steps`` rounded, refused where before model time 0 or off a step."""
    axis = f"(steps of {_duration(calendar.step)} from {str(calendar).split(',')[0]})"
    if (i := _first(steps < -TOLERANCE)) is not None:
        raise ConfigError(f"{source}: {item} {i} at {shown(i)} is before model "
                          f"time 0 {axis}")
    if (i := _first(np.abs(steps - np.rint(steps)) > TOLERANCE)) is not None:
        raise ConfigError(f"{source}: {item} {i} at {shown(i)} is not on the model "
                          f"time axis {axis}")
    return np.rint(steps)


def _first(bad: np.ndarray) -> int | None:
    where = np.flatnonzero(bad)
    return int(where[0]) if len(where) else None


class CalendarTimes:
    """The calendar of a set of observations (mixed into
    :class:`~assimilate.observe.files.Observations`): the datetime of each trajectory's model
    time 0 and the real length of a step, for a forecaster conditioned on the hour of day."""

    dataset: xr.Dataset
    n_trajectories: int

    @property
    def start_times(self) -> np.ndarray | None:
        """The calendar time of model time 0 of each trajectory ``(trajectory,)`` (the
        ``start_time`` coordinate `assimilate observe` writes for imported data), or None."""
        if "start_time" not in self.dataset.coords:
            return None
        return np.asarray(self.dataset["start_time"].values).reshape(-1)

    @property
    def step_length(self) -> np.timedelta64 | None:
        """One model step in real time where a run's calendar set it (:meth:`on_calendar`);
        None: ``interval`` hours, as imported data count time."""
        seconds = self.dataset.attrs.get("step_seconds")
        return None if seconds is None else np.timedelta64(round(float(seconds) * 1e9), "ns")

    def on_calendar(self, calendar: Calendar | None):
        """These observations with model time 0 of every trajectory at ``calendar.origin``
        and one step lasting ``calendar.step`` (None: unchanged): a new set."""
        if calendar is None:
            return self
        origin = np.asarray(calendar.origin).astype("datetime64[ns]")
        own = self.start_times
        if own is not None and not (own.astype("datetime64[ns]") == origin).all():
            raise ConfigError(f"the calendar puts model time 0 at {calendar.origin}, the "
                              f"observations at {np.datetime_as_string(own[0], unit='m')}: "
                              "leave the calendar out (they carry their own) or make them "
                              "agree")
        ds = self.dataset.assign_coords(
            start_time=("trajectory", np.full(self.n_trajectories, origin)))
        ds.attrs["step_seconds"] = float(calendar.step / np.timedelta64(1, "s"))
        return dataclasses.replace(self, dataset=ds)
