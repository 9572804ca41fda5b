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


def long_run_variance(d: np.ndarray, lags: int, kernel: str) -> float:
    """Long-run variance of d: γ0 + 2 Σ_{k=1..lags} w_k γk, autocovariances divided by n.

    kernel "truncated" weighs every lag 1 (can come out negative); "bartlett" weighs lag k by
    1 − k/(lags+1) (Newey–West 1987), which keeps the estimate non-negative.
    """
    n = d.size
    centered = d - d.mean()
    total = float(np.dot(centered, centered)) / n
    for lag in range(1, lags + 1):
        weight = 1.0 if kernel == "truncated" else 1.0 - lag / (lags + 1.0)
        total += 2.0 * weight * float(np.dot(centered[lag:], centered[:-lag])) / n
    return total


def newey_west_bandwidth(n: int, horizon: int) -> int:
    """Newey & West's (1994) rule of thumb floor(4 (n/100)^(2/9)), and never below horizon − 1,
    the lags an h-day overlap makes autocorrelated by construction (7 lags for 2,007 days)."""
    return max(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)), horizon - 1)


def _dm_result(d: np.ndarray, long_run: float, correction: float) -> dict[str, float]:
    n = d.size
    if long_run <= 0:
        return {"statistic": float("nan"), "p_value": float("nan")}
    statistic = correction * d.mean() / math.sqrt(long_run / n)
    return {"statistic": float(statistic), "p_value": 2.0 * float(stats.t.sf(abs(statistic), df=n - 1))}


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> dict[str, float]:
    """DM test of equal expected loss, two ways; the loss differential is d = loss_a − loss_b and
    a negative statistic means A has the smaller loss.

    `statistic`/`p_value`: long-run variance from autocovariances up to lag horizon−1, uniform
    weights (overlapping multi-day forecasts are autocorrelated by construction), with the
    Harvey–Leybourne–Newbold small-sample fix. `hac_statistic`/`hac_p_value`: Newey–West
    (Bartlett) long-run variance with `hac_lags` lags from `newey_west_bandwidth`, which also
    counts autocorrelation of the losses themselves (volatility clusters); HLN's factor is
    derived for the uniform-weight estimator, so it is not applied here.
    """
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = d.size
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    lags = newey_west_bandwidth(n, horizon)
    truncated = _dm_result(d, long_run_variance(d, horizon - 1, "truncated"), hln)
    hac = _dm_result(d, long_run_variance(d, lags, "bartlett"), 1.0)
    return {
        **truncated,
        "hac_statistic": hac["statistic"],
        "hac_p_value": hac["p_value"],
        "hac_lags": float(lags),
        "mean_loss_difference": float(d.mean()),
    }


def significant(value: float, digits: int = 6) -> float:
    """Round to `digits` significant figures for reports (the raw arrays stay exact)."""
    return float(f"{value:.{digits}g}")
