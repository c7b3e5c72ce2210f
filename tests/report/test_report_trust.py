"""What a reader of the report must be able to trust: units on every physical number,
inputs that cannot share axes refused, one name per input and one reference per source,
one 0.99 quantile, spreads never written like intervals, gaps in maps drawn as gaps,
both fits over the whole range of the data, and lower bounds below a physical floor named.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from assimilate.report import extreme_figures, figures, maps, plot, render, schema, tables
from tests.report.test_report import (
    kolmogorov,
    latitude_longitude,
    table,
    vorticity,
    with_comparison,
)


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return kolmogorov("truth", seed=1)


def loaded(dataset: xr.Dataset) -> xr.Dataset:
    return schema.load([dataset])[0]


# --- 1. units and numbers ------------------------------------------------------------------


def test_small_numbers_keep_their_digits_and_units() -> None:
    assert schema.significant(7.754e-05) == "7.754 × 10⁻⁵"
    assert schema.physical(7.754e-05, "kg m-2 s-1") == "7.754 × 10⁻⁵ kg m-2 s-1"
    assert schema.significant(9.99996e-7) == "1 × 10⁻⁶"
    assert schema.significant(123456.7) == "123457"
    assert schema.significant(0.5) == "0.5" and schema.significant(-0.0001234) == "-0.0001234"
    assert schema.physical(float("nan"), "K") == "NaN"


def test_summary_cells_carry_units_and_dimensionless_ones_none(truth: xr.Dataset) -> None:
    years = truth.copy()
    years["return_period"].attrs["units"] = "years"
    rows = {row[0]: row[1] for row in tables.summary([loaded(years)]).rows}
    assert rows["mean"].endswith(" 1/s") and rows["maximum"].endswith(" 1/s")
    assert rows["variance"].endswith(" (1/s)²")
    assert rows["quantile at probability 0.99"].endswith(" 1/s")
    assert rows["POT threshold u"] == "1.6 1/s^3"  # the dissipation series' own units
    assert re.fullmatch(r"[\d.]+ \(95 % CI \[[\d.]+, [\d.]+\]\) 1/s\^3", rows["GPD scale σ"])
    assert re.fullmatch(r"-?[\d.]+ \(95 % CI \[-?[\d.]+, -?[\d.]+\]\)", rows["GPD shape ξ"])
    assert rows["skewness"] == schema.significant(float(truth["skewness"]))
    assert rows["cluster rate"].endswith(" clusters per year")
    assert "GPD return level, T = 2 years" in rows and "GEV return level, T = 1000 years" in rows
    axes = extreme_figures.return_levels(*[loaded(years)] * 2).figure.axes[0]
    assert axes.get_xlabel() == "return period (years)" and "(1/s^3)" in axes.get_ylabel()


def test_every_stored_return_period_is_a_row(truth: xr.Dataset) -> None:
    titles = [row[0] for row in tables.summary([loaded(truth)]).rows]
    stored = truth["return_period"].values
    for model in ("GPD", "GEV"):
        shown = [t for t in titles if t.startswith(f"{model} return level")]
        assert len(shown) == stored.size, shown


# --- 2. inputs that cannot share axes ------------------------------------------------------


def test_different_units_are_refused_in_one_line(tmp_path: Path) -> None:
    kelvin = latitude_longitude("t2m")
    flux = latitude_longitude("pr").assign_attrs(variable="pr", units="kg m-2 s-1",
                                                 source="pr.nc")
    kelvin.to_zarr(tmp_path / "t2m.diag.zarr")
    flux.to_zarr(tmp_path / "pr.diag.zarr")
    with pytest.raises(ValueError) as refused:
        render([tmp_path / "t2m.diag.zarr", tmp_path / "pr.diag.zarr"], tmp_path / "no.html")
    message = str(refused.value)
    assert "\n" not in message
    for text in ("t2m.diag.zarr", "pr.diag.zarr", "'K'", "'kg m-2 s-1'", "--separate"):
        assert text in message
    assert not (tmp_path / "no.html").exists()
    page = render([tmp_path / "t2m.diag.zarr", tmp_path / "pr.diag.zarr"],
                  tmp_path / "apart.html", separate=True).read_text()
    assert "id='histogram'" in page and "id='histogram-1'" in page
    shown = plot([kelvin, flux], separate=True)["histogram"]
    assert len(shown.axes[0].get_legend().get_texts()) == 2  # one input and its Gaussian


def test_the_report_verb_refuses_then_separates(tmp_path: Path, capsys) -> None:
    from assimilate.cli import main

    latitude_longitude("t2m").to_zarr(tmp_path / "t2m.diag.zarr")
    latitude_longitude("pr").assign_attrs(variable="pr", units="kg m-2 s-1").to_zarr(
        tmp_path / "pr.diag.zarr")
    stores = [str(tmp_path / "t2m.diag.zarr"), str(tmp_path / "pr.diag.zarr")]
    assert main(["report", *stores, "--out", str(tmp_path / "no.html")]) == 2
    assert "--separate" in capsys.readouterr().err
    assert main(["report", *stores, "--separate", "--out", str(tmp_path / "apart.html")]) == 0
    assert "id='histogram-1'" in (tmp_path / "apart.html").read_text()


# --- 3. names and one reference per source -------------------------------------------------


def test_labels_are_long_name_and_source_without_counters() -> None:
    a = latitude_longitude("t2m").assign_attrs(long_name="2 m temperature", source="a.nc")
    b = latitude_longitude("t2m").assign_attrs(source="b.nc")
    labels = [d.attrs["label"] for d in schema.load([a, b])]
    assert labels == ["2 m temperature (a.nc)", "t2m (b.nc)"]
    twice = [d.attrs["label"] for d in schema.load([b, b])]
    assert len(set(twice)) == 2 and not any("(2)" in label for label in twice)


def test_a_comparison_does_not_draw_its_reference_twice(truth: xr.Dataset,
                                                        tmp_path: Path) -> None:
    compared = with_comparison(truth, vorticity(2, 3.0))
    kept = schema.load([truth, compared])
    assert len(kept) == 1 and "compared" in kept[0].dims
    page = render([truth, compared], tmp_path / "kf.html").read_text()
    assert table(page, "summary-table").count("<th>truth (synthetic.zarr)</th>") == 1
    assert "id='return-levels-1'" not in page and "id='comparison-table'" in page


# --- 4 and 5. one 0.99 quantile; spreads are not intervals ---------------------------------


def test_the_exceedance_map_names_the_record_quantile_only(truth: xr.Dataset) -> None:
    shifted = truth.copy()
    shifted["exceedance_map"].attrs["threshold"] = 2.718281
    caption = figures.field_maps([loaded(shifted)], "exceedance_map")[0].caption
    final = float(truth["quantile"].sel(probability=0.99))
    assert f"its 0.99 quantile ({schema.significant(final)} 1/s)" in caption
    assert "2.718" not in caption


def test_spreads_over_points_are_not_written_as_intervals() -> None:
    rng = np.random.default_rng(0)
    estimate = rng.normal(0.1, 0.1, (4, 5))
    cube = np.stack([estimate, estimate - 0.2, estimate + 0.2], axis=-1)
    levels = np.stack([cube * 10 + 50, cube * 10 + 60], axis=0)
    d = latitude_longitude().assign(
        point_gev_shape=(("lat4", "lon5", "interval"), cube),
        point_gev_return_level=(("return_period", "lat4", "lon5", "interval"), levels),
        interval=["estimate", "lower", "upper"], return_period=[10.0, 20.0])
    d["return_period"].attrs["units"] = "years"
    d.attrs["point_interval_method"] = "delta method on log scale"
    points = tables.point_fits([loaded(d)])
    assert "5th–95th percentile over points" in points.header[0]
    cells = [cell for row in points.rows for cell in row[1:]]
    assert not any("[" in cell for cell in cells)
    rows = {row[0]: row[1] for row in points.rows}
    assert rows["GEV return level, T = 20 years"].endswith(
        "K (5th–95th percentile over points)")
    assert rows["interval method at a point"] == "delta method on log scale"


# --- 6. gaps in maps -----------------------------------------------------------------------


def pixel(figure, ax, x: float, y: float, crs=None) -> tuple[float, float, float]:
    """The colour drawn at data point (x, y) of ``ax``."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    if crs is not None:
        x, y = ax.projection.transform_point(x, y, crs)
    column, row = ax.transData.transform((x, y))
    image = np.asarray(canvas.buffer_rgba())
    return tuple(image[image.shape[0] - round(row), round(column), :3] / 255)


@pytest.mark.parametrize("geographic", [True, False])
def test_missing_points_are_drawn_grey_with_a_legend(geographic: bool) -> None:
    lat, lon = np.linspace(35, 65, 16), np.linspace(-10, 30, 21)
    values = np.random.default_rng(1).uniform(-0.4, 0.4, (16, 21))
    values[4:9, 5:11] = np.nan
    dims = ("lat", "lon") if geographic else ("y", "x")
    field = xr.DataArray(values, dims=dims, coords={dims[0]: lat, dims[1]: lon})
    figure = maps.field_figure(field, title="shape", label="ξ", cmap="RdBu_r",
                               limits=(-0.5, 0.5))
    ax = figure.axes[0]
    crs = None
    if geographic:
        import cartopy.crs as ccrs
        crs = ccrs.PlateCarree()
    grey = np.array(to_rgb(maps.MISSING))
    assert np.allclose(pixel(figure, ax, lon[7], lat[6], crs), grey, atol=0.02)
    assert not np.allclose(pixel(figure, ax, lon[15], lat[12], crs), grey, atol=0.02)
    assert not ax.images  # no stock image under the data
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["no data / no fit (30 of 336 points)"]


# --- 7. both fits over the whole range -----------------------------------------------------


def test_return_level_curves_span_the_data_and_match_the_fits(truth: xr.Dataset) -> None:
    short = loaded(truth.sel(return_period=[20.0, 50.0]))
    ax = extreme_figures.return_levels(short, short).figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    peaks = next(line for label, line in lines.items() if label.endswith("cluster peaks"))
    maxima = next(line for label, line in lines.items() if label.endswith("block maxima"))
    gpd = next(line for label, line in lines.items() if label.startswith("GPD"))
    gev = next(line for label, line in lines.items() if label.startswith("GEV"))
    for curve, points in ((gpd, peaks), (gev, maxima)):
        x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
        drawn = x[np.isfinite(y)]
        assert drawn.min() <= np.min(points.get_xdata()) and drawn.max() >= 50.0
    for line, name in ((gpd, "return_level"), (gev, "gev_return_level")):
        stored = float(short[name].sel(return_period=50.0, interval="estimate"))
        drawn = np.interp(np.log(50.0), np.log(line.get_xdata()), line.get_ydata())
        assert drawn == pytest.approx(stored, rel=0.02)


# --- 8. lower bounds below a physical floor ------------------------------------------------


def test_lower_bounds_below_the_physical_floor_are_warned(truth: xr.Dataset,
                                                         tmp_path: Path) -> None:
    levels = truth["return_level"].copy()
    levels.loc[{"return_period": 2.0, "interval": "lower"}] = -0.5
    below = truth.assign(return_level=levels)
    page = render([below.assign_attrs(lower_bound=0.0)], tmp_path / "floor.html").read_text()
    assert re.search(r"class='warning'>Warning: truth \(synthetic\.zarr\): 1 stored lower "
                     r"confidence bounds lie below .*lower bound 0 1/s \(1 of return_level\)",
                     page)
    assert "[-0.5, " in table(page, "summary-table")
    plain = render([below], tmp_path / "no-floor.html").read_text()
    assert "class='warning'" not in plain
