"""A guide user's models, imported, served by the real server (`node server/dist/server.js`):
its answers equal the original frameworks' (XGBoost's own predict, torch's forward,
scikit-learn's for a skops ensemble) for vectors, objects keyed by feature name, batches and
streams, per model, to 1e-5 relative.

Needs the server built (`npx tsc -b`, which `make test` does before pytest)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import byom_fixtures as fx
from wavelet_pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "dist" / "server.js"
# Every model of the guide's layout, and a TorchScript GRU: served under its own name.
MODELS = ("xgboost", "lstm", "transformer", "gru", "ensemble")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: object) -> tuple[int, bytes]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Served:
    def __init__(self, url: str, trained: fx.Trained, ensemble: str) -> None:
        self.url, self.trained, self.ensemble = url, trained, ensemble

    def framework(self, model: str, rows: np.ndarray) -> np.ndarray:
        # The skops ensemble answers as its scikit-learn estimator does.
        return self.trained.predict(self.ensemble if model == "ensemble" and self.ensemble != "weights" else model, rows)


# The ensemble as weights over the members, or a scikit-learn StackingRegressor saved with skops.
@pytest.fixture(scope="module", params=["weights", "stacking"])
def served(request: pytest.FixtureRequest, trained: fx.Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the server cannot run")
    assert SERVER.exists(), f"{SERVER} is missing: build the server first (npx tsc -b)"
    root = tmp_path_factory.mktemp("serving")
    guide = fx.write_layout(root / "guide", trained, skops_ensemble=None if request.param == "weights" else request.param)
    assert main(["import", str(guide), "--name", "byom", "--version", "1.0.0", "--out", str(root / "bundle")]) == 0
    port = _free_port()
    env = {**os.environ, "MODEL_DIR": str(root / "bundle"), "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warn",
           "RATE_LIMIT_MAX": "0", "CACHE_TTL": "0"}
    env.pop("MODELS", None)
    server = subprocess.Popen(["node", str(SERVER)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"the server exited {server.returncode}: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as res:
                    if res.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server was not ready within 60 s"
            time.sleep(0.2)
        yield Served(url, trained, request.param)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _close(got: list[float], want: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("model", MODELS)
def test_the_server_answers_what_the_framework_does(served: Served, model: str) -> None:
    url = served.url
    rows = np.random.default_rng(7).standard_normal((6, len(fx.NAMES)))
    want = served.framework(model, rows)
    named = [dict(reversed(list(zip(fx.NAMES, map(float, row))))) for row in rows]  # keys in reverse: names, not positions

    for form, features in (("vector", [list(map(float, row)) for row in rows]), ("named", named)):
        answers = []
        for one in features:
            status, body = _post(f"{url}/predict", {"features": one, "model_type": model})
            assert status == 200, body
            answers.append(json.loads(body)["prediction"])
        _close(answers, want, f"{model} /predict {form}")

    status, body = _post(f"{url}/predict/batch", {"samples": [named[0], *[list(map(float, r)) for r in rows[1:]]], "model_type": model})
    assert status == 200, body
    _close(json.loads(body)["predictions"], want, f"{model} /predict/batch")

    status, body = _post(f"{url}/predict/stream", {"features": named, "model_type": model})
    assert status == 200, body
    lines = [json.loads(line) for line in body.decode().splitlines() if line]
    assert lines[-1] == {"done": True, "count": len(rows)}
    _close([line["prediction"] for line in lines[:-1]], want, f"{model} /predict/stream")


def test_models_lists_the_feature_names_and_prices_are_refused(served: Served) -> None:
    url = served.url
    with urllib.request.urlopen(f"{url}/models", timeout=10) as res:
        listed = json.loads(res.read())
    assert listed["features"]["names"] == fx.NAMES
    status, body = _post(f"{url}/predict", {"prices": [100.0 + i for i in range(60)]})
    assert status == 400 and json.loads(body)["error"] == "features_required", body
