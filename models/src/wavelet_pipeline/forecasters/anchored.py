"""Base models anchored on a forecast in their own feature vector.

An anchored model fits the log of the target over the anchor (a GARCH-family volatility
forecast among the features, e.g. ``gjrx_vol_lag0``) and answers anchor × exp(fit): it learns
a correction to a model that already extrapolates to volatility it never saw. Unanchored, a
tree ensemble cannot answer above the largest volatility in its training years and a network
is no better far outside its standardized inputs: on the validation years 2007–2010 (with
2008 in them) every unanchored model was far behind GJR-GARCH.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import INPUT_NAME, OUTPUT_NAME, Forecaster


class Anchored:
    """`inner` fit on z − log(X[:, column]); its link-space answers get log(X[:, column]) back.
    Only for a log link (the answers are volatilities, the anchor positive)."""

    def __init__(self, inner: Forecaster, column: int) -> None:
        self.inner = inner
        self.column = column

    def _log_anchor(self, X: np.ndarray) -> np.ndarray:
        return np.log(X[:, self.column].astype(np.float64))

    def fit(self, X: np.ndarray, z: np.ndarray) -> None:
        self.inner.fit(X, z - self._log_anchor(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.inner.predict(X) + self._log_anchor(X)

    def to_onnx(self, *, for_quantization: bool = False) -> onnx.ModelProto:
        return anchored_onnx(self.inner.to_onnx(for_quantization=for_quantization), self.column)


def anchored_onnx(graph: onnx.ModelProto, column: int) -> onnx.ModelProto:
    """The graph's prediction times the input's `column` (an anchored model's answer)."""
    model = onnx.ModelProto()
    model.CopyFrom(graph)
    g = model.graph
    for node in g.node:
        node.output[:] = ["anchor/unanchored" if o == OUTPUT_NAME else o for o in node.output]
    g.initializer.append(numpy_helper.from_array(np.asarray([column], dtype=np.int64), "anchor/column"))
    g.node.extend([
        helper.make_node("Gather", [INPUT_NAME, "anchor/column"], ["anchor/value"], axis=1),
        helper.make_node("Mul", ["anchor/unanchored", "anchor/value"], [OUTPUT_NAME]),
    ])
    onnx.checker.check_model(model)
    return model
