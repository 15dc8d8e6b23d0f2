"""Results of the scribble API, kept for a while and served from signed, expiring URLs.

A result is stored under a random name (``<32 hex>.png`` or ``.jpg``) for
``RESULT_TTL_SECONDS``. Its URL carries ``Expires`` (unix seconds) and an
HMAC-SHA256 ``Signature`` of name and expiry, so nobody can list results, guess
names or extend a link. Two backends: a local folder (one machine; expired files
are purged as new ones arrive) and Redis (``SETEX``; every worker on every machine
sharing the Redis sees every result). The signing key is ``RESULT_SIGNING_KEY``,
else a random key that the backend persists once, so all workers agree on it.

Redis may be away: then results go to the local folder until it is back (links
work on this machine meanwhile), and a key kept in Redis is read when first
needed, so the server starts without Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from ..errors import ClientError, ErrorCode, Unavailable
from ..settings import Settings
from .disk_quota import enforce_disk_quota

logger = logging.getLogger(__name__)

# .bin: files uploaded through AuthorizeFileUpload (oss_uploads), kept like results.
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpg": "image/jpeg", "bin": "application/octet-stream"}
RESULT_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|bin)$")
SIGNING_KEY_BYTES = 32
SIGNING_KEY_FILE = "signing.key"
REDIS_RESULT_PREFIX = "scribble:result:"
REDIS_SIGNING_KEY = "scribble:result-signing-key"
PURGE_INTERVAL_SECONDS = 60.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class StoredResult:
    name: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class SignedResult:
    name: str
    expires: int
    signature: str

    @property
    def path_and_query(self) -> str:
        return f"/results/{self.name}?" + urlencode({"Expires": self.expires, "Signature": self.signature})


def media_type_of(name: str) -> str:
    return MEDIA_TYPES[name.rsplit(".", 1)[-1]]


class ResultBackend(ABC):
    """Where result bytes live; names are already validated, expiry is the backend's job."""

    @abstractmethod
    def put(self, name: str, content: bytes, ttl_seconds: int) -> None: ...

    @abstractmethod
    def get(self, name: str) -> bytes | None: ...

    @abstractmethod
    def shared_signing_key(self) -> bytes:
        """A random key created on first use and persisted, so every worker reads the same."""

    def close(self) -> None:
        """Releases connections; the stored results stay."""


class FolderBackend(ResultBackend):
    """Files in one folder; the file's modification time is set to its expiry time.

    Writes go through a temporary file and a rename, so a reader (in any worker
    process) sees a whole file or none.
    """

    def __init__(self, directory: Path, clock: Clock = time.time, quota_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.quota_bytes = quota_bytes  # RESULT_DISK_QUOTA_MB: every file in the folder counts
        self.directory.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._last_purge = float("-inf")
        self._purge_lock = threading.Lock()
        self.purge_expired()

    def put(self, name: str, content: bytes, ttl_seconds: int) -> None:
        self._purge_now_and_then()
        expires_at = self.clock() + ttl_seconds
        descriptor, temporary_name = tempfile.mkstemp(prefix=".incoming-", dir=self.directory)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            os.utime(temporary_name, (expires_at, expires_at))
            os.replace(temporary_name, self.directory / name)
        except BaseException:
            Path(temporary_name).unlink(missing_ok=True)
            raise
        if self.quota_bytes is not None:
            enforce_disk_quota(self.directory, self.quota_bytes, never_evict={SIGNING_KEY_FILE}, keep_newest=name)

    def get(self, name: str) -> bytes | None:
        path = self.directory / name
        try:
            expires_at = path.stat().st_mtime
            if expires_at <= self.clock():
                path.unlink(missing_ok=True)
                return None
            return path.read_bytes()
        except FileNotFoundError:  # never stored, or purged by another worker meanwhile
            return None

    def purge_expired(self) -> int:
        """Deletes expired results; returns how many."""
        now = self.clock()
        removed = 0
        for path in self.directory.iterdir():
            if not RESULT_NAME.match(path.name):
                continue
            try:
                if path.stat().st_mtime <= now:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        with self._purge_lock:
            self._last_purge = now
        return removed

    def _purge_now_and_then(self) -> None:
        with self._purge_lock:
            due = self.clock() - self._last_purge >= PURGE_INTERVAL_SECONDS
            if due:
                self._last_purge = self.clock()
        if due:
            self.purge_expired()

    def shared_signing_key(self) -> bytes:
        return persisted_signing_key(self.directory / SIGNING_KEY_FILE)


class RedisBackend(ResultBackend):
    """Results as Redis strings with a TTL (``SETEX``); Redis drops them when they expire.

    While Redis cannot be reached, results are written to ``fallback_dir`` (a
    ``FolderBackend``, shared by this machine's workers) and looked up there too.
    """

    def __init__(self, url: str, fallback_dir: Path | None = None, fallback_quota_bytes: int | None = None) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self._redis_error: type[Exception] = redis.RedisError
        self._fallback_dir = fallback_dir
        self._fallback_quota_bytes = fallback_quota_bytes
        self._fallback: FolderBackend | None = None
        self._fallback_lock = threading.Lock()

    def _folder(self) -> FolderBackend | None:
        if self._fallback_dir is None:
            return None
        with self._fallback_lock:
            if self._fallback is None:
                self._fallback = FolderBackend(self._fallback_dir, quota_bytes=self._fallback_quota_bytes)
            return self._fallback

    def put(self, name: str, content: bytes, ttl_seconds: int) -> None:
        try:
            self.client.setex(REDIS_RESULT_PREFIX + name, ttl_seconds, content)
        except self._redis_error as error:
            folder = self._folder()
            if folder is None:
                raise
            logger.warning(
                "result store: Redis unavailable (%s); result kept in %s", type(error).__name__, folder.directory
            )
            folder.put(name, content, ttl_seconds)

    def get(self, name: str) -> bytes | None:
        try:
            content = self.client.get(REDIS_RESULT_PREFIX + name)
        except self._redis_error as error:
            if self._fallback_dir is None:
                raise
            logger.warning(
                "result store: Redis unavailable (%s); looking in %s", type(error).__name__, self._fallback_dir
            )
            content = None
        if content is None and self._fallback_dir is not None and (self._fallback_dir / name).exists():
            folder = self._folder()
            return folder.get(name) if folder is not None else None
        return content

    def shared_signing_key(self) -> bytes:
        # In Redis, not in a local file, so workers on different machines agree too.
        candidate = base64.b64encode(secrets.token_bytes(SIGNING_KEY_BYTES))
        self.client.set(REDIS_SIGNING_KEY, candidate, nx=True)
        stored = self.client.get(REDIS_SIGNING_KEY)
        if not stored:
            raise RuntimeError(f"Redis lost {REDIS_SIGNING_KEY} right after setting it")
        return base64.b64decode(stored)

    def close(self) -> None:
        self.client.close()


def persisted_signing_key(path: Path) -> bytes:
    """Reads the key at ``path``, creating it first if missing.

    The key is written to a private temporary file and hard-linked into place:
    linking fails if the name exists, so of several processes starting at once
    exactly one key wins and every process reads that one.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(prefix=".signing-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp creates it readable by the owner only
            file.write(base64.b64encode(secrets.token_bytes(SIGNING_KEY_BYTES)))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary_name, path)
        except FileExistsError:
            pass
    finally:
        Path(temporary_name).unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = base64.b64decode(path.read_bytes().strip(), validate=True)
    if len(key) < 16:
        raise RuntimeError(f"{path} holds a key of {len(key)} bytes; delete it to have a new one made")
    return key


class ResultStore:
    """Saves results and hands out signed URLs to them; checks those URLs when they come back.

    ``signing_key`` is the key, or a function that fetches it when first needed
    (a key kept in Redis, while Redis is away at start).
    """

    def __init__(
        self,
        backend: ResultBackend,
        signing_key: bytes | Callable[[], bytes],
        ttl_seconds: int,
        clock: Clock = time.time,
    ) -> None:
        self.backend = backend
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._signing_key: bytes | None = None
        self._fetch_signing_key: Callable[[], bytes] | None = None
        self._key_lock = threading.Lock()
        if isinstance(signing_key, bytes):
            self._signing_key = _checked_key(signing_key)
        else:
            self._fetch_signing_key = signing_key

    def _key(self) -> bytes:
        if self._signing_key is None:
            with self._key_lock:
                if self._signing_key is None and self._fetch_signing_key is not None:
                    try:
                        key = self._fetch_signing_key()
                    except Exception as error:
                        logger.warning("result store: cannot read the shared signing key (%s)", type(error).__name__)
                        raise Unavailable(
                            "the result store cannot be reached to read its signing key; try again shortly "
                            "(or set RESULT_SIGNING_KEY)"
                        ) from None
                    self._signing_key = _checked_key(key)
        assert self._signing_key is not None
        return self._signing_key

    def save(self, content: bytes, media_type: str) -> SignedResult:
        extension = next((ext for ext, known in MEDIA_TYPES.items() if known == media_type), None)
        if extension is None:
            raise ValueError(f"results are PNG or JPEG, not {media_type}")
        name = f"{uuid.uuid4().hex}.{extension}"
        self._key()  # no result is stored that could not be signed
        # Stored a little longer than the link lives, so a link never outlives its file.
        self.backend.put(name, content, self.ttl_seconds + 1)
        return self.sign(name, int(self.clock()) + self.ttl_seconds)

    def sign(self, name: str, expires: int) -> SignedResult:
        return SignedResult(name, expires, self._signature(name, expires))

    def open(self, name: str, expires: str | None, signature: str | None) -> StoredResult:
        """The result a signed URL points at, or a ``ClientError`` (403 or 404) saying why not."""
        if not RESULT_NAME.match(name):
            raise _not_found(name)
        if not expires or not signature:
            raise ClientError(
                ErrorCode.ACCESS_DENIED,
                "ResultUrl: the Expires and Signature query parameters are required; "
                "use the ResultUrl exactly as returned",
            )
        well_formed = expires.isascii() and expires.isdigit() and len(expires) <= 12
        if not well_formed or not hmac.compare_digest(
            self._signature(name, int(expires)).encode(), signature.encode("utf-8", "replace")
        ):
            raise ClientError(
                ErrorCode.SIGNATURE_DOES_NOT_MATCH,
                "ResultUrl: the signature does not match; use the ResultUrl exactly as returned",
            )
        if int(expires) < self.clock():
            raise ClientError(
                ErrorCode.ACCESS_DENIED,
                f"ResultUrl: expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(int(expires)))}; "
                f"results are kept {self.ttl_seconds} s (RESULT_TTL_SECONDS)",
            )
        content = self.backend.get(name)
        if content is None:
            raise _not_found(name)
        return StoredResult(name, content, media_type_of(name))

    def close(self) -> None:
        self.backend.close()

    def _signature(self, name: str, expires: int) -> str:
        digest = hmac.new(self._key(), f"{name}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _checked_key(key: bytes) -> bytes:
    if len(key) < 16:
        raise ValueError("RESULT_SIGNING_KEY must be at least 16 bytes long")
    return key


def _not_found(name: str) -> ClientError:
    return ClientError(
        ErrorCode.NO_SUCH_KEY, f"ResultUrl: no result named {name[:64]!r}; it may have expired", field="ResultUrl"
    )


def build_result_store(settings: Settings, clock: Clock = time.time) -> ResultStore:
    """Redis when ``REDIS_URL`` is set, else the folder ``RESULT_DIR``."""
    backend: ResultBackend
    signing_key: bytes | Callable[[], bytes]
    quota_bytes = settings.RESULT_DISK_QUOTA_MB * 1024 * 1024
    if settings.REDIS_URL:
        backend = RedisBackend(settings.REDIS_URL, fallback_dir=settings.RESULT_DIR, fallback_quota_bytes=quota_bytes)
    else:
        backend = FolderBackend(settings.RESULT_DIR, clock=clock, quota_bytes=quota_bytes)
    if settings.RESULT_SIGNING_KEY:
        signing_key = settings.RESULT_SIGNING_KEY.encode("utf-8")
    elif isinstance(backend, RedisBackend):
        import redis

        try:
            signing_key = backend.shared_signing_key()
        except redis.RedisError as error:
            # Start anyway: rounds do not need Redis, and the key is read once it is back.
            logger.warning(
                "result store: Redis unavailable at start (%s); signing key read later", type(error).__name__
            )
            signing_key = backend.shared_signing_key
    else:
        signing_key = backend.shared_signing_key()
    return ResultStore(backend, signing_key, settings.RESULT_TTL_SECONDS, clock=clock)
