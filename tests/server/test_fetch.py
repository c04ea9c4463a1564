"""``modeldeploy fetch``: bundles from loopback HTTP, file:// and paths, atomically."""

from __future__ import annotations

import http.server
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.server.contract import CARD_FILE, MODEL_FILE
from modeldeploy.server.fetch import FetchError, fetch


def make_bundle(folder: Path, content: bytes = b"model") -> Path:
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(content)
    (folder / CARD_FILE).write_text("{}")
    return folder


def make_tar(path: Path, bundle: Path, arcname: str = "bundle") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(bundle, arcname=arcname)
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    failures_left = 0
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).hits += 1
        if self.path.endswith("/missing.tar.gz"):
            self.send_error(404)
            return
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {})
    handler.payload = make_tar(tmp_path / "b.tar.gz", make_bundle(tmp_path / "src")).read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_http_tar_gz_is_unpacked(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    url, _ = server
    dest = fetch(f"{url}/models/b.tar.gz", tmp_path / "out" / "bundle")
    assert (dest / MODEL_FILE).read_bytes() == b"model"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bundle"], "no leftovers"


def test_http_retries_5xx_a_bounded_number_of_times(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    handler.failures_left = 2
    slept: list[float] = []
    fetch(f"{url}/b.tar.gz", tmp_path / "a", backoff=0.5, sleep=slept.append)
    assert slept == [0.5, 1.0] and handler.hits == 3
    handler.failures_left = 10
    handler.hits = 0
    with pytest.raises(FetchError, match="503.*gave up after 3 attempts"):
        fetch(f"{url}/b.tar.gz", tmp_path / "b", attempts=3, sleep=lambda _: None)
    assert handler.hits == 3 and not (tmp_path / "b").exists()


def test_http_404_fails_at_once(server: tuple[str, type[_Handler]], tmp_path: Path) -> None:
    url, handler = server
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{url}/missing.tar.gz", tmp_path / "x", sleep=lambda _: None)
    assert handler.hits == 1


def test_unreachable_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    slept: list[float] = []
    with pytest.raises(FetchError, match="gave up after 2 attempts"):
        fetch(f"http://127.0.0.1:{port}/b.tar.gz", tmp_path / "x", attempts=2, sleep=slept.append)
    assert len(slept) == 1


def test_file_uri_folder_and_plain_tar_path(tmp_path: Path) -> None:
    src = make_bundle(tmp_path / "src", b"v1")
    assert (fetch(f"file://{src}", tmp_path / "d1") / MODEL_FILE).read_bytes() == b"v1"
    tar = make_tar(tmp_path / "flat.tar.gz", src, arcname=".")
    assert (fetch(str(tar), tmp_path / "d2") / CARD_FILE).read_text() == "{}"


def test_existing_destination_is_replaced_and_kept_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "bundle"
    fetch(str(make_bundle(tmp_path / "v1", b"one")), dest)
    fetch(str(make_bundle(tmp_path / "v2", b"two")), dest)
    assert (dest / MODEL_FILE).read_bytes() == b"two"
    with pytest.raises(FetchError, match="no such file"):
        fetch(str(tmp_path / "nope.tar.gz"), dest)
    assert (dest / MODEL_FILE).read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "v1", "v2"]


def test_a_tar_that_escapes_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        data = b"x"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(FetchError, match="outside the bundle"):
        fetch(str(evil), tmp_path / "d")
    assert not (tmp_path / "outside.txt").exists()
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(FetchError, match="only files and folders"):
        fetch(str(link), tmp_path / "d")


def test_unpacks_without_the_tar_filter_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server image's Python may predate tarfile's extraction filters."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    tar = make_tar(tmp_path / "b.tar.gz", make_bundle(tmp_path / "src", b"old-python"))
    assert (fetch(str(tar), tmp_path / "d") / MODEL_FILE).read_bytes() == b"old-python"


def test_missing_model_file_and_bad_inputs_are_clear(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FetchError, match=f"no {MODEL_FILE}"):
        fetch(str(empty), tmp_path / "d")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(FetchError, match="not a bundle"):
        fetch(str(tmp_path / "x.txt"), tmp_path / "d")
    with pytest.raises(FetchError, match="unsupported scheme"):
        fetch("ftp://127.0.0.1/b.tar.gz", tmp_path / "d")
    with pytest.raises(FetchError, match="must be a .tar.gz"):
        fetch("http://127.0.0.1:9/folder/", tmp_path / "d")
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(FetchError, match="not a readable"):
        fetch(str(tmp_path / "bad.tar.gz"), tmp_path / "d")


def test_the_command_line(tmp_path: Path) -> None:
    src = make_bundle(tmp_path / "src")
    cmd = [sys.executable, "-m", "modeldeploy", "fetch"]
    ok = subprocess.run(
        cmd + [f"file://{src}", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / MODEL_FILE).exists()
    bad = subprocess.run(
        cmd + [str(tmp_path / "none"), str(tmp_path / "o2")], capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stderr.startswith("fetch: ")
