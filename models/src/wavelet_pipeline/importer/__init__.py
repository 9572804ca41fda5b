"""`wavelet-pipeline import DIR`: a guide user's own trained models as a verified bundle.

Reads the deployment guide's layout (feature_names.json, XGBoost, PyTorch state dicts or
TorchScript, ensemble weights or a scikit-learn ensemble saved with skops; pickles only with
--allow-pickle, in a sandbox), converts every model to ONNX, checks the graphs against the
original frameworks' predictions and writes a "named features" bundle (/work/contract23.md is the shared contract).
"""


import json
from pathlib import Path
from typing import Any


class ImportRefused(Exception):
    """The import cannot go on: the message says why (one line per problem); exit code 2."""


def read_json(path: Path, label: str | None = None) -> Any:
    """The file's JSON (NaN and Infinity parse, to be refused by the caller by name), or
    ImportRefused naming the file (`label`: the user's file, when `path` is a converted copy)."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportRefused(f"{label or path.name}: not readable JSON ({exc})") from None
