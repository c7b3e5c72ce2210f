"""Declustering peaks over threshold: the intervals estimator of the extremal index (Ferro &
Segers 2003) against records of known extremal index, run lengths given in time, no
declustering, and the warning when too few clusters a year remain."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from assimilate.diagnostics import DiagnoseSettings, calendar, diagnose, extremes
from assimilate.diagnostics.series import INTERVALS
from assimilate.diagnostics.settings import ExtremeSettings

THETA = 0.5  # the extremal index of the seasonal record: clusters of mean size 1 / THETA
CAP = 24.0  # every baseline value is at most this; only the clusters exceed it


def seasonal_record(seed: int = 0, years: int = 30, freq: str = "D",
                    gap_days: float = 8.0) -> tuple[xr.DataArray, int, int]:
    """``(record, clusters, exceedances)``: a daily maximum temperature-like record, a
    seasonal cycle (peak mid-July) plus noise capped at ``CAP``, and in each June to August
    clusters of days above the cap, each a run of K consecutive days with K geometric of
    mean 1 / ``THETA``, separated by at least one day at or below it. Its extremal index is
    ``THETA``; the number of clusters and of exceedances are returned exactly."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1991-01-01", f"{1990 + years}-12-31 18:00", freq=freq)
    day = time.day_of_year.to_numpy()
    per_day = round(pd.Timedelta(days=1) / pd.Timedelta(time[1] - time[0]))
    x = 15.0 + 12.0 * np.cos(2 * np.pi * (day - 196) / 365.25) + rng.normal(0, 2.5, time.size)
    x = np.minimum(x, CAP)
    n_clusters = n_exceedances = 0
    for year in range(1991, 1991 + years):
        summer = np.flatnonzero((time.year == year) & np.isin(time.month, (6, 7, 8)))
        first, last = summer[0], summer[-1]
        t = first + per_day * int(rng.exponential(gap_days))
        while True:
            size = per_day * int(rng.geometric(THETA))  # days above the cap, in steps
            if t + size - 1 > last:
                break
            x[t:t + size] = CAP + 1.0 + 2.0 * rng.exponential(1.0, size)
            n_clusters, n_exceedances = n_clusters + 1, n_exceedances + size
            t += size + per_day * (1 + int(rng.exponential(gap_days)))
    record = xr.DataArray(x, dims="time", coords={"time": time}, name="tx",
                          attrs={"units": "degC"})
    return record, n_clusters, n_exceedances


def test_intervals_estimator_recovers_the_extremal_index_of_moving_maxima() -> None:
    """y_t = max(e_t, e_t+1) of iid e has extremal index 1/2 (each large e makes two
    exceedances in a row); iid values have 1. 20 000 steps above their 0.95 quantile give
    some 500 clusters: the estimate's standard error is about 0.03."""
    rng = np.random.default_rng(0)
    e = rng.standard_normal((2, 20_001))
    y = np.maximum(e[:, 1:], e[:, :-1])
    run_length, theta = extremes.intervals_declustering(y, np.quantile(y, 0.95))
    assert theta == pytest.approx(0.5, abs=0.06)
    peaks = extremes.peaks_over_threshold(y, np.quantile(y, 0.95), run_length)
    assert peaks.extremal_index == pytest.approx(0.5, abs=0.06)
    assert extremes.intervals_declustering(e, np.quantile(e, 0.95))[1] == \
        pytest.approx(1.0, abs=0.06)
    times, n, stretches = extremes.inter_exceedance_times([[0, 5, 5, 0, 5]], 1.0,
                                                          segments=np.array([0, 0, 0, 1, 1]))
    assert list(times) == [1] and n == 3 and stretches == 2  # no gap across segments


def test_the_default_run_length_recovers_the_clusters_of_a_seasonal_record() -> None:
    """The intervals estimator recovers theta = 0.5 within 0.1 (its standard error with
    some 270 clusters is about 0.04, and the clusters' spacing within a summer, less
    variable than exponential, biases it up by a few hundredths: over eight seeds it
    ranged 0.45 to 0.62); the decorrelation time of the seasonal cycle would leave one
    cluster a summer."""
    record, n_clusters, n_exceedances = seasonal_record()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: enough clusters a year
        diag = diagnose(record.to_dataset())
    assert float(diag["pot_threshold"]) == CAP and int(diag["n_exceedances"]) == n_exceedances
    assert diag.attrs["pot_run_length_method"] == INTERVALS
    assert diag.attrs["extremal_index_estimate"] == pytest.approx(THETA, abs=0.1)
    assert abs(int(diag["n_clusters"]) - n_clusters) <= 0.1 * n_clusters
    assert float(diag["cluster_rate"]) >= 2.0 and "pot_note" not in diag.attrs
    assert diag.attrs["pot_run_length_time"] == f"{diag.attrs['pot_run_length']} day" + \
        ("" if diag.attrs["pot_run_length"] == 1 else "s")
    x = record.values[None]
    # the old default: months of autocorrelation from the seasonal cycle
    old = extremes.peaks_over_threshold(x, CAP, extremes.decorrelation_steps(x), 1 / 365.25)
    assert extremes.decorrelation_steps(x) > 30 and old.n_clusters < 0.2 * n_clusters
    assert old.rate < 2.0
    # gaps counted across the off-season would make theta look three times smaller
    pooled = extremes.intervals_estimate(extremes.inter_exceedance_times(x, CAP)[0])
    assert pooled < 0.6 * THETA


def test_no_declustering_and_durations_in_steps_of_the_time_axis() -> None:
    record, _, n_exceedances = seasonal_record(years=20)
    x = record.values[None]
    for none in ("none", "0", 0, "None"):
        diag = diagnose(record.to_dataset(), DiagnoseSettings(run_length=none))
        assert int(diag["n_clusters"]) == int(diag["n_exceedances"]) == n_exceedances
        assert diag.attrs["pot_run_length"] == 0
        assert diag.attrs["pot_run_length_method"] == "none"
    diag = diagnose(record.to_dataset(), DiagnoseSettings(run_length="2D"))
    assert diag.attrs["pot_run_length"] == 2 and diag.attrs["pot_run_length_time"] == "2 days"
    assert diag.attrs["pot_run_length_method"] == "given"
    assert int(diag["n_clusters"]) == extremes.peaks_over_threshold(x, CAP, 2).n_clusters
    six_hourly, _, _ = seasonal_record(years=20, freq="6h", gap_days=8.0)
    for given, steps in (("2D", 8), ("36h", 6), ("1W", 28)):
        assert calendar.run_length_steps(given, six_hourly["time"]) == steps
    diag = diagnose(six_hourly.to_dataset(), DiagnoseSettings(run_length="2D"))
    assert diag.attrs["pot_run_length"] == 8 and diag.attrs["pot_run_length_time"] == "2 days"
    assert int(diag["n_clusters"]) == extremes.peaks_over_threshold(
        six_hourly.values[None], CAP, 8).n_clusters
    numeric = xr.DataArray(np.zeros(10), dims="t", coords={"t": 0.5 * np.arange(10)})["t"]
    assert calendar.run_length_steps(2, numeric) == 4  # 2 time units of 0.5
    assert calendar.describe_steps(4, numeric) == "2 time units"


def test_too_few_clusters_a_year_warn_and_leave_a_note() -> None:
    record, _, _ = seasonal_record(years=20)
    with pytest.warns(UserWarning, match=r"clusters in 20 years .*fewer than 2 a year"):
        diag = diagnose(record.to_dataset(), DiagnoseSettings(run_length="90D"))
    assert int(diag["n_clusters"]) == 20  # one a summer
    assert "fewer than 2 a year" in diag.attrs["pot_note"]
    assert "\n" not in diag.attrs["pot_note"]


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "run_length must be a duration such as 2D"), (-1, "got -1"),
    ("nan", "got 'nan'"), (True, "got True"), ("-2D", "got '-2D'")])
def test_bad_run_lengths_are_refused_in_one_line(value, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        ExtremeSettings(run_length=value)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=message):
        DiagnoseSettings(run_length=value)


def test_run_lengths_the_time_axis_cannot_read_are_refused_before_the_pass() -> None:
    record, _, _ = seasonal_record(years=2)
    with pytest.raises(ValueError, match="holds dates: give the run length as a duration"):
        diagnose(record.to_dataset(), DiagnoseSettings(run_length=3))
    with pytest.raises(ValueError, match="shorter than half a time step"):
        diagnose(record.to_dataset(), DiagnoseSettings(run_length="6h"))
    numeric = record.assign_coords(time=np.arange(record.size, dtype=float))
    with pytest.raises(ValueError, match="is a duration, but time 'time' .* holds no dates"):
        diagnose(numeric.to_dataset(), DiagnoseSettings(run_length="2D"))
