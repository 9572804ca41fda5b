"""Writes server/test/fixtures/range-features.json: bars → every channel → feature rows, by the
pipeline's code, for specs with range channels (Parkinson and Garman–Klass, with and without
MODWT levels, with stale opens, flat days and a crash). The server's features must reproduce
them (server/test/range-features.test.ts); test_range_vectors.py checks the committed file is
what this writes.

    PYTHONPATH=src python tests/range_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wavelet_pipeline.bundle import bars_record, json_text
from wavelet_pipeline.features import ChannelParams, FeatureSpec, GarchParams, channel_series, feature_matrix
from wavelet_pipeline.ranges import Bars, GarchXParams

FIXTURE = Path(__file__).resolve().parents[2] / "server" / "test" / "fixtures" / "range-features.json"
GJR = GarchParams(omega=0.02, alpha=0.01, gamma=0.15, beta=0.88)
GJRX = GarchXParams(omega=0.009, alpha=0.002, gamma=0.11, beta=0.86, delta=0.07, kappa=0.76, span=5)
GJRX_1 = GarchXParams(omega=0.009, alpha=0.0, gamma=0.11, beta=0.88, delta=0.05, kappa=0.8, span=1)


def synthetic_bars(n: int, seed: int, stale_from: int | None = None, stale_to: int | None = None) -> Bars:
    """A random walk of closes with gaps, highs and lows around open and close, a 10 % fall
    mid-way, two flat days (high = low) and, between stale_from and stale_to, opens that
    repeat the previous close."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    close[n // 2 :] *= 0.9
    previous = np.r_[close[0] / np.exp(rng.normal(0, 0.01)), close[:-1]]
    open_ = previous * np.exp(rng.normal(0.0, 0.004, n))
    if stale_from is not None:
        open_[stale_from:stale_to] = previous[stale_from:stale_to]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.006, n)))
    for day in (n // 3, n // 3 + 1):
        open_[day] = high[day] = low[day] = close[day]
    return Bars(high=high, low=low, close=close, open=open_)


def spec(estimator: str, levels: int, span: int) -> FeatureSpec:
    return FeatureSpec(
        series="squared_return_pct", window=3, trailing=16, signed_returns=True, energy_levels=2, energy_span=5,
        garch_trailing=20, garch_horizon=5, range_estimator=estimator, range_spans=(1, 5, 22), range_levels=levels,
        garchx_span=span,
    )


CASES = [
    ("parkinson-modwt-gjrx5", spec("parkinson", 3, 5), ChannelParams(GJR, GJRX), synthetic_bars(120, 1)),
    ("garman-klass-stale-opens", spec("garman_klass", 2, 5), ChannelParams(GJR, GJRX), synthetic_bars(110, 2, 40, 70)),
    ("parkinson-no-modwt-gjrx1", spec("parkinson", 0, 1), ChannelParams(GJR, GJRX_1), synthetic_bars(90, 3)),
    ("garman-klass-db4", FeatureSpec(
        series="squared_return_pct", window=2, trailing=16, wavelet="db4", levels=1, range_estimator="garman_klass",
        range_spans=(2,), range_levels=2), ChannelParams(), synthetic_bars(80, 4, 0, 10)),
]


def fixture() -> str:
    cases = []
    for name, features, fitted, bars in CASES:
        X = feature_matrix(bars, features, fitted)
        cases.append({
            "name": name,
            "spec": features.describe(fitted),
            "bars": bars_record(bars, features),
            "channels": channel_series(bars, features, fitted),
            "features": X[features.min_prices - 1 :],
        })
    return json_text({"description": __doc__.split("\n\n")[0], "cases": cases})


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(fixture())
    print(f"wrote {FIXTURE}")
