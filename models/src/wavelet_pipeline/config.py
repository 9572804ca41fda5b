"""What a bundle is trained from: data, target, features, evaluation years and budgets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .conformal import ScaleKind
from .data import MissingPolicy
from .features import FeatureSpec
from .targets import NEXT_DAY_RETURN, REALIZED_VOL_5D, TargetSpec


@dataclass(frozen=True)
class TuningBudget:
    """Optuna trials per model; the timeout only guards slow machines (the trial count
    actually run is recorded, since a timeout makes results depend on the machine)."""

    xgboost: int = 50
    lstm: int = 16
    transformer: int = 16
    timeout_seconds: float = 300.0
    folds: int = 3


@dataclass(frozen=True)
class BundleConfig:
    name: str
    version: str
    description: str
    data: str  # a built-in series name, or a CSV path
    target: TargetSpec
    features: FeatureSpec
    interval_scale: ScaleKind
    # Walk-forward: models are refit at the start of every year from first_oos_year on.
    # Years before the first test year only feed the ensemble and the conformal calibration.
    first_oos_year: int = 2007
    test_years: tuple[int, ...] = tuple(range(2011, 2019))
    calibration_years: int = 3
    data_start: str | None = None
    missing: MissingPolicy = "error"  # for CSV data; see data.py
    seed: int = 20170101
    tuning: TuningBudget = TuningBudget()
    quick: bool = False
    # Bao, Yue & Rao (2017) report S&P 500 next-day close, Oct 2010 – Sep 2016.
    anchor_period: tuple[str, str] | None = None

    def quick_variant(self) -> BundleConfig:
        """A cut-down run for tests: fewer years, trials and epochs, same code path."""
        return dataclasses.replace(
            self,
            first_oos_year=2015,
            test_years=(2017, 2018),
            calibration_years=2,
            data_start="2008-01-01",
            tuning=TuningBudget(xgboost=3, lstm=2, transformer=2, timeout_seconds=30.0, folds=2),
            quick=True,
            anchor_period=None,
        )

    def describe(self) -> dict[str, object]:
        return {
            "data": self.data,
            "data_start": self.data_start,
            "missing": self.missing,
            "first_oos_year": self.first_oos_year,
            "test_years": list(self.test_years),
            "calibration_years": self.calibration_years,
            "seed": self.seed,
            "quick": self.quick,
            "tuning_budget": dataclasses.asdict(self.tuning),
        }


SPX_RETURN_1D = BundleConfig(
    name="spx-return-1d",
    version="1.0.0",
    description="Next-day S&P 500 log return from causally wavelet-denoised returns",
    data="sp500",
    target=NEXT_DAY_RETURN,
    features=FeatureSpec(series="log_return_pct"),
    interval_scale="rms_features",
    anchor_period=("2010-10-01", "2016-09-30"),
)
SPX_VOL_5D = BundleConfig(
    name="spx-vol-5d",
    version="1.0.0",
    description="S&P 500 realized volatility over the next 5 days from causally wavelet-denoised squared returns",
    data="sp500",
    target=REALIZED_VOL_5D,
    features=FeatureSpec(series="squared_return_pct"),
    interval_scale="prediction",
)
BUNDLES = {c.name: c for c in (SPX_RETURN_1D, SPX_VOL_5D)}
