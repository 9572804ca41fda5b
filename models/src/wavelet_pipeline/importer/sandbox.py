"""Converting pickles to safe formats in a confined child process (`import --allow-pickle`).

The child (sandbox_child.py) runs under ``unshare(1)`` (Python 3.11 has no os.unshare) in
new network, mount and PID namespaces, pivots into a root of its own (read-only system
libraries, Python and the pickles; one writable output directory), drops every capability
and installs a seccomp filter before it reads a pickle.
Whatever it leaves in its output directory is untrusted: only regular files (no symlinks)
with the expected names are taken, after the child's PID namespace is gone, and they are
loaded with the same safe loaders as a user's own safe files.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ImportRefused
from .sandbox_child import RESULT

TIMEOUT_SECONDS = 600
SRC = Path(__file__).resolve().parents[2]
UNSHARE = ("--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private")
HOW = ("in a child process with no network (its own network namespace), a filesystem of its own (system libraries, "
       "Python and the pickles, read-only; one writable output directory), no capabilities and a seccomp filter that "
       "refuses sockets")


@dataclass(frozen=True)
class PickleTask:
    """One pickle to convert: kind is "xgboost", "ensemble" or "torch-module"; shape is
    (sequence_length, input_size), how a torch module is called."""

    kind: str
    name: str
    file: Path
    shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class Converted:
    """A safe file the child wrote (in a directory the parent owns), and what it said."""

    path: Path
    format: str
    note: str | None
    predictions: np.ndarray | None  # the unpickled model's own answers on the parity rows
    state_dict: Path | None = None  # a torch module's weights, beside its TorchScript


def convert(tasks: list[PickleTask], rows: np.ndarray, workdir: Path) -> dict[str, Converted]:
    """Run the child on every task; returns the converted file of each (by model name).

    Refuses (ImportRefused) when the sandbox cannot be set up (fail closed: nothing is
    unpickled outside it) or a pickle does not convert."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        raise ImportRefused("--allow-pickle needs Linux with unshare(1) (util-linux) to confine the child process; not found, "
                            "so no pickle was read")
    sandbox = Path(tempfile.mkdtemp(prefix="wavelet-import-sandbox-"))
    out, root = sandbox / "out", sandbox / "root"  # the child's one writable directory; its new root's mount point
    try:
        out.mkdir()
        root.mkdir()
        np.save(out / "rows.npy", np.ascontiguousarray(rows, dtype=np.float64), allow_pickle=False)
        files = [str(t.file.resolve()) for t in tasks]
        namespaces = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "net", "pid")}
        job = {"out": str(out), "root": str(root), "read": files, "namespaces": namespaces, "tasks": [
            {"kind": t.kind, "name": t.name, "file": f, "shape": list(t.shape) if t.shape else None} for t, f in zip(tasks, files)
        ]}
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "HOME": str(out), "TMPDIR": str(out), "USER": "root",
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "JOBLIB_MULTIPROCESSING": "0"}
        print(f"import: unpickling {', '.join(t.file.name for t in tasks)} {HOW}", file=sys.stderr)
        try:
            proc = subprocess.run(
                [unshare, *UNSHARE, "--", sys.executable, "-m", "wavelet_pipeline.importer.sandbox_child", json.dumps(job)],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise ImportRefused(f"the sandboxed pickle conversion did not finish in {TIMEOUT_SECONDS} s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:400]
            raise ImportRefused(f"the sandboxed pickle conversion failed (exit {proc.returncode}): {last}")
        results = json.loads(_regular(out / RESULT).read_text())
        converted = {}
        for task in tasks:
            result = results.get(task.name) if isinstance(results, dict) else None
            if not isinstance(result, dict) or "error" in result or not isinstance(result.get("file"), str):
                why = str(result.get("error")) if isinstance(result, dict) else "no result"
                if why.startswith(("ModuleNotFoundError", "AttributeError: Can't get attribute")):
                    why += (" (a pickle names the code of its classes, and that code is not importable here: save the "
                            "model's state_dict() with a config, or torch.jit.script/trace it to a .pt file)")
                raise ImportRefused(f"{task.file.name}: could not be converted in the sandbox: {why}")
            source = _regular(out / Path(result["file"]).name)
            kept = workdir / f"converted-{source.name}"
            shutil.copyfile(source, kept, follow_symlinks=False)
            state = None
            if isinstance(result.get("state_dict"), str) and task.kind == "torch-module":
                state = workdir / f"converted-{task.name}-state.pth"
                shutil.copyfile(_regular(out / Path(result["state_dict"]).name), state, follow_symlinks=False)
            predictions = result.get("predictions")
            converted[task.name] = Converted(
                kept, str(result.get("format")), result.get("note") if isinstance(result.get("note"), str) else None,
                np.asarray(predictions, dtype=np.float64) if isinstance(predictions, list) else None, state,
            )
        return converted
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def _regular(path: Path) -> Path:
    """`path` if it is a regular file (not a symlink the child planted to make us read elsewhere)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise ImportRefused(f"the sandboxed pickle conversion left no {path.name}") from None
    if not stat.S_ISREG(mode):
        raise ImportRefused(f"the sandboxed pickle conversion left {path.name} as something other than a regular file")
    return path


def describe(converted: Converted, used: str | None = None) -> dict[str, Any]:
    """The manifest's record of a conversion (`used`: which safe form was imported, if not
    the one the child preferred)."""
    note = converted.note if used in (None, converted.format) else None
    return {"converted_to": used or converted.format, "converted_by": f"unpickled {HOW}", **({"note": note} if note else {})}
