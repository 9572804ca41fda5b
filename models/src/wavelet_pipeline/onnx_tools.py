"""Running, comparing and quantizing exported graphs with onnxruntime."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from .forecasters import INPUT_NAME


def session(model: onnx.ModelProto | bytes | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def predict(model: onnx.ModelProto | bytes | Path | ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    sess = model if isinstance(model, ort.InferenceSession) else session(model)
    return sess.run(None, {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0].reshape(-1).astype(np.float64)


def parity(native: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    """Max absolute difference, and that difference relative to the largest |prediction|."""
    max_abs = float(np.max(np.abs(native - exported)))
    return {"max_abs_diff": max_abs, "max_rel_diff": max_abs / max(float(np.max(np.abs(native))), 1e-12), "rows": int(native.size)}


class _Rows(CalibrationDataReader):
    def __init__(self, X: np.ndarray) -> None:
        self.batches = iter(np.array_split(np.ascontiguousarray(X, dtype=np.float32), max(1, len(X) // 512)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(model: onnx.ModelProto, calibration_rows: np.ndarray) -> onnx.ModelProto:
    """Static int8 quantization (QDQ) of MatMul/Gemm weights and activations.

    Activation ranges are calibrated once on training rows, so a row's answer never depends
    on the other rows in its batch (dynamic quantization rescales by each batch's range,
    which would break micro-batching's promise that batched equals unbatched).
    """
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, src)
        # The quantizer logs a generic advice to run shape pre-processing on every call.
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)
        try:
            quantize_static(
                src, dst, _Rows(calibration_rows),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            logging.getLogger().setLevel(quiet)
        quantized = onnx.load(dst)
    quantized.ir_version = model.ir_version
    return quantized


def latency_us(model: onnx.ModelProto, X: np.ndarray, *, repeats: int = 200) -> dict[str, float]:
    """Median microseconds for one row and per row of a batch of all of X."""
    sess = session(model)
    single, batch = np.ascontiguousarray(X[:1], dtype=np.float32), np.ascontiguousarray(X, dtype=np.float32)

    def median_seconds(inputs: np.ndarray, n: int) -> float:
        sess.run(None, {INPUT_NAME: inputs})
        times = []
        for _ in range(n):
            start = time.perf_counter()
            sess.run(None, {INPUT_NAME: inputs})
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    return {
        "single_row_us": round(median_seconds(single, repeats) * 1e6, 1),
        "batch_per_row_us": round(median_seconds(batch, max(5, repeats // 20)) * 1e6 / len(batch), 2),
        "batch_rows": int(len(batch)),
    }
