"""With authentication on, the API's description and the operational endpoints need it too.

Authentication is on when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` or ``API_KEYS`` are set.
Then ``/docs``, ``/redoc`` and ``/openapi.json`` take either credential (Label Studio's
basic auth or a scribble-API key); ``/metrics`` too unless ``METRICS_AUTH=false``, and
``/health`` only with ``HEALTH_AUTH=true`` (container health checks send nothing).
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ErrorCode
from ..settings import Settings
from .api_keys import key_is_valid

DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def auth_enabled(settings: Settings) -> bool:
    return bool(settings.BASIC_AUTH_USER and settings.BASIC_AUTH_PASS) or bool(settings.API_KEYS)


def guarded_paths(settings: Settings) -> frozenset[str]:
    if not auth_enabled(settings):
        return frozenset()
    paths = set(DOC_PATHS)
    if settings.METRICS_AUTH:
        paths.add("/metrics")
    if settings.HEALTH_AUTH:
        paths.add("/health")
    return frozenset(paths)


def basic_auth_ok(header: str, settings: Settings) -> bool:
    """``Authorization: Basic ...`` matches BASIC_AUTH_USER/PASS (compared in constant time)."""
    if not (settings.BASIC_AUTH_USER and settings.BASIC_AUTH_PASS):
        return False
    scheme, _, encoded = header.partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, or non-ASCII bytes in the header
        user, password = "", ""
    user_ok = hmac.compare_digest(user.encode(), settings.BASIC_AUTH_USER.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.BASIC_AUTH_PASS.encode())
    return scheme.lower() == "basic" and user_ok and password_ok


def credentials_ok(headers: Headers, settings: Settings) -> bool:
    authorization = headers.get("authorization", "")
    if basic_auth_ok(authorization, settings):
        return True
    scheme, _, bearer = authorization.partition(" ")
    bearer_key = bearer.strip() if scheme.lower() == "bearer" else None
    return key_is_valid(bearer_key, settings.API_KEYS) or key_is_valid(headers.get("x-api-key"), settings.API_KEYS)


class DocsAccessMiddleware:
    """Refuses the guarded paths (401) without valid credentials; passes everything else."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.paths = guarded_paths(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") in self.paths:
            if not credentials_ok(Headers(scope=scope), self.settings):
                body = json.dumps({
                    "RequestId": str(uuid.uuid4()),
                    "Code": ErrorCode.UNAUTHORIZED.value,
                    "Message": f"{scope['path'][:200]}: authentication required (basic auth or an API key)",
                }).encode()
                await send({
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Basic realm="scribble-ml-backend"'),
                    ],
                })
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
