"""Forecast accuracy measures. Each takes realized values and forecasts for the same days."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def rmse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - f) ** 2)))


def mae(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(y - f)))


def directional_accuracy(y: np.ndarray, f: np.ndarray) -> float:
    """Share of days whose sign was called right; days with a zero outcome are left out."""
    moved = y != 0
    return float(np.mean(np.sign(f[moved]) == np.sign(y[moved])))


def r2_oos(y: np.ndarray, f: np.ndarray, benchmark: np.ndarray) -> float:
    """Campbell–Thompson out-of-sample R²: 1 − SSE(model)/SSE(benchmark forecast)."""
    return float(1.0 - np.sum((y - f) ** 2) / np.sum((y - benchmark) ** 2))


def theil_u2(y: np.ndarray, f: np.ndarray, naive: np.ndarray) -> float:
    """Theil's U (U2): RMSE of the forecast over RMSE of the naive forecast; < 1 beats it."""
    return rmse(y, f) / rmse(y, naive)


def theil_u1(y: np.ndarray, f: np.ndarray) -> float:
    """Theil's U1 on levels, as in Bao, Yue & Rao (2017): RMSE / (RMS(y) + RMS(f))."""
    return rmse(y, f) / (float(np.sqrt(np.mean(y**2))) + float(np.sqrt(np.mean(f**2))))


def mape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs((y - f) / y)))


def correlation(y: np.ndarray, f: np.ndarray) -> float:
    if np.std(f) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(y, f)[0, 1])


def qlike(variance: np.ndarray, forecast_variance: np.ndarray) -> float:
    """Patton's QLIKE loss on variances (robust to noise in the realized proxy)."""
    ratio = variance / forecast_variance
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def mse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean((y - f) ** 2))


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> dict[str, float]:
    """DM test of equal expected loss, with the Harvey–Leybourne–Newbold small-sample fix.

    The loss differential d = loss_a − loss_b; a negative statistic means A has the smaller
    loss. Its long-run variance uses autocovariances up to lag horizon−1 (overlapping
    multi-day forecasts are autocorrelated by construction).
    """
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = d.size
    centered = d - d.mean()
    long_run = float(np.dot(centered, centered)) / n
    for lag in range(1, horizon):
        long_run += 2.0 * float(np.dot(centered[lag:], centered[:-lag])) / n
    if long_run <= 0:
        return {"statistic": float("nan"), "p_value": float("nan"), "mean_loss_difference": float(d.mean())}
    statistic = d.mean() / math.sqrt(long_run / n)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic *= correction
    p_value = 2.0 * float(stats.t.sf(abs(statistic), df=n - 1))
    return {"statistic": float(statistic), "p_value": p_value, "mean_loss_difference": float(d.mean())}


def significant(value: float, digits: int = 6) -> float:
    """Round to `digits` significant figures for reports (the raw arrays stay exact)."""
    return float(f"{value:.{digits}g}")
