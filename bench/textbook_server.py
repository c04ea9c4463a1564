"""The textbook model server, for comparison: FastAPI, pydantic, a pandas DataFrame and one
``predict_proba`` per request. Serves ``$MODEL_PATH`` (a joblib file) on ``POST /predict``."""

from __future__ import annotations

import os
import warnings

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

# The example pipeline was fitted on arrays; sklearn would warn on every DataFrame call.
warnings.filterwarnings("ignore", message="X has feature names")

FEATURES = ["request_rate", "error_pct", "p99_latency_ms", "deploy_hour", "is_weekend"]


class Instance(BaseModel):
    request_rate: float
    error_pct: float
    p99_latency_ms: float
    deploy_hour: int
    is_weekend: int


class PredictRequest(BaseModel):
    instances: list[Instance]


app = FastAPI()
model = joblib.load(os.environ["MODEL_PATH"])


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
def predict(request: PredictRequest) -> dict[str, list]:
    frame = pd.DataFrame([i.model_dump() for i in request.instances], columns=FEATURES)
    proba = model.predict_proba(frame)
    return {"predictions": proba.argmax(axis=1).tolist(), "probabilities": proba.tolist()}
