"""What the server shows (issue 19): logs without secrets, quiet disconnects, guarded docs.

A real `scribble-seg serve` (two uvicorn workers, as deployed) is asked for URLs that
carry credentials and signatures, and gets uploads cut off midway; its log must hold
none of the secrets and no traceback. With authentication on, /docs, /openapi.json
and (by default) /metrics need it; /health only with HEALTH_AUTH.

Seen failing on main (0fe211c): the access log held ``ImageUrl`` credentials and the
result signature in full; cut-off bodies logged ``ClientDisconnect`` at ERROR with
tracebacks; /docs, /openapi.json and /metrics answered 200 without credentials.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.app_client import isolated_client
from tests.support.backend_server import BackendServer

ACTION = "InteractiveScribbleSegmentation"
SECRET_PASSWORD = "s3cr3t-Pa55w0rd"
SECRET_SIGNATURE = "SiGnAtUrE-9f8e7d6c5b4a"
SECRET_TOKEN = "presigned-token-1a2b3c4d"


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendServer]:
    # No Label Studio is needed here: nothing is fetched from it.
    server = BackendServer("http://127.0.0.2:9", "unused-label-studio-token").start()
    try:
        yield server
    finally:
        server.stop()


def _cut_off(backend: BackendServer, request_head: bytes, sent_body: bytes) -> None:
    """Sends a request whose body stops short of its Content-Length, then hangs up."""
    address = urlsplit(backend.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(request_head + sent_body)
        time.sleep(0.3)


def test_access_log_has_no_secrets_and_disconnects_no_tracebacks(backend: BackendServer) -> None:
    image_url = f"http://user:{SECRET_PASSWORD}@127.0.0.1:1/x.png?X-Amz-Security-Token={SECRET_TOKEN}"
    answer = httpx.get(f"{backend.url}/", params={"Action": ACTION, "ImageUrl": image_url}, timeout=30)
    assert answer.status_code == 400, answer.text
    answer = httpx.get(f"{backend.url}/results/{'a' * 32}.png", params={"Expires": "1", "Signature": SECRET_SIGNATURE})
    assert answer.status_code == 403, answer.text
    boundary = b"cut-off-boundary"
    part_head = b'\r\nContent-Disposition: form-data; name="Image"; filename="a.png"\r\n\r\n'
    body_start = b"--" + boundary + part_head + b"\x89PNG" * 100
    _cut_off(backend, b"POST /InteractiveScribbleSegmentation HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data;"
             b" boundary=" + boundary + b"\r\nContent-Length: 1000000\r\n\r\n", body_start)
    _cut_off(backend, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100000\r\n\r\n", b'{"tasks": [')
    assert httpx.get(f"{backend.url}/health", timeout=10).status_code == 200
    time.sleep(1.0)  # the workers write their last lines
    log = backend.log_tail(200_000)
    for secret in (SECRET_PASSWORD, SECRET_SIGNATURE, SECRET_TOKEN):
        assert secret not in log, f"{secret} is in the log:\n{log[-3000:]}"
    assert "ImageUrl=REDACTED" in log and "Signature=REDACTED" in log, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert log.count("client disconnected") >= 2, log[-3000:]


# ------------------------------------------------------------------ documentation and operations




def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


DOCS = ("/docs", "/openapi.json", "/redoc")


def test_with_auth_on_docs_and_metrics_need_it(tmp_path: Path) -> None:
    client = isolated_client(tmp_path / "basic", BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pass-7c1d")
    for path in (*DOCS, "/metrics"):
        answer = client.get(path)
        assert answer.status_code == 401 and answer.json()["Code"] == "Unauthorized", (path, answer.text)
        assert client.get(path, headers=basic("ls", "wrong")).status_code == 401, path
        assert client.get(path, headers=basic("ls", "pass-7c1d")).status_code == 200, path
    assert client.get("/health").status_code == 200  # container health checks send nothing
    keyed = isolated_client(tmp_path / "keys", API_KEYS=["key-31ab"])
    assert keyed.get("/openapi.json").status_code == 401
    assert keyed.get("/openapi.json", headers={"X-API-Key": "key-31ab"}).status_code == 200
    assert keyed.get("/docs", headers={"Authorization": "Bearer key-31ab"}).status_code == 200


def test_metrics_and_health_guards_are_settings(tmp_path: Path) -> None:
    client = isolated_client(tmp_path / "a", API_KEYS=["key-31ab"], METRICS_AUTH=False, HEALTH_AUTH=True)
    assert client.get("/metrics").status_code == 200
    assert client.get("/health").status_code == 401
    assert client.get("/health", headers={"X-API-Key": "key-31ab"}).status_code == 200
    # Without any authentication configured nothing is guarded (a local, loopback-only setup).
    open_client = isolated_client(tmp_path / "b")
    for path in (*DOCS, "/metrics", "/health"):
        assert open_client.get(path).status_code == 200, path


def test_redaction_keeps_names_and_drops_every_value() -> None:
    from ml_backend.server.log_redaction import redact_query

    assert redact_query("/results/a.png?Expires=1&Signature=x") == "/results/a.png?Expires=REDACTED&Signature=REDACTED"
    assert redact_query("/?flag&ImageUrl=http://u:p@h/x?y=1") == "/?REDACTED&ImageUrl=REDACTED"
    assert redact_query("/health") == "/health"
