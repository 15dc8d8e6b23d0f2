"""Our backend as a real subprocess (`scribble-seg serve`), connected to a test Label Studio.

The server runs from the virtual environment that runs pytest, on a free port of
127.0.0.1, with two uvicorn workers (as deployed), its result and cache folders in
a temp dir, and Label Studio's URL and token in its environment (so it can fetch
uploads even before Label Studio calls /setup).

Use from a test module:

    from tests.support.backend_server import scribble_backend  # noqa: F401

    def test_something(scribble_backend):
        client.add_ml_backend(project_id, scribble_backend.url)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml_backend.settings import Settings
from tests.support.label_studio import LabelStudioServer, free_port
from tests.support.service_process import HOST, ServiceProcess

WORKERS = 2
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3  # a free port can be taken by someone else between finding and binding it


class BackendError(RuntimeError):
    """Our backend could not be started."""


class BackendServer(ServiceProcess):
    """`scribble-seg serve` on 127.0.0.1, stopped with its whole process group."""

    not_started = BackendError
    title = "the backend"

    def __init__(self, label_studio_url: str, label_studio_token: str, settings: dict[str, str] | None = None) -> None:
        self.label_studio_url = label_studio_url
        self.label_studio_token = label_studio_token
        # Further settings of this backend (e.g. DRAFT_WAIT_SECONDS), as environment variables.
        self.settings = dict(settings or {})
        self.directory = Path(tempfile.mkdtemp(prefix="scribble-backend-"))
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    def _log_file(self) -> Path:
        return self.directory / "backend.log"

    def environment(self) -> dict[str, str]:
        # Settings of the calling shell (ENGINE, REDIS_URL, API_KEYS, ...) must not leak in.
        environment = {name: value for name, value in os.environ.items() if name not in Settings.model_fields}
        environment.update(
            LABEL_STUDIO_URL=self.label_studio_url,
            LABEL_STUDIO_API_KEY=self.label_studio_token,
            RESULT_DIR=str(self.directory / "results"),
            CACHE_DIR=str(self.directory / "cache"),
            LOG_LEVEL="INFO",
        )
        environment.update(self.settings)
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return environment

    def start(self) -> BackendServer:
        executable = Path(sys.executable).parent / "scribble-seg"
        if not executable.exists():
            raise BackendError(f"{executable} is missing: install the project into this venv (pip install -e .)")
        started_at = time.monotonic()
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            command = [str(executable), "serve", "--host", HOST, "--port", str(self.port), "--workers", str(WORKERS)]
            with self.log_path.open("ab") as log_file:
                self.process = subprocess.Popen(
                    command,
                    # No stray .env of the repository or the shell's folder is read.
                    cwd=self.directory,
                    env=self.environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_until_healthy():
                self.startup_seconds = time.monotonic() - started_at
                return self
            self.stop_process_group(STOP_TIMEOUT_S)
        tail = self.log_tail()
        self.stop()
        raise BackendError(f"scribble-seg serve did not become healthy in {START_ATTEMPTS} attempts; log:\n{tail}")

    def _wait_until_healthy(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/health", timeout=2.0)
                if answer.status_code == 200 and answer.json().get("status") == "UP":
                    return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        self.stop_process_group(STOP_TIMEOUT_S)
        shutil.rmtree(self.directory, ignore_errors=True)


# Shared through a module-level slot, like the Label Studio fixture: several test
# modules import this fixture, and pytest would otherwise start one backend each.
_shared_backend: BackendServer | None = None
_shared_backend_users = 0


@pytest.fixture(scope="session")
def scribble_backend(label_studio: LabelStudioServer) -> Iterator[BackendServer]:
    """Our backend for the whole session, pointed at the session's Label Studio; fails
    (never skips) when it cannot start."""
    global _shared_backend, _shared_backend_users
    if _shared_backend is None:
        _shared_backend = BackendServer(label_studio.url, label_studio.token).start()
    _shared_backend_users += 1
    try:
        yield _shared_backend
    finally:
        _shared_backend_users -= 1
        if _shared_backend_users == 0:
            _shared_backend.stop()
            _shared_backend = None
