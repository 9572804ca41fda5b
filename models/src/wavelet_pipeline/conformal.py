"""Split conformal prediction intervals with a locally adaptive scale.

The nonconformity score of a day is |y − ŷ| / s, where the scale s is computed from what
the server also has at request time: the feature vector (returns: the RMS of the denoised
returns in the window, large in turbulent weeks) or the prediction itself (volatility:
errors grow with the level). The interval is ŷ ± q·s with q the finite-sample conformal
quantile of the calibration scores, so the server reproduces it from the manifest alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

ScaleKind = Literal["rms_features", "prediction"]
# Keeps the scale away from zero on days whose window is flat.
SCALE_FLOOR = 0.05
LEVEL = 0.9


def scale(kind: ScaleKind, X: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    if kind == "rms_features":
        raw = np.sqrt(np.mean(X * X, axis=1))
    else:
        raw = np.abs(prediction)
    return np.maximum(raw, SCALE_FLOOR)


@dataclass(frozen=True)
class Calibration:
    level: float
    scale: ScaleKind
    scale_floor: float
    quantile: float
    n: int

    def interval(self, prediction: np.ndarray, X: np.ndarray, *, positive: bool) -> tuple[np.ndarray, np.ndarray]:
        half = self.quantile * scale(self.scale, X, prediction)
        lower = prediction - half
        return (np.maximum(lower, 0.0) if positive else lower), prediction + half

    def describe(self) -> dict[str, object]:
        return asdict(self)


def calibrate(y: np.ndarray, prediction: np.ndarray, X: np.ndarray, kind: ScaleKind, level: float = LEVEL) -> Calibration:
    scores = np.abs(y - prediction) / scale(kind, X, prediction)
    n = scores.size
    # The ⌈(n+1)·level⌉-th smallest score: coverage ≥ level for exchangeable days.
    rank = min(n, math.ceil((n + 1) * level))
    quantile = float(np.sort(scores)[rank - 1])
    return Calibration(level=level, scale=kind, scale_floor=SCALE_FLOOR, quantile=quantile, n=n)


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((y >= lower) & (y <= upper)))
