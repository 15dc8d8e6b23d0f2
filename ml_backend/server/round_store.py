"""The mask each (task, user, class) got last round, so the next round builds on it.

A folder on this machine by default (every worker process sees it: Label Studio's
next click may land on another worker); Redis (``REDIS_URL``) lets every machine
see it. A Redis outage degrades to the process memory instead of failing the round.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

ROUND_TTL_SECONDS = 24 * 3600


def pack_mask(mask: np.ndarray) -> bytes:
    height, width = mask.shape
    return struct.pack("<II", height, width) + np.packbits(mask.astype(bool)).tobytes()


def unpack_mask(blob: bytes) -> np.ndarray:
    height, width = struct.unpack("<II", blob[:8])
    bits = np.frombuffer(blob[8:], np.uint8)
    return np.unpackbits(bits, count=height * width).reshape(height, width).astype(bool)


class RoundStore(Protocol):
    def get(self, key: str) -> np.ndarray | None: ...

    def put(self, key: str, mask: np.ndarray) -> None: ...


class MemoryRoundStore:
    def __init__(self, max_entries: int = 2048) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            blob = self._entries.get(key)
            if blob is None:
                return None
            self._entries.move_to_end(key)
        return unpack_mask(blob)

    def put(self, key: str, mask: np.ndarray) -> None:
        blob = pack_mask(mask)
        with self._lock:
            self._entries[key] = blob
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class FileRoundStore:
    """One small file per key, replaced atomically; files older than the TTL are ignored and swept."""

    def __init__(self, directory: Path, ttl_seconds: int = ROUND_TTL_SECONDS, sweep_every: int = 200) -> None:
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self.sweep_every = sweep_every
        self._puts = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + ".mask")

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            if time.time() - path.stat().st_mtime > self.ttl_seconds:
                return None
            return unpack_mask(path.read_bytes())
        except (OSError, ValueError, struct.error):
            return None

    def put(self, key: str, mask: np.ndarray) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(pack_mask(mask))
        os.replace(temporary, self._path(key))
        self._puts += 1
        if self._puts % self.sweep_every == 0:
            self._sweep()

    def _sweep(self) -> None:
        cutoff = time.time() - self.ttl_seconds
        for path in self.directory.glob("*.mask"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass


class RedisRoundStore:
    """Redis first, the process memory as a fallback while Redis is away."""

    def __init__(self, client, prefix: str = "scribble:round:", ttl_seconds: int = ROUND_TTL_SECONDS) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.fallback = MemoryRoundStore()

    def get(self, key: str) -> np.ndarray | None:
        try:
            blob = self.client.get(self.prefix + key)
        except Exception as error:  # any Redis failure: keep serving from memory
            logger.warning("round store: Redis unavailable (%s); using process memory", type(error).__name__)
            return self.fallback.get(key)
        return unpack_mask(blob) if blob else self.fallback.get(key)

    def put(self, key: str, mask: np.ndarray) -> None:
        self.fallback.put(key, mask)
        try:
            self.client.setex(self.prefix + key, self.ttl_seconds, pack_mask(mask))
        except Exception as error:
            logger.warning("round store: Redis unavailable (%s); kept in process memory", type(error).__name__)


def round_key(project: str | None, task_id: object, user: object, label: str) -> str:
    return f"{project or '-'}:{task_id}:{user or '-'}:{label}"

