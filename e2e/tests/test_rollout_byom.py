"""Bring your own model, end to end on the real cluster: a user's scikit-learn Pipeline (a
ColumnTransformer with a OneHotEncoder and a scaler, fitted on a DataFrame with string,
boolean, integer and float columns) is bundled by the real `modeldeploy bundle` command,
served from the cluster, rolled out as a canary under live traffic and promoted; a third
version, bundled with a reference in which one plan dominates, is rolled back by
ModelFeatureDrift on that categorical feature. No request is lost, and the answers the cluster
served are the pipeline's own predictions."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e import stack as st
from e2e.cluster.api import Cluster
from e2e.fileserver import serve_files
from e2e.observer import Observer
from e2e.traffic import Answered, dataframe_rows, predict, records_of

from .rollout_env import Env, assert_none_lost, make_env

pytestmark = pytest.mark.cluster

NAME = "churn"  # the model's name and the ModelDeployment's
TARGET = "churned"
PLANS = ("free", "pro", "enterprise")
REGIONS = ("eu", "us", "apac")
LIVE_PLANS = (0.5, 0.3, 0.2)  # the plan mix of live traffic and of v1's and v2's data
SKEWED_PLANS = (0.05, 0.05, 0.9)  # v3's data: a month in which enterprise customers dominated
NUMERIC = ("seats", "monthly_spend")
FEATURES = ("plan", "region", "autopay", *NUMERIC)
# Training rows: two retrains' mean predictions on live traffic differ by well under the
# divergence rule's 4 standard errors (measured 0.4 for v1 and v2, 1.8 for v3 at a full
# minute of a 25% canary), and the three fits take a few seconds.
ROWS = 20_000


def customers(rows: int, seed: int, plans: tuple[float, ...] = LIVE_PLANS) -> Any:
    """Seeded synthetic subscriptions: string ``plan`` and ``region``, boolean ``autopay``,
    integer ``seats``, float ``monthly_spend``, and whether the customer ``churned``. Only
    the plan mix changes with ``plans``: the other columns are drawn the same way, so a model
    trained on skewed plans sees no numeric drift in live traffic."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(PLANS, rows, p=plans),
            "region": rng.choice(REGIONS, rows),
            "autopay": rng.random(rows) < 0.4,
            "seats": rng.poisson(5.0, rows).astype(np.int64),
            "monthly_spend": rng.gamma(2.0, 40.0, rows).round(2),
        }
    )
    logit = (
        -1.0
        + 0.15 * frame["seats"]
        - 0.9 * (frame["plan"] == "enterprise")
        + 0.3 * (frame["plan"] == "free")
        - 0.7 * frame["autopay"]
        + 0.004 * frame["monthly_spend"]
    )
    churn = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    frame[TARGET] = np.where(churn, "yes", "no")
    return frame


def live_frame(rows: int, seed: int) -> Any:
    return customers(rows, seed + 1000)  # seeds no training set uses


def fit(frame: Any) -> Any:
    """The usual shape: one-hot strings, scaled numbers (the boolean as 0/1), boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prepare = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ("numbers", StandardScaler(), [*NUMERIC, "autopay"]),
        ]
    )
    trees = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)
    model = Pipeline([("prepare", prepare), ("model", trees)])
    return model.fit(frame.drop(columns=TARGET), frame[TARGET])


@dataclass(frozen=True)
class Built:
    model: Any
    archive: Path
    sha256: str


def bundle(folder: Path, version: str, frame: Any) -> Built:
    """Train on ``frame``, save as a user would (joblib, CSV) and bundle with the command."""
    import joblib

    model = fit(frame)
    joblib.dump(model, folder / f"{version}.joblib")
    frame.to_csv(folder / f"{version}-reference.csv", index=False)
    archive = folder / f"{NAME}-{version}.tar.gz"
    done = subprocess.run(
        [sys.executable, "-m", "modeldeploy", "bundle", str(folder / f"{version}.joblib")]
        + ["--data", str(folder / f"{version}-reference.csv"), "--target", TARGET]
        + ["--name", NAME, "--version", version, "--positive-class", "yes", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    sha256 = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", sha256), done.stdout
    return Built(model, archive, sha256)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    folder = tmp_path_factory.mktemp("byom")
    return {
        "v1": bundle(folder, "v1", customers(ROWS, 1)),
        "v2": bundle(folder, "v2", customers(ROWS, 2)),  # a good retrain
        "v3": bundle(folder, "v3", customers(ROWS, 3, SKEWED_PLANS)),
    }


@pytest.fixture(scope="module")
def env(cluster: Cluster, built: dict[str, Built]) -> Iterator[Env]:
    pins = {v: (b.archive, b.sha256) for v, b in built.items()}
    with make_env(cluster, bundles=lambda c, ns: serve_files(c, ns, pins, NAME)) as e:
        assert {v: b.sha256 for v, b in e.bundles.items()} == {v: p[1] for v, p in pins.items()}
        yield e


def assert_pipelines_answer(answered: list[Answered], built: dict[str, Built]) -> None:
    """Every kept answer equals the answering version's own pipeline on the same rows."""
    import pandas as pd

    for a in answered:
        model = built[a.version].model
        frame = pd.DataFrame(a.records)[list(model.feature_names_in_)]
        assert a.answer["predictions"] == model.predict(frame).tolist(), a
        assert a.answer["classes"] == model.classes_.tolist(), a
        served, expected = a.answer["probabilities"], model.predict_proba(frame).tolist()
        assert [len(p) for p in served] == [len(p) for p in expected], a
        flat = [p for row in served for p in row]
        assert flat == pytest.approx([p for row in expected for p in row], rel=1e-9), a


def fired_drift(env: Env, version: str) -> set[str]:
    """Features whose ModelFeatureDrift alert fired for ``version`` in the last 10 minutes
    (Prometheus keeps an alert's state as the ALERTS series)."""
    selector = (
        f'alertname="ModelFeatureDrift",alertstate="firing",namespace="{env.stack.namespace}",'
        f'modeldeployment="{NAME}",version="{version}"'
    )
    found = env.cluster.query(f"max by (feature) (max_over_time(ALERTS{{{selector}}}[10m]))")
    return {r["metric"]["feature"] for r in found}


def test_own_model_promoted_then_categorical_drift_rolled_back(
    env: Env, built: dict[str, Built]
) -> None:
    # 30 s analysis steps, as in the canary test: at 25% of 20 requests/s of 4 rows the
    # candidate serves well over the default analysis.minSamples (100) in a step.
    strategy = st.canary(25, 50, 75, analysis="30s")
    t0 = time.monotonic()

    def mark(what: str) -> None:  # the stages' times, shown with -s (for the README's figures)
        print(f"[byom] {time.monotonic() - t0:6.1f}s {what}")

    env.deploy(NAME, "v1", strategy)
    env.healthy(NAME, "v1")
    mark("v1 healthy")
    obs = Observer(env.stack, NAME)
    rows = dataframe_rows(live_frame, drop=(TARGET,))
    with env.traffic(NAME, rate=20, max_seconds=400, rows=rows, keep_answers=25) as traffic:
        obs.start()
        time.sleep(4)
        started = time.time()
        env.deploy(NAME, "v2", strategy)
        promoted = env.finished(NAME, "v2")
        assert promoted["outcome"] == "Promoted", promoted
        mark("v2 promoted")
        weights = [s.weight for s in obs.samples if s.candidate == "v2" and s.t >= started]
        seen = sorted(set(weights), key=weights.index)
        assert seen == [25, 50, 75, 100], weights  # every step, in order, none skipped
        assert st.status(env.stack, NAME)["stableVersion"] == "v2"

        env.deploy(NAME, "v3", strategy)
        rolled = env.finished(NAME, "v3")
        assert rolled["outcome"] == "RolledBack", rolled
        mark(f"v3 rolled back: {rolled['message']}")
        assert "ModelFeatureDrift" in rolled["message"], rolled
        assert "plan" in rolled["message"], rolled  # the categorical feature that drifted
        assert not any(f in rolled["message"] for f in FEATURES if f != "plan"), rolled
        status = st.status(env.stack, NAME)
        assert status["phase"] == "Degraded" and status["stableVersion"] == "v2", status
        assert status["canaryWeight"] == 0, status
        assert "RolledBack" in [e["reason"] for e in st.events(env.stack, NAME)]
        time.sleep(8)
        recent = traffic.recent_versions(4)
        assert set(recent) == {"v2"}, recent  # traffic is back on the stable only

        # a few rows of every plan and both autopay values, straight through the Service
        probe = live_frame(12, seed=7).drop(columns=TARGET)
        probe["plan"] = [PLANS[i % 3] for i in range(12)]
        probe["autopay"] = [i % 2 == 0 for i in range(12)]
        version, answer = predict(st.service_ip(env.stack, NAME), records_of(probe))
        assert version == "v2"
        assert_pipelines_answer([Answered(version, records_of(probe), answer)], built)
        obs.stop()
    tally = traffic.tally
    assert tally.by_version["v3"] > 0, tally.as_dict()  # v3 did get live traffic before
    assert_none_lost(tally)
    # the answers served during the test are the pipelines' own, for each version
    assert {a.version for a in traffic.answers} == {"v1", "v2", "v3"}
    assert_pipelines_answer(traffic.answers, built)
    # the rollback is the plan's drift alone: no numeric (or other) feature's alert fired
    assert fired_drift(env, "v3") == {"plan"}
    assert fired_drift(env, "v2") == set()
    mark(f"done: {tally.as_dict()}")
