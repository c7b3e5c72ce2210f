"""Ensemble Kalman analyses against the exact Kalman filter on a linear-Gaussian model.

The Kalman filter is written here in NumPy. The ETKF is exact for an ensemble whose
sample mean and covariance are the Kalman prior's; the EnKF converges to it as the
ensemble grows; the LETKF is the ETKF when nothing is localised and a per-point ETKF
with tapered error variances otherwise. Float64 is switched on only inside this module's
tests (``jax.enable_x64`` context), except where float32 is the point.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from assimilate.da.methods.enkf import enkf_analysis
from assimilate.da.methods.ensemble import gaspari_cohn, inflate, periodic_distance
from assimilate.da.methods.etkf import etkf_analysis
from assimilate.da.methods.letkf import Localisation, letkf_analysis

N_STATE = 5
OBSERVED = [0, 2, 3]  # H picks these state entries


@pytest.fixture(autouse=True)
def x64(request):
    """Float64 for the test (float32 where parametrised ``False``), restored after it."""
    enabled = getattr(request, "param", True)
    with jax.enable_x64(enabled):
        yield enabled


def linear_model(seed: int = 0) -> dict[str, np.ndarray]:
    """A random linear model M (spectral radius 0.97), Q, H on a subset, diagonal R."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((N_STATE, N_STATE))
    M *= 0.97 / np.abs(np.linalg.eigvals(M)).max()
    B = rng.standard_normal((N_STATE, N_STATE))
    H = np.eye(N_STATE)[OBSERVED]
    return {"M": M, "Q": 0.1 * B @ B.T / N_STATE, "H": H,
            "error_std": np.array([0.3, 0.5, 0.4]), "mean": rng.standard_normal(N_STATE),
            "cov": B @ B.T / N_STATE + 0.5 * np.eye(N_STATE)}


def kalman_analysis(mean, cov, H, error_std, y):
    """Exact Kalman update: mean + K (y − H mean), (I − K H) P, K = P Hᵀ (H P Hᵀ + R)^{-1}."""
    gain = np.linalg.solve(H @ cov @ H.T + np.diag(error_std**2), H @ cov).T
    return mean + gain @ (y - H @ mean), (np.eye(len(mean)) - gain @ H) @ cov


def exact_ensemble(rng, mean, cov, n_members: int) -> np.ndarray:
    """Members ``(N, n)`` whose sample mean and covariance are exactly ``mean``, ``cov``."""
    Z = rng.standard_normal((n_members, len(mean)))
    Z -= Z.mean(axis=0)
    Z = np.linalg.solve(np.linalg.cholesky(Z.T @ Z / (n_members - 1)), Z.T).T
    return mean + Z @ np.linalg.cholesky(cov).T


def moments(ensemble) -> tuple[np.ndarray, np.ndarray]:
    ensemble = np.asarray(ensemble)
    return ensemble.mean(axis=0), np.cov(ensemble, rowvar=False)


def observe(model, truth, rng) -> np.ndarray:
    return model["H"] @ truth + model["error_std"] * rng.standard_normal(len(OBSERVED))


# Localisation helpers.


def test_gaspari_cohn_is_one_at_zero_zero_beyond_support_and_continuous():
    r = jnp.linspace(0.0, 3.0, 3001)
    taper = np.asarray(gaspari_cohn(r))
    assert taper[0] == 1.0
    assert np.all(taper[r >= 2.0] == 0.0) and np.all(taper[(r > 0) & (r < 2.0)] > 0.0)
    assert np.all(np.diff(taper) <= 0.0)  # non-increasing
    for knot in (1.0, 2.0):
        left, right = gaspari_cohn(jnp.array([knot - 1e-9, knot + 1e-9]))
        assert abs(left - right) < 1e-8
    assert gaspari_cohn(1.0) == pytest.approx(5.0 / 24.0)
    assert gaspari_cohn(-0.5) == gaspari_cohn(0.5)


def test_periodic_distance_wraps_to_nearest_image():
    lengths = jnp.array([10.0, 4.0])
    assert periodic_distance(jnp.array([0.5, 0.0]), jnp.array([9.5, 0.0]), lengths) == 1.0
    # x: 3 apart (no wrap on 10); y: 3 apart wraps to 1 on 4
    assert periodic_distance(jnp.array([0.0, 0.5]), jnp.array([3.0, 3.5]), lengths) == (
        pytest.approx(np.sqrt(10.0)))
    assert periodic_distance(jnp.array([0.5]), jnp.array([9.5]), jnp.array([jnp.inf])) == 9.0
    grid = jnp.arange(8.0)[:, None]
    distances = periodic_distance(grid[:, None, :], grid[None, :, :], jnp.array([8.0]))
    assert distances.shape == (8, 8) and distances.max() == 4.0
    np.testing.assert_array_equal(distances, distances.T)


# ETKF: exact for exact moments.


@pytest.mark.parametrize("inflation", [1.0, 1.3])
def test_etkf_equals_kalman_for_an_ensemble_with_the_prior_moments(inflation):
    model, rng = linear_model(), np.random.default_rng(1)
    E = exact_ensemble(rng, model["mean"], model["cov"], n_members=8)
    y = observe(model, model["mean"], rng)
    analysis = etkf_analysis(E, E @ model["H"].T, y, model["error_std"], inflation)
    mean, cov = kalman_analysis(model["mean"], inflation**2 * model["cov"], model["H"],
                                model["error_std"], y)
    analysis_mean, analysis_cov = moments(analysis)
    np.testing.assert_allclose(analysis_mean, mean, atol=1e-10)
    np.testing.assert_allclose(analysis_cov, cov, atol=1e-10)


@pytest.mark.parametrize("n_members", [4, 12])  # m = 6: Gram matrix in ensemble / obs space
def test_etkf_is_the_kalman_update_of_the_sample_moments(n_members):
    rng = np.random.default_rng(10)
    E = rng.standard_normal((n_members, 8))
    H = rng.standard_normal((6, 8))
    y, error_std = rng.standard_normal(6), rng.uniform(0.2, 1.0, 6)
    mean, cov = kalman_analysis(*moments(E), H, error_std, y)
    analysis_mean, analysis_cov = moments(etkf_analysis(E, E @ H.T, y, error_std))
    np.testing.assert_allclose(analysis_mean, mean, atol=1e-10)
    np.testing.assert_allclose(analysis_cov, cov, atol=1e-10)


def test_etkf_tracks_kalman_with_deterministic_linear_forecast():
    model, rng = linear_model(), np.random.default_rng(2)
    E = exact_ensemble(rng, model["mean"], model["cov"], n_members=7)
    mean, cov, truth = model["mean"], model["cov"], rng.standard_normal(N_STATE)
    for _ in range(10):
        truth = model["M"] @ truth
        E, mean, cov = E @ model["M"].T, model["M"] @ mean, model["M"] @ cov @ model["M"].T
        y = observe(model, truth, rng)
        E = np.asarray(etkf_analysis(E, E @ model["H"].T, y, model["error_std"]))
        mean, cov = kalman_analysis(mean, cov, model["H"], model["error_std"], y)
        np.testing.assert_allclose(moments(E)[0], mean, atol=1e-8)
        np.testing.assert_allclose(moments(E)[1], cov, atol=1e-8)


def test_etkf_tracks_kalman_with_process_noise_and_exact_resampling():
    model, rng = linear_model(3), np.random.default_rng(3)
    mean, cov, truth = model["mean"], model["cov"], rng.standard_normal(N_STATE)
    ensemble_mean, ensemble_cov = mean, cov
    for _ in range(10):
        truth = model["M"] @ truth + rng.multivariate_normal(np.zeros(N_STATE), model["Q"])
        y = observe(model, truth, rng)
        forecast_cov = model["M"] @ ensemble_cov @ model["M"].T + model["Q"]
        E = exact_ensemble(rng, model["M"] @ ensemble_mean, forecast_cov, n_members=9)
        ensemble_mean, ensemble_cov = moments(
            etkf_analysis(E, E @ model["H"].T, y, model["error_std"]))
        mean, cov = kalman_analysis(model["M"] @ mean, model["M"] @ cov @ model["M"].T
                                    + model["Q"], model["H"], model["error_std"], y)
        np.testing.assert_allclose(ensemble_mean, mean, atol=1e-8)
        np.testing.assert_allclose(ensemble_cov, cov, atol=1e-8)


# EnKF: converges to the Kalman filter.


def enkf_errors(n_members: int, seeds: range) -> tuple[float, float]:
    """Mean over seeds of the analysis mean and covariance errors against Kalman."""
    model = linear_model()
    mean, cov = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        E = rng.multivariate_normal(model["mean"], model["cov"], size=n_members)
        y = observe(model, model["mean"], rng)
        analysis = enkf_analysis(jax.random.key(seed), E, E @ model["H"].T, y,
                                 model["error_std"])
        exact_mean, exact_cov = kalman_analysis(model["mean"], model["cov"], model["H"],
                                                model["error_std"], y)
        analysis_mean, analysis_cov = moments(analysis)
        mean.append(np.linalg.norm(analysis_mean - exact_mean))
        cov.append(np.linalg.norm(analysis_cov - exact_cov) / np.linalg.norm(exact_cov))
    return float(np.mean(mean)), float(np.mean(cov))


def test_enkf_converges_to_kalman_like_one_over_root_n():
    small_mean, small_cov = enkf_errors(100, range(6))
    large_mean, large_cov = enkf_errors(10_000, range(6))
    assert large_mean < 0.03 and large_cov < 0.03
    # 100 times the members: errors about 10 times smaller (a factor 3 leaves room for noise)
    assert small_mean > 3 * large_mean and small_cov > 3 * large_cov


@pytest.mark.parametrize("x64", [True, False], indirect=True, ids=["float64", "float32"])
@pytest.mark.parametrize("n_members", [4, 12])  # m = 6 observations: ensemble / obs space
def test_enkf_is_the_perturbed_observation_update(n_members, x64):
    rng, key = np.random.default_rng(4), jax.random.key(4)
    dtype = np.float64 if x64 else np.float32
    E = rng.standard_normal((n_members, 8)).astype(dtype)
    H = rng.standard_normal((6, 8)).astype(dtype)
    y, error_std = rng.standard_normal(6).astype(dtype), rng.uniform(0.2, 1.0, 6).astype(dtype)
    analysis = enkf_analysis(key, E, E @ H.T, y, error_std, centred=False)
    assert analysis.dtype == dtype
    # the documented perturbations, then the textbook n-space update with the sample gain
    perturbed = y + error_std * np.asarray(jax.random.normal(key, (n_members, 6), dtype))
    E, H, y, error_std, perturbed = (np.float64(a) for a in (E, H, y, error_std, perturbed))
    P = np.cov(E, rowvar=False)
    gain = np.linalg.solve(H @ P @ H.T + np.diag(error_std**2), H @ P).T
    np.testing.assert_allclose(analysis, E + (perturbed - E @ H.T) @ gain.T,
                               atol=1e-10 if x64 else 1e-4)


def test_enkf_centred_perturbations_keep_the_mean_update_exact():
    model, rng = linear_model(), np.random.default_rng(5)
    E = exact_ensemble(rng, model["mean"], model["cov"], n_members=30)
    y = observe(model, model["mean"], rng)
    analysis = enkf_analysis(jax.random.key(5), E, E @ model["H"].T, y, model["error_std"])
    exact_mean, _ = kalman_analysis(model["mean"], model["cov"], model["H"],
                                    model["error_std"], y)
    np.testing.assert_allclose(moments(analysis)[0], exact_mean, atol=1e-10)


# LETKF.


def periodic_problem(n: int = 16, n_members: int = 6, seed: int = 6) -> dict:
    """A 1-D periodic grid of spacing 1 observed at every 4th point."""
    rng = np.random.default_rng(seed)
    sites = np.arange(0, n, 4)
    E = rng.standard_normal((n_members, n)).cumsum(axis=1)  # spatially correlated members
    return {"ensemble": E, "observed": E[:, sites], "y": rng.standard_normal(len(sites)),
            "error_std": np.full(len(sites), 0.5), "grid": np.arange(n, dtype=float)[:, None],
            "sites": sites, "lengths": np.array([float(n)])}


def letkf(problem: dict, radius: float, inflation: float = 1.0, **options) -> jax.Array:
    p = problem
    return letkf_analysis(p["ensemble"], p["observed"], p["y"], p["error_std"], inflation,
                          localisation=Localisation(p["grid"], p["grid"][p["sites"]],
                                                    p["lengths"], radius, **options))


def test_letkf_with_infinite_radius_equals_etkf():
    p = periodic_problem()
    etkf = etkf_analysis(p["ensemble"], p["observed"], p["y"], p["error_std"], 1.1)
    np.testing.assert_allclose(letkf(p, jnp.inf, inflation=1.1), etkf, atol=1e-10)


def test_letkf_on_a_2d_grid_with_infinite_radius_equals_etkf():
    rng = np.random.default_rng(7)
    grid = np.stack(np.meshgrid(np.arange(6.0), np.arange(5.0), indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    E = rng.standard_normal((8, len(grid)))
    sites = np.arange(0, len(grid), 3)
    y, error_std = rng.standard_normal(len(sites)), np.full(len(sites), 0.7)
    analysis = letkf_analysis(E, E[:, sites], y, error_std, localisation=Localisation(
        grid, grid[sites] + 0.25, np.array([6.0, 5.0]), np.inf))
    np.testing.assert_allclose(analysis, etkf_analysis(E, E[:, sites], y, error_std),
                               atol=1e-10)


def test_letkf_is_a_per_point_etkf_with_tapered_error_variances():
    p, radius = periodic_problem(), 2.5
    analysis = np.asarray(letkf(p, radius))
    for g in range(len(p["grid"])):
        taper = np.asarray(gaspari_cohn(np.asarray(periodic_distance(
            p["grid"][g], p["grid"][p["sites"]], p["lengths"])) / radius))
        # taper 0 is an infinite error variance: a missing observation
        y = np.where(taper > 0, p["y"], np.nan)
        error_std = p["error_std"] / np.sqrt(np.where(taper > 0, taper, 1.0))
        local = etkf_analysis(p["ensemble"][:, [g]], p["observed"], y, error_std)
        np.testing.assert_allclose(analysis[:, g], local[:, 0], atol=1e-10)


def test_letkf_leaves_points_beyond_the_support_unchanged():
    p, radius = periodic_problem(), 0.75  # support 1.5: only the points next to a site
    analysis = np.asarray(letkf(p, radius))
    distance_to_sites = np.min(np.abs((p["grid"] - p["sites"] + 8) % 16 - 8), axis=1)
    far = distance_to_sites >= 2 * radius
    assert far.sum() == 4 and (~far).sum() == 12  # the points midway between sites
    np.testing.assert_allclose(analysis[:, far], p["ensemble"][:, far], atol=1e-12)
    assert np.all(np.abs(analysis[:, ~far] - p["ensemble"][:, ~far]).max(axis=0) > 1e-3)


def test_letkf_with_enough_nearest_observations_equals_all_of_them():
    p = periodic_problem()  # with support 6, no point has more than 3 sites closer than 6
    full = letkf(p, 3.0)
    np.testing.assert_allclose(letkf(p, 3.0, nearest=3), full, atol=1e-12)
    assert np.abs(letkf(p, 3.0, nearest=1) - full).max() > 1e-3


def test_letkf_in_chunks_equals_all_points_at_once():
    p = periodic_problem()
    np.testing.assert_allclose(letkf(p, 3.0, batch_size=5), letkf(p, 3.0), atol=1e-12)


# Missing observations, inflation, precision, compilation.


def drop(problem: dict, index: int) -> dict:
    keep = np.delete(np.arange(len(problem["y"])), index)
    return problem | {k: problem[k][..., keep] for k in ("observed", "y", "error_std")} | {
        "sites": problem["sites"][keep]}


@pytest.mark.parametrize("method", ["etkf", "letkf"])
def test_nan_observation_equals_removing_it(method):
    p = periodic_problem()
    with_nan = p | {"y": p["y"].copy()}
    with_nan["y"][1] = np.nan

    def analyse(q):
        if method == "letkf":
            return letkf(q, 4.0)
        return etkf_analysis(q["ensemble"], q["observed"], q["y"], q["error_std"])

    np.testing.assert_allclose(analyse(with_nan), analyse(drop(p, 1)), atol=1e-12)
    assert np.all(np.isfinite(analyse(with_nan)))


def test_enkf_nan_observation_equals_infinite_error_variance():
    p, key = periodic_problem(), jax.random.key(8)
    y, huge = p["y"].copy(), p["error_std"].copy()
    y[2], huge[2] = np.nan, 1e15
    with_nan = enkf_analysis(key, p["ensemble"], p["observed"], y, p["error_std"])
    with_huge = enkf_analysis(key, p["ensemble"], p["observed"], p["y"], huge)
    assert np.all(np.isfinite(with_nan))
    np.testing.assert_allclose(with_nan, with_huge, atol=1e-10)


def analyses(inflation: float | None) -> dict[str, jax.Array]:
    p = periodic_problem()
    args = (p["ensemble"], p["observed"], p["y"], p["error_std"])
    extra = () if inflation is None else (inflation,)
    return {"enkf": enkf_analysis(jax.random.key(9), *args, *extra),
            "etkf": etkf_analysis(*args, *extra),
            "letkf": letkf(p, 3.0, **({} if inflation is None else {"inflation": inflation}))}


def test_inflation_one_is_no_inflation():
    E = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(inflate(E, 1.0), E)
    default, one = analyses(None), analyses(1.0)
    for name in default:
        np.testing.assert_array_equal(default[name], one[name], err_msg=name)


def test_inflation_increases_the_analysis_spread():
    spreads = [{name: float(np.asarray(a).std(axis=0, ddof=1).mean())
                for name, a in analyses(inflation).items()} for inflation in (1.0, 1.1, 1.3)]
    for name in spreads[0]:
        assert spreads[0][name] < spreads[1][name] < spreads[2][name], name


def test_float32_inputs_give_float32_analyses_close_to_float64():
    p = periodic_problem()  # the EnKF's float32 draws differ: it is checked above
    exact = {k: np.asarray(v) for k, v in analyses(1.05).items()}
    with jax.enable_x64(False):
        p32 = {k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype == float
               else v for k, v in p.items()}
        args = (p32["ensemble"], p32["observed"], p32["y"], p32["error_std"], 1.05)
        single = {"etkf": etkf_analysis(*args), "letkf": letkf(p32, 3.0, inflation=1.05)}
        for name, analysis in single.items():
            assert analysis.dtype == jnp.float32, name
            np.testing.assert_allclose(analysis, exact[name], atol=1e-4, err_msg=name)


def test_analyses_compile_with_traced_inflation_and_radius():
    p = periodic_problem()
    args = (p["ensemble"], p["observed"], p["y"], p["error_std"], 1.2)
    etkf = jax.jit(etkf_analysis)
    enkf = jax.jit(enkf_analysis, static_argnames="centred")
    local = jax.jit(letkf_analysis)
    np.testing.assert_allclose(etkf(*args), etkf_analysis(*args), atol=1e-12)
    np.testing.assert_allclose(enkf(jax.random.key(0), *args, centred=False),
                               enkf_analysis(jax.random.key(0), *args, centred=False),
                               atol=1e-12)
    localisation = Localisation(p["grid"], p["grid"][p["sites"]], p["lengths"], 3.0,
                                batch_size=4)  # radius traced, batch_size static
    np.testing.assert_allclose(local(*args, localisation=localisation),
                               letkf(p, 3.0, inflation=1.2), atol=1e-12)


def test_shape_errors_name_the_function_and_the_expected_shapes():
    with pytest.raises(ValueError, match=r"etkf_analysis: .*expected ensemble \(N, n\)"):
        etkf_analysis(np.zeros((4, 3)), np.zeros((5, 2)), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="letkf_analysis: grid_locations"):
        letkf_analysis(np.zeros((4, 3)), np.zeros((4, 2)), np.zeros(2), np.ones(2),
                       localisation=Localisation(np.zeros((3, 1)), np.zeros((2, 2)),
                                                 np.ones(1), 1.0))


def test_letkf_weight_interpolation_is_exact_on_its_coarse_points_and_close_between():
    p = periodic_problem(n=16)
    full, coarse = np.asarray(letkf(p, 6.0)), np.asarray(
        letkf(p, 6.0, stride=4, grid_shape=(16,)))
    np.testing.assert_allclose(coarse[:, ::4], full[:, ::4], atol=1e-10)
    between = np.abs(coarse - full).max() / np.abs(full - p["ensemble"]).max()
    assert 0 < between < 0.2  # interpolated, not exact, and small beside the increment
    np.testing.assert_allclose(letkf(p, jnp.inf, stride=2, grid_shape=(16,)),
                               letkf(p, jnp.inf), atol=1e-10)  # constant weights: exact
    with pytest.raises(ValueError, match="stride=3 needs grid_shape"):
        letkf(p, 6.0, stride=3, grid_shape=(16,))


# Rotation and analysis-side inflation (DAPPER's ``rot`` and ``infl``).


@pytest.mark.parametrize("n_members", [2, 5, 20])
def test_mean_preserving_rotation_is_orthogonal_keeps_the_ones_and_averages_to_them(n_members):
    from assimilate.da.methods.ensemble import mean_preserving_rotation

    gaussian = np.random.default_rng(0).standard_normal((2000, n_members - 1, n_members - 1))
    rotations = np.asarray(jax.vmap(mean_preserving_rotation)(gaussian))
    eye, ones = np.eye(n_members), np.ones(n_members)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1),
                               np.broadcast_to(eye, rotations.shape), atol=1e-10)
    np.testing.assert_allclose(rotations @ ones, np.broadcast_to(ones, (2000, n_members)),
                               atol=1e-10)
    # Haar on the complement of 1: the rotations average to the projection onto 1
    np.testing.assert_allclose(rotations.mean(axis=0), np.full_like(eye, 1 / n_members),
                               atol=0.08)
    assert n_members == 2 or np.abs(rotations[0] - rotations[1]).max() > 0.1


@pytest.mark.parametrize("rotate", [False, True])
def test_post_process_keeps_the_mean_and_scales_the_covariance(rotate):
    from assimilate.da.methods.ensemble import post_process

    rng = np.random.default_rng(1)
    ensembles = rng.standard_normal((3, 7, 11))
    gaussian = rng.standard_normal((3, 6, 6)) if rotate else None
    result = np.asarray(post_process(ensembles, 1.1, gaussian))
    np.testing.assert_allclose(result.mean(axis=1), ensembles.mean(axis=1), atol=1e-12)
    for before, after in zip(ensembles, result, strict=True):
        np.testing.assert_allclose(np.cov(after, rowvar=False),
                                   1.21 * np.cov(before, rowvar=False), atol=1e-10)
    assert rotate == (np.abs(result - ensembles.mean(axis=1, keepdims=True)
                             - 1.1 * (ensembles - ensembles.mean(axis=1, keepdims=True))
                             ).max() > 1e-3)
