"""End to end in quick mode: train a bundle, verify it, tamper with it, retrain it."""

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavelet_pipeline import walkforward
from wavelet_pipeline.bundle import MANIFEST, MODEL_FILES, bundle_digest, sha256_file, verify_bundle
from wavelet_pipeline.cli import main
from wavelet_pipeline.config import SPX_RANGE_VOL_5D, SPX_RETURN_1D, SPX_VOL_5D
from wavelet_pipeline.data import PriceSeries, load_builtin
from wavelet_pipeline.forecasters import xgboost_model
from wavelet_pipeline.splits import build_table
from wavelet_pipeline.train import train_bundle

pytestmark = pytest.mark.slow
QUICK_BUDGET_SECONDS = 180  # two seeds of walk-forward each


@pytest.fixture(scope="session")
def quick_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for config in (SPX_RETURN_1D, SPX_VOL_5D, SPX_RANGE_VOL_5D):
        started = time.monotonic()
        out[config.name] = root / config.name
        train_bundle(config.quick_variant(), out[config.name], "test")
        assert time.monotonic() - started < QUICK_BUDGET_SECONDS
    return out


@pytest.mark.parametrize("name", ["spx-return-1d", "spx-vol-5d", "spx-range-vol-5d"])
def test_quick_bundle_is_complete_and_verifies(quick_bundles: dict[str, Path], name: str) -> None:
    bundle = quick_bundles[name]
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / MANIFEST).read_text())
    for file in ("feature_names.json", "model_card.md", "vectors/parity.json", "plots/predictions_vs_actual.png", "plots/coverage.png"):
        assert (bundle / file).is_file(), file
    for model in ("xgboost", "lstm", "transformer", "ensemble"):
        entry = manifest["models"][model]
        assert entry["file"] == MODEL_FILES[model]
        assert entry["sha256"] == sha256_file(bundle / entry["file"]) == manifest["files"][entry["file"]]
        size = {"spx-return-1d": 10, "spx-vol-5d": len(SPX_VOL_5D.features.names)}.get(name, len(SPX_RANGE_VOL_5D.features.names))
        assert len(manifest["features"]["names"]) == size
        assert entry["inputs"] == [{"name": "features", "type": "float32", "shape": [None, size]}]
        assert entry["outputs"] == [{"name": "prediction", "type": "float32", "shape": [None, 1]}]
        assert manifest["parity"][model]["max_rel_diff"] <= 1e-4, "ONNX must match the native model"
    assert set(manifest["evaluation"]["baselines"]) >= ({"random_walk", "historical_mean", "always_up"} if name.startswith("spx-return") else {"garch", "gjr_garch", "egarch", "har", "random_walk"})
    benchmarks = {"spx-vol-5d": {"gjr_garch", "garch", "har"}, "spx-range-vol-5d": {"gjr_garch", "garch", "har", "garch_x", "har_gk"}}
    if name in benchmarks:
        for tests in manifest["evaluation"]["diebold_mariano"].values():
            assert set(tests) == {f"qlike_vs_{b}" for b in benchmarks[name]}
            assert all(0 <= t["hac_p_value"] <= 1 and t["hac_lags"] >= 4 for t in tests.values())
    if name == "spx-range-vol-5d":
        # The bars bundle: its inputs, its GJR-X member and parity cases of bars.
        assert manifest["features"]["inputs"] == ["high", "low", "close"] and manifest["features"]["garchx"]["delta"] > 0
        assert "gjr_garch_x" in manifest["models"]["ensemble"]["weights"]
        cases = json.loads((bundle / "vectors/parity.json").read_text())["cases"]
        assert all(set(case["bars"]) == {"high", "low", "close"} for case in cases)
    seeds = manifest["evaluation"]["seeds"]
    assert seeds["seeds"] == SPX_VOL_5D.quick_variant().seed_list
    for name in ("xgboost", "lstm", "transformer", "ensemble"):
        for spread in (*seeds["models"][name].values(), seeds["coverage"][name]):
            assert spread["min"] <= spread["mean"] <= spread["max"]
    assert any(s["min"] < s["max"] for s in seeds["models"]["lstm"].values()), "another seed, another fit"
    assert manifest["quantized"]["decided_on_years"] == [2015, 2016]
    for kind in ("lstm", "transformer"):
        q = manifest["quantized"][kind]
        assert q["shipped"] == (q["within_tolerance"] and q["fused_kernels_rows_off"] <= q["fused_kernels_rows_off_limit"])
        assert q["shipped"] == (f"{kind}_int8" in manifest["models"])
    card = (bundle / "model_card.md").read_text()
    assert f"Over {len(seeds['seeds'])} seeds" in card and "What is served" in card
    for baseline in manifest["evaluation"]["baselines"]:
        assert f"baseline: {baseline}" in card
    assert bundle_digest(bundle).startswith("sha256:")


def test_tampering_is_detected(quick_bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(quick_bundles["spx-return-1d"], copy)
    with (copy / "lstm_optimized.onnx").open("ab") as f:
        f.write(b"\0")
    (copy / "stray.txt").write_text("x")
    (copy / "plots/coverage.png").unlink()
    problems = verify_bundle(copy)
    assert "lstm_optimized.onnx: sha256 differs from the manifest" in problems
    assert "stray.txt: present but not listed in the manifest" in problems
    assert "plots/coverage.png: listed in the manifest but missing" in problems


def test_parity_vectors_that_do_not_reproduce_are_reported(quick_bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(quick_bundles["spx-vol-5d"], copy)
    vectors = json.loads((copy / "vectors/parity.json").read_text())
    vectors["cases"][0]["predictions"]["ensemble"][0] += 0.01
    (copy / "vectors/parity.json").write_text(json.dumps(vectors))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["vectors/parity.json"] = sha256_file(copy / "vectors/parity.json")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert verify_bundle(copy) == [f"vectors {vectors['cases'][0]['name']}: ensemble predictions do not reproduce"]


def test_cli_verify_exit_codes(quick_bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(quick_bundles["spx-return-1d"])]) == 0
    broken = tmp_path / "broken"
    shutil.copytree(quick_bundles["spx-return-1d"], broken)
    (broken / "feature_names.json").write_text("[]")
    assert main(["verify", str(broken)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_retraining_with_the_same_seed_reproduces_the_metrics(quick_bundles: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    train_bundle(SPX_RETURN_1D.quick_variant(), again, "test")
    first = json.loads((quick_bundles["spx-return-1d"] / MANIFEST).read_text())["evaluation"]
    second = json.loads((again / MANIFEST).read_text())["evaluation"]
    assert first["models"] == second["models"]
    assert first["coverage"] == second["coverage"]


def test_requantizing_keeps_the_float_models_and_reproduces_the_int8_ones(quick_bundles: dict[str, Path], tmp_path: Path) -> None:
    """On the machine that trained it, requantizing a bundle changes no model, vector or metric."""
    copy = tmp_path / "spx-vol-5d"
    shutil.copytree(quick_bundles["spx-vol-5d"], copy)
    assert main(["requantize", str(copy)]) == 0
    assert verify_bundle(copy) == []
    before = json.loads((quick_bundles["spx-vol-5d"] / MANIFEST).read_text())
    after = json.loads((copy / MANIFEST).read_text())
    for name, digest in before["files"].items():
        if name != "model_card.md":
            assert after["files"][name] == digest, name
    assert after["evaluation"] == before["evaluation"]
    assert {m: e["calibration"] for m, e in after["models"].items()} == {m: e["calibration"] for m, e in before["models"].items()}
    assert after["quantized"]["requantized"]["float_evaluation_identical"] is True
    rerun = after["quantized"]["requantized"]["float_walk_forward_rerun"]
    assert all(rerun[m]["relative_change"] == 0 for m in ("xgboost", "lstm", "transformer", "ensemble"))


# The OHLC bundle's config: every channel kind (closes, ranges, GJR and GJR-X fits) and every baseline.
LEAKAGE_CONFIG = dataclasses.replace(SPX_RANGE_VOL_5D.quick_variant(), first_oos_year=2015, test_years=(2016,))
LEAKAGE_PARAMS = {
    "xgboost": xgboost_model.DEFAULT_PARAMS,
    "lstm": {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 3, "hidden": 8, "layers": 1},
    "transformer": {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 3, "d_model": 16, "heads": 2, "layers": 1, "ff": 32},
}


def _walk_forward(series: PriceSeries) -> walkforward.WalkForward:
    config = LEAKAGE_CONFIG
    return walkforward.run(config, build_table(series, config.features, config.target, config.data_start), LEAKAGE_PARAMS)


def _forecasts_until(wf: walkforward.WalkForward, day: pd.Timestamp) -> dict[str, np.ndarray]:
    """Every number published for the 2016 days up to `day`: points, intervals, baselines."""
    mask = wf.years_mask([2016]) & (wf.dates <= day)
    published = {"prediction": wf.predictions, "lower": wf.lower, "upper": wf.upper, "baseline": wf.baselines}
    return {f"{what} {name}": values[mask] for what, by_name in published.items() for name, values in by_name.items()}


@pytest.fixture(scope="module")
def walk_forward_on_all_prices() -> walkforward.WalkForward:
    return _walk_forward(load_builtin("sp500"))


@pytest.mark.parametrize("day_in_2016", [1, -1], ids=["second trading day", "last trading day"])
def test_walk_forward_forecasts_do_not_change_when_the_future_is_removed(walk_forward_on_all_prices: walkforward.WalkForward, day_in_2016: int) -> None:
    """Whole-pipeline leakage check: no forecast for a day of 2016 up to `day`, nor its interval,
    changes when the prices after `day` are replaced.

    A row exists only with its target, so the run keeps the `horizon` bars after `day` that
    the target of `day` needs, with their returns and their opens', highs' and lows' log
    distances from the close multiplied by 10, and drops the rest. Early in
    the year this changes the targets of the last rows of 2015, which the 2016 ensemble weights
    and conformal intervals must not use: they were not known when 2016 began.
    """
    series = load_builtin("sp500")
    close = series.close
    days_2016 = np.flatnonzero(close.index.year == 2016)
    cut = int(days_2016[day_in_2016])
    end = cut + LEAKAGE_CONFIG.target.horizon + 1
    logs = {f: np.log(getattr(series, f).to_numpy()[:end]) for f in ("open", "high", "low", "close")}
    kept = logs["close"].copy()
    kept[cut + 1 :] = kept[cut] + 10.0 * (kept[cut + 1 :] - kept[cut])
    moved = {f: v.copy() for f, v in logs.items()}
    for f, v in moved.items():
        v[cut + 1 :] = kept[cut + 1 :] + (10.0 * (logs[f][cut + 1 :] - logs["close"][cut + 1 :]) if f != "close" else 0.0)
    index = close.index[:end]
    replaced = PriceSeries(series.name, series.source, **{f: pd.Series(np.exp(v), index=index) for f, v in moved.items()},
                           stale_open=series.stale_open[:end])  # type: ignore[index]

    day = close.index[cut]
    full, cut_run = _forecasts_until(walk_forward_on_all_prices, day), _forecasts_until(_walk_forward(replaced), day)
    assert full.keys() == cut_run.keys() and all(values.size for values in full.values())
    # The nets compute in float32, whose last bits depend on how many rows run together (a
    # year's against a few days' here): 1e-6 relative is far below what a leak of returns
    # multiplied by 10 would move, and far above that rounding.
    changed = [name for name in full if not np.allclose(full[name], cut_run[name], rtol=1e-6, atol=0, equal_nan=True)]
    assert not changed, f"these depend on prices after {day.date()}: {changed}"
