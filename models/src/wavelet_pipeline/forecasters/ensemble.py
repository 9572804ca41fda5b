"""Stacked ensemble: non-negative weights and an intercept, fit on out-of-fold predictions.

The weights are fit only on predictions each base model made for days it was not trained
on (the walk-forward years before the one being predicted), so the ensemble never learns
from in-sample fits. The exported graph contains the three base graphs and the weighted
sum, so the ensemble is one ONNX session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper
from scipy.optimize import nnls

from . import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME

BASE_MODELS = ("xgboost", "lstm", "transformer")


@dataclass(frozen=True)
class StackWeights:
    weights: tuple[float, ...]  # one per BASE_MODELS entry, each ≥ 0
    intercept: float

    def combine(self, base_predictions: np.ndarray) -> np.ndarray:
        """base_predictions: [rows, len(BASE_MODELS)] in target units."""
        return base_predictions @ np.asarray(self.weights) + self.intercept

    def describe(self) -> dict[str, object]:
        return {"weights": dict(zip(BASE_MODELS, self.weights)), "intercept": self.intercept}


def fit_stack(base_predictions: np.ndarray, y: np.ndarray) -> StackWeights:
    """Least squares with w ≥ 0 and a free intercept (centering removes the intercept)."""
    p_mean, y_mean = base_predictions.mean(axis=0), y.mean()
    weights, _ = nnls(base_predictions - p_mean, y - y_mean)
    return StackWeights(tuple(float(w) for w in weights), float(y_mean - p_mean @ weights))


def ensemble_onnx(bases: dict[str, onnx.ModelProto], stack: StackWeights) -> onnx.ModelProto:
    """One graph: every base graph on the shared input, then prediction = Σ wᵢ·baseᵢ + b."""
    nodes, initializers, outputs = [], [], []
    opsets: dict[str, int] = {"": OPSET}
    for name in BASE_MODELS:
        base = bases[name]
        prefixed = compose.add_prefix(base, prefix=f"{name}/", rename_inputs=False)
        nodes.extend(prefixed.graph.node)
        initializers.extend(prefixed.graph.initializer)
        outputs.append(prefixed.graph.output[0].name)
        for op in base.opset_import:
            domain = "" if op.domain == "ai.onnx" else op.domain
            opsets[domain] = max(opsets.get(domain, 0), op.version)
    weights = np.asarray(stack.weights, dtype=np.float32).reshape(len(BASE_MODELS), 1)
    initializers += [
        numpy_helper.from_array(weights, "ensemble/weights"),
        numpy_helper.from_array(np.asarray([stack.intercept], dtype=np.float32), "ensemble/intercept"),
    ]
    nodes += [
        helper.make_node("Concat", outputs, ["ensemble/stacked"], axis=1),
        helper.make_node("MatMul", ["ensemble/stacked", "ensemble/weights"], ["ensemble/weighted"]),
        helper.make_node("Add", ["ensemble/weighted", "ensemble/intercept"], [OUTPUT_NAME]),
    ]
    window = bases[BASE_MODELS[0]].graph.input[0].type.tensor_type.shape.dim[1].dim_value
    graph = helper.make_graph(
        nodes,
        "ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, window])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
