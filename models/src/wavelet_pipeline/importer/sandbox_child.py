"""The confined child process that unpickles a guide user's pickles (`import --allow-pickle`).

Unpickling runs whatever code the file names, so it happens only here, in a process that
the parent (sandbox.py) starts as ``unshare --net --mount --pid --fork --kill-child
--mount-proc --propagation private python -m wavelet_pipeline.importer.sandbox_child JOB``:
a network namespace with nothing but a downed loopback, its own mount and PID namespaces.
Before it reads a pickle, this process, still root with every capability, confines itself:

0. it checks that its mount, network and PID namespaces are not its parent's, and touches
   no mount otherwise (run outside unshare, pivot_root would move the host's root);
1. it builds a new root on an empty tmpfs holding only what unpickling needs, each
   read-only, nosuid and nodev: /usr and the /bin, /lib* links, the dynamic loader's cache
   /etc/passwd, /etc/group and /etc/nsswitch.conf (nothing else of /etc), the Python install
   and venv, this package, the pickles themselves; its output directory (the only
   writable place, noexec), a few harmless devices (/dev/null, zero, full, random,
   urandom: nodev everywhere else, so no raw disk can be opened) and a fresh read-only
   /proc of its PID namespace. It pivots into that root and detaches the old one, so the
   rest of the machine (home directories, credentials, the work trees, /tmp, sockets of
   other services) is not there to read, let alone write;
2. every mount is private to its namespace: the host's mounts are untouched;
3. it drops every capability (bounding set, ambient, effective, permitted, inheritable) and
   locks the securebits, so it can neither remount, nor enter another namespace, nor regain
   root powers by exec; ``no_new_privs`` is set. It stays uid 0 (root-owned files inside
   the new root stay readable, which Python needs; nothing else is there);
4. a seccomp filter refuses ``socket`` (a Unix socket on a read-only mount can still be
   connected to, e.g. a container runtime's), io_uring, ptrace, namespaces, mounts, BPF,
   keyrings and kernel modules.

It checks each step took (capabilities all zero, seccomp on, only ``lo`` in /proc/net/dev)
and exits non-zero without reading any pickle otherwise: the sandbox fails closed. Then it
converts each pickle to a safe format in the output directory (an XGBoost model to UBJSON,
ensemble weights to JSON, a scikit-learn ensemble to skops, a torch module to TorchScript or a state dict) and writes
``result.json``. The parent trusts none of it: it loads the safe files with the safe
loaders as it would the user's own, after the child and its PID namespace are gone.

Only the standard library and numpy are imported before confinement.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MNT_DETACH = 2
SAFE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
# What the dynamic loader and Python's standard library read from /etc; nothing secret.
ETC_FILES = ("/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

PR_SET_SECUREBITS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 28, 24, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER = 4, 2
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS, NO_CAP_AMBIENT_RAISE and each one's lock.
SECUREBITS = 0b1 | 0b10 | 0b100 | 0b1000 | 0b10000 | 0b100000 | 0b1000000 | 0b10000000
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# (audit arch, syscall numbers refused with EPERM) per machine.
DENIED_SYSCALLS = {
    "x86_64": (0xC000003E, {
        "socket": 41, "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321,
        "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249, "io_uring_setup": 425,
        "open_by_handle_at": 304, "init_module": 175, "finit_module": 313, "kexec_load": 246, "userfaultfd": 323,
    }),
    "aarch64": (0xC00000B7, {
        "socket": 198, "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "bpf": 280,
        "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218, "io_uring_setup": 425,
        "open_by_handle_at": 265, "init_module": 105, "finit_module": 273, "kexec_load": 104, "userfaultfd": 282,
    }),
}
X32_SYSCALL_BIT = 0x40000000
RESULT = "result.json"


class SandboxSetupError(RuntimeError):
    """Confinement did not take: no pickle may be read."""


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxSetupError(f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int, fstype: str | None = None, data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                       data and data.encode()), f"mount {target}")


def _bind(source: str, root: str, flags: int) -> None:
    """`source` (a file or directory) at the same path under `root`, then remounted with
    `flags` (a bind mount takes the flags only on a remount)."""
    target = root + source
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(os.path.realpath(source), target, MS_BIND)
    _mount(None, target, MS_REMOUNT | MS_BIND | flags)


def confine_filesystem(root: Path, writable: Path, readable: list[str]) -> None:
    """Pivot into a new root on a tmpfs at `root` (an empty directory) that holds only the
    system's programs and libraries, Python, this package and `readable`, all read-only,
    and `writable`, the one writable (noexec) directory."""
    new = str(root.resolve())
    _mount("tmpfs", new, MS_NOSUID | MS_NODEV, "tmpfs", "size=16m,mode=755")
    package = str(Path(__file__).resolve().parents[2])
    wanted = sorted({*SYSTEM, *ETC_FILES, sys.base_prefix, sys.prefix, sys.exec_prefix, package, *readable})
    bound: list[str] = []
    for path in wanted:
        if not os.path.lexists(path) or any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound):
            continue  # absent, or already visible (read-only) through a directory bound before it
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin and the like
            os.symlink(os.readlink(path), new + path)
            continue
        _bind(path, new, MS_RDONLY | MS_NOSUID | MS_NODEV)
        bound.append(path)
    out = str(writable.resolve())
    if any(out.startswith(b.rstrip("/") + "/") for b in bound):
        raise SandboxSetupError(f"the output directory {out} lies inside a read-only path")
    _bind(out, new, MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for device in SAFE_DEVICES:
        if os.path.exists(device):
            _bind(device, new, MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    os.makedirs(new + "/proc")
    _mount("proc", new + "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "proc")
    os.makedirs(new + "/.old")
    machine = platform.machine()
    if machine not in PIVOT_ROOT:
        raise SandboxSetupError(f"no pivot_root number for {machine}")
    _check(_libc.syscall(PIVOT_ROOT[machine], new.encode(), (new + "/.old").encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "detach the old root")
    os.rmdir("/.old")
    _mount(None, "/", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges() -> None:
    """No capability left, none to regain by exec, no new privileges, the seccomp filter on."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 30, 4 << 30))  # one file at most 4 GiB
    _check(_libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0), "securebits")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    setpcap = 8  # CAP_SETPCAP, needed to drop the others from the bounding set: last
    for cap in [c for c in range(last + 1) if c != setpcap] + [setpcap]:
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}, all zero
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _install_seccomp()


def _install_seccomp() -> None:
    machine = platform.machine()
    if machine not in DENIED_SYSCALLS:
        raise SandboxSetupError(f"no seccomp filter for {machine}")
    arch, denied = DENIED_SYSCALLS[machine]
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    kill, allow, eperm = 0x80000000, 0x7FFF0000, 0x00050000 | 1
    program = [(ld_abs, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld_abs, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI's numbers would slip past the list
        program += [(jge, 0, 1, X32_SYSCALL_BIT), (ret, 0, 0, eperm)]
    for number in sorted(denied.values()):
        program += [(jeq, 0, 1, number), (ret, 0, 0, eperm)]
    program.append((ret, 0, 0, allow))

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*[Filter(*instruction) for instruction in program])
    prog = Program(len(program), filters)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def check_confinement() -> None:
    """Fail closed unless every promise holds, as the kernel reports it."""
    status = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status[key], 16) != 0:
            raise SandboxSetupError(f"{key} is {status[key].strip()}, not 0")
    if status.get("Seccomp", "").strip() != "2" or status.get("NoNewPrivs", "").strip() != "1":
        raise SandboxSetupError("seccomp filter or no_new_privs not in force")
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    if interfaces != ["lo"]:
        raise SandboxSetupError(f"network namespace has interfaces {interfaces}, expected only lo")


def _xgboost(task: dict[str, Any], rows: np.ndarray, out: Path) -> dict[str, Any]:
    import xgboost as xgb

    with open(task["file"], "rb") as f:
        model = pickle.load(f)
    target = out / "xgboost_optimized.ubj"
    if isinstance(model, xgb.XGBModel):
        model.save_model(target)
        booster = model.get_booster()
        booster.feature_names = None
        predictions = model.predict(rows)
    elif isinstance(model, xgb.Booster):
        model.save_model(target)
        model.feature_names = None
        predictions = model.predict(xgb.DMatrix(rows))
    else:
        raise TypeError(f"it holds a {type(model).__module__}.{type(model).__qualname__}, not an XGBoost model")
    return {"file": target.name, "format": "xgboost-ubjson", "predictions": np.asarray(predictions, dtype=np.float64).ravel().tolist()}


def _ensemble(task: dict[str, Any], rows: np.ndarray, out: Path) -> dict[str, Any]:
    with open(task["file"], "rb") as f:
        value = pickle.load(f)
    if type(value).__module__.startswith("sklearn.ensemble") and type(value).__name__ in ("VotingRegressor", "StackingRegressor"):
        return _sklearn_ensemble(value, rows, out)
    weights = value.get("weights", value) if isinstance(value, dict) else getattr(value, "weights", None)
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise TypeError(f"it holds a {type(value).__module__}.{type(value).__qualname__} without a weights mapping "
                        "(expected {'weights': {member: weight}}, {member: weight} or an object with .weights)")
    target = out / "ensemble_optimized.json"
    target.write_text(json.dumps({"weights": {k: float(w) for k, w in weights.items()}}))
    return {"file": target.name, "format": "ensemble-weights"}


def _sklearn_ensemble(estimator: Any, rows: np.ndarray, out: Path) -> dict[str, Any]:
    """A scikit-learn VotingRegressor/StackingRegressor, written with skops: the parent audits
    and loads that file exactly as a user's own ensemble_optimized.skops (trusted types only);
    the estimator's answers here check the round trip."""
    import skops.io as sio

    target = out / "ensemble_optimized.skops"
    sio.dump(estimator, target)
    X: Any = rows.astype(np.float32).astype(np.float64)  # the values the parent's checks use
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        X = pd.DataFrame(X, columns=list(names))
    result: dict[str, Any] = {"file": target.name, "format": "sklearn-skops"}
    try:
        result["predictions"] = np.asarray(estimator.predict(X), dtype=np.float64).ravel().tolist()
    except ValueError as exc:  # e.g. another feature count: the parent's checks say so by name
        result["note"] = f"predict failed here: {exc}"[:300]
    return result


def _torch_module(task: dict[str, Any], rows: np.ndarray, out: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    value = torch.load(task["file"], weights_only=False, map_location="cpu")
    name, (length, size) = task["name"], task["shape"]
    if isinstance(value, dict):  # a checkpoint whose extras (optimizer, numpy scalars) weights_only refuses
        for key in ("state_dict", "model_state_dict", "model"):
            inner = value.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(t, torch.Tensor) for t in inner.values()):
                target = out / f"{name}_optimized.pth"
                torch.save({k: t.detach().clone() for k, t in inner.items()}, target)
                return {"file": target.name, "format": "torch-state-dict", "note": f"the checkpoint's {key!r} entry"}
        raise TypeError("it holds a dict with no state dict under 'state_dict', 'model_state_dict' or 'model'")
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"it holds a {type(value).__module__}.{type(value).__qualname__}, not a torch module")
    # Both safe forms: the parent loads the state dict into a documented architecture when
    # the config describes one, else the TorchScript; the module's own answers check either.
    module = value.eval()
    state = out / f"{name}_optimized.pth"
    torch.save({k: t.detach().clone() for k, t in module.state_dict().items()}, state)
    seq = torch.from_numpy(rows.astype(np.float32)).reshape(-1, length, size)
    result: dict[str, Any] = {"state_dict": state.name}
    with torch.no_grad():
        result["predictions"] = module(seq).detach().double().reshape(-1).tolist()
        try:
            scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.trace(module, seq[:2], check_trace=False)
            scripted.save(str(out / f"{name}_optimized.pt"))
        except Exception as exc:  # e.g. a forward that returns a dict: the state dict may still serve
            return {**result, "file": state.name, "format": "torch-state-dict", "note": f"torch.jit.trace failed: {exc}"[:300]}
    note = "traced with torch.jit.trace" if scripted is not module else "already TorchScript"
    return {**result, "file": f"{name}_optimized.pt", "format": "torchscript", "note": note}


CONVERTERS = {"xgboost": _xgboost, "ensemble": _ensemble, "torch-module": _torch_module}


def check_namespaces(parent: dict[str, str]) -> None:
    """Refuse to touch any mount unless this process is in new mount, network and PID
    namespaces: run outside unshare, pivot_root would change the root of every process
    in the parent's mount namespace."""
    for kind in ("mnt", "net", "pid"):
        if os.readlink(f"/proc/self/ns/{kind}") == parent[kind]:
            raise SandboxSetupError(f"not in a {kind} namespace of its own (run it only through sandbox.convert)")
    if os.getpid() != 1:
        raise SandboxSetupError("not the first process of its own PID namespace")


def main(argv: list[str]) -> int:
    job = json.loads(argv[1])
    out = Path(job["out"])
    try:
        check_namespaces(job["namespaces"])
        confine_filesystem(Path(job["root"]), out, job["read"])
        drop_privileges()
        check_confinement()
    except (SandboxSetupError, OSError) as exc:
        print(f"sandbox: could not be set up, no pickle was read: {exc}", file=sys.stderr)
        return 3
    rows = np.load(out / "rows.npy", allow_pickle=False)
    results: dict[str, Any] = {}
    for task in job["tasks"]:
        try:
            results[task["name"]] = CONVERTERS[task["kind"]](task, rows, out)
        except Exception as exc:  # the user's pickle: any failure is reported, not raised
            results[task["name"]] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    (out / RESULT).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
