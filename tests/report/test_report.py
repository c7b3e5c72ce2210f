"""HTML tail report: figures and tables from synthetic diagnostics, offline maps, atomic writes.

The diagnostics Datasets are built here by hand following "assimilate.diagnostics/1": a
t-distributed field for the moments and histogram, and a dissipation series into which
cluster peaks with GPD excesses are injected, so the GPD and GEV numbers come from real
``scipy.stats`` fits.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from PIL import Image

from assimilate.report import extreme_figures as report_extreme_figures
from assimilate.report import figures as report_figures
from assimilate.report import maps as report_maps
from assimilate.report import page as report_page
from assimilate.report import plot, render
from assimilate.report import schema as report_schema
from pde.io.errors import OutputError

SCHEMA = "assimilate.diagnostics/1"
PROBABILITIES = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999]
RETURN_PERIODS = [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
FIGURE_IDS = ["histogram", "qq", "return-levels", "series", "exceedance-map",
              "temporal-maximum-map", "spectrum"]
IMAGE = re.compile(r"<figure id='([\w-]+)'><img src='data:image/png;base64,([A-Za-z0-9+/=]+)'")


# --- synthetic diagnostics -----------------------------------------------------------------


def field_statistics(field: np.ndarray, space: dict, **attrs) -> xr.Dataset:
    """Moments, quantiles, histogram and maps of ``field`` with dims (time, *space)."""
    flat = field.ravel()
    density, edges = np.histogram(flat, bins=60, density=True)
    q99 = np.quantile(flat, 0.99)
    thresholds = [np.quantile(flat, 0.9), q99, 3.0]
    space_dims = list(space)
    data = {
        "count": flat.size, "mean": flat.mean(), "variance": flat.var(),
        "skewness": scipy.stats.skew(flat), "kurtosis": scipy.stats.kurtosis(flat, fisher=False),
        "minimum": flat.min(), "maximum": flat.max(),
        "quantile": ("probability", np.quantile(flat, PROBABILITIES)),
        "exceedance_probability": ("threshold", [(flat > t).mean() for t in thresholds]),
        "threshold_quantile": ("threshold", [0.9, 0.99, np.nan]),
        "histogram_density": ("bin", density),
        "temporal_maximum": (space_dims, field.max(axis=0)),
        "exceedance_map": (space_dims, (field > q99).mean(axis=0),
                           {"threshold": q99, "threshold_quantile": 0.99}),
    }
    coords = {"probability": PROBABILITIES, "threshold": thresholds,
              "bin_left": ("bin", edges[:-1]), "bin_right": ("bin", edges[1:]), **space}
    defaults = {"schema": SCHEMA, "source": "synthetic.zarr", "variable": "vorticity",
                "units": "1/s", "pde": "", "time_dim": "", "realisation_dims": "[]",
                "space_dims": json.dumps(space_dims), "time_units": "", "created": "today",
                "extremes_series": "", "pot_run_length": 3, "block_length": 10.0,
                "confidence": 0.95}
    return xr.Dataset(data, coords=coords, attrs={**defaults, **attrs})


def dissipation_with_peaks(rng: np.random.Generator, shape: float, n_trajectories: int = 4,
                           n_times: int = 400, dt: float = 0.1) -> dict:
    """A series (trajectory, time) below u = 1.6 except for injected GPD cluster peaks."""
    u = 1.6
    series = np.clip(1.0 + 0.15 * rng.standard_normal((n_trajectories, n_times)), 0.2, u - 0.05)
    starts = np.arange(5, n_times - 5, 33)  # peaks 33 steps apart: one cluster each
    where = [(r, int(t + rng.integers(0, 20))) for r in range(n_trajectories) for t in starts]
    excess = scipy.stats.genpareto.rvs(shape, scale=0.3, size=len(where), random_state=rng)
    for (r, t), y in zip(where, excess, strict=True):
        series[r, t] = u + y
        series[r, t + 1] = u + 0.3 * y  # a shoulder in the same cluster, not a new peak
    time = np.arange(n_times) * dt
    return {"series": series, "time": time, "u": u, "excess": excess,
            "peak_realisation": np.array([r for r, _ in where]),
            "peak_time": time[[t for _, t in where]], "span": n_trajectories * n_times * dt}


def peaks_over_threshold(pot: dict, block_length: float) -> dict:
    """Peaks, GPD and GEV fits with approximate 95 % intervals, and return levels."""
    n, u = pot["excess"].size, pot["u"]
    xi, _, sigma = scipy.stats.genpareto.fit(pot["excess"], floc=0)
    xi_se, sigma_se = (1 + xi) / np.sqrt(n), sigma * np.sqrt(2 * (1 + xi) / n)
    rate = n / pot["span"]
    periods = np.array(RETURN_PERIODS)

    def level(shape: float) -> np.ndarray:
        return u + sigma / shape * ((rate * periods) ** shape - 1)

    band = np.sort([level(xi - 1.96 * xi_se), level(xi + 1.96 * xi_se)], axis=0)
    steps = int(block_length / (pot["time"][1] - pot["time"][0]))
    blocks = pot["series"].reshape(pot["series"].shape[0], -1, steps).max(axis=2).ravel()
    c, loc, scale = scipy.stats.genextreme.fit(blocks)
    gev = scipy.stats.genextreme.isf(np.where(periods > block_length, block_length / periods,
                                              np.nan), c, loc, scale)
    return {
        "dissipation": (("trajectory", "time"), pot["series"], {"units": "1/s^3"}),
        "peak_value": ("peak", u + pot["excess"]), "peak_time": ("peak", pot["peak_time"]),
        "peak_realisation": ("peak", pot["peak_realisation"]),
        "pot_threshold": u, "n_exceedances": 2 * n, "n_clusters": n, "cluster_rate": rate,
        "gpd_shape": ("interval", [xi, xi - 1.96 * xi_se, xi + 1.96 * xi_se]),
        "gpd_scale": ("interval", [sigma, sigma - 1.96 * sigma_se, sigma + 1.96 * sigma_se]),
        "return_level": (("return_period", "interval"), np.stack([level(xi), *band], axis=1)),
        "block_maximum": ("block", blocks),
        "gev_shape": ("interval", [-c, -c - 0.3, -c + 0.3]),
        "gev_location": ("interval", [loc, loc - 0.1, loc + 0.1]),
        "gev_scale": ("interval", [scale, 0.8 * scale, 1.2 * scale]),
        "gev_return_level": (("return_period", "interval"),
                             np.stack([gev, 0.9 * gev, 1.15 * gev], axis=1)),
    }


def vorticity(seed: int, tail: float) -> np.ndarray:
    """A heavy-tailed field (time, y, x) with a sin(4y) forcing pattern."""
    y = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    return np.sin(4 * y)[:, None] + np.random.default_rng(seed).standard_t(tail, (80, 16, 16))


def kolmogorov(label: str, seed: int, tail: float = 5.0, shape: float = 0.2) -> xr.Dataset:
    """Vorticity maps over (y, x) and a dissipation series with peaks, as for Kolmogorov flow."""
    rng = np.random.default_rng(seed + 100)
    field = vorticity(seed, tail)
    x = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    space = {"y": ("y", x), "x": ("x", x)}
    dataset = field_statistics(field, space, label=label, pde="kolmogorov", time_dim="time",
                               realisation_dims='["trajectory"]', time_units="time units",
                               extremes_series="dissipation")
    pot = dissipation_with_peaks(rng, shape)
    k = np.arange(1, 9)
    dataset = dataset.assign(peaks_over_threshold(pot, block_length=10.0))
    return dataset.assign(energy_spectrum=("wavenumber", k ** -3.0 * (1 + 0.1 * rng.random(8))),
                          spatial_maximum=(("trajectory", "time"), pot["series"] * 3),
                          interval=["estimate", "lower", "upper"], time=pot["time"],
                          return_period=RETURN_PERIODS, wavenumber=k)


def with_comparison(truth: xr.Dataset, emulator: np.ndarray) -> xr.Dataset:
    """Truth diagnostics holding its scores against the ``emulator`` field (on truth's bins)."""
    edges = np.append(truth["bin_left"].values, truth["bin_right"].values[-1])
    counts, _ = np.histogram(emulator, bins=edges)
    density = counts[None] / (emulator.size * np.diff(edges))  # out-of-range values count too
    return truth.assign(
        kurtosis_ratio=("compared", [0.4321]), skewness_ratio=("compared", [1.234]),
        tail_ks_statistic=("compared", [0.0567]), log_density_distance=("compared", [0.3]),
        twcrps=("compared", [np.nan]),
        exceedance_ratio=(("compared", "tail_quantile"), [[0.81, 0.66]]),
        compared_histogram_density=(("compared", "bin"), density),
        compared=["emulator"], tail_quantile=[0.99, 0.999])


def latitude_longitude(label: str = "reanalysis") -> xr.Dataset:
    rng = np.random.default_rng(3)
    lat, lon = np.linspace(-60, 60, 13), np.arange(0, 360, 10.0)
    field = np.cos(np.deg2rad(lat))[:, None] * 20 + rng.gumbel(size=(30, 13, 36))
    space = {"lat": ("lat", lat, {"units": "degrees_north"}),
             "lon": ("lon", lon, {"units": "degrees_east"})}
    return field_statistics(field, space, label=label, variable="t2m", units="K")


def one_dimensional(label: str = "ks") -> xr.Dataset:
    """Kuramoto-Sivashinsky-like: space x only, no time, so no series and no peaks."""
    rng = np.random.default_rng(4)
    x = np.linspace(0, 22, 32, endpoint=False)
    field = np.sin(x) + rng.standard_normal((50, 32))
    return field_statistics(field, {"x": ("x", x)}, label=label, variable="u", units="",
                            pde="kuramoto_sivashinsky")


# --- helpers -------------------------------------------------------------------------------


def figures(page: str) -> dict[str, Image.Image]:
    """Decoded PNG of every figure, by id."""
    found = {}
    for figure_id, data in IMAGE.findall(page):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        found[figure_id] = image.convert("RGB")
    return found


def distinct_colours(image: Image.Image) -> int:
    return len(image.getcolors(maxcolors=1 << 20) or [])


def table(page: str, table_id: str) -> str:
    match = re.search(rf"<table id='{table_id}'>.*?</table>", page, re.DOTALL)
    assert match, f"no table {table_id}"
    return match.group(0)


@pytest.fixture(scope="module")
def pair() -> tuple[xr.Dataset, xr.Dataset]:
    emulator = kolmogorov("emulator", seed=2, tail=3.0, shape=0.35).assign_attrs(
        source="emulator.zarr")
    return with_comparison(kolmogorov("truth", seed=1), vorticity(2, 3.0)), emulator


@pytest.fixture(scope="module")
def report(pair, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "tails.html"
    return render(list(pair), out, title="Kolmogorov <tails>", pdf=out.with_suffix(".pdf"))


# --- the full report -----------------------------------------------------------------------


def test_every_figure_is_embedded_and_decodes(report: Path) -> None:
    found = figures(report.read_text())
    expected = FIGURE_IDS + ["return-levels-1", "series-1", "exceedance-map-1",
                             "temporal-maximum-map-1"]
    assert sorted(found) == sorted(expected)
    for figure_id, image in found.items():
        assert image.size == (700, 400), figure_id
        assert distinct_colours(image) > 50, f"{figure_id} is nearly blank"


def test_plot_returns_the_report_figures_by_id(report: Path, pair) -> None:
    shown = plot(list(pair))
    assert list(shown) == list(figures(report.read_text()))  # same ids, same order
    for figure_id, figure in shown.items():
        assert figure.axes and figure.axes[0].has_data(), figure_id


def test_report_is_self_contained_and_escaped(report: Path) -> None:
    page = report.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)
    assert "<script" not in page and "<link" not in page
    assert "Kolmogorov &lt;tails&gt;" in page and "<tails>" not in page
    assert sorted(p.name for p in report.parent.iterdir()) == ["tails.html", "tails.pdf"]


def test_summary_table_holds_fitted_numbers(report: Path, pair) -> None:
    summary = table(report.read_text(), "summary-table")
    for dataset in pair:
        xi, lower, upper = dataset["gpd_shape"].values
        assert f"{xi:.4g} (95 % CI [{lower:.4g}, {upper:.4g}])<" in summary
        assert f"{float(dataset['kurtosis']):.4g}" in summary
        assert f"<td>{int(dataset['n_clusters'])}</td>" in summary
        q999 = float(dataset["quantile"].sel(probability=0.999))
        assert f"{q999:.4g}" in summary
    assert "<th>truth (synthetic.zarr)</th>" in summary
    assert "<th>emulator (emulator.zarr)</th>" in summary
    level = pair[0]["return_level"].sel(return_period=2.0, interval="estimate")
    assert "return level, T = 2 time units" in summary and f"{float(level):.4g}" in summary


def test_comparison_table_and_overlay(report: Path) -> None:
    page = report.read_text()
    comparison = table(page, "comparison-table")
    for text in ["emulator", "0.4321", "1.234", "0.0567", "NaN", "0.81", "0.66",
                 "exceedance ratio, q = 0.999"]:
        assert text in comparison
    assert "Dashed: compared samples" in page


def test_histogram_overlays_the_compared_density(pair) -> None:
    truth = report_schema.load([pair[0]])
    alone = report_schema.load([pair[0].drop_vars("compared_histogram_density")])
    with_overlay = report_page._png(report_figures.histogram(truth).figure)
    without = report_page._png(report_figures.histogram(alone).figure)
    changed = np.asarray(Image.open(io.BytesIO(with_overlay)).convert("RGB")) != \
        np.asarray(Image.open(io.BytesIO(without)).convert("RGB"))
    assert changed.any(axis=2).mean() > 0.005


def test_gev_alone_still_gives_return_levels(pair) -> None:
    gev_only = pair[1].drop_vars(["return_level", "gpd_shape", "gpd_scale"])
    panel = report_extreme_figures.return_levels(*report_schema.load([gev_only]) * 2)
    assert panel is not None and "GEV fitted to the 16 maxima" in panel.caption
    assert report_figures.qq(report_schema.load([gev_only])) is None


def test_series_over_calendar_time(pair) -> None:
    dataset = pair[1]
    dates = np.datetime64("2000-01-01") + (dataset["time"].values * 10).astype("timedelta64[D]")
    on_dates = dataset.assign_coords(time=dates).assign(
        peak_time=("peak", np.datetime64("2000-01-01")
                   + (dataset["peak_time"].values * 10).astype("timedelta64[D]")))
    panel = report_extreme_figures.series(report_schema.load([on_dates])[0])
    image = Image.open(io.BytesIO(report_page._png(panel.figure)))
    assert panel.figure.axes[0].get_xlabel() == "time" and distinct_colours(image) > 50


def test_pdf_holds_summary_and_every_figure(report: Path) -> None:
    pdf = report.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1 + 11


# --- absent data, bad input, atomic writes -------------------------------------------------


def test_figures_are_skipped_without_their_data(tmp_path: Path) -> None:
    dataset = one_dimensional().drop_vars(["temporal_maximum"])
    page = render([dataset], tmp_path / "ks.html").read_text()
    found = figures(page)
    assert sorted(found) == ["exceedance-map", "histogram"]
    assert "id='comparison-table'" not in page and "GPD shape" not in table(page, "summary-table")
    # The 1-D exceedance map is a line plot, not an image: mostly white.
    pixels = np.asarray(found["exceedance-map"])
    assert (pixels == 255).all(axis=2).mean() > 0.7


def test_first_figure_of_a_kind_keeps_the_plain_id(tmp_path: Path) -> None:
    no_peaks = one_dimensional().drop_vars(["temporal_maximum", "exceedance_map"]).assign_attrs(
        variable="vorticity", units="1/s")
    peaks = kolmogorov("with peaks", seed=5).drop_vars(
        ["temporal_maximum", "exceedance_map", "energy_spectrum"])
    page = render([no_peaks, peaks], tmp_path / "mixed.html").read_text()
    assert sorted(figures(page)) == ["histogram", "qq", "return-levels", "series"]
    assert re.search(r"The dissipation rate of with peaks \(synthetic\.zarr\) over time for 3 of 4 realisations "
                     r"\(those holding the largest peaks\), with \d+ of 48 detected", page)


def test_zarr_paths_are_read_and_bad_schemas_named(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.zarr", tmp_path / "bad.zarr"
    one_dimensional().to_zarr(good)
    one_dimensional().assign_attrs(schema="other/2").to_zarr(bad)
    out = render([good], tmp_path / "from-zarr.html")
    assert "<th>ks (synthetic.zarr)</th>" in table(out.read_text(), "summary-table")
    with pytest.raises(ValueError, match=r"bad\.zarr: schema 'other/2'"):
        render([good, bad], tmp_path / "never.html")
    with pytest.raises(ValueError, match=r"schema None"):
        render([xr.Dataset()], tmp_path / "never.html")
    with pytest.raises(ValueError, match="at least one"):
        render([], tmp_path / "never.html")
    assert not (tmp_path / "never.html").exists()


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = render([one_dimensional()], tmp_path / "report.html")
    before = out.read_bytes()

    def interrupted(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_page.os, "replace", interrupted)
    with pytest.raises(OutputError, match="cannot write '.*report.html': disk full"):
        render([one_dimensional("changed")], out, overwrite=True)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --- maps offline --------------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cartopy with an empty data dir, and any attempt to reach the network an error."""
    cartopy = pytest.importorskip("cartopy")

    def no_network(*args, **kwargs):
        raise AssertionError(f"the report tried to download {args[:1]}")

    empty = tmp_path / "cartopy-data"
    empty.mkdir()
    monkeypatch.setitem(cartopy.config, "data_dir", empty)
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", empty)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    return empty


def test_latitude_longitude_map_renders_offline(offline: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = render([latitude_longitude()], tmp_path / "map.html").read_text()
    assert not [w for w in caught if "cartopy" in str(w.message)]
    found = figures(page)
    assert {"exceedance-map", "temporal-maximum-map"} <= set(found)
    assert distinct_colours(found["temporal-maximum-map"]) > 200
    assert list(offline.iterdir()) == []  # nothing was downloaded into the data dir


def test_maps_draw_the_packaged_coastlines_offline(offline: Path) -> None:
    """On a machine with no cartopy data and no network, a map of the UK has the 1:50
    million coastline through it (a global one the 1:110 million), no stock image."""
    from cartopy.io.shapereader import Reader
    from shapely.geometry import box

    assert report_maps.coastline_file(12.0).name == "ne_50m_coastline.shp"
    assert report_maps.coastline_file(360.0).name == "ne_110m_coastline.shp"
    uk = box(-10.0, 50.0, 2.0, 58.0)
    crossing = [g for g in Reader(str(report_maps.coastline_file(12.0))).geometries()
                if g.intersects(uk)]
    assert sum(g.intersection(uk).length for g in crossing) > 50  # degrees of coast
    field = xr.DataArray(np.random.default_rng(0).normal(280, 2, (33, 49)),
                         dims=("latitude", "longitude"),
                         coords={"latitude": np.linspace(50, 58, 33),
                                 "longitude": np.linspace(-10, 2, 49)})
    figure = report_maps.field_figure(field, title="t2m", label="K", cmap="viridis",
                                      limits=(274.0, 286.0))
    ax = figure.axes[0]
    assert not ax.images
    assert any(type(a).__name__ == "FeatureArtist" for a in ax.artists + ax.collections)
    assert list(offline.iterdir()) == []  # nothing was downloaded


def test_cartopy_failure_falls_back_to_plain_axes(monkeypatch: pytest.MonkeyPatch) -> None:
    crs = pytest.importorskip("cartopy.crs")

    def broken():
        raise RuntimeError("no PROJ database")

    monkeypatch.setattr(crs, "PlateCarree", broken)
    with pytest.warns(UserWarning, match="no PROJ database"):
        figure = report_maps.field_figure(latitude_longitude()["exceedance_map"], title="t",
                                          label="p", cmap="magma", limits=(0.0, 1.0))
    ax = figure.axes[0]
    assert type(ax).__name__ == "Axes" and ax.get_xlabel() == "longitude"


# --- a real browser ------------------------------------------------------------------------

BROWSERS = ["chromium", "chromium-browser", "google-chrome", "headless_shell", "chrome"]


def test_browser_renders_the_report(report: Path, tmp_path: Path) -> None:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        if os.environ.get("ASSIMILATE_REQUIRE_BROWSER"):  # CI installs one: never skip there
            pytest.fail(f"ASSIMILATE_REQUIRE_BROWSER is set but no headless browser is on "
                        f"PATH (looked for {', '.join(BROWSERS)})")
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)})")
    screenshot = tmp_path / "screenshot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={screenshot}", "--window-size=1200,3000",
                    report.resolve().as_uri()], check=True, capture_output=True, timeout=60)
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1200, 3000)
    assert distinct_colours(image) > 500  # text, tables and figures, not a blank page
    # The figures are laid out below the tables and reach the lower half of the page.
    assert distinct_colours(image.crop((0, 1500, 1200, 3000))) > 200


def test_browser_renders_a_report_of_imported_data_with_coastlines(pilot, tmp_path: Path) -> None:
    """The ERA5 cut (imported, latitude x longitude): the report's maps are drawn on the
    globe with the packaged coastlines, and a real browser renders the page."""
    from assimilate.diagnostics import DiagnoseSettings, diagnose, open_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two days of hours: too short a record for a fit
        diagnose(open_data(pilot["test"]), DiagnoseSettings(variable="t2m"), label="ERA5",
                 out=tmp_path / "era5.diag")
    page = render([tmp_path / "era5.diag"], tmp_path / "era5.html")
    found = figures(page.read_text())
    assert "temporal-maximum-map" in found
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        if os.environ.get("ASSIMILATE_REQUIRE_BROWSER"):
            pytest.fail("ASSIMILATE_REQUIRE_BROWSER is set but no headless browser is on PATH")
        pytest.skip("no headless browser on PATH")
    screenshot = tmp_path / "screenshot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={screenshot}", "--window-size=1200,3000",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=60)
    image = Image.open(screenshot).convert("RGB")
    assert distinct_colours(image) > 500
    assert distinct_colours(image.crop((0, 1500, 1200, 3000))) > 200
