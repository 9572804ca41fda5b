"""Command line: train bundles, verify them, reproduce them, check price files.

    wavelet-pipeline train spx-return-1d [--quick] [--out DIR]
    wavelet-pipeline train-csv prices.csv --target log_return_1d --name my-bundle
    wavelet-pipeline import my-models/ --name my-models --version 1.0.0 [--out DIR]
    wavelet-pipeline verify models/bundles/spx-return-1d
    wavelet-pipeline reproduce models/bundles/spx-return-1d
    wavelet-pipeline requantize models/bundles/spx-return-1d
    wavelet-pipeline card models/bundles/spx-vol-5d
    wavelet-pipeline report models/bundles/*
    wavelet-pipeline check-csv prices.csv [--missing drop]
    wavelet-pipeline validate spx-range-vol-5d [--seeds 2] [--out validation.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
import tempfile
from pathlib import Path

from .bundle import MANIFEST, bundle_digest, verify_bundle
from .config import BUNDLES, RANGE_VOL_CANDIDATES, SPX_RANGE_VOL_5D, SPX_RETURN_1D, SPX_VOL_5D, VALIDATION_YEARS, BundleConfig
from .data import DataError, PriceSeries, load_csv
from .targets import TARGETS

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "bundles"
# Bundles whose channels were chosen by `validate`, and the candidates it compares.
CANDIDATES = {SPX_RANGE_VOL_5D.name: RANGE_VOL_CANDIDATES}


def _years(text: str) -> tuple[int, ...]:
    first, _, last = text.partition("-")
    return tuple(range(int(first), int(last or first) + 1))


def _config_for(name: str, quick: bool, seed: int | None) -> BundleConfig:
    config = BUNDLES[name]
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    return config.quick_variant() if quick else config


def _recorded(path: Path) -> tuple[dict, BundleConfig]:
    """A default bundle's manifest and the config it was trained with (quick or not, its seed)."""
    recorded = json.loads((path / MANIFEST).read_text())
    training = recorded["training"]
    return recorded, _config_for(recorded["name"], training["config"]["quick"], training["seed"])


def _train(config: BundleConfig, out: Path, command: str) -> int:
    from .train import train_bundle  # heavy imports only when training

    digest = train_bundle(config, out, command)
    manifest = json.loads((out / MANIFEST).read_text())
    print(f"wrote {out} ({digest}) in {manifest['training']['seconds']:.0f} s")
    _print_summary(manifest)
    return 0


def _print_summary(manifest: dict) -> None:
    ev = manifest["evaluation"]
    primary = ev["primary_metric"]
    print(f"out-of-sample {ev['period']['start']}..{ev['period']['end']} ({ev['period']['days']} days), {primary}:")
    for name, row in {**ev["models"], **{f"baseline:{k}": v for k, v in ev["baselines"].items()}}.items():
        if primary in row:
            extra = f"  coverage {ev['coverage'][name]['coverage']:.3f}" if name in ev["coverage"] else ""
            print(f"  {name:<24} {row[primary]:.6g}{extra}")


def csv_config(args: argparse.Namespace, series: PriceSeries) -> BundleConfig:
    """train-csv's configuration: the default bundle of the target's kind (for volatility, the
    range bundle's when the file has High and Low, else the close-only one) on the user's data
    and years."""
    target = TARGETS[args.target]
    like = SPX_RETURN_1D if target.kind == "return" else SPX_RANGE_VOL_5D if series.high is not None else SPX_VOL_5D
    return dataclasses.replace(
        like, name=args.name, version="1.0.0", description=f"{args.target} of {args.csv.name}", data=str(args.csv),
        target=target, missing=args.missing, anchor_period=None, design_note="",
        features=dataclasses.replace(like.features, garch_horizon=target.horizon),
        test_years=args.test_years, first_oos_year=args.first_oos_year or args.test_years[0] - 4,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavelet-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one of the default bundles")
    train.add_argument("bundle", choices=sorted(BUNDLES))
    train.add_argument("--out", type=Path, help="output directory (default: models/bundles/<name>)")
    train.add_argument("--quick", action="store_true", help="cut-down run (two test years, few trials) for tests")
    train.add_argument("--seed", type=int)

    csv = sub.add_parser("train-csv", help="train a bundle from your own daily prices")
    csv.add_argument("csv", type=Path)
    csv.add_argument("--name", required=True)
    csv.add_argument("--target", choices=sorted(TARGETS), default="log_return_1d")
    csv.add_argument("--missing", choices=["error", "drop"], default="error")
    csv.add_argument("--test-years", type=_years, default=_years("2011-2018"), help="e.g. 2011-2018")
    csv.add_argument("--first-oos-year", type=int, default=None, help="first refit year (default: 4 before the test years)")
    csv.add_argument("--out", type=Path)
    csv.add_argument("--quick", action="store_true")

    imp = sub.add_parser("import", help="make a bundle of your own trained models (the deployment guide's layout)",
                         description=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("dir", type=Path, help="feature_names.json and the model files")
    imp.add_argument("--name", required=True, type=_bundle_name)
    imp.add_argument("--version", required=True, type=_bundle_version)
    imp.add_argument("--out", type=Path, help="output directory (default: models/bundles/<name>); an existing bundle there is replaced")
    imp.add_argument("--allow-pickle", action="store_true",
                     help="unpickle .pkl / full-module .pth files, in a sandboxed child process (Linux, unshare(1), root)")
    imp.add_argument("--calibration", type=Path, help="CSV of rows the models were NOT trained on: a column per feature "
                     "name and the target column; gives conformal intervals and the feature/target ranges")
    imp.add_argument("--target-column", default="target", help="the calibration file's target column (default: target)")
    imp.add_argument("--target-name", default="target", help="what the models predict, for the manifest (default: target)")
    imp.add_argument("--target-kind", choices=["return", "volatility"], default="return")
    imp.add_argument("--horizon", type=_horizon, default=1, help="trading days ahead (default: 1)")
    imp.add_argument("--units", default="as trained")
    imp.add_argument("--interval-scale", choices=["rms_features", "prediction"],
                     help="conformal scale (default: prediction for volatility, rms_features for returns, as ours)")

    verify = sub.add_parser("verify", help="check a bundle's hashes, graphs and parity vectors")
    verify.add_argument("bundles", nargs="+", type=Path)

    reproduce = sub.add_parser("reproduce", help="retrain a default bundle with its seed and compare its metrics")
    reproduce.add_argument("bundle", type=Path)

    requantize = sub.add_parser(
        "requantize", help="quantize a default bundle's int8 models again from its float models, which stay as they are "
        "(reruns the walk-forward for the int8 metrics)")
    requantize.add_argument("bundle", type=Path)

    card = sub.add_parser("card", help="render a default bundle's model_card.md again from its manifest and reseal it "
                          "(for changes to the card's text; the digest changes)")
    card.add_argument("bundle", type=Path)

    report = sub.add_parser("report", help="print a markdown summary of bundles (the README's model table)")
    report.add_argument("bundles", nargs="+", type=Path)

    check = sub.add_parser("check-csv", help="validate a price file and summarize it")
    check.add_argument("csv", type=Path)
    check.add_argument("--missing", choices=["error", "drop"], default="error")

    validate = sub.add_parser("validate", help="compare a bundle's candidate channel sets on the validation years "
                              f"({VALIDATION_YEARS[0]}-{VALIDATION_YEARS[-1]}), never the test years")
    validate.add_argument("bundle", choices=sorted(CANDIDATES))
    validate.add_argument("--seeds", type=int, default=2)
    validate.add_argument("--out", type=Path, help="also write the comparison as JSON")
    validate.add_argument("--only", action="append", help="a candidate to run (repeatable; default: every one)")

    args = parser.parse_args(argv)
    command = "wavelet-pipeline " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command in ("card", "report", "reproduce", "requantize"):
        imported = [p for p in (args.bundles if args.command == "report" else [args.bundle]) if _imported(p)]
        if imported:
            print(f"error: {', '.join(map(str, imported))}: imported (named features, not trained here): `{args.command}` "
                  "works on the pipeline's own bundles; `verify` checks an imported one", file=sys.stderr)
            return 2
    try:
        if args.command == "train":
            config = _config_for(args.bundle, args.quick, args.seed)
            return _train(config, args.out or DEFAULT_OUT / config.name, command)
        if args.command == "train-csv":
            config = csv_config(args, load_csv(args.csv, missing=args.missing))  # fails fast, before any import of torch
            return _train(config.quick_variant() if args.quick else config, args.out or DEFAULT_OUT / args.name, command)
        if args.command == "import":
            return _import(args, command)
        if args.command == "verify":
            failed = 0
            for path in args.bundles:
                problems = verify_bundle(path)
                print(f"{path}: {'ok ' + bundle_digest(path) if not problems else 'FAILED'}")
                for problem in problems:
                    print(f"  - {problem}")
                failed += bool(problems)
            return 1 if failed else 0
        if args.command == "card":
            from .card import rewrite

            print(f"wrote {args.bundle / 'model_card.md'} ({rewrite(args.bundle, _recorded(args.bundle)[1])})")
            return 0
        if args.command == "report":
            print(_report([json.loads((p / MANIFEST).read_text()) for p in args.bundles]))
            return 0
        if args.command == "reproduce":
            return _reproduce(args.bundle)
        if args.command == "requantize":
            return _requantize(args.bundle, command)
        if args.command == "validate":
            from .validation import validate as run_validation

            candidates = {k: v for k, v in CANDIDATES[args.bundle].items() if not args.only or k in args.only}
            result = run_validation(BUNDLES[args.bundle], candidates, args.seeds)
            if args.out:
                args.out.write_text(json.dumps(result, indent=2) + "\n")
            for name, row in result["candidates"].items():
                e = row["ensemble"]
                print(f"{name:<24} ensemble {e['mean']:.5f} [{e['min']:.5f}, {e['max']:.5f}]  features {row['features']}  {row['seconds']:.0f} s")
                print("   " + "  ".join(f"{m} {v:.5f}" for m, v in {**row["models"], **row["baselines"]}.items()))
                print("   ensemble by stack: " + "  ".join(f"{k} {s['mean']:.5f} [{s['min']:.5f}, {s['max']:.5f}]" for k, s in row["ensemble_by_stack"].items()))
                print("   coverage by calibration years: " + "  ".join(f"{k} {s['mean']:.4f}" for k, s in row["ensemble_coverage_by_calibration_years"].items()))
                print("   ensemble by year: " + "  ".join(f"{y} {v:.4f}" for y, v in row["ensemble_by_year_first_seed"].items()))
            return 0
        if args.command == "check-csv":
            series = load_csv(args.csv, missing=args.missing)
            print(json.dumps(series.describe(), indent=2))
            return 0
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


IMPORT_HELP = """Make a bundle of your own trained models, laid out as the deployment guide says:

  feature_names.json                       the input vector's names, in order (required)
  xgboost_optimized.ubj | .json            XGBoost Booster/XGBRegressor save_model (identity-link
                                           regression objectives: reg:squarederror, absoluteerror,
                                           pseudohubererror, squaredlogerror, quantileerror)
  <name>_optimized.pth                     a PyTorch state dict (torch.load weights_only=True) ...
  <name>_optimized_config.json             ... and its architecture, e.g.
      {"architecture": "lstm", "input_size": 2, "sequence_length": 5, "hidden_size": 16,
       "num_layers": 1, "bidirectional": false, "dropout": 0.1, "head": "last"}
      {"architecture": "transformer", "input_size": 2, "sequence_length": 5, "d_model": 16,
       "heads": 2, "feedforward": 32, "num_layers": 1, "dropout": 0.1, "head": "last",
       "positional_encoding": "sinusoidal", "max_len": 5}
      (keys and state-dict names: wavelet_pipeline/importer/architectures.py)
  <name>_optimized.pt                      TorchScript, any architecture; optional config with
                                           sequence_length and input_size (default 1 × n)
  ensemble_optimized.json                  {"weights": {"xgboost": 0.5, "lstm": 0.5}} (finite;
                                           Σ w·prediction as given, need not sum to 1)
  *.pkl, full-module .pth                  pickles: refused unless --allow-pickle

Sequence models read the flat vector as sequence_length steps (oldest first) of input_size
features. Every graph is checked against its framework's own predictions (1e-5 relative +
1e-6 absolute) before anything is written; a refusal exits 2 and writes nothing.
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")


def _bundle_name(text: str) -> str:
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError("letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)")
    return text


def _bundle_version(text: str) -> str:
    if not _VERSION.match(text):
        raise argparse.ArgumentTypeError("letters, digits, '.', '+' and '-', e.g. 1.0.0")
    return text


def _horizon(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 252:
        raise argparse.ArgumentTypeError("a whole number of trading days from 1 to 252")
    return int(text)


def _import(args: argparse.Namespace, command: str) -> int:
    from .importer import ImportRefused
    from .importer.build import Options, import_bundle

    started = time.monotonic()
    out = args.out or DEFAULT_OUT / args.name
    options = Options(
        source=args.dir, name=args.name, version=args.version, out=out, command=command, allow_pickle=args.allow_pickle,
        calibration=args.calibration, target_column=args.target_column, target_name=args.target_name,
        target_kind=args.target_kind, horizon=args.horizon, units=args.units, interval_scale=args.interval_scale,
    )
    try:
        digest = import_bundle(options)
    except ImportRefused as exc:
        for line in str(exc).splitlines():
            print(line if line.startswith(" ") else f"error: {line}", file=sys.stderr)  # indented: the line before's detail
        return 2
    manifest = json.loads((out / MANIFEST).read_text())
    print(f"wrote {out} ({digest}) in {time.monotonic() - started:.1f} s: {', '.join(manifest['models'])}; "
          f"default {manifest['default_model']}; intervals {'yes' if manifest['conformal']['available'] else 'no'}")
    return 0


def _imported(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text())["features"].get("kind") == "named"
    except (OSError, ValueError, KeyError, AttributeError):
        return False  # the command itself reports what is wrong with it


def _report(manifests: list[dict]) -> str:
    """Out-of-sample metrics over the seeds next to the baselines, interval coverage, the
    Diebold–Mariano test and training time (the model card's first table, float models)."""
    from .card import seed_table

    lines = []
    for m in manifests:
        ev = m["evaluation"]
        lines += [
            f"**{m['name']}** {m['version']} ({m['target']['name']}, {ev['period']['start']} to {ev['period']['end']}, "
            f"{ev['period']['days']} days, mean [min, max] over {len(ev['seeds']['seeds'])} seeds, trained in "
            f"{m['training']['seconds']:.0f} s)",
            "",
            seed_table(ev, [k for k in ev["models"] if not k.endswith("_int8")]),
        ]
        if "anchor" in ev:
            a = ev["anchor"]
            lines += ["", f"Price level, first seed, the period Bao, Yue & Rao report ({a['period']['start']} to "
                      f"{a['period']['end']}), {a['scoring']}:", "",
                      "| forecast | MAPE | R | Theil U |", "|---|---|---|---|"]
            for name in ("ensemble", "random_walk"):
                r = a["ours"][name]
                lines.append(f"| ours: {name} | {r['MAPE']:.4f} | {r['R']:.4f} | {r['TheilU']:.4f} |")
            b = a["bao_yue_rao_2017_wsae_lstm"]
            lines.append(f"| Bao, Yue & Rao (2017) WSAEs-LSTM, as published | {b['MAPE']} | {b['R']} | {b['TheilU']} |")
        lines.append("")
    return "\n".join(lines)


def _reproduce(path: Path) -> int:
    from .train import REPRODUCIBILITY_TOLERANCE, train_bundle

    recorded, config = _recorded(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / recorded["name"]
        train_bundle(config, out, recorded["training"]["command"])
        fresh = json.loads((out / MANIFEST).read_text())
    primary = recorded["evaluation"]["primary_metric"]
    worst = 0.0
    for model, row in recorded["evaluation"]["models"].items():
        old, new = row[primary], fresh["evaluation"]["models"][model][primary]
        change = abs(new - old) / abs(old)
        worst = max(worst, change)
        print(f"{model:<20} {primary} recorded {old:.6g} retrained {new:.6g} (relative change {change:.2e})")
    ok = worst <= REPRODUCIBILITY_TOLERANCE
    print(f"{'reproduced' if ok else 'NOT reproduced'}: worst relative change {worst:.2e} (tolerance {REPRODUCIBILITY_TOLERANCE})")
    return 0 if ok else 1


def _requantize(path: Path, command: str) -> int:
    from .requantize import requantize_bundle

    _, config = _recorded(path)
    digest, rerun = requantize_bundle(path, config, command)
    manifest = json.loads((path / MANIFEST).read_text())
    print(f"wrote {path} ({digest})")
    metric, differences = rerun.pop("metric"), rerun.pop("float_evaluation_differences")
    for model, row in rerun.items():
        print(f"  {model:<12} {metric} recorded {row['recorded']:.6g}, walk-forward rerun {row['rerun']:.6g} (relative change {row['relative_change']:.2e}; recorded kept)")
    print(f"  every float metric, coverage, test and baseline of the rerun {'DIFFERS from' if differences else 'equals'} the recorded one")
    for difference in differences:
        print(f"    {difference}")
    for kind in ("lstm", "transformer"):
        q = manifest["quantized"][kind]
        print(f"  {kind}_int8: {metric} {manifest['evaluation']['models'][f'{kind}_int8'][metric]:.6g}, "
              f"loss change {q['primary_loss_change_relative']:+.2e}, shipped {q['shipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
