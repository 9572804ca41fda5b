"""Sequence models in PyTorch: an LSTM and a small Transformer encoder.

Both read the feature vector (channel-major: each channel's ``window`` days, oldest first) as
a sequence of ``window`` steps of one value per channel.
Input standardization and the target's scale and inverse link live inside the module as
buffers, so the exported ONNX graph takes raw features and answers in target units.
Training is seeded and single-process-deterministic: the same seed and data give the
same weights.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from typing import Any, Literal

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from . import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, holdout, log_link_offset

NetKind = Literal["lstm", "transformer"]
# Fixed so results do not depend on how many cores a machine has.
TORCH_THREADS = 2
PATIENCE = 5
BATCH = 256


class LSTMNet(nn.Module):
    def __init__(self, channels: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)
        return self.head(out[:, -1, :])


class UnrolledLSTM(nn.Module):
    """A trained LSTMNet written out step by step as MatMuls, for export.

    onnxruntime can only quantize its fused LSTM operator dynamically, which rescales the
    activations by each batch's range, so a row's answer would depend on the rows batched
    with it. As plain MatMuls the graph quantizes statically and every row stands alone.
    """

    def __init__(self, trained: LSTMNet) -> None:
        super().__init__()
        lstm = trained.lstm
        self.hidden = lstm.hidden_size
        self.input_maps = nn.ModuleList()
        self.hidden_maps = nn.ModuleList()
        for layer in range(lstm.num_layers):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
            bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            input_map = nn.Linear(w_ih.shape[1], w_ih.shape[0])
            hidden_map = nn.Linear(w_hh.shape[1], w_hh.shape[0], bias=False)
            with torch.no_grad():
                input_map.weight.copy_(w_ih)
                input_map.bias.copy_(bias)
                hidden_map.weight.copy_(w_hh)
            self.input_maps.append(input_map)
            self.hidden_maps.append(hidden_map)
        self.head = trained.head

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = seq
        for input_map, hidden_map in zip(self.input_maps, self.hidden_maps):
            outputs: list[torch.Tensor] = []
            h: torch.Tensor | None = None
            c: torch.Tensor | None = None
            for t in range(x.shape[1]):
                gates = input_map(x[:, t])
                if h is not None:
                    gates = gates + hidden_map(h)
                i, f, g, o = gates.chunk(4, dim=-1)
                i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
                c = i * g if c is None else f * c + i * g
                h = o * torch.tanh(c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
        return self.head(x[:, -1])


class AttentionBlock(nn.Module):
    """Pre-norm self-attention and feed-forward, written with plain MatMuls (which both the
    ONNX exporter and onnxruntime's int8 quantizer handle) instead of fused kernels."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, d_model = x.shape
        head_dim = d_model // self.heads
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, steps, self.heads, head_dim).transpose(1, 2)

        scores = split(q) @ split(k).transpose(-2, -1) / math.sqrt(head_dim)
        mixed = (scores.softmax(dim=-1) @ split(v)).transpose(1, 2).reshape(batch, steps, d_model)
        x = x + self.drop(self.proj(mixed))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerNet(nn.Module):
    def __init__(self, channels: int, window: int, d_model: int, heads: int, layers: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, d_model)
        self.position = nn.Parameter(torch.randn(1, window, d_model) * 0.02)
        self.blocks = nn.ModuleList(AttentionBlock(d_model, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = self.embed(seq) + self.position
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, -1, :]))


class Exported(nn.Module):
    """features [batch, channels·window] → prediction [batch, 1] in target units."""

    def __init__(self, net: nn.Module, channels: int, x_mean: np.ndarray, x_std: np.ndarray, z_mean: float, z_std: float, link: str):
        super().__init__()
        self.net = net
        self.channels = channels
        self.log_link = link == "log"
        self.register_buffer("x_mean", torch.tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_std", torch.tensor(x_std, dtype=torch.float32))
        self.register_buffer("z_mean", torch.tensor(z_mean, dtype=torch.float32))
        self.register_buffer("z_std", torch.tensor(z_std, dtype=torch.float32))
        self.register_buffer("z_offset", torch.tensor(0.0, dtype=torch.float32))

    def link_space(self, features: torch.Tensor) -> torch.Tensor:
        standardized = (features - self.x_mean) / self.x_std
        seq = standardized.reshape(features.shape[0], self.channels, -1).transpose(1, 2)
        return self.net(seq) * self.z_std + self.z_mean + self.z_offset

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.link_space(features)
        return torch.exp(z) if self.log_link else z


def search_space(kind: NetKind, trial: Any) -> dict[str, Any]:
    common = {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "max_epochs": trial.suggest_int("max_epochs", 10, 40),
    }
    if kind == "lstm":
        return {**common, "hidden": trial.suggest_int("hidden", 8, 64, log=True), "layers": trial.suggest_int("layers", 1, 2)}
    return {
        **common,
        "d_model": trial.suggest_categorical("d_model", [16, 32]),
        "heads": trial.suggest_categorical("heads", [2, 4]),
        "layers": trial.suggest_int("layers", 1, 2),
        "ff": trial.suggest_categorical("ff", [32, 64, 128]),
    }


DEFAULT_PARAMS: dict[NetKind, dict[str, Any]] = {
    "lstm": {"lr": 2e-3, "weight_decay": 1e-4, "dropout": 0.1, "max_epochs": 20, "hidden": 16, "layers": 1},
    "transformer": {
        "lr": 2e-3, "weight_decay": 1e-4, "dropout": 0.1, "max_epochs": 20,
        "d_model": 16, "heads": 2, "layers": 1, "ff": 32,
    },
}


class TorchForecaster:
    def __init__(self, kind: NetKind, params: dict[str, Any], *, seed: int, link: str, channels: int = 1, gap: int = 0) -> None:
        self.kind = kind
        self.gap = gap
        self.params = params
        self.channels = channels
        self.seed = seed
        self.link = link
        self.module: Exported | None = None

    def _module(self, x_mean: np.ndarray, x_std: np.ndarray, z_mean: float, z_std: float) -> Exported:
        p, c = self.params, self.channels
        if self.kind == "lstm":
            net: nn.Module = LSTMNet(c, p["hidden"], p["layers"], p["dropout"])
        else:
            net = TransformerNet(c, x_mean.shape[0] // c, p["d_model"], p["heads"], p["layers"], p["ff"], p["dropout"])
        return Exported(net, c, x_mean, x_std, z_mean, z_std, self.link)

    def fit(self, X: np.ndarray, z: np.ndarray) -> None:
        torch.set_num_threads(TORCH_THREADS)
        torch.manual_seed(self.seed)
        x_mean, x_std = X.mean(axis=0), X.std(axis=0) + 1e-8
        z_mean, z_std = float(z.mean()), float(z.std() + 1e-8)
        module = self._module(x_mean, x_std, z_mean, z_std)
        rows = holdout(len(X), self.gap, separate_offset=self.link == "log")
        xs = torch.tensor(X, dtype=torch.float32)
        zs = torch.tensor((z - z_mean) / z_std, dtype=torch.float32).unsqueeze(-1)
        optimizer = torch.optim.AdamW(module.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"])
        generator = torch.Generator().manual_seed(self.seed)

        def standardized(rows: slice | torch.Tensor) -> torch.Tensor:
            return (module.link_space(xs[rows]) - module.z_mean) / module.z_std

        best_loss, best_state, stale = math.inf, copy.deepcopy(module.state_dict()), 0
        for _ in range(self.params["max_epochs"]):
            module.train()
            for idx in torch.randperm(rows.fit.stop, generator=generator).split(BATCH):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(standardized(idx), zs[idx])
                loss.backward()
                optimizer.step()
            module.eval()
            with torch.no_grad():
                held_out = float(nn.functional.mse_loss(standardized(rows.stop), zs[rows.stop]))
            if held_out < best_loss - 1e-6:
                best_loss, best_state, stale = held_out, copy.deepcopy(module.state_dict()), 0
            else:
                stale += 1
                if stale >= PATIENCE:
                    break
        module.load_state_dict(best_state)
        module.eval()
        if self.link == "log":
            with torch.no_grad():
                held_out_z = module.link_space(xs[rows.offset]).squeeze(-1).double().numpy()
            module.z_offset.fill_(log_link_offset(z[rows.offset], held_out_z))
        self.module = module

    @classmethod
    def from_onnx(cls, kind: NetKind, params: dict[str, Any], graph: onnx.ModelProto, *, seed: int, link: str, channels: int = 1) -> TorchForecaster:
        """The fitted forecaster whose `to_onnx()` is `graph`, weights read back from it.

        Lets a bundle's float model be exported again (for quantization) without a refit,
        which on another CPU does not reproduce the weights bit for bit. The exporter folds
        weights (transposes, LSTM gate order), so where each initializer element comes from
        is found by exporting the same architecture with every parameter element set to its
        own index. Raises ValueError unless re-exporting gives back `graph` exactly.
        """
        stored = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
        forecaster = cls(kind, params, seed=seed, link=link, channels=channels)
        module = forecaster._module(stored["x_mean"], stored["x_std"], float(stored["z_mean"]), float(stored["z_std"]))
        buffers = {name for name, _ in module.named_buffers()}
        with torch.no_grad():
            module.z_offset.fill_(float(stored["z_offset"]))
            parameters = list(module.parameters())
            total = sum(p.numel() for p in parameters)
            assert total < 2**24, "indices must be exact in float32"
            start = 0
            for p in parameters:
                p.copy_(torch.arange(start + 1, start + p.numel() + 1, dtype=torch.float32).reshape(p.shape))
                start += p.numel()
        module.eval()
        forecaster.module = module
        values, found = np.zeros(total, dtype=np.float32), np.zeros(total, dtype=bool)
        for init in forecaster.to_onnx().graph.initializer:
            if init.name in buffers or init.data_type != onnx.TensorProto.FLOAT:
                continue
            index = numpy_helper.to_array(init).ravel()
            if init.name not in stored or stored[init.name].size != index.size or not np.all((index >= 1) & (index <= total) & (index == np.round(index))):
                raise ValueError(f"{init.name}: not a pure rearrangement of parameters")
            values[index.astype(np.int64) - 1] = stored[init.name].ravel()
            found[index.astype(np.int64) - 1] = True
        if not found.all():
            raise ValueError(f"{int((~found).sum())} parameter values are not in the graph")
        with torch.no_grad():
            start = 0
            for p in parameters:
                p.copy_(torch.from_numpy(values[start : start + p.numel()].copy()).reshape(p.shape))
                start += p.numel()
        if forecaster.to_onnx().SerializeToString() != graph.SerializeToString():
            raise ValueError(f"the graph is not the export of a {kind} with these hyperparameters")
        return forecaster

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.module is not None, "fit first"
        with torch.no_grad():
            return self.module.link_space(torch.tensor(X, dtype=torch.float32)).squeeze(-1).double().numpy()

    def to_onnx(self, *, for_quantization: bool = False) -> onnx.ModelProto:
        """The graph; for quantization the LSTM is unrolled (see UnrolledLSTM), otherwise it
        stays one fused LSTM operator, several times faster for a single row."""
        assert self.module is not None, "fit first"
        size = int(self.module.x_mean.shape[0])
        exported = self.module
        if for_quantization and isinstance(self.module.net, LSTMNet):
            exported = copy.deepcopy(self.module)
            exported.net = UnrolledLSTM(self.module.net)
        return export_graph(exported, torch.zeros(2, size), {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})


def export_graph(module: nn.Module, example: torch.Tensor, dynamic_axes: dict[str, dict[int, str]],
                 input_name: str = INPUT_NAME) -> onnx.ModelProto:
    """`module` as an ONNX graph with one input and the output `prediction`.

    The TorchScript-based exporter (dynamo=False), chosen explicitly because torch 2.9
    defaults to the dynamo exporter: that one targets opset 18 (ours is 17, with IR 8 for
    onnxruntime-node), takes dynamic sequence lengths only as torch.export shape constraints,
    and cannot trace a TorchScript module (an imported `.pt`); the TorchScript exporter is
    the one every shipped bundle was made with. Also used for imported models
    (importer/sequence.py)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about Python-side shape arithmetic and LSTM batch sizes; the
        # exported graph is checked against the native model on real rows instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto
