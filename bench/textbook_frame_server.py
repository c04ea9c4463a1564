"""The textbook server for the benchmark's DataFrame model: FastAPI, pydantic, a pandas
DataFrame and one ``predict_proba`` per request. Serves ``$MODEL_PATH`` on ``POST /predict``."""

from __future__ import annotations

import os

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel


class Instance(BaseModel):
    plan: str
    region: str
    seats: int
    monthly_spend: float
    tenure_months: float
    support_tickets: int


class PredictRequest(BaseModel):
    instances: list[Instance]


app = FastAPI()
model = joblib.load(os.environ["MODEL_PATH"])


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
def predict(request: PredictRequest) -> dict[str, list]:
    frame = pd.DataFrame([i.model_dump() for i in request.instances])
    proba = model.predict_proba(frame)
    return {"predictions": proba.argmax(axis=1).tolist(), "probabilities": proba.tolist()}
