"""Compose and the Dockerfile, checked with `docker-compose config` (no Docker engine runs here)
and, for Redis's settings, against a real redis-server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis
import yaml

from ml_backend.server.precompute import QUEUE_NAME, QueuePrecomputer
from ml_backend.server.redis_cache import connect_redis
from tests.support.redis_server import redis_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PASSWORD = "0123456789abcdef0123456789abcdef"


def compose_config(*arguments: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: scripts/install-system-packages.sh installs it"
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_PASSWORD", "ENGINE", "PORT")}
    if password is not None:
        env["REDIS_PASSWORD"] = password
    return subprocess.run(
        [docker_compose, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *arguments, "config"],
        capture_output=True, text=True, env=env, timeout=120,
    )


@pytest.fixture(scope="module")
def services() -> dict:
    run = compose_config("--profile", "gpu")
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)["services"]


def redis_command(services: dict) -> str:
    return " ".join(services["redis"]["command"])


def test_the_compose_file_has_no_obsolete_version_key():
    assert "version" not in yaml.safe_load(COMPOSE_FILE.read_text())


def test_backend_and_scalable_workers_share_one_image_and_redis(services):
    backend, worker = services["backend"], services["worker"]
    assert backend["image"] == worker["image"]
    assert worker["command"] == ["scribble-seg", "worker"]
    # --scale worker=N needs a worker without a fixed name or a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert backend["ports"][0]["target"] == 9090
    for service in (backend, worker):
        assert service["environment"]["REDIS_URL"] == f"redis://:{PASSWORD}@redis:6379/0"
        assert service["environment"]["PRECOMPUTE"] == "queue"
        assert "redis" in service["depends_on"]


def test_redis_requires_the_password_and_never_evicts_the_queue(services):
    command = redis_command(services)
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == PASSWORD
    policy = re.search(r"--maxmemory-policy (\S+)", command).group(1)
    assert policy in ("volatile-lru", "volatile-lfu", "volatile-ttl", "noeviction")
    refused = compose_config(password=None)
    assert refused.returncode != 0 and "REDIS_PASSWORD" in refused.stderr


def test_every_data_folder_is_on_a_writable_volume(services):
    for name in ("backend", "worker", "backend-gpu", "worker-gpu"):
        service = services[name]
        assert service["volumes"] == ["data:/data:rw"], name
        for setting in ("MODEL_DIR", "RESULT_DIR", "CACHE_DIR"):
            assert service["environment"][setting].startswith("/data/"), (name, setting)


def test_the_gpu_profile_builds_cuda_torch_and_reserves_a_device(services):
    for name in ("backend-gpu", "worker-gpu"):
        service = services[name]
        assert service["profiles"] == ["gpu"]
        assert "/whl/cu" in service["build"]["args"]["TORCH_INDEX_URL"]
        assert service["image"] != services["backend"]["image"]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert service["environment"]["DEVICE"] == "cuda"
    assert services["worker-gpu"]["command"] == ["scribble-seg", "worker"]
    # Services with a profile start only when it is named (docker-compose 1.29's `config`
    # lists them all, so the profile itself is what is checked).
    assert all("profiles" not in services[name] for name in ("backend", "worker", "redis"))


def test_the_dockerfile_runs_unprivileged_and_writes_only_to_the_volume():
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert 'VOLUME ["/data"]' in DOCKERFILE
    for setting in ("MODEL_DIR", "RESULT_DIR", "CACHE_DIR"):
        assert re.search(rf"{setting}=/data/\w+", DOCKERFILE), setting
    assert "COPY config" not in DOCKERFILE  # the defaults are package data now


def test_the_compose_redis_settings_keep_queued_jobs_under_memory_pressure(services, redis_server):  # noqa: F811
    """The policy from the compose file, on a real Redis full of cache entries."""
    policy = re.search(r"--maxmemory-policy (\S+)", redis_command(services)).group(1)
    admin = redis_server.client()
    admin.config_set("requirepass", PASSWORD)
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=redis_server.host, port=redis_server.port).ping()
        client = connect_redis(f"redis://:{PASSWORD}@{redis_server.host}:{redis_server.port}/0")
        client.flushdb()
        QueuePrecomputer(client).schedule("http://ls.example/data/upload/1/a.png", "http://ls.example", "token", 1)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + 2 * 1024 * 1024)
        client.config_set("maxmemory-policy", policy)
        mask = np.random.default_rng(0).random((1024, 1024)) > 0.5
        for index in range(40):  # far more than 2 MB of cache-like entries, each with a TTL
            try:
                client.set(f"filler-{index}", np.packbits(mask).tobytes(), ex=3600)
            except redis.exceptions.OutOfMemoryError:
                assert policy == "noeviction"
                break
        assert client.llen(f"rq:queue:{QUEUE_NAME}") == 1
        (job_id,) = [job.decode() for job in client.lrange(f"rq:queue:{QUEUE_NAME}", 0, -1)]
        assert client.exists(f"rq:job:{job_id}") and client.ttl(f"rq:job:{job_id}") == -1
        if policy != "noeviction":
            assert int(client.info("stats")["evicted_keys"]) > 0  # the cache made room
    finally:
        admin_with_password = redis.Redis(host=redis_server.host, port=redis_server.port, password=PASSWORD)
        admin_with_password.config_set("maxmemory", 0)
        admin_with_password.flushdb()
        admin_with_password.config_set("requirepass", "")
