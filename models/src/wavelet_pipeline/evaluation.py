"""Out-of-sample metrics on the test years, every model beside the naive baselines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import metrics as M
from .config import BundleConfig
from .walkforward import MODELS, QUANTIZED, WalkForward

# Bao, Yue & Rao (2017), PLoS ONE 12(7): e0180944, Table 6, S&P 500, WSAEs-LSTM.
BAO_2017_SP500 = {"MAPE": 0.011, "R": 0.946, "TheilU": 0.007}
# An int8 variant ships only if its primary out-of-sample loss (MSE for returns, QLIKE for
# volatility) is at most this much worse than the float model's, relative.
QUANTIZED_LOSS_TOLERANCE = 0.01
# ... and, for returns, its directional accuracy at most this much lower (fraction).
QUANTIZED_DIRECTION_TOLERANCE = 0.005
# Volatility forecasts are tested against these baselines (those a bundle has: the range ones
# need bars); GJR-GARCH is the strongest classical one from closes, GARCH-X the one from ranges.
VOL_DM_BENCHMARKS = ("gjr_garch", "garch", "har", "garch_x", "har_gk")


def _return_metrics(y: np.ndarray, f: np.ndarray, hist_mean: np.ndarray) -> dict[str, float]:
    zero = np.zeros_like(y)
    return {
        "rmse": M.rmse(y, f),
        "mae": M.mae(y, f),
        "directional_accuracy": M.directional_accuracy(y, f),
        "r2_oos_vs_historical_mean": M.r2_oos(y, f, hist_mean),
        "theil_u_vs_random_walk": M.theil_u2(y, f, zero),
    }


def _vol_losses(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    ratio = (y * y) / (f * f)
    return ratio - np.log(ratio) - 1.0


def _vol_metrics(y: np.ndarray, f: np.ndarray) -> dict[str, float]:
    return {
        "qlike": M.qlike(y * y, f * f),
        "mse_variance": M.mse(y * y, f * f),
        "rmse_vol": M.rmse(y, f),
        "mae_vol": M.mae(y, f),
    }


def _rounded(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {m: M.significant(v) for m, v in row.items()} for k, row in table.items()}


def _model_metrics(config: BundleConfig, wf: WalkForward, mask: np.ndarray) -> dict[str, dict[str, float]]:
    """Every model's metrics on the days of `mask`."""
    y = wf.y[mask]
    if config.target.kind == "return":
        hist = wf.baselines["historical_mean"][mask]
        return {name: _return_metrics(y, values[mask], hist) for name, values in wf.predictions.items()}
    return {name: _vol_metrics(y, values[mask]) for name, values in wf.predictions.items()}


def evaluate(config: BundleConfig, wf: WalkForward) -> dict[str, Any]:
    mask = wf.years_mask(config.test_years)
    y, dates = wf.y[mask], wf.dates[mask]
    preds = {name: values[mask] for name, values in wf.predictions.items()}
    base = {name: values[mask] for name, values in wf.baselines.items()}
    result: dict[str, Any] = {
        "scheme": "walk-forward, expanding window, every model refit at the start of each test year",
        "period": {"start": f"{dates[0]:%Y-%m-%d}", "end": f"{dates[-1]:%Y-%m-%d}", "days": int(mask.sum())},
        "test_years": list(config.test_years),
    }
    models = _model_metrics(config, wf, mask)
    if config.target.kind == "return":
        hist = base["historical_mean"]
        baseline_rows = {name: _return_metrics(y, base[name], hist) for name in base}
        del baseline_rows["random_walk"]["directional_accuracy"]  # a zero forecast calls no direction
        ups = y[y != 0] > 0
        baseline_rows["always_up"] = {"directional_accuracy": float(ups.mean())}
        tests = {
            name: {
                "vs_random_walk": M.diebold_mariano((y - preds[name]) ** 2, y**2, 1),
                "vs_historical_mean": M.diebold_mariano((y - preds[name]) ** 2, (y - hist) ** 2, 1),
            }
            for name in MODELS
        }
        primary = "rmse"
    else:
        baseline_rows = {name: _vol_metrics(y, base[name]) for name in base}
        h = config.target.horizon
        tests = {
            name: {
                f"qlike_vs_{b}": M.diebold_mariano(_vol_losses(y, preds[name]), _vol_losses(y, base[b]), h)
                for b in VOL_DM_BENCHMARKS
                if b in base
            }
            for name in MODELS
        }
        primary = "qlike"
    result["primary_metric"] = primary
    result["models"] = _rounded(models)
    result["baselines"] = _rounded(baseline_rows)
    result["diebold_mariano"] = {k: {t: {m: M.significant(v) for m, v in r.items()} for t, r in row.items()} for k, row in tests.items()}
    result["coverage"] = _coverage(config, wf, mask)
    if all(f"{q}_int8" in wf.predictions for q in QUANTIZED):
        # Whether an int8 model ships is decided on the out-of-sample years before the test years.
        before = list(range(config.first_oos_year, min(config.test_years)))
        result["quantized"] = {**_quantized(config, _model_metrics(config, wf, wf.years_mask(before))), "decided_on_years": before}
    if config.anchor_period is not None:
        result["anchor"] = _anchor(config, wf)
    return result


def _coverage(config: BundleConfig, wf: WalkForward, mask: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"nominal": 0.9}
    for name in wf.predictions:
        lo, hi, y = wf.lower[name][mask], wf.upper[name][mask], wf.y[mask]
        inside = (y >= lo) & (y <= hi)
        years = wf.dates[mask].year
        out[name] = {
            "coverage": M.significant(float(inside.mean())),
            "mean_width": M.significant(float(np.mean(hi - lo))),
            "by_year": {int(yr): M.significant(float(inside[years == yr].mean())) for yr in config.test_years},
        }
    return out


def _quantized(config: BundleConfig, models: dict[str, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tolerance": {
            "primary_loss_relative": QUANTIZED_LOSS_TOLERANCE,
            **({"directional_accuracy_drop": QUANTIZED_DIRECTION_TOLERANCE} if config.target.kind == "return" else {}),
        }
    }
    loss = "rmse" if config.target.kind == "return" else "qlike"
    for name in QUANTIZED:
        fp32, int8 = models[name], models[f"{name}_int8"]
        # MSE ratio = RMSE ratio squared.
        worse = (int8[loss] / fp32[loss]) ** (2 if loss == "rmse" else 1) - 1.0
        ok = worse <= QUANTIZED_LOSS_TOLERANCE
        entry = {"primary_loss_change_relative": M.significant(worse)}
        if config.target.kind == "return":
            drop = fp32["directional_accuracy"] - int8["directional_accuracy"]
            entry["directional_accuracy_drop"] = M.significant(drop)
            ok = ok and drop <= QUANTIZED_DIRECTION_TOLERANCE
        entry["within_tolerance"] = bool(ok)
        out[name] = entry
    return out


def prediction_year(dates: pd.DatetimeIndex, start: str) -> np.ndarray:
    """0 for the first twelve months from `start`'s month on, 1 for the next twelve, ..."""
    first = pd.Timestamp(start)
    return np.asarray((dates.year - first.year) * 12 + (dates.month - first.month)) // 12


def _anchor(config: BundleConfig, wf: WalkForward) -> dict[str, Any]:
    """Next-day close as a price level over the period Bao, Yue & Rao report, scored as they
    did: per prediction year (October to September), then averaged over the years."""
    start, end = config.anchor_period  # type: ignore[misc]
    period = (wf.dates >= start) & (wf.dates <= end)
    year_of = prediction_year(wf.dates, start)
    close = wf.table.close[wf.rows]
    actual = close * np.exp(wf.y / 100.0)
    forecasts = {name: close * np.exp(wf.predictions[name] / 100.0) for name in MODELS}
    forecasts["random_walk"] = close

    def level_metrics(mask: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        return {
            "MAPE": M.mape(actual[mask], predicted[mask]),
            "R": M.correlation(actual[mask], predicted[mask]),
            "TheilU": M.theil_u1(actual[mask], predicted[mask]),
        }

    years = sorted(set(year_of[period]))
    rows = {}
    for name, predicted in forecasts.items():
        per_year = [level_metrics(period & (year_of == k), predicted) for k in years]
        rows[name] = {m: M.significant(float(np.mean([r[m] for r in per_year]))) for m in ("MAPE", "R", "TheilU")}
    return {
        "period": {"start": start, "end": end, "days": int(period.sum()), "prediction_years": len(years),
                   "dates_are": "forecast origins t (target is the close of t+1)"},
        "scoring": "each metric per prediction year (October to September), averaged over the years, as Bao et al. report",
        "ours": rows,
        "bao_yue_rao_2017_wsae_lstm": BAO_2017_SP500,
        "note": (
            "Price-level metrics are dominated by the level itself: the random walk scores R near 1 and a "
            "small MAPE without any skill. Compare every model with the random-walk row."
        ),
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": M.significant(float(np.mean(values))), "min": M.significant(min(values)), "max": M.significant(max(values))}


def seed_summary(seeds: list[int], evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """Every model's metrics, coverage and Diebold-Mariano results as mean, min and max over
    the walk-forwards of `seeds` (the baselines do not depend on the seed)."""
    first = evaluations[0]
    # The int8 variants are built on the first seed's run only.
    everywhere = [name for name in first["models"] if all(name in e["models"] for e in evaluations)]
    return {
        "seeds": seeds,
        "models": {
            name: {m: _spread([e["models"][name][m] for e in evaluations]) for m in first["models"][name]}
            for name in everywhere
        },
        "coverage": {name: _spread([e["coverage"][name]["coverage"] for e in evaluations]) for name in everywhere},
        "diebold_mariano": {
            name: {test: {k: _spread([e["diebold_mariano"][name][test][k] for e in evaluations]) for k in ("mean_loss_difference", "hac_p_value", "p_value")}
                   for test in tests}
            for name, tests in first["diebold_mariano"].items()
        },
    }
