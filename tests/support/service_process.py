"""What the test servers we start as processes share: our backend and a real Label Studio.

Each listens on a port of 127.0.0.1, writes its output to a log file and runs in a
process group of its own, so stopping it stops its workers too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

HOST = "127.0.0.1"


class ServiceProcess:
    """A server process on ``HOST``; subclasses say where the log is and what not started means."""

    not_started: type[Exception] = RuntimeError
    title = "the server"
    log_tail_chars = 4000
    port: int | None
    process: subprocess.Popen[bytes] | None

    def _log_file(self) -> Path | None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self.port is None:
            raise self.not_started(f"{self.title} is not started")
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        path = self._log_file()
        if path is None:
            raise self.not_started(f"{self.title} is not started")
        return path

    def log_tail(self, chars: int | None = None) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-(chars or self.log_tail_chars):]
        except (OSError, self.not_started):
            return "(no log)"

    def stop_process_group(self, timeout_s: float) -> None:
        """SIGTERM to the whole group; SIGKILL when it has not ended within ``timeout_s``."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout_s)
        self.process = None
