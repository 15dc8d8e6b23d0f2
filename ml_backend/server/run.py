"""Starts the server with several worker processes (uvicorn)."""

from __future__ import annotations

import os
import shutil
import tempfile

import uvicorn

from ..engine_registry import require_engine_packages
from ..settings import get_settings


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    settings = get_settings()
    # Checked here, once: a worker that cannot import its engine would be restarted forever.
    require_engine_packages(settings.ENGINE)
    workers = workers or settings.WORKERS
    # Workers read their settings afresh: they share the cores by the real count
    # (TORCH_THREADS), not by the configured one that --workers overrode.
    os.environ["WORKERS"] = str(workers)
    get_settings.cache_clear()  # one worker serves from this process
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Workers are forked after this, so they all write their metrics here.
        metrics_dir = tempfile.mkdtemp(prefix="scribble-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _run(settings, host, port, workers)
    finally:
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
        if metrics_dir.startswith(tempfile.gettempdir() + "/scribble-metrics-"):
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(settings, host: str | None, port: int | None, workers: int) -> int:
    uvicorn.run(
        "ml_backend.server.app:create_app",
        factory=True,
        host=host or settings.HOST,
        port=port or settings.PORT,
        workers=workers,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_keep_alive=30,
    )
    return 0
