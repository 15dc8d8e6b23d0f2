"""Background jobs run by ``scribble-seg worker`` (RQ): compute embeddings into the shared cache."""

from __future__ import annotations

import threading

from .settings import get_settings

_service = None
_service_lock = threading.Lock()


def _worker_service():  # type: ignore[no-untyped-def]
    """The worker's engine, caches and image loader, built once per process."""
    global _service
    with _service_lock:
        if _service is None:
            from .server.state import build_state
            from .server.task_images import TaskImageLoader

            settings = get_settings()
            state = build_state(settings)
            loader = TaskImageLoader.from_settings(settings)
            _service = (state, loader)
        return _service


def embed_image(image_url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> str:
    """Loads a task's image and makes sure its embedding is in the cache; returns the image key."""
    state, loader = _worker_service()
    settings = state.settings
    image = loader.load(image_url, hostname or settings.LABEL_STUDIO_URL, access_token or settings.LABEL_STUDIO_API_KEY, task_id)
    state.segmenter.embed(image.pixels, image_key=image.key)
    return image.key
