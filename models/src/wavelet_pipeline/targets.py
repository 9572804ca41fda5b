"""What a bundle predicts. The target at day t is known only after t+horizon closes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

TargetKind = Literal["return", "volatility"]


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: TargetKind
    horizon: int
    units: str
    # Models fit link(y) and answer link⁻¹(ŷ): volatility is fit in logs, so every model
    # (the ONNX graphs included) can only answer a positive volatility.
    link: Literal["identity", "log"]

    def describe(self) -> dict[str, object]:
        return asdict(self)

    def values(self, prices: np.ndarray) -> np.ndarray:
        """y_t aligned with prices; NaN where the horizon runs past the data."""
        r = np.full(len(prices), np.nan)
        r[1:] = 100.0 * np.diff(np.log(np.asarray(prices, dtype=np.float64)))
        y = np.full(len(prices), np.nan)
        h = self.horizon
        if self.kind == "return":
            # Sum of the next h log returns = log return from t to t+h.
            csum = np.concatenate([[0.0], np.cumsum(r[1:])])
            y[: len(prices) - h] = csum[h:] - csum[:-h]
        else:
            sq = np.concatenate([[0.0], np.cumsum(r[1:] ** 2)])
            y[: len(prices) - h] = np.sqrt(sq[h:] - sq[:-h])
        return y

    def to_link(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.link == "log" else y

    def from_link(self, z: np.ndarray) -> np.ndarray:
        return np.exp(z) if self.link == "log" else z


NEXT_DAY_RETURN = TargetSpec(
    name="log_return_1d", kind="return", horizon=1, units="percent log return, close to next close", link="identity"
)
REALIZED_VOL_5D = TargetSpec(
    name="realized_vol_5d",
    kind="volatility",
    horizon=5,
    units="percent, sqrt of the sum of the next 5 squared daily log returns (not annualized)",
    link="log",
)
TARGETS = {t.name: t for t in (NEXT_DAY_RETURN, REALIZED_VOL_5D)}
