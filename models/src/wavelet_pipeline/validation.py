"""Choosing a bundle's channels on validation years: the same tuning and walk-forward as
training, stopped at the last validation year, so nothing is computed on the test years."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, get_args

import numpy as np

from . import metrics as M
from . import tuning, walkforward
from .config import VALIDATION_YEARS, BundleConfig, validation_variant
from .evaluation import evaluate
from .forecasters.ensemble import BASE_MODELS, StackKind
from .splits import build_table, year_split
from .train import load_series


# Calibration windows (years of out-of-sample residuals) compared for the intervals.
CALIBRATION_CHOICES = (1, 2, 3, 4)


def validate(config: BundleConfig, candidates: dict[str, dict[str, Any]], seeds: int) -> dict[str, Any]:
    """Per candidate: every model's and baseline's QLIKE (or RMSE) on VALIDATION_YEARS, the
    ensemble's as mean and range over `seeds` walk-forwards, and the seconds it took."""
    if set(VALIDATION_YEARS) & set(config.test_years):
        raise ValueError("validation years overlap the test years")
    series = load_series(config)
    out: dict[str, Any] = {"validation_years": list(VALIDATION_YEARS), "seeds": seeds, "candidates": {}}
    for name, candidate in candidates.items():
        started = time.monotonic()
        run_config = dataclasses.replace(validation_variant(config, candidate), seeds=seeds)
        features = run_config.features
        table = build_table(series, features, config.target, config.data_start)
        params = {
            kind: tuning.tune(kind, table, before_year=config.first_oos_year, folds=config.tuning.folds,
                              trials=getattr(config.tuning, kind), timeout=config.tuning.timeout_seconds,
                              seed=config.seed, target=config.target, anchor=run_config.anchor_column)[0]
            for kind in BASE_MODELS
        }
        first = walkforward.run(run_config, table, params)
        runs = [first, *(walkforward.run(run_config, table, params, seed=s, first=first) for s in run_config.seed_list[1:])]
        evaluations = [evaluate(run_config, run) for run in runs]
        primary = evaluations[0]["primary_metric"]
        ensemble = [e["models"]["ensemble"][primary] for e in evaluations]
        stacks = {kind: [restacked_loss(run_config, run, kind) for run in runs] for kind in get_args(StackKind)} if config.target.kind == "volatility" else {}
        coverage = {years: [recalibrated_coverage(run_config, run, years) for run in runs] for years in CALIBRATION_CHOICES}
        mask = first.years_mask(VALIDATION_YEARS)
        by_year = {
            int(year): float(M.qlike(first.y[mask & (first.dates.year == year)] ** 2, first.predictions["ensemble"][mask & (first.dates.year == year)] ** 2))
            for year in VALIDATION_YEARS
        } if config.target.kind == "volatility" else {}
        out["candidates"][name] = {
            "ensemble_by_year_first_seed": by_year,
            "features": len(features.names),
            "anchor": run_config.anchor,
            "channels": features.channels,
            "ensemble": {"mean": float(np.mean(ensemble)), "min": min(ensemble), "max": max(ensemble)},
            "ensemble_coverage_by_calibration_years": {str(k): {"mean": float(np.mean(v)), "min": min(v), "max": max(v)} for k, v in coverage.items()},
            "ensemble_by_stack": {k: {"mean": float(np.mean(v)), "min": min(v), "max": max(v)} for k, v in stacks.items()},
            "models": {m: row[primary] for m, row in evaluations[0]["models"].items()},
            "baselines": {b: row[primary] for b, row in evaluations[0]["baselines"].items() if primary in row},
            "seconds": round(time.monotonic() - started, 1),
        }
    return out


def recalibrated_coverage(config: BundleConfig, wf: walkforward.WalkForward, years_back: int) -> float:
    """The ensemble's pooled interval coverage on the validation years had each year been
    calibrated on the `years_back` out-of-sample years before it."""
    lower, upper = np.full(wf.rows.size, np.nan), np.full(wf.rows.size, np.nan)
    position = {row: i for i, row in enumerate(wf.rows)}
    for year in VALIDATION_YEARS:
        train, test = year_split(wf.table, year)
        at = np.array([position[r] for r in test])
        interval = walkforward.interval_year(config, wf, "ensemble", np.isin(wf.rows, train), year, at, years_back)
        if interval is not None:
            lower[at], upper[at] = interval
    mask = wf.years_mask(VALIDATION_YEARS)
    return float(np.mean((wf.y[mask] >= lower[mask]) & (wf.y[mask] <= upper[mask])))


def restacked_loss(config: BundleConfig, wf: walkforward.WalkForward, kind: StackKind) -> float:
    """The ensemble's QLIKE on the validation years had its members been stacked by `kind`."""
    out = np.full(wf.rows.size, np.nan)
    position = {row: i for i, row in enumerate(wf.rows)}
    for year in range(config.first_oos_year, max(config.test_years) + 1):
        train, test = year_split(wf.table, year)
        walkforward.stack_year(config, wf, np.isin(wf.rows, train), np.array([position[r] for r in test]), kind, out=out)
    mask = wf.years_mask(VALIDATION_YEARS)
    return float(M.qlike(wf.y[mask] ** 2, out[mask] ** 2))
