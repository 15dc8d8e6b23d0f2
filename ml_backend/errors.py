"""Errors a client can cause. Each names the input at fault and the limit it broke."""

from __future__ import annotations


class ClientError(Exception):
    """Bad input from a caller: becomes an HTTP 4xx (or a CLI message), never a traceback.

    ``code`` follows the original API's style (``InvalidParameter``,
    ``InvalidImage.Format``, ...); ``field`` names the offending input.
    """

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


def invalid_parameter(field: str, message: str) -> ClientError:
    return ClientError("InvalidParameter", f"{field}: {message}", field=field)


class DownloadError(ClientError):
    """A remote file could not be fetched. ``http_status`` is the remote server's answer
    when it answered with an error status (None for connection failures and timeouts),
    so callers can tell "not there" from "not reachable" without parsing the message."""

    def __init__(self, field: str, message: str, http_status: int | None = None) -> None:
        super().__init__("InvalidImage.Download", message, field=field)
        self.http_status = http_status


class Overloaded(ClientError):
    """The server is at a capacity limit (fetch slots, memory budget): try again later.

    Becomes HTTP 503 with a ``Retry-After`` header of ``retry_after_seconds``; ``resource``
    names the setting whose limit was reached."""

    status = 503

    def __init__(self, resource: str, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__("ServiceUnavailable", message, field=None)
        self.resource = resource
        self.retry_after_seconds = retry_after_seconds
