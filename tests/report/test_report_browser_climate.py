"""The README's climate-record example as a user runs it, checked in a real browser: CF
precipitation in kg m-2 s-1 over land (NaN at sea), diagnosed in mm/day above a floor of
'1 mm/day' with per-point fits, then the report. Units on every printed number and table
cell, no interval reaching below 0 mm/day, sea points drawn as missing, and both fits on
the return-level figure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from assimilate.report import maps as report_maps
from assimilate.report import plot
from tests.report.test_report import BROWSERS, distinct_colours, figures

UNIT = "mm/day"
NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> dict:
    """The README's commands on a small cut: 4 x 6 points (6 at sea), 22 years."""
    from assimilate.diagnostics.synthetic import precipitation

    where = tmp_path_factory.mktemp("climate-browser")
    precipitation(years=22, seed=3, n_lat=4, n_lon=6, cf=True).to_netcdf(where / "precip.nc")
    printed = []
    for command in (["diagnose", str(where / "precip.nc"), "--units", UNIT, "--floor",
                     f"1 {UNIT}", "--per-point", "--out", str(where / "precip.diag.zarr")],
                    ["report", str(where / "precip.diag.zarr"), "--out",
                     str(where / "report.html")]):
        run = subprocess.run([sys.executable, "-m", "assimilate.cli", *command],
                             capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        printed.append(run.stdout)
    return {"console": printed[0], "page": where / "report.html",
            "diag": xr.open_zarr(where / "precip.diag.zarr").load(), "where": where}


@pytest.mark.e2e
def test_every_printed_number_carries_its_unit(example) -> None:
    console = example["console"]
    assert f"'pr' ({UNIT})" in console and f"floor 1 {UNIT}" in console
    for label in ("mean", "std", "to", "0.99:", "above", "scale", "location"):
        for value, unit in re.findall(rf"\b{re.escape(label)} ({NUMBER})(?: (\S+))?", console):
            assert unit.startswith(UNIT), (label, value, console)
    levels = [line for line in console.splitlines() if re.match(r"\s+\d+-year:", line)]
    assert len(levels) == 6 and all(line.count(UNIT) == 2 for line in levels), console


@pytest.mark.e2e
def test_tables_carry_units_and_no_interval_reaches_below_zero(example) -> None:
    page = example["page"].read_text()
    rows = re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", page, flags=re.DOTALL)
    physical = [(title, cells) for title, cells in rows
                if re.match(r"(mean|maximum|quantile|POT threshold|GPD scale|GEV location"
                            r"|GEV scale|GPD return level|GEV return level)", title)]
    assert len(physical) >= 15
    for title, cells in physical:
        for cell in re.findall(r"<td>(.*?)</td>", cells):
            assert cell == "—" or UNIT in cell, (title, cell)
    lower = [float(a) for a in re.findall(rf"CI \[({NUMBER}), {NUMBER}\]\) {UNIT}", page)]
    assert len(lower) >= 12 and min(lower) >= 0, "an interval reaches below 0 mm/day"
    assert example["diag"].attrs["lower_bound"] == 0.0
    for name in ("point_gev_return_level", "point_return_level", "return_level",
                 "gev_return_level"):
        bounds = example["diag"][name].sel(interval="lower").values
        assert (bounds[np.isfinite(bounds)] >= 0).all(), name


@pytest.mark.e2e
def test_sea_points_are_drawn_as_missing_and_both_fits_on_one_figure(example) -> None:
    found = figures(example["page"].read_text())
    grey = tuple(int(report_maps.MISSING[i:i + 2], 16) for i in (1, 3, 5))
    for name in ("return-level-map", "shape-map"):
        colours = {rgb: n for n, rgb in found[name].getcolors(maxcolors=1 << 20)}
        assert colours.get(grey, 0) > 500, f"{name}: no missing-data grey"
    figure = plot(example["diag"])["return-levels"]
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert any(label.startswith("GPD") for label in labels), labels
    assert any(label.startswith("GEV") for label in labels), labels


@pytest.mark.e2e
def test_a_browser_renders_the_climate_report(example) -> None:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        if os.environ.get("ASSIMILATE_REQUIRE_BROWSER"):  # CI installs one: never skip there
            pytest.fail("ASSIMILATE_REQUIRE_BROWSER is set but no headless browser is on PATH")
        pytest.skip("no headless browser on PATH")
    screenshot: Path = example["where"] / "screenshot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={screenshot}", "--window-size=1200,6000",
                    example["page"].resolve().as_uri()], check=True, capture_output=True,
                   timeout=120)
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    assert distinct_colours(image) > 500
    grey = tuple(int(report_maps.MISSING[i:i + 2], 16) for i in (1, 3, 5))
    drawn = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 22)}
    assert drawn.get(grey, 0) > 2000, "the browser shows no missing-data grey on the maps"
