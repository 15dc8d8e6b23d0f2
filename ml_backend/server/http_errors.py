"""Where an API error becomes HTTP: each ``ErrorCode``'s status, and the headers some carry.

The only place that knows HTTP statuses: errors themselves carry a code, never a status.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ApiError, ErrorCode, Unavailable

STATUS_OF_CODE: Mapping[ErrorCode, int] = {
    ErrorCode.INVALID_PARAMETER: 400,
    ErrorCode.INVALID_PARAMETER_ENDPOINT: 400,
    ErrorCode.INVALID_PARAMETER_SCRIBBLE: 400,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.INVALID_IMAGE_CONTENT: 400,
    ErrorCode.INVALID_IMAGE_RESOLUTION: 400,
    ErrorCode.INVALID_IMAGE_URL: 400,
    ErrorCode.INVALID_IMAGE_DOWNLOAD: 400,
    ErrorCode.INVALID_POLICY_DOCUMENT: 400,
    ErrorCode.INVALID_API_KEY: 401,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.SIGNATURE_DOES_NOT_MATCH: 403,
    ErrorCode.NO_SUCH_KEY: 404,
    ErrorCode.INVALID_ACTION_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INVALID_FILE_SIZE: 413,
    ErrorCode.INVALID_IMAGE_FORMAT: 415,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    # HTTP_ERROR has no status of its own: it names the framework's other refusals,
    # answered with the framework's status.
}


def http_status(error: ApiError) -> int:
    return STATUS_OF_CODE[error.code]


def retry_headers(error: ApiError) -> dict[str, str]:
    """``Retry-After`` for an error that says when to come back; nothing for the others."""
    if isinstance(error, Unavailable) and error.retry_after_seconds is not None:
        return {"Retry-After": str(error.retry_after_seconds)}
    return {}
