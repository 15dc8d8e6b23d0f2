"""Stateful use of an engine: embeddings cached per image, rounds that build on each other."""

from __future__ import annotations

import time
from collections.abc import MutableMapping

import numpy as np

from .cache import EmbeddingCache, LogitsMemory, MemoryEmbeddingCache, image_digest
from .constraints import apply_hard_constraints, keep_prompted_components
from .engine import Embedding, Engine, Prediction
from .prompts import Prompts
from .refine import refine_mask


class Segmenter:
    """Runs rounds of one engine.

    The embedding of an image is computed once and kept in ``embedding_cache``
    (in-process by default; a shared cache may be injected). When a round's
    ``current_mask`` is a mask this segmenter returned before, the engine's
    logits from that round are fed back.
    """

    def __init__(
        self,
        engine: Engine,
        embedding_cache: EmbeddingCache | None = None,
        logits_memory: LogitsMemory | None = None,
    ) -> None:
        self.engine = engine
        self.embedding_cache = embedding_cache if embedding_cache is not None else MemoryEmbeddingCache()
        self.logits_memory = logits_memory if logits_memory is not None else LogitsMemory()

    def cache_key(self, image_key: str) -> str:
        return f"{self.engine.identity}:{image_key}"

    def embed(self, image: np.ndarray, image_key: str | None = None) -> tuple[str, Embedding]:
        """Returns the image's key and embedding, computing it at most once per key at a time."""
        image_key = image_key or image_digest(image)
        cache_key = self.cache_key(image_key)
        embedding = self.embedding_cache.get(cache_key)
        if embedding is not None:
            return image_key, embedding
        with self.embedding_cache.lock(cache_key):
            embedding = self.embedding_cache.get(cache_key)
            if embedding is None:
                embedding = self.engine.embed(image)
                self.embedding_cache.put(cache_key, embedding)
        return image_key, embedding

    def segment(
        self,
        image: np.ndarray,
        prompts: Prompts,
        refine: str = "maskrefine",
        image_key: str | None = None,
        timings: MutableMapping[str, float] | None = None,
    ) -> Prediction:
        """One round: prompts in, the whole object's mask out (hard constraints hold)."""
        timings = timings if timings is not None else {}
        started = time.perf_counter()
        image_key, embedding = self.embed(image, image_key)
        timings["embed"] = time.perf_counter() - started

        if not prompts.has_positive_evidence():
            empty = np.zeros(prompts.shape, bool)
            return Prediction(mask=empty, score=0.0)

        if prompts.current_mask is not None and prompts.previous_logits is None:
            logits = self.logits_memory.recall(image_key, prompts.current_mask)
            if logits is not None:
                prompts = prompts.replace(previous_logits=logits)

        started = time.perf_counter()
        prediction = self.engine.predict(embedding, prompts)
        timings["predict"] = time.perf_counter() - started

        started = time.perf_counter()
        mask = keep_prompted_components(apply_hard_constraints(prediction.mask, prompts), prompts)
        mask = refine_mask(image, mask, prompts, refine)
        timings["refine"] = time.perf_counter() - started

        if prediction.logits is not None:
            self.logits_memory.remember(image_key, mask, prediction.logits)
        return Prediction(mask=mask, score=prediction.score, logits=prediction.logits)
