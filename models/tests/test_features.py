import math

import numpy as np
import pytest
import pywt

from wavelet_pipeline.data import load_builtin
from wavelet_pipeline.config import SPX_VOL_5D
from wavelet_pipeline.features import (
    ChannelParams,
    FeatureSpec,
    GarchParams,
    channel_series,
    log_returns,
    denoise_last,
    denoised_series,
    feature_matrix,
    features_at_end,
    lag_matrix,
    per_day_series,
)

SERIES_KINDS = ("log_return_pct", "squared_return_pct")
VOL = SPX_VOL_5D.features  # every channel: dn_sq, ret, wav_e1..4, wav_es, gjr_vol (5 days each)
GJR = GarchParams(omega=0.02, alpha=0.01, gamma=0.15, beta=0.88)
FITTED = ChannelParams(GJR)


@pytest.fixture(scope="module")
def crisis_prices() -> np.ndarray:
    """700 S&P 500 closes around 2008, where denoising has the most to do."""
    return load_builtin("sp500").close.to_numpy()[2000:2700]


def leaky_whole_series_features(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The published anti-pattern: denoise the whole series at once, then cut windows."""
    u = per_day_series(prices, spec)[1:]
    coeffs = pywt.wavedec(u, spec.wavelet, level=spec.levels)
    sigma = np.median(np.abs(coeffs[-1])) / 0.6745
    threshold = sigma * math.sqrt(2 * math.log(u.size))
    coeffs = [coeffs[0]] + [pywt.threshold(c, threshold, mode="soft") for c in coeffs[1:]]
    x = np.concatenate([[np.nan], pywt.waverec(coeffs, spec.wavelet)[: u.size]])
    return lag_matrix(x, spec.window)


@pytest.mark.parametrize("kind", SERIES_KINDS)
def test_prefix_invariance_for_600_days(crisis_prices: np.ndarray, kind: str) -> None:
    """Features computed on the series cut at t equal the features at t of the whole series."""
    spec = FeatureSpec(series=kind)
    full = feature_matrix(crisis_prices, spec)
    checked = 0
    for t in range(spec.min_prices - 1, crisis_prices.size, 1):
        prefix = feature_matrix(crisis_prices[: t + 1], spec)[-1]
        np.testing.assert_allclose(prefix, full[t], rtol=0, atol=1e-12)
        checked += 1
    assert checked >= 500


@pytest.mark.parametrize("kind", SERIES_KINDS)
def test_whole_series_denoising_fails_prefix_invariance(crisis_prices: np.ndarray, kind: str) -> None:
    """Negative control: the same check catches the leak of whole-series denoising."""
    spec = FeatureSpec(series=kind)
    full = leaky_whole_series_features(crisis_prices, spec)
    ts = range(100, crisis_prices.size - 1)
    differs = [
        not np.allclose(leaky_whole_series_features(crisis_prices[: t + 1], spec)[-1], full[t], rtol=0, atol=1e-9)
        for t in ts
    ]
    assert len(differs) >= 500
    assert np.mean(differs) > 0.75, "whole-series denoising should see the future on most days"


def test_features_from_the_last_min_prices_equal_full_history(crisis_prices: np.ndarray) -> None:
    spec = FeatureSpec()
    np.testing.assert_array_equal(features_at_end(crisis_prices, spec), feature_matrix(crisis_prices, spec)[-1])
    with pytest.raises(ValueError, match="need at least 42 prices"):
        features_at_end(crisis_prices[:41], spec)


def test_hand_checked_haar_window_mean() -> None:
    """u = [1, 3, 2, 6], one Haar level: details (−√2, −2√2) fall below the universal
    threshold 3.145·√(2 ln 4) ≈ 5.24, so the last value is the mean of the last pair, 4."""
    spec = FeatureSpec(trailing=4, levels=1, window=1)
    assert denoise_last(np.array([1.0, 3.0, 2.0, 6.0]), spec) == pytest.approx(4.0, abs=1e-12)


def test_hand_checked_spike_on_a_flat_window_survives() -> None:
    """Flat noise has MAD 0, so the threshold is 0 and the spike is reconstructed exactly."""
    spec = FeatureSpec(trailing=8, levels=1, window=1)
    assert denoise_last(np.array([0, 0, 0, 0, 0, 0, 0, 10.0]), spec) == pytest.approx(10.0, abs=1e-12)


def test_hand_checked_constant_and_trend() -> None:
    spec = FeatureSpec()
    flat = feature_matrix(np.full(60, 100.0), spec)
    np.testing.assert_array_equal(flat[-1], np.zeros(10))
    trend = feature_matrix(100 * 1.001 ** np.arange(60), spec)
    np.testing.assert_allclose(trend[-1], np.full(10, 100 * math.log(1.001)), rtol=1e-12)
    squared = feature_matrix(100 * 1.001 ** np.arange(60), FeatureSpec(series="squared_return_pct"))
    np.testing.assert_allclose(squared[-1], np.full(10, (100 * math.log(1.001)) ** 2), rtol=1e-12)


def test_feature_rows_are_oldest_first_and_nan_without_history() -> None:
    rows = lag_matrix(np.arange(5.0), 3)
    assert np.isnan(rows[1]).all()
    np.testing.assert_array_equal(rows[4], [2.0, 3.0, 4.0])


def test_denoised_series_starts_after_trailing_returns() -> None:
    spec = FeatureSpec()
    x = denoised_series(100 * 1.01 ** np.arange(40), spec)
    assert np.isnan(x[: spec.trailing]).all() and np.isfinite(x[spec.trailing :]).all()


def test_spec_rejects_windows_the_dwt_cannot_take() -> None:
    with pytest.raises(ValueError):
        FeatureSpec(trailing=24)
    with pytest.raises(ValueError):
        FeatureSpec(trailing=4, levels=3)


def test_names_match_window() -> None:
    assert FeatureSpec().names[0] == "dn_ret_lag9" and FeatureSpec().names[-1] == "dn_ret_lag0"
    assert len(FeatureSpec(series="squared_return_pct", window=5).names) == 5


def test_every_channel_is_prefix_invariant(crisis_prices: np.ndarray) -> None:
    """The volatility bundle's channels (signed returns, MODWT energies, the GJR forecast) at t
    come out the same from the series cut at t as from the whole series."""
    full = feature_matrix(crisis_prices, VOL, FITTED)
    checked = 0
    for t in range(VOL.min_prices - 1, crisis_prices.size, 7):
        np.testing.assert_allclose(feature_matrix(crisis_prices[: t + 1], VOL, FITTED)[-1], full[t], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(features_at_end(crisis_prices[: t + 1], VOL, FITTED), full[t])
        checked += 1
    assert checked >= 60
    assert np.isnan(full[VOL.min_prices - 2]).any() and not np.isnan(full[VOL.min_prices - 1]).any()


def test_channel_layout_and_history() -> None:
    assert VOL.channels == ["dn_sq", "ret", "wav_e1", "wav_e2", "wav_e3", "wav_e4", "wav_es", "gjr_vol"]
    assert len(VOL.names) == 8 * VOL.window and VOL.names[VOL.window] == f"ret_lag{VOL.window - 1}" and VOL.names[-1] == "gjr_vol_lag0"
    # Haar: level 4 spans 16 returns, averaged over 22 days; the GJR window is the longest.
    assert VOL.history("wav_e4") == 22 + 15 and VOL.min_prices == VOL.window + 256
    described = VOL.describe(FITTED)
    assert FeatureSpec.from_manifest(described) == (VOL, FITTED)
    with pytest.raises(ValueError):
        VOL.describe()


def test_hand_checked_haar_modwt_energies() -> None:
    """Haar MODWT: W₁ = (r_s − r_{s−1})/2, W₂ = (r_s + r_{s−1} − r_{s−2} − r_{s−3})/4, and the
    level-2 smooth is the mean of the last four returns; each energy averages its square."""
    rng = np.random.default_rng(5)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    spec = FeatureSpec(series="squared_return_pct", energy_levels=2, energy_span=5)
    series = channel_series(prices, spec)
    r = log_returns(prices)
    t = 59
    s = np.arange(t - 4, t + 1)
    assert series["wav_e1"][t] == pytest.approx(np.mean(((r[s] - r[s - 1]) / 2) ** 2), rel=1e-12)
    assert series["wav_e2"][t] == pytest.approx(np.mean(((r[s] + r[s - 1] - r[s - 2] - r[s - 3]) / 4) ** 2), rel=1e-12)
    assert series["wav_es"][t] == pytest.approx(np.mean(((r[s] + r[s - 1] + r[s - 2] + r[s - 3]) / 4) ** 2), rel=1e-12)
    # The first day with every return it needs: 5 days of level-2 coefficients, 4 returns each.
    assert np.isnan(series["wav_e2"][7]) and np.isfinite(series["wav_e2"][8])


def test_hand_checked_gjr_recursion() -> None:
    """Three returns (+1 %, −2 %, +0.5 %), trailing 3, a 2-day horizon, written out."""
    prices = 100 * np.exp(np.cumsum([0.0, 0.01, -0.02, 0.005]))
    spec = FeatureSpec(series="squared_return_pct", trailing=2, levels=1, garch_trailing=3, garch_horizon=2)
    r = [1.0, -2.0, 0.5]
    h = np.mean(np.square(r))
    for x in r:
        h = GJR.omega + (GJR.alpha + GJR.gamma * (x < 0)) * x * x + GJR.beta * h
    second = GJR.omega + (GJR.alpha + GJR.gamma / 2 + GJR.beta) * h
    got = channel_series(prices, spec, FITTED)["gjr_vol"]
    assert got[3] == pytest.approx(math.sqrt(h + second), rel=1e-9)
    assert np.isnan(got[:3]).all()
    # A fall moves it more than a rise of the same size (the leverage term).
    up = channel_series(100 * np.exp(np.cumsum([0.0, 0.01, 0.02, 0.005])), spec, FITTED)["gjr_vol"][3]
    assert got[3] > up
