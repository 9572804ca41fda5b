"""XGBoost models from safe files (Booster/XGBRegressor ``save_model``, JSON or UBJSON).

Only regression objectives whose prediction is the raw sum of the trees plus base_score
(identity link, one target) are imported: for those, onnxmltools' TreeEnsembleRegressor
computes the same quantity, and the import measures that it does. Anything else is refused
with the reason: a log-link objective (reg:gamma, reg:tweedie, count:poisson) would need the
converter to rebuild XGBoost's link and base_score handling, which this importer does not
check; classifiers, rankers, survival and multi-output models predict something other than
one number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import xgboost as xgb

from ..forecasters.xgboost_model import regressor_onnx
from . import ImportRefused

IMPORTED_OBJECTIVES = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror", "reg:quantileerror")
LOG_LINK_OBJECTIVES = ("reg:gamma", "reg:tweedie", "count:poisson")


@dataclass
class XGBoostImport:
    """A loaded, checked XGBoost regressor and what the manifest says of it."""

    model: xgb.XGBRegressor
    objective: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """XGBoost's own answer (as XGBRegressor.predict: trees up to best_iteration if the
        file records early stopping), float32 arithmetic, returned as float64."""
        return self.model.predict(np.ascontiguousarray(rows, dtype=np.float32)).astype(np.float64).ravel()

    def to_onnx(self) -> onnx.ModelProto:
        return regressor_onnx(self.model)


def check(booster: xgb.Booster, names: list[str], label: str) -> tuple[str, dict[str, Any], list[str] | None]:
    """Refuses (ImportRefused) a booster this importer does not convert faithfully or whose inputs are
    not feature_names.json's; returns its objective, learner_model_param and own feature names.
    Also used for the XGBRegressor members of a scikit-learn ensemble (sklearn_ensemble.py)."""
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    kind = learner["gradient_booster"]["name"]
    if objective in LOG_LINK_OBJECTIVES:
        raise ImportRefused(
            f"{label}: objective {objective} predicts exp(sum of trees) (a log link): onnxmltools rebuilds that link and "
            "base_score itself, which this importer does not check, so the ONNX graph's output might not be the quantity "
            f"XGBoost predicts. Imported objectives: {', '.join(IMPORTED_OBJECTIVES)} (e.g. reg:squarederror on the log "
            "of the target, or on the target itself)")
    if objective not in IMPORTED_OBJECTIVES:
        raise ImportRefused(
            f"{label}: objective {objective} is not a regression of one number (classification, ranking or survival "
            f"models answer another quantity than a forecast). Imported objectives: {', '.join(IMPORTED_OBJECTIVES)}")
    if int(params.get("num_class", "0")) > 0 or int(params.get("num_target", "1")) != 1:
        raise ImportRefused(f"{label}: {params.get('num_target')} targets / {params.get('num_class')} classes: a bundle's "
                            "model answers one number per row (multi-output trees are not imported)")
    if kind != "gbtree":
        why = "a linear booster has no trees to convert" if kind == "gblinear" else \
            "onnxmltools does not convert DART boosters (whose trees are weighted by weight_drop, which a plain tree sum misses)"
        raise ImportRefused(f"{label}: booster {kind}: {why}; only gbtree models are imported")
    if booster.feature_types and any(t == "c" for t in booster.feature_types):
        raise ImportRefused(f"{label}: categorical features (feature_types 'c'): the bundle takes one float vector; "
                            "retrain with numeric features")
    n_features = int(params["num_feature"])
    if n_features != len(names):
        raise ImportRefused(f"{label}: XGBoost num_feature {n_features}, feature_names.json has {len(names)}")
    own = booster.feature_names
    if own is not None and list(own) != names and list(own) != [f"f{i}" for i in range(n_features)]:
        differ = [f"#{i} {a!r} (model) vs {b!r} (feature_names.json)" for i, (a, b) in enumerate(zip(own, names)) if a != b]
        raise ImportRefused(f"{label}: the model's own feature names differ from feature_names.json at "
                            f"{', '.join(differ[:5])}{f' and {len(differ) - 5} more' if len(differ) > 5 else ''}")
    return objective, params, None if own is None else list(own)


def load(path: Path, names: list[str], *, label: str | None = None) -> XGBoostImport:
    """The model in `path`, checked against feature_names.json; ImportRefused says why not.
    `label` names the file in messages (the user's file, when `path` is a converted copy)."""
    label = label or path.name
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportRefused(f"{label}: not an XGBoost model file XGBoost can read ({first[:200]})") from None
    objective, params, own = check(booster, names, label)
    n_features = len(names)
    model = xgb.XGBRegressor()
    model.load_model(str(path))
    # The converter (and XGBoost's numpy predictions) address features as f0, f1, ... by
    # position; the names were just checked to be feature_names.json's, in its order.
    model.get_booster().feature_names = None
    rounds = model.get_booster().num_boosted_rounds()
    details: dict[str, Any] = {"objective": objective, "num_feature": n_features, "boosted_rounds": rounds,
                               "base_score": params.get("base_score"),
                               "own_feature_names": "none (f0, f1, ...)" if own is None else
                               ("f0, f1, ..." if list(own) != names else "equal to feature_names.json")}
    notes = []
    try:
        best = int(model.best_iteration)
    except AttributeError:
        best = None
    if best is not None and best + 1 < rounds:
        details["trees_used"] = f"rounds 0..{best} (best_iteration {best}) of {rounds}"
        notes.append(f"{label} records early stopping at iteration {best}: the bundle uses rounds 0..{best} of {rounds}, "
                     "as XGBRegressor.predict does (Booster.predict would use all of them)")
    return XGBoostImport(model, objective, details, notes)
