"""From a BundleConfig to a bundle directory: tune, walk forward, refit, export, document."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import bundle, card, tuning, walkforward
from .config import BundleConfig
from .data import BUILTIN_SERIES, PriceSeries, load_builtin, load_csv
from .features import PriceData
from .ranges import Bars
from .evaluation import evaluate, seed_summary
from .final import FinalModels, fit_final
from .forecasters.ensemble import BASE_MODELS
from .splits import Table, build_table

# Retraining with the same seed must land within this relative distance of every
# recorded primary metric (it is exact on one machine; BLAS and thread scheduling on
# another may move the last digits of the neural nets).
REPRODUCIBILITY_TOLERANCE = 0.02
LIBRARIES = ("numpy", "pandas", "PyWavelets", "torch", "xgboost", "optuna", "onnx", "onnxruntime", "onnxmltools", "arch", "scipy")


def load_series(config: BundleConfig) -> PriceSeries:
    if config.data in BUILTIN_SERIES:
        return load_builtin(config.data)
    return load_csv(config.data, missing=config.missing)


def _parity_cases(series: PriceSeries, config: BundleConfig) -> dict[str, PriceData]:
    """The series' last days, a constant, a trend and a random walk with a crash: closes, or
    bars (with a flat day and stale opens) for a spec with range channels."""
    rng = np.random.default_rng(config.seed)
    n = config.features.min_prices + 40
    shock = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    shock[n // 2 :] *= 0.9  # a 10 % fall on one day
    closes = {"constant": np.full(n, 100.0), "geometric-trend": 100.0 * 1.001 ** np.arange(n), "random-walk-with-crash": shock}
    last = f"{series.name}-last-{n + 40}"
    if not config.features.range_estimator:
        return {last: series.close.to_numpy()[-(n + 40) :], **closes}
    cases: dict[str, PriceData] = {last: Bars.from_series(series)[-(n + 40) :]}
    for name, close in closes.items():
        previous = np.r_[close[0], close[:-1]]
        open_ = previous * np.exp(rng.normal(0.0, 0.003, n))
        open_[: n // 4] = previous[: n // 4]  # stale opens, as in the S&P 500's early years
        spread = np.exp(np.abs(rng.normal(0.0, 0.005, n))) if name != "constant" else np.ones(n)
        high, low = np.maximum(open_, close) * spread, np.minimum(open_, close) / spread
        cases[name] = Bars(high=high, low=low, close=close, open=open_)
    return cases


def build_manifest(
    config: BundleConfig,
    series: PriceSeries,
    params: dict[str, dict[str, Any]],
    tuning_records: dict[str, dict[str, Any]],
    evaluation: dict[str, Any],
    quantized: dict[str, Any],
    final: FinalModels,
    table: Table,
    seconds: float,
    command: str,
) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for name in final.graphs:
        kind = name.removesuffix("_int8")
        entry: dict[str, Any] = {"precision": "int8-static" if name.endswith("_int8") else "float32"}
        if kind in BASE_MODELS:
            entry["hyperparameters"] = params[kind]
            entry["tuning"] = tuning_records[kind]
            if config.anchor:
                entry["anchor"] = {"feature": config.anchor, "prediction": f"{config.anchor} * exp(model), the model fit on log(target / {config.anchor})"}
        else:
            entry.update(final.stack.describe())  # type: ignore[union-attr]
        entry["calibration"] = final.calibration[name].describe()
        models[name] = entry
    last = max(config.test_years)
    y_train = table.y
    X_train, _ = table.design()
    return {
        "schema_version": bundle.SCHEMA_VERSION,
        "name": config.name,
        "version": config.version,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "description": config.description,
        "target": config.target.describe(),
        "features": config.features.describe(final.fitted),
        "default_model": "ensemble",
        "models": models,
        "conformal": {
            "method": "split conformal, score |y - prediction| / scale, interval prediction ± quantile * scale",
            "level": final.calibration["ensemble"].level,
            "scale": config.interval_scale,
            "scale_floor": final.calibration["ensemble"].scale_floor,
            "lower_bound_zero": config.target.kind == "volatility",
            "calibration_years": list(range(last - config.calibration_years + 1, last + 1)),
        },
        "target_range": {
            "min": float(y_train.min()),
            "max": float(y_train.max()),
            "p001": float(np.quantile(y_train, 0.001)),
            "p999": float(np.quantile(y_train, 0.999)),
            "note": "realized targets of the training rows; predictions outside [min, max] are anomalies",
        },
        "feature_range": {
            "min": X_train.min(axis=0).tolist(),
            "max": X_train.max(axis=0).tolist(),
            "note": "per feature, over the training rows; a request's value outside is input drift",
        },
        "evaluation": evaluation,
        "parity": final.parity,
        "quantized": {
            "tolerance": quantized["tolerance"],
            "decided_on_years": quantized["decided_on_years"],
            **{k: {**quantized[k], **final.quantized_report[k]} for k in walkforward.QUANTIZED},
        },
        "data": {**series.describe(), "used_from": config.data_start or series.start},
        "training": {
            "seconds": round(seconds, 1),
            "command": command,
            "machine": f"{platform.machine()}, {platform.system()}, Python {sys.version.split()[0]}",
            "seed": config.seed,
            "config": config.describe(),
            "library_versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES},
            "reproducibility_tolerance": REPRODUCIBILITY_TOLERANCE,
        },
    }


def train_bundle(config: BundleConfig, out: Path, command: str) -> str:
    """Train and write the bundle; returns its digest."""
    started = time.monotonic()
    series = load_series(config)
    table = build_table(series, config.features, config.target, config.data_start)

    params, records = {}, {}
    budget = config.tuning
    for kind in BASE_MODELS:
        params[kind], records[kind] = tuning.tune(
            kind, table, before_year=config.first_oos_year, folds=budget.folds, trials=getattr(budget, kind),
            timeout=budget.timeout_seconds, seed=config.seed, target=config.target, anchor=config.anchor_column,
        )

    # Every seed's walk-forward is reported (evaluation.seeds); the first one's predictions
    # also fit the shipped ensemble weights and intervals.
    wf = walkforward.run(config, table, params)
    runs = [wf, *(walkforward.run(config, table, params, seed=seed, first=wf) for seed in config.seed_list[1:])]
    evaluations = [evaluate(config, run) for run in runs]
    evaluation = evaluations[0]
    evaluation["seeds"] = seed_summary(config.seed_list, evaluations)
    quantized = evaluation.pop("quantized")
    shipped = {k: bool(quantized[k]["within_tolerance"]) for k in walkforward.QUANTIZED}
    final = fit_final(config, table, wf, params, shipped)
    seconds = time.monotonic() - started
    manifest = build_manifest(config, series, params, records, evaluation, quantized, final, table, seconds, command)

    positive = config.target.kind == "volatility"
    cases = [
        bundle.parity_case(name, prices, config.features, final.fitted, final.graphs,
                           lambda m, p, rows: final.calibration[m].interval(p, rows, positive=positive))
        for name, prices in _parity_cases(series, config).items()
    ]
    figures = card.plots(config, wf)
    files: dict[str, bytes] = dict(figures)
    files[bundle.FEATURE_NAMES] = (bundle.json_text(config.features.names)).encode()
    files[bundle.VECTORS] = bundle.json_text({
        "description": "raw prices -> each channel's per-day series -> feature rows -> each model's prediction (onnxruntime, float32) and interval",
        "feature_tolerance": 1e-9,
        "cases": cases,
    }).encode()
    files["model_card.md"] = card.markdown(config, manifest, sorted(figures)).encode()

    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    digest = bundle.write_bundle(staging, manifest, final.graphs, files)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return digest
