"""Per-image caches: content keys and the in-process LRU bounded in bytes."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import numpy as np

from .engine import Embedding


def image_digest(image: np.ndarray) -> str:
    """Content hash of an image array: the same pixels give the same key in every process."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def mask_digest(mask: np.ndarray) -> str:
    return hashlib.blake2b(np.packbits(mask.astype(bool)).tobytes() + str(mask.shape).encode(), digest_size=16).hexdigest()


class EmbeddingCache(Protocol):
    def get(self, key: str) -> Embedding | None: ...

    def put(self, key: str, embedding: Embedding) -> None: ...

    def lock(self, key: str) -> AbstractContextManager[object]:
        """Held while one caller computes ``key``'s embedding, so others wait instead of recomputing."""
        ...


class KeyLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class MemoryEmbeddingCache:
    """Least-recently-used embeddings, at most ``max_bytes`` in all. Thread-safe."""

    def __init__(self, max_bytes: int = 1024 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Embedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.lock = KeyLocks()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Embedding | None:
        with self._lock:
            embedding = self._entries.get(key)
            if embedding is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return embedding

    def put(self, key: str, embedding: Embedding) -> None:
        size = embedding.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            self._entries[key] = embedding
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes


class LogitsMemory:
    """Remembers the low-resolution logits behind masks we returned, to feed them back.

    Keyed by image and mask content: a current mask that is exactly one we
    produced earlier brings its logits back; any other mask starts afresh.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, image_key: str, mask: np.ndarray, logits: np.ndarray) -> None:
        key = (image_key, mask_digest(mask))
        with self._lock:
            self._entries[key] = logits
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def recall(self, image_key: str, mask: np.ndarray) -> np.ndarray | None:
        with self._lock:
            return self._entries.get((image_key, mask_digest(mask)))
