"""Hostile load against a real ``scribble-seg serve`` (issue 19), timed and measured.

    python -m ml_backend.tools.bench_hostile touches   # a 24 MB /predict body of 300,000 two-point touches
    python -m ml_backend.tools.bench_hostile trickle   # 45 scribble-API fetches trickling 1 byte/s, then a 64x64 upload
    python -m ml_backend.tools.bench_hostile memory    # 12 concurrent 4096x4096 uploads; the server's RSS
    python -m ml_backend.tools.bench_hostile all

Each scenario starts its own server (one worker, so one process holds all memory),
prints one JSON line of figures and stops it. The server's settings come from the
environment as usual (``MEMORY_BUDGET_MB``, ``FETCH_CONCURRENCY``, ...): run with
other values to see what they change.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from . import soak
from .loopback_host import LoopbackHost, trickle

ACTION = "InteractiveScribbleSegmentation"
TRICKLE_HOST = "127.0.0.1"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    # A photo comes as JPEG: this noisy scene as PNG would pass the 10 MB upload limit at 4096x4096.
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _upload_parts(width: int, height: int, seed: int = 0) -> dict[str, tuple[str, bytes, str]]:
    """A noisy disc and a stroke on it and one around it, as the scribble API's file parts."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    inside = (rows - height / 2) ** 2 / (height / 4) ** 2 + (columns - width / 2) ** 2 / (width / 4) ** 2 <= 1
    image = np.where(inside[..., None], [200, 60, 50], [40, 80, 190]).astype(np.int16)
    image = np.clip(image + rng.integers(-30, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    positive = np.zeros((height, width), np.uint8)
    positive[height // 2 - 2 : height // 2 + 2, width * 2 // 5 : width * 3 // 5] = 255
    negative = np.zeros((height, width), np.uint8)
    negative[:4, :] = negative[-4:, :] = 255
    negative[:, :4] = negative[:, -4:] = 255
    return {
        "Image": ("image.jpg", _jpeg(image), "image/jpeg"),
        "PosScribbleImage": ("positive.png", _png(positive), "image/png"),
        "NegScribbleImage": ("negative.png", _png(negative), "image/png"),
    }


# --------------------------------------------------------------------------- touches


def touches_body(touches: int) -> bytes:
    touch = '{"type":"add","relativePoints":[40.0,50.0,40.1,50.0],"relativeStrokeWidth":2}'
    region = ('{"from_name":"strokes","to_name":"image","type":"brushlabels","original_width":128,'
              '"original_height":96,"value":{"format":"rle","brushlabels":["Object"],"touches":['
              + ",".join([touch] * touches) + "]}}")
    config = json.dumps(soak.label_config())
    return ('{"project":"1.1","label_config":' + config + ',"params":{"context":null},'
            '"tasks":[{"id":1,"data":{"image":"/data/upload/1/scene.png"},"annotations":[],'
            '"drafts":[{"id":1,"user":"a@example.com","result":[' + region + "]}]}]}").encode()


def bench_touches(touches: int = 300_000) -> dict:
    import httpx  # the [tools] extra: not in the base install

    body = touches_body(touches)
    with soak.running_server(1, {"ENGINE": "grabcut"}, "bench-hostile-touches-") as server:
        started = time.perf_counter()
        answer = httpx.post(f"{server.url}/predict", content=body, headers={"Content-Type": "application/json"},
                            timeout=300)
        seconds = time.perf_counter() - started
        health_started = time.perf_counter()
        httpx.get(f"{server.url}/health", timeout=30)
        health_seconds = time.perf_counter() - health_started
    return {
        "scenario": "touches", "touches": touches, "body_mb": round(len(body) / 2**20, 1),
        "status": answer.status_code, "seconds": round(seconds, 3), "health_after_s": round(health_seconds, 3),
        "message": answer.json().get("Message") if answer.status_code >= 400 else None,
    }


# --------------------------------------------------------------------------- trickling fetches


@contextmanager
def trickling_host() -> Iterator[str]:
    """A host whose every path sends one byte a second."""
    with LoopbackHost(TRICKLE_HOST) as host:
        host.routes["/"] = trickle()
        yield host.origin


def bench_trickle(fetches: int = 45, upload_side: int = 64) -> dict:
    import httpx  # the [tools] extra: not in the base install

    parts = _upload_parts(upload_side, upload_side)
    with trickling_host() as host, soak.running_server(
        1, {"ENGINE": "grabcut", "ALLOWED_FETCH_HOSTS": TRICKLE_HOST}, "bench-hostile-trickle-"
    ) as server:
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=fetches + 4)) as client:
            with concurrent.futures.ThreadPoolExecutor(fetches) as pool:
                slow = [
                    pool.submit(
                        client.get, f"{server.url}/", params={"Action": ACTION, "ImageUrl": f"{host}/{index}.png"}
                    )
                    for index in range(fetches)
                ]
                time.sleep(2.0)  # every slow request is in and waiting on its host
                started = time.perf_counter()
                upload = client.post(f"{server.url}/", data={"Action": ACTION, "ReturnForm": "only_alpha"}, files=parts)
                upload_seconds = time.perf_counter() - started
                statuses = Counter(future.result().status_code for future in slow)
    return {
        "scenario": "trickle", "fetches": fetches, "upload_side": upload_side,
        "upload_status": upload.status_code, "upload_seconds": round(upload_seconds, 3),
        "fetch_statuses": dict(sorted(statuses.items())),
    }


# --------------------------------------------------------------------------- memory


def bench_memory(uploads: int = 12, side: int = 4096) -> dict:
    import httpx  # the [tools] extra: not in the base install

    parts = _upload_parts(side, side)
    # The configured engine (the default one unless ENGINE is set), as a deployed server runs.
    with soak.running_server(1, {}, "bench-hostile-memory-") as server:
        engine = httpx.get(f"{server.url}/health", timeout=10).json()["engine"]
        time.sleep(1.0)
        with soak.RssSampler(server.port, interval_s=0.1) as sampler:
            started = time.perf_counter()
            with httpx.Client(timeout=900, limits=httpx.Limits(max_connections=uploads + 2)) as client:
                with concurrent.futures.ThreadPoolExecutor(uploads) as pool:
                    answers = list(pool.map(
                        lambda _: client.post(f"{server.url}/", data={"Action": ACTION, "ReturnForm": "only_alpha"},
                                              files=parts),
                        range(uploads),
                    ))
            seconds = time.perf_counter() - started
            time.sleep(1.0)
        memory = sampler.summary(timeline_points=8)
    return {
        "scenario": "memory", "engine": engine, "uploads": uploads, "side": side, "seconds": round(seconds, 1),
        "statuses": dict(sorted(Counter(answer.status_code for answer in answers).items())),
        "rss_start_mb": memory["start_mb"], "rss_peak_mb": memory["peak_mb"], "rss_end_mb": memory["end_mb"],
    }


SCENARIOS = {"touches": bench_touches, "trickle": bench_trickle, "memory": bench_memory}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_backend.tools.bench_hostile", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--uploads", type=int, default=12, help="memory: concurrent uploads")
    parser.add_argument("--side", type=int, default=4096, help="memory: image side in pixels")
    args = parser.parse_args(argv)
    options = {"memory": {"uploads": args.uploads, "side": args.side}}
    for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
        print(json.dumps(SCENARIOS[name](**options.get(name, {}))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
