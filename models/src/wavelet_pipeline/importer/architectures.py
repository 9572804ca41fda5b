"""The sequence architectures a state dict can be imported into, and their config schema.

A state dict holds weights, not code: the importer rebuilds the module from
``<name>_optimized_config.json`` and loads the weights with ``strict=True``, so the config
must describe the network exactly. Two architectures are supported; anything else ships
as TorchScript (``<name>_optimized.pt``), which carries its own code.

The config (JSON object; keys other than these are refused, so a misspelled key cannot
silently fall back to a default):

==================== =========== =========================================================
key                  required    meaning
==================== =========== =========================================================
architecture         yes         "lstm" or "transformer"
input_size           yes         d, features per time step
sequence_length      yes         L, time steps; L × d must be len(feature_names.json)
num_layers           yes         stacked LSTM / encoder layers
hidden_size          lstm        LSTM hidden units (per direction)
bidirectional        no (false)  LSTM in both directions (the head then sees 2·hidden_size)
d_model              transformer width of the encoder
heads                transformer attention heads (must divide d_model)
feedforward          transformer width of each layer's feed-forward block
activation           no ("relu") transformer feed-forward activation, "relu" or "gelu"
norm_first           no (false)  transformer pre-norm layers (LayerNorm before attention)
positional_encoding  no          transformer: "sinusoidal" (the only one; the default)
max_len              no (L)      transformer: longest sequence the positional table covers, ≥ L
dropout              no (0.0)    dropout in training (no effect on predictions: eval mode)
head                 no ("last") "last": linear head on the last time step's output;
                                 "mean": on the mean over time steps
==================== =========== =========================================================

The state dict's keys are those of the modules below: ``lstm.*`` (torch.nn.LSTM,
batch_first) and ``head.weight``/``head.bias`` for the LSTM; ``input_projection.*``
(Linear d → d_model), ``encoder.layers.<i>.*`` (torch.nn.TransformerEncoderLayer,
batch_first, no final norm) and ``head.*`` for the Transformer, whose sinusoidal table is
computed, not stored. Input of both: [batch, L, d], oldest step first; output [batch, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

Architecture = Literal["lstm", "transformer"]
Head = Literal["last", "mean"]


class ConfigError(ValueError):
    """The config does not describe a supported architecture: the message says how."""


@dataclass(frozen=True)
class SequenceConfig:
    architecture: Architecture
    input_size: int
    sequence_length: int
    num_layers: int
    hidden_size: int | None = None
    bidirectional: bool = False
    d_model: int | None = None
    heads: int | None = None
    feedforward: int | None = None
    activation: Literal["relu", "gelu"] = "relu"
    norm_first: bool = False
    positional_encoding: Literal["sinusoidal"] = "sinusoidal"
    max_len: int | None = None
    dropout: float = 0.0
    head: Head = "last"

    def describe(self) -> dict[str, Any]:
        """The architecture's keys only, defaults filled in (for the manifest)."""
        return {k: getattr(self, k) for k in (*REQUIRED[self.architecture], *OPTIONAL[self.architecture])}


COMMON = ("architecture", "input_size", "sequence_length", "num_layers")
REQUIRED: dict[str, tuple[str, ...]] = {
    "lstm": (*COMMON, "hidden_size"),
    "transformer": (*COMMON, "d_model", "heads", "feedforward"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "lstm": ("bidirectional", "dropout", "head"),
    "transformer": ("activation", "norm_first", "positional_encoding", "max_len", "dropout", "head"),
}
ALL_KEYS = {f.name for f in fields(SequenceConfig)}


def parse_config(raw: Any) -> SequenceConfig:
    """A validated SequenceConfig, or ConfigError naming every key missing, unknown or wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a JSON object is required, not {type(raw).__name__}")
    architecture = raw.get("architecture")
    if architecture not in REQUIRED:
        known = sorted(set(raw) - ALL_KEYS)
        extra = f"; unknown keys {', '.join(known)}" if known else ""
        raise ConfigError(f"architecture must be \"lstm\" or \"transformer\", not {architecture!r}{extra} "
                          "(any other architecture: save it as TorchScript, <name>_optimized.pt)")
    missing = [k for k in REQUIRED[architecture] if k not in raw]
    unknown = sorted(set(raw) - set(REQUIRED[architecture]) - set(OPTIONAL[architecture]))
    if missing or unknown:
        parts = ([f"missing keys {', '.join(missing)}"] if missing else []) + ([f"unknown keys {', '.join(unknown)}"] if unknown else [])
        raise ConfigError(f"not the {architecture} config schema: {'; '.join(parts)} "
                          f"(schema: {', '.join(REQUIRED[architecture])}; optional {', '.join(OPTIONAL[architecture])})")
    problems = []

    def positive_int(key: str) -> None:
        if key in raw and (type(raw[key]) is not int or raw[key] < 1):
            problems.append(f"{key} must be a whole number ≥ 1, not {raw[key]!r}")

    for key in ("input_size", "sequence_length", "num_layers", "hidden_size", "d_model", "heads", "feedforward", "max_len"):
        positive_int(key)
    for key in ("bidirectional", "norm_first"):
        if key in raw and type(raw[key]) is not bool:
            problems.append(f"{key} must be true or false, not {raw[key]!r}")
    choices = {"head": ("last", "mean"), "activation": ("relu", "gelu"), "positional_encoding": ("sinusoidal",)}
    for key, allowed in choices.items():
        if key in raw and raw[key] not in allowed:
            problems.append(f"{key} must be one of {', '.join(allowed)}, not {raw[key]!r}")
    if "dropout" in raw and (type(raw["dropout"]) not in (int, float) or not 0 <= raw["dropout"] < 1):
        problems.append(f"dropout must be a number in [0, 1), not {raw['dropout']!r}")
    if not problems and architecture == "transformer":
        if raw["d_model"] % raw["heads"]:
            problems.append(f"heads {raw['heads']} must divide d_model {raw['d_model']}")
        if raw.get("max_len", raw["sequence_length"]) < raw["sequence_length"]:
            problems.append(f"max_len {raw['max_len']} must be ≥ sequence_length {raw['sequence_length']}")
    if problems:
        raise ConfigError("; ".join(problems))
    config = SequenceConfig(**raw)
    if architecture == "transformer" and config.max_len is None:
        config = SequenceConfig(**{**raw, "max_len": config.sequence_length})
    return config


class LSTMRegressor(nn.Module):
    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        assert config.hidden_size is not None
        self.pool = config.head
        self.lstm = nn.LSTM(config.input_size, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0, bidirectional=config.bidirectional)
        self.head = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)
        return self.head(out[:, -1, :] if self.pool == "last" else out.mean(dim=1))


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """[1, max_len, d_model]: sin on even, cos on odd channels (Vaswani et al. 2017)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: d_model // 2])
    return table.unsqueeze(0)


class TransformerRegressor(nn.Module):
    """torch.nn.TransformerEncoder between an input projection (plus the sinusoidal table)
    and a linear head: what the user trained, and what the parity predictions come from."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        assert config.d_model and config.heads and config.feedforward and config.max_len
        self.pool = config.head
        self.input_projection = nn.Linear(config.input_size, config.d_model)
        # Not persistent: computed from (max_len, d_model), so it is not a state-dict key.
        self.register_buffer("positional", sinusoidal_table(config.max_len, config.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(config.d_model, config.heads, config.feedforward, config.dropout,
                                           activation=config.activation, batch_first=True, norm_first=config.norm_first)
        self.encoder: nn.Module = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.input_projection(seq) + self.positional[:, : seq.shape[1], :])
        return self.head(x[:, -1, :] if self.pool == "last" else x.mean(dim=1))


class _Attention(nn.Module):
    """torch.nn.MultiheadAttention's self-attention (no mask), written so that the traced
    graph keeps the sequence length symbolic: the exporter bakes the traced length into
    MultiheadAttention's reshapes, and its graph fails at any other length."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1] // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [batch, L, d_model] → [batch, heads, L, width]
            return t.reshape(t.shape[0], -1, self.heads, width).transpose(1, 2)

        q, k, v = (split(t) for t in nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(width), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(x.shape[0], -1, x.shape[-1]))


class _Layer(nn.Module):
    """torch.nn.TransformerEncoderLayer in eval mode, same parameter names."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        assert config.d_model and config.heads and config.feedforward
        self.norm_first = config.norm_first
        self.activation = nn.functional.gelu if config.activation == "gelu" else nn.functional.relu
        self.self_attn = _Attention(config.d_model, config.heads)
        self.linear1 = nn.Linear(config.d_model, config.feedforward)
        self.linear2 = nn.Linear(config.feedforward, config.d_model)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def feedforward(t: torch.Tensor) -> torch.Tensor:
            return self.linear2(self.activation(self.linear1(t)))

        if self.norm_first:
            x = x + self.self_attn(self.norm1(x))
            return x + feedforward(self.norm2(x))
        x = self.norm1(x + self.self_attn(x))
        return self.norm2(x + feedforward(x))


class _Encoder(nn.Module):
    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def exportable(module: nn.Module, config: SequenceConfig) -> nn.Module:
    """The module to export: the same weights, the Transformer's encoder as _Encoder (whose
    graph takes any sequence length); the LSTM as it is."""
    if config.architecture == "lstm":
        return module
    twin = TransformerRegressor(config)
    twin.encoder = _Encoder(config)
    twin.load_state_dict(module.state_dict(), strict=True)
    return twin.eval()


def build(config: SequenceConfig) -> nn.Module:
    return LSTMRegressor(config) if config.architecture == "lstm" else TransformerRegressor(config)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `module` exactly; ValueError naming every missing and unexpected key
    and every shape mismatch, in one line."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} in the file, {list(expected[k].shape)} expected"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        def listed(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

        parts = ([f"missing keys {listed(missing)}"] if missing else []) + ([f"unexpected keys {listed(unexpected)}"] if unexpected else []) \
            + ([f"shape mismatches {listed(shapes)}"] if shapes else [])
        raise ValueError("; ".join(parts))
    module.load_state_dict(state, strict=True)
