"""The package's one error hierarchy.

::

    ScribbleSegError                  every error this package raises on purpose
    ├── ApiError                      answered to a caller with an API code (``ErrorCode``)
    │   ├── ClientError               the caller's input is at fault; ``field`` names it
    │   │   └── DownloadError         a remote input could not be fetched
    │   └── Unavailable               the server cannot answer now; try again later
    │       └── Overloaded            a capacity limit (fetch slots, memory budget) is reached
    ├── InputError                    bad input found below the API (core, Label Studio
    │                                 references); the API layer turns it into a ClientError
    └── ServerError                   the server's own set-up or tools: settings, engines,
                                      weights, datasets; a message for the operator, no code

Errors carry their meaning in attributes (``code``, ``field``, ``reason``...), never only
in their message. HTTP statuses are no business of this module: ``server/http_errors``
maps each ``ErrorCode`` to one.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The codes of the original API (and of the Alibaba Cloud gateway and OSS it mimics)."""

    INVALID_PARAMETER = "InvalidParameter"
    INVALID_PARAMETER_ENDPOINT = "InvalidParameter.Endpoint"
    INVALID_PARAMETER_SCRIBBLE = "InvalidParameter.Scribble"
    INVALID_ARGUMENT = "InvalidArgument"
    INVALID_IMAGE_FORMAT = "InvalidImage.Format"
    INVALID_IMAGE_CONTENT = "InvalidImage.Content"
    INVALID_IMAGE_RESOLUTION = "InvalidImage.Resolution"
    INVALID_IMAGE_URL = "InvalidImage.Url"
    INVALID_IMAGE_DOWNLOAD = "InvalidImage.Download"
    INVALID_FILE_SIZE = "InvalidFile.Size"
    INVALID_POLICY_DOCUMENT = "InvalidPolicyDocument"
    INVALID_ACTION_NOT_FOUND = "InvalidAction.NotFound"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    INVALID_API_KEY = "InvalidApiKey"
    UNAUTHORIZED = "Unauthorized"
    ACCESS_DENIED = "AccessDenied"
    SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"
    NO_SUCH_KEY = "NoSuchKey"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    # Refusals by the HTTP framework itself (no route, wrong method) and the last resort.
    NOT_FOUND = "NotFound"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    HTTP_ERROR = "HTTPError"
    INTERNAL_ERROR = "InternalError"


class ScribbleSegError(Exception):
    """The base of every error this package raises on purpose."""


class ApiError(ScribbleSegError):
    """An error answered to the caller with an API ``code`` and a ``message``.

    ``message`` is the whole sentence shown to the caller; ``field`` names the input at
    fault (None when no one input is); ``reason`` is the message without its ``field:``
    prefix where the error was built from the two (see ``invalid_parameter``).
    """

    def __init__(self, code: ErrorCode, message: str, field: str | None = None, reason: str | None = None) -> None:
        if not isinstance(code, ErrorCode):
            raise TypeError(f"an API error's code is an ErrorCode, not {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.reason = message if reason is None else reason

    def __str__(self) -> str:
        return self.message


class ClientError(ApiError):
    """Bad input from a caller: an HTTP 4xx (or a CLI message), never a traceback."""


def invalid_parameter(field: str, reason: str) -> ClientError:
    return ClientError(ErrorCode.INVALID_PARAMETER, f"{field}: {reason}", field=field, reason=reason)


class DownloadError(ClientError):
    """A remote file could not be fetched. ``upstream_status`` is the remote server's answer
    when it answered with an error status (None for connection failures and timeouts),
    so callers can tell "not there" from "not reachable" without parsing the message."""

    def __init__(self, field: str, message: str, upstream_status: int | None = None) -> None:
        super().__init__(ErrorCode.INVALID_IMAGE_DOWNLOAD, message, field=field)
        self.upstream_status = upstream_status


class Unavailable(ApiError):
    """The server cannot answer now (a store it needs is unreachable, a limit is reached).

    ``retry_after_seconds``, when set, is sent as a ``Retry-After`` header."""

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(ErrorCode.SERVICE_UNAVAILABLE, message)
        self.retry_after_seconds = retry_after_seconds


class Overloaded(Unavailable):
    """The server is at a capacity limit (fetch slots, memory budget): try again later.

    ``resource`` names the setting whose limit was reached."""

    def __init__(self, resource: str, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message, retry_after_seconds)
        self.resource = resource


class InputError(ScribbleSegError, ValueError):
    """Bad input found where no API code is known (``core``, Label Studio references).

    A ``ValueError`` as well, for callers that treat it as one."""


class ServerError(ScribbleSegError):
    """The server's own set-up cannot work (settings, engines, weights, datasets); the
    message tells the operator how to fix it. Subclasses keep the built-in base they
    had before this hierarchy (``ValueError``, ``RuntimeError``) for callers that catch it."""
