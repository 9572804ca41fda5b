"""One place that maps a base model's name to its class, defaults and search space."""

from __future__ import annotations

from typing import Any

from . import Forecaster
from . import torch_models, xgboost_model


def make(kind: str, params: dict[str, Any], *, seed: int, link: str) -> Forecaster:
    if kind == "xgboost":
        return xgboost_model.XGBoostForecaster(params, seed=seed, link=link)
    if kind in ("lstm", "transformer"):
        return torch_models.TorchForecaster(kind, params, seed=seed, link=link)  # type: ignore[arg-type]
    raise ValueError(f"unknown base model {kind!r}")


def search_space(kind: str, trial: Any) -> dict[str, Any]:
    if kind == "xgboost":
        return xgboost_model.search_space(trial)
    return torch_models.search_space(kind, trial)  # type: ignore[arg-type]
