"""Faults injected into real processes: Redis going away and coming back, a worker killed,
Label Studio unreachable or hanging.

The server is `<venv>/bin/scribble-seg serve --workers 2` in a subprocess, sharing a real
`redis-server` that this module starts, stops and restarts on the same port; task images
come from a Label Studio stand-in on loopback (`ml_backend.tools.soak.LabelStudioImages`).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from ml_backend.tools import soak
from ml_backend.tools.latency import percentile
from ml_backend.tools.redis_process import redis_executable, server_command, stop_process, wait_until_ready
from ml_backend.server.app import create_app
from ml_backend.settings import Settings
from ml_backend.tools.soak import LOOPBACK_HOST as HOST
from ml_backend.tools.soak import free_port
from tests.synthetic import disc_scene, scribbles_for

WORKERS = 2
SCENE_WIDTH, SCENE_HEIGHT = 160, 120
# Scenes 0-3 are annotated before the outage, 4-7 during it, 8-15 after Redis is back:
# new images during and after it make the server embed (and try to share) afresh.
SCENES_BEFORE, SCENES_DURING, SCENES_AFTER = range(0, 4), range(4, 8), range(8, 16)
EMBEDDING_KEYS = "scribble:embedding:*"
ROUND_KEYS = "scribble:round:*"
FETCH_DEADLINE_S = 5 + 20  # fetch_url's connect and read timeouts: the longest a fetch may take


# ------------------------------------------------------------------ Redis we can stop and restart


class RestartableRedis:
    """A redis-server on a fixed loopback port that can be stopped and started again there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="test-faults-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        command = server_command(redis_executable(), self.port, self.directory)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until_ready(self.process, self.port):
            stop_process(self.process)
            log_path = self.directory / f"redis-{self.port}.log"
            log = log_path.read_text(errors="replace")[-1000:] if log_path.exists() else ""
            raise RuntimeError(f"redis-server did not start on port {self.port}: {log}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def count(self, pattern: str) -> int:
        client = self.client()
        try:
            return sum(1 for _ in client.scan_iter(pattern))
        finally:
            client.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def restartable_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    try:
        server.start()
    except Exception as error:  # the test must fail, not skip, without its service
        server.close()
        pytest.fail(f"cannot start redis-server: {error}")
    yield server
    server.close()


# ------------------------------------------------------------------ the server and its Label Studio


@dataclass
class Deployment:
    server: soak.ServerProcess
    images: soak.LabelStudioImages
    scenes: list[soak.Scene]
    redis: RestartableRedis


@pytest.fixture(scope="module")
def deployment(restartable_redis: RestartableRedis) -> Iterator[Deployment]:
    token = secrets.token_hex(16)
    scenes = [soak.make_scene(SCENE_WIDTH, SCENE_HEIGHT, seed=index) for index in range(16)]
    with soak.LabelStudioImages(scenes, token) as images, contextlib.ExitStack() as stack:
        environment = {
            "REDIS_URL": restartable_redis.url,
            "LABEL_STUDIO_URL": images.url,
            "LABEL_STUDIO_API_KEY": token,
            "REFINE": "none",
            "RESULT_SIGNING_KEY": "",
        }
        try:
            server = stack.enter_context(soak.running_server(WORKERS, environment, prefix="test-faults-"))
        except RuntimeError as error:
            pytest.fail(f"cannot start scribble-seg serve: {error}")
        yield Deployment(server, images, scenes, restartable_redis)


# ------------------------------------------------------------------ load in the background


@dataclass
class Answer:
    started: float
    finished: float
    status: int | None  # None: no HTTP answer at all (connection reset, timeout)
    detail: str


@dataclass
class Load:
    """Annotators clicking in threads; which images they use is picked by ``scenes``."""

    deployment: Deployment
    annotators: int = 3
    scenes: range = SCENES_BEFORE
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Load":
        for annotator in range(self.annotators):
            thread = threading.Thread(target=self._annotate, args=(annotator,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a request hung"
        return self.answers

    def _annotate(self, annotator: int) -> None:
        rng = np.random.default_rng(annotator)
        config = soak.label_config()
        round_index = 0
        with httpx.Client(base_url=self.deployment.server.url, timeout=60) as client:
            while not self._stop.is_set():
                round_index += 1
                scenes = self.scenes  # read once: the test switches it between phases
                scene_index = scenes[(annotator + round_index // 3) % len(scenes)]
                scene = self.deployment.scenes[scene_index]
                body = soak.click_body(
                    scene, self.deployment.images.path(scene_index), 1000 + scene_index, round_index, rng, config,
                    annotator,
                )
                started = time.monotonic()
                try:
                    response = client.post("/predict", json=body)
                    status, detail = response.status_code, response.text[:300]
                    if status == 200 and len(response.json()["results"][0]["result"]) != 1:
                        detail = "no mask: " + detail
                        status = -1
                except httpx.HTTPError as error:
                    status, detail = None, f"{type(error).__name__}: {error}"
                with self._lock:
                    self.answers.append(Answer(started, time.monotonic(), status, detail))

    def answers_between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if start <= answer.started < end]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _scribble_api_round(client: httpx.Client) -> httpx.Response:
    """The drop-in API with uploaded files: its result lands in the result store."""
    image, truth = disc_scene(96, 120, seed=5)
    positive, negative = scribbles_for(truth)
    return client.post(
        "/InteractiveScribbleSegmentation",
        data={"ReturnForm": "only_alpha"},
        files={
            "Image": ("image.png", _png(image), "image/png"),
            "PosScribbleImage": ("p.png", _png(positive.astype(np.uint8) * 255), "image/png"),
            "NegScribbleImage": ("n.png", _png(negative.astype(np.uint8) * 255), "image/png"),
        },
    )


def _summary(answers: list[Answer]) -> str:
    """Counts and latency, printed for the record (pytest -rP shows it)."""
    seconds = sorted(answer.finished - answer.started for answer in answers) or [0.0]
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
    return f"{len(answers)} requests {statuses}, p50 {np.median(seconds):.2f} s, p95 {percentile(seconds, 0.95):.2f} s"


def _assert_served(answers: list[Answer], what: str) -> None:
    assert answers, f"no request was answered {what}"
    failed = [answer for answer in answers if answer.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed {what}: {failed[:3]}"


# ------------------------------------------------------------------ Redis goes away and comes back


def _wait_for(condition, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s")


def test_redis_outage_mid_load_degrades_to_process_memory_and_reconnects(
    hanging_label_studio: HangingRequest, deployment: Deployment
) -> None:
    # hanging_label_studio (first: it starts before the server): its request waits out
    # its fetch timeout meanwhile, and is checked last.
    redis_server = deployment.redis
    load = Load(deployment).start()
    try:
        with httpx.Client(base_url=deployment.server.url, timeout=60) as client:
            _wait_for(lambda: len(load.answers) >= 6, 60, "six rounds with Redis up")
            # (Label Studio rounds keep no masks server-side: each is made from what is on screen.)
            assert redis_server.count(EMBEDDING_KEYS) >= 1 and redis_server.count(ROUND_KEYS) == 0

            redis_server.stop()
            outage_started = time.monotonic()
            load.scenes = SCENES_DURING  # images nobody has embedded yet: no shared cache to lean on
            # Rounds go on: embeddings from process memory (or computed there), the previous
            # masks from process memory, results of the scribble API in the local folder.
            _wait_for(
                lambda: len(load.answers_between(outage_started + 0.5, 1e12)) >= 8, 60, "rounds during the outage"
            )
            during_outage = _scribble_api_round(client)
            assert during_outage.status_code == 200, during_outage.text
            result = client.get(during_outage.json()["Data"]["ResultUrl"])
            assert result.status_code == 200 and result.content.startswith(b"\x89PNG")
            assert client.get("/health").status_code == 200

            redis_server.start()  # same port, empty
            restarted = time.monotonic()
            load.scenes = SCENES_AFTER
            # The service reconnects by itself: new embeddings are shared again.
            _wait_for(lambda: redis_server.count(EMBEDDING_KEYS) >= 1, 30, "embeddings written to the restarted Redis")
            after = _scribble_api_round(client)
            assert after.status_code == 200, after.text
            assert redis_server.count("scribble:result:*") == 1
    finally:
        answers = load.stop()
    print("before the outage:", _summary([a for a in answers if a.started < outage_started]))
    print("Redis down:", _summary([a for a in answers if outage_started <= a.started < restarted]))
    print("Redis back:", _summary([a for a in answers if a.started >= restarted]))
    _assert_served([a for a in answers if a.started < outage_started], "before the outage")
    _assert_served([a for a in answers if outage_started <= a.started < restarted], "while Redis was down")
    _assert_served([a for a in answers if a.started >= restarted], "after Redis came back")
    assert deployment.server.process.poll() is None


def test_server_starts_and_serves_while_redis_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind((HOST, 0))
        closed_port = probe.getsockname()[1]
    settings = Settings(
        REDIS_URL=f"redis://{HOST}:{closed_port}/0", RESULT_SIGNING_KEY=None,
        RESULT_DIR=tmp_path / "results", CACHE_DIR=tmp_path / "cache", REFINE="none",
    )
    client = TestClient(create_app(settings), raise_server_exceptions=False)  # used to fail reading the key
    assert client.get("/health").status_code == 200
    answer = _scribble_api_round(client)
    # No key can be agreed on without Redis: a clear, retryable refusal, not a traceback.
    assert answer.status_code == 503, answer.text
    assert answer.json()["Code"] == "ServiceUnavailable" and "RESULT_SIGNING_KEY" in answer.json()["Message"]
    with_key = TestClient(create_app(settings.model_copy(update={"RESULT_SIGNING_KEY": "k" * 32})))
    served = _scribble_api_round(with_key)
    assert served.status_code == 200, served.text
    assert with_key.get(served.json()["Data"]["ResultUrl"]).status_code == 200


# ------------------------------------------------------------------ a worker is killed


def _connections_held(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` whose socket the process ``pid`` holds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    return sum(1 for target in soak.open_files(pid) if target in inodes)


def test_killed_worker_is_replaced_and_the_other_keeps_serving(deployment: Deployment) -> None:
    server = deployment.server
    workers_before = server.worker_pids()
    assert len(workers_before) == WORKERS, workers_before
    load = Load(deployment, annotators=4, scenes=SCENES_AFTER).start()
    health_failures: list[str] = []
    try:
        _wait_for(lambda: len(load.answers) >= 6, 60, "six rounds before the kill")
        # The worker holding most of the annotators' (keep-alive) connections: its
        # requests in flight die with it.
        held = {pid: _connections_held(pid, server.port) for pid in workers_before}
        victim = max(held, key=held.__getitem__)
        assert held[victim] >= 1, held
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            def replaced() -> bool:
                try:
                    if client.get("/health").status_code != 200:
                        health_failures.append("status")
                except httpx.HTTPError as error:
                    health_failures.append(repr(error))
                workers = server.worker_pids()
                return len(workers) == WORKERS and victim not in workers

            took = _wait_for(replaced, 90, "uvicorn starting a new worker")
        replacement = set(server.worker_pids()) - set(workers_before)
        assert len(replacement) == 1
        # Wait for rounds in the window the assertions below look at: a replacement can
        # come up well within the second after the kill that they leave out.
        recovered = max(time.monotonic(), killed + 1.0)
        _wait_for(lambda: len(load.answers_between(recovered, 1e12)) >= 8, 60, "rounds after the restart")
    finally:
        answers = load.stop()
    # Only requests on the killed worker's connections, sent before it was gone, may die
    # with it (no HTTP answer at all); nothing is ever answered with a 5xx, and every
    # request sent once the kill has taken effect succeeds.
    lost = [a for a in answers if a.status is None]
    print(
        f"worker {victim} killed holding {held[victim]} of {sum(held.values())} connections; replaced after "
        f"{took:.1f} s; {len(lost)} requests lost; all: {_summary(answers)}"
    )
    assert len(lost) <= held[victim] and all(a.started < killed + 1.0 for a in lost), (lost, took)
    _assert_served([a for a in answers if a.status is not None], "with an HTTP answer")
    _assert_served([a for a in answers if a.started > killed + 1.0], "after the kill")
    assert not health_failures, health_failures
    assert server.process.poll() is None


# ------------------------------------------------------------------ Label Studio unreachable


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers (a hung Label Studio)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


@dataclass
class HangingRequest:
    thread: threading.Thread
    answer: Any = None
    seconds: float = 0.0
    served_meanwhile: list[int] = field(default_factory=list)
    meanwhile_seconds: float = 0.0


@pytest.fixture(scope="module")
def hanging_label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HangingRequest]:
    """A click whose image lives on a Label Studio that never answers, sent when the module
    starts (the faults before it run while it waits for the fetch timeout)."""
    with silent_server() as port:
        client = _label_studio_client(tmp_path_factory.mktemp("hanging"), port)
        probe = HangingRequest(threading.Thread(daemon=True))

        def click() -> None:
            started = time.monotonic()
            probe.answer = client.post("/predict", json=_click())
            probe.seconds = time.monotonic() - started

        probe.thread = threading.Thread(target=click, daemon=True)
        probe.thread.start()
        time.sleep(1.0)
        if probe.thread.is_alive():  # the fetch is hanging now
            started = time.monotonic()
            probe.served_meanwhile = [client.get("/health").status_code, _scribble_api_round(client).status_code]
            probe.meanwhile_seconds = time.monotonic() - started
        yield probe
        probe.thread.join(FETCH_DEADLINE_S + 15)


def _label_studio_client(tmp_path: Path, port: int) -> TestClient:
    settings = Settings(
        LABEL_STUDIO_URL=f"http://{HOST}:{port}", LABEL_STUDIO_API_KEY="token-" + "x" * 20, REDIS_URL=None,
        RESULT_DIR=tmp_path / "results", CACHE_DIR=tmp_path / "cache", REFINE="none",
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


def _click(path: str = "/data/upload/1/scene.png") -> dict:
    scene = soak.make_scene(SCENE_WIDTH, SCENE_HEIGHT, seed=1)
    return soak.click_body(scene, path, 7, 1, np.random.default_rng(0), soak.label_config())


def test_label_studio_refusing_connections_is_a_prompt_4xx(tmp_path: Path, closed_port: int) -> None:
    client = _label_studio_client(tmp_path, closed_port)
    started = time.monotonic()
    answer = client.post("/predict", json=_click())
    assert time.monotonic() - started < 10
    assert answer.status_code == 400, answer.text
    assert answer.json()["Code"] == "InvalidImage.Download" and "connect" in answer.json()["Message"]
    assert "Traceback" not in answer.text
    # Opening a task answers at once (the embedding is fetched in the background, and fails there).
    opened = client.post("/predict", json=soak.task_body(8, "/data/upload/1/other.png", [], None, soak.label_config()))
    assert opened.status_code == 200 and opened.json()["results"][0]["result"] == []


def test_hanging_label_studio_gives_a_4xx_within_the_fetch_timeout_and_blocks_nothing(
    hanging_label_studio: HangingRequest,
) -> None:
    probe = hanging_label_studio
    probe.thread.join(FETCH_DEADLINE_S + 15)
    assert not probe.thread.is_alive(), "the request hung past the fetch timeout"
    # While it hung, the same server answered everything that does not need Label Studio.
    assert probe.served_meanwhile == [200, 200] and probe.meanwhile_seconds < 10, probe
    answer = probe.answer
    assert answer is not None and answer.status_code == 400, answer and answer.text
    assert answer.json()["Code"] == "InvalidImage.Download" and "timed out" in answer.json()["Message"]
    assert probe.seconds <= FETCH_DEADLINE_S + 5
    print(f"hanging Label Studio: HTTP {answer.status_code} after {probe.seconds:.1f} s: {answer.json()['Message']}")
