"""What Alibaba Cloud's SDKs send, read the way the cloud's gateway reads it.

The official SDK (``alibabacloud-tea-openapi``) signs with V3 by default
(``ACS3-HMAC-SHA256``): the action and version then travel only in the
``x-acs-action`` and ``x-acs-version`` headers, and the access key id in
``Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=...,Signature=...``.
With ``signature_algorithm='v2'`` they travel in the query string
(``Action``, ``Version``, ``AccessKeyId``, ``Signature``...). Both are accepted;
signatures are not verified (the secret is never sent, and this server has no
account to check it against): when ``API_KEYS`` is set, the access key id must
be one of them.

Errors carry the cloud's fields: ``RequestId``, ``HostId`` (the host the request
was sent to), ``Code``, ``Message`` and ``Recommend`` (where to read more).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from ..errors import ClientError, ErrorCode

ACTION_HEADER = "x-acs-action"
VERSION_HEADER = "x-acs-version"
# "ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=...,Signature=..." (any ACS3 algorithm).
V3_CREDENTIAL = re.compile(r"^\s*ACS3-[A-Z0-9-]+\s+Credential=([^,\s]+)", re.IGNORECASE)
# The ROA style: "acs <id>:<signature>".
ROA_CREDENTIAL = re.compile(r"^\s*acs\s+([^:\s]+):", re.IGNORECASE)


def with_acs_headers(request: Request, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The request's parameters with ``Action`` and ``Version`` taken from the V3 headers
    where the query and body do not give them."""
    merged = dict(raw)
    for name, header in (("Action", ACTION_HEADER), ("Version", VERSION_HEADER)):
        value = request.headers.get(header)
        current = merged.get(name)
        if value and (current is None or (isinstance(current, str) and not current.strip())):
            merged[name] = value
    return merged


def requested_action(request: Request, fields: Mapping[str, Any] | None = None) -> str | None:
    """The action asked for in the body fields, the query string or the ``x-acs-action`` header."""
    for source in (fields or {}, request.query_params):
        value = source.get("Action")
        if isinstance(value, str) and value.strip():
            return value.strip()
    header = request.headers.get(ACTION_HEADER, "").strip()
    return header or None


def access_key_id(request: Request) -> str | None:
    """The access key id an Alibaba Cloud SDK sent: V3 ``Credential=``, ROA ``acs id:``,
    or V2's ``AccessKeyId`` query parameter."""
    authorization = request.headers.get("authorization", "")
    for pattern in (V3_CREDENTIAL, ROA_CREDENTIAL):
        match = pattern.match(authorization)
        if match:
            return match.group(1)
    value = request.query_params.get("AccessKeyId")
    return value or None


def action_not_found(action: str, known: tuple[str, ...]) -> ClientError:
    return ClientError(
        ErrorCode.INVALID_ACTION_NOT_FOUND,
        f"Action: {action[:100]!r} is not an action of this server; it serves {', '.join(known)}",
        field="Action",
    )


def host_id(request: Request, public_url: str | None) -> str:
    """The host the client addressed (``PUBLIC_URL``'s when set), as the cloud's ``HostId``."""
    if public_url:
        return urlsplit(public_url).netloc
    return request.headers.get("host", "") or request.url.netloc


def error_content(request: Request, error: ClientError, request_id: str, public_url: str | None) -> dict[str, Any]:
    """The cloud's error body: ``RequestId``, ``HostId``, ``Code``, ``Message``, ``Recommend``."""
    base_url = (public_url or str(request.base_url)).rstrip("/")
    return {
        "RequestId": request_id,
        "HostId": host_id(request, public_url),
        "Code": error.code.value,
        "Message": error.message,
        "Recommend": f"{base_url}/docs (this server's API reference; errors name the parameter and the limit)",
    }
