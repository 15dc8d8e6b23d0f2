"""``scribble-seg soak``: simulated annotators against a running server; latency, errors, memory.

Each annotator opens a task (``/predict`` with a null context, as Label Studio
sends when a task is opened) and then clicks K times (``/predict`` with a smart
keypoint context and the draft's strokes, which move a little every round, as
fresh autosaved touches do). Images come from a small HTTP server that plays
Label Studio: ``/data/upload/...`` with the legacy token, served from loopback.

Recorded: the latency of every request by round (p50/p95), errors (non-200
answers, transport failures, answers without a mask), the IoU of each mask
against the known object, and the server's resident memory, summed over the
processes that hold its listening socket (the uvicorn parent and its workers),
sampled from ``/proc``. Everything is bounded: annotators, rounds, duration and
requests have hard caps, and only loopback servers are driven.
"""

from __future__ import annotations

import argparse
import http.server
import io
import ipaddress
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import cv2
import numpy as np
from PIL import Image

from ..config import labeling_config
from ..labelstudio.rle import decode_rle
from .latency import percentile
from .ports import LOOPBACK_HOST, free_port

if TYPE_CHECKING:
    import httpx

MAX_ANNOTATORS = 64
MAX_ROUNDS = 1000
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 200_000
SERVER_START_TIMEOUT_S = 180.0
RSS_SAMPLE_INTERVAL_S = 0.5
PROJECT = "1.1700000000"
LABEL = "Object"
NEGATIVE_LABEL = "Background"


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Scene:
    """A textured ellipse (the object) on a textured background, and where to paint."""

    png: bytes
    truth: np.ndarray  # HxW bool
    centre: tuple[float, float]  # (x, y) pixels
    half_axes: tuple[float, float]

    @property
    def height(self) -> int:
        return int(self.truth.shape[0])

    @property
    def width(self) -> int:
        return int(self.truth.shape[1])


def make_scene(width: int, height: int, seed: int, image_format: str = "PNG") -> Scene:
    rng = np.random.default_rng(seed)
    centre = (width * rng.uniform(0.42, 0.58), height * rng.uniform(0.42, 0.58))
    half_axes = (width * rng.uniform(0.18, 0.26), height * rng.uniform(0.18, 0.26))
    object_mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(
        object_mask, (round(centre[0]), round(centre[1])), (round(half_axes[0]), round(half_axes[1])), 0, 0, 360, 1, -1
    )
    truth = object_mask.astype(bool)
    image = np.empty((height, width, 3), np.float32)
    image[:] = rng.uniform(40, 110, 3)
    image[truth] = rng.uniform(150, 230, 3)
    image += rng.normal(0, 12, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, image_format)
    return Scene(buffer.getvalue(), truth, centre, half_axes)


# --------------------------------------------------------------------------- Label Studio's requests


def _stroke(label: str, points: list[tuple[float, float]], scene: Scene, width_px: float, region_id: str) -> dict:
    relative: list[float] = []
    for x, y in points:
        relative += [100.0 * x / scene.width, 100.0 * y / scene.height]
    return {
        "id": region_id,
        "from_name": "strokes",
        "to_name": "image",
        "type": "brushlabels",
        "origin": "manual",
        "image_rotation": 0,
        "original_width": scene.width,
        "original_height": scene.height,
        "value": {
            "format": "rle",
            "brushlabels": [label],
            "touches": [
                {
                    "type": "add",
                    "relativePoints": relative,
                    "relativeStrokeWidth": 100.0 * width_px / scene.width,
                    "points": [],
                    "strokeWidth": width_px,
                    "eraserSize": 25,
                }
            ],
        },
    }


def draft_strokes(scene: Scene, round_index: int, rng: np.random.Generator) -> list[dict]:
    """A positive stroke inside the object and a background frame, shifted a little each round."""
    cx, cy = scene.centre
    ax, ay = scene.half_axes
    jitter = rng.normal(0, 0.02, 4)
    positive = [
        (cx - ax * (0.5 + jitter[0]), cy + ay * jitter[1]),
        (cx, cy + ay * (0.1 + jitter[2])),
        (cx + ax * (0.5 + jitter[3]), cy),
    ]
    margin = 0.04 + 0.01 * (round_index % 3)
    left, top = scene.width * margin, scene.height * margin
    right, bottom = scene.width * (1 - margin), scene.height * (1 - margin)
    frame = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top)]
    brush = max(2.0, scene.width / 60)
    return [
        _stroke(LABEL, positive, scene, brush, "positive"),
        _stroke(NEGATIVE_LABEL, frame, scene, brush, "frame"),
    ]


def _keypoint(scene: Scene, x: float, y: float, positive: bool) -> dict:
    return {
        "id": f"click{int(x)}x{int(y)}",
        "from_name": "click",
        "to_name": "image",
        "type": "keypointlabels",
        "origin": "manual",
        "image_rotation": 0,
        "original_width": scene.width,
        "original_height": scene.height,
        "is_positive": positive,
        "value": {"x": 100.0 * x / scene.width, "y": 100.0 * y / scene.height, "width": 0.5, "keypointlabels": [LABEL]},
    }


def task_body(task_id: int, image_path: str, drafts: list[dict], context: dict | None, config: str) -> dict:
    return {
        "tasks": [
            {
                "id": task_id,
                "data": {"image": image_path},
                "annotations": [],
                "drafts": drafts,
                "predictions": [],
                "project": 1,
            }
        ],
        "project": PROJECT,
        "label_config": config,
        "params": {"login": None, "password": None, "context": context},
    }


def click_body(
    scene: Scene, image_path: str, task_id: int, round_index: int, rng: np.random.Generator, config_xml: str,
    annotator: int = 0,
) -> dict:
    """An interactive /predict: a click on the object (every third round also one beside it)
    and the draft's strokes, moved a little since the last round."""
    user = f"annotator{annotator}@example.com"
    strokes = draft_strokes(scene, round_index, rng)
    cx, cy = scene.centre
    clicks = [_keypoint(scene, cx + rng.normal(0, 2), cy + rng.normal(0, 2), True)]
    if round_index % 3 == 0:  # now and then "not here", outside the object
        clicks.append(_keypoint(scene, scene.width * 0.1, scene.height * 0.5, False))
    # The draft already holds the clicks, as Label Studio's does once saved after a
    # click: the backend answers without waiting for the next autosave.
    draft = {
        "id": task_id,
        "user": user,
        "created_username": f"{user}, {annotator + 1}",
        "result": strokes + clicks,
    }
    return task_body(task_id, image_path, [draft], {"result": clicks}, config_xml)


def label_config() -> str:
    """The labeling config the project recommends (ml_backend/config/labeling-config.xml)."""
    return labeling_config()


# --------------------------------------------------------------------------- the Label Studio stand-in


class LabelStudioImages:
    """Serves task images like Label Studio's legacy upload path: only with ``Token <token>``."""

    def __init__(self, scenes: list[Scene], token: str, port: int = 0) -> None:
        self.token = token
        self.files = {f"/data/upload/soak/{index}.png": scene.png for index, scene in enumerate(scenes)}
        self.requests = 0
        files, expected, owner = self.files, f"Token {token}", self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                owner.requests += 1
                body = files.get(self.path)
                status = 401 if self.headers.get("Authorization") != expected else 404 if body is None else 200
                self.send_response(status)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body) if status == 200 and body else 0))
                self.end_headers()
                if status == 200 and body:
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK_HOST, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="soak-images", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self._server.server_address[1]}"

    def path(self, index: int) -> str:
        return f"/data/upload/soak/{index}.png"

    def __enter__(self) -> "LabelStudioImages":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- the server under test




def require_loopback(url: str) -> None:
    """The soak driver only drives servers on this machine's loopback interface."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as error:
        raise ValueError(f"--url: cannot resolve {host!r} ({error})") from None
    if not addresses or not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise ValueError(f"--url: {host!r} is not a loopback address; the soak driver only drives local servers")


def scribble_seg_command() -> list[str]:
    """``<venv>/bin/scribble-seg`` next to this interpreter, else ``python -m ml_backend.cli``."""
    script = Path(sys.executable).parent / "scribble-seg"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ml_backend.cli"]


@dataclass
class ServerProcess:
    """``scribble-seg serve`` started by us, in its own process group so it can be stopped whole."""

    process: subprocess.Popen
    url: str
    port: int
    log_path: Path
    directory: Path

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The uvicorn workers: children of the server process that hold its listening socket.

        A child forked to start a worker holds every socket of the server for an instant
        before it executes the worker program: it has the server's command line then,
        and it is not a worker yet.
        """
        owners = set(listening_pids(self.port))
        server_command = _command_line(self.process.pid)
        workers = sorted(
            pid
            for pid in child_pids(self.process.pid)
            if pid in owners and _command_line(pid) not in (server_command, None)
        )
        # With one worker uvicorn serves from the server process itself.
        if not workers and self.process.pid in owners and not child_pids(self.process.pid):
            return [self.process.pid]
        return workers


def start_server(
    workers: int,
    environment: dict[str, str],
    directory: Path,
    port: int | None = None,
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> ServerProcess:
    """Starts ``scribble-seg serve`` on loopback and waits until ``/health`` answers."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "RESULT_DIR": str(directory / "results"),
            "CACHE_DIR": str(directory / "cache"),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(environment)
    log_path = directory / f"server-{port}.log"
    command = [*scribble_seg_command(), "serve", "--host", LOOPBACK_HOST, "--port", str(port)]
    command += ["--workers", str(workers)]
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = ServerProcess(process, f"http://{LOOPBACK_HOST}:{port}", port, log_path, directory)
    # httpx is in the `tools` extra: the soak test drives the server, the server never needs it.
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"scribble-seg serve exited with {process.returncode}:\n{server.log()[-3000:]}")
            try:
                if client.get(server.url + "/health").status_code == 200 and len(server.worker_pids()) >= workers:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"scribble-seg serve did not answer /health within {timeout_s:g} s:\n{server.log()[-3000:]}")


@contextmanager
def running_server(workers: int, environment: dict[str, str], prefix: str) -> Iterator[ServerProcess]:
    """``start_server`` in a temporary folder of its own; stopped and removed on leaving."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        server = start_server(workers, environment, directory)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- memory from /proc


def _command_line(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc/<pid>/task/*/children, else a /proc scan)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += children
    return found


def open_files(pid: int) -> list[str]:
    """What the process's descriptors point at (``socket:[inode]`` for sockets).

    A busy process opens and closes descriptors while we list them: one that is gone
    by the time we read it is skipped, not taken as the whole process being gone.
    """
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    targets = []
    for descriptor in descriptors:
        try:
            targets.append(os.readlink(descriptor))
        except OSError:
            continue
    return targets


def listening_pids(port: int) -> list[int]:
    """Processes holding a socket that listens on ``port`` (the parent and workers share it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        targets = open_files(int(entry.name))
        if any(f"socket:[{inode}]" in targets for inode in inodes):
            pids.append(int(entry.name))
    return sorted(pids)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the summed RSS of the server's processes every half second, in a thread."""

    def __init__(self, port: int, interval_s: float = RSS_SAMPLE_INTERVAL_S) -> None:
        self.port = port
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, bytes, processes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)
        self._started = time.monotonic()

    def sample(self) -> tuple[int, int]:
        pids = listening_pids(self.port)
        total = sum(rss_bytes(pid) for pid in pids)
        self.samples.append((time.monotonic() - self._started, total, len(pids)))
        return total, len(pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def summary(self, timeline_points: int = 20) -> dict:
        megabytes = [total / 2**20 for _, total, _ in self.samples]
        # A few evenly spaced samples: whether memory levels off or keeps climbing.
        picks = np.linspace(0, len(self.samples) - 1, min(timeline_points, len(self.samples))).round().astype(int)
        return {
            "start_mb": round(megabytes[0], 1),
            "peak_mb": round(max(megabytes), 1),
            "end_mb": round(megabytes[-1], 1),
            "processes": max(count for _, _, count in self.samples),
            "samples": len(self.samples),
            "timeline_mb": [(round(self.samples[index][0], 1), round(megabytes[index], 1)) for index in picks],
        }


# --------------------------------------------------------------------------- the annotators


@dataclass(frozen=True)
class SoakConfig:
    annotators: int = 4
    rounds: int = 10
    duration_s: float = 0.0  # 0: one task per annotator; else new tasks until the time is up
    image_width: int = 320
    image_height: int = 240
    images: int = 0  # distinct images; 0: two per annotator
    timeout_s: float = 120.0
    max_requests: int = 20_000
    seed: int = 0

    def check(self) -> None:
        if not 1 <= self.annotators <= MAX_ANNOTATORS:
            raise ValueError(f"--annotators must be 1..{MAX_ANNOTATORS}, not {self.annotators}")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ValueError(f"--rounds must be 1..{MAX_ROUNDS}, not {self.rounds}")
        if not 0 <= self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"--duration must be 0..{MAX_DURATION_S:g} seconds, not {self.duration_s:g}")
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise ValueError(f"--max-requests must be 1..{MAX_REQUESTS}, not {self.max_requests}")
        if not (32 <= self.image_width <= 4096 and 32 <= self.image_height <= 4096):
            raise ValueError("--image-size: each side must be 32..4096 pixels")


@dataclass
class Outcome:
    round_index: int  # 0: the task is opened; 1..K: clicks
    seconds: float
    ok: bool
    error: str | None = None
    iou: float | None = None


@dataclass
class SoakReport:
    config: dict
    server: dict
    requests: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    mean_iou: float | None = None
    rss: dict = field(default_factory=dict)
    label_studio_image_requests: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _latency(samples: list[float]) -> dict:
    return {
        "n": len(samples),
        "p50": round(1000 * statistics.median(samples), 1),
        "p95": round(1000 * percentile(samples, 0.95), 1),
        "max": round(1000 * max(samples), 1),
    }


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
    report = SoakReport(config=asdict(config), server=server_info or {"url": server_url})
    report.requests = len(outcomes)
    failures = [outcome for outcome in outcomes if not outcome.ok]
    report.errors = len(failures)
    report.error_examples = list(dict.fromkeys(outcome.error or "" for outcome in failures))[:5]
    report.elapsed_s = round(elapsed, 2)
    report.requests_per_s = round(len(outcomes) / elapsed, 2) if elapsed else 0.0
    by_round: dict[str, list[float]] = {}
    for outcome in outcomes:
        name = "open" if outcome.round_index == 0 else f"round_{outcome.round_index}"
        by_round.setdefault(name, []).append(outcome.seconds)
    clicks = [outcome.seconds for outcome in outcomes if outcome.round_index > 0]
    if clicks:
        by_round["all_rounds"] = clicks
    report.latency_ms = {name: _latency(samples) for name, samples in by_round.items()}
    ious = [outcome.iou for outcome in outcomes if outcome.iou is not None]
    report.mean_iou = round(float(np.mean(ious)), 4) if ious else None
    report.rss = sampler.summary()
    report.label_studio_image_requests = images.requests
    return report


def format_report(report: SoakReport) -> str:
    lines = [
        f"soak: {report.config['annotators']} annotators x {report.config['rounds']} rounds"
        + (f", {report.config['duration_s']:g} s" if report.config["duration_s"] else "")
        + f", {report.config['image_width']}x{report.config['image_height']} images, server {report.server}",
        f"requests {report.requests}, errors {report.errors}, {report.elapsed_s} s, {report.requests_per_s} req/s"
        + (f", mean IoU {report.mean_iou}" if report.mean_iou is not None else ""),
        f"{'round':<12} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}",
    ]
    for name, figures in report.latency_ms.items():
        lines.append(f"{name:<12} {figures['n']:>6} {figures['p50']:>9} {figures['p95']:>9} {figures['max']:>9}")
    rss = report.rss
    lines.append(
        f"server RSS over {rss['processes']} processes: start {rss['start_mb']} MB, "
        f"peak {rss['peak_mb']} MB, end {rss['end_mb']} MB ({rss['samples']} samples)"
    )
    lines += [f"error: {example}" for example in report.error_examples]
    return "\n".join(lines)


@contextmanager
def soak_server(workers: int, images_port: int, token: str, extra_env: dict[str, str]) -> Iterator[ServerProcess]:
    """A ``scribble-seg serve`` of our own, reading images from the stand-in on ``images_port``."""
    environment = {"LABEL_STUDIO_URL": f"http://{LOOPBACK_HOST}:{images_port}", "LABEL_STUDIO_API_KEY": token}
    environment.update(extra_env)
    with running_server(workers, environment, prefix="scribble-soak-") as server:
        yield server


# --------------------------------------------------------------------------- command line


def _image_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, not {text!r}")
    return int(width), int(height)


def add_soak_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    soak = subparsers.add_parser(
        "soak",
        help="simulate annotators against a server: latency per round, errors, server memory",
        description="Each annotator opens a task, then clicks --rounds times with strokes that move a little. "
        "Without --url a server with --workers workers is started on loopback for the run.",
    )
    soak.add_argument("--url", help="a running server on loopback; its LABEL_STUDIO_URL must be "
                      "http://127.0.0.1:<--images-port> and LABEL_STUDIO_API_KEY the --token")
    soak.add_argument("--workers", type=int, default=2, help="workers of the server started here (default 2)")
    soak.add_argument("--annotators", type=int, default=4, help=f"concurrent annotators, 1..{MAX_ANNOTATORS}")
    soak.add_argument("--rounds", type=int, default=10, help="clicks per task after opening it")
    soak.add_argument("--duration", type=float, default=0.0,
                      help="seconds to keep going with new tasks (0: one task per annotator)")
    soak.add_argument("--image-size", type=_image_size, default=(320, 240), metavar="WxH")
    soak.add_argument("--images", type=int, default=0, help="distinct images (default: two per annotator)")
    soak.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    soak.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests")
    soak.add_argument("--redis-url", help="REDIS_URL for the server started here")
    soak.add_argument("--engine", help="ENGINE for the server started here (default: ENGINE)")
    soak.add_argument("--images-port", type=int, default=0, help="port of the Label Studio stand-in (with --url)")
    soak.add_argument("--token", help="token the stand-in asks for (with --url: the server's LABEL_STUDIO_API_KEY)")
    soak.add_argument("--seed", type=int, default=0)
    soak.add_argument("--json", metavar="OUT.json", help="write every figure here")
    soak.set_defaults(handler=run_soak_command)
    return soak


def run_soak_command(args: argparse.Namespace) -> int:
    config = SoakConfig(
        annotators=args.annotators,
        rounds=args.rounds,
        duration_s=args.duration,
        image_width=args.image_size[0],
        image_height=args.image_size[1],
        images=args.images,
        timeout_s=args.timeout,
        max_requests=args.max_requests,
        seed=args.seed,
    )
    try:
        config.check()
        if args.url:
            require_loopback(args.url)
            if not args.images_port or not args.token:
                raise ValueError("--url needs --images-port and --token: the server must know where images come from")
    except ValueError as error:
        print(f"scribble-seg soak: error: {error}", file=sys.stderr)
        return 2
    token = args.token or secrets.token_hex(16)
    if args.url:
        port = urlsplit(args.url).port or 80
        report = run_soak(args.url, port, config, args.images_port, token,
                          server_info={"url": args.url, "started_here": False})
    else:
        if not 1 <= args.workers <= 64:
            print("scribble-seg soak: error: --workers must be 1..64", file=sys.stderr)
            return 2
        images_port = args.images_port or free_port()
        extra = {key: value for key, value in (("REDIS_URL", args.redis_url), ("ENGINE", args.engine)) if value}
        with soak_server(args.workers, images_port, token, extra) as server:
            info = {"url": server.url, "started_here": True, "workers": args.workers, "redis": bool(args.redis_url)}
            report = run_soak(server.url, server.port, config, images_port, token, server_info=info)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(report.to_json())
        print(f"wrote {args.json}")
    return 0 if report.errors == 0 else 1
