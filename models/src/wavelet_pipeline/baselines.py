"""Naive and classical forecasts that every model is reported next to, on the same days."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from arch import arch_model

# HAR fits variances by OLS and can answer below zero; forecasts are floored here (%²).
HAR_VARIANCE_FLOOR = 1e-4


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


def garch_vol(returns: pd.Series, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """GARCH(1,1) fit on the returns before dates[0]; each day's forecast then filters the
    returns up to that day with the parameters held fixed."""
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(last_obs=dates[0], disp="off")  # last_obs is exclusive
        forecast = fitted.forecast(horizon=horizon, start=dates[0], reindex=False, method="analytic")
    variance = forecast.variance.reindex(dates).to_numpy().sum(axis=1)
    return np.sqrt(variance)


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
