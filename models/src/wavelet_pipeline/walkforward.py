"""Walk-forward evaluation: expanding window, every model refit at the start of each year.

For every out-of-sample year Y the base models train on the purged rows before Y and
predict Y. The ensemble's weights for Y are fit on the base models' predictions for the
out-of-sample years before Y, and each model's conformal interval for Y is calibrated on
its own residuals in the `calibration_years` before Y, both on the same purged rows: the
last rows of Y−1, whose targets end inside Y, are left out. So every prediction, weight and
interval reported for a day was made with data that existed before that day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import baselines, onnx_tools, ranges
from .conformal import calibrate
from .config import BundleConfig
from .forecasters import registry
from .forecasters.ensemble import BASE_MODELS, StackKind, StackWeights, fit_stack, members, space_for, stack_inputs
from .splits import Table, year_split

QUANTIZED = ("lstm", "transformer")
MODELS = (*BASE_MODELS, "ensemble")


@dataclass
class WalkForward:
    table: Table
    rows: np.ndarray  # table rows of every out-of-sample year, in order
    X: np.ndarray  # their feature vectors as the year's models saw them (fitted channels per year)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # NaN where a model had no history yet
    lower: dict[str, np.ndarray] = field(default_factory=dict)
    upper: dict[str, np.ndarray] = field(default_factory=dict)
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    stack_weights: dict[int, dict[str, object]] = field(default_factory=dict)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return self.table.dates[self.rows]

    @property
    def y(self) -> np.ndarray:
        return self.table.y[self.rows]

    def years_mask(self, years: list[int] | tuple[int, ...]) -> np.ndarray:
        return np.isin(self.dates.year, years)


def _baselines(config: BundleConfig, table: Table, train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    dates, h, returns = table.dates[test], table.horizon, table.returns
    if config.target.kind == "return":
        return {
            "random_walk": np.zeros(test.size),
            "historical_mean": baselines.historical_mean(returns, dates, h),
        }
    out = {
        **{kind: baselines.garch_family_vol(kind, returns, dates, h) for kind in baselines.GARCH_FAMILY},
        "har": baselines.har_vol(returns, table.dates[train], table.y[train] ** 2, dates),
        "random_walk": baselines.random_walk_vol(returns, dates, h),
    }
    if table.bars is not None:
        out.update(range_baselines(table, train, test))
    return out


def range_baselines(table: Table, train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """The baselines that read bars: HAR on Garman–Klass variance (Parkinson where the source
    has no opens, or on stale-open days) and GJR-GARCH-X with Parkinson's mean of
    baselines.GARCHX_SPAN days, both refit on the days before the test year."""
    dates, h = table.dates[test], table.horizon
    bars = table.bars
    assert bars is not None
    gk = pd.Series(ranges.daily_estimator(bars, "garman_klass" if bars.open is not None else "parkinson"), index=table.days)
    park = pd.Series(ranges.daily_estimator(bars, "parkinson"), index=table.days)
    params = baselines.fit_gjrx(table.returns, park, baselines.GARCHX_SPAN, before=dates[0])
    return {
        "har_gk": baselines.har_range_vol(gk, table.dates[train], table.y[train] ** 2, dates),
        "garch_x": baselines.garchx_vol(table.returns, park, params, dates, h),
    }


def stack_year(config: BundleConfig, wf: WalkForward, known: np.ndarray, at: np.ndarray, kind: StackKind,
               out: np.ndarray | None = None) -> StackWeights | None:
    """Fits the ensemble for the days `at` on the out-of-sample days whose targets were known
    when their year began (`known`, as for training) and writes its predictions into `out`
    (default: wf.predictions["ensemble"]); None when no such day exists yet."""
    earlier = np.flatnonzero(known)
    if not earlier.size:
        return None
    inputs = stack_inputs(config.features, wf.predictions, wf.X)
    stack = fit_stack(inputs[earlier], wf.y[earlier], members(config.features), space_for(config.target.kind), kind)
    (wf.predictions["ensemble"] if out is None else out)[at] = stack.combine(inputs[at])
    return stack


def interval_year(config: BundleConfig, wf: WalkForward, name: str, known: np.ndarray, year: int, at: np.ndarray,
                  years_back: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Model `name`'s intervals for the days `at` of `year`, calibrated on its residuals on the
    known out-of-sample days of the `years_back` years before; None without such days."""
    usable = known & wf.years_mask(list(range(year - years_back, year))) & ~np.isnan(wf.predictions[name])
    if not usable.any():
        return None
    cal = calibrate(wf.y[usable], wf.predictions[name][usable], wf.X[usable], config.interval_scale)
    return cal.interval(wf.predictions[name][at], wf.X[at], positive=config.target.kind == "volatility")


def run(config: BundleConfig, table: Table, params: dict[str, dict[str, Any]], seed: int | None = None,
        first: WalkForward | None = None) -> WalkForward:
    """The walk-forward of every model; `seed` (default: the config's) seeds every fit.

    Given `first`, the run of another seed, this one reruns only what a seed changes: the
    baselines are copied from it and the int8 variants (whose shipping is decided on the
    first run) are not rebuilt."""
    seed = config.seed if seed is None else seed
    years = list(range(config.first_oos_year, max(config.test_years) + 1))
    rows = np.concatenate([table.rows_in_year(y) for y in years])
    wf = WalkForward(table=table, rows=rows, X=np.full((rows.size, len(config.features.names)), np.nan))
    n = wf.rows.size
    names = MODELS if first else (*MODELS, *(f"{q}_int8" for q in QUANTIZED))
    for name in names:
        wf.predictions[name] = np.full(n, np.nan)
        wf.lower[name] = np.full(n, np.nan)
        wf.upper[name] = np.full(n, np.nan)
    position = {row: i for i, row in enumerate(wf.rows)}
    target = config.target

    for year in tqdm(years, desc=f"walk-forward {config.name} seed {seed}", unit="year"):
        train, test = year_split(table, year)
        at = np.array([position[r] for r in test])
        X, _ = table.design(int(test[0]))
        X_train, z_train, X_test = X[train], target.to_link(table.y[train]), X[test]
        wf.X[at] = X_test
        for kind in BASE_MODELS:
            model = registry.make(kind, params[kind], seed=seed, target=target, channels=len(config.features.channels), anchor=config.anchor_column)
            model.fit(X_train, z_train)
            wf.predictions[kind][at] = target.from_link(model.predict(X_test))
            if kind in QUANTIZED and not first:
                wf.predictions[f"{kind}_int8"][at] = onnx_tools.predict(onnx_tools.quantize_int8(model.to_onnx(for_quantization=True), X_train), X_test)

        known = np.isin(wf.rows, train)
        stack = stack_year(config, wf, known, at, config.stack)
        if stack is not None:
            wf.stack_weights[year] = stack.describe()

        for name in names:
            interval = interval_year(config, wf, name, known, year, at, config.calibration_years)
            if interval is not None:
                wf.lower[name][at], wf.upper[name][at] = interval

        if not first:
            for name, values in _baselines(config, table, train, test).items():
                wf.baselines.setdefault(name, np.full(n, np.nan))[at] = values
    if first:
        wf.baselines = first.baselines
    return wf
