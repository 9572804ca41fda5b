"""One place that maps a base model's name to its class, defaults and search space."""

from __future__ import annotations

from typing import Any

from . import Forecaster
from . import torch_models, xgboost_model
from ..targets import TargetSpec


def make(kind: str, params: dict[str, Any], *, seed: int, target: TargetSpec, channels: int) -> Forecaster:
    """A base model for `target` (its link, and its horizon as the gap before held-out rows);
    `channels`: how many per-day series the feature vector holds (the sequence models read it
    as `window` steps of `channels` values)."""
    if kind == "xgboost":
        return xgboost_model.XGBoostForecaster(params, seed=seed, link=target.link, gap=target.horizon)
    if kind in ("lstm", "transformer"):
        return torch_models.TorchForecaster(kind, params, seed=seed, link=target.link, channels=channels, gap=target.horizon)  # type: ignore[arg-type]
    raise ValueError(f"unknown base model {kind!r}")


def search_space(kind: str, trial: Any) -> dict[str, Any]:
    if kind == "xgboost":
        return xgboost_model.search_space(trial)
    return torch_models.search_space(kind, trial)  # type: ignore[arg-type]
