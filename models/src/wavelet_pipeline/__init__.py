"""Model pipeline: causal wavelet features, walk-forward evaluation, ONNX model bundles."""

__version__ = "0.1.0"
