"""Embeddings computed before the annotator asks: when a task is opened or a webhook arrives.

Without Redis a background thread of the worker process does it (the embedding
lands in that process's cache); with Redis the job goes to an RQ queue that
``scribble-seg worker`` processes on any machine, and the result lands in the
shared cache.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ..errors import ApiError

logger = logging.getLogger(__name__)

QUEUE_NAME = "scribble-embeddings"


class Precomputer(Protocol):
    def schedule(self, image_url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> None: ...


class ThreadPrecomputer:
    """One background thread per process; the same URL is never queued twice at once."""

    def __init__(self, embed_url) -> None:  # type: ignore[no-untyped-def]
        self._embed_url = embed_url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="precompute")
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def schedule(self, image_url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> None:
        with self._lock:
            if image_url in self._pending:
                return
            self._pending.add(image_url)
        self._executor.submit(self._run, image_url, hostname, access_token, task_id)

    def _run(self, image_url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> None:
        try:
            self._embed_url(image_url, hostname, access_token, task_id)
        except ApiError as error:
            logger.info("precompute skipped: %s", error.message)
        except Exception:  # a background job must never take the worker down
            logger.exception("precompute failed")
        finally:
            with self._lock:
                self._pending.discard(image_url)

    def wait(self) -> None:
        """Blocks until every scheduled job has run (tests, shutdown)."""
        self._executor.submit(lambda: None).result()


class QueuePrecomputer:
    """Enqueues ``ml_backend.jobs.embed_image`` on RQ; a job id per URL dedupes repeats."""

    def __init__(self, redis_client) -> None:  # type: ignore[no-untyped-def]
        from rq import Queue

        self.queue = Queue(QUEUE_NAME, connection=redis_client)

    def schedule(self, image_url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> None:
        job_id = "embed-" + hashlib.blake2b(image_url.encode(), digest_size=12).hexdigest()
        try:
            self.queue.enqueue(
                "ml_backend.jobs.embed_image",
                image_url, hostname, access_token, task_id,
                job_id=job_id, result_ttl=60, failure_ttl=3600, job_timeout=600,
            )
        except Exception as error:  # Redis away: precompute is an optimisation, never a failure
            logger.warning("precompute not queued (%s)", type(error).__name__)
