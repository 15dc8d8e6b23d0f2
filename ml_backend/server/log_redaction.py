"""Logs without secrets, and client disconnects without tracebacks.

uvicorn's access log records each request's path with its full query string: a
scribble-API ``ImageUrl`` may carry credentials or a presigned token, and a
``/results`` link its signature. Every query value is replaced by ``REDACTED``
(names stay: they tell what was asked). A client that hangs up mid-upload is no
server error: it is logged at INFO in one line.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

REDACTED = "REDACTED"
ACCESS_LOGGER = "uvicorn.access"

logger = logging.getLogger("ml_backend")


def redact_query(target: str) -> str:
    """``/path?a=1&b=2`` -> ``/path?a=REDACTED&b=REDACTED``."""
    path, separator, query = target.partition("?")
    if not separator:
        return target
    redacted = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        redacted.append(f"{name}={REDACTED}" if equals else (REDACTED if pair else pair))
    return f"{path}?{'&'.join(redacted)}"


class AccessLogRedaction(logging.Filter):
    """For uvicorn's access records: args are (client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3:
            record.args = tuple(redact_query(arg) if isinstance(arg, str) and "?" in arg else arg for arg in args)
        elif isinstance(record.msg, str) and "?" in record.msg and not args:
            record.msg = " ".join(redact_query(word) if "?" in word else word for word in record.msg.split(" "))
        return True


def install_log_redaction() -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, AccessLogRedaction) for existing in access.filters):
        access.addFilter(AccessLogRedaction())


async def client_disconnected(request: Request, error: ClientDisconnect) -> Response:
    """The client hung up while its body was read: one INFO line, no traceback."""
    logger.info("client disconnected during %s %s", request.method, request.url.path[:200])
    return Response(status_code=400)
