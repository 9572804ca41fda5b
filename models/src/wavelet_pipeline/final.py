"""The models that ship: refit on every row, exported, checked against the native models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from . import onnx_tools
from .bundle import PREDICTION_TOLERANCE
from .metrics import significant
from .conformal import Calibration, calibrate
from .config import BundleConfig
from .forecasters import Forecaster, registry
from .features import ChannelParams
from .forecasters.ensemble import BASE_MODELS, StackWeights, ensemble_onnx, fit_stack, members, space_for, stack_inputs
from .splits import Table
from .walkforward import QUANTIZED, WalkForward

# Rows whose fused int8 answer may differ from the QDQ graph's (rounding ties: 2 in 4985 were
# seen); a model with more is not shipped.
FUSED_ROWS_OFF_LIMIT = 0.001


@dataclass
class FinalModels:
    graphs: dict[str, onnx.ModelProto] = field(default_factory=dict)  # model name → graph, int8 variants as "<name>_int8"
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, Calibration] = field(default_factory=dict)
    stack: StackWeights | None = None
    quantized_report: dict[str, dict[str, Any]] = field(default_factory=dict)
    fitted: ChannelParams = field(default_factory=ChannelParams)  # the GJR/GJR-X channels' parameters, fit on every row


def fit_final(config: BundleConfig, table: Table, wf: WalkForward, params: dict[str, dict[str, Any]], shipped_int8: dict[str, bool]) -> FinalModels:
    """Refit on all rows; parity is measured on the test-year feature rows (computed with the
    shipped GJR parameters, as the server will)."""
    target = config.target
    out = FinalModels()
    X, out.fitted = table.design()
    check_rows = X[wf.rows[wf.years_mask(config.test_years)]]
    native = {}
    for kind in BASE_MODELS:
        model = registry.make(kind, params[kind], seed=config.seed, target=target, channels=len(config.features.channels), anchor=config.anchor_column)
        model.fit(X, target.to_link(table.y))
        graph = model.to_onnx()
        native[kind] = target.from_link(model.predict(check_rows))
        out.graphs[kind] = graph
        out.parity[kind] = onnx_tools.parity(native[kind], onnx_tools.predict(graph, check_rows))
        if kind in QUANTIZED:
            int8, out.quantized_report[kind] = quantize(model, graph, X, check_rows, native[kind], shipped_int8[kind])
            if out.quantized_report[kind]["shipped"]:
                out.graphs[f"{kind}_int8"] = int8

    # The weights are fit on every out-of-sample day: each member's walk-forward predictions.
    out.stack = fit_stack(stack_inputs(config.features, wf.predictions, wf.X), wf.y, members(config.features), space_for(target.kind), config.stack)
    out.graphs["ensemble"] = ensemble_onnx({k: out.graphs[k] for k in BASE_MODELS}, out.stack, config.features)
    combined = out.stack.combine(stack_inputs(config.features, native, check_rows))
    out.parity["ensemble"] = onnx_tools.parity(combined, onnx_tools.predict(out.graphs["ensemble"], check_rows))

    for name in out.graphs:
        out.calibration[name] = shipped_calibration(config, wf, name)
    return out


def quantize(model: Forecaster, graph: onnx.ModelProto, calibration_rows: np.ndarray, check_rows: np.ndarray,
             native: np.ndarray, accurate: bool) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The int8 variant of a fitted model (whose float graph is `graph`) and its report. It
    ships if it was `accurate` enough in the walk-forward and onnxruntime's fused integer
    kernels compute what its QDQ graph defines (DequantizeLinear, float MatMul) on the check
    rows, but for a rounding tie's share of them: otherwise its answers depend on the CPU."""
    int8 = onnx_tools.quantize_int8(model.to_onnx(for_quantization=True), calibration_rows)
    off = np.abs(onnx_tools.predict(int8, check_rows) - onnx_tools.predict(onnx_tools.unfused(int8), check_rows)) > PREDICTION_TOLERANCE
    return int8, {
        "fused_kernels_rows_off": significant(float(off.mean())),
        "fused_kernels_rows_off_limit": FUSED_ROWS_OFF_LIMIT,
        "bytes_fp32": len(graph.SerializeToString()),
        "bytes_int8": len(int8.SerializeToString()),
        "latency_fp32": onnx_tools.latency_us(graph, check_rows[:1000]),
        "latency_int8": onnx_tools.latency_us(int8, check_rows[:1000]),
        "max_abs_diff_vs_fp32": significant(float(np.max(np.abs(onnx_tools.predict(int8, check_rows) - native)))),
        "shipped": bool(accurate and off.mean() <= FUSED_ROWS_OFF_LIMIT),
    }


def shipped_calibration(config: BundleConfig, wf: WalkForward, name: str) -> Calibration:
    """A model's interval calibration as shipped: its residuals in the last calibration years."""
    last = max(config.test_years)
    recent = wf.years_mask(list(range(last - config.calibration_years + 1, last + 1)))
    usable = recent & ~np.isnan(wf.predictions[name])
    return calibrate(wf.y[usable], wf.predictions[name][usable], wf.X[usable], config.interval_scale)
