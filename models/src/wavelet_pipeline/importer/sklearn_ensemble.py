"""A scikit-learn VotingRegressor or StackingRegressor saved with skops (ensemble_optimized.skops).

A skops file is a zip of a JSON schema and numpy arrays. It is not free of code paths in
general: the schema names types (and can name functions) that skops imports and constructs,
and constructing an object runs its class's own code (``__new__``, ``__setstate__``). What
makes it safe to read is that skops' loader constructs only the types it is told to trust.
So the file is audited before anything is constructed:

1. every node of its schema (each JSON object with a ``__loader__``, wherever it sits) must
   use one of LOADERS and name one of TRUSTED, this module's list (no functions, methods,
   ``functools.partial``, ``operator`` calls: their loaders are not in LOADERS);
2. ``skops.io.get_untrusted_types`` (the types skops itself does not trust by default) must
   name nothing outside TRUSTED either (skops trusts every scikit-learn estimator by
   default, SVR and FunctionTransformer among them: step 1 is what narrows that);
3. only then ``skops.io.load(path, trusted=TRUSTED)``: never ``trusted=True``.

The loaded estimator must be a VotingRegressor or StackingRegressor whose members are in
MEMBERS and whose final estimator is in FINAL, over feature_names.json's features. It is
converted whole by skl2onnx (onnxmltools' converter for XGBRegressor members) and checked,
like every imported model, against its own ``predict`` (build.convert).
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import xgboost as xgb
from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor, StackingRegressor,
                              VotingRegressor)
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

from ..forecasters import INPUT_NAME, OPSET
from ..forecasters.xgboost_model import prediction_output
from . import ImportRefused, xgb as xgb_import

ML_OPSET = 3  # ai.onnx.ml alongside opset 17 (onnx 1.12)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ENSEMBLES = (VotingRegressor, StackingRegressor)
# A stacking ensemble's final estimator: linear in the members' predictions.
FINAL = (LinearRegression, Ridge, RidgeCV)
# Members skl2onnx (or onnxmltools, for XGBoost) converts to graphs that answer what predict
# answers. Not accepted: HistGradientBoostingRegressor (skl2onnx 1.20 fails on scikit-learn
# 1.9's trees), KNeighborsRegressor (the graph holds every training row, and float32
# distances can pick other neighbours than predict's float64 ones), anything else.
MEMBERS = (xgb.XGBRegressor, LinearRegression, Ridge, RidgeCV, DecisionTreeRegressor, RandomForestRegressor,
           ExtraTreesRegressor, GradientBoostingRegressor)
# What those estimators hold, as skops writes them: plain data, no code.
INTERNALS = (
    "xgboost.core.Booster",  # the trees, as XGBoost's own serialized bytes
    _name(ExtraTreeRegressor), "sklearn.tree._tree.Tree",  # the forests' trees
    "sklearn.dummy.DummyRegressor",  # GradientBoostingRegressor's initial prediction (init_)
    # GradientBoostingRegressor's loss, squared error only (the default):
    "sklearn._loss.loss.HalfSquaredError", "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval",
    "sklearn.utils._bunch.Bunch",  # named_estimators_
    "sklearn.model_selection._split.KFold", "sklearn.model_selection._split.TimeSeriesSplit",  # a stack's cv, kept as a parameter
    "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator",  # random_state parameters
    "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.intp", "numpy.uint64",
    "numpy.uint32", "numpy.uint8", "numpy.bool", "numpy.bool_",
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float", "builtins.bool",
    "builtins.NoneType", "builtins.bytes", "builtins.bytearray",
)
TRUSTED = tuple(sorted({*map(_name, ENSEMBLES), *map(_name, FINAL), *map(_name, MEMBERS), *INTERNALS}))
# skops' node kinds that construct data; not FunctionNode, MethodNode, PartialNode,
# OperatorFuncNode, ReduceNode (each would call or return code).
LOADERS = ("ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "NdArrayNode", "TreeNode", "LossNode",
           "BytesNode", "BytearrayNode", "RandomStateNode", "RandomGeneratorNode", "TypeNode")


@dataclass
class SklearnImport:
    """A loaded, checked scikit-learn ensemble and what the manifest says of it."""

    estimator: VotingRegressor | StackingRegressor
    names: list[str]
    label: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    format: str = "sklearn-skops"

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The estimator's own predict on the float32 values the graph receives (a DataFrame
        with feature_names.json's columns if it was fitted on one), float64."""
        X: Any = np.asarray(rows, dtype=np.float32).astype(np.float64)
        if hasattr(self.estimator, "feature_names_in_"):
            import pandas as pd

            X = pd.DataFrame(X, columns=self.names)
        return np.asarray(self.estimator.predict(X), dtype=np.float64).ravel()

    def to_onnx(self) -> onnx.ModelProto:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        _register_xgboost()
        estimator = copy.deepcopy(self.estimator)
        for member in _members(estimator).values():
            if isinstance(member, xgb.XGBRegressor):
                # onnxmltools addresses features as f0, f1, ... by position; the names were
                # checked to be feature_names.json's, in its order.
                member.get_booster().feature_names = None
        if isinstance(estimator, VotingRegressor) and estimator.weights is not None:
            # skl2onnx indexes the weights by fitted member and calls .sum(): an array of
            # the kept members' weights, as predict uses them.
            estimator.weights = np.asarray([w for (_, m), w in zip(estimator.estimators, estimator.weights) if m != "drop"],
                                           dtype=np.float64)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proto = convert_sklearn(estimator, initial_types=[(INPUT_NAME, FloatTensorType([None, len(self.names)]))],
                                        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
        except Exception as exc:  # the converters' own errors say what they could not convert
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ImportRefused(f"{self.label}: skl2onnx {importlib.metadata.version('skl2onnx')} could not convert the "
                                f"{type(self.estimator).__name__}: {type(exc).__name__}: {first}") from None
        return prediction_output(proto, "ensemble")


_registered = False


def _register_xgboost() -> None:
    """skl2onnx converts XGBRegressor members with onnxmltools' XGBoost converter (the one
    importer/xgb.py's graphs come from)."""
    global _registered
    if _registered:
        return
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    update_registered_converter(xgb.XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost)
    _registered = True


def _members(estimator: Any) -> dict[str, Any]:
    """The fitted members by name ('drop'ped ones left out)."""
    return {name: m for name, m in estimator.named_estimators_.items() if not isinstance(m, str)}


def schema_types(path: Path, label: str) -> tuple[set[str], set[str]]:
    """Every type the file's schema names, and every node kind it uses (no object built)."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportRefused(f"{label}: not a skops file ({type(exc).__name__}: {exc})") from None
    types: set[str] = set()
    loaders: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__loader__" in node:
                loaders.add(str(node["__loader__"]))
                types.add(f"{node.get('__module__')}.{node.get('__class__')}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    if not isinstance(schema, dict) or "__loader__" not in schema:
        raise ImportRefused(f"{label}: not a skops file (its schema.json has no root object)")
    types_top = f"{schema.get('__module__')}.{schema.get('__class__')}"
    if types_top not in map(_name, ENSEMBLES):
        raise ImportRefused(f"{label}: holds a {types_top}, not a scikit-learn VotingRegressor or StackingRegressor")
    return types, loaders


def load(path: Path, names: list[str], *, label: str | None = None) -> SklearnImport:
    """The ensemble in `path`, audited, loaded and checked against feature_names.json;
    ImportRefused says why not (`label`: the user's file, when `path` is a converted copy)."""
    import skops.io as sio

    label = label or path.name
    types, loaders = schema_types(path, label)
    untrusted = ", ".join(sorted(types - set(TRUSTED)))
    if loaders - set(LOADERS):
        untrusted += f"; skops node kinds {', '.join(sorted(loaders - set(LOADERS)))} (functions or calls)"
    if not untrusted:  # skops' own view: what it does not trust by default must be in TRUSTED too
        untrusted = ", ".join(sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED)))
    if untrusted:
        raise ImportRefused(f"{label}: holds types this importer does not trust: {untrusted} (trusted: the "
                            "ensembles VotingRegressor, StackingRegressor; final estimators LinearRegression, Ridge, RidgeCV; "
                            "members XGBRegressor, LinearRegression, Ridge, RidgeCV, DecisionTreeRegressor, "
                            "RandomForestRegressor, ExtraTreesRegressor, GradientBoostingRegressor (squared error); "
                            "the README's 'Bring your own models' lists why)")
    try:
        estimator = sio.load(path, trusted=list(TRUSTED))
    except Exception as exc:  # a malformed file: skops' own error says where
        raise ImportRefused(f"{label}: skops {importlib.metadata.version('skops')} could not load it "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None
    kind = type(estimator).__name__
    n = getattr(estimator, "n_features_in_", None)
    if n != len(names):
        raise ImportRefused(f"{label}: the {kind} takes {n} features (n_features_in_), feature_names.json has {len(names)}")
    own = getattr(estimator, "feature_names_in_", None)
    if own is not None and list(own) != names:
        differ = [f"#{i} {a!r} (model) vs {b!r} (feature_names.json)" for i, (a, b) in enumerate(zip(own, names)) if a != b]
        raise ImportRefused(f"{label}: the {kind}'s feature_names_in_ differ from feature_names.json at {', '.join(differ[:5])}"
                            f"{f' and {len(differ) - 5} more' if len(differ) > 5 else ''}")
    members = _members(estimator)
    problems = [f"{label}: member {name!r} is a {type(m).__name__}, not one of {', '.join(c.__name__ for c in MEMBERS)}"
                for name, m in members.items() if type(m) not in MEMBERS]
    final = getattr(estimator, "final_estimator_", None)
    if isinstance(estimator, StackingRegressor) and type(final) not in FINAL:
        problems.append(f"{label}: final estimator {type(final).__name__}, not one of {', '.join(c.__name__ for c in FINAL)}")
    if problems:
        raise ImportRefused("\n".join(problems))
    for name, member in members.items():
        if isinstance(member, xgb.XGBRegressor):
            xgb_import.check(member.get_booster(), names, f"{label}: member {name!r}")
    details: dict[str, Any] = {
        "estimator": kind,
        "members": {name: type(m).__name__ for name, m in members.items()},
        "n_features_in": n,
        "own_feature_names": "equal to feature_names.json" if own is not None else "none",
        "loaded_with": f"skops.io.load {importlib.metadata.version('skops')}, trusted types only",
        "types_in_file": sorted(types),
        "converter": f"skl2onnx {importlib.metadata.version('skl2onnx')}"
                     + (f" with onnxmltools {importlib.metadata.version('onnxmltools')}'s XGBoost converter"
                        if any(isinstance(m, xgb.XGBRegressor) for m in members.values()) else ""),
    }
    if isinstance(estimator, VotingRegressor):
        details["weights"] = None if estimator.weights is None else [float(w) for w in estimator.weights]
    else:
        details["final_estimator"] = type(final).__name__
        details["passthrough"] = bool(estimator.passthrough)
    return SklearnImport(estimator, names, label, details)
