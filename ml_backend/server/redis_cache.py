"""Embeddings shared through Redis, so no worker or machine recomputes one another has.

Layered over the process's own LRU: a hit in memory costs nothing, a hit in
Redis costs a transfer of compressed float16 features. The single-flight lock
lives in Redis too, so two workers asked for the same new image compute it
once. That lock is a short lease renewed while its holder computes: a worker
killed mid-embedding holds up the others for one lease, not for the longest
embedding we allow. Any Redis failure degrades to the process cache for a
short while instead of failing the round.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ..core.cache import MemoryEmbeddingCache
from ..core.engine import Embedding

logger = logging.getLogger(__name__)


def connect_redis(url: str) -> redis.Redis:
    """A client that gives up fast: a slow Redis must not stall a round."""
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2.0, health_check_interval=30)


class RedisEmbeddingCache:
    def __init__(
        self,
        client: redis.Redis,
        memory: MemoryEmbeddingCache,
        ttl_seconds: int = 7 * 24 * 3600,
        prefix: str = "scribble:embedding:",
        lock_wait_s: float = 300.0,
        lock_lease_s: float = 5.0,
        retry_after_s: float = 5.0,
    ) -> None:
        self.client = client
        self.memory = memory
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix
        self.lock_wait_s = lock_wait_s
        self.lock_lease_s = lock_lease_s
        self.retry_after_s = retry_after_s
        self._unavailable_until = 0.0
        # Embeddings computed while Redis was away: shared once it is back.
        self._unshared: set[str] = set()

    def _redis_ok(self) -> bool:
        return time.monotonic() >= self._unavailable_until

    def _redis_failed(self, error: Exception) -> None:
        logger.warning("embedding cache: Redis unavailable (%s); using process memory", type(error).__name__)
        self._unavailable_until = time.monotonic() + self.retry_after_s

    def get(self, key: str) -> Embedding | None:
        embedding = self.memory.get(key)
        if embedding is not None and key in self._unshared and self._redis_ok():
            self._share(key, embedding)
        if embedding is not None or not self._redis_ok():
            return embedding
        try:
            blob = self.client.get(self.prefix + key)
        except redis.RedisError as error:
            self._redis_failed(error)
            return None
        if blob is None:
            return None
        embedding = Embedding.from_bytes(zlib.decompress(blob))
        self.memory.put(key, embedding)
        return embedding

    def put(self, key: str, embedding: Embedding) -> None:
        self.memory.put(key, embedding)
        if not self._redis_ok():
            self._unshared.add(key)
            return
        self._share(key, embedding)

    def _share(self, key: str, embedding: Embedding) -> None:
        blob = zlib.compress(embedding.to_bytes(float16=True), 1)
        try:
            self.client.set(self.prefix + key, blob, ex=self.ttl_seconds)
        except redis.RedisError as error:
            self._unshared.add(key)
            self._redis_failed(error)
        else:
            self._unshared.discard(key)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self.memory.lock(key):
            if not self._redis_ok():
                yield
                return
            shared = self.client.lock(
                self.prefix + "lock:" + key,
                timeout=self.lock_lease_s,
                blocking_timeout=self.lock_wait_s,
                thread_local=False,  # the lease is renewed from another thread
            )
            try:
                acquired = shared.acquire()
            except redis.RedisError as error:
                self._redis_failed(error)
                acquired = False
            if not acquired:
                yield
                return
            released = threading.Event()
            renewer = threading.Thread(
                target=self._renew, args=(shared, released), name="embedding-lock-lease", daemon=True
            )
            renewer.start()
            try:
                yield
            finally:
                released.set()
                renewer.join()
                try:
                    shared.release()
                except (redis.RedisError, redis.exceptions.LockError) as error:
                    logger.warning("embedding cache: could not release the Redis lock (%s)", type(error).__name__)

    def _renew(self, shared: "redis.lock.Lock", released: threading.Event) -> None:
        """Keeps the lease alive while its holder computes; it lapses if the process dies."""
        while not released.wait(self.lock_lease_s / 3):
            try:
                shared.reacquire()
            except (redis.RedisError, redis.exceptions.LockError) as error:
                # Lost (Redis restarted, or the lease lapsed): at worst another worker
                # computes the same embedding too.
                logger.warning("embedding cache: could not renew the Redis lock (%s)", type(error).__name__)
                return
