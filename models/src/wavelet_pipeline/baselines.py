"""Naive and classical forecasts that every model is reported next to, on the same days."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from arch import arch_model
from scipy.optimize import minimize

from .features import GarchParams
from .ranges import HAR_SPANS, GarchXParams, gjrx_horizon_variance, gjrx_variance_path, log_floored
from .series import lag_matrix, trailing_mean

# HAR fits variances by OLS and can answer below zero; forecasts are floored here (%²).
HAR_VARIANCE_FLOOR = 1e-4
# GARCH-family baselines, all (p, o, q) = (1, o, 1) with normal errors: name -> (arch vol, o).
# o = 1 adds the asymmetric (leverage) term: GJR's indicator of a negative return, EGARCH's sign.
GARCH_FAMILY = {"garch": ("GARCH", 0), "gjr_garch": ("GARCH", 1), "egarch": ("EGARCH", 1)}
# EGARCH's multi-step variance is simulated: paths a day and a seeded standard-normal generator
# (arch's `random_state` only seeds bootstrap forecasts), so a rerun reproduces it. arch draws
# day by day in date order, so a day's forecast does not depend on the days after it.
EGARCH_SIMULATIONS = 2000
EGARCH_SEED = 0


def daily_returns(close: pd.Series) -> pd.Series:
    """Percent log returns indexed by date (the first day has none)."""
    return (100.0 * np.log(close).diff()).iloc[1:]


def historical_mean(returns: pd.Series, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """Mean of every return up to and including each day, times the horizon."""
    expanding = returns.expanding().mean()
    return horizon * expanding.reindex(dates).to_numpy()


def random_walk_vol(returns: pd.Series, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """Realized volatility of the last `horizon` days as the forecast of the next ones."""
    return np.sqrt((returns**2).rolling(horizon).sum().reindex(dates).to_numpy())


def garch_family_vol(kind: str, returns: pd.Series, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """A GARCH_FAMILY model fit on the returns before dates[0]; each day's forecast then filters
    the returns up to that day with the parameters held fixed, and sums the daily variances
    over the horizon. Zero mean: the target is raw squared returns, not demeaned ones."""
    vol, o = GARCH_FAMILY[kind]
    # Returns after the last forecast day are never used; cutting them keeps the simulation short.
    model = arch_model(returns.loc[: dates[-1]], mean="Zero", vol=vol, p=1, o=o, q=1, dist="normal", rescale=False)
    if vol == "EGARCH" and horizon > 1:  # arch has no closed-form multi-step EGARCH variance
        method = {"method": "simulation", "simulations": EGARCH_SIMULATIONS, "rng": np.random.default_rng(EGARCH_SEED).standard_normal}
    else:
        method = {"method": "analytic"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(last_obs=dates[0], disp="off")  # last_obs is exclusive
        forecast = fitted.forecast(horizon=horizon, start=dates[0], reindex=False, **method)
    variance = forecast.variance.reindex(dates).to_numpy().sum(axis=1)
    return np.sqrt(variance)


def fit_gjr(returns: pd.Series, before: pd.Timestamp | None = None) -> GarchParams:
    """GJR-GARCH(1,1,1) parameters (zero mean, normal errors) from the returns before `before`
    (None: all of them), the fit the gjr_garch baseline uses."""
    model = arch_model(returns, mean="Zero", vol="GARCH", p=1, o=1, q=1, dist="normal", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(last_obs=before, disp="off")  # last_obs is exclusive
    p = fitted.params
    return GarchParams(omega=float(p["omega"]), alpha=float(p["alpha[1]"]), gamma=float(p["gamma[1]"]), beta=float(p["beta[1]"]))


def har_design(returns: pd.Series, dates: pd.DatetimeIndex) -> np.ndarray:
    """HAR regressors at each day: daily, weekly and monthly mean squared returns."""
    sq = returns**2
    columns = [sq, sq.rolling(5).mean(), sq.rolling(22).mean()]
    design = np.column_stack([c.reindex(dates).to_numpy() for c in columns])
    return np.column_stack([np.ones(len(dates)), design])


def har_vol(
    returns: pd.Series, train_dates: pd.DatetimeIndex, train_variance: np.ndarray, dates: pd.DatetimeIndex
) -> np.ndarray:
    """HAR-RV (Corsi 2009) on daily squared returns, fit by OLS on the training days."""
    design = har_design(returns, train_dates)
    usable = ~np.isnan(design).any(axis=1)
    beta, *_ = np.linalg.lstsq(design[usable], train_variance[usable], rcond=None)
    return np.sqrt(np.maximum(har_design(returns, dates) @ beta, HAR_VARIANCE_FLOOR))


# GJR-X: arch's volatility processes take no exogenous regressors, so its likelihood is ours.
# The first variance is arch's backcast: an EWMA (λ 0.94) of the first 75 squared returns.
BACKCAST_DAYS, BACKCAST_DECAY = 75, 0.94
# Stationarity (α + γ/2 + β + δκ) is kept below this; α, γ, β, δ, ω > 0 keep every variance
# positive (α < 0 fits slightly better on the validation years, but can turn a variance negative).
GJRX_PERSISTENCE_MAX = 0.9999
# The garch_x baseline's range term: Parkinson's mean over a week (chosen on 2007–2010 over one day).
GARCHX_SPAN = 5


def backcast(returns: np.ndarray) -> float:
    w = BACKCAST_DECAY ** np.arange(min(BACKCAST_DAYS, returns.size))
    return float(np.sum(w * returns[: w.size] ** 2) / w.sum())


def _gjrx_nll(p: GarchXParams, r: np.ndarray, x: np.ndarray, h0: float) -> float:
    if p.alpha + p.gamma / 2.0 + p.beta + p.delta * p.kappa >= GJRX_PERSISTENCE_MAX:
        return 1e10
    h = gjrx_variance_path(r, x, p, h0)[:-1]
    if not np.all(np.isfinite(h)) or np.any(h <= 0):
        return 1e10
    return float(0.5 * np.sum(np.log(2.0 * np.pi) + np.log(h) + r * r / h))


def _range_sample(returns: pd.Series, daily: pd.Series, span: int, before: pd.Timestamp | None = None) -> tuple[pd.Series, pd.Series]:
    """Returns and their x (mean daily range of the last `span` days), on the days before
    `before` (None: all) where x exists."""
    x = pd.Series(trailing_mean(daily.reindex(returns.index).to_numpy(), span), index=returns.index).dropna()
    if before is not None:
        x = x[x.index < before]
    return returns.reindex(x.index), x


def fit_gjrx(returns: pd.Series, daily: pd.Series, span: int, before: pd.Timestamp | None = None) -> GarchXParams:
    """GJR-GARCH-X(1,1,1) by maximum likelihood (normal, zero mean) on the returns before
    `before` (None: all), `daily` the range estimator by date. κ, the ratio of
    the mean range estimator to the mean squared return, is a moment of the same sample.
    Nelder–Mead on log parameters from a few starting δ (the likelihood is flat along β−δκ)."""
    rs, xs = _range_sample(returns, daily, span, before)
    r, x = rs.to_numpy(), xs.to_numpy()
    kappa = float(np.mean(x) / np.mean(r * r))
    h0 = backcast(r)
    gjr = fit_gjr(returns, before=before)

    def params(u: np.ndarray) -> GarchXParams:
        return GarchXParams(*np.exp(u[:5]).tolist(), kappa=kappa, span=span)  # type: ignore[misc]

    best = None
    for delta in (0.05, 0.15, 0.3):
        u = np.log([gjr.omega, 1e-4, max(gjr.gamma, 1e-3), max(0.5, gjr.beta - delta * kappa), delta])
        for tolerance in (1e-6, 1e-8):
            u = minimize(lambda v: _gjrx_nll(params(v), r, x, h0), u, method="Nelder-Mead",
                         options={"maxiter": 6000, "maxfev": 6000, "xatol": tolerance, "fatol": tolerance}).x
        nll = _gjrx_nll(params(u), r, x, h0)
        if best is None or nll < best[0]:
            best = (nll, u)
    assert best is not None
    return params(best[1])


def garchx_vol(returns: pd.Series, daily: pd.Series, p: GarchXParams, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """GJR-GARCH-X forecasts with fixed parameters: the variance filtered through every
    return from the start (arch's way for the GARCH-family baselines), then the `horizon`-day sum."""
    r, x = _range_sample(returns.loc[: dates[-1]], daily, p.span)
    h_next = gjrx_variance_path(r.to_numpy(), x.to_numpy(), p, backcast(r.to_numpy()))[1:]  # h_next[i]: day i+1's variance
    values = daily.reindex(r.index).to_numpy()
    recent = lag_matrix(values, p.span - 1) if p.span > 1 else np.empty((values.size, 0))
    total = gjrx_horizon_variance(h_next, recent, p, horizon)
    return np.sqrt(pd.Series(total, index=r.index).reindex(dates).to_numpy())


def har_range_design(daily: pd.Series, dates: pd.DatetimeIndex) -> np.ndarray:
    """[1, ln mean over 1, 5, 22 days] of a daily range estimator (HAR on the log scale)."""
    columns = [log_floored(daily.rolling(n).mean().reindex(dates).to_numpy()) for n in HAR_SPANS]
    return np.column_stack([np.ones(len(dates)), *columns])


def har_range_vol(daily: pd.Series, train_dates: pd.DatetimeIndex, train_variance: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """HAR on a range estimator (Garman–Klass for the har_gk baseline), fit by OLS of the log
    target variance on the training days; the forecast exp(ẑ + s²/2) corrects the bias of
    exponentiating a log forecast under Gaussian log errors (without it, QLIKE on the
    S&P 500's validation years 2007–2010 was 35 % worse)."""
    design = har_range_design(daily, train_dates)
    z = np.log(train_variance)
    usable = ~np.isnan(design).any(axis=1) & np.isfinite(z)
    beta, *_ = np.linalg.lstsq(design[usable], z[usable], rcond=None)
    residual = z[usable] - design[usable] @ beta
    s2 = float(residual @ residual) / (usable.sum() - design.shape[1])
    return np.sqrt(np.exp(har_range_design(daily, dates) @ beta + 0.5 * s2))
