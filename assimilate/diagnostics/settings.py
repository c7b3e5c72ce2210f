"""What the diagnostics compute, as values checked when they are made.

``DiagnoseSettings`` holds every option of ``diagnose`` (and of ``assimilate diagnose``)
with the command's defaults; ``ExtremeSettings`` the part that models the extremes, shared
by the extreme-value analysis of one series (:mod:`assimilate.diagnostics.series`) and the
fits at every point of a map (:mod:`assimilate.diagnostics.gridded`, which defaults to the
0.95 quantile: ``MapSettings``); ``ComputeSettings`` where and how the Dask pass runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from assimilate.diagnostics.calendar import BLOCKS, SEASONS, parse_run_length
from pde.descriptor import series_names
from pde.io.cluster import DEFAULT_SCHEDULER_TIMEOUT

__all__ = [
    "DEFAULT_PROBABILITIES",
    "SERIES",
    "ComputeSettings",
    "DiagnoseSettings",
    "ExtremeSettings",
    "MapSettings",
]

DEFAULT_PROBABILITIES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 0.9999)
SERIES = ("spatial_maximum", *series_names())
"""The series an extreme-value analysis may be asked for (``DiagnoseSettings.series``)."""


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")


def _finite_or_quantity(value: float | str) -> bool:
    """A finite number, or a string that is not one (a quantity, read against the field's
    units when it is known: :func:`assimilate.diagnostics.units.magnitude`)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return bool(value.strip())
    return bool(np.isfinite(value))


@dataclasses.dataclass(frozen=True)
class ExtremeSettings:
    """How the extremes of a series, or of every point of a map, are modelled."""

    pot_quantile: float = 0.9
    """The peaks-over-threshold threshold, as a quantile of the series (or of each point)."""
    run_length: str | float | None = None
    """Declustering run length: a duration (``"2D"``, ``"36h"``, ``"1W"``) for a calendar
    time axis, a number in the time coordinate's units for a plain one, ``"none"`` or 0 for
    no declustering; default: chosen from the data by the intervals estimator of the
    extremal index (Ferro & Segers 2003; ``extremes.intervals_declustering``)."""
    block: str | int | None = None
    """GEV blocks: ``"year"``, ``"season"`` or ``"month"`` for a calendar time axis (default
    ``"year"``), or a number of steps (default ``extremes.default_block_steps``)."""
    return_periods: Sequence[float] | None = None
    """Years for a calendar time axis, else the time coordinate's units."""
    confidence: float = 0.95
    trend: bool = False
    """Also fit a GEV whose location moves linearly with time (or a covariate)."""
    trend_at: float | None = None
    """The year (or covariate value) of the effective return levels (default: the last
    block; a series only)."""
    pot_threshold: float | None = None
    """The series' peaks-over-threshold threshold as a value, instead of ``pot_quantile``
    (to compare two records above one threshold; a series only)."""
    lower_bound: float | None = None
    """The variable's physical lower bound (0 for rain): intervals of GEV levels stay above
    it (the delta method on log(z_T - L)); None: symmetric intervals."""
    season: str | None = None
    """Analyse one season only (DJF, MAM, JJA or SON; calendar time axes): the GEV of each
    year's maximum within it, peaks over threshold within it, rates still per year."""

    def __post_init__(self) -> None:
        if not 0.0 < self.pot_quantile <= 1.0:
            raise ValueError(f"pot_quantile must lie in (0, 1], got {self.pot_quantile}")
        _check_fraction("confidence", self.confidence)
        parse_run_length(self.run_length)
        _check_season(self.season, self.block)


def _check_season(season: str | None, block: str | int | None) -> None:
    """A season is one of ``SEASONS``; its blocks are that season of each year, so the only
    block it goes with is ``year``."""
    if season is None:
        return
    if season not in SEASONS:
        raise ValueError(f"season must be one of {', '.join(SEASONS)}, got {season!r}")
    if block is not None and block != "year":
        what = f"--block {block}" if block in BLOCKS else f"a block of {block} steps"
        raise ValueError(f"season {season} takes the maximum of each year's {season}; "
                         f"{what} cannot go with it (leave the block out, or drop the season)")


@dataclasses.dataclass(frozen=True)
class MapSettings(ExtremeSettings):
    """``ExtremeSettings`` for fits at every point, whose thresholds default higher: each
    point's own 0.95 quantile."""

    pot_quantile: float = 0.95


@dataclasses.dataclass(frozen=True)
class DiagnoseSettings:
    """Every option of ``diagnose``, with the defaults of ``assimilate diagnose``."""

    variable: str | None = None
    """The field (default: the only numeric non-boolean data variable)."""
    units: str | None = None
    """Convert the field (and any compared field) to these units first, e.g. ``degC``
    (pint; CF unit strings); thresholds and floor are then in them."""
    dims: Sequence[str] | None = None
    """The time dim, then the space dims (``""`` first: no time); others are realisations."""
    thresholds: Sequence[float | str] = ()
    """Thresholds counted exactly, besides the levels at the 0.9, 0.99 and 0.999 quantiles:
    numbers in the field's units or quantities such as ``"30 mm/day"``."""
    probabilities: Sequence[float] = DEFAULT_PROBABILITIES
    tail_quantile: float = 0.99
    """The quantile of the exceedance map and of the comparison's tail scores."""
    series: str | None = None
    """The series of the extreme-value analysis (default: ``dissipation`` for Kolmogorov
    flow, else the spatial maximum, else the field itself)."""
    floor: float | str | None = None
    """Values below it are left out (the dry days of a precipitation record) and counted: a
    number in the field's units or a quantity such as ``"1 mm/day"``."""
    pot_quantile: float = 0.9
    run_length: str | float | None = None
    """A duration (``"2D"``), a number in time units, ``"none"``; see ``ExtremeSettings``."""
    season: str | None = None
    """One season only (DJF, MAM, JJA, SON; calendar time); see ``ExtremeSettings``."""
    block_steps: int | None = None
    """GEV blocks of this many steps (not with ``block``)."""
    block: str | None = None
    """Calendar blocks: ``year`` (default for dated time), ``season`` or ``month``."""
    return_periods: Sequence[float] | None = None
    confidence: float = 0.95
    trend: bool = False
    trend_at: float | None = None
    per_point: bool = False
    """Also fit GPD and GEV at every spatial point."""
    pot_threshold: float | str | None = None
    """The series' threshold as a value (a number in the field's units or a quantity)
    instead of ``pot_quantile``: two records compared above one threshold."""

    def __post_init__(self) -> None:
        _check_fraction("tail_quantile", self.tail_quantile)
        if not all(_finite_or_quantity(t) for t in self.thresholds):
            raise ValueError(f"thresholds must be finite numbers or quantities such as "
                             f"'30 mm/day', got {list(self.thresholds)}")
        if self.series is not None and self.series not in SERIES:
            raise ValueError(f"series must be one of {', '.join(SERIES)}, got '{self.series}'")
        if self.floor is not None and not _finite_or_quantity(self.floor):
            raise ValueError(f"floor must be a finite number or a quantity such as "
                             f"'1 mm/day', got {self.floor!r}")
        if self.pot_threshold is not None and not _finite_or_quantity(self.pot_threshold):
            raise ValueError(f"pot_threshold must be a finite number or a quantity, got "
                             f"{self.pot_threshold!r}")
        if self.block is not None and self.block_steps is not None:
            raise ValueError("give a calendar block or a block length in steps, not both")
        self.extremes()  # checks pot_quantile, run_length, season and confidence

    def extremes(self) -> ExtremeSettings:
        """The settings of the extreme-value analysis of the chosen series."""
        threshold = self.pot_threshold  # a quantity is a number once diagnose reads it
        return ExtremeSettings(self.pot_quantile, self.run_length,
                               self.block if self.block is not None else self.block_steps,
                               self.return_periods, self.confidence, self.trend, self.trend_at,
                               pot_threshold=threshold if isinstance(threshold, float | int)
                               else None, season=self.season)


@dataclasses.dataclass(frozen=True)
class ComputeSettings:
    """Where the Dask pass runs: ``workers`` local processes, or a ``scheduler`` address to
    join (given up after ``scheduler_timeout`` seconds); in this process when neither."""

    workers: int | None = None
    scheduler: str | None = None
    scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT
    progress: bool = False
    """A progress bar on stderr (local runs only)."""
