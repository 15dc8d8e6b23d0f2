"""A throwaway ``redis-server``: its own temp folder, a free loopback port, no persistence.

For the bench and the tests, which need a real Redis and must not touch one
that is already running.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from .ports import LOOPBACK_HOST, free_port

REDIS_SERVER = "/usr/bin/redis-server"
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


def redis_executable() -> str:
    found = REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")
    if not found:
        raise RuntimeError(f"redis-server is not installed ({REDIS_SERVER} is missing); apt-get install redis-server")
    return found


def wait_until_ready(process: subprocess.Popen, port: int) -> bool:
    """True once the server on ``port`` answers PING; False if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis(host=LOOPBACK_HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
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


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def server_command(executable: str, port: int, directory: Path) -> list[str]:
    return [
        executable, "--port", str(port), "--bind", LOOPBACK_HOST, "--dir", str(directory),
        "--logfile", str(directory / f"redis-{port}.log"), "--save", "", "--appendonly", "no",
        "--protected-mode", "yes", "--daemonize", "no",
    ]  # fmt: skip


@contextlib.contextmanager
def running_redis_server() -> Iterator[RedisServer]:
    """Starts redis-server, yields it, stops it and removes its folder; raises RuntimeError if it cannot start."""
    executable = redis_executable()
    directory = Path(tempfile.mkdtemp(prefix="scribble-redis-"))
    failures: list[str] = []
    try:
        for _attempt in range(START_ATTEMPTS):
            port = free_port()
            output_path = directory / f"redis-{port}.out"
            with output_path.open("wb") as output:  # a file, not a pipe: nothing can fill up and block
                process = subprocess.Popen(
                    server_command(executable, port, directory), stdout=output, stderr=subprocess.STDOUT
                )
            if wait_until_ready(process, port):
                try:
                    yield RedisServer(LOOPBACK_HOST, port, directory, process)
                finally:
                    stop_process(process)
                return
            stop_process(process)
            log_path = directory / f"redis-{port}.log"
            output = output_path.read_text(errors="replace")
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            failures.append(f"port {port}: exit {process.returncode}; {output.strip()[-500:]} {log.strip()[-500:]}")
        raise RuntimeError("redis-server did not start: " + " | ".join(failures))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
