"""What every request handler shares inside one worker process, built once at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.cache import MemoryEmbeddingCache
from ..core.segmenter import Segmenter
from ..engines_factory import create_engine
from ..settings import Settings
from .metrics import CountingCache


@dataclass
class ServiceState:
    settings: Settings
    segmenter: Segmenter
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        return self.segmenter.engine.identity


def build_state(settings: Settings) -> ServiceState:
    """Loads the engine now, so that no request (``/setup`` has a 3 s limit) waits for it."""
    if settings.TORCH_THREADS:
        import torch

        torch.set_num_threads(settings.TORCH_THREADS)
    engine = create_engine(settings.ENGINE, settings)
    cache = CountingCache(MemoryEmbeddingCache(max_bytes=settings.EMBEDDING_CACHE_MB * 1024 * 1024))
    return ServiceState(settings=settings, segmenter=Segmenter(engine, embedding_cache=cache))
