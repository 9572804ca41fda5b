"""`wavelet-pipeline import DIR`: a guide user's own trained models as a verified bundle.

Reads the deployment guide's layout (feature_names.json, XGBoost, PyTorch state dicts or
TorchScript, ensemble weights; pickles only with --allow-pickle, in a sandbox), converts
every model to ONNX, checks the graphs against the original frameworks' predictions and
writes a "named features" bundle (/work/contract23.md is the shared contract).
"""


class ImportRefused(Exception):
    """The import cannot go on: the message says why (one line per problem); exit code 2."""
