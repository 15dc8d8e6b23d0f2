"""Result store: the folder and Redis backends, signed expiring links, shared signing keys.

Redis is a real ``redis-server`` started for this module; "workers" are separate app
instances built from the same settings, as separate uvicorn worker processes would be.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml_backend.errors import ClientError
from ml_backend.server.app import create_app
from ml_backend.server.http_errors import http_status
from ml_backend.server.result_store import (
    REDIS_RESULT_PREFIX,
    RESULT_NAME,
    SIGNING_KEY_FILE,
    FolderBackend,
    RedisBackend,
    build_result_store,
    persisted_signing_key,
)
from ml_backend.settings import Settings
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture
from tests.synthetic import disc_scene, scribbles_for

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"pretend png body"
JPEG_BYTES = b"\xff\xd8\xff" + b"pretend jpeg body"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "RESULT_DIR": tmp_path / "results",
        "RESULT_TTL_SECONDS": 1800,
        "RESULT_SIGNING_KEY": None,
        "REDIS_URL": None,
        "API_KEYS": [],
        "PUBLIC_URL": None,
        "ALLOWED_FETCH_HOSTS": [],
        "LABEL_STUDIO_URL": None,
    }
    values.update(overrides)
    return Settings(**values)


def refused(call: object, *args: object) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


# ------------------------------------------------------------------ folder backend


def test_folder_store_round_trip_keeps_bytes_and_media_type(tmp_path: Path) -> None:
    store = build_result_store(settings_for(tmp_path))
    png = store.save(PNG_BYTES, "image/png")
    jpeg = store.save(JPEG_BYTES, "image/jpeg")
    assert RESULT_NAME.match(png.name) and png.name.endswith(".png")
    assert jpeg.name.endswith(".jpg") and jpeg.name != png.name
    opened_png = store.open(png.name, str(png.expires), png.signature)
    opened_jpeg = store.open(jpeg.name, str(jpeg.expires), jpeg.signature)
    assert (opened_png.content, opened_png.media_type) == (PNG_BYTES, "image/png")
    assert (opened_jpeg.content, opened_jpeg.media_type) == (JPEG_BYTES, "image/jpeg")
    # Written through a temporary file and renamed: nothing half-written is left behind.
    stored = sorted(path.name for path in (tmp_path / "results").iterdir())
    assert stored == sorted([png.name, jpeg.name, SIGNING_KEY_FILE])
    with pytest.raises(ValueError):
        store.save(b"GIF89a", "image/gif")


def test_folder_store_links_expire_after_the_ttl_and_files_are_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    store = build_result_store(settings_for(tmp_path, RESULT_TTL_SECONDS=60), clock=clock)
    backend = store.backend
    assert isinstance(backend, FolderBackend)
    signed = store.save(PNG_BYTES, "image/png")
    assert signed.expires == int(clock.now) + 60

    clock.now += 59
    assert store.open(signed.name, str(signed.expires), signed.signature).content == PNG_BYTES

    clock.now += 2  # past the link's expiry
    error = refused(store.open, signed.name, str(signed.expires), signed.signature)
    assert (http_status(error), error.code) == (403, "AccessDenied")
    assert "expired" in error.message and "60 s" in error.message

    # Once the store has dropped the file, even a freshly signed link finds nothing.
    clock.now += 5
    assert backend.get(signed.name) is None
    later = store.sign(signed.name, int(clock.now) + 60)
    error = refused(store.open, later.name, str(later.expires), later.signature)
    assert (http_status(error), error.code) == (404, "NoSuchKey")
    assert not (tmp_path / "results" / signed.name).exists()


def test_folder_purge_removes_only_expired_results(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = FolderBackend(tmp_path, clock=clock)
    backend.put("a" * 32 + ".png", PNG_BYTES, ttl_seconds=10)
    backend.put("b" * 32 + ".jpg", JPEG_BYTES, ttl_seconds=100)
    (tmp_path / "unrelated.txt").write_text("not a result")
    clock.now += 50
    assert backend.purge_expired() == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b" * 32 + ".jpg", "unrelated.txt"]
    assert backend.get("b" * 32 + ".jpg") == JPEG_BYTES


def test_folder_store_cleans_up_expired_files_as_new_results_arrive(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = FolderBackend(tmp_path, clock=clock)
    backend.put("a" * 32 + ".png", PNG_BYTES, ttl_seconds=10)
    clock.now += 3600  # long after expiry; nobody asked for it again
    backend.put("b" * 32 + ".png", PNG_BYTES, ttl_seconds=10)
    assert not (tmp_path / ("a" * 32 + ".png")).exists()
    assert (tmp_path / ("b" * 32 + ".png")).exists()


@pytest.mark.parametrize(
    "change",
    ["signature", "expires", "name", "missing signature", "missing expires", "non-numeric expires"],
)
def test_tampered_links_are_refused(tmp_path: Path, change: str) -> None:
    store = build_result_store(settings_for(tmp_path))
    signed = store.save(PNG_BYTES, "image/png")
    other = store.save(PNG_BYTES, "image/png")
    name, expires, signature = signed.name, str(signed.expires), signed.signature
    if change == "signature":
        signature = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    elif change == "expires":
        expires = str(signed.expires + 3600)  # a longer life is exactly what must not be forgeable
    elif change == "name":
        name = other.name  # another existing result with this link's signature
    elif change == "missing signature":
        signature = ""
    elif change == "missing expires":
        expires = ""
    elif change == "non-numeric expires":
        expires = "²"
    error = refused(store.open, name, expires, signature)
    assert http_status(error) == 403
    assert error.code in ("SignatureDoesNotMatch", "AccessDenied")
    assert "ResultUrl" in error.message


@pytest.mark.parametrize("name", ["../signing.key", SIGNING_KEY_FILE, "abc.png", "A" * 32 + ".png", "a" * 32 + ".gif"])
def test_names_that_are_not_results_are_not_found(tmp_path: Path, name: str) -> None:
    store = build_result_store(settings_for(tmp_path))
    signed = store.sign(name, int(time.time()) + 60)  # even correctly signed
    error = refused(store.open, name, str(signed.expires), signed.signature)
    assert (http_status(error), error.code) == (404, "NoSuchKey")


def test_configured_signing_key_is_shared_by_stores_without_a_shared_folder(tmp_path: Path) -> None:
    first = build_result_store(settings_for(tmp_path / "one", RESULT_SIGNING_KEY="a-long-enough-secret-key"))
    second = build_result_store(settings_for(tmp_path / "two", RESULT_SIGNING_KEY="a-long-enough-secret-key"))
    third = build_result_store(settings_for(tmp_path / "three", RESULT_SIGNING_KEY="another-long-enough-key!"))
    signed = first.sign("c" * 32 + ".png", int(time.time()) + 60)
    assert second.sign(signed.name, signed.expires) == signed
    assert third.sign(signed.name, signed.expires).signature != signed.signature
    assert not (tmp_path / "one" / "results" / SIGNING_KEY_FILE).exists()  # nothing generated
    with pytest.raises(ValueError, match="16 bytes"):
        build_result_store(settings_for(tmp_path / "four", RESULT_SIGNING_KEY="short"))


def test_generated_signing_key_is_persisted_private_and_reused(tmp_path: Path) -> None:
    first = build_result_store(settings_for(tmp_path))
    key_file = tmp_path / "results" / SIGNING_KEY_FILE
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = build_result_store(settings_for(tmp_path))  # a restart, or another worker
    signed = first.save(PNG_BYTES, "image/png")
    assert second.open(signed.name, str(signed.expires), signed.signature).content == PNG_BYTES
    elsewhere = build_result_store(settings_for(tmp_path / "elsewhere"))
    assert http_status(refused(elsewhere.open, signed.name, str(signed.expires), signed.signature)) == 403


def _create_key_and_report(path: str, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue) -> None:
    start.wait(10)
    results.put(persisted_signing_key(Path(path)))


def test_workers_starting_at_once_agree_on_one_signing_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    start = context.Event()
    results = context.Queue()
    key_path = tmp_path / SIGNING_KEY_FILE
    workers = [context.Process(target=_create_key_and_report, args=(str(key_path), start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    start.set()
    keys = [results.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert sorted(path.name for path in tmp_path.iterdir()) == [SIGNING_KEY_FILE]  # no temporary files left


# ------------------------------------------------------------------ Redis backend


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:  # noqa: F811 - the imported fixture
    client = redis_server.client()
    client.flushdb()
    client.close()
    return redis_server.url


def test_redis_store_round_trip_with_ttl(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:  # noqa: F811
    store = build_result_store(settings_for(tmp_path, REDIS_URL=redis_url, RESULT_TTL_SECONDS=120))
    assert isinstance(store.backend, RedisBackend)
    signed = store.save(JPEG_BYTES, "image/jpeg")
    opened = store.open(signed.name, str(signed.expires), signed.signature)
    assert (opened.content, opened.media_type) == (JPEG_BYTES, "image/jpeg")
    client = redis_server.client()
    remaining_ms = client.pttl(REDIS_RESULT_PREFIX + signed.name)
    assert 119_000 <= remaining_ms <= 121_000  # SETEX with the TTL (+1 s so the file outlives the link)
    # Nothing lands in the folder: Redis holds results and the generated key.
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    client.close()
    store.close()


def test_redis_drops_results_when_they_expire(tmp_path: Path, redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    backend.put("d" * 32 + ".png", PNG_BYTES, ttl_seconds=1)
    assert backend.get("d" * 32 + ".png") == PNG_BYTES
    deadline = time.monotonic() + 5
    while backend.get("d" * 32 + ".png") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert backend.get("d" * 32 + ".png") is None
    backend.close()


def test_redis_stores_agree_on_a_generated_key_without_a_shared_folder(tmp_path: Path, redis_url: str) -> None:
    first = build_result_store(settings_for(tmp_path / "machine-a", REDIS_URL=redis_url))
    second = build_result_store(settings_for(tmp_path / "machine-b", REDIS_URL=redis_url))
    signed = first.save(PNG_BYTES, "image/png")
    assert second.open(signed.name, str(signed.expires), signed.signature).content == PNG_BYTES
    first.close()
    second.close()


# ------------------------------------------------------------------ workers sharing results


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _segment_with(client: TestClient) -> str:
    image, mask = disc_scene(96, 120, seed=4)
    positive, negative = scribbles_for(mask)
    response = client.post(
        "/",
        data={"Action": "InteractiveScribbleSegmentation", "ReturnForm": "only_alpha"},
        files={
            "Image": ("image.png", _png(image), "image/png"),
            "PosScribbleImage": ("positive.png", _png(positive.astype(np.uint8) * 255), "image/png"),
            "NegScribbleImage": ("negative.png", _png(negative.astype(np.uint8) * 255), "image/png"),
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["Data"]["ResultUrl"]


def test_two_workers_sharing_redis_serve_each_others_results(tmp_path: Path, redis_url: str) -> None:
    # Different folders, no configured key: only Redis is shared, as between machines.
    worker_a = TestClient(create_app(settings_for(tmp_path / "a", REDIS_URL=redis_url)))
    worker_b = TestClient(create_app(settings_for(tmp_path / "b", REDIS_URL=redis_url)))
    url_from_a = _segment_with(worker_a)
    url_from_b = _segment_with(worker_b)
    for url in (url_from_a, url_from_b):
        served_by_a, served_by_b = worker_a.get(url), worker_b.get(url)
        assert served_by_a.status_code == served_by_b.status_code == 200
        assert served_by_a.content == served_by_b.content
        assert served_by_a.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(served_by_b.content)).mode == "L"


def test_workers_without_a_shared_store_cannot_serve_each_others_results(tmp_path: Path) -> None:
    # The counterpart: same signing key, separate folders -> a valid link, but 404.
    key = "shared-key-but-no-shared-folder"
    worker_a = TestClient(create_app(settings_for(tmp_path / "a", RESULT_SIGNING_KEY=key)))
    worker_b = TestClient(create_app(settings_for(tmp_path / "b", RESULT_SIGNING_KEY=key)))
    url = _segment_with(worker_a)
    assert worker_a.get(url).status_code == 200
    response = worker_b.get(url)
    assert response.status_code == 404 and response.json()["Code"] == "NoSuchKey"


def test_two_workers_sharing_a_result_folder_serve_each_others_results(tmp_path: Path) -> None:
    worker_a = TestClient(create_app(settings_for(tmp_path)))
    worker_b = TestClient(create_app(settings_for(tmp_path)))
    url = _segment_with(worker_a)
    assert worker_b.get(url).status_code == 200
    assert worker_b.get(url).content == worker_a.get(url).content
    assert os.listdir(tmp_path / "results")  # the result and the one generated key
