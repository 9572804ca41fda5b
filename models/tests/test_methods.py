"""Hand-checked metrics, targets, splits, stacking and conformal calibration."""

import math

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import pandas as pd
import pytest

from wavelet_pipeline import metrics as M
from wavelet_pipeline.baselines import GARCH_FAMILY, garch_family_vol
from wavelet_pipeline.conformal import calibrate, coverage
from wavelet_pipeline.features import FeatureSpec
from wavelet_pipeline.forecasters.ensemble import BASE_MODELS, fit_stack
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


def test_hac_long_run_variance_by_hand() -> None:
    d = np.array([1.0, 0.0, 0.0, 1.0])  # centered ±0.5: γ0 = 1/4, γ1 = −1/16, γ2 = −1/8
    assert M.long_run_variance(d, 1, "truncated") == pytest.approx(1 / 4 - 2 / 16)
    # Bartlett weights 2/3 and 1/3 for two lags.
    assert M.long_run_variance(d, 2, "bartlett") == pytest.approx(1 / 4 - 2 * (2 / 3) / 16 - 2 * (1 / 3) / 8)
    assert M.newey_west_bandwidth(2007, 5) == 7  # floor(4 · 20.07^(2/9)) = floor(7.79)
    assert M.newey_west_bandwidth(100, 1) == 4
    assert M.newey_west_bandwidth(100, 10) == 9  # never fewer lags than the target overlap


def test_hac_variance_counts_autocorrelation_the_horizon_truncated_one_misses() -> None:
    rng = np.random.default_rng(3)
    d = np.empty(2000)
    d[0] = 0.0
    for t in range(1, d.size):  # AR(1), φ = 0.7: long-run variance (1+φ)/(1−φ) ≈ 5.7 × γ0
        d[t] = 0.7 * d[t - 1] + rng.normal()
    lags = M.newey_west_bandwidth(d.size, 1)
    assert M.long_run_variance(d, lags, "bartlett") > 2.5 * M.long_run_variance(d, 0, "truncated")
    test = M.diebold_mariano(d + 0.1, np.zeros_like(d))
    assert test["hac_p_value"] > test["p_value"]
    assert abs(test["hac_statistic"]) < abs(test["statistic"])


def test_diebold_mariano_p_values_are_probabilities_and_symmetric() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.chisquare(1, size=500), rng.chisquare(1, size=500) * 1.1
    ab, ba = M.diebold_mariano(a, b, horizon=5), M.diebold_mariano(b, a, horizon=5)
    for kind in ("", "hac_"):
        assert 0.0 <= ab[f"{kind}p_value"] <= 1.0
        assert ab[f"{kind}p_value"] == pytest.approx(ba[f"{kind}p_value"])
        assert ab[f"{kind}statistic"] == pytest.approx(-ba[f"{kind}statistic"])


def _gjr_returns(n: int = 3000, seed: int = 5) -> pd.Series:
    """Zero-mean GJR-GARCH returns with a strong leverage term, on business days."""
    omega, alpha, gamma, beta = 0.02, 0.02, 0.12, 0.9
    shocks = np.random.default_rng(seed).normal(size=n)
    r, variance = np.empty(n), omega / (1 - alpha - gamma / 2 - beta)
    for t in range(n):
        r[t] = np.sqrt(variance) * shocks[t]
        variance = omega + (alpha + gamma * (r[t] < 0)) * r[t] ** 2 + beta * variance
    return pd.Series(r, index=pd.bdate_range("2000-01-03", periods=n))


@pytest.mark.parametrize("kind", sorted(GARCH_FAMILY))
def test_garch_family_forecasts_do_not_change_when_later_returns_are_removed(kind: str) -> None:
    returns = _gjr_returns()
    dates = returns.index[2500:2700]
    full = garch_family_vol(kind, returns, dates, 5)
    assert np.isfinite(full).all() and (full > 0).all()
    cut = garch_family_vol(kind, returns.loc[: dates[99]], dates[:100], 5)
    np.testing.assert_array_equal(full[:100], cut)


@pytest.mark.parametrize("kind, asymmetric", [("garch", False), ("gjr_garch", True), ("egarch", True)])
def test_leverage_models_react_more_to_a_fall_than_to_a_rise(kind: str, asymmetric: bool) -> None:
    returns = _gjr_returns()
    dates = returns.index[2500:2501]
    after = {}
    for shock in (-3.0, 3.0):
        shocked = returns.copy()
        shocked.iloc[2500] = shock  # the forecast origin's own return; the fit ends the day before
        after[shock] = garch_family_vol(kind, shocked, dates, 5)[0]
    if asymmetric:
        assert after[-3.0] > 1.05 * after[3.0]
    else:
        assert after[-3.0] == pytest.approx(after[3.0])


@pytest.mark.parametrize("kind", sorted(GARCH_FAMILY))
def test_garch_family_forecasts_raw_squared_returns_not_demeaned_ones(kind: str) -> None:
    # A drift of 1 %/day with 0.5 % noise: raw squared returns average 1.25, demeaned ones 0.25.
    rng = np.random.default_rng(6)
    returns = pd.Series(1.0 + 0.5 * rng.normal(size=1500), index=pd.bdate_range("2000-01-03", periods=1500))
    variance = garch_family_vol(kind, returns, returns.index[1400:], 5) ** 2
    assert np.mean(variance) == pytest.approx(5 * 1.25, rel=0.15)


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
    n = dates.size
    table = Table(dates=dates, y=np.zeros(n), close=np.ones(n), horizon=5, features=FeatureSpec(), returns=pd.Series(dtype=float),
                  static=np.zeros((n, 1)), prices=np.ones(n), positions=np.arange(n))
    train, test = year_split(table, 2016)
    assert dates[test[0]] == pd.Timestamp("2016-01-01")
    # The last training row's 5-day target ends the day before the test year starts.
    assert train[-1] + table.horizon == test[0] - 1


def test_stacking_recovers_a_known_combination_and_keeps_weights_non_negative() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(500, 3))
    y = 0.7 * base[:, 0] + 0.3 * base[:, 2] + 0.1
    stack = fit_stack(base, y, BASE_MODELS, "level")
    np.testing.assert_allclose(stack.weights, [0.7, 0.0, 0.3], atol=1e-9)
    assert stack.intercept == pytest.approx(0.1)
    anti = fit_stack(base, -base[:, 1], BASE_MODELS, "level")
    assert min(anti.weights) >= 0


def test_volatility_stacking_minimizes_qlike_in_logs_and_the_graph_computes_it() -> None:
    """y² = f² · noise with E[noise] = 1, f = exp(0.1 + 0.6 log f₀ + 0.4 log f₃): the QLIKE fit
    finds those weights (QLIKE's minimizer is the conditional variance), and the exported
    ensemble, with the GJR member read from the feature vector, answers the same."""
    from wavelet_pipeline import onnx_tools
    from wavelet_pipeline.forecasters.ensemble import COLUMN_MEMBERS, ensemble_onnx, members, stack_inputs

    rng = np.random.default_rng(3)
    spec = FeatureSpec(series="squared_return_pct", window=2, signed_returns=True, garch_trailing=8)
    n = 40000
    X = rng.uniform(0.5, 2.0, size=(n, len(spec.names)))
    predictions = {k: np.exp(rng.normal(size=n) * 0.5) for k in BASE_MODELS}
    inputs = stack_inputs(spec, predictions, X)
    np.testing.assert_array_equal(inputs[:, 3], X[:, spec.column(COLUMN_MEMBERS["gjr_garch"])])
    f = np.exp(0.1 + 0.6 * np.log(inputs[:, 0]) + 0.4 * np.log(inputs[:, 3]))
    y = f * np.sqrt(rng.chisquare(1, size=n))
    stack = fit_stack(inputs, y, members(spec), "log")
    np.testing.assert_allclose(stack.weights, [0.6, 0.0, 0.0, 0.4], atol=0.03)
    assert stack.intercept == pytest.approx(0.1, abs=0.03)

    # Convex: a weighted geometric mean (weights sum to 1, no intercept) — here of the same two
    # members, the best such fit; equal: the plain geometric mean.
    convex = fit_stack(inputs, y, members(spec), "log", "convex")
    assert sum(convex.weights) == pytest.approx(1.0, abs=1e-12) and convex.intercept == 0.0 and min(convex.weights) >= 0
    assert convex.weights[0] > 0.4 and convex.weights[3] > 0.3 and convex.weights[1] + convex.weights[2] < 0.1
    equal = fit_stack(inputs, y, members(spec), "log", "equal")
    assert equal.weights == (0.25,) * 4 and equal.intercept == 0.0
    np.testing.assert_allclose(equal.combine(inputs[:5]), np.exp(np.log(inputs[:5]).mean(axis=1)), rtol=1e-12)

    bases = {}
    for i, kind in enumerate(BASE_MODELS):  # stand-in base graphs: feature i, exactly
        node = onnx.helper.make_node("Gather", ["features", "i"], ["prediction"], axis=1)
        index = onnx.numpy_helper.from_array(np.asarray([i], dtype=np.int64), "i")
        graph = onnx.helper.make_graph([node], kind, [onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, X.shape[1]])],
                                       [onnx.helper.make_tensor_value_info("prediction", onnx.TensorProto.FLOAT, [None, 1])], initializer=[index])
        bases[kind] = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    rows = X[:100]
    expected = stack.combine(stack_inputs(spec, {k: rows[:, i] for i, k in enumerate(BASE_MODELS)}, rows))
    got = onnx_tools.predict(ensemble_onnx(bases, stack, spec), rows)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


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
    for kind, params, channels in (
        ("lstm", {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 2, "hidden": 8, "layers": 2}, 1),
        ("transformer", {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 2, "d_model": 16, "heads": 2, "layers": 1, "ff": 32}, 2),
    ):
        model = TorchForecaster(kind, params, seed=1, link="identity", channels=channels)
        model.fit(X, z)
        graph = model.to_onnx()
        again = TorchForecaster.from_onnx(kind, params, graph, seed=1, link="identity", channels=channels)
        np.testing.assert_array_equal(again.predict(X), model.predict(X))
        int8 = onnx_tools.quantize_int8(model.to_onnx(for_quantization=True), X)
        assert onnx_tools.saturation_risks(int8) == []
        assert np.max(np.abs(onnx_tools.predict(int8, X) - onnx_tools.predict(graph, X))) < 0.1, kind
        with pytest.raises(ValueError):
            TorchForecaster.from_onnx(kind, {**params, "layers": params["layers"] + 1}, graph, seed=1, link="identity", channels=channels)


def test_held_out_rows_start_a_horizon_after_the_fit_rows() -> None:
    """A row's target spans the next `gap` days: fit rows end `gap` rows before the held-out
    ones, and the offset rows `gap` rows after the early-stopping ones."""
    from wavelet_pipeline.forecasters import holdout

    rows = holdout(1000, 5, separate_offset=True)
    assert (rows.fit.stop, rows.stop.start, rows.stop.stop, rows.offset.start, rows.offset.stop) == (895, 900, 945, 950, 1000)
    shared = holdout(1000, 5, separate_offset=False)
    assert shared.fit.stop == 895 and shared.stop == shared.offset == slice(900, 1000)


def test_prediction_years_run_october_to_september() -> None:
    from wavelet_pipeline.evaluation import prediction_year

    dates = pd.DatetimeIndex(["2010-09-30", "2010-10-01", "2011-09-30", "2011-10-03", "2016-09-30"])
    assert prediction_year(dates, "2010-10-01").tolist() == [-1, 0, 0, 1, 5]


def test_an_exported_xgboost_graph_is_the_same_bytes_every_time() -> None:
    """A bundle's files are its identity (their sha256 are in the manifest): one fitted model
    must export to one graph."""
    from wavelet_pipeline.forecasters import xgboost_model

    rng = np.random.default_rng(4)
    X, z = rng.normal(size=(300, 4)), rng.normal(size=300)
    model = xgboost_model.XGBoostForecaster({**xgboost_model.DEFAULT_PARAMS, "n_estimators": 5}, seed=1, link="identity")
    model.fit(X, z)
    assert model.to_onnx().SerializeToString() == model.to_onnx().SerializeToString()


def test_anchored_models_learn_a_correction_to_their_anchor_and_export_it() -> None:
    """y = anchor × exp(0.3 x₀ + noise): anchored XGBoost and LSTM answer far beyond the
    anchors they were fit on (where an unanchored tree ensemble stays at its largest leaf),
    and their graphs (the int8 LSTM too) compute what they predict."""
    from wavelet_pipeline import onnx_tools
    from wavelet_pipeline.forecasters import anchored, registry, xgboost_model
    from wavelet_pipeline.targets import NEXT_DAY_RETURN, REALIZED_VOL_5D

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(1.0, 0.3, (800, 10))) + 0.1
    y = X[:, 9] * np.exp(0.3 * X[:, 0] + rng.normal(0, 0.05, 800))
    far = X[:50].copy()
    far[:, 9] *= 20.0  # anchors 20 times anything seen in training
    lstm = {"lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.0, "max_epochs": 5, "hidden": 8, "layers": 1}
    for kind, params in (("xgboost", xgboost_model.DEFAULT_PARAMS), ("lstm", lstm)):
        model = registry.make(kind, params, seed=1, target=REALIZED_VOL_5D, channels=2, anchor=9)
        assert isinstance(model, anchored.Anchored)
        model.fit(X, np.log(y))
        answer = np.exp(model.predict(far))
        assert np.median(answer / far[:, 9]) == pytest.approx(np.median(y / X[:, 9]), rel=0.25), kind
        np.testing.assert_allclose(onnx_tools.predict(model.to_onnx(), far), answer, rtol=1e-5)
    int8 = onnx_tools.quantize_int8(model.to_onnx(for_quantization=True), X)
    np.testing.assert_allclose(onnx_tools.predict(int8, far), answer, rtol=0.02)
    unanchored = registry.make("xgboost", xgboost_model.DEFAULT_PARAMS, seed=1, target=REALIZED_VOL_5D, channels=2)
    unanchored.fit(X, np.log(y))
    assert np.exp(unanchored.predict(far)).max() <= y.max() * 1.5
    with pytest.raises(ValueError, match="log-link"):
        registry.make("xgboost", xgboost_model.DEFAULT_PARAMS, seed=1, target=NEXT_DAY_RETURN, channels=1, anchor=0)
