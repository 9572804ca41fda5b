"""The model bundle on disk (DESIGN §3): writing it and verifying it.

``manifest.json`` lists the sha256 of every other file in the bundle, so the sha256 of
the manifest's bytes identifies the whole bundle: it is the bundle digest the server
reports and the operator pins (``EXPECTED_BUNDLE_DIGEST``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import onnx_tools
from .features import ChannelParams, FeatureSpec, PriceData, channel_series, closes, feature_matrix
from .ranges import Bars

MANIFEST = "manifest.json"
FEATURE_NAMES = "feature_names.json"
VECTORS = "vectors/parity.json"
SCHEMA_VERSION = 1
MODEL_FILES = {
    "xgboost": "xgboost_optimized.onnx",
    "lstm": "lstm_optimized.onnx",
    "transformer": "transformer_optimized.onnx",
    "ensemble": "ensemble_optimized.onnx",
    "lstm_int8": "lstm_optimized.int8.onnx",
    "transformer_int8": "transformer_optimized.int8.onnx",
}
# Stored predictions are onnxruntime's float32 outputs; a rerun must agree to this.
PREDICTION_TOLERANCE = 1e-6
FEATURE_TOLERANCE = 1e-12
# An imported ("named features") bundle's graphs against the original frameworks'
# predictions, and a rerun against the stored ONNX predictions: |a - b| ≤ ATOL + RTOL·|a|.
NAMED_RTOL, NAMED_ATOL = 1e-5, 1e-6


def model_file(name: str) -> str:
    """Ours have fixed names; an imported model `<name>` is `<name>_optimized.onnx`."""
    return MODEL_FILES.get(name, f"{name}_optimized.onnx")


def parity_ratio(reference: np.ndarray, other: np.ndarray) -> float:
    """max |reference − other| / (NAMED_ATOL + NAMED_RTOL·|reference|): ≤ 1 where they agree."""
    reference, other = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape:
        return float("inf")
    return float(np.max(np.abs(reference - other) / (NAMED_ATOL + NAMED_RTOL * np.abs(reference)), initial=0.0))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_digest(bundle: Path) -> str:
    return "sha256:" + sha256_file(bundle / MANIFEST)


def _json_ready(value: Any) -> Any:
    """JSON has no NaN: missing values (history too short) are written as null."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_text(value: Any) -> str:
    return json.dumps(_json_ready(value), indent=2, allow_nan=False) + "\n"


def io_signature(graph: onnx.ModelProto) -> dict[str, Any]:
    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            out.append({"name": v.name, "type": "float32", "shape": dims})
        return out

    return {"inputs": describe(graph.graph.input), "outputs": describe(graph.graph.output)}


def bars_record(bars: Bars, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The bar fields a spec reads, columnar (as in vectors/parity.json)."""
    return {field: getattr(bars, field) for field in spec.inputs}


def bars_from_record(record: dict[str, Any]) -> Bars:
    column = {k: np.asarray(v, dtype=np.float64) for k, v in record.items()}
    return Bars(high=column["high"], low=column["low"], close=column["close"], open=column.get("open"))


def parity_case(name: str, data: PriceData, spec: FeatureSpec, fitted: ChannelParams,
                graphs: dict[str, onnx.ModelProto], intervals: Any) -> dict[str, Any]:
    """Raw prices (or bars) → each channel's per-day series → feature rows → every model's
    prediction and interval."""
    channels = channel_series(data, spec, fitted)
    # The rows the server computes: every day from the first with min_prices days of history
    # (a channel's history may be stated one day longer than it reads, as the range ones are).
    rows = feature_matrix(data, spec, fitted)[spec.min_prices - 1 :]
    if rows.size == 0 or np.isnan(rows).any():
        raise ValueError(f"parity case {name}: no complete feature rows from day {spec.min_prices - 1} on")
    predictions = {m: onnx_tools.predict(g, rows) for m, g in graphs.items()}
    return {
        "name": name,
        "prices": closes(data),
        **({"bars": bars_record(data, spec)} if isinstance(data, Bars) else {}),
        "denoised": channels[spec.channels[0]],
        "channels": channels,
        "features": rows,
        "predictions": predictions,
        "intervals": {m: dict(zip(("lower", "upper"), intervals(m, predictions[m], rows))) for m in graphs},
    }


def write_bundle(out: Path, manifest: dict[str, Any], graphs: dict[str, onnx.ModelProto], extra_files: dict[str, bytes]) -> str:
    """Write graphs and files, then the manifest with every hash; returns the bundle digest."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.onnx"):
        stale.unlink()
    for name, graph in graphs.items():
        save_graph(out, manifest, name, graph)
    for relative, data in extra_files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(data)
    return seal(out, manifest)


def save_graph(out: Path, manifest: dict[str, Any], name: str, graph: onnx.ModelProto) -> None:
    """Write one model's graph and record its file, sha256, size and signature in its entry."""
    file = model_file(name)
    onnx.save(graph, out / file)
    entry = manifest["models"][name]
    entry["file"] = file
    entry["sha256"] = sha256_file(out / file)
    entry["bytes"] = (out / file).stat().st_size
    entry.update(io_signature(graph))


def seal(out: Path, manifest: dict[str, Any]) -> str:
    """List the sha256 of every file in `out`, write the manifest; returns the bundle digest."""
    manifest["files"] = {
        str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    (out / MANIFEST).write_text(json_text(manifest))
    return bundle_digest(out)


def verify_bundle(bundle: Path) -> list[str]:
    """Every problem found (empty when the bundle is sound): hashes, files, signatures, vectors."""
    problems: list[str] = []
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{MANIFEST}: {exc}"]
    if manifest.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version {manifest.get('schema_version')!r} is not {SCHEMA_VERSION}")
    listed = manifest.get("files", {})
    present = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST}
    for missing in sorted(set(listed) - present):
        problems.append(f"{missing}: listed in the manifest but missing")
    for extra in sorted(present - set(listed)):
        problems.append(f"{extra}: present but not listed in the manifest")
    for relative in sorted(set(listed) & present):
        if sha256_file(bundle / relative) != listed[relative]:
            problems.append(f"{relative}: sha256 differs from the manifest")
    if problems:
        return problems

    names = json.loads((bundle / FEATURE_NAMES).read_text())
    if names != manifest["features"]["names"]:
        problems.append(f"{FEATURE_NAMES} differs from manifest features.names")
    graphs: dict[str, onnx.ModelProto] = {}
    for model, entry in manifest["models"].items():
        if entry["sha256"] != listed.get(entry["file"]):
            problems.append(f"{model}: models.{model}.sha256 differs from files[{entry['file']}]")
            continue
        graph = onnx.load(bundle / entry["file"])
        onnx.checker.check_model(graph)
        for risk in onnx_tools.saturation_risks(graph):
            problems.append(f"{model}: {risk} (integer MatMuls can saturate on CPUs without VNNI)")
        if io_signature(graph) != {"inputs": entry["inputs"], "outputs": entry["outputs"]}:
            problems.append(f"{model}: graph inputs/outputs differ from the manifest")
        graphs[model] = graph

    if manifest["features"].get("kind") == "named":
        return problems + verify_named(bundle, manifest, graphs)
    spec, fitted = FeatureSpec.from_manifest(manifest["features"])
    vectors = json.loads((bundle / VECTORS).read_text())
    for case in vectors["cases"]:
        data = bars_from_record(case["bars"]) if "bars" in case else np.asarray(case["prices"], dtype=np.float64)
        rows = feature_matrix(data, spec, fitted)[spec.min_prices - 1 :]
        if rows.shape != np.asarray(case["features"]).shape or np.max(np.abs(rows - case["features"]), initial=0) > FEATURE_TOLERANCE:
            problems.append(f"vectors {case['name']}: features do not reproduce")
            continue
        for model, graph in graphs.items():
            if rows.size == 0:
                continue
            got = onnx_tools.predict(graph, rows)
            if np.max(np.abs(got - np.asarray(case["predictions"][model]))) > PREDICTION_TOLERANCE:
                problems.append(f"vectors {case['name']}: {model} predictions do not reproduce")
    return problems


def verify_named(bundle: Path, manifest: dict[str, Any], graphs: dict[str, onnx.ModelProto]) -> list[str]:
    """An imported bundle (/work/contract23.md): its feature names, graphs' signatures,
    intervals' presence, and parity: for every case, onnxruntime here reproduces the stored
    ONNX predictions, and those agree with the original frameworks' within
    NAMED_RTOL/NAMED_ATOL."""
    problems: list[str] = []
    features = manifest["features"]
    names, length = features.get("names"), features.get("sequence_length")
    if not isinstance(names, list) or not names or not all(isinstance(x, str) and x for x in names) or len(set(names)) != len(names):
        return ["features.names must be a list of unique non-empty strings"]
    n = len(names)
    if type(length) is not int or length < 1 or n % length:
        problems.append(f"features.sequence_length {length!r} must be a whole number ≥ 1 dividing {n}")
    signature = {"inputs": [{"name": "features", "type": "float32", "shape": [None, n]}],
                 "outputs": [{"name": "prediction", "type": "float32", "shape": [None, 1]}]}
    calibrated = manifest.get("conformal", {}).get("available", True)
    for model, entry in manifest["models"].items():
        if {"inputs": entry.get("inputs"), "outputs": entry.get("outputs")} != signature:
            problems.append(f"{model}: inputs/outputs must be features [null, {n}] → prediction [null, 1]")
        if ("calibration" in entry) != calibrated:
            problems.append(f"{model}: calibration {'missing' if calibrated else 'present'} while conformal.available is {calibrated}")
    for key in ("target_range", "feature_range"):
        if (key in manifest) != calibrated:
            problems.append(f"{key} must be present exactly when the bundle was calibrated")
    if "feature_range" in manifest and not all(len(manifest["feature_range"][k]) == n for k in ("min", "max")):
        problems.append("feature_range.min and .max must have one entry per feature")
    if manifest["default_model"] not in manifest["models"]:
        problems.append(f"default_model {manifest['default_model']!r} is not one of the models")

    vectors = json.loads((bundle / VECTORS).read_text())
    if vectors.get("kind") != "named" or not vectors.get("cases"):
        return problems + [f"{VECTORS}: kind must be named, with at least one case"]
    for case in vectors["cases"]:
        rows = np.asarray(case["features"], dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != n:
            problems.append(f"vectors {case['name']}: features must be rows of {n} numbers")
            continue
        for model, graph in graphs.items():
            native, stored = case["predictions"].get(model), case["onnx_predictions"].get(model)
            if native is None or stored is None:
                problems.append(f"vectors {case['name']}: no predictions of {model}")
                continue
            if parity_ratio(stored, onnx_tools.predict(graph, rows)) > 1:
                problems.append(f"vectors {case['name']}: {model} ONNX predictions do not reproduce")
            if parity_ratio(native, stored) > 1:
                problems.append(f"vectors {case['name']}: {model} ONNX predictions differ from the original framework's "
                                f"beyond {NAMED_RTOL:g} relative + {NAMED_ATOL:g} absolute")
    return problems
