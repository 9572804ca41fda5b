"""The modelling table and its time-ordered splits.

A row is a day t with its feature vector and its target, which is only known once
t+horizon has closed. A model refit just before day i0 may only learn from rows whose
targets were known then: rows i ≤ i0 − 1 − horizon (the purge). Without it a 5-day target
would let training rows peek into the test year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import PriceSeries
from .features import FeatureSpec, feature_matrix
from .targets import TargetSpec


@dataclass(frozen=True)
class Table:
    dates: pd.DatetimeIndex
    X: np.ndarray
    y: np.ndarray
    close: np.ndarray  # price at t, for price-level comparisons
    horizon: int

    def rows_in_year(self, year: int) -> np.ndarray:
        return np.flatnonzero(self.dates.year == year)

    def train_rows_before(self, first_row: int) -> np.ndarray:
        """Rows whose targets were all realized before `first_row`'s day."""
        return np.arange(0, max(0, first_row - self.horizon))


def build_table(series: PriceSeries, features: FeatureSpec, target: TargetSpec, start: str | None = None) -> Table:
    close = series.close if start is None else series.close[start:]
    prices = close.to_numpy()
    X = feature_matrix(prices, features)
    y = target.values(prices)
    usable = ~np.isnan(X).any(axis=1) & ~np.isnan(y)
    return Table(dates=close.index[usable], X=X[usable], y=y[usable], close=prices[usable], horizon=target.horizon)


def year_split(table: Table, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) for a refit at the start of `year`."""
    test = table.rows_in_year(year)
    if test.size == 0:
        raise ValueError(f"no rows in {year}")
    return table.train_rows_before(int(test[0])), test
