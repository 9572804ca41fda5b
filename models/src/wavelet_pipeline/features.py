"""Causal wavelet features.

For each day t a per-day series u is built from prices up to t (the log return in
percent, or for volatility targets its square). The denoised value x_t is
the last point of a wavelet-denoised *trailing* window u[t-trailing+1 .. t]: a multilevel
DWT (periodization mode, so the window needs no padding from outside it), universal soft
thresholding of every detail level with the noise scale taken from the finest level, and
the inverse DWT. The feature vector at t is the last ``window`` denoised values
x[t-window+1 .. t], oldest first.

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

SeriesKind = Literal["log_return_pct", "squared_return_pct"]
# Median absolute deviation of Gaussian noise divided by its standard deviation.
MAD_TO_SIGMA = 0.6744897501960817


@dataclass(frozen=True)
class FeatureSpec:
    series: SeriesKind = "log_return_pct"
    window: int = 10
    trailing: int = 32
    wavelet: str = "haar"
    levels: int = 3

    def __post_init__(self) -> None:
        if self.trailing & (self.trailing - 1) or self.trailing < 2**self.levels:
            raise ValueError("trailing must be a power of two of at least 2**levels")
        if self.window < 1:
            raise ValueError("window must be at least 1")

    @property
    def names(self) -> list[str]:
        stem = "dn_ret" if self.series == "log_return_pct" else "dn_sq"
        return [f"{stem}_lag{lag}" for lag in range(self.window - 1, -1, -1)]

    @property
    def min_prices(self) -> int:
        """Prices needed for one feature vector: one extra for the first return."""
        return self.trailing + self.window

    def describe(self) -> dict[str, object]:
        w = pywt.Wavelet(self.wavelet)
        return {
            **asdict(self),
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


def per_day_series(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """u_t from prices up to t; u_0 is NaN (no return on the first day)."""
    prices = np.asarray(prices, dtype=np.float64)
    u = np.full(prices.shape, np.nan)
    r = 100.0 * np.log(prices[1:] / prices[:-1])
    u[1:] = r if spec.series == "log_return_pct" else r * r
    return u


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


def lag_matrix(x: np.ndarray, window: int) -> np.ndarray:
    """Row t holds x[t-window+1 .. t] (oldest first); NaN rows where history is short."""
    rows = np.full((x.size, window), np.nan)
    for lag in range(window):
        rows[window - 1 :, lag] = x[lag : x.size - window + 1 + lag]
    return rows


def feature_matrix(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """One feature vector per day, aligned with ``prices``."""
    return lag_matrix(denoised_series(prices, spec), spec.window)


def features_at_end(prices: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The feature vector of the last day, from the last ``min_prices`` prices only."""
    prices = np.asarray(prices, dtype=np.float64)
    if prices.size < spec.min_prices:
        raise ValueError(f"need at least {spec.min_prices} prices, got {prices.size}")
    return feature_matrix(prices[-spec.min_prices :], spec)[-1]
