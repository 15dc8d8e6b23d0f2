"""Reading a request body: one size limit (MAX_REQUEST_MB) and one JSON-object parser,
for the scribble API and the Label Studio routes alike."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive

from ..errors import ClientError, ErrorCode, invalid_parameter

MEGABYTE = 1024 * 1024
BODY_FIELD = "request body"


class BodyTooLarge(ClientError):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            ErrorCode.INVALID_FILE_SIZE,
            f"{BODY_FIELD}: larger than the {limit_mb} MB allowed (MAX_REQUEST_MB)",
            field=BODY_FIELD,
        )


def _limited_receive(receive: Receive, limit_mb: int) -> Receive:
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit_mb * MEGABYTE:
                raise BodyTooLarge(limit_mb)
        return message

    return limited


def limited_request(request: Request, limit_mb: int) -> Request:
    """The request, its body refused (``BodyTooLarge``) past ``limit_mb``: at once when
    Content-Length says so, else while it streams in (a chunked body declares no length)."""
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > limit_mb * MEGABYTE:
        raise BodyTooLarge(limit_mb)
    return Request(request.scope, _limited_receive(request.receive, limit_mb))


def parse_json_object(raw: bytes, what: str = "a JSON object") -> dict[str, Any]:
    """The body as a JSON object, or an ``InvalidParameter`` naming the request body."""
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_parameter(BODY_FIELD, f"not valid JSON ({error})") from None
    except RecursionError:
        raise invalid_parameter(BODY_FIELD, "not valid JSON: nested too deeply") from None
    if not isinstance(parsed, dict):
        raise invalid_parameter(BODY_FIELD, f"must be {what}")
    return parsed
