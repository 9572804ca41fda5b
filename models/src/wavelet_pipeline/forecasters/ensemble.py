"""Stacked ensemble: non-negative weights and an intercept, fit on out-of-fold predictions.

The weights are fit only on predictions each base model made for days it was not trained
on (the walk-forward years before the one being predicted), so the ensemble never learns
from in-sample fits. Returns are combined linearly by least squares (the loss they are
scored on); volatilities geometrically, exp(b + Σ wᵢ·log fᵢ), by minimizing QLIKE, which is
convex in (w, b) there and can only answer a positive volatility. A bundle with a GJR-GARCH
feature channel also stacks that channel's forecast as a member, and one with a GJR-X channel that one too. The exported graph contains
the base graphs and the combination, so the ensemble is one ONNX session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper
from scipy.optimize import minimize, nnls

from ..features import FeatureSpec
from . import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME

BASE_MODELS = ("xgboost", "lstm", "transformer")
# The GJR-GARCH(-X) channels' forecasts for the target's days, read from the feature vector.
COLUMN_MEMBERS = {"gjr_garch": "gjr_vol_lag0", "gjr_garch_x": "gjrx_vol_lag0"}
Space = Literal["level", "log"]
# How volatility members are weighted: "free" (weights ≥ 0 and an intercept, fit by QLIKE),
# "convex" (weights ≥ 0 summing to 1, no intercept, fit by QLIKE) or "equal" (the geometric
# mean: nothing fit). Returns are always stacked "free" (least squares).
StackKind = Literal["free", "convex", "equal"]


def members(spec: FeatureSpec) -> tuple[str, ...]:
    return (*BASE_MODELS, *(m for m, column in COLUMN_MEMBERS.items() if column in spec.names))


def space_for(target_kind: str) -> Space:
    return "log" if target_kind == "volatility" else "level"


def stack_inputs(spec: FeatureSpec, predictions: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """[rows, members]: the base models' predictions, and the GJR(-X) columns of X that are members."""
    return np.column_stack([X[:, spec.column(COLUMN_MEMBERS[m])] if m in COLUMN_MEMBERS else predictions[m] for m in members(spec)])


@dataclass(frozen=True)
class StackWeights:
    members: tuple[str, ...]
    weights: tuple[float, ...]  # one per member, each ≥ 0
    intercept: float
    space: Space
    kind: StackKind = "free"

    def combine(self, member_predictions: np.ndarray) -> np.ndarray:
        """member_predictions: [rows, len(members)] in target units."""
        w = np.asarray(self.weights)
        if self.space == "log":
            return np.exp(np.log(member_predictions) @ w + self.intercept)
        return member_predictions @ w + self.intercept

    def describe(self) -> dict[str, object]:
        how = {
            "free": "exp(intercept + sum w*log(member)), fit on out-of-fold QLIKE",
            "convex": "exp(sum w*log(member)), weights summing to 1 (a weighted geometric mean), fit on out-of-fold QLIKE",
            "equal": "exp(mean log(member)): the geometric mean of the members, equal weights, nothing fit",
        }[self.kind] if self.space == "log" else "intercept + sum w*member, fit by least squares"
        return {"weights": dict(zip(self.members, self.weights)), "intercept": self.intercept, "combination": how}


def fit_stack(member_predictions: np.ndarray, y: np.ndarray, members: tuple[str, ...], space: Space, kind: StackKind = "free") -> StackWeights:
    if space == "level":
        # Least squares with w ≥ 0 and a free intercept (centering removes the intercept).
        p_mean, y_mean = member_predictions.mean(axis=0), y.mean()
        weights, _ = nnls(member_predictions - p_mean, y - y_mean)
        return StackWeights(members, tuple(float(w) for w in weights), float(y_mean - p_mean @ weights), space)
    logs, y2 = np.log(member_predictions), y * y
    k = logs.shape[1]
    if kind == "equal":
        return StackWeights(members, (1.0 / k,) * k, 0.0, space, kind)

    def qlike(s: np.ndarray) -> tuple[float, np.ndarray]:
        # QLIKE of f = exp(s) against y², constants dropped: y²·e^(−2s) + 2s, and d/ds.
        scaled = y2 * np.exp(-2.0 * s)
        return float(np.mean(scaled + 2.0 * s)), (2.0 - 2.0 * scaled) / y.size

    if kind == "convex":
        def softmax_qlike(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = np.exp(theta - theta.max())
            w /= w.sum()
            value, grad_s = qlike(logs @ w)
            grad_w = logs.T @ grad_s
            return value, w * (grad_w - w @ grad_w)

        theta = minimize(softmax_qlike, np.zeros(k), jac=True, method="L-BFGS-B").x
        w = np.exp(theta - theta.max())
        return StackWeights(members, tuple(float(x) for x in w / w.sum()), 0.0, space, kind)

    def free_qlike(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad_s = qlike(logs @ theta[:-1] + theta[-1])
        return value, np.append(logs.T @ grad_s, grad_s.sum())

    start = np.append(np.full(k, 1.0 / k), 0.0)
    found = minimize(free_qlike, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k + [(None, None)])
    return StackWeights(members, tuple(float(w) for w in found.x[:-1]), float(found.x[-1]), space)


def ensemble_onnx(bases: dict[str, onnx.ModelProto], stack: StackWeights, spec: FeatureSpec) -> onnx.ModelProto:
    """One graph: every member on the shared input (a base graph, or the GJR column), then
    the stack's combination."""
    columns = {m: spec.column(COLUMN_MEMBERS[m]) for m in stack.members if m in COLUMN_MEMBERS}
    return combine_onnx(bases, stack, len(spec.names), columns)


def combine_onnx(bases: dict[str, onnx.ModelProto], stack: StackWeights, size: int, columns: dict[str, int] | None = None) -> onnx.ModelProto:
    """features [batch, size] → prediction [batch, 1]: each member of the stack is a graph of
    `bases` or a column of the input (`columns`), combined as the stack says. Also builds
    imported bundles' ensembles (importer/build.py)."""
    columns = columns or {}
    nodes, initializers, outputs = [], [], []
    opsets: dict[str, int] = {"": OPSET}
    for name in stack.members:
        if name in columns:
            initializers.append(numpy_helper.from_array(np.asarray([columns[name]], dtype=np.int64), f"{name}/column"))
            nodes.append(helper.make_node("Gather", [INPUT_NAME, f"{name}/column"], [f"{name}/prediction"], axis=1))
            outputs.append(f"{name}/prediction")
            continue
        base = bases[name]
        prefixed = compose.add_prefix(base, prefix=f"{name}/", rename_inputs=False)
        nodes.extend(prefixed.graph.node)
        initializers.extend(prefixed.graph.initializer)
        outputs.append(prefixed.graph.output[0].name)
        for op in base.opset_import:
            domain = "" if op.domain == "ai.onnx" else op.domain
            opsets[domain] = max(opsets.get(domain, 0), op.version)
    weights = np.asarray(stack.weights, dtype=np.float32).reshape(len(stack.members), 1)
    initializers += [
        numpy_helper.from_array(weights, "ensemble/weights"),
        numpy_helper.from_array(np.asarray([stack.intercept], dtype=np.float32), "ensemble/intercept"),
    ]
    nodes.append(helper.make_node("Concat", outputs, ["ensemble/stacked"], axis=1))
    combined = "ensemble/stacked"
    if stack.space == "log":
        nodes.append(helper.make_node("Log", [combined], ["ensemble/log_stacked"]))
        combined = "ensemble/log_stacked"
    nodes += [
        helper.make_node("MatMul", [combined, "ensemble/weights"], ["ensemble/weighted"]),
        helper.make_node("Add", ["ensemble/weighted", "ensemble/intercept"], ["ensemble/sum" if stack.space == "log" else OUTPUT_NAME]),
    ]
    if stack.space == "log":
        nodes.append(helper.make_node("Exp", ["ensemble/sum"], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        "ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
