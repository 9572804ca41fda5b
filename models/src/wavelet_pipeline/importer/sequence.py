"""PyTorch models: state dicts (weights_only) with a config, or TorchScript files.

Every imported torch model reads a sequence [batch, L, d]; its bundle graph takes the flat
feature vector [batch, L·d] (row-major: L steps oldest first, d features each) and reshapes
it inside (FlatInput), so the server feeds it like any other model. Two graphs are checked
in onnxruntime against torch's eval-mode forward: the raw sequence model at L and at
another length (a graph that baked the traced length in fails there), and the shipped flat
graph, row by row and in one batch.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .. import onnx_tools
from ..bundle import parity_ratio
from ..forecasters import INPUT_NAME, OUTPUT_NAME
from ..forecasters.torch_models import export_graph
from . import ImportRefused, read_json
from .architectures import ConfigError, SequenceConfig, build, exportable, load_strict, parse_config

SEQUENCE_INPUT = "sequence"
# Keys a TorchScript model's optional config may have: its shape, and (ignored) the keys of
# the state-dict schema, so a guide config written for a state dict also serves.
TORCHSCRIPT_SHAPE = ("sequence_length", "input_size")
NESTED_STATE_DICT = ("state_dict", "model_state_dict")


class NeedsPickle(Exception):
    """The file is a pickle (a whole module, or a checkpoint with non-tensor objects)."""


@dataclass
class TorchImport:
    """A torch model ready to check and export."""

    name: str
    module: nn.Module  # eval mode; its forward is the reference
    export_module: nn.Module  # same weights, exporter-friendly (architectures.exportable)
    length: int
    size: int
    format: str  # "torch-state-dict" | "torchscript"
    max_length: int | None = None  # longest sequence the module takes (the transformer's table)
    config: SequenceConfig | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """torch's eval-mode forward on flat rows, float32 (the model's own precision)."""
        return self.forward(torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).reshape(-1, self.length, self.size))

    def forward(self, seq: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.module(seq).double().reshape(-1).numpy()


class FlatInput(nn.Module):
    """features [batch, L·d] → the sequence model on [batch, L, d] → prediction [batch, 1]."""

    def __init__(self, net: nn.Module, length: int, size: int) -> None:
        super().__init__()
        self.net = net
        self.length = length
        self.size = size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.reshape(-1, self.length, self.size)).reshape(-1, 1)


def load_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors in a `.pth` loaded with weights_only=True (and the checkpoint key they
    were under, if nested); NeedsPickle if only a full unpickling could read it."""
    try:
        value = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise NeedsPickle(path.name) from None
    except Exception as exc:  # not a torch file at all
        raise ImportRefused(f"{path.name}: torch.load(weights_only=True) cannot read it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(value, dict):
        for key in NESTED_STATE_DICT:
            if isinstance(value.get(key), dict):
                value = value[key]
                if all(isinstance(t, torch.Tensor) for t in value.values()):
                    return value, key
        if value and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in value.items()):
            return value, None
    raise ImportRefused(f"{path.name}: holds a {type(value).__name__}, not a state dict (a mapping of parameter names to "
                        f"tensors, or a checkpoint with one under {' or '.join(NESTED_STATE_DICT)})")


def describes_architecture(config_path: Path) -> bool:
    """Whether the config is the state-dict schema's (not just a TorchScript shape)."""
    try:
        parse_config(read_json(config_path))
    except (ImportRefused, ConfigError):
        return False
    return True


def from_state_dict(name: str, path: Path, config_path: Path, n: int, *, label: str | None = None) -> TorchImport:
    """The state dict in `path`, loaded strictly into the architecture `config_path` describes
    (`label` names the user's file in messages when `path` is a converted copy)."""
    label = label or path.name
    if not config_path.exists():
        raise ImportRefused(f"{label}: a state dict holds no architecture: {config_path.name} must describe it "
                            "(see `wavelet-pipeline import --help`, or save the model as TorchScript, "
                            f"{name}_optimized.pt)")
    try:
        config = parse_config(read_json(config_path))
    except ConfigError as exc:
        raise ImportRefused(f"{config_path.name}: {exc}") from None
    check_size(config_path.name, config.sequence_length, config.input_size, n)
    state, nested = load_state_dict(path)
    module = build(config)
    try:
        load_strict(module, state)
    except ValueError as exc:
        raise ImportRefused(f"{label} does not match the {config.architecture} that {config_path.name} describes: {exc}") from None
    module.eval()
    details: dict[str, Any] = {"architecture": config.describe()}
    if nested:
        details["state_dict_key"] = nested
    return TorchImport(name, module, exportable(module, config), config.sequence_length, config.input_size, "torch-state-dict",
                       max_length=config.max_len, config=config, details=details)


def check_size(label: str, length: int, size: int, n: int) -> None:
    if length * size != n:
        raise ImportRefused(f"{label}: sequence_length {length} × input_size {size} = {length * size} inputs, "
                            f"feature_names.json has {n}")


def torchscript_shape(config_path: Path, n: int) -> tuple[int, int]:
    """(L, d) from the optional config of a TorchScript model, else (1, n)."""
    if not config_path.exists():
        return 1, n
    raw = read_json(config_path)
    if not isinstance(raw, dict):
        raise ImportRefused(f"{config_path.name}: a JSON object is required")
    from .architectures import ALL_KEYS

    missing = [k for k in TORCHSCRIPT_SHAPE if k not in raw]
    unknown = sorted(set(raw) - ALL_KEYS)
    bad = [k for k in TORCHSCRIPT_SHAPE if k in raw and (type(raw[k]) is not int or raw[k] < 1)]
    if missing or unknown or bad:
        parts = ([f"missing keys {', '.join(missing)}"] if missing else []) + ([f"unknown keys {', '.join(unknown)}"] if unknown else []) \
            + ([f"{', '.join(bad)} must be whole numbers ≥ 1"] if bad else [])
        raise ImportRefused(f"{config_path.name}: {'; '.join(parts)} (a TorchScript model's config needs sequence_length and input_size)")
    check_size(config_path.name, raw["sequence_length"], raw["input_size"], n)
    return raw["sequence_length"], raw["input_size"]


def from_torchscript(name: str, path: Path, shape: tuple[int, int], *, label: str | None = None) -> TorchImport:
    """A TorchScript archive (torch.jit.load: its code is TorchScript, never unpickled
    Python), checked to answer one number per row of a [2, L, d] input."""
    label = label or path.name
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ImportRefused(f"{label}: torch.jit.load cannot read it as TorchScript ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    module.eval()
    length, size = shape
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, length, size))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise ImportRefused(f"{label}: calling it on a [2, {length}, {size}] input (sequence_length × input_size = "
                            f"{length * size} features) failed: {first[:200]}") from None
    if not isinstance(out, torch.Tensor) or out.numel() != 2:
        shown = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ImportRefused(f"{label}: answers {shown} for a batch of 2: one number per row is needed")
    return TorchImport(name, module, module, length, size, "torchscript")


def to_onnx(model: TorchImport) -> tuple[onnx.ModelProto, dict[str, Any], list[str]]:
    """The flat graph (checked by the caller like every model's) after the raw sequence
    model's check; (graph, that check's report, notes)."""
    notes: list[str] = []
    report = check_sequence_graph(model, notes)
    flat: nn.Module = FlatInput(model.export_module, model.length, model.size).eval()
    if isinstance(model.export_module, torch.jit.ScriptModule):
        # The tracer cannot step into a loaded TorchScript module from a Python one; scripted,
        # the wrapper holds it as a submodule and the exporter reads the scripted graph.
        flat = torch.jit.script(flat)
    graph = export(model, flat, torch.zeros(2, model.length * model.size), {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    # FlatInput's reshape(-1, 1) makes the width 1, which the exporter's shape inference
    # leaves symbolic; the bundle's signature says [batch, 1].
    width = graph.graph.output[0].type.tensor_type.shape.dim[1]
    width.Clear()
    width.dim_value = 1
    onnx.checker.check_model(graph)
    return graph, report, notes


def export(model: TorchImport, module: nn.Module, example: torch.Tensor, dynamic_axes: dict[str, dict[int, str]],
           input_name: str = INPUT_NAME) -> onnx.ModelProto:
    """export_graph, or ImportRefused saying why the exporter could not convert the model.
    The exporter prints the whole TorchScript graph to the process's stdout when it fails;
    that goes to /dev/null, the reason into the message."""
    try:
        with _silenced():
            return export_graph(module, example, dynamic_axes, input_name)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
        hint = (" A TorchScript file exports only if the exporter can follow every operator it runs: torch.nn."
                "TransformerEncoder (scripted or traced) cannot be; save such a model's state_dict() with a transformer "
                "config instead.") if model.format == "torchscript" else ""
        raise ImportRefused(f"{model.name}: the TorchScript-based ONNX exporter cannot convert it ({type(exc).__name__}: {first}).{hint}") from None


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def check_sequence_graph(model: TorchImport, notes: list[str]) -> dict[str, Any]:
    """The raw sequence model exported with a symbolic length, run at L and another length
    L' at two batch sizes. A state-dict architecture must pass (it is our code); a
    TorchScript module may take only L steps, or bake L in when traced: noted, not refused,
    since the bundle's graph is only ever fed L steps and is checked itself."""
    other = next((c for c in (model.length + 1, model.length - 1) if c >= 1 and (model.max_length is None or c <= model.max_length)), None)
    graph = export(model, model.export_module, torch.zeros(2, model.length, model.size),
                   {SEQUENCE_INPUT: {0: "batch", 1: "steps"}, OUTPUT_NAME: {0: "batch"}}, input_name=SEQUENCE_INPUT)
    session = onnx_tools.session(graph)
    rng = np.random.default_rng(23)
    checked = []
    for length in (model.length, other):
        if length is None:
            notes.append(f"{model.name}: max_len {model.max_length} = sequence_length: no second sequence length to check")
            continue
        for batch in (1, 5):
            seq = rng.standard_normal((batch, length, model.size)).astype(np.float32)
            try:
                native = model.forward(torch.from_numpy(seq))
            except Exception as exc:
                if model.format == "torchscript" and length != model.length:
                    notes.append(f"{model.name}: takes only {model.length} steps ({str(exc).strip().splitlines()[-1][:120]}); checked at that length")
                    break
                raise
            try:
                got = session.run(None, {SEQUENCE_INPUT: seq})[0].astype(np.float64).reshape(-1)
            except Exception as exc:  # onnxruntime refuses the shape: the length was baked in
                ratio, why = float("inf"), str(exc).strip().splitlines()[0][:160]
            else:
                ratio = parity_ratio(native, got)
                why = f"differs by {np.max(np.abs(native - got)):.3g}" if got.shape == native.shape else \
                    f"{got.size} numbers where torch answers {native.size}"
            if ratio > 1:
                message = f"{model.name}: the sequence graph at {length} steps, batch {batch}: {why}"
                if model.format == "torchscript" and length != model.length:
                    notes.append(message + " (the traced graph holds the traced length; the bundle's graph takes only "
                                 f"{model.length} steps and is checked itself)")
                    break
                raise ImportRefused(message)
            checked.append({"steps": length, "batch": batch, "max_rel_diff": onnx_tools.parity(native, got)["max_rel_diff"]})
    return {"checked": checked}
