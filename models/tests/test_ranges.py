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
