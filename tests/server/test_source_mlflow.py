"""models:/ bundles (``modeldeploy register`` and ``modeldeploy fetch``) against a real
``mlflow server`` (sqlite registry, one worker) whose artifacts are proxied to a real
versitygw on loopback. One tracking server for the module: it takes 10-15 s to start.

The plain tracking server has no authentication, so 401/403 are answered by a tiny loopback
server that records what it was sent (the credential header plumbing)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflowserver import MLflowServer, Stub, start_mlflow
from s3server import start_versitygw
from server_process import free_port

from conftest import Built
from e2e.cluster.fixtures import harness_tool
from modeldeploy.server.bundle import load_bundle
from modeldeploy.server.contract import CARD_FILE
from modeldeploy.server.contract import sources as c
from modeldeploy.server.examples import example_eval_data
from modeldeploy.server.fetch import FetchError, fetch
from modeldeploy.server.sources.mlflow import MLflowSettings, resolve

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason="needs the mlflow package for its tracking server (pip install -e '.[test]')",
)


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    s3 = start_versitygw(harness_tool("versitygw"), tmp_path_factory.mktemp("versitygw"))
    try:
        server = start_mlflow(s3, tmp_path_factory.mktemp("mlflow"))
        try:
            yield server
        finally:
            server.stop()
    finally:
        s3.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def api(server: MLflowServer, method: str, endpoint: str, **params: Any) -> dict[str, Any]:
    url, data = f"{server.url}/api/2.0/mlflow/{endpoint}", None
    if method == "GET":
        url += "?" + urllib.parse.urlencode(params)
    else:
        data = json.dumps(params).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read() or b"{}")
    return answer


def register(server: MLflowServer, bundle: Built, name: str, *alias: str) -> str:
    res = cli("register", str(bundle.path), "--tracking-uri", server.url, "--name", name, *alias)
    assert res.returncode == 0, res.stderr
    version, uri, *_ = res.stdout.split()
    assert uri == f"models:/{name}/{version}"
    return version


def settings(server: MLflowServer | str) -> MLflowSettings:
    return MLflowSettings(server if isinstance(server, str) else server.url)


@pytest.fixture(scope="module")
def churn(mlflow: MLflowServer, bundles: dict[str, Built]) -> str:
    """Model 'churn': version 1 is the good bundle, alias 'champion' on it."""
    assert register(mlflow, bundles["good"], "churn", "--alias", "champion") == "1"
    return "churn"


def test_register_then_fetch_by_version_and_alias_loads_and_predicts(
    mlflow: MLflowServer, churn: str, bundles: dict[str, Built], tmp_path: Path
):
    good = bundles["good"]
    got = api(mlflow, "GET", "model-versions/get", name=churn, version="1")["model_version"]
    tags = {t["key"]: t["value"] for t in got["tags"]}
    card = json.loads((good.path / CARD_FILE).read_text())
    assert tags[c.TAG_SHA256] == good.sha256
    assert tags[c.TAG_DATA_FINGERPRINT] == card["training_data"]["fingerprint"]
    assert {k: float(tags[c.TAG_METRIC_PREFIX + k]) for k in card["metrics"]} == card["metrics"]
    x, _ = example_eval_data(20, seed=3)
    for uri in (f"models:/{churn}/1", f"models:/{churn}@champion"):
        dest = tmp_path / uri.replace("/", "_").replace(":", "") / "bundle"
        fetch(uri, dest, mlflow=settings(mlflow))  # pinned by the version's tag
        loaded = load_bundle(dest, good.sha256)
        assert loaded.model.predict_proba(x).shape == (20, 2)
        assert sorted(p.name for p in dest.parent.iterdir()) == ["bundle"]
    resolved = resolve(f"models:/{churn}@champion", settings(mlflow))
    assert (resolved.name, resolved.version, resolved.alias) == (churn, "1", "champion")
    assert resolved.sha256 == good.sha256 and resolved.uri == f"models:/{churn}/1"
    assert resolved.download_uri.startswith("mlflow-artifacts:/")
    res = cli(
        "fetch", f"models:/{churn}@champion", str(tmp_path / "cli"), "--tracking-uri", mlflow.url
    )
    assert res.returncode == 0, res.stderr
    assert load_bundle(tmp_path / "cli", good.sha256).sha256 == good.sha256


def test_a_registered_version_loads_with_mlflow_sklearn_too(
    mlflow: MLflowServer, churn: str, bundles: dict[str, Built]
):
    x, _ = example_eval_data(20, seed=4)
    script = (
        "import json, sys, numpy, mlflow.sklearn\n"
        f"model = mlflow.sklearn.load_model('models:/{churn}@champion')\n"
        "rows = numpy.array(json.load(sys.stdin))\n"
        "print(json.dumps(model.predict_proba(rows).tolist()))\n"
    )
    env = {"MLFLOW_TRACKING_URI": mlflow.url, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    res = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(x.tolist()),
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ours = load_bundle(bundles["good"].path, bundles["good"].sha256).model.predict_proba(x)
    assert json.loads(res.stdout.splitlines()[-1]) == ours.tolist()


def test_a_skops_version_loads_with_mlflow_sklearn_without_unpickling(
    mlflow: MLflowServer, tmp_path: Path
):
    """A skops bundle registers as MLflow's own skops format (its trusted types from the
    pinned card): mlflow.sklearn.load_model reads it with pickle loading left off."""
    from user_models import fitted_churn

    from modeldeploy.server.bundling import bundle_model

    model, frame = fitted_churn()
    out = tmp_path / "skops"
    bundle_model(model, frame, "churned", name="c", version="1", out=out, model_format="skops")
    res = cli("register", str(out), "--tracking-uri", mlflow.url, "--name", "churn-skops")
    assert res.returncode == 0, res.stderr
    x = frame.drop(columns="churned").head(20)
    script = (
        "import sys, pandas, mlflow.sklearn\n"
        "model = mlflow.sklearn.load_model('models:/churn-skops/1')\n"
        "rows = pandas.read_json(sys.stdin, orient='split')\n"
        "print(model.predict_proba(rows)[:, 1].round(12).tolist())\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    run = subprocess.run(
        [sys.executable, "-c", script],
        input=x.to_json(orient="split"),
        env={**clean, "MLFLOW_TRACKING_URI": mlflow.url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ours = model.predict_proba(x)[:, 1].round(12).tolist()
    assert json.loads(run.stdout.splitlines()[-1]) == ours


def test_moving_the_alias_resolves_to_the_new_version(
    mlflow: MLflowServer, bundles: dict[str, Built], tmp_path: Path
):
    assert register(mlflow, bundles["good"], "mover", "--alias", "live") == "1"
    assert resolve("models:/mover@live", settings(mlflow)).version == "1"
    assert register(mlflow, bundles["good2"], "mover", "--alias", "live") == "2"
    moved = resolve("models:/mover@live", settings(mlflow))
    assert (moved.version, moved.sha256) == ("2", bundles["good2"].sha256)
    fetch("models:/mover@live", tmp_path / "b", mlflow=settings(mlflow))
    assert load_bundle(tmp_path / "b", bundles["good2"].sha256)
    assert resolve("models:/mover/1", settings(mlflow)).sha256 == bundles["good"].sha256


def test_a_version_without_the_digest_tag_is_refused_before_download(
    mlflow: MLflowServer, bundles: dict[str, Built], tmp_path: Path
):
    register(mlflow, bundles["good"], "untagged")
    api(
        mlflow,
        "DELETE",
        "model-versions/delete-tag",
        name="untagged",
        version="1",
        key=c.TAG_SHA256,
    )
    proxy = Stub(upstream=mlflow.url)
    try:
        with pytest.raises(FetchError, match="no modeldeploy.sha256 tag and no --sha256"):
            fetch("models:/untagged/1", tmp_path / "b", mlflow=settings(proxy.url))
        assert proxy.seen and proxy.downloads() == [] and not (tmp_path / "b").exists()
        good = bundles["good"]  # an explicit pin is enough
        fetch("models:/untagged/1", tmp_path / "b", sha256=good.sha256, mlflow=settings(proxy.url))
        assert proxy.downloads() and load_bundle(tmp_path / "b", good.sha256)
    finally:
        proxy.stop()


def test_a_wrong_digest_is_refused_and_nothing_is_placed(
    mlflow: MLflowServer, churn: str, bundles: dict[str, Built], tmp_path: Path
):
    dest = tmp_path / "bundle"
    fetch(str(bundles["good2"].path), dest)  # what is in place stays as it was
    before = (dest / CARD_FILE).read_bytes()
    proxy = Stub(upstream=mlflow.url)
    try:
        with pytest.raises(FetchError, match="disagrees with the version's tag"):
            fetch(f"models:/{churn}/1", dest, sha256="0" * 64, mlflow=settings(proxy.url))
        assert proxy.downloads() == []
    finally:
        proxy.stop()
    # A tag that lies about the files: they are downloaded, checked and refused.
    register(mlflow, bundles["good"], "liar")
    api(
        mlflow,
        "POST",
        "model-versions/set-tag",
        name="liar",
        version="1",
        key=c.TAG_SHA256,
        value="1" * 64,
    )
    with pytest.raises(FetchError, match=f"pinned {'1' * 64}: refusing it"):
        fetch("models:/liar/1", dest, mlflow=settings(mlflow))
    assert (dest / CARD_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_unknown_model_version_or_alias_fail_at_once(
    mlflow: MLflowServer, churn: str, tmp_path: Path
):
    slept: list[float] = []
    cases = {
        "models:/nothing/1": "unknown model 'nothing'",
        "models:/nothing@champion": "unknown model 'nothing'",
        f"models:/{churn}/99": f"model '{churn}' has no version 99",
        f"models:/{churn}@nobody": f"model '{churn}' has no alias 'nobody'",
    }
    for uri, message in cases.items():
        with pytest.raises(FetchError, match=message):
            fetch(uri, tmp_path / "b", mlflow=settings(mlflow), sleep=slept.append)
    assert slept == [] and not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("status", "env", "sent", "said"),
    [
        (
            401,
            {c.ENV_MLFLOW_USERNAME: "ci", c.ENV_MLFLOW_PASSWORD: "pw-s3cr3t-9"},
            "Basic ",
            "unauthorized",
        ),
        (403, {c.ENV_MLFLOW_TOKEN: "tok-s3cr3t-7"}, "Bearer tok-s3cr3t-7", "forbidden"),
    ],
)
def test_credentials_are_sent_and_a_refusal_is_clear_without_the_secret(
    tmp_path: Path, status: int, env: dict[str, str], sent: str, said: str
):
    stub = Stub(status)
    try:
        res = cli(
            "fetch",
            "models:/churn@champion",
            str(tmp_path / "b"),
            "--tracking-uri",
            stub.url,
            env=env,
        )
    finally:
        stub.stop()
    assert res.returncode == 1
    assert f"{said} by the tracking server" in res.stderr and f"HTTP {status}" in res.stderr
    assert len(stub.seen) == 1, "a 401/403 is not retried"
    path, header = stub.seen[0]
    assert path.startswith("/api/2.0/mlflow/registered-models/alias?")
    assert header.startswith(sent)
    if c.ENV_MLFLOW_USERNAME in env:
        pair = f"{env[c.ENV_MLFLOW_USERNAME]}:{env[c.ENV_MLFLOW_PASSWORD]}".encode()
        assert header == "Basic " + base64.b64encode(pair).decode()
    for name in env:
        assert f"${name}" in res.stderr
    for secret in (*env.values(), header):
        assert secret not in res.stdout + res.stderr
    assert not (tmp_path / "b").exists()


def test_5xx_and_a_stopped_tracking_server_are_retried_then_reported(tmp_path: Path):
    stub = Stub(503)
    slept: list[float] = []
    try:
        with pytest.raises(FetchError, match=r"HTTP 503 PERMISSION_DENIED.*gave up after 3"):
            fetch(
                "models:/churn/1",
                tmp_path / "b",
                mlflow=settings(stub.url),
                attempts=3,
                sleep=slept.append,
            )
        assert len(stub.seen) == 3 and slept == [1.0, 2.0]
    finally:
        stub.stop()
    slept.clear()
    with pytest.raises(FetchError, match=r"Connection refused.*gave up after 4 attempts"):
        fetch(
            "models:/churn/1",
            tmp_path / "b",
            mlflow=settings(stub.url),
            attempts=4,
            sleep=slept.append,
        )
    assert slept == [1.0, 2.0, 4.0] and not (tmp_path / "b").exists()


def test_bad_models_inputs_are_clear(tmp_path: Path):
    cases = {
        "models:/churn": "use models:/NAME/VERSION",
        "models:/churn/0": "a version number from 1",
        "models:/churn/latest": "use models:/NAME/VERSION",
        "models:/churn@v3": "not look like a version",
        "models:/a/b/1": "use models:/NAME/VERSION",
        "models:/@prod": "model name ''",
    }
    for uri, message in cases.items():
        with pytest.raises(FetchError, match=message):
            fetch(uri, tmp_path / "b", mlflow=MLflowSettings("http://127.0.0.1:9"))
    with pytest.raises(FetchError, match="needs the tracking server: pass --tracking-uri"):
        fetch("models:/churn/1", tmp_path / "b")
    with pytest.raises(FetchError, match="not models:/"):
        fetch(str(tmp_path), tmp_path / "b", mlflow=MLflowSettings("http://127.0.0.1:9"))
    with pytest.raises(FetchError, match="no user info") as err:
        MLflowSettings("http://ci:hunter2@127.0.0.1:5000")
    assert "hunter2" not in str(err.value)
    with pytest.raises(FetchError, match="MLFLOW_TRACKING_USERNAME is empty") as err:
        MLflowSettings.from_env("http://127.0.0.1:9", {c.ENV_MLFLOW_PASSWORD: "only-pw-x"})
    assert "only-pw-x" not in str(err.value)
    secret = MLflowSettings.from_env("http://127.0.0.1:9", {c.ENV_MLFLOW_TOKEN: "tok-zz-1"})
    assert "tok-zz-1" not in repr(secret)
    res = cli(
        "register",
        str(tmp_path),
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
        "--name",
        "x",
    )
    assert res.returncode == 2 and "not a bundle" in res.stderr
    assert not (tmp_path / "b").exists()


LOG_MODELS = """
import json, sys, joblib, mlflow, mlflow.sklearn, skops.io
model = joblib.load(sys.argv[1])
trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
mlflow.set_experiment("scientist")
with mlflow.start_run():
    skops_info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name="logged", skops_trusted_types=trusted
    )
    pickle_info = mlflow.sklearn.log_model(model, name="pickled", serialization_format="pickle")
out = {}
for key, info in (("skops", skops_info), ("pickle", pickle_info)):
    out[key] = mlflow.artifacts.download_artifacts(
        artifact_uri=info.model_uri, dst_path=sys.argv[2] + "/" + key
    )
print(json.dumps(out))
"""


def test_bundle_takes_a_model_logged_with_mlflow_from_its_folder_or_models_uri(
    mlflow: MLflowServer, tmp_path: Path
):
    """A data scientist's ``mlflow.sklearn.log_model`` (MLflow 3.17: skops by default, and
    pickle) becomes a bundle without training again; the bundle predicts what the model
    predicted."""
    import joblib
    from user_models import fitted_churn

    model, frame = fitted_churn()
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_parquet(tmp_path / "ref.parquet")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    logged = subprocess.run(
        [sys.executable, "-c", LOG_MODELS, str(tmp_path / "model.joblib"), str(tmp_path / "dl")],
        env={**clean, "MLFLOW_TRACKING_URI": mlflow.url},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert logged.returncode == 0, logged.stderr[-3000:]
    folders = json.loads(logged.stdout.splitlines()[-1])
    assert "serialization_format: skops" in (Path(folders["skops"]) / "MLmodel").read_text()
    x = frame.drop(columns="churned").head(50)
    want = model.predict_proba(x)
    for source, extra, model_file in (
        (folders["skops"], (), "model.skops"),
        (folders["pickle"], (), "model.joblib"),
        ("models:/logged/1", ("--tracking-uri", mlflow.url), "model.skops"),
    ):
        out = tmp_path / f"bundle-{len(list(tmp_path.glob('bundle-*')))}"
        common = ("--target", "churned", "--name", "churn", "--version", "1")
        res = cli(
            "bundle", source, str(out), "--data", str(tmp_path / "ref.parquet"), *common, *extra
        )
        assert res.returncode == 0, res.stderr
        assert (out / model_file).is_file(), sorted(p.name for p in out.iterdir())
        loaded = load_bundle(out, res.stdout.split()[-1])
        assert (loaded.model.predict_proba(x) == want).all(), source
    # a folder without MLmodel's sklearn flavor, and a registry version that is not there
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    res = cli(
        "bundle", str(bad), str(tmp_path / "x"), "--data", str(tmp_path / "ref.parquet"), *common
    )
    assert res.returncode == 2 and "no sklearn flavor" in res.stderr, res.stderr
    res = cli(
        "bundle",
        "models:/logged/9",
        str(tmp_path / "y"),
        "--data",
        str(tmp_path / "ref.parquet"),
        *common,
        "--tracking-uri",
        mlflow.url,
    )
    assert res.returncode == 2 and "no version 9" in res.stderr, res.stderr
