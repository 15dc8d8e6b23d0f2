"""Embeddings computed before the first click: opened tasks, webhooks, and the RQ worker."""

import json

from rq import SimpleWorker

from ml_backend import jobs
from ml_backend.server.precompute import QUEUE_NAME, QueuePrecomputer
from ml_backend.server.redis_cache import connect_redis
from ml_backend.settings import get_settings

from .test_labelstudio_backend import (  # noqa: F401  (fixtures)
    CONFIG,
    FIXTURES,
    TOKEN,
    _default_draft,
    _keypoint,
    fake_label_studio,
    interactive_body,
    label_studio_host,
    make_client,
    scene,
)


def _opened_task_body():
    body = json.loads((FIXTURES / "ls_batch_predict.json").read_text())
    body["label_config"] = CONFIG
    body["tasks"][0].update({"id": 21, "annotations": [], "data": {"image": "/data/upload/1/scene.png"}})
    body["params"] = {"login": None, "password": None, "context": None}
    return body


def _embeds(client):
    lookups = client.app.state.service.segmenter.embedding_cache.inner
    return len(lookups)


def test_opening_a_task_computes_its_embedding_in_the_background(tmp_path, label_studio_host):
    client = make_client(tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN)
    answer = client.post("/predict", json=_opened_task_body())
    assert answer.status_code == 200 and answer.json()["results"][0]["result"] == []
    client.app.state.labelstudio.precomputer.wait()
    assert _embeds(client) == 1
    # The first click finds the embedding ready.
    engine = client.app.state.service.segmenter.engine
    calls = []
    original = engine.embed
    engine.embed = lambda image: calls.append(1) or original(image)
    assert client.post("/predict", json=interactive_body(_default_draft(), [_keypoint(100, 80)])).status_code == 200
    assert calls == []


def test_a_webhook_for_new_tasks_schedules_their_embeddings(tmp_path, label_studio_host):
    client = make_client(tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN)
    event = {
        "action": "TASKS_CREATED",
        "project": {"id": 1, "label_config": CONFIG},
        "tasks": [{"id": 30, "data": {"image": "/data/upload/1/scene.png"}}, {"id": 31, "data": {}}],
    }
    answer = client.post("/webhook", json=event)
    assert answer.status_code == 200 and answer.json()["scheduled"] == 1
    client.app.state.labelstudio.precomputer.wait()
    assert _embeds(client) == 1
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED"}).status_code == 200


def test_the_worker_fills_the_shared_cache_from_queued_jobs(redis_server, label_studio_host, monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio_host)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RESULT_DIR", str(tmp_path / "results"))
    get_settings.cache_clear()
    monkeypatch.setattr(jobs, "_service", None)
    try:
        client = connect_redis(redis_server.url)
        QueuePrecomputer(client).schedule("/data/upload/1/scene.png", None, None, 21)
        assert client.llen(f"rq:queue:{QUEUE_NAME}") == 1
        SimpleWorker([QUEUE_NAME], connection=client).work(burst=True)
        assert len(client.keys("scribble:embedding:*")) == 1
        assert client.llen(f"rq:queue:{QUEUE_NAME}") == 0
    finally:
        get_settings.cache_clear()
