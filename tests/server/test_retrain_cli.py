"""The server half of the retraining loop through its commands, on a store a real server
wrote: shifted traffic labelled by a changed world goes through ``/feedback`` into the
labelled-data store; ``modeldeploy retrain`` refits the stable on it and ``modeldeploy gate
--labelled-data`` judges the result on the held-out requests, each answering as its Job does
(the termination message's JSON)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server, versitygw_with_bucket
from server_process import start_server

from e2e.labeller import changed_truth
from modeldeploy.cli import main
from modeldeploy.server import contract as c
from modeldeploy.server.bundle import bundle_sha256, load_bundle
from modeldeploy.server.contract import retrain as rc
from modeldeploy.server.contract import sources as cs
from modeldeploy.server.examples import build_example, records_for
from modeldeploy.server.labelled import read_window

BUCKET = "loop"


def label_traffic(url: str, truth: Any, requests: int, seed: int) -> None:
    import httpx

    records = records_for(requests * 4, seed=seed, shifted=True)
    with httpx.Client(base_url=url, timeout=10.0) as http:
        for i in range(requests):
            rows = records[4 * i : 4 * i + 4]
            answer = http.post(c.PREDICT_PATH, json={"instances": rows}).json()
            fb = http.post(
                c.FEEDBACK_PATH, json={"request_id": answer["request_id"], "labels": truth(rows)}
            )
            assert fb.status_code == 200, fb.text


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A store of 1,200 labelled rows of the changed world, written by a real server."""
    root = tmp_path_factory.mktemp("loop")
    build_example(root / "v1", "v1", "good", seed=0)
    current = load_bundle(root / "v1", bundle_sha256(root / "v1"))
    server = start_server(
        root / "v1", current.sha256, root / "server.log", rc.FLAG_LABELLED_DATA, str(root / "store")
    )
    try:
        label_traffic(server.url, changed_truth, 300, seed=21)
    finally:
        server.stop()  # shutdown writes what waits in memory
    assert len(read_window(str(root / "store"))) == 1200
    return root, current


def test_retrain_then_gate_promote_a_model_of_the_changed_world(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root, current = store
    answer_file = root / "trainer.json"
    code = main(
        [
            "retrain",
            # The server that wrote the store has stopped: every label is written already.
            "--settle-seconds",
            "0",
            "--current",
            str(root / "v1"),
            "--current-sha256",
            current.sha256,
            "--data",
            str(root / "store"),
            "--out",
            str(root / "v2"),
            "--version",
            "v2",
            "--run",
            "incident-1",
            "--result-file",
            str(answer_file),
        ]
    )
    assert code == 0, capsys.readouterr().err
    trained = json.loads(answer_file.read_text())
    assert trained[rc.RESULT_VERSION] == "v2"
    assert trained[rc.RESULT_SHA256] == bundle_sha256(root / "v2")
    card = load_bundle(root / "v2", trained[rc.RESULT_SHA256]).card
    assert card.training_data["window"]["location"] == str(root / "store")
    assert card.training_data["run"] == "incident-1"
    assert card.training_data["rows"] + card.training_data["held_out_rows"] == 1200

    gate_file = root / "gate.json"
    verdict = main(
        [
            "gate",
            "--settle-seconds",
            "0",
            str(root / "v2"),
            "--current",
            str(root / "v1"),
            "--candidate-sha256",
            trained[rc.RESULT_SHA256],
            "--current-sha256",
            current.sha256,
            "--labelled-data",
            str(root / "store"),
            "--result-file",
            str(gate_file),
        ]
    )
    out = capsys.readouterr().out
    assert verdict == 0, out
    assert f"on {card.training_data['held_out_rows']} rows" in out
    gated = json.loads(gate_file.read_text())
    assert gated[rc.RESULT_PASSED] is True
    assert "every check passed" in gated[rc.RESULT_SUMMARY]


def test_the_gate_rejects_the_old_world_s_model_against_the_retrained_one(
    store: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Swapped roles: the stable, as a candidate, is worse on the recent data."""
    root, current = store
    assert (
        main(
            [
                "retrain",
                "--settle-seconds",
                "0",
                "--current",
                str(root / "v1"),
                "--current-sha256",
                current.sha256,
                "--data",
                str(root / "store"),
                "--out",
                str(tmp_path / "v2"),
            ]
        )
        == 0
    )
    gate_file = tmp_path / "gate.json"
    verdict = main(
        [
            "gate",
            "--settle-seconds",
            "0",
            str(root / "v1"),
            "--current",
            str(tmp_path / "v2"),
            "--candidate-sha256",
            current.sha256,
            "--current-sha256",
            bundle_sha256(tmp_path / "v2"),
            "--labelled-data",
            str(root / "store"),
            "--result-file",
            str(gate_file),
        ]
    )
    assert verdict == 1, capsys.readouterr().out
    gated = json.loads(gate_file.read_text())
    assert gated[rc.RESULT_PASSED] is False and "failed: " in gated[rc.RESULT_SUMMARY]


def test_bad_input_and_an_empty_window_say_why(
    store: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, current = store
    base = [
        "retrain",
        "--settle-seconds",
        "0",
        "--current",
        str(root / "v1"),
        "--data",
        str(root / "store"),
    ]
    assert main(base) == 2
    assert "--current-sha256" in capsys.readouterr().err
    # A window before any label: nothing to train on (exit 1, the Job's "no new version").
    assert main([*base, "--current-sha256", current.sha256, "--until", "2020-01-01"]) == 1
    assert "fewer than the minimum 200" in capsys.readouterr().err
    gate_file = tmp_path / "gate.json"
    code = main(
        [
            "gate",
            "--settle-seconds",
            "0",
            str(root / "v1"),
            "--current",
            str(root / "v1"),
            "--candidate-sha256",
            current.sha256,
            "--current-sha256",
            current.sha256,
            "--labelled-data",
            str(tmp_path / "nothing-here"),
            "--result-file",
            str(gate_file),
        ]
    )
    assert code == 2
    gated = json.loads(gate_file.read_text())
    assert gated[rc.RESULT_PASSED] is False
    assert gated[rc.RESULT_SUMMARY].startswith("the gate could not run: ")


def test_the_readers_wait_for_the_writers_to_write_the_window_s_last_labels() -> None:
    """A run starts when drift fires; the labels of the last minute are still in the
    servers' memory then, so reading waits until they have been written."""
    import time
    from datetime import datetime, timedelta

    from modeldeploy.server.loop.cli import settle

    now = datetime.now(UTC)
    started = time.monotonic()
    settle(now - timedelta(seconds=69.5), 70.0)
    assert 0.3 < time.monotonic() - started < 3.0
    started = time.monotonic()
    settle(now - timedelta(seconds=100), None)  # the default (70 s) has passed: no wait
    assert time.monotonic() - started < 0.1


def test_in_a_retraining_job_the_answer_goes_to_the_termination_message_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modeldeploy.cli import build_parser

    monkeypatch.delenv(rc.ENV_RUN, raising=False)
    assert build_parser().parse_args(["retrain"]).result_file == ""
    monkeypatch.setenv(rc.ENV_RUN, "7")
    args = build_parser().parse_args(["retrain"])
    assert (args.result_file, args.run_id) == (rc.TERMINATION_LOG, "7")


def test_the_gate_waits_for_the_last_labels_too(store: tuple[Path, Any]) -> None:
    import time
    from datetime import UTC, datetime

    root, current = store
    started = time.monotonic()
    code = main(
        [
            "gate",
            "--settle-seconds",
            "1.5",  # the servers' rotation age stands for 60 s here
            str(root / "v1"),
            "--current",
            str(root / "v1"),
            "--candidate-sha256",
            current.sha256,
            "--current-sha256",
            current.sha256,
            "--labelled-data",
            str(root / "store"),
            "--until",
            datetime.now(UTC).isoformat(),
        ]
    )
    assert code in (0, 1)
    assert time.monotonic() - started >= 1.4


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from versitygw_with_bucket(tmp_path_factory.mktemp("versitygw"), BUCKET)


def test_without_a_registry_the_bundle_is_written_to_its_s3_object(
    store: tuple[Path, Any],
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--output`` (``MODELDEPLOY_RETRAIN_OUTPUT``, as the operator hands it): the store and
    the output on one real S3 server with one set of credentials; the answer's digest pins
    the object, which ``modeldeploy fetch`` then verifies as a model pod's init container
    does."""
    root, current = store
    for path in sorted((root / "store").rglob("*.parquet")):  # the same store, in the bucket
        key = "store/" + path.relative_to(root / "store").as_posix()
        s3.client().put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    output = f"s3://{BUCKET}/retrained/ml/churn/v1-r3.tar.gz"
    monkeypatch.setenv(rc.ENV_OUTPUT, output)
    monkeypatch.setenv(rc.ENV_VERSION, "v1-r3")
    answer_file = tmp_path / "trainer.json"
    args = ["--current", str(root / "v1"), "--current-sha256", current.sha256]
    args += ["--data", f"s3://{BUCKET}/store", cs.FLAG_S3_ENDPOINT, s3.endpoint]
    code = main(["retrain", "--settle-seconds", "0", *args, "--result-file", str(answer_file)])
    assert code == 0, capsys.readouterr().err
    trained = json.loads(answer_file.read_text())
    assert trained[rc.RESULT_VERSION] == "v1-r3" and trained[rc.RESULT_MODEL_URI] == output
    fetched = tmp_path / "fetched"
    code = main(
        [
            *cs.FETCH_COMMAND[1:],
            output,
            str(fetched),
            cs.FLAG_FETCH_SHA256,
            trained[rc.RESULT_SHA256],
            cs.FLAG_S3_ENDPOINT,
            s3.endpoint,
        ]
    )
    assert code == 0, capsys.readouterr().err
    card = load_bundle(fetched, trained[rc.RESULT_SHA256]).card
    assert card.version == "v1-r3" and card.training_data["replaces"]["version"] == "v1"
    # Not both destinations, and only one archive object.
    assert main(["retrain", *args, "--registered-model", "churn"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    monkeypatch.setenv(rc.ENV_OUTPUT, f"s3://{BUCKET}/retrained/")
    assert main(["retrain", "--settle-seconds", "0", *args]) == 2
    assert "one s3://BUCKET/KEY.tar.gz object" in capsys.readouterr().err


class PutStore(http.server.ThreadingHTTPServer):
    """A real HTTP server on loopback that keeps what is PUT with its bearer token (401
    otherwise) and serves it back to any GET, as a bundle location a model pod reads."""

    def __init__(self, token: str) -> None:
        self.token, self.objects, self.seen = token, dict[str, bytes](), list[str]()
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - the stdlib's name
                store.seen.append(self.headers.get("Authorization", ""))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Authorization") != f"Bearer {store.token}":
                    self.send_response(401)
                else:
                    store.objects[self.path] = body
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = store.objects.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_an_http_output_is_put_with_its_bearer_token_and_fetched_back(
    store: tuple[Path, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, current = store
    server = PutStore(token="s3cr3t-token")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/bundles/ml/churn/v1-r4.tar.gz"
        monkeypatch.setenv(rc.ENV_OUTPUT, url)
        monkeypatch.setenv(rc.ENV_VERSION, "v1-r4")
        answer_file = tmp_path / "trainer.json"
        args = ["retrain", "--settle-seconds", "0", "--current", str(root / "v1")]
        args += ["--current-sha256", current.sha256, "--data", str(root / "store")]
        # Without the token the location refuses the PUT, and the message holds no secret.
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "PUT answered HTTP 401" in err and "without a bearer token" in err
        monkeypatch.setenv(rc.ENV_OUTPUT_TOKEN, "s3cr3t-token")
        assert main([*args, "--result-file", str(answer_file)]) == 0, capsys.readouterr().err
        assert "s3cr3t-token" not in capsys.readouterr().err
        trained = json.loads(answer_file.read_text())
        assert trained[rc.RESULT_MODEL_URI] == url and trained[rc.RESULT_VERSION] == "v1-r4"
        assert server.seen == ["", "Bearer s3cr3t-token"]
        fetched = tmp_path / "fetched"
        fetch = [*cs.FETCH_COMMAND[1:], url, str(fetched)]
        assert main([*fetch, cs.FLAG_FETCH_SHA256, trained[rc.RESULT_SHA256]]) == 0
        assert load_bundle(fetched, trained[rc.RESULT_SHA256]).card.version == "v1-r4"
    finally:
        server.shutdown()
        server.server_close()
