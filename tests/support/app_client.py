"""An in-process app with none of the machine's settings: no Redis, no Label Studio, no auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ml_backend.server.app import create_app
from ml_backend.settings import Settings


def isolated_client(tmp_path: Path, **overrides: Any) -> TestClient:
    """A TestClient whose folders live under ``tmp_path``; ``overrides`` are settings."""
    values: dict[str, Any] = {
        "RESULT_DIR": tmp_path / "results",
        "CACHE_DIR": tmp_path / "cache",
        "ENGINE": "grabcut",
        "REDIS_URL": None,
        "LABEL_STUDIO_URL": None,
        "LABEL_STUDIO_API_KEY": None,
        "BASIC_AUTH_USER": None,
        "BASIC_AUTH_PASS": None,
        "API_KEYS": [],
    }
    values.update(overrides)
    return TestClient(create_app(Settings(**values)), raise_server_exceptions=False)
