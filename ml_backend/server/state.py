"""What every request handler shares inside one worker process, built once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..core.cache import EmbeddingCache, MemoryEmbeddingCache
from ..core.segmenter import Segmenter
from ..engine_registry import TORCH_ENGINES, create_engine
from ..settings import Settings
from .metrics import CountingCache


@dataclass
class ServiceState:
    settings: Settings
    segmenter: Segmenter
    redis_client: object | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        return self.segmenter.engine.identity


def build_state(settings: Settings) -> ServiceState:
    """Loads the engine now, so that no request (``/setup`` has a 3 s limit) waits for it."""
    engine = create_engine(settings.ENGINE, settings)
    if engine.name in TORCH_ENGINES:
        import torch

        # Workers fighting over the same cores make each decode several times slower.
        threads = settings.TORCH_THREADS or max(1, (os.cpu_count() or 1) // settings.WORKERS)
        torch.set_num_threads(threads)
    memory = MemoryEmbeddingCache(max_bytes=settings.EMBEDDING_CACHE_MB * 1024 * 1024)
    embedding_cache: EmbeddingCache = memory
    redis_client = None
    if settings.REDIS_URL:
        from .redis_cache import RedisEmbeddingCache, connect_redis

        redis_client = connect_redis(settings.REDIS_URL)
        embedding_cache = RedisEmbeddingCache(redis_client, memory)
    segmenter = Segmenter(engine, embedding_cache=CountingCache(embedding_cache))
    return ServiceState(settings=settings, segmenter=segmenter, redis_client=redis_client)
