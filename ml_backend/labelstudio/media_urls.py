"""Where the image of a Label Studio task can be downloaded from, and with which token.

Label Studio stores an image reference in ``task.data`` in one of a few shapes:

- an upload key (``upload/1/x.png``, ``/data/upload/1/x.png``): served by the storage
  proxy ``/storage-data/uploaded/?filepath=upload/1/x.png`` (cloud-backed default
  storage) and, on a plain file system, by the older ``/data/upload/1/x.png``;
- a storage-proxy URL (``/storage-data/uploaded/?filepath=...``);
- a Local Storage file (``/data/local-files/?d=dir/x.png``);
- a cloud URI (``s3://``, ``gs://``, ``azure-blob://``), which Label Studio presigns
  at ``/tasks/<id>/presign/?fileuri=<base64 of the URI>`` and then redirects;
- any absolute ``http(s)`` URL.

This mirrors the resolution the Label Studio SDK does, without importing the SDK's
private modules (their layout changes between releases) and without ever reading
the local disk: the server only downloads, through the guarded fetcher.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ..errors import InputError

CLOUD_SCHEMES = ("s3:", "gs:", "azure-blob:")


class MediaUrlError(InputError):
    """A task's image reference that cannot be turned into a URL; ``reason`` says why."""

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"cannot resolve {reference!r}: {reason}")
        self.reference = reference
        self.reason = reason


@dataclass(frozen=True)
class MediaUrls:
    """The URLs to try, in order; ``headers`` go only to Label Studio's own origin."""

    candidates: tuple[str, ...]
    headers: dict[str, str]


def resolve_media_urls(
    reference: str, label_studio_url: str | None, access_token: str | None, task_id: int | None
) -> MediaUrls:
    """The download URLs for ``reference`` (a ``task.data`` value), most likely first."""
    reference = reference.strip()
    base = (label_studio_url or "").rstrip("/")
    if base and urlsplit(base).scheme not in ("http", "https"):
        raise MediaUrlError(reference, f"LABEL_STUDIO_URL {label_studio_url!r} must start with http:// or https://")
    headers = authorization_headers(access_token) if base else {}

    if reference.startswith(("http://", "https://")):
        # The token only goes along when the URL is Label Studio's own.
        same_origin = base and _origin(reference) == _origin(base)
        return MediaUrls((reference,), headers if same_origin else {})

    if reference.startswith(CLOUD_SCHEMES):
        if task_id is None:
            raise MediaUrlError(reference, "a cloud storage URI needs the task id to be presigned")
        encoded = base64.urlsafe_b64encode(reference.encode()).decode()
        return MediaUrls((_join(base, reference, f"/tasks/{task_id}/presign/?fileuri={encoded}"),), headers)

    path = reference if reference.startswith("/") else "/" + reference
    if path.startswith("/upload/"):
        path = "/data" + path
    if path.startswith("/data/upload/"):
        upload_key = path[len("/data/") :]
        return MediaUrls(
            (
                _join(base, reference, f"/storage-data/uploaded/?filepath={upload_key}"),
                _join(base, reference, path),
            ),
            headers,
        )
    if path.startswith("/storage-data/uploaded") or (path.startswith("/data/") and "?d=" in path):
        if path.startswith("/data/") and not parse_qs(urlsplit(path).query).get("d", [""])[-1]:
            raise MediaUrlError(reference, "the Local Storage URL names no file (?d= is empty)")
        return MediaUrls((_join(base, reference, path),), headers)
    raise MediaUrlError(reference, "not an http(s) URL, a Label Studio upload, a storage URL or a cloud URI")


def authorization_headers(access_token: str | None) -> dict[str, str]:
    """Label Studio takes a personal access token (a JWT) as Bearer, a legacy token as Token."""
    if not access_token:
        return {}
    scheme = "Bearer" if _looks_like_jwt(access_token) else "Token"
    return {"Authorization": f"{scheme} {access_token}"}


def _looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    header = parts[0] + "=" * (-len(parts[0]) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _join(base: str, reference: str, path: str) -> str:
    if not base:
        raise MediaUrlError(reference, "a Label Studio file needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
    return base + path


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or ""), parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "", "", None
