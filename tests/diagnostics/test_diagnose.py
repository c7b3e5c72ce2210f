"""diagnose(): the lazy one-pass statistics against NumPy/SciPy, extremes, bad input."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scoringrules
import xarray as xr
from scipy import stats

from assimilate.diagnostics import DiagnoseSettings, diagnose, open_data, summary
from assimilate.diagnostics.layout import layout
from assimilate.diagnostics.onepass import PassSettings, statistics
from assimilate.diagnostics.sketch import bin_edges, chunk_counts, sketch_quantiles
from pde import kolmogorov


def field_2d(seed: int = 0, chunks: dict | None = None) -> xr.DataArray:
    """(trajectory, time, y, x) skewed heavy-tailed values with a spatial pattern."""
    rng = np.random.default_rng(seed)
    values = stats.genpareto.rvs(0.2, size=(3, 40, 8, 8), random_state=rng)
    values += np.sin(np.linspace(0, 2 * np.pi, 8, endpoint=False))[None, None, :, None]
    field = xr.DataArray(values, dims=("trajectory", "time", "y", "x"), name="vorticity",
                         coords={"time": 0.5 * np.arange(40),
                                 "y": np.linspace(0, 2 * np.pi, 8, endpoint=False),
                                 "x": np.linspace(0, 2 * np.pi, 8, endpoint=False)})
    return field.chunk(chunks or {"trajectory": 1, "time": 10})


def test_sketch_quantiles_within_one_bin_of_numpy() -> None:
    rng = np.random.default_rng(1)
    for values in (rng.standard_normal(200_000), 1e-4 * rng.standard_t(3, 200_000),
                   -rng.lognormal(size=200_000)):
        p = [0.0, 0.001, 0.5, 0.99, 0.9999, 1.0]
        got = sketch_quantiles(chunk_counts(values), p, values.min(), values.max())
        np.testing.assert_allclose(got, np.quantile(values, p), rtol=2**-7, atol=1e-12)
    left, right = bin_edges()
    assert (left <= right).all() and (right[:-1] <= left[1:]).all(), "bins ordered"


def test_quantiles_of_a_field_far_from_zero_resolve_its_spread() -> None:
    """A temperature in kelvin (280 +- 2): binned raw, the sketch's relative bins would be
    2 K wide; binned less a shift near the median, the quantiles keep 2^-7 of the spread,
    and the histogram has no empty bins between filled ones."""
    rng = np.random.default_rng(3)
    values = (280.0 + 2.0 * rng.standard_normal((4, 50, 8, 8))).astype(np.float32)
    field = xr.DataArray(values, dims=("trajectory", "time", "y", "x"), name="t2m",
                         coords={"time": np.arange(50.0)}).chunk({"trajectory": 1})
    diag = diagnose(field.to_dataset(), DiagnoseSettings())
    p = diag["probability"].values
    np.testing.assert_allclose(diag["quantile"].values, np.quantile(values, p), atol=0.05)
    density = diag["histogram_density"].values
    inside = density[np.argmax(density > 0): len(density) - np.argmax(density[::-1] > 0)]
    assert (inside > 0).mean() > 0.9, "a dense histogram, not spikes every 2 K"


def test_one_pass_statistics_equal_numpy_and_read_each_chunk_once() -> None:
    reference = field_2d().values
    reads: list[tuple] = []
    lock = threading.Lock()

    def load(block: np.ndarray, block_info=None) -> np.ndarray:
        with lock:
            reads.append(tuple(block_info[0]["chunk-location"]))
        return block

    counted = field_2d().copy(data=da.map_blocks(load, field_2d().data, dtype=np.float64))
    field, lay = layout(counted)
    thresholds = [1.0, 3.0]
    lazy = statistics(field, lay, PassSettings(tuple(thresholds), 2.0, shift=1.0))
    assert reads == [], "statistics() computes nothing until asked"
    c = lazy.compute()
    n_chunks = int(np.prod(counted.data.numblocks))
    assert len(reads) == n_chunks and len(set(reads)) == n_chunks, "one read per chunk"
    flat = reference.ravel()
    assert int(c["count"]) == flat.size
    assert float(c["power_sum_2"]) == pytest.approx(((flat - 1.0) ** 2).sum(), rel=1e-12)
    np.testing.assert_array_equal(c["exceedance_count"], [(flat > t).sum() for t in thresholds])
    np.testing.assert_array_equal(c["temporal_maximum"], reference.max(axis=(0, 1)))
    np.testing.assert_allclose(c["exceedance_map"], (reference > 2.0).mean(axis=(0, 1)))
    np.testing.assert_array_equal(c["spatial_maximum"], reference.max(axis=(2, 3)))
    np.testing.assert_array_equal(c["sketch"], chunk_counts(flat - 1.0))  # less the shift


def test_diagnose_matches_scipy_and_numpy_on_the_same_data() -> None:
    field = field_2d()
    values = field.values.ravel()
    with pytest.warns(UserWarning, match="no G"):  # 3 x 40 steps: too few peaks to fit
        diag = diagnose(field.to_dataset(), DiagnoseSettings(thresholds=[2.5]))
    assert float(diag["mean"]) == pytest.approx(values.mean(), rel=1e-12)
    assert float(diag["variance"]) == pytest.approx(values.var(), rel=1e-10)
    assert float(diag["skewness"]) == pytest.approx(stats.skew(values), rel=1e-9)
    assert float(diag["kurtosis"]) == pytest.approx(stats.kurtosis(values, fisher=False),
                                                    rel=1e-9)
    np.testing.assert_allclose(diag["quantile"], np.quantile(values, diag["probability"]),
                               rtol=2**-7)
    user = diag["exceedance_probability"].isel(threshold=-1)
    assert float(user) == pytest.approx((values > 2.5).mean()) and float(user["threshold"]) == 2.5
    widths = diag["bin_right"] - diag["bin_left"]
    assert float((diag["histogram_density"] * widths).sum()) == pytest.approx(1.0)
    assert diag.attrs["schema"] == "assimilate.diagnostics/1"
    assert diag.attrs["space_dims"] == '["y", "x"]'
    assert diag.attrs["realisation_dims"] == '["trajectory"]'
    with pytest.warns(UserWarning, match="no G"):
        in_memory = diagnose(field.load().to_dataset(), DiagnoseSettings(thresholds=[2.5]))
    xr.testing.assert_allclose(in_memory.drop_attrs(), diag.drop_attrs())


def test_kolmogorov_series_equal_the_simulator_definitions() -> None:
    field = field_2d()
    ds = field.to_dataset().assign_attrs(pde="kolmogorov", viscosity=0.025)
    diag = diagnose(ds, DiagnoseSettings(pot_quantile=0.5))
    w = field.values
    np.testing.assert_allclose(diag["energy"], kolmogorov.energy(w), rtol=1e-12)
    np.testing.assert_allclose(diag["dissipation"], kolmogorov.dissipation(w, 0.025),
                               rtol=1e-12)
    assert diag.attrs["extremes_series"] == "dissipation"
    assert diag.sizes["wavenumber"] == 5


def test_kuramoto_sivashinsky_series_and_spectrum_are_the_descriptors() -> None:
    from pde.descriptor import KURAMOTO_SIVASHINSKY

    field = field_2d().isel(y=0).drop_vars("y").rename("u").chunk({"x": 4})  # x chunked too
    diag = diagnose(field.to_dataset().assign_attrs(pde="kuramoto_sivashinsky"),
                    DiagnoseSettings(pot_quantile=0.5))
    u = field.values
    series = KURAMOTO_SIVASHINSKY.series(u)
    assert {"total_variation", "energy", "energy_spectrum"} <= set(diag.data_vars)
    assert "enstrophy" not in diag
    for name in ("total_variation", "energy"):
        np.testing.assert_allclose(diag[name], series[name], rtol=1e-12)
    spectra = KURAMOTO_SIVASHINSKY.spectrum(u)
    np.testing.assert_allclose(diag["energy_spectrum"], spectra.mean((0, 1)), rtol=1e-12)


def test_peaks_over_threshold_of_a_pareto_series_recover_its_shape() -> None:
    rng = np.random.default_rng(2)
    series = stats.genpareto.rvs(0.25, size=(4, 2500), random_state=rng)
    data = xr.DataArray(series, dims=("station", "time"), name="rain",
                        coords={"time": np.arange(2500.0)}).chunk({"time": 500})
    diag = diagnose(data.to_dataset(), DiagnoseSettings(pot_quantile=0.95, run_length=1))
    _estimate, lower, upper = diag["gpd_shape"].values
    assert lower < 0.25 < upper and upper - lower < 0.5
    assert int(diag["n_clusters"]) > 300 and diag.attrs["extremes_series"] == "rain"
    # iid GPD values: the shape is the same above every threshold (stability plot flat)
    stability = diag["stability_shape"].values
    covered = (stability[:, 1] < 0.25) & (0.25 < stability[:, 2])
    assert covered.sum() >= len(covered) - 1, stability
    gev_lower, gev_upper = diag["gev_shape"].values[1:]
    assert gev_lower < 0.25 < gev_upper
    # the 1000-step return level of iid GPD values exceeded w.p. 1/1000 per step
    level = diag["return_level"].sel(return_period=1000.0, method="nearest")
    period = float(level["return_period"])
    truth = stats.genpareto.isf(1.0 / period, 0.25)
    assert float(level.sel(interval="lower")) < truth < float(level.sel(interval="upper"))


def test_lat_lon_netcdf_with_datetimes(tmp_path) -> None:
    rng = np.random.default_rng(3)
    time = pd.date_range("2000-01-01", periods=365, freq="D")
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), rng.gumbel(size=(365, 6, 12)),
                               {"units": "K"})},
                      coords={"time": time, "lat": np.linspace(-75, 75, 6),
                              "lon": np.arange(0, 360, 30.0)}).chunk({"time": 100})
    data.to_netcdf(tmp_path / "t2m.nc")
    diag = diagnose(open_data(tmp_path / "t2m.nc"), DiagnoseSettings(pot_quantile=0.9))
    assert diag.attrs["time_units"] == "years" and diag.attrs["units"] == "K"
    assert diag["exceedance_map"].dims == ("lat", "lon")
    assert diag.attrs["extremes_series"] == "spatial_maximum"
    assert "return_level" in diag and diag["return_period"].attrs["units"] == "years"


@pytest.mark.e2e
def test_comparison_written_to_zarr_renders(tmp_path) -> None:
    from assimilate.report import render
    from pde.io.store import write_zarr

    truth = field_2d(seed=8)
    diag = diagnose(truth.to_dataset(), DiagnoseSettings(pot_quantile=0.5),
                    compare={"shifted": truth + 0.5})
    write_zarr(diag, tmp_path / "vs.diag.zarr")
    page = render([tmp_path / "vs.diag.zarr"], tmp_path / "vs.html").read_text()
    assert "comparison-table" in page and "shifted" in page


def test_comparison_scores_and_paired_twcrps() -> None:
    truth = field_2d(seed=4)
    ensemble = xr.concat([truth + 0.1 * i for i in range(4)], "member")
    diag = diagnose(truth.to_dataset(), DiagnoseSettings(pot_quantile=0.5),
                    compare={"shifted": ensemble, "copy": truth})
    assert list(diag["compared"].values) == ["shifted", "copy"]
    copy = diag.sel(compared="copy")
    assert float(copy["kurtosis_ratio"]) == pytest.approx(0.0, abs=1e-12)  # relative error
    assert float(diag["kurtosis_ratio"].sel(compared="shifted")) == pytest.approx(0.0, abs=0.05)
    assert "units" not in diag["exceedance_ratio"].attrs
    assert float(copy["tail_ks_statistic"]) == pytest.approx(0.0, abs=1e-12)
    threshold = diag["exceedance_map"].attrs["threshold"]
    expected = scoringrules.twcrps_ensemble(truth.values, ensemble.transpose(..., "member").values,
                                            threshold, np.inf).mean()
    assert float(diag["twcrps"].sel(compared="shifted")) == pytest.approx(expected)
    assert float(copy["twcrps"]) == 0.0 or np.isnan(float(copy["twcrps"]))
    np.testing.assert_allclose(copy["compared_histogram_density"], diag["histogram_density"])
    lines = {line.split(":")[0]: line for line in summary(diag).splitlines()}
    assert "twCRPS" in lines["vs shifted"]  # a paired ensemble on the same grid
    assert "twCRPS" not in lines["vs copy"]  # not an ensemble: no twCRPS, not a 'nan'


def test_bad_input_is_named(tmp_path) -> None:
    field = field_2d()
    ds = field.to_dataset().assign(other=field * 2)
    with pytest.raises(ValueError, match="2 numeric variables \\(vorticity, other\\).*--var"):
        diagnose(ds)
    with pytest.raises(ValueError, match="no variable 'rain'; its variables are: vorticity"):
        diagnose(field.to_dataset(), DiagnoseSettings(variable="rain"), source="'obs.zarr'")
    with pytest.raises(ValueError, match="lacks the dims \\['lat'\\]"):
        diagnose(field.to_dataset(), DiagnoseSettings(dims=["time", "lat"]))
    with pytest.raises(ValueError, match="holds only NaN values"):
        diagnose(xr.full_like(field, np.nan).to_dataset())
    with pytest.warns(UserWarning, match="not below the maximum"):
        diag = diagnose(field.to_dataset(), DiagnoseSettings(pot_quantile=1.0))
    assert "not below the maximum" in diag.attrs["pot_note"]
    with pytest.raises(ValueError, match="pot_quantile must lie in \\(0, 1\\], got 1.5"):
        diagnose(field.to_dataset(), DiagnoseSettings(pot_quantile=1.5))
    with pytest.raises(ValueError, match="thresholds must be finite"):
        diagnose(field.to_dataset(), DiagnoseSettings(thresholds=[np.nan]))
    with pytest.raises(ValueError, match="series must be one of .*got 'energy_spectrum'"):
        diagnose(field.to_dataset(), DiagnoseSettings(series="energy_spectrum"))
    with pytest.raises(ValueError, match="holds no values .*'trajectory': 0"):
        diagnose(field.isel(trajectory=slice(0, 0)).to_dataset())
    with pytest.raises(FileNotFoundError, match="no data at"):
        open_data(tmp_path / "missing.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(ValueError, match="neither a Zarr store nor a NetCDF"):
        open_data(tmp_path / "junk.zarr")


@pytest.mark.e2e
def test_cli_simulate_diagnose_report_end_to_end(tiny_kolmogorov, tmp_path, capsys) -> None:
    import base64
    import io
    import re

    from PIL import Image

    from assimilate.cli import main

    store, diag, page = tmp_path / "flow.zarr", tmp_path / "flow.diag.zarr", tmp_path / "r.html"
    assert main(["simulate", str(tiny_kolmogorov), "--out", str(store), "--trajectories", "4",
                 "--steps", "250", "--quiet"]) == 0
    assert main(["diagnose", str(store), "--out", str(diag), "--series", "spatial_maximum",
                 "--pot-quantile", "0.6", "--run-length", "none", "--block-steps", "10",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "flow: 'vorticity' (no units) over 64000 values" in printed and "GPD shape" in printed
    written = xr.open_zarr(diag)
    assert written.attrs["extremes_series"] == "spatial_maximum" and "gpd_shape" in written
    assert {"dissipation", "energy", "enstrophy", "energy_spectrum"} <= set(written)
    assert main(["report", str(diag), "--out", str(page)]) == 0
    html = page.read_text()
    images = dict(re.findall(r"<figure id=['\"]([\w-]+)['\"].*?src=['\"]data:image/png;base64,"
                             r"([A-Za-z0-9+/=]+)['\"]", html, re.DOTALL))
    expected = {"histogram", "qq", "threshold-stability", "return-levels", "series",
                "exceedance-map",
                "temporal-maximum-map", "spectrum"}
    assert expected <= set(images), expected - set(images)
    for data in images.values():
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 300
    assert "summary-table" in html
    assert main(["diagnose", str(store), "--out", str(diag), "--var", "pressure",
                 "--overwrite"]) == 2
    assert "no variable 'pressure'" in capsys.readouterr().err


def test_emulator_samples_without_time_and_against_a_truth_store() -> None:
    truth = field_2d(seed=6)
    rng = np.random.default_rng(7)
    samples = xr.DataArray(rng.standard_normal((50, 8, 8)), dims=("sample", "y", "x"),
                           name="vorticity").chunk({"sample": 10})
    diag = diagnose(samples.to_dataset())
    assert diag.attrs["time_dim"] == "" and "no time dimension" in diag.attrs["pot_note"]
    assert diag["temporal_maximum"].dims == ("y", "x") and "spatial_maximum" not in diag
    np.testing.assert_array_equal(diag["temporal_maximum"], samples.values.max(axis=0))
    scored = diagnose(truth.to_dataset(), DiagnoseSettings(pot_quantile=0.5),
                      compare={"emulator": samples})
    # a Gaussian emulator of a heavy-tailed truth: too few extremes, not a paired ensemble
    assert float(scored["exceedance_ratio"].sel(compared="emulator").isel(tail_quantile=-1)) < 1
    assert np.isnan(float(scored["twcrps"].sel(compared="emulator")))
