"""The modelling table and its time-ordered splits.

A row is a day t with its feature vector and its target, which is only known once
t+horizon has closed. A model refit just before day i0 may only learn from rows whose
targets were known then: rows i ≤ i0 − 1 − horizon (the purge). Without it a 5-day target
would let training rows peek into the test year.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .baselines import daily_returns, fit_gjr
from .data import PriceSeries
from .features import FeatureSpec, GarchParams, feature_matrix, gjr_volatility, lag_matrix
from .targets import TargetSpec


@dataclass(frozen=True)
class Table:
    dates: pd.DatetimeIndex
    y: np.ndarray
    close: np.ndarray  # price at t, for price-level comparisons
    horizon: int
    features: FeatureSpec
    returns: pd.Series  # percent log returns of every day from the data start, by date
    static: np.ndarray  # the columns of channels that have no fitted parameters
    prices: np.ndarray  # every close from the data start (fitted channels are recomputed from them)
    positions: np.ndarray  # each row's index in `prices`
    _designs: dict[object, tuple[np.ndarray, GarchParams | None]] = field(default_factory=dict, compare=False, repr=False)

    def rows_in_year(self, year: int) -> np.ndarray:
        return np.flatnonzero(self.dates.year == year)

    def train_rows_before(self, first_row: int) -> np.ndarray:
        """Rows whose targets were all realized before `first_row`'s day."""
        return np.arange(0, max(0, first_row - self.horizon))

    def design(self, before_row: int | None = None) -> tuple[np.ndarray, GarchParams | None]:
        """Every row's feature vector for a model refit just before row `before_row` (None:
        after the last row), and the fitted feature parameters it used: the GJR channel's
        parameters are estimated on the returns before that day only."""
        if before_row not in self._designs:
            if not self.features.garch_trailing:
                self._designs[before_row] = (self.static, None)
            else:
                cutoff = None if before_row is None else self.dates[before_row]
                params = fit_gjr(self.returns, before=cutoff)
                gjr = lag_matrix(gjr_volatility(self.prices, self.features, params), self.features.window)
                self._designs[before_row] = (np.hstack([self.static, gjr[self.positions]]), params)
        return self._designs[before_row]


def build_table(series: PriceSeries, features: FeatureSpec, target: TargetSpec, start: str | None = None) -> Table:
    close = series.close if start is None else series.close[start:]
    prices = close.to_numpy()
    # Fitted channels (the GJR one, last) are left out here and added per fit by design().
    X = feature_matrix(prices, replace(features, garch_trailing=0))
    y = target.values(prices)
    usable = (np.arange(prices.size) >= features.min_prices - 1) & ~np.isnan(X).any(axis=1) & ~np.isnan(y)
    return Table(
        dates=close.index[usable], y=y[usable], close=prices[usable], horizon=target.horizon, features=features,
        returns=daily_returns(close), static=X[usable], prices=prices, positions=np.flatnonzero(usable),
    )


def year_split(table: Table, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) for a refit at the start of `year`."""
    test = table.rows_in_year(year)
    if test.size == 0:
        raise ValueError(f"no rows in {year}")
    return table.train_rows_before(int(test[0])), test
