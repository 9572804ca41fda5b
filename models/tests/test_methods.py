"""Hand-checked metrics, targets, splits, stacking and conformal calibration."""

import math

import numpy as np
import pandas as pd
import pytest

from wavelet_pipeline import metrics as M
from wavelet_pipeline.conformal import calibrate, coverage
from wavelet_pipeline.forecasters.ensemble import fit_stack
from wavelet_pipeline.splits import Table, year_split
from wavelet_pipeline.targets import NEXT_DAY_RETURN, REALIZED_VOL_5D


def test_point_metrics_by_hand() -> None:
    y, f = np.array([1.0, -2.0, 0.0, 3.0]), np.array([0.5, -1.0, 1.0, -1.0])
    assert M.rmse(y, f) == pytest.approx(math.sqrt((0.25 + 1 + 1 + 16) / 4))
    assert M.mae(y, f) == pytest.approx((0.5 + 1 + 1 + 4) / 4)
    assert M.directional_accuracy(y, f) == pytest.approx(2 / 3)  # the zero outcome is left out
    assert M.r2_oos(y, y, np.zeros(4)) == 1.0
    assert M.r2_oos(y, np.zeros(4), np.zeros(4)) == 0.0
    assert M.theil_u2(y, np.zeros(4), np.zeros(4)) == 1.0
    assert M.theil_u1(y, y) == pytest.approx(0.0)
    assert M.mape(np.array([100.0, 200.0]), np.array([110.0, 190.0])) == pytest.approx(0.075)
    assert M.qlike(np.array([2.0, 3.0]), np.array([2.0, 3.0])) == 0.0
    assert M.qlike(np.array([1.0]), np.array([2.0])) == pytest.approx(0.5 - math.log(0.5) - 1)


def test_diebold_mariano_detects_a_better_forecast_and_not_a_tie() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    good, bad = y + rng.normal(scale=0.5, size=2000), y + rng.normal(scale=1.0, size=2000)
    better = M.diebold_mariano((y - good) ** 2, (y - bad) ** 2)
    assert better["statistic"] < -5 and better["p_value"] < 1e-6
    twin = y + rng.normal(scale=1.0, size=2000)
    tie = M.diebold_mariano((y - twin) ** 2, (y - bad) ** 2, horizon=5)
    assert tie["p_value"] > 0.01


def test_targets_by_hand() -> None:
    prices = 100 * np.exp(np.cumsum([0.0, 0.01, -0.02, 0.03, 0.0, 0.01, 0.02]))
    ret = NEXT_DAY_RETURN.values(prices)
    np.testing.assert_allclose(ret[:-1], [1.0, -2.0, 3.0, 0.0, 1.0, 2.0], atol=1e-10)
    assert np.isnan(ret[-1])
    vol = REALIZED_VOL_5D.values(prices)
    assert vol[0] == pytest.approx(math.sqrt(1 + 4 + 9 + 0 + 1))
    assert vol[1] == pytest.approx(math.sqrt(4 + 9 + 0 + 1 + 4))
    assert np.isnan(vol[2:]).all()
    np.testing.assert_allclose(REALIZED_VOL_5D.from_link(REALIZED_VOL_5D.to_link(vol[:2])), vol[:2])


def test_training_rows_are_purged_of_targets_that_overlap_the_test_year() -> None:
    dates = pd.bdate_range("2015-12-01", "2016-01-29")
    table = Table(dates=dates, X=np.zeros((dates.size, 1)), y=np.zeros(dates.size), close=np.ones(dates.size), horizon=5)
    train, test = year_split(table, 2016)
    assert dates[test[0]] == pd.Timestamp("2016-01-01")
    # The last training row's 5-day target ends the day before the test year starts.
    assert train[-1] + table.horizon == test[0] - 1


def test_stacking_recovers_a_known_combination_and_keeps_weights_non_negative() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(500, 3))
    y = 0.7 * base[:, 0] + 0.3 * base[:, 2] + 0.1
    stack = fit_stack(base, y)
    np.testing.assert_allclose(stack.weights, [0.7, 0.0, 0.3], atol=1e-9)
    assert stack.intercept == pytest.approx(0.1)
    anti = fit_stack(base, -base[:, 1])
    assert min(anti.weights) >= 0


def test_conformal_intervals_cover_at_the_nominal_level() -> None:
    rng = np.random.default_rng(2)
    n = 20000  # coverage of one draw has sd ≈ 0.003 here
    X = rng.normal(size=(2 * n, 10)) * rng.uniform(0.2, 3.0, size=(2 * n, 1))
    scale = np.sqrt(np.mean(X * X, axis=1))
    y = scale * rng.normal(size=2 * n)
    prediction = np.zeros(2 * n)
    cal = calibrate(y[:n], prediction[:n], X[:n], "rms_features")
    lower, upper = cal.interval(prediction[n:], X[n:], positive=False)
    assert coverage(y[n:], lower, upper) == pytest.approx(0.9, abs=0.012)
    # Adaptive: intervals are wider where the features say the day is turbulent.
    assert np.corrcoef(upper - lower, scale[n:])[0, 1] > 0.99


def test_volatility_intervals_never_go_below_zero() -> None:
    y = np.array([1.0, 2.0, 0.5, 4.0, 1.5])
    cal = calibrate(y, np.ones(5), np.zeros((5, 10)), "prediction")
    lower, _ = cal.interval(np.array([0.1]), np.zeros((1, 10)), positive=True)
    assert lower[0] == 0.0


def test_int8_quantization_is_7_bit_and_float_graphs_read_back() -> None:
    """quantize_int8's weights are 7-bit, so integer MatMuls cannot saturate on any CPU; and a
    float graph gives back the fitted model, exactly."""
    from wavelet_pipeline import onnx_tools
    from wavelet_pipeline.forecasters.torch_models import TorchForecaster

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 10))
    z = X[:, -1] * 0.3 + rng.normal(scale=0.5, size=600)
    for kind, params in (
        ("lstm", {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 2, "hidden": 8, "layers": 2}),
        ("transformer", {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 2, "d_model": 16, "heads": 2, "layers": 1, "ff": 32}),
    ):
        model = TorchForecaster(kind, params, seed=1, link="identity")
        model.fit(X, z)
        graph = model.to_onnx()
        again = TorchForecaster.from_onnx(kind, params, graph, seed=1, link="identity")
        np.testing.assert_array_equal(again.predict(X), model.predict(X))
        int8 = onnx_tools.quantize_int8(model.to_onnx(for_quantization=True), X)
        assert onnx_tools.saturation_risks(int8) == []
        assert np.max(np.abs(onnx_tools.predict(int8, X) - onnx_tools.predict(graph, X))) < 0.1, kind
        with pytest.raises(ValueError):
            TorchForecaster.from_onnx(kind, {**params, "layers": params["layers"] + 1}, graph, seed=1, link="identity")
