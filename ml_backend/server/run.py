"""Starts the server with several worker processes (uvicorn)."""

from __future__ import annotations

import uvicorn

from ..settings import get_settings


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    settings = get_settings()
    uvicorn.run(
        "ml_backend.server.app:create_app",
        factory=True,
        host=host or settings.HOST,
        port=port or settings.PORT,
        workers=workers or settings.WORKERS,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_keep_alive=30,
    )
    return 0
