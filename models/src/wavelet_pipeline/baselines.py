"""Naive and classical forecasts that every model is reported next to, on the same days."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from arch import arch_model

from .features import GarchParams

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
