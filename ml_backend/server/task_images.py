"""Loads the image of a Label Studio task, once, through the SDK's URL resolution.

``label_studio_sdk`` knows every URL shape Label Studio uses (uploads, local
storage, cloud presign, plain URLs) and which token to send; its downloads go
through a session whose adapter is our SSRF-guarded fetcher, so a task cannot
point the server at its own network.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests
from label_studio_sdk._extensions.label_studio_tools.core.utils.io import get_local_path, http_session

from ..core.cache import KeyLocks, image_digest
from ..errors import ClientError, DownloadError
from ..io.fetch import OriginRule, fetch_url
from ..io.images import IMAGE_MAX_BYTES, decode_image
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


class _GuardedAdapter(requests.adapters.BaseAdapter):
    """A requests adapter that fetches with ``fetch_url`` (SSRF rules, size limit, timeouts)."""

    def __init__(
        self,
        allowed_hosts: list[str],
        field: str,
        label_studio: OriginRule | None = None,
        fetch: Callable[..., bytes] = fetch_url,
    ) -> None:
        super().__init__()
        self.allowed_hosts = allowed_hosts
        self.field = field
        self.label_studio = label_studio
        self.fetch = fetch  # fetch_url, or the server's FetchPool.fetch_blocking

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[no-untyped-def]
        # Label Studio's token goes to Label Studio's origin and nowhere else.
        headers = {}
        if self.label_studio is not None and _same_origin(request.url, self.label_studio):
            headers = {name: value for name, value in request.headers.items() if name.lower() == "authorization"}
        rules = [self.label_studio] if self.label_studio is not None else []
        try:
            body = self.fetch(
                request.url, self.field, IMAGE_MAX_BYTES, self.allowed_hosts, headers=headers, origin_rules=rules
            )
        except ClientError as error:
            if isinstance(error, DownloadError) and error.http_status is not None:
                # The SDK retries an older upload path on HTTPError; let it.
                failure = requests.exceptions.HTTPError(error.message)
                failure.client_error = error  # type: ignore[attr-defined]
                raise failure from None
            raise
        response = requests.Response()
        response.status_code = 200
        response._content = body
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def _same_origin(url: str, rule: OriginRule) -> bool:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return False
    return (scheme, host, port) == (rule.scheme, rule.host.rstrip("."), rule.port)


class TaskImageLoader:
    """Resolves, fetches, decodes and remembers task images (a small LRU by URL)."""

    def __init__(
        self, cache_dir: Path, allowed_hosts: list[str], max_images: int = 32, label_studio_url: str | None = None
    ) -> None:
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
            raise ClientError("InvalidParameter", "task.data: the image URL is missing", field="task.data")
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
        session = requests.Session()
        rule = label_studio_rule(hostname, self.label_studio_url)
        fetch = self.fetch_pool.fetch_blocking if self.fetch_pool is not None else fetch_url
        adapter = _GuardedAdapter(list(self.allowed_hosts), field="task.data", label_studio=rule, fetch=fetch)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # A folder of its own per download: the SDK writes its cache file in place,
        # so a shared folder lets a concurrent reader see a half-written file.
        download_dir = tempfile.TemporaryDirectory(dir=self.cache_dir)
        try:
            with http_session(session), download_dir:
                path = get_local_path(
                    url,
                    cache_dir=download_dir.name,
                    hostname=hostname or "",
                    access_token=access_token or "",
                    # Never read another program's upload folder on this disk.
                    image_dir=str(self.cache_dir / "no-local-uploads"),
                    task_id=task_id,
                )
                data = Path(path).read_bytes()
        except ClientError:
            raise
        except requests.exceptions.HTTPError as error:
            client_error = getattr(error, "client_error", None)
            raise client_error or ClientError("InvalidImage.Download", f"task.data: {error}") from None
        except requests.exceptions.RequestException as error:
            raise ClientError(
                "InvalidImage.Url", f"task.data: cannot fetch {url!r}: {type(error).__name__}", field="task.data"
            ) from None
        except (OSError, ValueError) as error:
            raise ClientError(
                "InvalidImage.Download",
                f"task.data: cannot resolve {url!r}: {error} (set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)",
                field="task.data",
            ) from None
        pixels = decode_image(data, "task.data", IMAGE_MAX_BYTES)
        return LoadedImage(pixels=pixels, key=image_digest(pixels))
