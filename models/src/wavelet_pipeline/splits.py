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

from .baselines import daily_returns, fit_gjr, fit_gjrx
from .data import PriceSeries
from . import ranges
from .features import ChannelParams, FeatureSpec, feature_matrix, fitted_channels, lag_matrix
from .ranges import Bars
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
    days: pd.DatetimeIndex | None = None  # every day from the data start (of `prices`)
    bars: Bars | None = None  # every bar from the data start, for specs with range channels
    _designs: dict[object, tuple[np.ndarray, ChannelParams]] = field(default_factory=dict, compare=False, repr=False)

    def rows_in_year(self, year: int) -> np.ndarray:
        return np.flatnonzero(self.dates.year == year)

    def train_rows_before(self, first_row: int) -> np.ndarray:
        """Rows whose targets were all realized before `first_row`'s day."""
        return np.arange(0, max(0, first_row - self.horizon))

    def daily_range(self) -> pd.Series:
        """The range channels' daily estimator of every day from the data start, by date."""
        if self.bars is None:
            raise ValueError("this table has no bars")
        return pd.Series(ranges.daily_estimator(self.bars, self.features.range_estimator), index=self.days)  # type: ignore[arg-type]

    def design(self, before_row: int | None = None) -> tuple[np.ndarray, ChannelParams]:
        """Every row's feature vector for a model refit just before row `before_row` (None:
        after the last row), and the fitted feature parameters it used: the GJR and GJR-X
        channels' parameters are estimated on the days before that day only."""
        if before_row not in self._designs:
            spec = self.features
            if not spec.garch_trailing:
                self._designs[before_row] = (self.static, ChannelParams())
            else:
                cutoff = None if before_row is None else self.dates[before_row]
                fitted = ChannelParams(
                    gjr=fit_gjr(self.returns, before=cutoff),
                    gjrx=fit_gjrx(self.returns, self.daily_range(), spec.garchx_span, before=cutoff) if spec.garchx_span else None,
                )
                series = fitted_channels(self.prices if self.bars is None else self.bars, spec, fitted)
                columns = [lag_matrix(values, spec.window)[self.positions] for values in series.values()]
                self._designs[before_row] = (np.hstack([self.static, *columns]), fitted)
        return self._designs[before_row]


def build_table(series: PriceSeries, features: FeatureSpec, target: TargetSpec, start: str | None = None) -> Table:
    close = series.close if start is None else series.close[start:]
    prices = close.to_numpy()
    bars = None
    if features.range_estimator:
        bars = Bars.from_series(series)[int(series.close.index.get_indexer([close.index[0]])[0]) :]
    # Fitted channels (GJR, GJR-X: the last ones) are left out here and added per fit by design().
    X = feature_matrix(prices if bars is None else bars, replace(features, garch_trailing=0, garchx_span=0))
    y = target.values(prices)
    usable = (np.arange(prices.size) >= features.min_prices - 1) & ~np.isnan(X).any(axis=1) & ~np.isnan(y)
    return Table(
        dates=close.index[usable], y=y[usable], close=prices[usable], horizon=target.horizon, features=features,
        returns=daily_returns(close), static=X[usable], prices=prices, positions=np.flatnonzero(usable), days=close.index, bars=bars,
    )


def year_split(table: Table, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) for a refit at the start of `year`."""
    test = table.rows_in_year(year)
    if test.size == 0:
        raise ValueError(f"no rows in {year}")
    return table.train_rows_before(int(test[0])), test
