"""Hyperparameter search with Optuna on validation folds inside the training window.

Folds are the last `folds` whole years before the first out-of-sample year; each trains on
the purged rows before its year and scores that year, so no day the walk-forward later
reports is ever seen while tuning. TPE is seeded; the trial count is fixed and a timeout
only guards slow machines.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna
from tqdm import tqdm

from .forecasters import registry
from .splits import Table, year_split

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune(
    kind: str,
    table: Table,
    *,
    before_year: int,
    folds: int,
    trials: int,
    timeout: float,
    seed: int,
    link_fn: Any,
    link: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Best parameters for `kind` and a record of the search."""
    fold_years = list(range(before_year - folds, before_year))
    splits = [year_split(table, year) for year in fold_years]

    def objective(trial: optuna.Trial) -> float:
        params = registry.search_space(kind, trial)
        losses = []
        for train, valid in splits:
            model = registry.make(kind, params, seed=seed, link=link)
            model.fit(table.X[train], link_fn(table.y[train]))
            losses.append(float(np.mean((model.predict(table.X[valid]) - link_fn(table.y[valid])) ** 2)))
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
        "best_validation_mse_link_space": study.best_value,
        "sampler": "TPE",
    }
    return registry.search_space(kind, optuna.trial.FixedTrial(study.best_params)), record
