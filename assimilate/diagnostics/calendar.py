"""Calendar time for extreme-value analysis: record lengths in years and calendar blocks.

A time axis of ``numpy.datetime64`` or ``cftime`` dates (any calendar xarray decodes) is a
*calendar* axis: return periods are then stated in years, exceedance rates per year, and
block maxima are taken over calendar blocks (``year``, ``season`` or ``month``) rather
than over a fixed number of steps. Seasons are meteorological: DJF, MAM, JJA, SON, with
December counted in the DJF of the following January. A block is kept only when it holds
at least ``MIN_COVERAGE`` of the steps a full block of its kind holds, so a record that
starts in July gives no maximum for its first, half-observed year.
"""

from __future__ import annotations

import numpy as np
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
    "check_time",
    "date",
    "decimal_years",
    "is_calendar",
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

    def __init__(self, time: xr.DataArray, block: str, source: str = "the data") -> None:
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
        """One block, in years."""
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


def blocks(time: xr.DataArray, block: str, source: str = "the data") -> CalendarBlocks:
    """The complete ``block`` blocks (``year``, ``season``, ``month``) of ``time``."""
    return CalendarBlocks(time, block, source)
