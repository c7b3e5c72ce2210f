"""The demo's tail report compares like with like: the analysis is read above the truth's
threshold and at the truth's return periods, so both columns of its tables are filled."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from assimilate.demo import truth_and_analysis
from assimilate.report import render

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fields() -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(5)
    shape = (2, 3000, 8)  # (trajectory, time, x)
    truth = np.cumsum(rng.standard_normal(shape), axis=1) * 0.05
    truth = truth - truth.mean(axis=1, keepdims=True) + rng.standard_t(5, shape)
    coords = {"time": np.arange(1, 3001) * 0.25, "x": np.arange(8.0)}
    dims = ("trajectory", "time", "x")
    return (xr.DataArray(truth, dims=dims, coords=coords, name="u"),
            xr.DataArray(truth + 0.3 * rng.standard_normal(shape), dims=dims, coords=coords,
                         name="u"))


def test_truth_and_analysis_share_threshold_and_return_periods(tmp_path) -> None:
    truth, analysis = _fields()
    first, second = truth_and_analysis(truth, analysis, "truth.zarr", "analysis.zarr", tmp_path)
    assert first.attrs["label"].startswith("truth") and first.attrs["source"] == "truth.zarr"
    assert second.attrs["source"] == "analysis.zarr"
    assert float(first["pot_threshold"]) == float(second["pot_threshold"])
    for key in ("pot_run_length", "block_length"):
        assert first.attrs[key] == second.attrs[key], key
    np.testing.assert_array_equal(first["return_period"].values, second["return_period"].values)
    for diag in (first, second):
        assert np.isfinite(diag["return_level"].sel(interval="estimate").values).all()
    page = render([first, second], tmp_path / "report.html").read_text()
    assert "truth (simulated, held out)" in page
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.DOTALL):
        if "return level" in row.lower():
            assert "—" not in row, row


def test_a_dimensionless_truth_and_an_analysis_without_units_share_axes(tmp_path) -> None:
    """The simulated truth says units '1' (dimensionless), the analysis store says none:
    the same units, so the report draws them together, under the labels given to them
    (not the variable's long name)."""
    truth, analysis = _fields()
    truth = truth.assign_attrs(units="1", long_name="u")
    diagnostics = truth_and_analysis(truth, analysis.assign_attrs(long_name="u"),
                                     "truth.zarr", "analysis.zarr", tmp_path)
    page = render(diagnostics, tmp_path / "report.html").read_text()
    assert "truth (simulated, held out)" in page and "analysis (controller)" in page
