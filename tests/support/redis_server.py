"""A real ``redis-server`` for tests: own temp dir, free loopback port, no persistence.

Use ``from tests.support.redis_server import redis_server  # noqa`` in a test module.
The fixture fails (never skips) when the server cannot be started.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

REDIS_SERVER = "/usr/bin/redis-server"
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
START_ATTEMPTS = 3  # a free port can be taken by someone else between finding and binding it


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    directory: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _executable() -> str:
    found = REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")
    if not found:
        raise RuntimeError(f"redis-server is not installed ({REDIS_SERVER} is missing); apt-get install redis-server")
    return found


def _wait_until_ready(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_redis_server() -> Iterator[RedisServer]:
    """Starts redis-server, yields it, stops it and removes its directory."""
    executable = _executable()
    directory = Path(tempfile.mkdtemp(prefix="test-redis-"))
    failures: list[str] = []
    try:
        for _attempt in range(START_ATTEMPTS):
            port = _free_port()
            log_path = directory / f"redis-{port}.log"
            command = [
                executable,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--dir",
                str(directory),
                "--logfile",
                str(log_path),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ]
            output_path = directory / f"redis-{port}.out"
            with output_path.open("wb") as output:  # a file, not a pipe: nothing can fill up and block
                process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            if _wait_until_ready(process, port):
                try:
                    yield RedisServer(HOST, port, directory, process)
                finally:
                    _stop(process)
                return
            _stop(process)
            output = output_path.read_text(errors="replace")
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            failures.append(f"port {port}: exit {process.returncode}; {output.strip()[-500:]} {log.strip()[-500:]}")
        raise RuntimeError("redis-server did not start: " + " | ".join(failures))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    try:
        context = running_redis_server()
        server = context.__enter__()
    except Exception as error:  # the test must fail, not skip, without its service
        pytest.fail(f"cannot start redis-server for the tests: {error}")
    try:
        yield server
    finally:
        context.__exit__(None, None, None)
