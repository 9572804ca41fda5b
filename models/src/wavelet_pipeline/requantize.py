"""Quantize a bundle's int8 models again, from its own float models, without retraining those.

Training is deterministic on one machine, but not bit for bit across CPUs (the floating-point
kernels differ), so retraining a bundle elsewhere to change only its quantization would
change its float models too. Here the float graphs stay exactly as they are: the fitted
LSTM and Transformer are read back from them (``TorchForecaster.from_onnx``, which checks
that exporting again reproduces each graph byte for byte) and quantized with the current
``onnx_tools.quantize_int8``. Everything that depends on the int8 models is redone:

- their out-of-sample metrics, coverage and ship decision, from the walk-forward, which is
  rerun with the recorded hyperparameters and seed because its yearly refits are not stored
  (the float metrics of that rerun are compared with the recorded ones, and recorded in the
  manifest, but the recorded float metrics are kept);
- the shipped int8 graphs, their interval calibration, size, latency and difference from the
  float model, their parity vectors, the model card, and the manifest's hashes.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import bundle, card, onnx_tools, walkforward
from .config import BundleConfig
from .evaluation import evaluate
from .final import quantize, shipped_calibration
from .forecasters.ensemble import BASE_MODELS
from .forecasters.torch_models import TorchForecaster
from .metrics import significant
from .splits import build_table
from .train import LIBRARIES, load_series


def _relative_change(old: float, new: float) -> float:
    return abs(new - old) / abs(old) if old else abs(new - old)


def _cpu() -> str:
    """The CPU model and the instruction sets that decide onnxruntime's integer kernels."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    present = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{fields.get('model name', 'unknown')} ({', '.join(present) or 'no AVX2'})"


def _float_evaluation(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Everything the evaluation reports about float models and baselines."""
    def floats(table: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in table.items() if not k.endswith("_int8")}

    return {
        "models": floats(evaluation["models"]), "baselines": evaluation["baselines"], "coverage": floats(evaluation["coverage"]),
        "diebold_mariano": evaluation["diebold_mariano"], "anchor": evaluation.get("anchor"), "period": evaluation["period"],
    }


def _differences(rerun: Any, recorded: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON values differ: (path, recorded, rerun)."""
    if isinstance(rerun, dict) and isinstance(recorded, dict):
        return [d for k in sorted(set(rerun) | set(recorded))
                for d in _differences(rerun.get(k), recorded.get(k), f"{where}.{k}" if where else k)]
    if isinstance(rerun, list) and isinstance(recorded, list) and len(rerun) == len(recorded):
        return [d for i, (a, b) in enumerate(zip(rerun, recorded)) for d in _differences(a, b, f"{where}[{i}]")]
    return [] if rerun == recorded else [(where, recorded, rerun)]


def _largest_relative_change(differences: list[tuple[str, Any, Any]]) -> float:
    numbers = [(old, new) for _, old, new in differences if isinstance(old, (int, float)) and isinstance(new, (int, float))]
    if len(numbers) < len(differences):
        return float("inf")  # something other than a number changed
    return max((_relative_change(old, new) for old, new in numbers), default=0.0)


def requantize_bundle(path: Path, config: BundleConfig, command: str) -> tuple[str, dict[str, Any]]:
    """Rewrite the bundle at `path` in place; returns its new digest and what was compared."""
    started = time.monotonic()
    recorded = json.loads((path / bundle.MANIFEST).read_text())
    if recorded["training"]["config"] != config.describe():
        raise ValueError(f"{path}: trained with {recorded['training']['config']}, not {config.describe()}")
    if config.anchor:
        # The nets are read back from their graphs, which hold the anchor's Gather/Mul too.
        raise ValueError(f"{path}: its base models are anchored on {config.anchor}; retrain it (`train`) instead")
    series = load_series(config)
    # Keys a manifest predating them lacks (the OHLC fields) are not a difference in the data.
    data = {**series.describe(), "used_from": config.data_start or series.start}
    if any(key not in data or data[key] != value for key, value in recorded["data"].items()):
        raise ValueError(f"{path}: the data differ from the ones it was trained on")
    table = build_table(series, config.features, config.target, config.data_start)
    params = {kind: recorded["models"][kind]["hyperparameters"] for kind in BASE_MODELS}

    wf = walkforward.run(config, table, params)
    fresh = evaluate(config, wf)
    quantized = fresh.pop("quantized")
    shipped = {k: bool(quantized[k]["within_tolerance"]) for k in walkforward.QUANTIZED}
    primary = recorded["evaluation"]["primary_metric"]
    rerun = {
        name: {"recorded": row[primary], "rerun": fresh["models"][name][primary],
               "relative_change": significant(_relative_change(row[primary], fresh["models"][name][primary]))}
        for name, row in recorded["evaluation"]["models"].items() if name in walkforward.MODELS
    }

    differences = _differences(json.loads(bundle.json_text(_float_evaluation(fresh))), _float_evaluation(recorded["evaluation"]))

    X, _ = table.design()
    check_rows = X[wf.rows[wf.years_mask(config.test_years)]]
    graphs: dict[str, onnx.ModelProto] = {}
    reports: dict[str, dict[str, Any]] = {}
    calibration = {}
    for kind in walkforward.QUANTIZED:
        graph = onnx.load(path / recorded["models"][kind]["file"])
        model = TorchForecaster.from_onnx(kind, params[kind], graph, seed=config.seed, link=config.target.link,  # type: ignore[arg-type]
                                          channels=len(config.features.channels))
        native = config.target.from_link(model.predict(check_rows))
        int8, reports[kind] = quantize(model, graph, X, check_rows, native, shipped[kind])
        if reports[kind]["shipped"]:
            graphs[f"{kind}_int8"] = int8
            calibration[f"{kind}_int8"] = shipped_calibration(config, wf, f"{kind}_int8")

    manifest = json.loads(json.dumps(recorded))
    models: dict[str, Any] = {}
    for name, entry in recorded["models"].items():
        if name.endswith("_int8"):
            continue
        models[name] = entry
        if f"{name}_int8" in graphs:
            models[f"{name}_int8"] = {
                "precision": "int8-static",
                "hyperparameters": params[name],
                "tuning": entry["tuning"],
                "calibration": calibration[f"{name}_int8"].describe(),
            }
    manifest["models"] = models
    for kind in walkforward.QUANTIZED:
        manifest["evaluation"]["models"][f"{kind}_int8"] = fresh["models"][f"{kind}_int8"]
        manifest["evaluation"]["coverage"][f"{kind}_int8"] = fresh["coverage"][f"{kind}_int8"]
    manifest["quantized"] = {
        "tolerance": quantized["tolerance"],
        "decided_on_years": quantized["decided_on_years"],
        **{k: {**quantized[k], **reports[k]} for k in walkforward.QUANTIZED},
        "requantized": {
            "command": command,
            "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "machine": f"{platform.machine()}, {platform.system()}, Python {sys.version.split()[0]}",
            "cpu": _cpu(),
            "seconds": round(time.monotonic() - started, 1),
            "library_versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES},
            "note": (
                "int8 models quantized again from the unchanged float graphs; their walk-forward metrics come "
                "from a rerun of the walk-forward with the recorded hyperparameters and seed, whose float "
                f"models reproduced the recorded {primary} within the relative change below; "
                "float_evaluation_identical tells whether every other float metric, coverage, test and baseline came "
                "out the same, and float_evaluation_differences lists those that did not (recorded -> rerun). "
                "The recorded float metrics are kept."
            ),
            "float_walk_forward_rerun": {"metric": primary, **rerun},
            "float_evaluation_identical": not differences,
            **({
                "float_evaluation_largest_relative_change": significant(_largest_relative_change(differences)),
                "float_evaluation_differences": [f"{where}: {old!r} -> {new!r}" for where, old, new in differences[:100]],
            } if differences else {}),
        },
    }

    positive = config.target.kind == "volatility"
    vectors = json.loads((path / bundle.VECTORS).read_text())
    for case in vectors["cases"]:
        rows = np.asarray(case["features"], dtype=np.float64)
        for kind in walkforward.QUANTIZED:
            name = f"{kind}_int8"
            case["predictions"].pop(name, None)
            case["intervals"].pop(name, None)
            if name in graphs:
                prediction = onnx_tools.predict(graphs[name], rows)
                case["predictions"][name] = prediction
                case["intervals"][name] = dict(zip(("lower", "upper"), calibration[name].interval(prediction, rows, positive=positive)))
    for case in vectors["cases"]:  # model order as in the manifest
        for key in ("predictions", "intervals"):
            case[key] = {m: case[key][m] for m in models if m in case[key]}

    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(path, staging)
    for kind in walkforward.QUANTIZED:
        (staging / bundle.MODEL_FILES[f"{kind}_int8"]).unlink(missing_ok=True)
    for name, graph in graphs.items():
        bundle.save_graph(staging, manifest, name, graph)
    (staging / bundle.VECTORS).write_text(bundle.json_text(vectors))
    bundle.seal(staging, manifest)
    digest = card.rewrite(staging, config)
    previous = path.with_name(path.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    path.rename(previous)
    staging.rename(path)
    shutil.rmtree(previous)
    return digest, {"metric": primary, **rerun, "float_evaluation_differences": manifest["quantized"]["requantized"].get("float_evaluation_differences", [])}
