"""API keys for the scribble API: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Required only when ``API_KEYS`` is set. Keys are compared in constant time against
every configured key (no early exit that would tell which one nearly matched), and
neither the presented nor the configured keys are ever logged or echoed back.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ClientError, ErrorCode
from .acs_protocol import ACTION_HEADER, access_key_id

# auto_error=False: these only read the headers (and document them in OpenAPI);
# the decision, and its error in the API's own shape, is ours.
bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`; one of API_KEYS")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of API_KEYS")


def key_is_valid(presented: str | None, configured_keys: Sequence[str]) -> bool:
    if not presented:
        return False
    presented_bytes = presented.encode("utf-8", "surrogateescape")
    matched = False
    for key in configured_keys:
        # Every key is compared, whatever matched before, so timing says nothing.
        matched |= hmac.compare_digest(presented_bytes, key.encode("utf-8"))
    return matched


def invalid_api_key() -> ClientError:
    # Deliberately the same message whether the key was missing, malformed or wrong.
    return ClientError(
        ErrorCode.INVALID_API_KEY,
        "a valid API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
        "(or, with an Alibaba Cloud SDK, as the access key id)",
    )


async def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    header_key: str | None = Depends(header_scheme),
) -> None:
    """FastAPI dependency: passes when API_KEYS is empty or a configured key was sent."""
    configured_keys = request.app.state.service.settings.API_KEYS
    if not configured_keys:
        return
    bearer_key = bearer.credentials if bearer is not None else None
    if (
        key_is_valid(bearer_key, configured_keys)
        or key_is_valid(header_key, configured_keys)
        or key_is_valid(access_key_id(request), configured_keys)
    ):
        return
    if _may_be_oss_form_upload(request):
        # An OSS form upload carries no key: the signed policy from AuthorizeFileUpload
        # (which needed one) authorises it. Decided once the body is read; any other
        # request with this mark is refused then.
        request.state.api_key_deferred = True
        return
    raise invalid_api_key()


def _may_be_oss_form_upload(request: Request) -> bool:
    return (
        request.method == "POST"
        and request.url.path == "/"
        and request.headers.get("content-type", "").lower().startswith("multipart/form-data")
        and "authorization" not in request.headers
        and not request.headers.get(ACTION_HEADER)
        and "Action" not in request.query_params
    )
