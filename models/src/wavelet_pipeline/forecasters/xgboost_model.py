"""Gradient-boosted trees (XGBoost), exported with onnxmltools' tree-ensemble converter."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnxmltools
import xgboost as xgb
from onnx import helper
from onnxmltools.convert.common.data_types import FloatTensorType

from . import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, holdout, log_link_offset


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 600, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 100.0, log=True),
    }


DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 3,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 10.0,
    "reg_lambda": 1.0,
}


class XGBoostForecaster:
    def __init__(self, params: dict[str, Any], *, seed: int, link: str, gap: int = 0) -> None:
        self.params = params
        self.link = link
        self.gap = gap
        self.offset = 0.0
        self.model = xgb.XGBRegressor(
            **params, tree_method="hist", n_jobs=2, random_state=seed, objective="reg:squarederror"
        )

    def fit(self, X: np.ndarray, z: np.ndarray) -> None:
        X = X.astype(np.float32)
        if self.link == "log":
            rows = holdout(len(X), self.gap, separate_offset=False)
            self.model.fit(X[rows.fit], z[rows.fit])
            self.offset = log_link_offset(z[rows.offset], self.model.predict(X[rows.offset]))
        self.model.fit(X, z)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X.astype(np.float32)).astype(np.float64) + self.offset

    def to_onnx(self, *, for_quantization: bool = False) -> onnx.ModelProto:
        """Trees are not quantized; the flag exists for the common interface."""
        return regressor_onnx(self.model, log_offset=self.offset if self.link == "log" else None)


def regressor_onnx(model: xgb.XGBRegressor, *, log_offset: float | None = None) -> onnx.ModelProto:
    """`features` [batch, n] → `prediction` [batch, 1]: the tree ensemble, then exp(· + offset)
    for a log link. Also used for imported models (importer/xgb.py), identity link."""
    n_features = model.n_features_in_
    proto = onnxmltools.convert_xgboost(
        model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))], target_opset=15
    )
    graph = proto.graph
    raw = graph.output[0].name
    if log_offset is not None:
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([log_offset], dtype=np.float32), "link_offset"))
        return prediction_output(proto, "xgboost", [
            helper.make_node("Add", [raw, "link_offset"], ["log_prediction"]),
            helper.make_node("Exp", ["log_prediction"], [OUTPUT_NAME]),
        ])
    return prediction_output(proto, "xgboost")


def prediction_output(proto: onnx.ModelProto, name: str, nodes: list[onnx.NodeProto] | None = None) -> onnx.ModelProto:
    """A converter's graph made one of ours: named `name` (converters name it by a random
    UUID: same model, other bytes), its one output replaced by `prediction` [batch, 1]
    (computed by `nodes` from the converter's output; default Identity), our IR version and
    default-domain opset; checked. Also used for imported scikit-learn ensembles."""
    graph = proto.graph
    graph.name = name
    graph.node.extend(nodes or [helper.make_node("Identity", [graph.output[0].name], [OUTPUT_NAME])])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None, 1]))
    if not any(op.domain in ("", "ai.onnx") for op in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("", OPSET))
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto
