import math

import numpy as np
import pytest

from wavelet_pipeline.data import load_builtin
from wavelet_pipeline.features import lag_matrix, log_returns
from wavelet_pipeline.ranges import (
    Bars,
    daily_variances,
    garman_klass,
    overnight_gap,
    parkinson,
    range_features,
    rogers_satchell,
    yang_zhang,
    yang_zhang_k,
)


# One bar, O 100, H 102, L 99, C 101.5 after a close of 100.25. Expected values worked out
# with 40-digit decimals from the textbook formulas (times 100² for percent²).
BAR = {"open": 100.0, "high": 102.0, "low": 99.0, "close": 101.5}
PREVIOUS_CLOSE = 100.25


def one(fn, *names: str) -> float:
    return float(fn(*(np.array([BAR[n]]) for n in names))[0])


def test_hand_checked_estimators_on_one_bar() -> None:
    assert one(parkinson, "high", "low") == pytest.approx(3.214322418855844709, rel=1e-12)
    assert one(garman_klass, "open", "high", "low", "close") == pytest.approx(3.599695313006968544, rel=1e-12)
    assert one(rogers_satchell, "open", "high", "low", "close") == pytest.approx(3.479552103834210777, rel=1e-12)
    gap = overnight_gap(np.array([99.0, BAR["open"]]), np.array([PREVIOUS_CLOSE, BAR["close"]]))
    assert np.isnan(gap[0]) and gap[1] == pytest.approx(0.06234410726096850216, rel=1e-12)


def test_hand_checked_estimators_on_round_logs() -> None:
    """ln H − ln L = 0.03 and ln C − ln O = 0.01: Parkinson 9/(4 ln 2), Garman–Klass
    4.5 − (2 ln 2 − 1), Rogers–Satchell 0.01·0.02 + (−0.02)(−0.01) = 4 (in 1e-4 units)."""
    o, h, l, c = (np.exp([x]) for x in (0.0, 0.02, -0.01, 0.01))
    assert parkinson(h, l)[0] == pytest.approx(3.246063842000167667, rel=1e-12)
    assert garman_klass(o, h, l, c)[0] == pytest.approx(4.113705638880109381, rel=1e-12)
    assert rogers_satchell(o, h, l, c)[0] == pytest.approx(4.0, rel=1e-12)


def test_flat_and_one_way_days() -> None:
    flat = np.array([50.0])
    assert parkinson(flat, flat)[0] == 0.0
    assert garman_klass(flat, flat, flat, flat)[0] == 0.0 and rogers_satchell(flat, flat, flat, flat)[0] == 0.0
    # Open at the high, close at the low: Rogers–Satchell is exactly 0 (each product has a
    # zero factor), Garman–Klass (½ − (2 ln 2 − 1))·(ln H/L)².
    o, h, l, c = np.array([102.0]), np.array([102.0]), np.array([99.0]), np.array([99.0])
    assert rogers_satchell(o, h, l, c)[0] == 0.0
    hl2 = 1e4 * math.log(102 / 99) ** 2
    assert garman_klass(o, h, l, c)[0] == pytest.approx((0.5 - (2 * math.log(2) - 1)) * hl2, rel=1e-12)


def test_hand_checked_yang_zhang_over_two_days() -> None:
    """Log prices: close 0, then (o, h, l, c) = (.01, .03, 0, .02) and (.01, .02, −.02, −.01).
    Overnight returns .01, −.01 (sample variance .0002), open-to-close .01, −.02 (.00045),
    Rogers–Satchell .0004 and .0006 (mean .0005), k = .34/4.34:
    1e4·(.0002 + .00045 k + .0005 (1 − k)) = 7 − .17/4.34."""
    logs = np.array([[0.0, 0.0, 0.0, 0.0], [0.01, 0.03, 0.0, 0.02], [0.01, 0.02, -0.02, -0.01]])
    o, h, l, c = np.exp(logs).T
    yz = yang_zhang(Bars(high=h, low=l, close=c, open=o), 2)
    assert yang_zhang_k(2) == pytest.approx(0.34 / 4.34, rel=1e-15)
    assert np.isnan(yz[:2]).all() and yz[2] == pytest.approx(6.960829493087557604, rel=1e-12)
    with pytest.raises(ValueError):
        yang_zhang_k(1)


def test_stale_opens_fall_back_to_parkinson() -> None:
    o, h, l, c = (np.exp(np.array(x)) for x in ([0.0, 0.0, 0.02, 0.01], [0.01, 0.03, 0.04, 0.03], [-0.01, -0.02, 0.0, -0.01], [0.0, 0.01, 0.02, 0.0]))
    stale = np.array([False, True, False, False])
    daily = daily_variances(Bars(high=h, low=l, close=c, open=o, stale_open=stale))
    assert daily["garman_klass"][1] == daily["parkinson"][1] and daily["rogers_satchell"][1] == daily["parkinson"][1]
    assert daily["garman_klass"][2] == pytest.approx(garman_klass(o, h, l, c)[2], rel=0)
    assert np.isnan(daily["overnight"][[0, 1]]).all() and daily["overnight"][2] == pytest.approx(1e4 * 0.01**2, rel=1e-12)
    yz = yang_zhang(Bars(high=h, low=l, close=c, open=o, stale_open=stale), 2)
    assert np.isnan(yz[2]) and np.isfinite(yz[3])  # the window holding day 1 is unknown
    closes_only = daily_variances(Bars(high=h, low=l, close=c))
    assert list(closes_only) == ["parkinson"]


def test_aggregates_are_trailing_means() -> None:
    rng = np.random.default_rng(3)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 40)))
    h, l = c * 1.01, c * 0.985
    o = np.r_[100.0, c[:-1]] * 1.001
    bars = Bars(high=h, low=l, close=c, open=o)
    feats = range_features(bars, levels=2)
    pk = parkinson(h, l)
    assert feats["parkinson_1d"][30] == pk[30]
    assert feats["parkinson_5d"][30] == pytest.approx(pk[26:31].mean(), rel=1e-12)
    assert feats["garman_klass_22d"][30] == pytest.approx(garman_klass(o, h, l, c)[9:31].mean(), rel=1e-12)
    assert np.isnan(feats["parkinson_22d"][20]) and np.isfinite(feats["parkinson_22d"][21])
    # Haar MODWT of the daily values: W1 = (x_t − x_{t−1})/2, the level-2 smooth the mean of four.
    assert feats["parkinson_w1"][30] == pytest.approx((pk[30] - pk[29]) / 2, rel=1e-12)
    assert feats["parkinson_v2"][30] == pytest.approx(pk[27:31].mean(), rel=1e-12)


def simulate(seed: int, days: int, steps: int, coarse_every: int, day_pct: float, night_pct: float) -> tuple[Bars, Bars]:
    """Driftless log prices: an overnight N(0, night²) gap, then a Brownian session of `steps`
    increments with variance day² in all. The bars' high and low come from every step, and
    for the second set from every `coarse_every`-th step only (the close is the same)."""
    rng = np.random.default_rng(seed)
    session = np.cumsum(rng.standard_normal((days, steps)) * (day_pct / 100 / math.sqrt(steps)), axis=1)
    gaps = rng.standard_normal(days) * (night_pct / 100)
    opens = np.cumsum(gaps + np.r_[0.0, session[:-1, -1]])
    close = opens + session[:, -1]

    def bars(path: np.ndarray) -> Bars:
        high = opens + np.maximum(path.max(axis=1), 0.0)
        low = opens + np.minimum(path.min(axis=1), 0.0)
        return Bars(high=np.exp(high), low=np.exp(low), close=np.exp(close), open=np.exp(opens))

    return bars(session), bars(session[:, coarse_every - 1 :: coarse_every])


@pytest.fixture(scope="module")
def simulated() -> tuple[Bars, Bars]:
    """4000 days of 3900 steps (ten a minute) and the same paths seen once a minute."""
    return simulate(24, 4000, 3900, 10, day_pct=1.0, night_pct=0.5)


def relative_variance(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.var(x) / np.mean(x) ** 2)


def test_estimators_are_unbiased_and_efficient_on_brownian_paths(simulated: tuple[Bars, Bars]) -> None:
    """Each estimator's mean is the variance it targets (session 1 %², night 0.25 %²,
    close to close 1.25 %² for Yang–Zhang), and the range estimators vary far less, relative
    to their mean, than the squared close-to-close return (literature: Parkinson 4.9×,
    Garman–Klass 7.4×, Rogers–Satchell 6×; here the discrete path lowers them a little)."""
    fine, coarse = simulated
    daily = {k: v[1:] for k, v in daily_variances(fine).items()}
    true = {"parkinson": 1.0, "garman_klass": 1.0, "rogers_satchell": 1.0, "overnight": 0.25}
    for name, value in daily.items():
        assert np.mean(value) == pytest.approx(true[name], rel=0.05), name
    squared = log_returns(fine.close)[1:] ** 2
    assert np.mean(squared) == pytest.approx(1.25, rel=0.05)
    efficiency = {k: relative_variance(squared) / relative_variance(daily[k]) for k in ("parkinson", "garman_klass", "rogers_satchell")}
    assert efficiency["parkinson"] > 4 and efficiency["garman_klass"] > 6 and efficiency["rogers_satchell"] > 4.5
    assert efficiency["garman_klass"] > efficiency["rogers_satchell"] > efficiency["parkinson"]
    # Yang–Zhang over 22 days against the sample variance of the same 22 close-to-close returns,
    # on non-overlapping windows.
    days = np.arange(22, fine.close.size, 22)
    yz = yang_zhang(fine, 22)[days]
    sample = np.var(lag_matrix(log_returns(fine.close), 22), axis=1, ddof=1)[days]
    assert np.mean(yz) == pytest.approx(1.25, rel=0.05)
    assert relative_variance(sample) / relative_variance(yz) > 5
    # A high and low seen once a minute miss part of the range: the estimators read low.
    for name in ("parkinson", "garman_klass"):
        assert np.mean(daily_variances(coarse)[name][1:]) < 0.97 * np.mean(daily[name])


@pytest.mark.parametrize("name", ["sp500", "nasdaq"])
def test_range_features_are_prefix_invariant(name: str) -> None:
    """Leakage test on O/H/L: every range channel at t from the bars cut at t equals its value
    at t from all the bars (700 days around 2008, every 7th day; with sp500's stale opens)."""
    window = Bars.from_series(load_builtin(name))[2000:2700]
    full = range_features(window, levels=4)
    assert len(full) == 4 * (3 + 5) + 2
    checked = 0
    for t in range(60, window.close.size, 7):
        cut = range_features(window[: t + 1], levels=4)
        for key, values in full.items():
            np.testing.assert_allclose(cut[key][-1], values[t], rtol=0, atol=1e-12, err_msg=key)
        checked += 1
    assert checked >= 90
    assert all(np.isfinite(v[100:]).all() or k.startswith(("overnight", "yang_zhang")) for k, v in full.items())


# --- the feature channels (features-spec v2: rng_*, gjrx_vol) and the range baselines --------

from wavelet_pipeline import baselines  # noqa: E402
from wavelet_pipeline.features import ChannelParams, FeatureSpec, GarchParams, channel_series, feature_matrix, features_at_end  # noqa: E402
from wavelet_pipeline.ranges import LOG_FLOOR, GarchXParams, daily_estimator, gjrx_volatility, range_channels  # noqa: E402

GJRX = GarchXParams(omega=0.01, alpha=0.02, gamma=0.1, beta=0.85, delta=0.08, kappa=0.75, span=2)


def test_daily_estimator_is_garman_klass_where_the_open_is_real() -> None:
    """Day 1's open repeats day 0's close: Parkinson there; Garman–Klass on days 0 and 2."""
    o, h, l, c = (np.array(x) for x in ([100.0, 101.0, 101.5], [101.5, 102.0, 103.0], [99.5, 100.0, 100.5], [101.0, 101.2, 102.0]))
    bars = Bars(high=h, low=l, close=c, open=o)
    e = daily_estimator(bars, "garman_klass")
    assert e[1] == parkinson(h, l)[1]
    assert e[[0, 2]] == pytest.approx(garman_klass(o, h, l, c)[[0, 2]], rel=0)
    assert (daily_estimator(bars, "parkinson") == parkinson(h, l)).all()
    with pytest.raises(ValueError, match="opens"):
        daily_estimator(Bars(high=h, low=l, close=c), "garman_klass")


def test_range_channels_by_hand() -> None:
    """rng_<n>d is ln of the n-day mean; a flat day's zero range is floored; the haar MODWT of
    ln e: W₁ = (x_t − x_{t−1})/2, V₂ = mean of four."""
    e = np.array([1.0, 4.0, 0.0, 2.0, 3.0, 5.0])
    ch = range_channels(e, (1, 3), "haar", 2)
    assert list(ch) == ["rng_1d", "rng_3d", "rng_w1", "rng_w2", "rng_v2"]
    assert ch["rng_1d"][2] == math.log(LOG_FLOOR) and ch["rng_1d"][4] == math.log(3.0)
    assert np.isnan(ch["rng_3d"][1]) and ch["rng_3d"][3] == pytest.approx(math.log(2.0), rel=1e-15)
    x = np.log(np.maximum(e, LOG_FLOOR))
    assert ch["rng_w1"][5] == pytest.approx((x[5] - x[4]) / 2, rel=1e-14)
    assert ch["rng_w2"][5] == pytest.approx((x[5] + x[4] - x[3] - x[2]) / 4, rel=1e-14)
    assert ch["rng_v2"][5] == pytest.approx(x[2:6].mean(), rel=1e-14) and np.isnan(ch["rng_v2"][2])


def gjrx_by_hand(r: list[float], e: list[float], p: GarchXParams, horizon: int) -> float:
    """The contract's recursion, one day: r and e end at t (e has span − 1 more days before)."""
    x = [np.mean(e[i : i + p.span]) for i in range(len(r))]
    h = np.mean(np.square(r))
    for rs, xs in zip(r, x):
        h = p.omega + (p.alpha + p.gamma * (rs < 0)) * rs * rs + p.beta * h + p.delta * xs
    future, total = list(e[len(e) - p.span + 1 :]), 0.0
    for k in range(1, horizon + 1):
        total += h
        if k < horizon:
            future.append(p.kappa * h)
            h = p.omega + (p.alpha + p.gamma / 2 + p.beta) * h + p.delta * np.mean(future[-p.span :])
    return math.sqrt(total)


def test_gjrx_channel_by_hand_and_without_its_range_term() -> None:
    rng = np.random.default_rng(8)
    r, e = rng.normal(0, 1.2, 30), rng.gamma(2.0, 0.6, 30)
    got = gjrx_volatility(r, e, GJRX, trailing=4, horizon=3)
    assert np.isnan(got[:4]).all()  # day 4 is the first with 4 returns and their x (span 2: e from day 0)
    for t in (4, 17, 29):
        assert got[t] == pytest.approx(gjrx_by_hand(list(r[t - 3 : t + 1]), list(e[t - 4 : t + 1]), GJRX, 3), rel=1e-13)
    # δ = 0 and a one-day span: exactly the GJR channel on the same returns.
    prices = 100 * np.exp(np.cumsum(np.r_[0.0, r[1:] / 100]))
    spec = FeatureSpec(series="squared_return_pct", trailing=2, levels=1, garch_trailing=5, garch_horizon=3)
    gjr = GarchParams(omega=0.01, alpha=0.02, gamma=0.1, beta=0.85)
    no_range = GarchXParams(omega=0.01, alpha=0.02, gamma=0.1, beta=0.85, delta=0.0, kappa=0.75, span=1)
    from wavelet_pipeline.features import log_returns as returns_of

    np.testing.assert_allclose(gjrx_volatility(returns_of(prices), e, no_range, 5, 3), channel_series(prices, spec, ChannelParams(gjr))["gjr_vol"], rtol=1e-14)


RANGE_SPEC = FeatureSpec(series="squared_return_pct", window=5, signed_returns=True, energy_levels=2, garch_trailing=60,
                         garch_horizon=5, range_estimator="garman_klass", range_spans=(1, 5, 22), range_levels=3, garchx_span=5)


def test_range_spec_layout_inputs_and_refusals() -> None:
    assert RANGE_SPEC.channels[-9:] == ["rng_1d", "rng_5d", "rng_22d", "rng_w1", "rng_w2", "rng_w3", "rng_v3", "gjr_vol", "gjrx_vol"]
    assert RANGE_SPEC.inputs == ("open", "high", "low", "close") and FeatureSpec().inputs == ("close",)
    assert RANGE_SPEC.history("gjrx_vol") == 64 and RANGE_SPEC.history("rng_w3") == 8 and RANGE_SPEC.history("rng_22d") == 22
    fitted = ChannelParams(GarchParams(0.02, 0.01, 0.15, 0.88), GJRX)
    assert FeatureSpec.from_manifest(RANGE_SPEC.describe(fitted)) == (RANGE_SPEC, fitted)
    for bad in (dict(range_spans=(5,)), dict(range_estimator="yang_zhang", range_spans=(5,)), dict(range_estimator="parkinson"),
                dict(range_estimator="parkinson", garchx_span=5)):
        with pytest.raises(ValueError):
            FeatureSpec(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bars"):
        feature_matrix(np.full(200, 100.0), RANGE_SPEC, fitted)


def test_range_features_do_not_see_later_bars() -> None:
    """Leakage test on O/H/L/C: the vector at t from the bars cut at t equals the whole
    series' (S&P 500 around 2008 with stale opens, and NASDAQ); changing a later bar's open,
    high, low or close changes nothing at t, and changing day t's changes the vector."""
    fitted = ChannelParams(GarchParams(0.02, 0.01, 0.15, 0.88), GJRX)
    for name in ("sp500", "nasdaq"):
        bars = Bars.from_series(load_builtin(name))[2000:2400]
        full = feature_matrix(bars, RANGE_SPEC, fitted)
        assert not np.isnan(full[RANGE_SPEC.min_prices - 1]).any()
        for t in range(RANGE_SPEC.min_prices - 1, 400, 11):
            np.testing.assert_allclose(features_at_end(bars[: t + 1], RANGE_SPEC, fitted), full[t], rtol=0, atol=1e-12)
        t = 300
        for field in ("open", "high", "low", "close"):
            moved = {f: getattr(bars, f).copy() for f in ("open", "high", "low", "close")}
            if field in ("open", "close"):  # to the middle of the day's range: the bars stay valid
                moved[field][t + 1 :] = np.sqrt(bars.high[t + 1 :] * bars.low[t + 1 :])
            else:
                moved[field][t + 1 :] *= 1.0 + 0.02 * (1 if field != "low" else -1)
            later = feature_matrix(Bars(**moved), RANGE_SPEC, fitted)
            np.testing.assert_array_equal(later[t], full[t], err_msg=field)
            assert not np.array_equal(later[t + 1], full[t + 1]), field
        wider = Bars(high=bars.high.copy(), low=bars.low.copy(), close=bars.close, open=bars.open)
        wider.high[t] *= 1.01
        assert not np.array_equal(feature_matrix(wider, RANGE_SPEC, fitted)[t], full[t])


def test_gjrx_fit_never_loses_to_its_nested_gjr() -> None:
    """GJR is GJR-X with δ = 0: the fitted GJR-X likelihood (S&P 500, 1999–2006) is at least
    GJR's, every parameter is positive and the process stationary."""
    import pandas as pd

    series = load_builtin("sp500")
    returns = baselines.daily_returns(series.close)
    park = pd.Series(daily_estimator(Bars.from_series(series), "parkinson"), index=series.close.index)
    before = pd.Timestamp("2007-01-01")
    p = baselines.fit_gjrx(returns, park, 5, before=before)
    g = baselines.fit_gjr(returns, before=before)
    r, x = (s.to_numpy() for s in baselines._range_sample(returns, park, 5, before))
    h0 = baselines.backcast(r)
    nested = GarchXParams(g.omega, g.alpha, g.gamma, g.beta, 0.0, p.kappa, 5)
    assert baselines._gjrx_nll(p, r, x, h0) < baselines._gjrx_nll(nested, r, x, h0) - 5  # LR 12: p < 0.001 for one parameter
    assert min(p.omega, p.alpha, p.gamma, p.beta, p.delta) > 0 and p.delta > 0.02
    assert p.alpha + p.gamma / 2 + p.beta + p.delta * p.kappa < 1
    # The baseline filters every return from the start; its forecast for a day is the channel's
    # recursion over the whole history.
    dates = returns.loc["2007-03"].index
    f = baselines.garchx_vol(returns, park, p, dates, 5)
    r_all, x_all = (s.to_numpy() for s in baselines._range_sample(returns.loc[: dates[3]], park, 5))
    h_path = baselines.gjrx_variance_path(r_all, x_all, p, baselines.backcast(r_all))
    recent = park.reindex(returns.loc[: dates[3]].index).to_numpy()[-4:]
    assert f[3] ** 2 == pytest.approx(float(baselines.gjrx_horizon_variance(h_path[-1:], recent[None, :], p, 5)[0]), rel=1e-12)


def test_har_range_is_exact_on_noiseless_logs_and_bias_corrected() -> None:
    """log target = 0.2 + 0.5 ln e_1d + 0.3 ln e_22d exactly: the forecast reproduces it (no
    residual, no correction); with noise of variance s², it is exp(s²/2) above the log fit."""
    import pandas as pd

    rng = np.random.default_rng(4)
    dates = pd.bdate_range("2000-01-03", periods=400)
    daily = pd.Series(rng.gamma(2.0, 0.5, 400), index=dates)
    design = baselines.har_range_design(daily, dates)
    z = 0.2 + 0.5 * design[:, 1] + 0.3 * design[:, 3]
    ok = ~np.isnan(z)
    got = baselines.har_range_vol(daily, dates[ok], np.exp(z[ok]), dates[ok])
    np.testing.assert_allclose(got**2, np.exp(z[ok]), rtol=1e-9)
    noisy = z[ok] + rng.normal(0, 0.5, ok.sum())
    corrected = baselines.har_range_vol(daily, dates[ok], np.exp(noisy), dates[ok])
    assert np.mean(corrected**2) == pytest.approx(np.mean(np.exp(noisy)), rel=0.1)
