"""The round an annotator waits for, timed through HTTP: Label Studio's ``/predict``.

A real ``scribble-seg serve`` runs in a subprocess and fetches its task image
from a Label Studio stand-in on loopback; the body is what Label Studio sends on
a click (brush strokes as RLE and a smart keypoint). The first round embeds the
image; the warm rounds after it are what the annotator waits for. With two
workers sharing Redis, a worker that did not compute the embedding reads it
from Redis. ``redis_fetch_ms`` times that read alone for the engine's embedding.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable

import httpx
import numpy as np

from . import soak
from .bench import Timing, bench_scene
from .redis_process import running_redis_server


def time_predict_rounds(
    engine: str, width: int, height: int, workers: int, rounds: int, refine: str, redis_url: str | None
) -> dict[str, float]:
    """Starts a server, sends one cold and ``rounds`` warm clicks on one task, stops it."""
    # JPEG, as photos come: this noisy scene as PNG would pass the upload limit at 4096x4096.
    scene = soak.make_scene(width, height, seed=0, image_format="JPEG")
    token = secrets.token_hex(16)
    with soak.LabelStudioImages([scene], token) as images:
        environment = {
            "ENGINE": engine, "REFINE": refine, "LABEL_STUDIO_URL": images.url, "LABEL_STUDIO_API_KEY": token,
            "RESULT_SIGNING_KEY": "bench-only-key-" + token,
        }
        if redis_url:
            environment["REDIS_URL"] = redis_url
        with soak.running_server(workers, environment, prefix="scribble-bench-http-") as server:
            return _rounds(server, scene, images.path(0), rounds)


def _rounds(server: soak.ServerProcess, scene: soak.Scene, image_path: str, rounds: int) -> dict[str, float]:
    config = soak.label_config()
    rng = np.random.default_rng(0)
    samples: list[float] = []
    cold_ms = 0.0
    for round_index in range(rounds + 1):
        body = soak.click_body(scene, image_path, 1, round_index + 1, rng, config)
        # A new connection each round: the kernel hands it to either worker, so with
        # two workers both serve (one of them reading the embedding from Redis first).
        with httpx.Client(base_url=server.url, timeout=600) as client:
            started = time.perf_counter()
            response = client.post("/predict", json=body)
            elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or len(response.json()["results"][0]["result"]) != 1:
            raise RuntimeError(f"/predict answered {response.status_code}: {response.text[:300]}")
        if round_index == 0:
            cold_ms = elapsed_ms
        else:
            samples.append(elapsed_ms)
    timing = Timing(samples)
    # With one worker uvicorn serves from the server process itself: count it once.
    rss = sum(soak.rss_bytes(pid) for pid in {server.process.pid, *server.worker_pids()})
    return {
        "cold_predict_ms": round(cold_ms, 1),
        "warm_predict_ms_p50": round(timing.p50, 1),
        "warm_predict_ms_p95": round(timing.p95, 1),
        "rss_mb": round(rss / 2**20, 1),
    }


def time_redis_fetch(engine_name: str, width: int, height: int, redis_url: str, repeats: int = 10) -> dict[str, float]:
    """How long a worker that did not compute an embedding waits to read it from Redis."""
    from ..core.cache import MemoryEmbeddingCache
    from ..engine_registry import create_engine
    from ..server.redis_cache import RedisEmbeddingCache, connect_redis

    engine = create_engine(engine_name)
    image, _ = bench_scene(height, width)
    embedding = engine.embed(image)
    writer = RedisEmbeddingCache(connect_redis(redis_url), MemoryEmbeddingCache())
    writer.put("bench", embedding)
    samples = []
    for _ in range(repeats):
        reader = RedisEmbeddingCache(connect_redis(redis_url), MemoryEmbeddingCache())
        reader.client.ping()  # connected already, as a serving worker is
        started = time.perf_counter()
        fetched = reader.get("bench")
        samples.append((time.perf_counter() - started) * 1000)
        assert fetched is not None
    timing = Timing(samples)
    blob = writer.client.get(writer.prefix + "bench") or b""
    return {
        "redis_fetch_ms_p50": round(timing.p50, 2),
        "redis_fetch_ms_p95": round(timing.p95, 2),
        "embedding_mb": round(embedding.nbytes / 2**20, 2),
        "redis_blob_mb": round(len(blob) / 2**20, 2),
    }


def run_http_bench(
    engine_names: list[str],
    sizes: dict[str, tuple[int, int]],
    rounds: int,
    refine: str,
    redis_url: str | None,
    print_line: Callable[[str], None] = print,
) -> dict:
    report: dict = {}
    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(running_redis_server()).url
        for engine_name in engine_names:
            report[engine_name] = {}
            for size_name, (height, width) in sizes.items():
                figures: dict = {}
                for workers, shared in ((1, None), (2, redis_url)):
                    key = f"workers_{workers}" + ("_redis" if shared else "")
                    figures[key] = time_predict_rounds(engine_name, width, height, workers, rounds, refine, shared)
                    print_line(
                        f"http {engine_name:<16} {size_name:>9}  {workers} worker{'s' if workers > 1 else ''}"
                        f"{' + Redis' if shared else '        '}  first {figures[key]['cold_predict_ms']:8.1f} ms  "
                        f"warm p50 {figures[key]['warm_predict_ms_p50']:7.1f}  p95 {figures[key]['warm_predict_ms_p95']:7.1f}"
                        f"  RSS {figures[key]['rss_mb']:.0f} MB"
                    )
                figures.update(time_redis_fetch(engine_name, width, height, redis_url))
                print_line(
                    f"http {engine_name:<16} {size_name:>9}  embedding {figures['embedding_mb']:.1f} MB "
                    f"({figures['redis_blob_mb']:.1f} MB in Redis), read from Redis p50 {figures['redis_fetch_ms_p50']:.1f} ms"
                )
                report[engine_name][size_name] = figures
    return report
