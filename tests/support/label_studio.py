"""A real Label Studio 1.23.2 for end-to-end tests, and a small REST client for it.

Label Studio runs from its own virtual environment (`.venv-label-studio/`, made by
`scripts/install-label-studio.sh`) because its dependency pins differ from ours.
Each server gets a fresh data directory, a free port on 127.0.0.1 and an admin
user with a known legacy API token.

A fresh Label Studio database takes minutes of Django migrations on a 2-core
machine, so the first start migrates a template database once (kept inside
`.venv-label-studio/`) and every server after that starts from a copy of it.

Use from a test:

    def test_something(label_studio):
        client = label_studio.client
        project = client.create_project("demo", LABEL_CONFIG)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service_process import ServiceProcess

LABEL_STUDIO_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_DIR = REPO_ROOT / ".venv-label-studio"
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-label-studio.sh"
TEMPLATE_DIR = VENV_DIR / "template-db"
TEMPLATE_DATABASE = TEMPLATE_DIR / f"label_studio-{LABEL_STUDIO_VERSION}.sqlite3"

INSTALL_TIMEOUT_S = 1800.0
MIGRATION_TIMEOUT_S = 900.0
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 6000

# Keeps Label Studio offline and lets it call an ML backend on 127.0.0.1: without
# the last two it refuses local backends (and their auto-created /webhook) with 403.
OFFLINE_ENVIRONMENT = {
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "ML_BLOCK_LOCAL_IP": "false",
    "SSRF_PROTECTION_ENABLED": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "FEATURE_FLAGS_OFFLINE": "true",
    "DJANGO_DB": "sqlite",
    "DEBUG": "false",
}

# Variables of the calling environment that would point Label Studio at another
# database, settings module or Python installation.
_INHERITED_PREFIXES_TO_DROP = ("LABEL_STUDIO_", "HEARTEX_", "DJANGO_", "POSTGRE_", "MYSQL_")
_INHERITED_NAMES_TO_DROP = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HOST", "PORT", "USERNAME", "PASSWORD",
                            "USER_TOKEN", "DATABASE_NAME", "BASE_DATA_DIR")


class LabelStudioError(RuntimeError):
    """Label Studio could not be installed, started or asked something."""


# --------------------------------------------------------------------------- install


def installed_version(venv_dir: Path = VENV_DIR) -> str | None:
    """The label-studio version recorded in the venv's package metadata (never runs
    `label-studio --version`, which migrates a database in $HOME and seems to hang)."""
    if not (venv_dir / "bin" / "label-studio").exists():
        return None
    for dist_info in venv_dir.glob("lib/python*/site-packages/label_studio-*.dist-info"):
        return dist_info.name.removeprefix("label_studio-").removesuffix(".dist-info")
    return None


def ensure_installed() -> Path:
    """Runs the install script unless the pinned Label Studio is already in its venv;
    returns the `label-studio` executable."""
    if installed_version() != LABEL_STUDIO_VERSION:
        completed = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if completed.returncode != 0 or installed_version() != LABEL_STUDIO_VERSION:
            output = (completed.stdout + completed.stderr)[-LOG_TAIL_CHARS:]
            raise LabelStudioError(
                f"{INSTALL_SCRIPT.name} exited {completed.returncode} and label-studio "
                f"{LABEL_STUDIO_VERSION} is not in {VENV_DIR}:\n{output}"
            )
    return VENV_DIR / "bin" / "label-studio"


def label_studio_environment(data_dir: Path, host_url: str | None = None) -> dict[str, str]:
    """The environment a Label Studio process runs with: ours, cleaned, plus the
    offline settings and the data directory."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES_TO_DROP) and name not in _INHERITED_NAMES_TO_DROP
    }
    environment.update(OFFLINE_ENVIRONMENT)
    environment["PATH"] = f"{VENV_DIR / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    environment["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir)
    environment["SECRET_KEY"] = secrets.token_urlsafe(40)
    if host_url:
        # The hostname Label Studio hands to an ML backend in /setup.
        environment["LABEL_STUDIO_HOST"] = host_url
    return environment


def ensure_template_database(executable: Path) -> Path:
    """A migrated, user-less Label Studio database to copy into each data directory."""
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(TEMPLATE_DIR / ".lock", "w") as lock_file:
        # Two test sessions at once must not both migrate, nor read a half-written file.
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if TEMPLATE_DATABASE.exists():
            return TEMPLATE_DATABASE
        build_dir = Path(tempfile.mkdtemp(prefix="build-", dir=TEMPLATE_DIR))
        try:
            # Every label-studio command migrates first; `user` then just prints and exits.
            command = [str(executable), "user", "--data-dir", str(build_dir), "--username", "template@localhost"]
            try:
                completed = subprocess.run(
                    command,
                    cwd=build_dir,
                    env=label_studio_environment(build_dir),
                    capture_output=True,
                    text=True,
                    timeout=MIGRATION_TIMEOUT_S,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as error:
                raise LabelStudioError(
                    f"migrating the Label Studio template database took over {MIGRATION_TIMEOUT_S:.0f} s"
                ) from error
            built_database = build_dir / "label_studio.sqlite3"
            if completed.returncode != 0 or not built_database.exists():
                output = (completed.stdout + completed.stderr)[-LOG_TAIL_CHARS:]
                raise LabelStudioError(
                    f"migrating the Label Studio template database failed (exit {completed.returncode}):\n{output}"
                )
            os.replace(built_database, TEMPLATE_DATABASE)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
    return TEMPLATE_DATABASE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- client


class LabelStudioClient:
    """The few REST calls the tests need, authenticated with a legacy API token."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Token {token}"},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise LabelStudioError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        if not response.content:
            return None
        return response.json()

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/api/current-user/whoami")

    def create_project(
        self, title: str, label_config: str, show_collab_predictions: bool = True, **settings: Any
    ) -> dict[str, Any]:
        body = {"title": title, "label_config": label_config, "show_collab_predictions": show_collab_predictions}
        return self.request("POST", "/api/projects", json={**body, **settings})

    def import_image(self, project_id: int, path: Path | str) -> dict[str, Any]:
        """Uploads one image file; Label Studio makes one task whose `data.image` is
        the upload's relative URL (`/data/upload/<project>/<uuid>-<name>`)."""
        image_path = Path(path)
        with image_path.open("rb") as image_file:
            files = {"file": (image_path.name, image_file, "application/octet-stream")}
            return self.request("POST", f"/api/projects/{project_id}/import", files=files)

    def list_tasks(self, project_id: int) -> list[dict[str, Any]]:
        answer = self.request("GET", "/api/tasks", params={"project": project_id, "page_size": 1000})
        # 1.23.2 answers {"tasks": [...], "total": n, ...}; older releases a bare list.
        return answer["tasks"] if isinstance(answer, dict) else answer

    def get_task(self, task_id: int) -> dict[str, Any]:
        """The task with its `annotations`, `predictions` and `drafts` expanded."""
        return self.request("GET", f"/api/tasks/{task_id}")

    def create_draft(
        self, task_id: int, result: list[dict[str, Any]], lead_time: float = 1.0, **fields: Any
    ) -> dict[str, Any]:
        """Saves a draft as the labeling UI's autosave does. 1.23.2 has no `POST
        /api/drafts`: drafts are created under the task (`/api/drafts/{id}/` only
        reads, updates and deletes one)."""
        body = {"result": result, "lead_time": lead_time, **fields}
        return self.request("POST", f"/api/tasks/{task_id}/drafts", json=body)

    def delete_draft(self, draft_id: int) -> None:
        self.request("DELETE", f"/api/drafts/{draft_id}/")

    def add_ml_backend(
        self, project_id: int, url: str, title: str = "ML backend", is_interactive: bool = True
    ) -> dict[str, Any]:
        """Label Studio calls the backend's /health and /setup before answering."""
        body = {"project": project_id, "url": url, "title": title, "is_interactive": is_interactive}
        return self.request("POST", "/api/ml", json=body)

    def interactive_annotating(self, ml_backend_id: int, task_id: int, context: dict[str, Any]) -> dict[str, Any]:
        """What the labeling UI asks for a smart-tool click; returns the backend's
        first result (`{"result": [...], "score": ..., "model_version": ...}`)."""
        answer = self.request(
            "POST", f"/api/ml/{ml_backend_id}/interactive-annotating", json={"task": task_id, "context": context}
        )
        # Backend failures come back as HTTP 200 with an `errors` list.
        if "errors" in answer or "data" not in answer:
            raise LabelStudioError(f"interactive annotating via ML backend {ml_backend_id} failed: {answer}")
        return answer["data"]

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, **fields})

    def retrieve_predictions(self, project_id: int, task_ids: list[int] | None = None) -> dict[str, Any]:
        """The Data Manager action "Retrieve Predictions": Label Studio posts the
        tasks to the backend's /predict with a null context and stores the answers."""
        if task_ids is None:
            selected_items: dict[str, Any] = {"all": True, "excluded": []}
        else:
            selected_items = {"all": False, "included": list(task_ids)}
        return self.request(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": selected_items},
        )

    def list_predictions(self, task_id: int) -> list[dict[str, Any]]:
        return self.request("GET", "/api/predictions", params={"task": task_id})


# --------------------------------------------------------------------------- server


class LabelStudioServer(ServiceProcess):
    """A Label Studio process on 127.0.0.1, stopped with its whole process group."""

    not_started = LabelStudioError
    title = "Label Studio"
    log_tail_chars = LOG_TAIL_CHARS

    def __init__(
        self,
        username: str = "harness@example.com",
        password: str | None = None,
        token: str | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.username = username
        self.password = password or secrets.token_hex(16)
        self.token = token or secrets.token_hex(20)
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._client: LabelStudioClient | None = None

    def _log_file(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "label-studio.log"

    @property
    def client(self) -> LabelStudioClient:
        if self._client is None:
            self._client = LabelStudioClient(self.url, self.token)
        return self._client

    def start(self) -> LabelStudioServer:
        executable = ensure_installed()
        template = ensure_template_database(executable)
        started_at = time.monotonic()
        self.data_dir = Path(tempfile.mkdtemp(prefix="label-studio-"))
        shutil.copyfile(template, self.data_dir / "label_studio.sqlite3")
        self.port = free_port()
        command = [
            str(executable), "start",
            "--no-browser",
            "--internal-host", "127.0.0.1",
            "-p", str(self.port),
            "--data-dir", str(self.data_dir),
            "--username", self.username,
            "--password", self.password,
            "--user-token", self.token,
            "--enable-legacy-api-token",
        ]  # fmt: skip
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                env=label_studio_environment(self.data_dir, host_url=self.url),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started_at
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        assert self.process is not None
        while True:
            exit_code = self.process.poll()
            if exit_code is not None:
                raise LabelStudioError(f"Label Studio exited with {exit_code} while starting; log:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise LabelStudioError(
                    f"Label Studio did not answer {self.url}/health within {self.startup_timeout_s:.0f} s; "
                    f"log:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        # Label Studio silently moves to the next port when its port is taken; the
        # token proves that the server answering is this one.
        try:
            email = self.client.whoami().get("email")
        except LabelStudioError as error:
            raise LabelStudioError(f"{self.url} does not accept this server's token: {error}") from error
        if email != self.username:
            raise LabelStudioError(f"{self.url} answers as {email!r}, expected {self.username!r}")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.stop_process_group(STOP_TIMEOUT_S)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# The fixture may be imported both by tests/conftest.py and by a test module; pytest
# then registers it twice, so the server is shared through a module-level slot to
# keep it to one Label Studio per test session.
_shared_server: LabelStudioServer | None = None
_shared_server_users = 0


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudioServer]:
    """One real Label Studio for the whole test session; fails (never skips) when it
    cannot be installed or started."""
    global _shared_server, _shared_server_users
    if _shared_server is None:
        _shared_server = LabelStudioServer().start()
    _shared_server_users += 1
    try:
        yield _shared_server
    finally:
        _shared_server_users -= 1
        if _shared_server_users == 0:
            _shared_server.stop()
            _shared_server = None
