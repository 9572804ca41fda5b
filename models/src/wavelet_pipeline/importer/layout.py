"""Reading the deployment guide's directory layout: which file is which model.

    feature_names.json                       required: the input vector's names, in order
    xgboost_optimized.ubj | .json | .pkl     XGBoost (the pickle only with --allow-pickle)
    <name>_optimized.pth [+ _config.json]    a PyTorch state dict and its architecture
    <name>_optimized.pt  [+ _config.json]    TorchScript, any architecture
    ensemble_optimized.json | .pkl           {"weights": {member: weight}}
    ensemble_optimized.skops                 a scikit-learn VotingRegressor/StackingRegressor (skops)

A safe file next to a pickle of the same model wins (the pickle is left alone, which is
what the refusal's conversion command produces). Any other file is ignored and said so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ImportRefused, read_json

FEATURE_NAMES = "feature_names.json"
SUFFIX = "_optimized"
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED = ("ensemble", "xgboost")


@dataclass
class ModelFiles:
    """The file(s) one model comes from; kind: "xgboost" | "state-dict" | "torchscript"."""

    name: str
    kind: str
    file: Path
    pickle: bool = False  # an xgboost .pkl, or a .pth that is not a plain state dict (found later)
    shadowed: Path | None = None  # a <name>_optimized.pth beside this <name>_optimized.pt


@dataclass
class Layout:
    root: Path
    names: list[str]
    models: dict[str, ModelFiles]
    ensemble: Path | None  # .json (weights over the members), .skops (a scikit-learn ensemble) or .pkl
    ensemble_pickle: bool
    ignored: dict[str, str] = field(default_factory=dict)  # file → why


def read_feature_names(path: Path) -> list[str]:
    """A JSON list of unique, non-empty strings (the contract); ImportRefused says how not."""
    names = read_json(path)
    if not isinstance(names, list) or not names:
        raise ImportRefused(f"{FEATURE_NAMES}: must be a non-empty JSON list of feature names, not {type(names).__name__}"
                            + (" (empty)" if names == [] else ""))
    bad = [i for i, x in enumerate(names) if not isinstance(x, str) or not x.strip()]
    if bad:
        raise ImportRefused(f"{FEATURE_NAMES}: entries {', '.join(f'#{i} {names[i]!r}' for i in bad[:5])} are not non-empty strings")
    seen: dict[str, int] = {}
    repeated = []
    for i, x in enumerate(names):
        if x in seen:
            repeated.append(f"{x!r} (#{seen[x]} and #{i})")
        seen.setdefault(x, i)
    if repeated:
        raise ImportRefused(f"{FEATURE_NAMES}: names must be unique; repeated: {', '.join(repeated[:5])}")
    return names


def scan(root: Path) -> Layout:
    """The layout of `root`; ImportRefused for a missing directory, no feature names, no
    model, or two files claiming one model."""
    if not root.is_dir():
        raise ImportRefused(f"{root}: not a directory")
    files = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    layout_help = ("the deployment guide's layout: feature_names.json and at least one of xgboost_optimized.ubj|.json|.pkl, "
                   "<name>_optimized.pth with <name>_optimized_config.json, <name>_optimized.pt, ensemble_optimized.skops")
    if not files:
        raise ImportRefused(f"{root} is empty: expected {layout_help}")
    if not (root / FEATURE_NAMES).is_file():
        raise ImportRefused(f"{root}: no {FEATURE_NAMES} (expected {layout_help})")
    names = read_feature_names(root / FEATURE_NAMES)
    by_name = {p.name: p for p in files}
    models: dict[str, ModelFiles] = {}
    ignored: dict[str, str] = {}
    claimed = {FEATURE_NAMES}

    xgb_safe = [by_name[f] for f in ("xgboost_optimized.ubj", "xgboost_optimized.json") if f in by_name]
    if len(xgb_safe) > 1:
        raise ImportRefused(f"{root}: both xgboost_optimized.ubj and xgboost_optimized.json: keep the one to import")
    if xgb_safe:
        models["xgboost"] = ModelFiles("xgboost", "xgboost", xgb_safe[0])
        claimed.add(xgb_safe[0].name)
        if "xgboost_optimized.pkl" in by_name:
            ignored["xgboost_optimized.pkl"] = f"a pickle of the model {xgb_safe[0].name} already holds; not read"
    elif "xgboost_optimized.pkl" in by_name:
        models["xgboost"] = ModelFiles("xgboost", "xgboost", by_name["xgboost_optimized.pkl"], pickle=True)
    claimed.add("xgboost_optimized.pkl")

    ensemble, ensemble_pickle = None, False
    ensemble_safe = [by_name[f] for f in ("ensemble_optimized.json", "ensemble_optimized.skops") if f in by_name]
    if len(ensemble_safe) > 1:
        raise ImportRefused(f"{root}: both ensemble_optimized.json (weights over the members) and ensemble_optimized.skops "
                            "(a scikit-learn ensemble): keep the one to import")
    if ensemble_safe:
        ensemble = ensemble_safe[0]
        if "ensemble_optimized.pkl" in by_name:
            what = "the weights" if ensemble.suffix == ".json" else "the ensemble"
            ignored["ensemble_optimized.pkl"] = f"a pickle of {what} {ensemble.name} already holds; not read"
    elif "ensemble_optimized.pkl" in by_name:
        ensemble, ensemble_pickle = by_name["ensemble_optimized.pkl"], True
    claimed |= {"ensemble_optimized.json", "ensemble_optimized.skops", "ensemble_optimized.pkl"}

    problems = []
    for path in files:
        stem, suffix = path.stem, path.suffix
        if suffix not in (".pth", ".pt") or not stem.endswith(SUFFIX):
            continue
        name = stem[: -len(SUFFIX)]
        claimed.add(path.name)
        if not MODEL_NAME.match(name) or name in RESERVED or name.endswith("_int8"):
            problems.append(f"{path.name}: model name {name!r} must be lowercase letters, digits and _ (at most 40, starting "
                            f"with a letter), not {' or '.join(RESERVED)}, not ending in _int8")
            continue
        claimed.add(f"{name}{SUFFIX}_config.json")
        kind = "state-dict" if suffix == ".pth" else "torchscript"
        if name in models:  # sorted: <name>_optimized.pt came first, this is the .pth
            # A .pth that is a pickle yields to the TorchScript file; a state dict is a
            # second model of the same name (decided in build.py, where .pth files are read).
            models[name].shadowed = path
            continue
        models[name] = ModelFiles(name, kind, path)
    if problems:
        raise ImportRefused("\n".join(problems))
    for path in files:
        if path.name not in claimed:
            if path.name.endswith(f"{SUFFIX}_config.json"):
                ignored[path.name] = f"a config with no {path.name.removesuffix('_config.json')}.pth or .pt beside it"
                continue
            ignored[path.name] = "a directory, not part of the guide's layout" if path.is_dir() else \
                ("a pickle the guide's layout does not name: NOT in the bundle (if it is a preprocessing step, such as a "
                 "scaler, the bundle's models expect inputs it would have transformed)" if path.suffix == ".pkl"
                 else "not part of the guide's layout")
    if not models and (ensemble is None or ensemble.suffix == ".json"):
        # A scikit-learn ensemble (.skops, or a pickle that may hold one) stands alone.
        raise ImportRefused(f"{root}: no model file (expected {layout_help})")
    return Layout(root, names, models, ensemble, ensemble_pickle, ignored)
