"""The base forecasters (XGBoost, LSTM, Transformer) and the stacked ensemble.

Every forecaster fits link-space targets z = link(y) and exports an ONNX graph that maps
``features`` (float32 [batch, window]) to ``prediction`` (float32 [batch, 1]) in target
units, the inverse link included, so the server needs nothing but the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnx

INPUT_NAME = "features"
OUTPUT_NAME = "prediction"
# Chronological share of the training rows each model holds back (for early stopping and
# for the log-link offset below).
HOLDOUT_SHARE = 0.1


@dataclass(frozen=True)
class Holdout:
    fit: slice
    stop: slice  # early stopping
    offset: slice  # the log-link offset


def holdout(n: int, gap: int, *, separate_offset: bool) -> Holdout:
    """Chronological parts of n training rows: the rows a model fits, then `gap` rows left out
    (the target horizon: their targets run into the held-out days), then the held-out rows.
    With `separate_offset` these split again, with another gap: early stopping on the first
    part, the offset on the second, so the offset is not measured on the rows that chose the
    epoch."""
    start = n - int(n * HOLDOUT_SHARE)
    if not separate_offset:
        return Holdout(slice(0, start - gap), slice(start, n), slice(start, n))
    middle = start + (n - start) // 2
    return Holdout(slice(0, start - gap), slice(start, middle - gap), slice(middle, n))
# onnxruntime-node 1.30 reads IR version ≤ 10; 8 is what both converters emit.
IR_VERSION = 8
OPSET = 17


def log_link_offset(z_true: np.ndarray, z_pred: np.ndarray) -> float:
    """What a log-link model adds to its log prediction before exp.

    Fit in logs, a model predicts E[log y]; exp of that is the median of y, and squared (as
    variance forecasts and QLIKE use it) it falls short of E[y²] = exp(2(μ + σ²)) for a
    log-normal residual. Adding σ², the residual variance on held-out rows, removes that.
    """
    return float(np.var(z_true - z_pred))


class Forecaster(Protocol):
    def fit(self, X: np.ndarray, z: np.ndarray) -> None: ...

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions in link space, one per row of X."""
        ...

    def to_onnx(self, *, for_quantization: bool = False) -> onnx.ModelProto: ...
