"""One place that maps a base model's name to its class, defaults and search space."""

from __future__ import annotations

from typing import Any

from . import Forecaster
from . import torch_models, xgboost_model
from .anchored import Anchored
from ..targets import TargetSpec


def make(kind: str, params: dict[str, Any], *, seed: int, target: TargetSpec, channels: int, anchor: int | None = None) -> Forecaster:
    """A base model for `target` (its link, and its horizon as the gap before held-out rows);
    `channels`: how many per-day series the feature vector holds (the sequence models read it
    as `window` steps of `channels` values); `anchor`: the feature column it is anchored on
    (anchored.py), if any."""
    model: Forecaster
    if kind == "xgboost":
        model = xgboost_model.XGBoostForecaster(params, seed=seed, link=target.link, gap=target.horizon)
    elif kind in ("lstm", "transformer"):
        model = torch_models.TorchForecaster(kind, params, seed=seed, link=target.link, channels=channels, gap=target.horizon)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown base model {kind!r}")
    if anchor is None:
        return model
    if target.link != "log":
        raise ValueError("only a log-link target can be anchored")
    return Anchored(model, anchor)


def search_space(kind: str, trial: Any) -> dict[str, Any]:
    if kind == "xgboost":
        return xgboost_model.search_space(trial)
    return torch_models.search_space(kind, trial)  # type: ignore[arg-type]
