"""``scribble-seg warmup --project ID`` against a real Label Studio: every task's embedding
lands in Redis, where any worker finds it before the annotator's first click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ml_backend.config import labeling_config
from ml_backend.core.cache import image_digest
from ml_backend.engine_registry import create_engine
from tests.support.label_studio import LabelStudioServer
from tests.support.redis_server import RedisServer
from tests.synthetic import disc_scene

LABEL_CONFIG = labeling_config()


def test_warmup_embeds_every_task_of_a_project_into_redis(
    label_studio: LabelStudioServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    client = label_studio.client
    project = client.create_project("warmup", LABEL_CONFIG)
    expected_keys = set()
    engine = create_engine("geodesic_grabcut")
    for seed in range(3):
        image, _ = disc_scene(120 + 10 * seed, 160, seed=seed)
        path = tmp_path / f"scene-{seed}.png"
        Image.fromarray(image).save(path)
        assert client.import_image(project["id"], path)["task_count"] == 1
        expected_keys.add(f"scribble:embedding:{engine.identity}:{image_digest(np.asarray(Image.open(path).convert('RGB')))}")
    redis = redis_server.client()
    redis.flushdb()

    environment = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "ENGINE": "geodesic_grabcut",
        "CACHE_DIR": str(tmp_path / "cache"),
        "RESULT_DIR": str(tmp_path / "results"),
    }
    command = [sys.executable, "-m", "ml_backend.cli", "warmup", "--project", str(project["id"]),
               "--url", label_studio.url, "--api-key", label_studio.token]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"project {project['id']}: 3 of 3 embeddings ready" in finished.stdout
    assert "3/3" in finished.stderr  # the progress bar reached the end

    stored = {key.decode() for key in redis.scan_iter("scribble:embedding:*") if b":lock:" not in key}
    assert stored == expected_keys


def test_warmup_names_what_is_missing(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LABEL_STUDIO")}
    finished = subprocess.run(
        [sys.executable, "-m", "ml_backend.cli", "warmup", "--project", "1"],
        env={**environment, "CACHE_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 2
    assert "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in finished.stderr
    assert "Traceback" not in finished.stderr
