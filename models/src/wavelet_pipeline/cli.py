"""Command line: train bundles, verify them, reproduce them, check price files.

    wavelet-pipeline train spx-return-1d [--quick] [--out DIR]
    wavelet-pipeline train-csv prices.csv --target log_return_1d --name my-bundle
    wavelet-pipeline verify models/bundles/spx-return-1d
    wavelet-pipeline reproduce models/bundles/spx-return-1d
    wavelet-pipeline requantize models/bundles/spx-return-1d
    wavelet-pipeline card models/bundles/spx-vol-5d
    wavelet-pipeline report models/bundles/*
    wavelet-pipeline check-csv prices.csv [--missing drop]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from .bundle import MANIFEST, bundle_digest, verify_bundle
from .config import BUNDLES, SPX_RETURN_1D, SPX_VOL_5D, BundleConfig
from .data import DataError, load_csv
from .targets import TARGETS

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "bundles"


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

    args = parser.parse_args(argv)
    command = "wavelet-pipeline " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "train":
            config = _config_for(args.bundle, args.quick, args.seed)
            return _train(config, args.out or DEFAULT_OUT / config.name, command)
        if args.command == "train-csv":
            load_csv(args.csv, missing=args.missing)  # fail fast, before any import of torch
            # The default bundle of the target's kind, on the user's data and years.
            like = SPX_RETURN_1D if TARGETS[args.target].kind == "return" else SPX_VOL_5D
            config = dataclasses.replace(
                like, name=args.name, version="1.0.0", description=f"{args.target} of {args.csv.name}", data=str(args.csv),
                target=TARGETS[args.target], missing=args.missing, anchor_period=None, design_note="",
                features=dataclasses.replace(like.features, garch_horizon=TARGETS[args.target].horizon),
                test_years=args.test_years, first_oos_year=args.first_oos_year or args.test_years[0] - 4,
            )
            return _train(config.quick_variant() if args.quick else config, args.out or DEFAULT_OUT / args.name, command)
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
        if args.command == "check-csv":
            series = load_csv(args.csv, missing=args.missing)
            print(json.dumps(series.describe(), indent=2))
            return 0
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


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
