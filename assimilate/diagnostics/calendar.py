"""Calendar time for extreme-value analysis: record lengths in years and calendar blocks.

A time axis of ``numpy.datetime64`` or ``cftime`` dates (any calendar xarray decodes) is a
*calendar* axis: return periods are then stated in years, exceedance rates per year, and
block maxima are taken over calendar blocks (``year``, ``season`` or ``month``) rather
than over a fixed number of steps. Seasons are meteorological: DJF, MAM, JJA, SON, with
December counted in the DJF of the following January. A block is kept only when it holds
at least ``MIN_COVERAGE`` of the steps a full block of its kind holds, so a record that
starts in July gives no maximum for its first, half-observed year. A ``season`` restricts
an analysis to one of the four: its blocks are that season of each year.

Declustering run lengths are durations here (``run_length_steps``): ``2D``, ``36h``, ``1W``
(``pandas.to_timedelta``) on a calendar axis, a number in the coordinate's units on a
numeric one, ``none`` or 0 for no declustering.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "BLOCKS",
    "DAYS_PER_YEAR",
    "MIN_COVERAGE",
    "RETURN_PERIODS",
    "SEASONS",
    "CalendarBlocks",
    "blocks",
    "check_block",
    "check_season",
    "check_time",
    "date",
    "decimal_years",
    "describe_steps",
    "exceedance_years",
    "in_season",
    "is_calendar",
    "month_count",
    "parse_run_length",
    "run_length_steps",
    "step_years",
    "time_step",
]

BLOCKS = {"year": 1, "season": 4, "month": 12}
"""Calendar blocks and how many of each a year holds."""
SEASONS = ("DJF", "MAM", "JJA", "SON")
DAYS_PER_YEAR = 365.2425  # the Gregorian mean year
RETURN_PERIODS = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""The default return periods of calendar data, in years."""
MIN_COVERAGE = 0.9


def is_calendar(time: xr.DataArray) -> bool:
    """Whether a time coordinate holds dates (datetime64 or cftime), not plain numbers."""
    values = np.asarray(time.values)
    if np.issubdtype(values.dtype, np.datetime64):
        return True
    return values.dtype == object and values.size > 0 and hasattr(values.flat[0], "calendar")


def _days(time: xr.DataArray) -> np.ndarray:
    """Days since the first date, as floats (any calendar)."""
    values = np.asarray(time.values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - values[0]).astype("timedelta64[s]").astype(np.float64) / 86400.0
    return np.array([(v - values[0]).total_seconds() / 86400.0 for v in values])


def date(value) -> str:
    """A date (datetime64 or cftime) as YYYY-MM-DD, a number as itself."""
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="D"))
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else f"{value:g}"


def check_time(time: xr.DataArray, source: str = "the data") -> None:
    """Refuse a time coordinate that does not strictly increase, naming the first offender."""
    steps = np.diff(_days(time)) if is_calendar(time) else \
        np.diff(np.asarray(time.values, dtype=np.float64))
    bad = np.flatnonzero(~(steps > 0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"time coordinate '{time.name}' of {source} is not strictly "
                         f"increasing: entry {i + 1} ({date(time.values[i + 1])}) does not "
                         f"come after entry {i} ({date(time.values[i])}); sort it (ds.sortby) and drop "
                         "duplicates first")


def check_block(time: xr.DataArray | None, block: str | None, source: str) -> None:
    """Refuse a calendar ``block`` on a time axis that holds no dates."""
    if block is not None and (time is None or not is_calendar(time)):
        name = "none" if time is None else time.name
        raise ValueError(f"block '{block}' needs a calendar (datetime) time axis, but "
                         f"'{name}' of {source} is not one; give --block-steps instead")


def time_step(time: xr.DataArray | None) -> tuple[float, str]:
    """Median spacing of a time coordinate and its units: years for dates, the
    coordinate's units or "time units" for numbers, and 1 "steps" without a coordinate."""
    if time is None:
        return 1.0, "steps"
    if is_calendar(time):
        return step_years(time), "years"
    units = str(time.attrs.get("units", ""))
    units = "time units" if units in ("", "1") else units
    steps = np.diff(np.asarray(time.values, dtype=np.float64))
    step = float(np.median(steps)) if len(steps) else 1.0
    if not step > 0:
        raise ValueError(f"time coordinate '{time.name}' is not increasing")
    return step, units


def step_years(time: xr.DataArray) -> float:
    """Median spacing of a calendar time coordinate, in years."""
    steps = np.diff(_days(time))
    return float(np.median(steps)) / DAYS_PER_YEAR if len(steps) else 1.0 / DAYS_PER_YEAR


def decimal_years(time: xr.DataArray) -> np.ndarray:
    """Dates as decimal years (2001.5 is mid-2001), the usual covariate of a trend."""
    year = time.dt.year.values.astype(np.float64)
    length = np.where(time.dt.is_leap_year.values, 366.0, 365.0) \
        if hasattr(time.dt, "is_leap_year") else DAYS_PER_YEAR
    return year + (time.dt.dayofyear.values - 1) / length


class CalendarBlocks:
    """The complete calendar blocks of a time coordinate.

    ``label`` numbers every step's block (consecutive blocks get consecutive numbers),
    ``kept`` lists the labels of blocks holding at least ``MIN_COVERAGE`` of a full
    block's steps, and ``start`` their first dates.
    """

    def __init__(self, time: xr.DataArray, block: str, source: str = "the data",
                 season: str | None = None) -> None:
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)} for calendar time, "
                             f"got '{block}'")
        check_time(time, source)
        self.block, self.per_year = block, BLOCKS[block]
        year, month = time.dt.year.values.astype(np.int64), time.dt.month.values.astype(np.int64)
        if block == "year":
            self.label = year
        elif block == "month":
            self.label = 12 * year + month - 1
        else:  # December opens the DJF of the next year
            self.label = 4 * (year + (month == 12)) + (month % 12) // 3
        full = DAYS_PER_YEAR / self.per_year / (step_years(time) * DAYS_PER_YEAR)  # steps
        labels, counts = np.unique(self.label, return_counts=True)
        span_days = float(_days(time)[-1]) if time.size > 1 else 0.0
        self.kept = labels[counts >= MIN_COVERAGE * np.floor(full)]
        if season is not None:  # one block a year: that season's (label % 4 numbers seasons)
            self.kept = self.kept[self.kept % 4 == SEASONS.index(season)]
            self.block, self.per_year, block = season, 1, season
        if len(self.kept) == 0:
            raise ValueError(f"a {block} block is longer than the record of {source} "
                             f"({time.size} steps over {span_days:.0f} days from "
                             f"{date(time.values[0])} to {date(time.values[-1])}); choose a shorter "
                             f"block ({', '.join(BLOCKS)}) or add data")
        first = {label: i for i, label in reversed(list(enumerate(self.label)))}
        self.start = time.values[[first[label] for label in self.kept]]
        position = np.minimum(np.searchsorted(self.kept, self.label), len(self.kept) - 1)
        self.index = np.where(self.kept[position] == self.label, position, -1)
        """Per step, the position of its block among the kept ones (-1: not kept)."""

    @property
    def period(self) -> float:
        """One block, in years (a season of each year: one year)."""
        return 1.0 / self.per_year

    def maxima(self, series: np.ndarray) -> np.ndarray:
        """``(realisation, block)`` maxima of ``series`` ``(realisation, time)`` over the
        kept blocks (NaN where a block holds no finite value)."""
        x = np.atleast_2d(np.asarray(series, dtype=np.float64))
        out = np.full((x.shape[0], len(self.kept)), np.nan)
        for j in range(len(self.kept)):
            columns = self.index == j
            with np.errstate(invalid="ignore"):
                block = x[:, columns]
                finite = np.isfinite(block).any(axis=1)
                out[finite, j] = np.nanmax(block[finite], axis=1)
        return out


def blocks(time: xr.DataArray, block: str, source: str = "the data",
           season: str | None = None) -> CalendarBlocks:
    """The complete ``block`` blocks (``year``, ``season``, ``month``) of ``time``; with a
    ``season`` (``block`` then ``season``), only that season of each year."""
    return CalendarBlocks(time, block, source, season)


# --- seasons ---------------------------------------------------------------------------------


def check_season(time: xr.DataArray | None, season: str | None, source: str) -> None:
    """Refuse a ``season`` on a time axis that holds no dates."""
    if season is not None and (time is None or not is_calendar(time)):
        name = "none" if time is None else time.name
        raise ValueError(f"season '{season}' needs a calendar (datetime) time axis, but "
                         f"'{name}' of {source} is not one")


def in_season(time: xr.DataArray, season: str) -> np.ndarray:
    """Per step of a calendar ``time``, whether it falls in ``season`` (DJF, MAM, JJA, SON)."""
    return (time.dt.month.values.astype(np.int64) % 12) // 3 == SEASONS.index(season)


def month_count(time: xr.DataArray) -> np.ndarray:
    """Per step of a calendar ``time``, its month as 12 * year + month - 1."""
    return 12 * time.dt.year.values.astype(np.int64) + time.dt.month.values.astype(np.int64) - 1


def exceedance_years(months: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Per step, a year label, years beginning on the first of the calendar month in which
    ``above`` ``(realisation, time)`` is least often true.

    Inter-exceedance times are counted within these years only (``extremes.
    inter_exceedance_times``): the gap from one summer's heat to the next is the off-season,
    not a wait between independent clusters (the ``blocks`` of extRemes' intervals
    estimator, chosen here from the data so that summer and winter extremes both work).
    ``months``: ``month_count`` of the time axis.
    """
    per_step = np.atleast_2d(above).sum(axis=0)
    quiet = int(np.argmin(np.bincount(months % 12, weights=per_step, minlength=12)))
    return (months - quiet) // 12


# --- run lengths -----------------------------------------------------------------------------


def parse_run_length(value: str | float | None) -> float | pd.Timedelta | None:
    """A declustering run length: None (choose it from the data), 0.0 (``none``: no
    declustering), a number of time units >= 0, or a duration (``2D``, ``36h``, ``1W``)."""
    allowed = "a duration such as 2D, 36h or 1W, a number >= 0 in the time units of the axis, " \
              "or none (0)"
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.lower() == "none":
        return 0.0
    try:
        number = float(value)  # a bare number, given as one or as text
    except (TypeError, ValueError):
        number = None
    if number is not None and not isinstance(value, bool):
        if np.isfinite(number) and number >= 0:
            return number
        raise ValueError(f"run_length must be {allowed}; got {value!r}")
    try:
        with warnings.catch_warnings():  # pandas deprecates some spellings ("2d")
            warnings.simplefilter("ignore")
            duration = pd.to_timedelta(text) if text else None
    except (ValueError, OverflowError):
        duration = None
    if duration is None or pd.isna(duration) or duration < pd.Timedelta(0):
        raise ValueError(f"run_length must be {allowed}; got {value!r}")
    return duration


def run_length_steps(value: str | float | None, time: xr.DataArray | None,
                     source: str = "the data") -> int | None:
    """``value`` (see ``parse_run_length``) in steps of ``time``, rounded to the nearest
    step; None stays None. A duration needs a calendar axis, a positive number a plain one
    (its units; steps without a coordinate)."""
    parsed = parse_run_length(value)
    if parsed is None:
        return None
    name, dated = ("none" if time is None else time.name), time is not None and is_calendar(time)
    if isinstance(parsed, pd.Timedelta):
        if not dated:
            raise ValueError(f"run length {value!r} is a duration, but time '{name}' of "
                             f"{source} holds no dates: give a number in its units, or none")
        steps = parsed / pd.Timedelta(days=1) / (step_years(time) * DAYS_PER_YEAR)
    elif parsed > 0 and dated:
        raise ValueError(f"time '{name}' of {source} holds dates: give the run length as a "
                         f"duration (2D, 36h, 1W) or none, got {value!r}")
    else:
        steps = parsed / time_step(time)[0]
    rounded = int(np.floor(steps + 0.5))
    if rounded == 0 and steps > 0:
        raise ValueError(f"run length {value!r} is shorter than half a time step of "
                         f"'{name}' in {source}; give at least one step, or none")
    return rounded


def describe_steps(steps: int, time: xr.DataArray | None) -> str:
    """``steps`` of ``time`` as a duration in words: "2 days", "6 hours", "0.5 time units"."""
    if time is None or not is_calendar(time):
        step, units = time_step(time)
        return f"{steps * step:g} {units}"
    days = steps * step_years(time) * DAYS_PER_YEAR
    if 0 < days < 1:
        return f"{days * 24:.4g} hours"
    return f"{days:.4g} day" + ("" if days == 1 else "s")
