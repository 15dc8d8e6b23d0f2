"""The API's route class: a request id, the body limit, and errors in the API's shape."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ...errors import ApiError
from ...settings import Settings
from .. import acs_protocol
from ..http_errors import http_status, retry_headers
from ..request_body import limited_request
from .negotiation import render, request_id_of
from .parsing import validation_to_client_error


def error_response(request: Request, error: ApiError) -> Response:
    """The cloud's error body for ``error``, in JSON or XML, with its HTTP status."""
    public_url = request.app.state.service.settings.PUBLIC_URL
    content = acs_protocol.error_content(request, error, request_id_of(request), public_url)
    status = http_status(error)
    response = render(request, status, content, "Error")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="scribble-api"'
    response.headers.update(retry_headers(error))
    return response


class ScribbleRoute(APIRoute):
    """Gives every request an id, caps the body at MAX_REQUEST_MB, and renders every
    API error (from the endpoint or its dependencies) as the API's error, in
    JSON or XML as the request asked."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_api_errors(request: Request) -> Response:
            request_id_of(request)
            settings: Settings = request.app.state.service.settings
            try:
                return await handle(limited_request(request, settings.MAX_REQUEST_MB))
            except ApiError as error:
                return error_response(request, error)
            except RequestValidationError as error:
                return error_response(request, validation_to_client_error(list(error.errors())))

        return handle_with_api_errors
