"""The original guide's stack, as a baseline: FastAPI + uvicorn + onnxruntime serving the same
ONNX files of a bundle. Single-row /predict only; async handler so uvicorn runs it on its
event loop (its fastest path for sub-millisecond work).

    MODEL_DIR=models/bundles/spx-return-1d uvicorn reference_server:app --port 8100
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

bundle = Path(os.environ["MODEL_DIR"])
manifest = json.loads((bundle / "manifest.json").read_text())
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
sessions = {
    name: ort.InferenceSession(str(bundle / manifest["models"][name]["file"]), options, providers=["CPUExecutionProvider"])
    for name in ("xgboost", "lstm", "transformer", "ensemble")
}
window = manifest["features"]["window"]
app = FastAPI()


class PredictRequest(BaseModel):
    features: list[float]
    model_type: Literal["xgboost", "lstm", "transformer", "ensemble"] = "ensemble"


@app.post("/predict")
async def predict(request: PredictRequest) -> dict[str, object]:
    if len(request.features) != window:
        raise HTTPException(400, f"features: expected {window} values")
    x = np.asarray(request.features, dtype=np.float32).reshape(1, window)
    y = sessions[request.model_type].run(None, {"features": x})[0]
    return {"prediction": float(y[0, 0]), "model_type": request.model_type}
