"""Daily variance from open/high/low/close bars (range-based estimators).

With o = ln O_t, h = ln H_t, l = ln L_t, c = ln C_t and c' = ln C_{t-1}, per day:

* Parkinson (1980):        (h − l)² / (4 ln 2)                      — needs no open
* Garman & Klass (1980):   ½ (h − l)² − (2 ln 2 − 1)(c − o)²
* Rogers & Satchell (1991): (h − c)(h − o) + (l − c)(l − o)           — unbiased under drift
* the overnight gap:        (o − c')²

Parkinson, Garman–Klass and Rogers–Satchell estimate the variance of the open-to-close part
of the day, the gap that of the night; under a driftless Brownian log price each is unbiased
and the first two are about 5 and 7 times as efficient as a squared open-to-close return
(the test on simulated intraday paths measures it). Yang & Zhang combine them over a window
(``yang_zhang``). Every value is in percent² (the ln terms times 100², as ``log_returns``
gives 100·ln P_t/P_{t−1}), the units of a squared return in the volatility target.

Stale opens (an open that repeats the previous close, data.stale_open_mask) carry no
information about the night and give a wrong open-to-close leg, so on such days Garman–Klass
and Rogers–Satchell fall back to Parkinson and the gap is NaN (unknown, not zero). The
fallback is decided per day from that day's open and the previous close only, so it is
causal; ``PriceSeries.opens_real_from`` looks at the whole series and is for choosing data
and channels, never used here. Caveat from the S&P 500 in arch.data: on its stale days the
high and low always bracket the previous close (on 64 % of its real days), so there the
range, and Parkinson, also spans the overnight move.

Aggregates: HAR-style trailing means of each daily estimator over 1, 5 and 22 days (Corsi
2009's day/week/month), and optionally the causal MODWT of the daily estimator
(features.causal_modwt). Everything at t uses bars up to t only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .data import STALE_OPEN_RTOL, PriceSeries, stale_open_mask
from .series import causal_modwt, lag_matrix, trailing_mean

# (100 ln)²: squared log price changes in percent², as a squared features.log_returns value.
VARIANCE_SCALE = 100.0**2
HAR_SPANS = (1, 5, 22)
YANG_ZHANG_DAYS = (5, 22)
NEEDS_OPEN = ("garman_klass", "rogers_satchell", "overnight")
ESTIMATORS = ("parkinson", *NEEDS_OPEN)
LN2 = math.log(2.0)


@dataclass(frozen=True)
class Bars:
    """Daily bars as float64 arrays of one length; ``open`` and ``stale_open`` are None when
    the source has no opens. ``stale_open[t]``: day t's open repeats the previous close."""

    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    open: np.ndarray | None = None
    stale_open: np.ndarray | None = None

    @classmethod
    def from_series(cls, series: PriceSeries) -> Bars:
        if series.high is None or series.low is None:
            raise ValueError(f"{series.name}: no high and low prices (fields: {', '.join(series.fields)})")
        return cls(
            high=series.high.to_numpy(np.float64),
            low=series.low.to_numpy(np.float64),
            close=series.close.to_numpy(np.float64),
            open=None if series.open is None else series.open.to_numpy(np.float64),
            stale_open=None if series.stale_open is None else series.stale_open.to_numpy(bool),
        )

    def __getitem__(self, days: slice) -> Bars:
        """The bars of a run of days (``bars[: t + 1]``: what was known on day t)."""
        cut = (lambda a: None if a is None else a[days])
        return Bars(high=self.high[days], low=self.low[days], close=self.close[days], open=cut(self.open), stale_open=cut(self.stale_open))

    def real_open(self) -> np.ndarray:
        """Per day: the open is usable (present and not stale)."""
        if self.open is None:
            return np.zeros(self.close.shape, dtype=bool)
        return np.ones(self.close.shape, dtype=bool) if self.stale_open is None else ~self.stale_open


def parkinson(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Parkinson (1980), "The extreme value method for estimating the variance of the rate of
    return", Journal of Business 53(1): (ln H/L)² / (4 ln 2), in percent²."""
    hl = np.log(np.asarray(high, dtype=np.float64) / np.asarray(low, dtype=np.float64))
    return VARIANCE_SCALE * hl * hl / (4.0 * LN2)


def garman_klass(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Garman & Klass (1980), "On the estimation of security price volatilities from
    historical data", Journal of Business 53(1), their practical estimator:
    ½ (ln H/L)² − (2 ln 2 − 1)(ln C/O)², in percent²."""
    hl = np.log(np.asarray(high, dtype=np.float64) / np.asarray(low, dtype=np.float64))
    co = np.log(np.asarray(close, dtype=np.float64) / np.asarray(open_, dtype=np.float64))
    return VARIANCE_SCALE * (0.5 * hl * hl - (2.0 * LN2 - 1.0) * co * co)


def rogers_satchell(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Rogers & Satchell (1991), "Estimating variance from high, low and closing prices",
    Annals of Applied Probability 1(4): ln(H/C) ln(H/O) + ln(L/C) ln(L/O), in percent²
    (unbiased whatever the drift)."""
    o, h, l, c = (np.log(np.asarray(a, dtype=np.float64)) for a in (open_, high, low, close))
    return VARIANCE_SCALE * ((h - c) * (h - o) + (l - c) * (l - o))


def overnight_gap(open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    """(ln O_t / C_{t−1})² in percent²; NaN on the first day (no previous close)."""
    open_, close = np.asarray(open_, dtype=np.float64), np.asarray(close, dtype=np.float64)
    out = np.full(open_.shape, np.nan)
    gap = np.log(open_[1:] / close[:-1])
    out[1:] = VARIANCE_SCALE * gap * gap
    return out


def yang_zhang_k(n: int) -> float:
    """Yang & Zhang's weight k = 0.34 / (1.34 + (n+1)/(n−1)), which minimizes the variance of
    their estimator over n days."""
    if n < 2:
        raise ValueError("Yang–Zhang needs a window of at least 2 days")
    return 0.34 / (1.34 + (n + 1) / (n - 1))


def yang_zhang(bars: Bars, n: int) -> np.ndarray:
    """Yang & Zhang (2000), "Drift-independent volatility estimation based on high, low, open,
    and close prices", Journal of Business 73(3): over the n days ending at t,

        σ²_YZ = σ²_O + k σ²_C + (1 − k) σ²_RS,   k = yang_zhang_k(n),

    with σ²_O and σ²_C the sample variances (divisor n − 1) of the overnight returns
    ln(O_s/C_{s−1}) and the open-to-close returns ln(C_s/O_s), and σ²_RS the mean
    Rogers–Satchell value: the close-to-close daily variance, in percent². NaN until t = n
    (day t−n+1 needs the close before it) and wherever the window holds a stale open."""
    if bars.open is None:
        raise ValueError("Yang–Zhang needs opens")
    k = yang_zhang_k(n)
    o, c = bars.open, bars.close
    night = np.full(c.shape, np.nan)
    night[1:] = np.log(o[1:] / c[:-1])
    night[~bars.real_open()] = np.nan
    day = np.log(c / o)

    def sample_variance(x: np.ndarray) -> np.ndarray:
        # Two-pass (mean first): exact on short windows, like the textbook formula.
        windows = lag_matrix(x, n)
        return np.sum((windows - np.mean(windows, axis=1, keepdims=True)) ** 2, axis=1) / (n - 1)

    rs = rogers_satchell(o, bars.high, bars.low, c) / VARIANCE_SCALE
    return VARIANCE_SCALE * (sample_variance(night) + k * sample_variance(day) + (1.0 - k) * trailing_mean(rs, n))


def daily_variances(bars: Bars) -> dict[str, np.ndarray]:
    """Each estimator per day, in percent²: Parkinson always; with opens, Garman–Klass and
    Rogers–Satchell (Parkinson on stale-open days) and the overnight gap (NaN on them)."""
    out = {"parkinson": parkinson(bars.high, bars.low)}
    if bars.open is None:
        return out
    real = bars.real_open()
    out["garman_klass"] = np.where(real, garman_klass(bars.open, bars.high, bars.low, bars.close), out["parkinson"])
    out["rogers_satchell"] = np.where(real, rogers_satchell(bars.open, bars.high, bars.low, bars.close), out["parkinson"])
    out["overnight"] = np.where(real, overnight_gap(bars.open, bars.close), np.nan)
    return out


def range_features(
    bars: Bars,
    spans: tuple[int, ...] = HAR_SPANS,
    yang_zhang_days: tuple[int, ...] = YANG_ZHANG_DAYS,
    wavelet: str = "haar",
    levels: int = 0,
) -> dict[str, np.ndarray]:
    """Candidate volatility channels from bars, each aligned with them (NaN where history is
    short): for every daily estimator e, ``{e}_{n}d`` its mean over the last n days for n in
    ``spans`` and, with ``levels``, ``{e}_w1 .. {e}_w{levels}`` and ``{e}_v{levels}``, the
    causal MODWT details and smooth of the daily values; with opens, ``yang_zhang_{n}d``."""
    out: dict[str, np.ndarray] = {}
    for name, daily in daily_variances(bars).items():
        for n in spans:
            out[f"{name}_{n}d"] = trailing_mean(daily, n)
        if levels:
            details, smooth = causal_modwt(daily, wavelet, levels)
            out.update({f"{name}_w{j}": d for j, d in enumerate(details, start=1)})
            out[f"{name}_v{levels}"] = smooth
    if bars.open is not None:
        out.update({f"yang_zhang_{n}d": yang_zhang(bars, n) for n in yang_zhang_days})
    return out


# --- Feature channels from bars (features-spec v2: rng_*, gjrx_vol) ---------------------------
# ln values are taken of max(v, LOG_FLOOR) %²: a day whose high equals its low has a zero range.
LOG_FLOOR = 1e-4
RangeEstimator = Literal["parkinson", "garman_klass"]
# What each estimator reads from a bar; the manifest's features.inputs.
ESTIMATOR_INPUTS: dict[str, tuple[str, ...]] = {"parkinson": ("high", "low", "close"), "garman_klass": ("open", "high", "low", "close")}


def daily_estimator(bars: Bars, estimator: RangeEstimator, rtol: float = STALE_OPEN_RTOL) -> np.ndarray:
    """e_t, the channels' daily variance: Parkinson, or Garman–Klass where day t's open is real
    and Parkinson where it repeats the previous close (decided from bars t−1 and t only, so a
    series cut at any day gives the same values up to it)."""
    park = parkinson(bars.high, bars.low)
    if estimator == "parkinson":
        return park
    if bars.open is None:
        raise ValueError("the garman_klass estimator needs opens")
    stale = stale_open_mask(bars.open, bars.close, rtol)
    return np.where(stale, park, garman_klass(bars.open, bars.high, bars.low, bars.close))


def log_floored(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, LOG_FLOOR))


def range_channels(daily: np.ndarray, spans: tuple[int, ...], wavelet: str, levels: int) -> dict[str, np.ndarray]:
    """``rng_{n}d``: ln of the mean daily estimator over the last n days (Corsi's day/week/month
    on the log scale, where the variance's errors are near Gaussian); with ``levels`` J,
    ``rng_w1 .. rng_wJ`` and ``rng_vJ``: the causal MODWT details and smooth of ln e_t, the
    log range variance split by time scale."""
    out = {f"rng_{n}d": log_floored(trailing_mean(daily, n)) for n in spans}
    if levels:
        details, smooth = causal_modwt(log_floored(daily), wavelet, levels)
        out.update({f"rng_w{j}": d for j, d in enumerate(details, start=1)})
        out[f"rng_v{levels}"] = smooth
    return out


@dataclass(frozen=True)
class GarchXParams:
    """GJR-GARCH-X(1,1,1) on percent returns with a range term: the variance of day s+1 is
    ω + (α + γ·[r_s<0])·r_s² + β·h_s + δ·x_s, x_s the mean daily range estimator of the last
    `span` days; κ = E[e] / E[r²] turns a variance forecast into the range's expected value for
    multi-step forecasts. Fit by the pipeline (fit_gjrx), then fixed like GarchParams."""

    omega: float
    alpha: float
    gamma: float
    beta: float
    delta: float
    kappa: float
    span: int


def gjrx_variance_path(returns: np.ndarray, x: np.ndarray, p: GarchXParams, h0: float) -> np.ndarray:
    """h[0] = h0, h[s+1] = ω + (α + γ·[r_s<0])·r_s² + β·h[s] + δ·x[s] for s = 0 .. n−1."""
    from scipy.signal import lfilter

    u = p.omega + (p.alpha + p.gamma * (returns < 0)) * returns * returns + p.delta * x
    h = np.empty(returns.size + 1)
    h[0] = h0
    h[1:] = lfilter([1.0], [1.0, -p.beta], u, zi=[p.beta * h0])[0]
    return h


def gjrx_horizon_variance(h_next: np.ndarray, recent: np.ndarray, p: GarchXParams, horizon: int) -> np.ndarray:
    """Σ_{k=1..horizon} E[h_{t+k}] from h_{t+1} and the last span−1 daily estimator values
    (recent[:, −1] is day t): unknown future ranges are replaced by κ·E[h]."""
    future = [recent[:, i] for i in range(recent.shape[1])]
    h, total = h_next, np.zeros_like(h_next)
    for k in range(1, horizon + 1):
        total = total + h
        if k < horizon:
            future.append(p.kappa * h)
            x = sum(future[-p.span :]) / p.span
            h = p.omega + (p.alpha + p.gamma / 2.0 + p.beta) * h + p.delta * x
    return total


def gjrx_volatility(returns: np.ndarray, daily: np.ndarray, p: GarchXParams, trailing: int, horizon: int) -> np.ndarray:
    """The gjrx_vol channel at every t, from the last `trailing` returns and the daily
    estimator values they need only: h starts at their mean square, is filtered through them
    oldest first, and the channel is √ of the `horizon`-day variance forecast."""
    r = lag_matrix(returns, trailing)
    x = lag_matrix(trailing_mean(daily, p.span), trailing)
    h = np.mean(r * r, axis=1)
    for s in range(trailing):
        h = p.omega + (p.alpha + p.gamma * (r[:, s] < 0)) * r[:, s] ** 2 + p.beta * h + p.delta * x[:, s]
    recent = lag_matrix(daily, p.span - 1) if p.span > 1 else np.empty((daily.size, 0))
    return np.sqrt(gjrx_horizon_variance(h, recent, p, horizon))
