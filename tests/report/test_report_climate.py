"""The report of a gridded climate record: return-level maps, per-point and trend tables,
dry days drawn as a point mass, return periods in years."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr


@pytest.fixture(scope="module")
def precipitation(tmp_path_factory) -> Path:
    """The README's example record, small: 4 x 6 points, 22 years."""
    from assimilate.diagnostics.synthetic import precipitation as make

    path = tmp_path_factory.mktemp("climate") / "precip.nc"
    make(years=22, seed=3, n_lat=4, n_lon=6).to_netcdf(path)
    return path


@pytest.mark.e2e
def test_the_readme_commands_render_maps_and_tables(precipitation: Path) -> None:
    diag, page = precipitation.with_suffix(".diag.zarr"), precipitation.with_suffix(".html")
    printed = []
    for command in (["diagnose", str(precipitation), "--per-point", "--floor", "1", "--trend",
                     "--out", str(diag)],
                    ["report", str(diag), "--out", str(page)]):
        run = subprocess.run([sys.executable, "-m", "assimilate.cli", *command],
                             capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stderr
        printed.append(run.stdout)
    assert "  2-year: GPD " in printed[0] and "mm/day" in printed[0]
    result = xr.open_zarr(diag)
    assert result["point_gev_return_level"].dims[:1] == ("return_period",)
    assert set(result["point_gev_shape"].dims) == {"lat", "lon", "interval"}
    assert result["return_period"].attrs["units"] == "years"
    html = page.read_text()
    for figure in ("return-level-map", "interval-width-map", "scale-map", "trend-map",
                   "shape-map"):
        assert f"id='{figure}'" in html, figure
    for table in ("trend-table", "point-table"):
        assert f"id='{table}'" in html, table
    assert "GEV return level, T = 2 years" in html and "clusters per year" in html
    assert re.search(r"20-year return level", html)


def test_dry_days_are_drawn_as_a_point_mass(precipitation: Path, tmp_path: Path) -> None:
    from assimilate.diagnostics import DiagnoseSettings, diagnose, open_data
    from assimilate.report import render

    diag = diagnose(open_data(precipitation).isel(lat=0, lon=0),
                    DiagnoseSettings(return_periods=[2, 10]))
    assert float(diag["atom"][0]) == 0.0
    html = render([diag], tmp_path / "station.html").read_text()
    assert "P(value = 0), exact" in html and "Dash-dotted: values" in html
