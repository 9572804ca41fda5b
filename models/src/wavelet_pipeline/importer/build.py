"""From the guide's directory to a sealed, verified "named features" bundle.

Everything is checked before anything is converted, every problem found is reported (one
line each) and the bundle is written into a temporary directory that is moved into place
only once `verify` accepts it: a refused import leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from .. import bundle, conformal, onnx_tools
from ..forecasters.ensemble import StackWeights, combine_onnx
from . import ImportRefused, read_json, sandbox
from .layout import FEATURE_NAMES, Layout, ModelFiles, scan

PARITY_SEED = 23
PARITY_ROWS = 32
MIN_CALIBRATION_ROWS = 10
FORMATS = {".ubj": "xgboost-ubjson", ".json": "xgboost-json"}
EXPORTER = "torch.onnx.export(dynamo=False): the TorchScript-based exporter, opset 17"
ORDER = ("xgboost", "lstm", "transformer")
LIBRARIES = ("numpy", "torch", "xgboost", "onnx", "onnxruntime", "onnxmltools", "scikit-learn", "skl2onnx", "skops")


@dataclass(frozen=True)
class Options:
    source: Path
    name: str
    version: str
    out: Path
    command: str
    allow_pickle: bool = False
    calibration: Path | None = None
    target_column: str = "target"
    target_name: str = "target"
    target_kind: Literal["return", "volatility"] = "return"
    horizon: int = 1
    units: str = "as trained"
    interval_scale: conformal.ScaleKind | None = None


@dataclass
class Imported:
    """One converted model: its graph and everything the manifest and parity file say of it."""

    graph: onnx.ModelProto
    predictions: np.ndarray  # the original framework's, on the parity rows
    entry: dict[str, Any]
    parity: dict[str, Any]


def say(message: str) -> None:
    print(f"import: {message}", file=sys.stderr, flush=True)


def import_bundle(options: Options) -> str:
    """Write the bundle to options.out; returns its digest. ImportRefused: nothing written."""
    started = time.monotonic()
    out = options.out
    if out.exists() and not (out / bundle.MANIFEST).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ImportRefused(f"{out} exists and is not a bundle: choose another --out (a bundle there would be replaced)")
    layout = scan(options.source)
    for file, why in layout.ignored.items():
        say(f"ignoring {file}: {why}")
    n = len(layout.names)
    rows, y, rows_kind = parity_rows(options, layout.names)

    work = Path(tempfile.mkdtemp(prefix="wavelet-import-"))
    try:
        sources = resolve_pickles(layout, options, rows, work)
        models = load_models(layout, sources, n)
        ensemble = read_ensemble(layout, sources, list(models))
        if ensemble is None and layout.ensemble is not None:  # a scikit-learn ensemble: converted like any model
            models["ensemble"] = load_sklearn_ensemble(layout, sources.get("ensemble"), n)
        imported: dict[str, Imported] = {}
        for name, model in models.items():
            begun = time.monotonic()
            imported[name] = convert(name, model, rows, layout)
            say(f"{name}: ONNX graph agrees with {model.framework} to {imported[name].parity['max_rel_diff']:.2g} relative "
                f"on {len(rows)} rows ({time.monotonic() - begun:.1f} s)")
        if ensemble is not None:
            imported["ensemble"] = combine(ensemble, imported, n, rows)
            say(f"ensemble of {', '.join(ensemble.stack.members)}: agrees to {imported['ensemble'].parity['max_rel_diff']:.2g} relative")
        default = default_model(list(imported))
        calibrated = calibrate(options, imported, rows, y) if options.calibration else None
        manifest = build_manifest(options, layout, imported, default, calibrated, rows_kind, time.monotonic() - started)
        files = {
            FEATURE_NAMES: (layout.root / FEATURE_NAMES).read_bytes(),
            bundle.VECTORS: bundle.json_text(parity_file(rows, rows_kind, imported)).encode(),
        }
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent if out.parent.is_dir() else None))
        try:
            manifest_graphs = {name: m.graph for name, m in imported.items()}
            bundle.write_bundle(staging, manifest, manifest_graphs, files)
            # The card lists the graphs' sha256, known once they are written; then reseal.
            (staging / "model_card.md").write_text(model_card(manifest, imported))
            digest = bundle.seal(staging, manifest)
            problems = bundle.verify_bundle(staging)
            if problems:
                raise RuntimeError("the imported bundle does not verify: " + "; ".join(problems))
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():
                shutil.rmtree(out)
            shutil.move(str(staging), str(out))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parity_rows(options: Options, names: list[str]) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """The rows every check runs on: the calibration file's (all of them; parity.json keeps
    an even sample), or PARITY_ROWS standard normal rows from a fixed seed, since without
    data the features' units are unknown."""
    if options.calibration is None:
        rows = np.random.default_rng(PARITY_SEED).standard_normal((PARITY_ROWS, len(names)))
        return rows, None, {"kind": "synthetic", "how": f"standard normal, numpy default_rng({PARITY_SEED}), {PARITY_ROWS} rows"}
    import pandas as pd

    path = options.calibration
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ImportRefused(f"{path.name}: not a readable CSV ({exc})") from None
    missing = [c for c in (*names, options.target_column) if c not in table.columns]
    if missing:
        raise ImportRefused(f"{path.name}: no column{'s' if len(missing) > 1 else ''} {', '.join(missing[:5])}"
                            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''} (it needs every name in "
                            f"{FEATURE_NAMES} and the target column {options.target_column!r}, --target-column)")
    values = table[[*names, options.target_column]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ImportRefused(f"{path.name}: {int(bad.sum())} rows have a missing or non-numeric value (first: data row {int(np.argmax(bad)) + 1})")
    if len(values) < MIN_CALIBRATION_ROWS:
        raise ImportRefused(f"{path.name}: {len(values)} rows; a {conformal.LEVEL:.0%} interval needs at least {MIN_CALIBRATION_ROWS}")
    return values[:, :-1], values[:, -1], {"kind": "calibration", "file": path.name, "sha256": bundle.sha256_file(path), "rows": len(values)}


def resolve_pickles(layout: Layout, options: Options, rows: np.ndarray, work: Path) -> dict[str, sandbox.Converted]:
    """Which files are pickles; refused without --allow-pickle (with the commands that
    convert them), else converted in the sandbox. Returns the converted file per model."""
    from .sequence import NeedsPickle, load_state_dict, torchscript_shape

    tasks: list[sandbox.PickleTask] = []
    for name, files in layout.models.items():
        if files.kind == "torchscript" and files.shadowed is not None:
            try:
                load_state_dict(files.shadowed)
            except NeedsPickle:
                layout.ignored[files.shadowed.name] = f"a pickle of the model {files.file.name} already holds; not read"
                say(f"ignoring {files.shadowed.name}: {layout.ignored[files.shadowed.name]}")
            else:
                raise ImportRefused(f"{layout.root}: {files.file.name} and {files.shadowed.name} are both model {name!r}: keep one")
        if files.kind == "state-dict":
            try:
                load_state_dict(files.file)
            except NeedsPickle:
                files.pickle = True
        if files.pickle:
            shape = torchscript_shape(layout.root / f"{name}_optimized_config.json", len(layout.names)) if files.kind == "state-dict" else None
            tasks.append(sandbox.PickleTask("torch-module" if files.kind == "state-dict" else "xgboost", name, files.file, shape))
    if layout.ensemble is not None and layout.ensemble_pickle:
        tasks.append(sandbox.PickleTask("ensemble", "ensemble", layout.ensemble))
    if not tasks:
        return {}
    if not options.allow_pickle:
        raise ImportRefused(pickle_refusal(layout, tasks, options))
    return sandbox.convert(tasks, rows, work)


def pickle_refusal(layout: Layout, tasks: list[sandbox.PickleTask], options: Options) -> str:
    """The refusal, with the one command that imports them anyway (sandboxed) and the
    commands that convert each to a safe file by hand."""
    several = len(tasks) > 1
    lines = [f"{', '.join(t.file.name for t in tasks)}: {'pickles' if several else 'a pickle'}; unpickling runs whatever code "
             f"the file holds, so {'none is' if several else 'it is not'} read without --allow-pickle.",
             f"  To unpickle {'them' if several else 'it'} {sandbox.HOW}, add --allow-pickle:",
             f"    {options.command} --allow-pickle",
             f"  Or convert {'them' if several else 'it'} to safe files yourself, in a Python that trusts "
             f"{'them' if several else 'it'} (a safe file wins over a pickle of the same model):"]
    for task in tasks:
        source = str(task.file)
        if task.kind == "xgboost":
            code = f"import pickle; pickle.load(open({source!r}, 'rb')).save_model({str(layout.root / 'xgboost_optimized.ubj')!r})"
        elif task.kind == "ensemble":  # weights, or a scikit-learn ensemble
            code = (f"import json, pickle, skops.io; w = pickle.load(open({source!r}, 'rb')); "
                    f"skops.io.dump(w, {str(layout.root / 'ensemble_optimized.skops')!r}) if hasattr(w, 'predict') else "
                    f"json.dump({{'weights': w.get('weights', w)}}, open({str(layout.root / 'ensemble_optimized.json')!r}, 'w'))")
        else:
            length, size = task.shape or (1, len(layout.names))
            code = (f"import torch; m = torch.load({source!r}, weights_only=False).eval(); "
                    f"torch.jit.trace(m, torch.zeros(1, {length}, {size})).save({str(layout.root / f'{task.name}_optimized.pt')!r})")
        quoted = f'"{code}"' if not any(c in code for c in '"$`\\!') else shlex.quote(code)
        lines.append(f"    python -c {quoted}")
    return "\n".join(lines)


@dataclass
class Loaded:
    files: ModelFiles
    framework: str
    model: Any  # xgb.XGBoostImport | sequence.TorchImport
    source: dict[str, Any]
    notes: list[str]
    pickle_predictions: np.ndarray | None = None  # the unpickled object's own answers (sandbox)


def load_models(layout: Layout, converted: dict[str, sandbox.Converted], n: int) -> dict[str, Loaded]:
    """Every model loaded with a safe loader and checked against feature_names.json; all
    problems at once (ImportRefused, one line each)."""
    from . import sequence, xgb

    problems: list[str] = []
    loaded: dict[str, Loaded] = {}
    for name in sorted(layout.models, key=model_order):
        files = layout.models[name]
        source = {"file": files.file.name, "sha256": bundle.sha256_file(files.file)}
        pickled = converted.get(name)
        try:
            if files.kind == "xgboost":
                path = pickled.path if pickled else files.file
                model = xgb.load(path, layout.names, label=files.file.name)
                source["format"] = "pickle" if pickled else FORMATS[files.file.suffix]
                source["converter"] = f"onnxmltools.convert_xgboost {importlib.metadata.version('onnxmltools')}"
                loaded[name] = Loaded(files, f"XGBoost {importlib.metadata.version('xgboost')}", model, source, model.notes)
            else:
                config = layout.root / f"{name}_optimized_config.json"
                if pickled is not None and (pickled.format == "torch-state-dict" or
                                            (pickled.state_dict is not None and sequence.describes_architecture(config))):
                    # The weights into the documented architecture; the unpickled module's own
                    # answers then check that architecture against the user's class.
                    model = sequence.from_state_dict(name, pickled.state_dict or pickled.path, config, n, label=files.file.name)
                elif pickled is not None:
                    model = sequence.from_torchscript(name, pickled.path, sequence.torchscript_shape(config, n), label=files.file.name)
                elif files.kind == "state-dict":
                    model = sequence.from_state_dict(name, files.file, config, n)
                else:
                    model = sequence.from_torchscript(name, files.file, sequence.torchscript_shape(config, n))
                source["format"] = "pickle" if pickled else model.format
                # Recorded per the contract: which torch exporter made the graph (see export_graph for why).
                source["exporter"] = EXPORTER
                if config.exists():
                    source["config"] = {"file": config.name, "sha256": bundle.sha256_file(config)}
                loaded[name] = Loaded(files, f"torch {importlib.metadata.version('torch')}", model, source, [])
        except ImportRefused as exc:
            problems.append(str(exc))
            continue
        if pickled is not None:
            source.update(sandbox.describe(pickled, getattr(loaded[name].model, "format", None)))
            loaded[name].pickle_predictions = pickled.predictions
    if not problems:
        problems = shape_conflicts(loaded)
    if problems:
        raise ImportRefused("\n".join(problems))
    return loaded


def model_order(name: str) -> tuple[int, str]:
    """xgboost, lstm, transformer, then the others alphabetically."""
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def shape_conflicts(loaded: dict[str, Loaded]) -> list[str]:
    """Models whose configs read the vector as different sequences (L × d) cannot all be
    fed one vector as the caller means it; TorchScript without a config (1 × n) reads it
    flat and agrees with any."""
    shaped = {name: (m.model.length, m.model.size) for name, m in loaded.items()
              if hasattr(m.model, "length") and "config" in m.source}
    if len(set(shaped.values())) <= 1:
        return []
    first = next(iter(shaped))
    return [f"{name}_optimized_config.json: sequence_length {shape[0]} × input_size {shape[1]}, but {first}_optimized_config.json "
            f"has {shaped[first][0]} × {shaped[first][1]}: one feature vector cannot be both"
            for name, shape in shaped.items() if shape != shaped[first]]


@dataclass
class Ensemble:
    stack: StackWeights
    source: dict[str, Any]


def read_ensemble(layout: Layout, converted: dict[str, sandbox.Converted], present: list[str]) -> Ensemble | None:
    """ensemble_optimized.json: {"weights": {member: weight}}, every member present, every
    weight finite. The weights need NOT sum to 1: the graph computes Σ wᵢ·memberᵢ exactly as
    the file says (a stacked model's weights need not be an average), and a sum other
    than 1 is said on stderr."""
    pickled = converted.get("ensemble")
    if layout.ensemble is None or layout.ensemble.suffix == ".skops" or (pickled and pickled.format == "sklearn-skops"):
        return None  # none, or a scikit-learn ensemble (load_sklearn_ensemble)
    path = pickled.path if pickled else layout.ensemble
    label = layout.ensemble.name
    raw = read_json(path, label)
    if not isinstance(raw, dict) or set(raw) != {"weights"} or not isinstance(raw["weights"], dict) or not raw["weights"]:
        extra = f" (unknown keys {', '.join(sorted(set(raw) - {'weights'}))})" if isinstance(raw, dict) and set(raw) - {"weights"} else ""
        raise ImportRefused(f"{label}: must be {{\"weights\": {{member: weight, ...}}}} with at least one member{extra}")
    weights = raw["weights"]
    missing = [m for m in weights if m not in present]
    if missing:
        raise ImportRefused(f"{label}: weights name {', '.join(missing)}, not among the imported models "
                            f"({', '.join(present)}): add {' and '.join(f'{m}_optimized.*' for m in missing)} or drop "
                            f"{'them' if len(missing) > 1 else 'it'} from the weights")
    bad = [f"{m}: {w!r}" for m, w in weights.items() if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)]
    if bad:
        raise ImportRefused(f"{label}: weights must be finite numbers; {', '.join(bad)}")
    members = tuple(sorted(weights, key=model_order))
    total = sum(float(weights[m]) for m in members)
    if abs(total - 1.0) > 1e-9:
        say(f"{label}: the weights sum to {total:.6g}, not 1: the ensemble is Σ weight × prediction as given, not an average")
    source = {"format": "pickle" if pickled else "ensemble-weights", "file": label, "sha256": bundle.sha256_file(layout.ensemble)}
    if pickled is not None:
        source.update(sandbox.describe(pickled))
    return Ensemble(StackWeights(members, tuple(float(weights[m]) for m in members), 0.0, "level"), source)


def load_sklearn_ensemble(layout: Layout, pickled: sandbox.Converted | None, n: int) -> Loaded:
    """ensemble_optimized.skops (or the .skops the sandbox wrote for a pickled estimator):
    audited and loaded with skops trusting only sklearn_ensemble.TRUSTED; it stands alone
    (its members are inside it)."""
    from . import sklearn_ensemble

    assert layout.ensemble is not None
    files = ModelFiles("ensemble", "sklearn", layout.ensemble, pickle=pickled is not None)
    model = sklearn_ensemble.load(pickled.path if pickled else layout.ensemble, layout.names, label=layout.ensemble.name)
    source: dict[str, Any] = {"format": "pickle" if pickled else model.format, "file": layout.ensemble.name,
                              "sha256": bundle.sha256_file(layout.ensemble), "trusted_types": list(sklearn_ensemble.TRUSTED)}
    if pickled is not None:
        source.update(sandbox.describe(pickled))
    return Loaded(files, f"scikit-learn {importlib.metadata.version('scikit-learn')}", model, source, model.notes,
                  pickled.predictions if pickled else None)


def convert(name: str, loaded: Loaded, rows: np.ndarray, layout: Layout) -> Imported:
    """The model's graph, checked against its framework on the parity rows."""
    from .sequence import TorchImport, to_onnx

    model = loaded.model
    native = model.predict(rows)
    entry: dict[str, Any] = {"precision": "float32", "source": loaded.source}
    if isinstance(model, TorchImport):
        graph, report, notes = to_onnx(model)
        entry["sequence"] = {"sequence_length": model.length, "input_size": model.size, "checks": report}
        entry["imported"] = model.details
        loaded.notes += notes
    else:
        graph = model.to_onnx()
        entry["imported"] = model.details
    onnx_predictions = onnx_tools.predict(graph, rows)
    single = np.concatenate([onnx_tools.predict(graph, rows[i : i + 1]) for i in range(min(len(rows), PARITY_ROWS))])
    for how, got, want in (("in one batch", onnx_predictions, native), ("one row at a time", single, native[: len(single)])):
        if bundle.parity_ratio(want, got) > 1:
            raise ImportRefused(f"{name}: the ONNX graph differs from {loaded.framework} {how} by {np.max(np.abs(want - got)):.3g} "
                                f"(beyond {bundle.NAMED_RTOL:g} relative + {bundle.NAMED_ATOL:g} absolute)")
    original = loaded.pickle_predictions
    if original is not None and bundle.parity_ratio(original, native) > 1:
        gap = np.max(np.abs(original - native)) if original.shape == native.shape else f"shape {original.shape} vs {native.shape}"
        why = (f"the {model.config.architecture} that {loaded.source['config']['file']} describes computes something else than "
               "the pickled module's class (input scaling, another head?); drop the config to import it as TorchScript"
               if getattr(model, "format", None) == "torch-state-dict" else
               "skops did not write the estimator back as it was" if getattr(model, "format", None) == "sklearn-skops" else
               "torch.jit.trace recorded one path through a forward that branches on its input")
        raise ImportRefused(f"{loaded.files.file.name}: the unpickled model and its safe conversion answer differently "
                            f"(by {gap}): {why}")
    for note in loaded.notes:
        say(note)
    if loaded.notes:
        entry["notes"] = loaded.notes
    parity = {**onnx_tools.parity(native, onnx_predictions), "within_tolerance": True, "batch_sizes": [len(rows), 1]}  # 1: the first PARITY_ROWS rows
    return Imported(graph, native, entry, parity)


def combine(ensemble: Ensemble, imported: dict[str, Imported], n: int, rows: np.ndarray) -> Imported:
    stack = ensemble.stack
    graph = combine_onnx({m: imported[m].graph for m in stack.members}, stack, n)
    native = np.column_stack([imported[m].predictions for m in stack.members]) @ np.asarray(stack.weights)
    got = onnx_tools.predict(graph, rows)
    if bundle.parity_ratio(native, got) > 1:
        raise ImportRefused(f"ensemble: the ONNX graph differs from the weighted sum of the members by {np.max(np.abs(native - got)):.3g}")
    entry = {"precision": "float32", "source": ensemble.source, "weights": dict(zip(stack.members, stack.weights)),
             "intercept": 0.0, "combination": "sum of weight × member prediction, as the weights file gives them (not normalized)"}
    return Imported(graph, native, entry, {**onnx_tools.parity(native, got), "within_tolerance": True, "batch_sizes": [len(rows)]})


def default_model(names: list[str]) -> str:
    """The contract's rule: the ensemble if imported, else the single model, else the first
    of xgboost, lstm, transformer, then the others alphabetically."""
    return "ensemble" if "ensemble" in names else sorted(names, key=model_order)[0]


@dataclass
class Calibrated:
    per_model: dict[str, conformal.Calibration]
    scale: conformal.ScaleKind
    target_range: dict[str, Any]
    feature_range: dict[str, Any]


def calibrate(options: Options, imported: dict[str, Imported], rows: np.ndarray, y: np.ndarray | None) -> Calibrated:
    """Split conformal on the calibration rows, as the pipeline calibrates its own models
    (conformal.calibrate), on the ONNX predictions the server will serve. The rows must be
    ones the models were not trained on, or the intervals come out too narrow."""
    assert y is not None
    scale = options.interval_scale or ("prediction" if options.target_kind == "volatility" else "rms_features")
    per_model = {name: conformal.calibrate(y, onnx_tools.predict(m.graph, rows), rows, scale) for name, m in imported.items()}
    target_range = {"min": float(y.min()), "max": float(y.max()), "p001": float(np.quantile(y, 0.001)),
                    "p999": float(np.quantile(y, 0.999)),
                    "note": "realized targets of the calibration rows; predictions outside [min, max] are anomalies"}
    feature_range = {"min": rows.min(axis=0).tolist(), "max": rows.max(axis=0).tolist(),
                     "note": "per feature, over the calibration rows; a request's value outside is input drift"}
    return Calibrated(per_model, scale, target_range, feature_range)


def build_manifest(options: Options, layout: Layout, imported: dict[str, Imported], default: str,
                   calibrated: Calibrated | None, rows_kind: dict[str, Any], seconds: float) -> dict[str, Any]:
    names = layout.names
    lengths = {m.entry["sequence"]["sequence_length"] for m in imported.values() if "config" in m.entry["source"] and "sequence" in m.entry}
    models = {}
    for name, m in imported.items():
        entry = {k: v for k, v in m.entry.items()}
        if calibrated is not None:
            entry["calibration"] = calibrated.per_model[name].describe()
        models[name] = entry
    used = sorted({FEATURE_NAMES, *(m.entry["source"]["file"] for m in imported.values()),
                   *(m.entry["source"]["config"]["file"] for m in imported.values() if "config" in m.entry["source"])})
    manifest: dict[str, Any] = {
        "schema_version": bundle.SCHEMA_VERSION,
        "name": options.name,
        "version": options.version,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "description": f"{', '.join(imported)} imported from {layout.root.name}/ (named features; not evaluated here)",
        "target": {"name": options.target_name, "kind": options.target_kind, "horizon": options.horizon,
                   "units": options.units, "link": "identity"},
        "features": {"kind": "named", "names": names, "sequence_length": lengths.pop() if len(lengths) == 1 else 1},
        "source": {"kind": "import", "dir_files": {f: bundle.sha256_file(layout.root / f) for f in used},
                   "pickle": any(m.entry["source"]["format"] == "pickle" for m in imported.values()),
                   **({"ignored_files": sorted(layout.ignored)} if layout.ignored else {})},
        "default_model": default,
        "models": models,
    }
    if calibrated is None:
        manifest["conformal"] = {"level": conformal.LEVEL, "lower_bound_zero": options.target_kind == "volatility",
                                 "available": False, "why": "imported without --calibration data"}
    else:
        manifest["conformal"] = {
            "method": "split conformal, score |y - prediction| / scale, interval prediction ± quantile * scale",
            "level": conformal.LEVEL, "scale": calibrated.scale, "scale_floor": conformal.SCALE_FLOOR,
            "lower_bound_zero": options.target_kind == "volatility", "available": True,
            "calibration_data": {k: v for k, v in rows_kind.items() if k != "kind"},
        }
        manifest["target_range"] = calibrated.target_range
        manifest["feature_range"] = calibrated.feature_range
    manifest["parity"] = {name: m.parity for name, m in imported.items()}
    manifest["import"] = {
        "seconds": round(seconds, 1),
        "command": options.command,
        "parity_rows": rows_kind,
        "tolerance": {"relative": bundle.NAMED_RTOL, "absolute": bundle.NAMED_ATOL},
        "machine": f"{platform.machine()}, {platform.system()}, Python {sys.version.split()[0]}",
        "library_versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES},
    }
    return manifest


def parity_file(rows: np.ndarray, rows_kind: dict[str, Any], imported: dict[str, Imported]) -> dict[str, Any]:
    """vectors/parity.json (contract): at most PARITY_ROWS rows, evenly spaced."""
    keep = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), PARITY_ROWS)).round().astype(int))
    sample = rows[keep]
    name = "calibration-rows" if rows_kind["kind"] == "calibration" else "synthetic-rows"
    return {
        "description": "named feature rows -> each model's prediction by its original framework (predictions) and by "
                       "onnxruntime on the bundle's graph, float32 (onnx_predictions); they agree within 1e-5 relative + "
                       f"1e-6 absolute. Rows: {rows_kind.get('how') or 'an even sample of the calibration file ' + rows_kind['file']}",
        "kind": "named",
        "cases": [{
            "name": name,
            "features": sample,
            "predictions": {m: i.predictions[keep] for m, i in imported.items()},
            "onnx_predictions": {m: onnx_tools.predict(i.graph, sample) for m, i in imported.items()},
        }],
    }


def model_card(manifest: dict[str, Any], imported: dict[str, Imported]) -> str:
    """What was imported from which files, parity per model, no evaluation claims."""
    target, features, source = manifest["target"], manifest["features"], manifest["source"]
    lines = [
        f"# {manifest['name']} {manifest['version']}: imported models",
        "",
        f"Imported on {manifest['created']} with `{manifest['import']['command']}`. These models were trained elsewhere; "
        "this bundle converts them to ONNX and measures that each graph computes what its original framework computes. "
        "**Nothing here measures how well they forecast**: no walk-forward evaluation and no baselines were run (the "
        "pipeline's own bundles report both); judge them on your own out-of-sample record.",
        "",
        "## What it predicts",
        "",
        f"`{target['name']}` ({target['kind']}, horizon {target['horizon']}, units: {target['units']}) from "
        f"{len(features['names'])} named features, sent as a vector in this order or as an object keyed by name "
        f"(sequence length {features['sequence_length']}):",
        "",
        "| # | feature |" + (" calibration min | max |" if "feature_range" in manifest else ""),
        "|---|---|" + ("---|---|" if "feature_range" in manifest else ""),
    ]
    for i, name in enumerate(features["names"]):
        extra = f" {manifest['feature_range']['min'][i]:.6g} | {manifest['feature_range']['max'][i]:.6g} |" if "feature_range" in manifest else ""
        lines.append(f"| {i} | `{name}` |{extra}")
    lines += ["", "## Models", "", f"Default model: **{manifest['default_model']}**.", "",
              "| model | imported from | format | bundle file | max abs diff | max rel diff | rows |", "|---|---|---|---|---|---|---|"]
    for name, entry in manifest["models"].items():
        p = manifest["parity"][name]
        lines.append(f"| {name} | `{entry['source']['file']}` | {entry['source']['format']} | `{entry['file']}` | "
                     f"{p['max_abs_diff']:.3g} | {p['max_rel_diff']:.3g} | {p['rows']} |")
    rows = manifest["import"]["parity_rows"]
    lines += ["", f"Differences are onnxruntime (float32) against the original framework (XGBoost's predict, torch's eval-mode "
              f"forward, scikit-learn's predict) on {rows.get('how') or 'the rows of ' + rows['file']}; the import refuses a model beyond "
              f"{bundle.NAMED_RTOL:g} relative + {bundle.NAMED_ATOL:g} absolute. Sequence models are also checked at two "
              "batch sizes and, as raw sequence models, at two sequence lengths. `wavelet-pipeline verify` rechecks "
              "`vectors/parity.json`.", ""]
    ensemble = manifest["models"].get("ensemble")
    if ensemble is not None and "weights" in ensemble:
        weights = ensemble["weights"]
        lines += [f"The ensemble is {' + '.join(f'{w:g} × {m}' for m, w in weights.items())}, as the weights file says.", ""]
    elif ensemble is not None:
        imported_as = ensemble["imported"]
        lines += [f"The ensemble is the scikit-learn {imported_as['estimator']} in `{ensemble['source']['file']}` over "
                  f"{', '.join(f'{m} ({c})' for m, c in imported_as['members'].items())}"
                  f"{', final estimator ' + imported_as['final_estimator'] if 'final_estimator' in imported_as else ''}, "
                  "converted whole by skl2onnx; skops loaded it trusting only the types the manifest lists "
                  "(`models.ensemble.source.trusted_types`).", ""]
    lines += ["## Source files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| `{f}` | `{h}` |" for f, h in source["dir_files"].items()]
    if source.get("ignored_files"):
        lines += ["", f"Ignored (not in the bundle): {', '.join(f'`{f}`' for f in source['ignored_files'])}."]
    if source["pickle"]:
        lines += ["", f"Pickles were unpickled only {sandbox.HOW}, and converted to safe files there."]
    lines += ["", "## Intervals", ""]
    conf = manifest["conformal"]
    if conf["available"]:
        lines.append(f"Split conformal, nominal {conf['level']:.0%}, scale `{conf['scale']}`, calibrated on "
                     f"{conf['calibration_data']['rows']} rows of `{conf['calibration_data']['file']}`. Coverage holds only "
                     "if those rows were not used in training and resemble the future.")
    else:
        lines.append("None: imported without `--calibration` data, so a request for confidence intervals is refused.")
    lines += ["", "## Limitations", "",
              "- A state dict holds weights, not code: its architecture is rebuilt from the config. If the original class "
              "computed anything else (input scaling, another head), parity cannot see it; compare the bundle's answers with "
              "your own on a few rows.",
              "- Preprocessing that is not inside a model file (scalers, feature code) is not in the bundle: callers must send "
              "features exactly as the models were trained on.",
              *(["- The parity rows are synthetic (standard normal): a tree may not be exercised on every branch real "
                 "features reach. Import with `--calibration` to check on rows of real data."] if rows["kind"] == "synthetic" else []),
              ""]
    return "\n".join(lines)
