"""Loads the image of a Label Studio task, once.

``labelstudio.media_urls`` turns the task's reference (upload key, storage URL, cloud
URI, plain URL) into the URLs to try and the token to send; every download goes
through the SSRF-guarded ``fetch_url``, so a task cannot point the server at its own
network. Nothing is written to disk: the bytes go straight to the decoder.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.cache import KeyLocks, image_digest
from ..errors import ClientError, ErrorCode, DownloadError
from ..io.fetch import fetch_url
from ..io.images import IMAGE_MAX_BYTES, decode_image
from ..labelstudio.media_urls import MediaUrlError, resolve_media_urls
from ..settings import Settings
from .labelstudio_origin import label_studio_rule


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray
    key: str  # content digest: the embedding cache key

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


class TaskImageLoader:
    """Resolves, fetches, decodes and remembers task images (a small LRU by URL)."""

    def __init__(
        self, cache_dir: Path, allowed_hosts: list[str], max_images: int = 32, label_studio_url: str | None = None
    ) -> None:
        # Downloads stay in memory; the folder is kept for callers that name one.
        self.cache_dir = cache_dir
        self.allowed_hosts = allowed_hosts
        self.label_studio_url = label_studio_url  # LABEL_STUDIO_URL: its fetch errors may be detailed
        self.fetch_pool = None  # set by the app: fetches then count against FETCH_CONCURRENCY
        self.max_images = max_images
        self._images: OrderedDict[str, LoadedImage] = OrderedDict()
        self._lock = threading.Lock()
        self._downloads = KeyLocks()

    @classmethod
    def from_settings(cls, settings: Settings) -> "TaskImageLoader":
        return cls(
            settings.CACHE_DIR / "task-images",
            list(settings.ALLOWED_FETCH_HOSTS),
            label_studio_url=settings.LABEL_STUDIO_URL,
        )

    def load(self, url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> LoadedImage:
        if not isinstance(url, str) or not url:
            raise ClientError(ErrorCode.INVALID_PARAMETER, "task.data: the image URL is missing", field="task.data")
        with self._downloads(url):
            with self._lock:
                cached = self._images.get(url)
                if cached is not None:
                    self._images.move_to_end(url)
                    return cached
            loaded = self._download(url, hostname, access_token, task_id)
            with self._lock:
                self._images[url] = loaded
                while len(self._images) > self.max_images:
                    self._images.popitem(last=False)
            return loaded

    def _download(self, url: str, hostname: str | None, access_token: str | None, task_id: int | None) -> LoadedImage:
        # Label Studio's origin is the one extra origin, for its own paths only.
        rule = label_studio_rule(hostname, self.label_studio_url)
        rules = [rule] if rule is not None else []
        fetch = self.fetch_pool.fetch_blocking if self.fetch_pool is not None else fetch_url
        try:
            media = resolve_media_urls(url, hostname, access_token, task_id)
        except MediaUrlError as error:
            raise ClientError(ErrorCode.INVALID_IMAGE_URL, f"task.data: {error}", field="task.data") from None
        first_failure: DownloadError | None = None
        for candidate in media.candidates:
            try:
                data = fetch(
                    candidate,
                    "task.data",
                    IMAGE_MAX_BYTES,
                    list(self.allowed_hosts),
                    headers=media.headers,
                    origin_rules=rules,
                )
                break
            except DownloadError as error:
                if error.upstream_status is None:
                    raise
                # Label Studio on a plain file system answers 4xx on the storage proxy
                # and serves the older upload path: try the next URL, report the first.
                first_failure = first_failure or error
        else:
            assert first_failure is not None  # candidates is never empty
            raise first_failure
        pixels = decode_image(data, "task.data", IMAGE_MAX_BYTES)
        return LoadedImage(pixels=pixels, key=image_digest(pixels))
