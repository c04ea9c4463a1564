"""``modeldeploy fetch`` from s3:// against a real S3-compatible server (versitygw, built by
the harness: `.venv/bin/python -m e2e.cluster build --only versitygw`), signed with real
credentials; a loopback proxy in front of it injects 503s and cut-off responses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import FaultProxy, S3Server, start_versitygw, versitygw_with_bucket

from conftest import Built
from e2e.cluster.fixtures import harness_tool
from modeldeploy.server.bundle import load_bundle, pack_bundle
from modeldeploy.server.contract import CARD_FILE, MODEL_FILE
from modeldeploy.server.fetch import FetchError, fetch
from modeldeploy.server.sources.s3 import S3Settings

BUCKET = "models"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from versitygw_with_bucket(tmp_path_factory.mktemp("versitygw"), BUCKET)


@pytest.fixture(scope="module")
def uploaded(s3: S3Server, bundles: dict[str, Built], tmp_path_factory: pytest.TempPathFactory):
    """The good bundle as an archive and as a folder under a prefix (plus decoys)."""
    good = bundles["good"]
    client = s3.client()
    archive = pack_bundle(good.path, tmp_path_factory.mktemp("archive") / "good.tar.gz")
    client.put_object(Bucket=BUCKET, Key="churn/1/bundle.tar.gz", Body=archive.read_bytes())
    for path in sorted(good.path.rglob("*")):
        if path.is_file():
            key = f"churn/2/{path.relative_to(good.path).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    client.put_object(Bucket=BUCKET, Key="churn/2/notes/README.txt", Body=b"a nested file")
    client.put_object(Bucket=BUCKET, Key="churn/2/empty-folder/", Body=b"")  # a folder marker
    client.put_object(Bucket=BUCKET, Key="churn/20/model.joblib", Body=b"not under churn/2/")
    return good


def settings(s3: S3Server, endpoint: str = "", **env: str) -> S3Settings:
    return S3Settings.from_env(endpoint or s3.endpoint, environ=s3.env(**env))


def no_leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def test_an_archive_is_fetched_checked_and_loads(s3: S3Server, uploaded: Built, tmp_path: Path):
    dest = tmp_path / "out" / "bundle"
    got = fetch(
        f"s3://{BUCKET}/churn/1/bundle.tar.gz", dest, sha256=uploaded.sha256, s3=settings(s3)
    )
    assert load_bundle(got, uploaded.sha256).sha256 == uploaded.sha256
    assert no_leftovers(dest) == ["bundle"]


@pytest.mark.parametrize("key", ["churn/2", "churn/2/"])
def test_a_folder_bundle_is_every_object_under_the_prefix(
    s3: S3Server, uploaded: Built, tmp_path: Path, key: str
):
    dest = tmp_path / "bundle"
    fetch(f"s3://{BUCKET}/{key}", dest, sha256=uploaded.sha256, s3=settings(s3))
    assert load_bundle(dest, uploaded.sha256).sha256 == uploaded.sha256
    assert (dest / "notes" / "README.txt").read_bytes() == b"a nested file"
    assert (dest / MODEL_FILE).read_bytes() == (uploaded.path / MODEL_FILE).read_bytes()
    assert not (dest / "empty-folder").exists(), "folder markers are not files"
    assert no_leftovers(dest) == ["bundle"]


def test_a_wrong_digest_is_refused_and_nothing_is_kept(
    s3: S3Server, uploaded: Built, tmp_path: Path
):
    dest = tmp_path / "bundle"
    fetch(str(uploaded.path), dest)  # an older bundle already in place stays as it was
    before = (dest / CARD_FILE).read_bytes()
    for key in ("churn/1/bundle.tar.gz", "churn/2/"):
        with pytest.raises(FetchError, match=f"pinned {'0' * 64}: refusing it"):
            fetch(f"s3://{BUCKET}/{key}", dest, sha256="0" * 64, s3=settings(s3))
        assert (dest / CARD_FILE).read_bytes() == before
        assert no_leftovers(dest) == ["bundle"]
    fresh = tmp_path / "fresh" / "bundle"
    with pytest.raises(FetchError, match="refusing it"):
        fetch(f"s3://{BUCKET}/churn/2", fresh, sha256="0" * 64, s3=settings(s3))
    assert no_leftovers(fresh) == []


def run_cli(uri: str, dest: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "modeldeploy", "fetch", uri, str(dest), *flags]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_S3_")}
    return subprocess.run(cmd, env={**full_env, **env}, capture_output=True, text=True, timeout=120)


def test_wrong_credentials_get_a_clear_403_once_without_the_secret(
    s3: S3Server, uploaded: Built, tmp_path: Path
):
    proxy = FaultProxy(s3.endpoint)
    try:
        wrong = "wrong-" + s3.secret_key[:8] + "-secret-value"
        env = s3.env(MODELDEPLOY_S3_SECRET_ACCESS_KEY=wrong)
        uri = f"s3://{BUCKET}/churn/1/bundle.tar.gz"
        res = run_cli(uri, tmp_path / "b", env, "--s3-endpoint", proxy.endpoint)
        assert res.returncode == 1
        assert "HTTP 403" in res.stderr and "access denied" in res.stderr, res.stderr
        assert f"bucket {BUCKET!r}, key 'churn/1/bundle.tar.gz'" in res.stderr
        assert "the request was signed" in res.stderr and "AWS_SECRET_ACCESS_KEY" in res.stderr
        for secret in (wrong, s3.secret_key):
            assert secret not in res.stderr + res.stdout
        assert len(proxy.requests) == 1, "a 403 is not retried"
        assert not (tmp_path / "b").exists()
        folder = run_cli(
            f"s3://{BUCKET}/churn/2/", tmp_path / "b", env, "--s3-endpoint", s3.endpoint
        )
        assert folder.returncode == 1 and "HTTP 403" in folder.stderr
        assert wrong not in folder.stderr + folder.stdout
    finally:
        proxy.stop()


def test_no_credentials_are_unsigned_requests_and_say_so(s3: S3Server, tmp_path: Path):
    with pytest.raises(FetchError, match=r"HTTP 403.*unsigned \(no credentials\)"):
        fetch(f"s3://{BUCKET}/churn/1/bundle.tar.gz", tmp_path / "b", s3=S3Settings(s3.endpoint))


def test_missing_objects_get_a_404_at_once(s3: S3Server, uploaded: Built, tmp_path: Path):
    slept: list[float] = []
    with pytest.raises(
        FetchError, match=r"no such key 'churn/9/bundle.tar.gz'.*HTTP 404 NoSuchKey"
    ):
        fetch(
            f"s3://{BUCKET}/churn/9/bundle.tar.gz",
            tmp_path / "b",
            s3=settings(s3),
            sleep=slept.append,
        )
    with pytest.raises(FetchError, match="no such bucket 'nothing-here'.*NoSuchBucket"):
        fetch("s3://nothing-here/b.tar.gz", tmp_path / "b", s3=settings(s3), sleep=slept.append)
    with pytest.raises(FetchError, match="no objects under prefix 'churn/9/'"):
        fetch(f"s3://{BUCKET}/churn/9", tmp_path / "b", s3=settings(s3), sleep=slept.append)
    assert slept == [] and not (tmp_path / "b").exists()


def test_503s_are_retried_with_backoff_a_bounded_number_of_times(
    s3: S3Server, uploaded: Built, tmp_path: Path
):
    proxy = FaultProxy(s3.endpoint)
    try:
        uri = f"s3://{BUCKET}/churn/1/bundle.tar.gz"
        proxy.fail = 2
        slept: list[float] = []
        opts = {"s3": settings(s3, proxy.endpoint), "sha256": uploaded.sha256, "backoff": 0.5}
        fetch(uri, tmp_path / "a", sleep=slept.append, **opts)
        assert slept == [0.5, 1.0] and len(proxy.requests) == 3
        proxy.fail, proxy.requests[:] = 100, []
        with pytest.raises(FetchError, match=r"HTTP 503 SlowDown.*gave up after 3 attempts"):
            fetch(uri, tmp_path / "b", attempts=3, sleep=lambda _: None, **opts)
        assert len(proxy.requests) == 3 and not (tmp_path / "b").exists()
        proxy.fail, proxy.requests[:] = 0, []
        proxy.cut = 1  # the connection drops half-way through the archive: fetched again
        fetch(uri, tmp_path / "c", sleep=slept.append, **opts)
        assert len(proxy.requests) == 2
        assert load_bundle(tmp_path / "c", uploaded.sha256).sha256 == uploaded.sha256
        proxy.requests[:] = []
        proxy.cut = 1  # and during a folder bundle's objects
        fetch(f"s3://{BUCKET}/churn/2/", tmp_path / "d", sleep=slept.append, **opts)
        assert load_bundle(tmp_path / "d", uploaded.sha256).sha256 == uploaded.sha256
    finally:
        proxy.stop()


def test_a_stopped_server_is_retried_then_reported(
    s3: S3Server, uploaded: Built, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
):
    other = start_versitygw(harness_tool("versitygw"), tmp_path / "gone")
    endpoint = other.endpoint
    other.stop()
    slept: list[float] = []
    with pytest.raises(FetchError, match="gave up after 3 attempts"):
        fetch(
            f"s3://{BUCKET}/churn/1/bundle.tar.gz",
            tmp_path / "x",
            attempts=3,
            s3=settings(s3, endpoint),
            sleep=slept.append,
        )
    assert slept == [1.0, 2.0] and not (tmp_path / "x").exists()


def test_the_command_line_fetches_with_credentials_from_the_environment(
    s3: S3Server, uploaded: Built, tmp_path: Path
):
    uri = f"s3://{BUCKET}/churn/2/"
    flags = ("--s3-endpoint", s3.endpoint, "--s3-region", "us-east-1", "--s3-path-style")
    res = run_cli(uri, tmp_path / "b", s3.env(), "--sha256", uploaded.sha256, *flags)
    assert res.returncode == 0, res.stderr
    assert load_bundle(tmp_path / "b", uploaded.sha256).sha256 == uploaded.sha256
    assert s3.secret_key not in res.stdout + res.stderr


def test_bad_s3_inputs_are_clear(tmp_path: Path):
    cases = {
        "s3://Bad_Bucket/b.tar.gz": "lowercase letters, digits, dots and hyphens",
        "s3://ab/b.tar.gz": "3 to 63 characters",
        "s3://192.168.1.10/b.tar.gz": "IP address",
        "s3://bucket": "names no object",
        "s3://bucket/a/../b.tar.gz": "'..' segments",
    }
    for uri, message in cases.items():
        with pytest.raises(FetchError, match=message):
            fetch(uri, tmp_path / "x", s3=S3Settings())
    with pytest.raises(FetchError, match="not s3://"):
        fetch(str(tmp_path), tmp_path / "x", s3=S3Settings("http://127.0.0.1:9"))
    with pytest.raises(FetchError, match="must be http"):
        S3Settings("127.0.0.1:9000")
    secret = "only-the-secret-is-set"
    with pytest.raises(FetchError, match="MODELDEPLOY_S3_ACCESS_KEY_ID is empty") as err:
        S3Settings.from_env(environ={"MODELDEPLOY_S3_SECRET_ACCESS_KEY": secret})
    assert secret not in str(err.value)
    assert secret not in repr(
        S3Settings.from_env(
            environ={
                "MODELDEPLOY_S3_ACCESS_KEY_ID": "id",
                "MODELDEPLOY_S3_SECRET_ACCESS_KEY": secret,
            }
        )
    )
    assert not (tmp_path / "x").exists()
