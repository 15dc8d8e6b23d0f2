"""Label Studio's /setup channel (issue 19): the token goes only to the origin it came with.

A black-box probe of a default server (no BASIC_AUTH_*, no LABEL_STUDIO_URL) repointed
it with an unauthenticated /setup and received Label Studio's token on the next
/predict; the same repointing made /predict a loopback port scanner. Here a real
Label Studio stand-in (it serves uploads only with its token) and an "attacker" host
record every request they get.

Seen failing on main (0fe211c): the attacker host received ``Token <Label Studio
token>``; a /setup with ``javascript:alert(1)`` or a text/plain body answered 200; the
port probes answered "could not connect" and "answered HTTP 404" apart; /predict
fetched any path and any port of Label Studio's host.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml_backend.settings import CONFIG_DIR, Settings
from ml_backend.tools.fake_label_studio import FakeLabelStudio
from ml_backend.tools.loopback_host import LoopbackHost
from tests.support.app_client import isolated_client
from tests.synthetic import disc_scene

TOKEN = "ls-token-6d1c0e7f9a8b4c3d2e1f0a9b8c7d6e5f"
LABEL_STUDIO_ADDRESS = "127.0.0.2"
ATTACKER_ADDRESS = "127.0.0.3"
CONFIG = (CONFIG_DIR / "labeling-config.xml").read_text()
HEIGHT, WIDTH = 96, 128
UPLOAD = "/data/upload/1/scene.png"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scene_png() -> bytes:
    image, _truth = disc_scene(HEIGHT, WIDTH, seed=5)
    return png(image)


@pytest.fixture
def label_studio(scene_png: bytes) -> Iterator[FakeLabelStudio]:
    with FakeLabelStudio(TOKEN, address=LABEL_STUDIO_ADDRESS) as host:
        host.files[UPLOAD] = scene_png
        yield host


@pytest.fixture
def attacker(scene_png: bytes) -> Iterator[LoopbackHost]:
    with LoopbackHost(ATTACKER_ADDRESS) as host:
        host.files[UPLOAD] = scene_png  # it would happily serve the image, to look like Label Studio
        yield host


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    return isolated_client(tmp_path, **{**dict(REFINE="none", ALLOWED_FETCH_HOSTS=[]), **overrides})


def predict_body(image: str = UPLOAD) -> dict:
    stroke = {
        "from_name": "strokes", "to_name": "image", "type": "brushlabels",
        "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
        "value": {"format": "rle", "brushlabels": ["Object"], "touches": [
            {"type": "add", "relativePoints": [45.0, 50.0, 55.0, 50.0], "relativeStrokeWidth": 3.0}]},
    }
    click = {
        "from_name": "click", "to_name": "image", "type": "keypointlabels", "is_positive": True,
        "original_width": WIDTH, "original_height": HEIGHT,
        "value": {"x": 50.0, "y": 50.0, "width": 0.5, "keypointlabels": ["Object"]},
    }
    return {
        "project": "1.1700000000",
        "label_config": CONFIG,
        "params": {"login": None, "password": None, "context": {"result": [click]}},
        "tasks": [{"id": 1, "data": {"image": image}, "annotations": [],
                   "drafts": [{"id": 1, "user": "annotator@example.com", "result": [stroke]}]}],
    }


def tokens_seen(host: LoopbackHost) -> list[str | None]:
    return [request.authorization for request in host.requests if request.authorization]


def test_a_setup_naming_another_host_never_gets_the_old_token(
    tmp_path: Any, label_studio: FakeLabelStudio, attacker: LoopbackHost
) -> None:
    client = make_client(tmp_path)
    # Label Studio connects with its token; /predict works.
    answer = client.post("/setup", json={"hostname": label_studio.origin, "access_token": TOKEN})
    assert answer.status_code == 200, answer.text
    answer = client.post("/predict", json=predict_body())
    assert answer.status_code == 200 and answer.json()["results"][0]["result"], answer.text
    # Someone else repoints the server, without a token of their own.
    answer = client.post("/setup", json={"hostname": attacker.origin})
    assert answer.status_code == 200, answer.text
    client.post("/predict", json=predict_body("/data/upload/1/other.png"))
    assert TOKEN not in str(tokens_seen(attacker)), attacker.requests
    # Nor does an absolute URL on another host get it, while connected to Label Studio.
    client.post("/setup", json={"hostname": label_studio.origin, "access_token": TOKEN})
    listing = make_client(tmp_path / "listing", ALLOWED_FETCH_HOSTS=[ATTACKER_ADDRESS])
    listing.post("/setup", json={"hostname": label_studio.origin, "access_token": TOKEN})
    answer = listing.post("/predict", json=predict_body(attacker.url(UPLOAD)))
    assert answer.status_code == 200, answer.text
    assert attacker.requests and TOKEN not in str(tokens_seen(attacker)), attacker.requests


def test_setup_refuses_what_is_not_an_http_url_or_not_json_and_changes_nothing(
    tmp_path: Any, label_studio: FakeLabelStudio, attacker: LoopbackHost
) -> None:
    client = make_client(tmp_path)
    assert client.post("/setup", json={"hostname": label_studio.origin, "access_token": TOKEN}).status_code == 200
    for hostname in ("javascript:alert(1)", "file:///etc/passwd", "http://", "ftp://example.com", "http://u:p@x.test"):
        answer = client.post("/setup", json={"hostname": hostname, "access_token": "other"})
        assert answer.status_code == 400 and "hostname" in answer.json()["Message"], answer.text
    # A web page can POST text/plain from a visitor's browser without a CORS preflight.
    answer = client.post(
        "/setup", content=f'{{"hostname": "{attacker.origin}"}}'.encode(), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415 and answer.json()["Code"] == "UnsupportedMediaType", answer.text
    answer = client.post("/predict", json=predict_body())
    assert answer.status_code == 200 and answer.json()["results"][0]["result"], answer.text
    assert attacker.requests == []


def _predict_message(client: TestClient, hostname: str) -> str:
    # With a token of the prober's own: the fetch is really tried.
    assert client.post("/setup", json={"hostname": hostname, "access_token": "probe"}).status_code == 200
    answer = client.post("/predict", json=predict_body("/data/upload/1/probe.png"))
    assert 400 <= answer.status_code < 500, answer.text
    return answer.json()["Message"]


def test_a_repointed_server_is_no_port_scanner(tmp_path: Any, attacker: LoopbackHost) -> None:
    client = make_client(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # A port that speaks something else than HTTP (answers like Redis, then hangs up).
    with socket.socket() as other_service:
        other_service.bind(("127.0.0.1", 0))
        other_service.listen()
        other_port = other_service.getsockname()[1]

        def answer_like_redis() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = other_service.accept()
                    with connection:
                        connection.sendall(b"-ERR unknown command\r\n")

        threading.Thread(target=answer_like_redis, daemon=True).start()
        messages = {
            "closed port": _predict_message(client, f"http://127.0.0.1:{closed_port}"),
            "HTTP 404": _predict_message(client, attacker.origin),
            "not HTTP": _predict_message(client, f"http://127.0.0.1:{other_port}"),
        }
    assert len(set(messages.values())) == 1, messages
    assert attacker.requests, "the probe never reached the HTTP host"


def test_label_studio_origin_is_open_for_its_own_paths_only(tmp_path: Any, label_studio: FakeLabelStudio) -> None:
    client = make_client(tmp_path, LABEL_STUDIO_URL=label_studio.origin, LABEL_STUDIO_API_KEY=TOKEN)
    assert client.post("/predict", json=predict_body()).status_code == 200
    label_studio.requests.clear()
    for url in (label_studio.url("/secret/admin"), f"http://{LABEL_STUDIO_ADDRESS}:{label_studio.port + 1}{UPLOAD}"):
        answer = client.post("/predict", json=predict_body(url))
        assert answer.status_code == 400 and answer.json()["Code"] == "InvalidImage.Url", answer.text
    assert label_studio.requests == []
    # LABEL_STUDIO_URL pins the origin: /setup cannot repoint the server.
    assert client.post("/setup", json={"hostname": "http://127.0.0.3:1", "access_token": "x"}).status_code == 200
    assert client.post("/predict", json=predict_body()).status_code == 200


def test_connection_binds_the_token_to_its_origin() -> None:
    from ml_backend.server.labelstudio_origin import Connection, parse_origin

    settings = Settings(LABEL_STUDIO_URL=None, LABEL_STUDIO_API_KEY=None)
    connection = Connection.from_settings(settings)
    connection.apply_setup("http://ls.test:8080", "t1", settings)
    assert (connection.hostname, connection.access_token) == ("http://ls.test:8080", "t1")
    connection.apply_setup("http://LS.test:8080/", None, settings)  # the same origin, spelled otherwise
    assert connection.access_token == "t1"
    connection.apply_setup(None, "t2", settings)
    assert connection.access_token == "t2"
    connection.apply_setup("https://ls.test:8080", None, settings)  # another scheme: another origin
    assert (connection.hostname, connection.access_token) == ("https://ls.test:8080", None)
    connection.apply_setup("http://other.test", "t3", settings)
    assert (connection.hostname, connection.access_token) == ("http://other.test", "t3")
    # An API key without LABEL_STUDIO_URL has no origin to be bound to: it is not used.
    keyed = Settings(LABEL_STUDIO_URL=None, LABEL_STUDIO_API_KEY="env-key")
    assert Connection.from_settings(keyed).access_token is None
    assert parse_origin("http://[::1]:9/x", "hostname") == ("http", "::1", 9)
