"""Tail diagnostics: scipy/numpy agreement, analytic limits, Dask laziness, dims, bad input."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.stats
import xarray as xr

from assimilate.diagnostics import (
    exceedance_ratios,
    histogram_quantile,
    kurtosis,
    kurtosis_ratio,
    log_density_distance,
    skewness,
    skewness_ratio,
    tail_ks_statistic,
    tail_scores,
)
from assimilate.diagnostics.tails import _tail_ks

N = 200_000


def sample(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims="sample")


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20241018)
    return {
        "gaussian": rng.standard_normal(N),
        "gaussian_again": rng.standard_normal(N),
        "student5": rng.standard_t(5, N),
        "student12": rng.standard_t(12, N),
        "exponential": rng.exponential(size=N),
        "gamma4": rng.gamma(4.0, size=N),
        "short_laplace": rng.laplace(size=N // 3),
    }


def raise_if_computed(*args, **kwargs):
    raise AssertionError("a Dask graph was computed before it was asked for")


# --- moments -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian", "student5", "gamma4"])
def test_moments_match_scipy(draws: dict, name: str) -> None:
    x = draws[name]
    expected_kurtosis = scipy.stats.kurtosis(x, fisher=False)
    np.testing.assert_allclose(float(kurtosis(sample(x))), expected_kurtosis, rtol=1e-6)
    np.testing.assert_allclose(float(skewness(sample(x))), scipy.stats.skew(x), rtol=1e-6)


def test_kurtosis_ratio_against_itself_and_student_t(draws: dict) -> None:
    gaussian = sample(draws["gaussian"])
    assert float(kurtosis_ratio(gaussian, gaussian)) == pytest.approx(0.0, abs=1e-12)
    # Pearson kurtosis of t(nu) is 3 + 6 / (nu - 4): 9 for nu = 5, 3.75 for nu = 12.
    # Sample kurtosis of t(5) converges slowly (8th moment infinite): over 40 seeds of 2e5
    # values the ratio spanned 0.56-0.77 around the analytic 2/3.
    assert float(kurtosis_ratio(gaussian, sample(draws["student5"]))) == pytest.approx(
        2 / 3, abs=0.15)
    # t(12) converges: seed-to-seed std 0.0075 around the analytic |3 - 3.75| / 3.75 = 0.2.
    assert float(kurtosis_ratio(gaussian, sample(draws["student12"]))) == pytest.approx(
        0.2, abs=0.03)


def test_skewness_ratio_gamma_against_exponential_is_analytic(draws: dict) -> None:
    # Skewness of Gamma(k) is 2 / sqrt(k): 1 for k = 4, 2 for the exponential (k = 1).
    ratio = float(skewness_ratio(sample(draws["gamma4"]), sample(draws["exponential"])))
    assert ratio == pytest.approx(0.5, abs=0.025)  # 4x the seed-to-seed std


# --- quantiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["student5", "exponential"])
def test_histogram_quantile_equals_numpy(draws: dict, name: str) -> None:
    probabilities = [0.001, 0.1, 0.5, 0.9, 0.99, 0.999]
    result = histogram_quantile(sample(draws[name]), probabilities)
    assert result.dims == ("quantile",)
    np.testing.assert_allclose(result, np.quantile(draws[name], probabilities), rtol=1e-13)


def test_histogram_quantile_with_ties_and_nans() -> None:
    rng = np.random.default_rng(3)
    values = rng.poisson(3.0, (400, 50)).astype(float)
    values[rng.random(values.shape) < 0.2] = np.nan
    data = xr.DataArray(values, dims=("time", "x"))
    probabilities = [0.05, 0.5, 0.97]
    expected = np.nanquantile(values, probabilities)
    np.testing.assert_array_equal(histogram_quantile(data, probabilities), expected)
    chunked = histogram_quantile(data.chunk({"time": 64, "x": 16}), probabilities)
    np.testing.assert_array_equal(chunked.compute(), expected)


# --- tail KS -------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["upper", "lower", "both"])
def test_tail_ks_matches_scipy_on_the_tail_subsets(draws: dict, tail: str) -> None:
    generated, reference = 1.3 * draws["short_laplace"], draws["gaussian"]
    if tail == "upper":
        q = np.quantile(reference, 0.99)
        gen_tail, ref_tail = generated[generated > q], reference[reference > q]
    elif tail == "lower":
        q = np.quantile(reference, 1 - 0.99)
        gen_tail, ref_tail = generated[generated < q], reference[reference < q]
    else:
        q = np.quantile(np.abs(reference), 0.99)
        gen_tail = generated[np.abs(generated) > q]
        ref_tail = reference[np.abs(reference) > q]
    expected = scipy.stats.ks_2samp(gen_tail, ref_tail, method="asymp").statistic
    assert 0.2 < expected < 0.6  # neither trivially 0 nor 1
    result = tail_ks_statistic(sample(generated), sample(reference), 0.99, tail=tail)
    # The sup over sub-bin edges undershoots by at most `bound` (max shared-bin mass).
    statistic, bound = _tail_ks(sample(generated), ("sample",), sample(reference), ("sample",),
                                0.99, tail)
    assert float(result) == float(statistic)
    assert float(statistic) - 1e-12 <= expected <= float(statistic + bound) + 1e-12
    assert float(bound) <= 1e-3  # about one reference value's mass, 1 / 2000


def test_tail_ks_small_for_same_law_large_for_gaussian_against_t(draws: dict) -> None:
    gaussian, again = sample(draws["gaussian"]), sample(draws["gaussian_again"])
    # 2000 tail values each: the 0.1% critical value of KS is 1.95 * sqrt(2 / 2000) = 0.062.
    assert float(tail_ks_statistic(again, gaussian)) < 0.065
    assert float(tail_ks_statistic(gaussian, sample(draws["student5"]))) > 0.4


# --- exceedances and log density -----------------------------------------------------------


def test_exceedance_ratios_of_itself_are_one(draws: dict) -> None:
    reference = sample(draws["student5"])
    result = exceedance_ratios(reference, reference, (0.9, 0.99, 0.999))
    assert result.dims == ("quantile",)
    np.testing.assert_allclose(result["quantile"], [0.9, 0.99, 0.999])
    np.testing.assert_allclose(result, 1.0, rtol=1e-12)


def test_exceedance_ratios_of_a_doubled_exponential_are_analytic(draws: dict) -> None:
    # X ~ Exp(1), q_p = -ln(1 - p): P(2X > q) / P(X > q) = exp(q / 2) = (1 - p)^(-1/2).
    x = draws["exponential"]
    probabilities = np.array([0.9, 0.99, 0.999])
    result = exceedance_ratios(sample(2 * x), sample(x), tuple(probabilities))
    # Seed-to-seed relative std at 2e5 values: 0.3%, 1%, 3.7%; tolerances are ~4-5x that.
    for value, p, rtol in zip(result.values, probabilities, (0.015, 0.05, 0.15), strict=True):
        assert value == pytest.approx((1 - p) ** -0.5, rel=rtol)


def test_log_density_distance_hand_computed() -> None:
    reference = sample(np.array([0.0, 1.0, 2.0, 3.0]))  # bins [0, 1.5), [1.5, 3]: 2, 2
    generated = sample(np.array([0.0, 0.0, 0.0, 5.0]))  # 3, 0 in range; 5 lies outside
    # p_ref = (1/2, 1/2); p_gen = (3/4, floor 0.5/4 = 1/8).
    expected = (abs(np.log10(0.75 / 0.5)) + abs(np.log10(0.125 / 0.5))) / 2
    assert float(log_density_distance(generated, reference, bins=2)) == pytest.approx(expected)
    assert float(log_density_distance(reference, reference, bins=2)) == 0.0


# --- Dask, dims and the bundle --------------------------------------------------------------


@pytest.fixture(scope="module")
def channels() -> tuple[xr.DataArray, xr.DataArray]:
    """(sample, channel) fields: Gaussian, Student-t(4) and exponential channels."""
    rng = np.random.default_rng(7)

    def draw(n: int) -> xr.DataArray:
        values = np.stack([rng.standard_normal(n), rng.standard_t(4, n),
                           rng.exponential(size=n)], axis=1)
        values[rng.random(values.shape) < 0.01] = np.nan
        return xr.DataArray(values, dims=("sample", "channel"),
                            coords={"channel": ["gaussian", "student", "exponential"]})

    return draw(12_000) * 1.2, draw(15_000)


@pytest.mark.parametrize("dims", [None, "sample"])
def test_dask_is_lazy_and_equals_numpy(channels: tuple, dims: str | None) -> None:
    generated, reference = channels
    eager = tail_scores(generated, reference, dims, tail="both")
    lazy_inputs = generated.chunk({"sample": 5000, "channel": 2}), reference.chunk({"sample": 4000})
    with dask.config.set(scheduler=raise_if_computed):
        lazy = tail_scores(*lazy_inputs, dims, tail="both")
    for name, variable in lazy.data_vars.items():
        assert isinstance(variable.data, da.Array), f"{name} is not Dask-backed"
        assert not isinstance(eager[name].data, da.Array), f"{name} should be NumPy-backed"
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-10)
    assert set(eager.data_vars) == {"kurtosis_ratio", "skewness_ratio", "tail_ks_statistic",
                                    "exceedance_ratio", "log_density_distance"}


def test_dims_keeps_the_other_dims(channels: tuple) -> None:
    generated, reference = channels
    scores = tail_scores(generated, reference, dims="sample")
    assert scores["kurtosis_ratio"].dims == ("channel",)
    assert scores["exceedance_ratio"].dims == ("channel", "quantile")
    assert list(scores["channel"].values) == ["gaussian", "student", "exponential"]
    for channel in scores["channel"].values:
        alone = tail_scores(generated.sel(channel=channel), reference.sel(channel=channel))
        xr.testing.assert_allclose(scores.sel(channel=channel), alone, rtol=1e-10)
    # The channels differ, so a per-channel score is not one broadcast number.
    assert np.ptp(scores["kurtosis_ratio"].values) > 0.1
    quantiles = histogram_quantile(reference.chunk({"sample": 4000}), [0.5, 0.99], dims="sample")
    assert quantiles.dims == ("channel", "quantile")
    expected = np.nanquantile(reference.values, [0.5, 0.99], axis=0).T
    np.testing.assert_array_equal(quantiles.compute(), expected)


# --- bad input -----------------------------------------------------------------------------


def test_missing_dims_are_rejected(channels: tuple) -> None:
    generated, reference = channels
    with pytest.raises(ValueError, match=r"reference lacks the reduction dims \['time'\]"):
        kurtosis_ratio(generated.rename(sample="time"), reference, dims="time")
    with pytest.raises(ValueError, match="dims kept after reducing"):
        skewness_ratio(generated, reference.isel(channel=slice(0, 2)), dims="sample")


def test_all_nan_is_rejected_eagerly_for_numpy_and_on_compute_for_dask() -> None:
    empty = sample(np.full(100, np.nan))
    fine = sample(np.arange(100.0))
    with pytest.raises(ValueError, match="reference holds only NaN"):
        exceedance_ratios(fine, empty)
    with pytest.raises(ValueError, match="generated holds only NaN"):
        kurtosis_ratio(empty, fine)
    lazy = tail_ks_statistic(empty.chunk(30), fine.chunk(30))
    with pytest.raises(ValueError, match="generated holds only NaN"):
        lazy.compute()


@pytest.mark.parametrize("quantile", [1.5, 0.0, 1.0, -0.1])
def test_quantiles_outside_the_open_unit_interval_are_rejected(quantile: float) -> None:
    data = sample(np.arange(10.0))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        tail_ks_statistic(data, data, quantile)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        exceedance_ratios(data, data, (0.9, quantile))


def test_unknown_tail_and_bad_bins_are_rejected() -> None:
    data = sample(np.arange(10.0))
    with pytest.raises(ValueError, match="tail must be 'upper', 'lower' or 'both'"):
        tail_ks_statistic(data, data, tail="left")
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        log_density_distance(data, data, bins=0)
