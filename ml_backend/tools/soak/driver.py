"""The simulated annotators: each opens a task, then clicks, against a server on loopback."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from ...labelstudio.rle import decode_rle
from .config import SoakConfig
from .images import LabelStudioImages
from .payloads import click_body, label_config, task_body
from .report import Outcome, SoakReport, build_report
from .rss import RssSampler
from .scenes import Scene, make_scene

if TYPE_CHECKING:
    import httpx


def require_loopback(url: str) -> None:
    """The soak driver only drives servers on this machine's loopback interface."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as error:
        raise ValueError(f"--url: cannot resolve {host!r} ({error})") from None
    if not addresses or not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise ValueError(f"--url: {host!r} is not a loopback address; the soak driver only drives local servers")


class _Budget:
    """Hands out request permits up to the cap and until the deadline, across threads."""

    def __init__(self, max_requests: int, deadline: float | None) -> None:
        self.remaining = max_requests
        self.deadline = deadline
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True


def _check_answer(response: httpx.Response, scene: Scene, interactive: bool) -> tuple[bool, str | None, float | None]:
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}: {response.text[:300]}", None
    try:
        results = response.json()["results"]
        regions = results[0]["result"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False, f"HTTP 200 with an unexpected body: {response.text[:300]}", None
    if not interactive:
        return True, None, None
    if len(regions) != 1 or regions[0].get("type") != "brushlabels":
        return False, f"expected one brush region, got {response.text[:300]}", None
    mask = decode_rle(regions[0]["value"]["rle"], scene.height, scene.width) > 127
    union = np.logical_or(mask, scene.truth).sum()
    return True, None, float(np.logical_and(mask, scene.truth).sum() / union) if union else 1.0


def _annotate(
    annotator: int,
    server_url: str,
    scenes: list[Scene],
    images: LabelStudioImages,
    config: SoakConfig,
    budget: _Budget,
    outcomes: list[Outcome],
    lock: threading.Lock,
) -> None:
    import httpx

    rng = np.random.default_rng(config.seed * 1000 + annotator)
    config_xml = label_config()
    session = 0
    with httpx.Client(base_url=server_url, timeout=config.timeout_s) as client:
        while True:
            task_id = 100_000 * (annotator + 1) + session
            scene_index = (annotator + session * config.annotators) % len(scenes)
            scene, path = scenes[scene_index], images.path(scene_index)
            for round_index in range(config.rounds + 1):
                if not budget.take():
                    return
                if round_index == 0:
                    body = task_body(task_id, path, [], None, config_xml)
                else:
                    body = click_body(scene, path, task_id, round_index, rng, config_xml, annotator)
                started = time.perf_counter()
                try:
                    response = client.post("/predict", json=body)
                    ok, error, iou = _check_answer(response, scene, interactive=round_index > 0)
                except httpx.HTTPError as failure:
                    ok, error, iou = False, f"{type(failure).__name__}: {failure}", None
                outcome = Outcome(round_index, time.perf_counter() - started, ok, error, iou)
                with lock:
                    outcomes.append(outcome)
            session += 1
            if config.duration_s <= 0:
                return


def run_soak(server_url: str, server_port: int, config: SoakConfig, images_port: int = 0,
             token: str | None = None, server_info: dict | None = None) -> SoakReport:
    """Drives ``config.annotators`` simulated annotators against ``server_url``; returns the figures.

    The server must fetch ``/data/upload/...`` from the Label Studio stand-in this
    starts on ``images_port``: set its ``LABEL_STUDIO_URL`` to ``http://127.0.0.1:<images_port>``
    and ``LABEL_STUDIO_API_KEY`` to ``token``.
    """
    config.check()
    require_loopback(server_url)
    image_count = config.images or 2 * config.annotators
    scenes = [make_scene(config.image_width, config.image_height, config.seed * 7919 + index)
              for index in range(image_count)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + config.duration_s if config.duration_s > 0 else None
    budget = _Budget(config.max_requests, deadline)
    with LabelStudioImages(scenes, token or "", images_port) as images, RssSampler(server_port) as sampler:
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=_annotate,
                args=(annotator, server_url, scenes, images, config, budget, outcomes, lock),
                name=f"annotator-{annotator}",
                daemon=True,
            )
            for annotator in range(config.annotators)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return build_report(config, server_info or {"url": server_url}, outcomes, elapsed, sampler.summary(),
                        images.requests)
