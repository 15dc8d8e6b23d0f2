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
