"""The committed default bundles: intact, honest and documented."""

import json
from pathlib import Path

import pytest

from wavelet_pipeline.bundle import MANIFEST, verify_bundle
from wavelet_pipeline.config import BUNDLES

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"


@pytest.fixture(params=sorted(BUNDLES))
def bundle(request: pytest.FixtureRequest) -> tuple[Path, dict]:
    path = BUNDLES_DIR / request.param
    return path, json.loads((path / MANIFEST).read_text())


def test_bundle_verifies(bundle: tuple[Path, dict]) -> None:
    path, _ = bundle
    assert verify_bundle(path) == []


def test_trained_in_full_mode_on_the_documented_years(bundle: tuple[Path, dict]) -> None:
    _, manifest = bundle
    config = BUNDLES[manifest["name"]]
    assert manifest["training"]["config"]["quick"] is False
    assert manifest["evaluation"]["test_years"] == list(range(2011, 2019))
    assert manifest["training"]["seed"] == config.seed
    assert manifest["data"]["source"].startswith("arch.data.sp500")


def test_every_model_is_reported_next_to_its_baselines(bundle: tuple[Path, dict]) -> None:
    path, manifest = bundle
    card = (path / "model_card.md").read_text()
    evaluation = manifest["evaluation"]
    for model in ("xgboost", "lstm", "transformer", "ensemble"):
        assert model in evaluation["models"] and f"**{model}**" in card
    for baseline in evaluation["baselines"]:
        assert f"baseline: {baseline}" in card
    for plot in manifest["files"]:
        if plot.endswith(".png"):
            assert f"]({plot})" in card


def test_intervals_cover_within_two_points_of_nominal(bundle: tuple[Path, dict]) -> None:
    _, manifest = bundle
    coverage = manifest["evaluation"]["coverage"]
    assert abs(coverage["ensemble"]["coverage"] - coverage["nominal"]) <= 0.02


def test_return_bundle_reports_the_published_anchor() -> None:
    path = BUNDLES_DIR / "spx-return-1d"
    manifest = json.loads((path / MANIFEST).read_text())
    anchor = manifest["evaluation"]["anchor"]
    assert anchor["period"]["start"] == "2010-10-01" and anchor["period"]["end"] == "2016-09-30"
    assert anchor["bao_yue_rao_2017_wsae_lstm"] == {"MAPE": 0.011, "R": 0.946, "TheilU": 0.007}
    assert "random_walk" in anchor["ours"]
    assert "Bao, Yue & Rao (2017)" in (path / "model_card.md").read_text()
