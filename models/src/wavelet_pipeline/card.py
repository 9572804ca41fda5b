"""The model card: what the bundle predicts, how it was evaluated, and plots."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .baselines import EGARCH_SIMULATIONS  # noqa: E402
from .bundle import MANIFEST, seal  # noqa: E402
from .config import BundleConfig  # noqa: E402
from .walkforward import MODELS, WalkForward  # noqa: E402

ROLLING_DAYS = 250
GARCH_LABELS = {"garch": "GARCH(1,1)", "gjr_garch": "GJR-GARCH(1,1,1)", "egarch": "EGARCH(1,1,1)"}


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def plots(config: BundleConfig, wf: WalkForward) -> dict[str, bytes]:
    mask = wf.years_mask(config.test_years)
    dates, y = wf.dates[mask], wf.y[mask]
    ens = wf.predictions["ensemble"][mask]
    out: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(10, 4))
    if config.target.kind == "return":
        ax.plot(dates, y, color="0.7", lw=0.6, label="actual next-day return")
        ax.plot(dates, ens, color="tab:blue", lw=0.9, label="ensemble forecast")
        ax.set_ylabel("log return (%)")
    else:
        ax.plot(dates, y, color="0.6", lw=0.6, label="realized 5-day volatility")
        ax.plot(dates, ens, color="tab:blue", lw=0.9, label="ensemble forecast")
        for (name, label), color in zip(GARCH_LABELS.items(), ("tab:orange", "tab:red", "tab:green")):
            ax.plot(dates, wf.baselines[name][mask], color=color, lw=0.6, label=label)
        ax.set_ylabel("volatility (%)")
    ax.fill_between(dates, wf.lower["ensemble"][mask], wf.upper["ensemble"][mask], color="tab:blue", alpha=0.12, label="90% interval")
    ax.set_title(f"{config.name}: out-of-sample forecasts, {config.test_years[0]}–{config.test_years[-1]}")
    ax.legend(loc="upper left", fontsize=8)
    out["plots/predictions_vs_actual.png"] = _png(fig)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name in ("ensemble", "xgboost"):
        inside = ((y >= wf.lower[name][mask]) & (y <= wf.upper[name][mask])).astype(float)
        ax.plot(dates, pd.Series(inside).rolling(ROLLING_DAYS).mean(), lw=1, label=name)
    ax.axhline(0.9, color="k", ls="--", lw=0.8, label="nominal 90%")
    ax.set_ylim(0.6, 1.0)
    ax.set_ylabel(f"coverage, rolling {ROLLING_DAYS} days")
    ax.set_title("Conformal interval coverage over time")
    ax.legend(loc="lower left", fontsize=8)
    out["plots/coverage.png"] = _png(fig)

    if config.target.kind == "return":
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot(dates, np.exp(np.cumsum(y) / 100.0), color="k", lw=1, label="buy and hold")
        for name in ("ensemble", "xgboost"):
            strategy = np.sign(wf.predictions[name][mask]) * y
            ax.plot(dates, np.exp(np.cumsum(strategy) / 100.0), lw=1, label=f"sign of {name} forecast (long/short)")
        ax.set_ylabel("growth of 1 (log returns, no costs)")
        ax.set_title("Cumulative return of a sign strategy vs buy and hold")
        ax.legend(loc="upper left", fontsize=8)
        out["plots/strategy.png"] = _png(fig)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _dm_cell(test: dict[str, float]) -> str:
    return (f"{test['statistic']:.3f} (p={test['p_value']:.3f}); "
            f"HAC {test['hac_statistic']:.3f} (p={test['hac_p_value']:.3f}, {int(test['hac_lags'])} lags)")


CHANNEL_TEXT = {
    "dn": "the causally denoised `{series}` series ({trailing}-day trailing window, {wavelet} DWT with {levels} levels "
          "(periodization), universal soft threshold, inverse DWT, last value kept)",
    "ret": "the signed daily log return (the leverage effect: falls raise volatility more than rises)",
    "wav": "MODWT (à trous) energies of returns at levels 1–{levels} and the level-{levels} smooth, each the mean squared "
           "coefficient over the last {span} days (the wavelet form of HAR's day/week/month components)",
    "gjr": "the GJR-GARCH(1,1,1) {horizon}-day volatility forecast (parameters ω={omega:.4g}, α={alpha:.4g}, γ={gamma:.4g}, "
           "β={beta:.4g} fit on the training rows' returns; in the walk-forward, refit each year; variance filtered through "
           "the last {trailing} returns)",
    "rng": "{estimator} range variance of each day (from its high and low{open_note}) as logs of its mean over {spans} days"
           "{modwt}",
    "gjrx": "the GJR-GARCH-X(1,1,1) {horizon}-day volatility forecast, GJR with δ·(the mean range variance of the last {span} "
            "days) in the variance equation (ω={omega:.4g}, α={alpha:.4g}, γ={gamma:.4g}, β={beta:.4g}, δ={delta:.4g}, κ={kappa:.4g}, "
            "fit by maximum likelihood on the training rows; refit each year in the walk-forward)",
}


def _range_values(feats: dict[str, Any]) -> dict[str, Any]:
    r = feats["range"]
    spans = [c[4:-1] for c in feats["channels"] if c.startswith("rng_") and c.endswith("d")]
    return {
        "estimator": {"parkinson": "Parkinson", "garman_klass": "Garman–Klass"}[r["estimator"]],
        "open_note": "; open and close where the open does not repeat the previous close" if r["estimator"] == "garman_klass" else "",
        "spans": "/".join(spans),
        "modwt": f", and the causal MODWT of its log at levels 1–{r['levels']} with the level-{r['levels']} smooth" if r["levels"] else "",
    }


def _channels_text(feats: dict[str, Any]) -> str:
    """What each channel of the feature vector is, from the manifest."""
    channels = feats.get("channels", [feats["names"][0].rsplit("_lag", 1)[0]])
    groups = list(dict.fromkeys(c.split("_")[0] for c in channels))
    values = {"dn": feats, "ret": {}, "wav": feats.get("energy"), "gjr": feats.get("garch"), "gjrx": feats.get("garchx"),
              "rng": _range_values(feats) if "range" in feats else None}
    parts = [CHANNEL_TEXT[group].format(**values[group]) for group in groups]
    return f"the last {feats['window']} days of " + "; ".join(parts) + "."


def _tuning_loss(config: BundleConfig) -> str:
    return "scored by QLIKE" if config.target.kind == "volatility" else "scored by MSE"


def _spread_cell(s: dict[str, float]) -> str:
    return f"{s['mean']:.4g} [{s['min']:.4g}, {s['max']:.4g}]"


def seed_table(evaluation: dict[str, Any], models: list[str] | None = None) -> str:
    """Every model's (or `models`') metrics as mean [min, max] over the seeds, with coverage and
    the Diebold–Mariano test (HAC) against the first benchmark, then the baselines."""
    seeds = evaluation["seeds"]
    rows_by_model = {k: v for k, v in seeds["models"].items() if models is None or k in models}
    metrics = list(next(iter(rows_by_model.values())))
    benchmark = next(iter(next(iter(seeds["diebold_mariano"].values()))))
    header = ["forecast", *metrics, "90% coverage", f"DM {benchmark}: mean loss diff", "HAC p"]
    rows = []
    for name, row in rows_by_model.items():
        dm = seeds["diebold_mariano"].get(name, {}).get(benchmark)
        rows.append([f"**{name}**", *[_spread_cell(row[m]) for m in metrics], _spread_cell(seeds["coverage"][name]),
                     _spread_cell(dm["mean_loss_difference"]) if dm else None, _spread_cell(dm["hac_p_value"]) if dm else None])
    base = evaluation["baselines"]
    rows += [[f"baseline: {n}", *[base[n].get(m) for m in metrics], None, None, None] for n in base]
    return _table(header, rows)


def _seed_tables(evaluation: dict[str, Any]) -> list[str]:
    seeds = evaluation["seeds"]["seeds"]
    return [f"### Over {len(seeds)} seeds (mean [min, max])", "",
            f"The walk-forward was run with seeds {', '.join(map(str, seeds))} (every model fit, tuning excepted, "
            "reseeded); these are the figures to judge the models by. The tables after it are the first seed's run, the one "
            "the shipped ensemble weights and intervals come from.", "",
            seed_table(evaluation), ""]


def _design_choices(config: BundleConfig, manifest: dict[str, Any]) -> list[str]:
    from .forecasters import HOLDOUT_SHARE
    from .forecasters.torch_models import PATIENCE

    t = manifest["training"]["config"]
    return [
        "## Design choices on record",
        "",
        f"- Fixed before any test year was scored: the feature settings above, the first out-of-sample year "
        f"{t['first_oos_year']}, {t['calibration_years']} calibration years, the tuning budget "
        f"({', '.join(f'{k} {v}' for k, v in t['tuning_budget'].items())}), {t['seeds']} seeds; every model holds back the "
        f"last {HOLDOUT_SHARE:.0%} of its training rows after a gap of {config.target.horizon} rows (the target horizon), "
        f"where the neural nets stop early (patience {PATIENCE} epochs)"
        + (" and the log-link offset is measured (for the nets on the held-out rows' second half, after another gap, "
           "not on the rows that chose the epoch)." if config.target.link == "log" else "."),
        f"- {config.design_note}",
        "",
    ]


def _metric_table(evaluation: dict[str, Any]) -> str:
    models, base = evaluation["models"], evaluation["baselines"]
    names = list(next(iter(models.values())))
    columns = names + sorted({m for row in base.values() for m in row} - set(names))
    rows = [[f"**{n}**", *[models[n].get(c) for c in columns]] for n in (*MODELS, *(k for k in models if k not in MODELS))]
    rows += [[f"baseline: {n}", *[base[n].get(c) for c in columns]] for n in base]
    return _table(["forecast", *columns], rows)


def markdown(config: BundleConfig, manifest: dict[str, Any], plot_files: list[str]) -> str:
    ev = manifest["evaluation"]
    feats = manifest["features"]
    lines = [
        f"# Model card: {config.name} {config.version}",
        "",
        f"{config.description}.",
        "",
        "## What it predicts",
        f"- Target `{config.target.name}`: {config.target.units}; horizon {config.target.horizon} trading day(s).",
        f"- Data: {manifest['data']['source']}, {manifest['data']['start']} to {manifest['data']['end']} "
        f"({manifest['data']['rows']} daily {'closes' if feats.get('inputs', ['close']) == ['close'] else 'bars'}; rows dropped under the missing-value rule: "
        f"{manifest['data']['missing_policy_dropped_rows']}).",
        f"- Input: {len(feats['names'])} features `{feats['names'][0]}` … `{feats['names'][-1]}`: "
        + _channels_text(feats)
        + f" Every value uses only prices up to its own day. A request may also send at least {feats['min_prices']} "
        + ("raw prices instead." if feats.get("inputs", ["close"]) == ["close"] else f"daily bars ({', '.join(feats['inputs'])}) instead; closes alone are refused."),
        "- Models: XGBoost, LSTM and a small Transformer (PyTorch), tuned with Optuna on validation years before the first "
        f"out-of-sample year ({_tuning_loss(config)}), and an ensemble (any weights fit on out-of-fold predictions only): "
        f"{manifest['models']['ensemble']['combination']}, members {', '.join(manifest['models']['ensemble']['weights'])}."
        + (f" Each base model is anchored on `{manifest['models']['xgboost']['anchor']['feature']}`: it fits the log of the target "
           "over that forecast and answers the forecast times exp(its fit), so it corrects a model that extrapolates to "
           "volatility beyond its training years instead of being bounded by them." if "anchor" in manifest["models"]["xgboost"] else ""),
        "- What is served: the shipped graphs are refit once on every row up to the end of the data, so they have no "
        "out-of-sample record of their own; the walk-forward figures below measure the same procedure refit every year, and "
        "are the ones to judge them by.",
        "",
        "## How it was evaluated",
        f"- {ev['scheme']}; test years {ev['test_years'][0]}–{ev['test_years'][-1]} "
        f"({ev['period']['days']} days, {ev['period']['start']} to {ev['period']['end']}). "
        f"Refits also run from {config.first_oos_year} so the ensemble and the intervals of the first test year have "
        "out-of-sample history to learn from.",
        "- Training rows are purged: a refit before day t learns only from targets already realized at t.",
        "- Every baseline below is computed on the same days.",
        "",
        *_seed_tables(ev),
        "### Out-of-sample metrics (first seed)",
        "",
        _metric_table(ev),
        "",
    ]
    if config.target.kind == "return":
        lines += [
            "`r2_oos_vs_historical_mean` is Campbell–Thompson's out-of-sample R² against the expanding historical mean; "
            "`theil_u_vs_random_walk` is RMSE over the RMSE of a zero-return (random walk in price) forecast, below 1 beats it.",
            "",
        ]
    else:
        lines += ["QLIKE and MSE are on variances (Patton 2011); lower is better. GARCH(1,1), GJR-GARCH(1,1,1) and EGARCH(1,1,1) "
                  "(zero mean, normal errors) are refit each year with `arch` on the returns before it, parameters fixed within "
                  "the year; GARCH and GJR sum the analytic daily variances over the horizon, EGARCH simulates them "
                  f"({EGARCH_SIMULATIONS} paths, fixed seed). HAR is Corsi's regression on daily, weekly and monthly squared returns."
                  + (" From the bars: `har_gk` regresses the log target variance on the logs of the daily, weekly and monthly "
                     "Garman–Klass variance (Parkinson on stale-open days), forecast exp(fit + s²/2) (the log-normal bias "
                     "correction; without it QLIKE was 35 % worse on the validation years); `garch_x` is GJR-GARCH with the "
                     "5-day mean Parkinson variance in its variance equation (our maximum likelihood: `arch` takes no "
                     "exogenous variance terms), refit each year, variance filtered from the start of the data."
                     if "garch_x" in ev["baselines"] else ""), ""]
    dm_header = list(next(iter(ev["diebold_mariano"].values())))
    dm_rows = [[m, *[_dm_cell(ev["diebold_mariano"][m][t]) for t in dm_header]] for m in ev["diebold_mariano"]]
    lines += ["### Diebold–Mariano tests", "",
              "Negative statistic: the model's loss is lower. First: long-run variance from lags up to horizon − 1, uniform "
              "weights, Harvey–Leybourne–Newbold corrected. HAC: Newey–West (Bartlett) long-run variance with "
              "max(floor(4 (n/100)^(2/9)), horizon − 1) lags, which also allows for the autocorrelation of the losses themselves.", "",
              _table(["model", *dm_header], dm_rows), ""]

    cov = ev["coverage"]
    lines += [
        "### Prediction intervals",
        "",
        f"Split conformal, nominal {int(cov['nominal'] * 100)}%, scale `{config.interval_scale}`; each test year is calibrated on the "
        f"{config.calibration_years} out-of-sample years before it. The shipped calibration uses the last {config.calibration_years} "
        "test years.",
        "",
        _table(["model", "coverage", "mean width", *map(str, config.test_years)],
               [[m, cov[m]["coverage"], cov[m]["mean_width"], *cov[m]["by_year"].values()] for m in cov if m != "nominal"]),
        "",
    ]
    if "anchor" in ev:
        anchor = ev["anchor"]
        rows = [[f"ours: {m}", r["MAPE"], r["R"], r["TheilU"]] for m, r in anchor["ours"].items()]
        rows.append(["Bao, Yue & Rao (2017) WSAEs-LSTM", *anchor["bao_yue_rao_2017_wsae_lstm"].values()])
        lines += [
            f"### Published anchor: next-day S&P 500 close, the period Bao, Yue & Rao report ({anchor['period']['start']} to "
            f"{anchor['period']['end']})",
            "",
            f"{anchor['scoring'].capitalize()} ({anchor['period']['prediction_years']} years).",
            "",
            _table(["forecast", "MAPE", "R", "Theil U"], rows),
            "",
            anchor["note"] + " On these days the published MAPE and Theil U are themselves worse than the random walk's. "
            "Whole-series wavelet denoising, common in published wavelet pipelines, leaks the future (the leakage tests show it); "
            "the features here are causal.",
            "",
        ]
    q = manifest["quantized"]
    lines += ["### Int8 quantization (onnxruntime static QDQ quantization of MatMul/Gemm weights, 7-bit, and their inputs)", "",
              f"Shipped only if the out-of-sample primary loss worsens by at most {q['tolerance']['primary_loss_relative']:.0%}"
              + (f" on the out-of-sample years before the test years ({q['decided_on_years'][0]}–{q['decided_on_years'][-1]})" if q.get("decided_on_years") else "")
              + (f" and directional accuracy drops by at most {q['tolerance']['directional_accuracy_drop']:.1%}" if "directional_accuracy_drop" in q["tolerance"] else "")
              + ", and only if onnxruntime's fused integer kernels compute what its QDQ graph defines on the test-year rows "
              "(all but a rounding tie's share; otherwise its answers would depend on the CPU). Latency is onnxruntime on one thread. Weights are 7-bit so that integer MatMuls cannot saturate on CPUs "
              "without VNNI: they compute the same on every CPU.", ""]
    if "requantized" in q:
        r = q["requantized"]
        rerun = r["float_walk_forward_rerun"]
        worst = max(v["relative_change"] for k, v in rerun.items() if k != "metric")
        if r.get("float_evaluation_identical"):
            others = "and every other float figure to every recorded digit"
        else:
            others = (f"and {len(r.get('float_evaluation_differences', []))} other float figures (metrics, tests, coverage) within "
                      f"{r.get('float_evaluation_largest_relative_change', float('nan')):.1e} relative (listed in the manifest)")
        primary = "to every recorded digit" if worst == 0 else f"within {worst:.1e} relative"
        lines += [f"Quantized again on {r['date'][:10]} (`{r['command']}`, {r.get('cpu', r['machine'])}) from the unchanged float "
                  "models, whose recorded metrics are kept. The int8 rows above (`lstm_int8`, `transformer_int8`) come from a rerun "
                  f"of the walk-forward with the recorded hyperparameters and seed, whose float models matched the recorded "
                  f"{rerun['metric']} {primary} {others}. Latencies were measured on that machine.", ""]
    qrows = []
    for m in ("lstm", "transformer"):
        r = q[m]
        qrows.append([m, r["bytes_fp32"], r["bytes_int8"], r["latency_fp32"]["single_row_us"], r["latency_int8"]["single_row_us"],
                      r["latency_fp32"]["batch_per_row_us"], r["latency_int8"]["batch_per_row_us"],
                      r["primary_loss_change_relative"], r["max_abs_diff_vs_fp32"], r.get("fused_kernels_rows_off"), "yes" if r["shipped"] else "no"])
    lines += [_table(["model", "bytes fp32", "bytes int8", "µs/row fp32 (1)", "µs/row int8 (1)", "µs/row fp32 (batch)",
                      "µs/row int8 (batch)", "loss change (decision years)", "max |Δ| vs fp32", "rows where fused ≠ graph", "shipped"], qrows), ""]
    lines += ["### Export parity (onnxruntime vs native model, test-year rows)", "",
              _table(["model", "max abs diff", "max rel diff"], [[m, p["max_abs_diff"], p["max_rel_diff"]] for m, p in manifest["parity"].items()]), ""]
    lines += _design_choices(config, manifest)
    lines += ["## Plots", ""] + [f"![{f}]({f})" for f in plot_files] + [""]
    t = manifest["training"]
    lines += [
        "## Reproducing",
        "",
        f"Trained in {t['seconds']:.0f} s on {t['machine']} with seed {config.seed}: "
        f"`{t['command']}`. Retraining with the same seed and pinned requirements reproduces the metrics within "
        f"{t['reproducibility_tolerance']:.0%} relative (`wavelet-pipeline reproduce <bundle>` checks this).",
        "",
        "## Limitations",
        "- Daily closes only; no transaction costs, slippage or borrowing costs in the strategy plot.",
        "- Forecasts of daily index returns are close to unpredictable; judge every model by the baselines beside it.",
        "- The intervals assume the calibration years resemble the future; coverage by year shows where they did not.",
        "",
    ]
    return "\n".join(lines)


def rewrite(path: Path, config: BundleConfig) -> str:
    """Render the bundle's model_card.md again from its manifest (the plots stay) and reseal
    the bundle; returns the new digest. For changes to the card's text, without retraining."""
    manifest = json.loads((path / MANIFEST).read_text())
    plots = sorted(f for f in manifest["files"] if f.startswith("plots/"))
    (path / "model_card.md").write_text(markdown(config, manifest, plots))
    return seal(path, manifest)
