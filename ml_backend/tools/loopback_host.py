"""An HTTP host on a loopback address for the tools and the tests: it serves registered
files, runs scripted routes (redirects, trickles, JSON answers) and records every request.

    with LoopbackHost("127.0.0.2", token="abc") as host:
        url = host.add("/data/upload/1/a.png", png_bytes)
        host.routes["/slow/"] = trickle()          # every path under /slow/: one byte a second
        ... host.requests[0].path, host.requests[0].authorization

Label Studio itself is played by ``fake_label_studio.FakeLabelStudio``, built on this.
"""

from __future__ import annotations

import http.server
import json
import mimetypes
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from .ports import LOOPBACK_HOST


@dataclass(frozen=True)
class SeenRequest:
    """One request as the host got it."""

    method: str
    path: str  # as sent, with its query
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The header ``name``, whatever case the client wrote it in."""
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)

    @property
    def authorization(self) -> str | None:
        return self.header("Authorization")

    @property
    def host(self) -> str | None:
        return self.header("Host")


class Exchange(http.server.BaseHTTPRequestHandler):
    """One request and its answer; routes get it and answer through ``reply``, ``redirect``..."""

    server: _Server
    seen: SeenRequest

    @property
    def host(self) -> LoopbackHost:
        return self.server.host

    @property
    def route_path(self) -> str:
        return self.path.partition("?")[0]

    @property
    def query(self) -> str:
        return self.path.partition("?")[2]

    def reply(self, status: int, body: bytes = b"", content_type: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that stops reading early (a size limit, say) is what some tests want

    def reply_json(self, status: int, value: object) -> None:
        self.reply(status, json.dumps(value).encode(), "application/json")

    def redirect(self, location: str, status: int = 302) -> None:
        self.reply(status, headers={"Location": location})

    def trickle(self, declared_bytes: int, interval_s: float) -> None:
        """Declares ``declared_bytes`` and sends one byte per ``interval_s`` until the host stops."""
        self.send_response(200)
        self.send_header("Content-Length", str(declared_bytes))
        self.end_headers()
        try:
            while not self.host.released.wait(interval_s):
                self.wfile.write(b"\0")
                self.wfile.flush()
        except OSError:
            pass  # the client gave up: expected

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length) if length else b"")

    def _answer(self, body: bytes) -> None:
        host = self.host
        self.seen = SeenRequest(self.command, self.path, dict(self.headers.items()), body)
        with host.lock:
            host.requests.append(self.seen)
        if host.token is not None and self.headers.get("Authorization") != f"Token {host.token}":
            self.reply(401)
            return
        route = host.route_for(self.route_path)
        if route is not None:
            route(self)
            return
        content = host.files.get(self.route_path)
        if content is None:
            self.reply(404, b"not here")
            return
        self.reply(200, content, host.content_types.get(self.route_path) or _guessed_type(self.route_path))


Route = Callable[[Exchange], None]


def trickle(declared_bytes: int = 1_000_000, interval_s: float = 1.0) -> Route:
    """A route that sends one byte per ``interval_s`` until the host stops: a slow host."""
    return lambda exchange: exchange.trickle(declared_bytes, interval_s)


def _guessed_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    host: LoopbackHost


class LoopbackHost:
    """Serves ``files`` (exact paths) and ``routes`` (path prefixes, the longest wins) on
    ``address``; with ``token`` every request needs ``Authorization: Token <token>``."""

    def __init__(self, address: str = LOOPBACK_HOST, port: int = 0, token: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.token = token
        self.files: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.lock = threading.Lock()
        self.released = threading.Event()  # set on stop: trickling answers end
        self._server = _Server((address, port), Exchange)
        self._server.host = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"host-{address}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"{self._scheme}://{self.address}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + "/" + path.lstrip("/")

    def add(self, path: str, content: bytes, content_type: str | None = None) -> str:
        """Serves ``content`` at ``path``; returns its URL."""
        path = "/" + path.lstrip("/")
        self.files[path] = content
        if content_type:
            self.content_types[path] = content_type
        return self.url(path)

    def route_for(self, path: str) -> Route | None:
        matches = [prefix for prefix in self.routes if path.startswith(prefix)]
        return self.routes[max(matches, key=len)] if matches else None

    def paths(self) -> list[str]:
        """The paths requested so far, without their queries, in order."""
        with self.lock:
            return [request.path.partition("?")[0] for request in self.requests]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._thread.is_alive():  # shutdown() waits for a serving loop that never started
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
