"""Tiny models trained the way a deployment-guide user would, written in the guide's layout.

The user's own code, not the importer's: the LSTM and Transformer classes here are written
independently of wavelet_pipeline.importer.architectures (same state-dict keys, as its
documented schema asks), so an import that rebuilt the architecture wrongly would fail the
parity tests. 10 named features, 300 synthetic rows, a few seconds on 2 cores.

As a program (for the server's tests and the kind tier, to build real imported bundles):

    cd models && PYTHONPATH=src python -m tests.byom_fixtures OUTDIR [--pickles] [--xgboost-json]
        [--calibration FILE.csv] [--only xgboost,lstm,...] [--seed N] [--skops-ensemble [voting|stacking]]
    PYTHONPATH=src python -m wavelet_pipeline import OUTDIR --name byom --version 1.0.0 --out BUNDLE
        [--calibration FILE.csv] [--allow-pickle]
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xgboost as xgb
from torch import nn

NAMES = ["rsi_14", "macd", "macd_signal", "bb_width", "atr_14", "volume_z", "ret_1", "ret_5", "ret_20", "vol_20"]
LENGTH, SIZE = 5, 2  # the sequence models read the 10 values as 5 steps of 2
ROWS = 300
WEIGHTS = {"xgboost": 0.5, "lstm": 0.3, "transformer": 0.2}
LSTM_CONFIG = {"architecture": "lstm", "input_size": SIZE, "sequence_length": LENGTH, "hidden_size": 8, "num_layers": 1,
               "bidirectional": False, "dropout": 0.0, "head": "last"}
TRANSFORMER_CONFIG = {"architecture": "transformer", "input_size": SIZE, "sequence_length": LENGTH, "d_model": 8, "heads": 2,
                      "feedforward": 16, "num_layers": 1, "dropout": 0.1, "head": "mean",
                      "positional_encoding": "sinusoidal", "max_len": 8}
SHAPE_CONFIG = {"sequence_length": LENGTH, "input_size": SIZE}


def data(rows: int = ROWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and a next-day return that depends on a few of them, plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, len(NAMES)))
    y = 0.5 * X[:, 6] - 0.3 * X[:, 1] + 0.2 * np.tanh(X[:, 0]) + 0.1 * rng.standard_normal(rows)
    return X, y


class UserLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(SIZE, LSTM_CONFIG["hidden_size"], batch_first=True)
        self.head = nn.Linear(LSTM_CONFIG["hidden_size"], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class UserTransformer(nn.Module):
    """The PyTorch tutorial's positional encoding, a mean-pooled encoder."""

    def __init__(self) -> None:
        super().__init__()
        c = TRANSFORMER_CONFIG
        self.input_projection = nn.Linear(SIZE, c["d_model"])
        position = torch.arange(c["max_len"]).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, c["d_model"], 2) * (-math.log(10000.0) / c["d_model"]))
        pe = torch.zeros(1, c["max_len"], c["d_model"])
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)
        layer = nn.TransformerEncoderLayer(c["d_model"], c["heads"], c["feedforward"], c["dropout"], batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c["num_layers"], enable_nested_tensor=False)
        self.head = nn.Linear(c["d_model"], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.input_projection(x) + self.pe[:, : x.size(1)]).mean(dim=1))


class UserGRU(nn.Module):
    """An architecture the importer has no schema for: shipped as TorchScript."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(SIZE, 6, batch_first=True)
        self.out = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.out(out[:, -1])


@dataclass
class Trained:
    xgboost: xgb.XGBRegressor
    lstm: nn.Module
    transformer: nn.Module
    gru: torch.jit.ScriptModule
    sklearn: dict[str, Any] = field(default_factory=dict)  # "voting", "stacking": scikit-learn ensembles

    def predict(self, model: str, rows: np.ndarray) -> np.ndarray:
        """The original framework's prediction for flat feature rows (the parity reference)."""
        if model == "xgboost":
            return self.xgboost.predict(rows.astype(np.float32)).astype(np.float64)
        if model == "ensemble":
            return sum(w * self.predict(m, rows) for m, w in WEIGHTS.items())
        if model in self.sklearn:  # fitted on a DataFrame: predict on one
            import pandas as pd

            return self.sklearn[model].predict(pd.DataFrame(rows.astype(np.float32).astype(np.float64), columns=NAMES))
        net = getattr(self, model).eval()
        with torch.no_grad():
            return net(torch.from_numpy(rows.astype(np.float32)).reshape(-1, LENGTH, SIZE)).double().reshape(-1).numpy()


def _fit(net: nn.Module, X: np.ndarray, y: np.ndarray, steps: int = 60) -> nn.Module:
    torch.manual_seed(0)
    xs = torch.from_numpy(X.astype(np.float32)).reshape(-1, LENGTH, SIZE)
    ys = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(net(xs), ys).backward()
        optimizer.step()
    return net.eval()


def train(seed: int = 0) -> Trained:
    torch.set_num_threads(1)
    X, y = data(seed=seed)
    booster = xgb.XGBRegressor(n_estimators=20, max_depth=3, learning_rate=0.3, random_state=seed, n_jobs=1)
    import pandas as pd

    booster.fit(pd.DataFrame(X, columns=NAMES), y)  # as users do: a DataFrame, so the model knows the names
    torch.manual_seed(seed)
    lstm, transformer = _fit(UserLSTM(), X, y), _fit(UserTransformer(), X, y)
    gru = torch.jit.script(_fit(UserGRU(), X, y))
    return Trained(booster, lstm, transformer, gru, sklearn_ensembles(X, y, seed))


def sklearn_ensembles(X: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """A VotingRegressor(XGBRegressor, Ridge) and a StackingRegressor(XGBRegressor, Ridge,
    RandomForestRegressor; final Ridge), fitted on a DataFrame (so they know the names)."""
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor, StackingRegressor, VotingRegressor
    from sklearn.linear_model import Ridge

    def members() -> list[tuple[str, Any]]:
        return [("xgb", xgb.XGBRegressor(n_estimators=10, max_depth=3, learning_rate=0.3, random_state=seed, n_jobs=1)),
                ("ridge", Ridge(alpha=1.0))]

    frame = pd.DataFrame(X, columns=NAMES)
    voting = VotingRegressor(members(), weights=[0.6, 0.4]).fit(frame, y)
    forest = ("forest", RandomForestRegressor(n_estimators=5, max_depth=3, random_state=seed, n_jobs=1))
    stacking = StackingRegressor([*members(), forest], final_estimator=Ridge(alpha=0.5), cv=3).fit(frame, y)
    return {"voting": voting, "stacking": stacking}


def write_layout(out: Path, trained: Trained, *, models: tuple[str, ...] = ("xgboost", "lstm", "transformer", "gru", "ensemble"),
                 xgboost_format: str = "ubj", pickles: bool = False, skops_ensemble: str | None = None) -> Path:
    """The guide's layout in `out`: xgboost_format "ubj" | "json" (XGBRegressor.save_model) or
    "booster-json" (Booster.save_model); pickles: XGBoost and the ensemble as .pkl, as the guide's
    own list has them; skops_ensemble "voting" | "stacking": the ensemble is that scikit-learn
    estimator, saved with skops (ensemble_optimized.skops; pickled with `pickles`)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "feature_names.json").write_text(json.dumps(NAMES))
    if "xgboost" in models:
        if pickles:
            (out / "xgboost_optimized.pkl").write_bytes(pickle.dumps(trained.xgboost))
        elif xgboost_format == "booster-json":
            trained.xgboost.get_booster().save_model(str(out / "xgboost_optimized.json"))
        else:
            trained.xgboost.save_model(str(out / f"xgboost_optimized.{xgboost_format}"))
    for name, config in (("lstm", LSTM_CONFIG), ("transformer", TRANSFORMER_CONFIG)):
        if name in models:
            torch.save(getattr(trained, name).state_dict(), out / f"{name}_optimized.pth")
            (out / f"{name}_optimized_config.json").write_text(json.dumps(config, indent=2))
    if "gru" in models:
        trained.gru.save(str(out / "gru_optimized.pt"))
        (out / "gru_optimized_config.json").write_text(json.dumps(SHAPE_CONFIG))
    if "ensemble" in models and skops_ensemble:
        estimator = trained.sklearn[skops_ensemble]
        if pickles:
            (out / "ensemble_optimized.pkl").write_bytes(pickle.dumps(estimator))
        else:
            import skops.io

            skops.io.dump(estimator, out / "ensemble_optimized.skops")
    elif "ensemble" in models:
        if pickles:
            (out / "ensemble_optimized.pkl").write_bytes(pickle.dumps({"weights": WEIGHTS}))
        else:
            (out / "ensemble_optimized.json").write_text(json.dumps({"weights": WEIGHTS}))
    return out


def write_calibration(path: Path, rows: int = 200, seed: int = 1, target: str = "target") -> Path:
    """Rows the models were not trained on (another seed), a column per feature and the target."""
    import pandas as pd

    X, y = data(rows, seed)
    frame = pd.DataFrame(X, columns=NAMES)
    frame[target] = y
    frame.to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pickles", action="store_true", help="xgboost and ensemble as .pkl (import needs --allow-pickle)")
    parser.add_argument("--xgboost-json", action="store_true", help="xgboost_optimized.json instead of .ubj")
    parser.add_argument("--calibration", type=Path, help="also write calibration rows to this CSV")
    parser.add_argument("--only", help="comma list of xgboost, lstm, transformer, gru, ensemble (default: all)")
    parser.add_argument("--skops-ensemble", nargs="?", const="voting", choices=("voting", "stacking"),
                        help="the ensemble as a scikit-learn VotingRegressor(XGBRegressor, Ridge) (default) or "
                             "StackingRegressor(XGBRegressor, Ridge, RandomForestRegressor; final Ridge) saved with skops "
                             "(ensemble_optimized.skops; .pkl with --pickles) instead of ensemble_optimized.json")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic training data's seed: another seed is the same models retrained")
    args = parser.parse_args(argv)
    models = tuple(args.only.split(",")) if args.only else ("xgboost", "lstm", "transformer", "gru", "ensemble")
    write_layout(args.out, train(args.seed), models=models, xgboost_format="json" if args.xgboost_json else "ubj", pickles=args.pickles,
                 skops_ensemble=args.skops_ensemble)
    if args.calibration:
        write_calibration(args.calibration)
    print(f"wrote {args.out}: {', '.join(sorted(p.name for p in args.out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
