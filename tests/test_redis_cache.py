import multiprocessing
import os
import signal
import time

import numpy as np
import redis

from ml_backend.core.cache import MemoryEmbeddingCache
from ml_backend.core.engine import Embedding, Engine, Prediction
from ml_backend.core.prompts import make_prompts
from ml_backend.core.segmenter import Segmenter
from ml_backend.server.redis_cache import RedisEmbeddingCache, connect_redis

from .synthetic import disc_scene, scribbles_for


class FeatureEngine(Engine):
    """Embeds into float32 features and thresholds them: float16 rounding shows up in masks if it matters."""

    name = "features"

    def __init__(self, counter_url: str | None = None, delay_s: float = 0.0) -> None:
        self.embeds = 0
        self.counter_url = counter_url
        self.delay_s = delay_s

    @property
    def identity(self) -> str:
        return "features/1"

    def embed(self, image):
        self.embeds += 1
        if self.counter_url:
            redis.Redis.from_url(self.counter_url).incr("test:embeds")
        time.sleep(self.delay_s)
        features = image.astype(np.float32).mean(axis=2) / 255.0 + 1e-3
        return Embedding(self.identity, image.shape[:2], {"features": features})

    def predict(self, embedding, prompts):
        features = embedding.arrays["features"]
        reference = float(np.median(features[prompts.positive_scribbles]))
        return Prediction(mask=np.abs(features - reference) < 0.15, score=1.0)


def _worker(url: str, image: np.ndarray, positive: np.ndarray, delay_s: float = 1.0, lease_s: float = 10.0) -> None:
    engine = FeatureEngine(counter_url=url, delay_s=delay_s)
    cache = RedisEmbeddingCache(connect_redis(url), MemoryEmbeddingCache(), lock_lease_s=lease_s)
    Segmenter(engine, embedding_cache=cache).segment(image, make_prompts(image.shape, positive), refine="none")


def test_a_second_worker_reuses_the_embedding_from_redis(redis_server):
    image, mask = disc_scene()
    positive, negative = scribbles_for(mask)
    prompts = make_prompts(image.shape, positive, negative)
    first_engine, second_engine = FeatureEngine(), FeatureEngine()
    first = Segmenter(first_engine, embedding_cache=RedisEmbeddingCache(connect_redis(redis_server.url), MemoryEmbeddingCache()))
    second = Segmenter(second_engine, embedding_cache=RedisEmbeddingCache(connect_redis(redis_server.url), MemoryEmbeddingCache()))
    from_first = first.segment(image, prompts, refine="none").mask
    from_second = second.segment(image, prompts, refine="none").mask
    assert (first_engine.embeds, second_engine.embeds) == (1, 0)
    # float16 in Redis, float32 in the first worker's memory: the masks agree
    agreement = np.logical_and(from_first, from_second).sum() / np.logical_or(from_first, from_second).sum()
    assert agreement >= 0.99
    keys = redis_server.client().keys("scribble:embedding:*")
    assert len(keys) == 1
    stored = redis_server.client().get(keys[0])
    assert len(stored) < image.shape[0] * image.shape[1] * 2  # compressed float16


def _embeds_by_two_processes(redis_server, seed: int, delay_s: float = 1.0, lease_s: float = 10.0) -> int:
    """Two worker processes segment the same new image at once; returns how many embedded it."""
    redis_server.client().delete("test:embeds")  # the server is shared by this module
    image, mask = disc_scene(seed=seed)
    positive, _ = scribbles_for(mask)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_worker, args=(redis_server.url, image, positive, delay_s, lease_s)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return int(redis_server.client().get("test:embeds"))


def test_two_processes_asked_for_the_same_new_image_compute_it_once(redis_server):
    assert _embeds_by_two_processes(redis_server, seed=7) == 1


def test_the_lock_is_renewed_while_an_embedding_takes_longer_than_its_lease(redis_server):
    # Each embedding takes four leases: without renewal the second worker would compute too.
    assert _embeds_by_two_processes(redis_server, seed=8, delay_s=2.0, lease_s=0.5) == 1


def test_a_worker_killed_while_embedding_holds_the_others_up_for_one_lease_only(redis_server):
    redis_server.client().delete("test:embeds")  # the server is shared by this module
    image, mask = disc_scene(seed=9)
    positive, negative = scribbles_for(mask)
    context = multiprocessing.get_context("fork")
    doomed = context.Process(target=_worker, args=(redis_server.url, image, positive, 60.0, 1.0))
    doomed.start()
    deadline = time.monotonic() + 30
    while redis_server.client().get("test:embeds") is None:  # it holds the lock and is embedding
        assert time.monotonic() < deadline, "the first worker never started embedding"
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    engine = FeatureEngine()
    cache = RedisEmbeddingCache(connect_redis(redis_server.url), MemoryEmbeddingCache(), lock_lease_s=1.0)
    started = time.monotonic()
    Segmenter(engine, embedding_cache=cache).segment(image, make_prompts(image.shape, positive, negative), refine="none")
    waited = time.monotonic() - started
    assert engine.embeds == 1
    # The dead worker's embed would have held the lock for 60 s: a wait of a few 1 s leases
    # is the lease expiring (the margin is for a busy machine, not a speed target).
    assert waited < 60.0 / 4, f"waited {waited:.1f} s for a dead worker's lock (lease 1 s)"


def test_rounds_go_on_while_redis_is_down(redis_server):
    image, mask = disc_scene(seed=3)
    positive, negative = scribbles_for(mask)
    prompts = make_prompts(image.shape, positive, negative)
    # A port nobody listens on: every Redis call fails fast.
    dead = connect_redis("redis://127.0.0.1:1/0")
    engine = FeatureEngine()
    segmenter = Segmenter(engine, embedding_cache=RedisEmbeddingCache(dead, MemoryEmbeddingCache()))
    first = segmenter.segment(image, prompts, refine="none").mask
    second = segmenter.segment(image, prompts, refine="none").mask
    assert engine.embeds == 1 and np.array_equal(first, second)
