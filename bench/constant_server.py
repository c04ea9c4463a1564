"""The ceiling for a Python HTTP server here: a FastAPI endpoint that reads the request body
and returns a constant."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

app = FastAPI()
ANSWER = b'{"predictions":[0],"probabilities":[[0.9,0.1]]}'


@app.get("/health")
async def health() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.post("/predict")
async def predict(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")
