"""Users' own models for the tests: fitted here, on generated DataFrames or sklearn's data.

- ``churn``: binary, string labels, a DataFrame with string (``plan``, ``region``), boolean,
  integer and float columns (one name with a space), a Pipeline with a ColumnTransformer
  (OneHotEncoder + StandardScaler) before a gradient-boosted tree ensemble;
- ``iris``: multiclass with string labels, columns named as sklearn ships them
  (``"sepal length (cm)"``: spaces and parentheses);
- ``diabetes``: regression fitted on a plain array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PLANS = ("free", "pro", "enterprise")
REGIONS = ("eu", "us", "apac")


def churn_frame(rows: int, seed: int = 0, plan_p: tuple[float, ...] = (0.5, 0.3, 0.2)) -> Any:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(PLANS, rows, p=plan_p),
            "region": rng.choice(REGIONS, rows),
            "monthly fee": rng.gamma(2.0, 20.0, rows).round(2),
            "has_support": rng.random(rows) < 0.3,
            "tickets": rng.poisson(2.0, rows).astype(np.int64),
        }
    )
    logit = (
        -1.0
        + 0.6 * frame["tickets"]
        - 1.2 * (frame["plan"] == "enterprise")
        - 0.8 * frame["has_support"]
        + 0.01 * frame["monthly fee"]
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    frame["churned"] = np.where(rng.random(rows) < p, "yes", "no")
    return frame


def churn_pipeline(seed: int = 0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ("numbers", StandardScaler(), ["monthly fee", "tickets"]),
        ],
        remainder="passthrough",
    )
    model = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=seed)
    return Pipeline([("pre", pre), ("model", model)])


def fitted_churn(seed: int = 0) -> tuple[Any, Any]:
    frame = churn_frame(1500, seed=seed)
    model = churn_pipeline(seed).fit(frame.drop(columns="churned"), frame["churned"])
    return model, frame


def fitted_iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["species"] = np.asarray(data.target_names)[data.target].astype(object)
    model = RandomForestClassifier(n_estimators=30, random_state=0)
    model.fit(frame.drop(columns="species"), frame["species"])
    return model, frame


def fitted_diabetes() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.5).fit(x, y)
    return model, x, y
