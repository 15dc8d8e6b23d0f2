"""The base URL a ``ResultUrl`` is built on: never an arbitrary ``Host`` header.

``PUBLIC_URL`` when set (behind a proxy it must be). Otherwise the request's ``Host``
header only when its name is one of ``TRUSTED_HOSTS``; else the address the
connection came in on (the server's own socket, which no client chooses). A client
sending ``Host: evil.example`` gets a link to this server, not to evil.example.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from ..settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}


def _authority(host: str, port: int | None, scheme: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def _trusted_host_header(request: Request, trusted_hosts: list[str], scheme: str) -> str | None:
    header = request.headers.get("host", "")
    if not header or not trusted_hosts:
        return None
    try:
        parts = urlsplit(f"//{header}")
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not hostname or parts.path or parts.query or parts.username is not None:
        return None
    if hostname.rstrip(".").lower() not in {name.strip("[]").rstrip(".").lower() for name in trusted_hosts}:
        return None
    # Rebuilt from the parsed parts: nothing of the header but a name and a port survives.
    return _authority(hostname, port, scheme)


def result_base_url(request: Request, settings: Settings) -> str:
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL.rstrip("/")
    scheme = request.url.scheme if request.url.scheme in DEFAULT_PORTS else "http"
    authority = _trusted_host_header(request, list(settings.TRUSTED_HOSTS), scheme)
    if authority is None:
        server = request.scope.get("server")
        if server:
            authority = _authority(str(server[0]), int(server[1]) if server[1] is not None else None, scheme)
        else:  # a Unix socket: no address to give; a relative link is all that is safe
            return ""
    return f"{scheme}://{authority}"
