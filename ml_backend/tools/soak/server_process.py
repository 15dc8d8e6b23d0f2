"""``scribble-seg serve`` started and stopped by the tools, on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..ports import LOOPBACK_HOST, free_port
from .proc import child_pids, command_line, listening_pids

SERVER_START_TIMEOUT_S = 180.0


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
        server_command = command_line(self.process.pid)
        workers = sorted(
            pid
            for pid in child_pids(self.process.pid)
            if pid in owners and command_line(pid) not in (server_command, None)
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
