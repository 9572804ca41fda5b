"""Causal wavelet features.

A feature vector is channel-major: for each channel, its values on the last ``window``
days, oldest first. The first channel is always the denoised series below; a volatility
bundle may add the signed return (``ret``), multi-scale wavelet energies of returns
(``wav_e1`` .. ``wav_eJ``, ``wav_es``) and a GJR-GARCH volatility forecast (``gjr_vol``),
each computed from a trailing window of returns ending at t (formulas below; the server's
server/src/features/ implements the same). A spec with a ``range_estimator`` reads daily bars
(ranges.Bars) instead of closes and adds the range channels ``rng_<n>d``, ``rng_w<j>``,
``rng_v<J>`` and the GJR-GARCH-X forecast ``gjrx_vol`` (ranges.py).

Denoised series: for each day t a per-day series u is built from prices up to t (the log
return in percent, or for volatility targets its square). The denoised value x_t is the last
point of a wavelet-denoised *trailing* window u[t-trailing+1 .. t]: a multilevel DWT
(periodization mode, so the window needs no padding from outside it), universal soft
thresholding of every detail level with the noise scale taken from the finest level, and
the inverse DWT.

Because every step only looks back, the features of a series cut at t equal the features
at t of the whole series. Denoising the whole series at once and then cutting it, as much
published work does, lets every x_t see prices after t; the tests show both facts.

The manifest records the wavelet's filters, so the server recomputes the same numbers
without a wavelet table of its own (parity to 1e-9 is checked against vectors).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pywt

from . import ranges
from .ranges import Bars, GarchXParams
from .series import causal_modwt, lag_matrix, trailing_mean

# What the feature functions read: closes, or daily bars for specs with range channels.
PriceData = np.ndarray | Bars

SeriesKind = Literal["log_return_pct", "squared_return_pct"]
# Median absolute deviation of Gaussian noise divided by its standard deviation.
MAD_TO_SIGMA = 0.6744897501960817


@dataclass(frozen=True)
class GarchParams:
    """GJR-GARCH(1,1,1) with zero mean, on percent returns: estimated by the pipeline on a
    training window, then fixed (they are part of what a bundle ships)."""

    omega: float
    alpha: float
    gamma: float
    beta: float


@dataclass(frozen=True)
class FeatureSpec:
    series: SeriesKind = "log_return_pct"
    window: int = 10
    trailing: int = 32
    wavelet: str = "haar"
    levels: int = 3
    signed_returns: bool = False
    energy_levels: int = 0  # MODWT levels of the energy channels; 0: none
    energy_span: int = 22  # days each energy averages over (a trading month)
    garch_trailing: int = 0  # returns the GJR channel filters; 0: no GJR channel
    garch_horizon: int = 5
    # Range channels from daily bars (ranges.py): the daily estimator, the days its log means
    # span (rng_{n}d), the MODWT levels of its log (rng_w*, rng_v*; 0: none), and the span of
    # the GJR-X channel's range term (gjrx_vol, sharing garch_trailing/horizon; 0: none).
    range_estimator: str = ""
    range_spans: tuple[int, ...] = ()
    range_levels: int = 0
    garchx_span: int = 0

    def __post_init__(self) -> None:
        if self.trailing & (self.trailing - 1) or self.trailing < 2**self.levels:
            raise ValueError("trailing must be a power of two of at least 2**levels")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.energy_levels < 0 or self.energy_span < 1 or self.garch_trailing < 0 or self.garch_horizon < 1:
            raise ValueError("energy_levels, garch_trailing ≥ 0 and energy_span, garch_horizon ≥ 1")
        object.__setattr__(self, "range_spans", tuple(self.range_spans))  # a manifest gives a list
        uses_ranges = bool(self.range_spans or self.range_levels or self.garchx_span)
        if uses_ranges != bool(self.range_estimator) or (self.range_estimator and self.range_estimator not in ranges.ESTIMATOR_INPUTS):
            raise ValueError(f"range channels need range_estimator in {sorted(ranges.ESTIMATOR_INPUTS)}, and it needs range channels")
        if any(n < 1 for n in self.range_spans) or self.range_levels < 0 or self.garchx_span < 0:
            raise ValueError("range_spans ≥ 1, range_levels and garchx_span ≥ 0")
        if self.garchx_span and not self.garch_trailing:
            raise ValueError("the gjrx_vol channel shares the GJR channel's trailing and horizon: garch_trailing must be set")

    @property
    def channels(self) -> list[str]:
        out = ["dn_ret" if self.series == "log_return_pct" else "dn_sq"]
        if self.signed_returns:
            out.append("ret")
        if self.energy_levels:
            out += [f"wav_e{j}" for j in range(1, self.energy_levels + 1)] + ["wav_es"]
        out += [f"rng_{n}d" for n in self.range_spans]
        if self.range_levels:
            out += [f"rng_w{j}" for j in range(1, self.range_levels + 1)] + [f"rng_v{self.range_levels}"]
        if self.garch_trailing:
            out.append("gjr_vol")
        if self.garchx_span:
            out.append("gjrx_vol")
        return out

    @property
    def inputs(self) -> tuple[str, ...]:
        """What a day's input must carry: its close, or the bar fields the range estimator reads."""
        return ranges.ESTIMATOR_INPUTS[self.range_estimator] if self.range_estimator else ("close",)

    def history(self, channel: str) -> int:
        """Returns a channel's value at t depends on (the first is at day `history`)."""
        if channel.startswith("dn_"):
            return self.trailing
        if channel == "ret":
            return 1
        taps = len(pywt.Wavelet(self.wavelet).dec_lo)
        if channel.startswith("wav_"):
            return self.energy_span + (2**self.energy_levels - 1) * (taps - 1)
        # Range channels count the bar before their first one too: Garman–Klass reads its close
        # to tell a stale open, and Parkinson is given the same history so both agree.
        if channel.startswith("rng_w") or channel.startswith("rng_v"):
            return (2**self.range_levels - 1) * (taps - 1) + 1
        if channel.startswith("rng_"):
            return int(channel[4:-1])
        if channel == "gjrx_vol":
            return self.garch_trailing + self.garchx_span - 1
        return self.garch_trailing

    @property
    def names(self) -> list[str]:
        return [f"{c}_lag{lag}" for c in self.channels for lag in range(self.window - 1, -1, -1)]

    @property
    def min_prices(self) -> int:
        """Prices needed for one feature vector: the longest channel history, plus one
        price per lag (the first price has no return)."""
        return self.window + max(self.history(c) for c in self.channels)

    def column(self, name: str) -> int:
        return self.names.index(name)

    def describe(self, fitted: ChannelParams | None = None) -> dict[str, object]:
        w = pywt.Wavelet(self.wavelet)
        fitted = fitted or ChannelParams()
        out: dict[str, object] = {
            **asdict(self),
            "inputs": list(self.inputs),
            "channels": self.channels,
            "names": self.names,
            "min_prices": self.min_prices,
            "method": (
                "causal trailing-window denoising: multilevel DWT (periodization) of the last "
                "`trailing` values, universal soft threshold sigma*sqrt(2 ln n) with sigma = "
                "MAD(finest details)/0.6745, inverse DWT, keep the last value"
            ),
            "mode": "periodization",
            "threshold": "universal-soft",
            "filters": {"dec_lo": w.dec_lo, "dec_hi": w.dec_hi, "rec_lo": w.rec_lo, "rec_hi": w.rec_hi},
        }
        if self.energy_levels:
            out["energy"] = {
                "levels": self.energy_levels,
                "span": self.energy_span,
                "method": "causal MODWT (a trous) of returns with the filters rec_*/sqrt(2); mean of squared "
                "coefficients over the last `span` days, per detail level and for the last smooth",
            }
        if self.garch_trailing:
            if fitted.gjr is None:
                raise ValueError("a GJR channel needs its fitted parameters")
            out["garch"] = {
                "kind": "gjr", **asdict(fitted.gjr), "trailing": self.garch_trailing, "horizon": self.garch_horizon,
                "method": "variance started at the mean squared return of the last `trailing` returns, "
                "filtered through them; sqrt of the analytic `horizon`-day variance forecast",
            }
        if self.range_estimator:
            out["range"] = {
                "estimator": self.range_estimator, "log_floor": ranges.LOG_FLOOR, "stale_open_rtol": ranges.STALE_OPEN_RTOL,
                "levels": self.range_levels,
                "method": "daily variance e_t in percent^2 (Parkinson; Garman-Klass where the open does not repeat the "
                "previous close); rng_<n>d = ln max(mean of e over the last n days, log_floor); rng_w<j>/rng_v<J> = causal "
                "MODWT (the energy channels' pyramid) of ln max(e_t, log_floor)",
            }
        if self.garchx_span:
            if fitted.gjrx is None:
                raise ValueError("a GJR-X channel needs its fitted parameters")
            out["garchx"] = {
                "kind": "gjr-x", **asdict(fitted.gjrx), "trailing": self.garch_trailing, "horizon": self.garch_horizon,
                "method": "variance started at the mean squared return of the last `trailing` returns, filtered through "
                "them with delta * (mean e of the last `span` days); future e replaced by kappa * E[h]; sqrt of the "
                "`horizon`-day variance forecast",
            }
        return out

    @classmethod
    def from_manifest(cls, record: dict[str, object]) -> tuple[FeatureSpec, ChannelParams]:
        fields = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        garch, garchx = record.get("garch"), record.get("garchx")
        gjr = GarchParams(**{k: garch[k] for k in ("omega", "alpha", "gamma", "beta")}) if isinstance(garch, dict) else None
        gjrx = (
            GarchXParams(**{k: garchx[k] for k in GarchXParams.__dataclass_fields__}) if isinstance(garchx, dict) else None
        )
        return cls(**fields), ChannelParams(gjr, gjrx)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChannelParams:
    """The fitted parameters of a spec's GJR and GJR-X channels (None where it has none)."""

    gjr: GarchParams | None = None
    gjrx: GarchXParams | None = None


def log_returns(prices: np.ndarray) -> np.ndarray:
    """r_t = 100 ln(P_t / P_{t-1}) aligned with prices; r_0 is NaN."""
    prices = np.asarray(prices, dtype=np.float64)
    r = np.full(prices.shape, np.nan)
    r[1:] = 100.0 * np.log(prices[1:] / prices[:-1])
    return r


def per_day_series(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """u_t from prices up to t; u_0 is NaN (no return on the first day)."""
    r = log_returns(prices)
    return r if spec.series == "log_return_pct" else r * r


def denoise_last(values: np.ndarray, spec: FeatureSpec) -> float:
    """Last point of the wavelet-denoised window (the window ends at the current day)."""
    coeffs = pywt.wavedec(values, spec.wavelet, mode="periodization", level=spec.levels)
    sigma = float(np.median(np.abs(coeffs[-1]))) / MAD_TO_SIGMA
    threshold = sigma * math.sqrt(2.0 * math.log(values.size))
    # Soft threshold written out: pywt.threshold divides by |d| and turns 0/0 into NaN
    # when the window is flat (threshold 0).
    shrunk = [coeffs[0]] + [np.sign(d) * np.maximum(np.abs(d) - threshold, 0.0) for d in coeffs[1:]]
    return float(pywt.waverec(shrunk, spec.wavelet, mode="periodization")[-1])


def denoised_series(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """x_t for every day; NaN until `trailing` returns exist."""
    u = per_day_series(prices, spec)
    x = np.full(u.shape, np.nan)
    for t in range(spec.trailing, u.size):
        x[t] = denoise_last(u[t - spec.trailing + 1 : t + 1], spec)
    return x


def wavelet_energies(prices: np.ndarray, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Multi-scale energies of returns: a causal MODWT (à trous) pyramid,
        W_{j,s} = Σ_l h̃_l V_{j-1, s-2^(j-1)l},   V_{j,s} = Σ_l g̃_l V_{j-1, s-2^(j-1)l},   V_0 = r,
    with h̃ = rec_hi/√2 and g̃ = rec_lo/√2, each coefficient defined only where all of its
    returns exist (no wrap-around). The energy of level j at t is the mean of W_{j,s}² over
    the last `energy_span` days, and `wav_es` that of the last smooth V_J. By the MODWT's
    energy decomposition they split the mean squared return by time scale (level j: about
    2^(j-1)..2^j days), the wavelet form of HAR's day/week/month components."""
    details, smooth = causal_modwt(log_returns(prices), spec.wavelet, spec.energy_levels)
    out = {f"wav_e{j}": trailing_mean(d * d, spec.energy_span) for j, d in enumerate(details, start=1)}
    out["wav_es"] = trailing_mean(smooth * smooth, spec.energy_span)
    return out


def gjr_volatility(prices: np.ndarray, spec: FeatureSpec, p: GarchParams) -> np.ndarray:
    """At t, from the last `garch_trailing` returns only: the variance starts at their mean
    square and is filtered through them, h ← ω + (α + γ·[r<0])·r² + β·h, giving the forecast
    for t+1; the channel is the square root of the analytic `garch_horizon`-day variance,
    Σ_k E[h_{t+k}] with E[h_{t+k+1}] = ω + (α + γ/2 + β)·E[h_{t+k}]. A fixed window (not the
    whole history) keeps the value at t independent of how far back the prices go."""
    windows = lag_matrix(log_returns(prices), spec.garch_trailing)
    h = np.mean(windows * windows, axis=1)
    for s in range(spec.garch_trailing):
        r = windows[:, s]
        h = p.omega + (p.alpha + p.gamma * (r < 0)) * r * r + p.beta * h
    total = np.zeros_like(h)
    for _ in range(spec.garch_horizon):
        total += h
        h = p.omega + (p.alpha + p.gamma / 2.0 + p.beta) * h
    return np.sqrt(total)


def closes(data: PriceData) -> np.ndarray:
    return data.close if isinstance(data, Bars) else np.asarray(data, dtype=np.float64)


def channel_series(data: PriceData, spec: FeatureSpec, fitted: ChannelParams | None = None) -> dict[str, np.ndarray]:
    """Every channel's value per day, aligned with the days of ``data`` (NaN where history is
    short): closes, or bars when the spec has range channels."""
    fitted = fitted or ChannelParams()
    prices = closes(data)
    out = {spec.channels[0]: denoised_series(prices, spec)}
    if spec.signed_returns:
        out["ret"] = log_returns(prices)
    if spec.energy_levels:
        out.update(wavelet_energies(prices, spec))
    if spec.range_estimator:
        if not isinstance(data, Bars):
            raise ValueError(f"range channels need bars ({', '.join(spec.inputs)}), not closes only")
        daily = ranges.daily_estimator(data, spec.range_estimator)  # type: ignore[arg-type]
        out.update(ranges.range_channels(daily, spec.range_spans, spec.wavelet, spec.range_levels))
    return {**out, **fitted_channels(data, spec, fitted)}


def fitted_channels(data: PriceData, spec: FeatureSpec, fitted: ChannelParams) -> dict[str, np.ndarray]:
    """The channels with fitted parameters, gjr_vol and gjrx_vol (the last ones, in this order)."""
    out = {}
    if spec.garch_trailing:
        if fitted.gjr is None:
            raise ValueError("the gjr_vol channel needs fitted GarchParams")
        out["gjr_vol"] = gjr_volatility(closes(data), spec, fitted.gjr)
    if spec.garchx_span:
        if fitted.gjrx is None or not isinstance(data, Bars):
            raise ValueError("the gjrx_vol channel needs bars and fitted GarchXParams")
        daily = ranges.daily_estimator(data, spec.range_estimator)  # type: ignore[arg-type]
        out["gjrx_vol"] = ranges.gjrx_volatility(log_returns(closes(data)), daily, fitted.gjrx, spec.garch_trailing, spec.garch_horizon)
    return out


def feature_matrix(data: PriceData, spec: FeatureSpec, fitted: ChannelParams | None = None) -> np.ndarray:
    """One feature vector per day, aligned with the days of ``data``."""
    series = channel_series(data, spec, fitted)
    return np.hstack([lag_matrix(series[c], spec.window) for c in spec.channels])


def last_days(data: PriceData, n: int) -> PriceData:
    return data[-n:] if isinstance(data, Bars) else np.asarray(data, dtype=np.float64)[-n:]


def features_at_end(data: PriceData, spec: FeatureSpec, fitted: ChannelParams | None = None) -> np.ndarray:
    """The feature vector of the last day, from the last ``min_prices`` days only."""
    days = closes(data).size
    if days < spec.min_prices:
        raise ValueError(f"need at least {spec.min_prices} prices, got {days}")
    return feature_matrix(last_days(data, spec.min_prices), spec, fitted)[-1]
