"""Hyperparameter search with Optuna on validation folds inside the training window.

Folds are the last `folds` whole years before the first out-of-sample year; each trains on
the purged rows before its year and scores that year, so no day the walk-forward later
reports is ever seen while tuning. Trials are scored on the loss the model is judged by:
QLIKE of the volatility forecast (so a log-link model's bias offset is tuned too), MSE of a
return. TPE is seeded; the trial count is fixed and a timeout only guards slow machines.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna
from tqdm import tqdm

from .forecasters import registry
from .metrics import qlike
from .splits import Table, year_split
from .targets import TargetSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def loss(target: TargetSpec, y: np.ndarray, prediction: np.ndarray) -> float:
    if target.kind == "volatility":
        return qlike(y * y, prediction * prediction)
    return float(np.mean((y - prediction) ** 2))


def tune(
    kind: str,
    table: Table,
    *,
    before_year: int,
    folds: int,
    trials: int,
    timeout: float,
    seed: int,
    target: TargetSpec,
    anchor: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Best parameters for `kind` and a record of the search."""
    fold_years = list(range(before_year - folds, before_year))
    splits = [(*year_split(table, year), table.design(int(table.rows_in_year(year)[0]))[0]) for year in fold_years]
    channels = len(table.features.channels)

    def objective(trial: optuna.Trial) -> float:
        params = registry.search_space(kind, trial)
        losses = []
        for train, valid, X in splits:
            model = registry.make(kind, params, seed=seed, target=target, channels=channels, anchor=anchor)
            model.fit(X[train], target.to_link(table.y[train]))
            losses.append(loss(target, table.y[valid], target.from_link(model.predict(X[valid]))))
        return float(np.mean(losses))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    started = time.monotonic()
    with tqdm(total=trials, desc=f"tune {kind}", unit="trial", leave=False) as bar:
        study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[lambda *_: bar.update()])
    record = {
        "trials_requested": trials,
        "trials_completed": len(study.trials),
        "seconds": round(time.monotonic() - started, 1),
        "validation_years": fold_years,
        "best_validation_loss": study.best_value,
        "loss": "qlike" if target.kind == "volatility" else "mse",
        "sampler": "TPE",
    }
    return registry.search_space(kind, optuna.trial.FixedTrial(study.best_params)), record
