"""A small HTTP host for security tests: serves registered files, records every request
(path and Authorization header), and can trickle a body one byte at a time.

    with RecordingHost("127.0.0.3") as host:
        host.files["/data/upload/1/a.png"] = png_bytes
        url = host.url("/data/upload/1/a.png")
        ... host.requests -> [("/data/upload/1/a.png", "Token ...")]
"""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field


@dataclass
class Recorded:
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    token: str | None = None  # when set, files are served only with "Authorization: Token <token>"
    trickle_prefix: str = "/trickle"  # paths under it get 1 byte a second
    release: threading.Event = field(default_factory=threading.Event)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    recorded: Recorded


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        recorded = self.server.recorded
        recorded.requests.append((self.path, self.headers.get("Authorization")))
        path = self.path.split("?", 1)[0]
        if path.startswith(recorded.trickle_prefix):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                while not recorded.release.wait(1.0):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
            except OSError:
                pass
            return
        if recorded.token is not None and self.headers.get("Authorization") != f"Token {recorded.token}":
            self._reply(401, b"")
            return
        body = recorded.files.get(path)
        self._reply(404, b"not here") if body is None else self._reply(200, body)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RecordingHost:
    def __init__(self, address: str, token: str | None = None, trickle_prefix: str = "/trickle") -> None:
        self.address = address
        self.recorded = Recorded(token=token, trickle_prefix=trickle_prefix)
        self._server = _Server((address, 0), _Handler)
        self._server.recorded = self.recorded

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def files(self) -> dict[str, bytes]:
        return self.recorded.files

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return self.recorded.requests

    def url(self, path: str) -> str:
        return self.origin + path

    def __enter__(self) -> "RecordingHost":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.recorded.release.set()
        self._server.shutdown()
        self._server.server_close()
