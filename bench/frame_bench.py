"""The DataFrame model of the serving benchmark: a user's pipeline with string categoricals.

A ``ColumnTransformer`` (``OneHotEncoder`` on two string columns, ``StandardScaler`` on the
numbers) before 150 boosted trees, fitted on generated customer data, bundled with
``bundle_model`` as a user would. Served by ours, by MLServer's scikit-learn runtime from the
same joblib file with its pandas codec (one V2 input per column, ``BYTES`` for strings,
``parameters.content_type = "pd"``), and by the textbook server (a pandas DataFrame per
request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchlib import MODEL_NAME, Server, free_port, lua_script, mlserver_folder, uvicorn_cmd

FRAME_NAME = "churn-predictor"
FRAME_ROW: dict[str, Any] = {
    "plan": "pro",
    "region": "eu-west",
    "seats": 12,
    "monthly_spend": 840.5,
    "tenure_months": 7.5,
    "support_tickets": 3,
}
PLANS = ("free", "basic", "pro", "enterprise")
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south")


def frame_data(rows: int, seed: int = 0) -> Any:
    """Generated customers with a churn label that depends on every column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, rows, p=[0.3, 0.35, 0.25, 0.1])
    region = rng.choice(REGIONS, rows)
    seats = rng.integers(1, 200, rows)
    spend = np.round(rng.gamma(2.0, 400.0, rows), 2)
    tenure = np.round(rng.exponential(18.0, rows), 1)
    tickets = rng.poisson(2.0, rows)
    logit = (
        -0.8
        + 0.9 * (plan == "free")
        - 0.6 * (plan == "enterprise")
        + 0.4 * (region == "ap-south")
        - 0.03 * tenure
        + 0.35 * tickets
        - 0.0004 * spend
        - 0.004 * seats
    )
    churn = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "plan": plan.astype(object),
            "region": region.astype(object),
            "seats": seats.astype(np.int64),
            "monthly_spend": spend,
            "tenure_months": tenure,
            "support_tickets": tickets.astype(np.int64),
            "churned": churn,
        }
    )


def frame_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["seats", "monthly_spend", "tenure_months", "support_tickets"]
    return Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("strings", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
                        ("numbers", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("model", GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=0)),
        ]
    )


def build_frame_bundle(folder: Path) -> tuple[Path, str]:
    """Fit the pipeline and bundle it with ``bundle_model``; returns the bundle and its pin."""
    from modeldeploy.server.bundling import bundle_model

    data = frame_data(4000)
    model = frame_pipeline().fit(data.drop(columns="churned"), data["churned"])
    _, sha = bundle_model(
        model, data, "churned", name=FRAME_NAME, version="1", out=folder / "frame-bundle"
    )
    return folder / "frame-bundle", sha


def v2_pandas_body(row: dict[str, Any]) -> bytes:
    """One row as MLServer's pandas codec takes it: one input per column."""
    inputs = []
    for name, value in row.items():
        datatype = "BYTES" if isinstance(value, str) else "INT64" if type(value) is int else "FP64"
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    return json.dumps(
        {
            "parameters": {"content_type": "pd"},
            "inputs": inputs,
            "outputs": [{"name": "predict_proba"}],
        }
    ).encode()


def frame_servers(
    tmp: Path, python: str, ours_cmd: Any, mlserver: Path | None
) -> tuple[list[Server], Path, str]:
    """The DataFrame model's servers: ours, MLServer (when installed), textbook."""
    from modeldeploy.server.contract import MODEL_FILE

    bundle, sha = build_frame_bundle(tmp)
    body = json.dumps({"instances": [FRAME_ROW]}).encode()
    script = lua_script(tmp / "frame.lua", body)
    servers = []
    port = free_port()
    servers.append(
        Server(
            "ours-frame",
            ours_cmd(port, bundle=bundle, sha=sha),
            f"http://127.0.0.1:{port}/v2/health/ready",
            f"http://127.0.0.1:{port}/predict",
            script,
            body,
        )
    )
    if mlserver is not None:
        port = free_port()
        v2 = v2_pandas_body(FRAME_ROW)
        folder = mlserver_folder(tmp / "mlserver-frame", bundle / MODEL_FILE, port)
        servers.append(
            Server(
                "mlserver-frame",
                [str(mlserver), "start", str(folder)],
                f"http://127.0.0.1:{port}/v2/health/ready",
                f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer",
                lua_script(tmp / "frame-v2.lua", v2),
                v2,
            )
        )
    port = free_port()
    servers.append(
        Server(
            "textbook-frame",
            uvicorn_cmd(python, "textbook_frame_server:app", port),
            f"http://127.0.0.1:{port}/health",
            f"http://127.0.0.1:{port}/predict",
            script,
            body,
            {"MODEL_PATH": str(bundle / MODEL_FILE)},
        )
    )
    return servers, bundle, sha
