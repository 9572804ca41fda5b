"""Causal per-day array operations every channel is built from: lags, trailing means and the
causal MODWT pyramid. Each value at t uses values up to t only; NaN marks missing history."""

from __future__ import annotations

import math

import numpy as np
import pywt
from numpy.lib.stride_tricks import sliding_window_view


def lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """out[t] = values[t − lag] (NaN for the first `lag` days)."""
    out = np.full(values.shape, np.nan)
    out[lag:] = values[: values.size - lag]
    return out


def lag_matrix(x: np.ndarray, window: int) -> np.ndarray:
    """Row t holds x[t-window+1 .. t] (oldest first); NaN rows where history is short."""
    rows = np.full((x.size, window), np.nan)
    if x.size >= window:
        rows[window - 1 :] = sliding_window_view(x, window)
    return rows


def trailing_mean(x: np.ndarray, span: int) -> np.ndarray:
    """Mean of x[t-span+1 .. t] at each t; NaN until `span` values exist or where one is NaN."""
    return np.mean(lag_matrix(x, span), axis=1)


def causal_modwt(x: np.ndarray, wavelet: str, levels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The causal MODWT (à trous) pyramid of a per-day series x (V_0 = x): the details
    W_1 .. W_levels and the last smooth V_levels, each aligned with x and NaN where one of its
    inputs is missing (the formula is in features.wavelet_energies)."""
    w = pywt.Wavelet(wavelet)
    g, h = np.asarray(w.rec_lo) / math.sqrt(2.0), np.asarray(w.rec_hi) / math.sqrt(2.0)
    v = np.asarray(x, dtype=np.float64)
    details = []
    for j in range(1, levels + 1):
        shifted = [lagged(v, 2 ** (j - 1) * l) for l in range(len(g))]
        details.append(sum(h[l] * shifted[l] for l in range(len(h))))
        v = sum(g[l] * shifted[l] for l in range(len(g)))
    return details, v
