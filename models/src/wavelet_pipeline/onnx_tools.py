"""Running, comparing and quantizing exported graphs with onnxruntime."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from .forecasters import INPUT_NAME


def session(model: onnx.ModelProto | bytes | Path, *, optimize: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
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


# Quantized weights are 7-bit (|w| ≤ 64). onnxruntime runs uint8 x int8 products on x86-64
# CPUs without VNNI with vpmaddubsw, which adds two u8·s8 products into a saturating int16:
# 255·(127 + 127) overflows it, 255·(64 + 64) = 32640 cannot. So integer MatMuls are exact
# on every CPU. (With 8-bit weights, an AVX2 machine's answers differed by up to 0.93 from
# the parity vectors, which the build machine, presumably with VNNI, had computed exactly.
# onnxruntime's documentation recommends reduce_range for U8S8 on CPUs without VNNI.)
WEIGHT_LIMIT = 64


def quantize_int8(model: onnx.ModelProto, calibration_rows: np.ndarray) -> onnx.ModelProto:
    """Static int8 quantization (QDQ) of the MatMul/Gemm nodes that multiply by a weight.

    Activation ranges are calibrated once on training rows, so a row's answer never depends
    on the other rows in its batch (dynamic quantization rescales by each batch's range,
    which would break micro-batching's promise that batched equals unbatched). Weights are
    7-bit (see WEIGHT_LIMIT). Products of two activations (attention scores and their
    weighting of values) stay float: quantized, their many exact ties rounded differently in
    onnxruntime's fused kernels and in the graph's definition (DequantizeLinear, float MatMul,
    QuantizeLinear), which then disagreed on 18 of 4985 training rows of spx-vol-5d's
    Transformer instead of 2, for the same accuracy.
    """
    model = _without_weight_identities(model)
    initializers = {i.name for i in model.graph.initializer}
    weighted = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and any(i in initializers for i in n.input)]
    if len(set(weighted)) != len(weighted) or "" in weighted:
        raise ValueError("MatMul/Gemm nodes need unique names to be quantized")
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
                reduce_range=True, nodes_to_quantize=weighted,
                op_types_to_quantize=["MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            logging.getLogger().setLevel(quiet)
        quantized = onnx.load(dst)
    quantized.ir_version = model.ir_version
    problems = saturation_risks(quantized)
    if problems:
        raise RuntimeError("quantized weights exceed 7 bits: " + "; ".join(problems))
    return quantized


def _without_weight_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with Identity nodes of initializers bypassed. The exporter writes a weight
    used at several places (the unrolled LSTM's recurrent weights, once per step) as Identity
    copies, which the quantizer would take for activations."""
    initializers = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs}
    if not alias:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [n for n in out.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    onnx.checker.check_model(out)
    return out


def saturation_risks(model: onnx.ModelProto) -> list[str]:
    """int8 weights that can saturate vpmaddubsw's int16 sums (see WEIGHT_LIMIT): the graph's
    integer MatMuls would then answer differently on CPUs with and without VNNI."""
    weights = {i.name: i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    problems = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            largest = int(np.max(np.abs(numpy_helper.to_array(weights[node.input[0]]).astype(np.int32)), initial=0))
            if largest > WEIGHT_LIMIT:
                problems.append(f"{node.input[0]}: |w| up to {largest} > {WEIGHT_LIMIT}")
    return problems


def unfused(model: onnx.ModelProto | bytes | Path) -> ort.InferenceSession:
    """A session without graph optimizations: a QDQ graph runs as its definition says
    (DequantizeLinear, then float MatMul) instead of as onnxruntime's fused integer kernels."""
    return session(model, optimize=False)


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
