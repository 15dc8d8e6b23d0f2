"""The API's routes: four ways to ask for a segmentation, and the signed results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from ..api_keys import require_api_key
from ..result_store import ResultStore
from .handlers import handle_body_request, handle_query_request
from .openapi import RESULT_DOCS, RESULT_RESPONSES, SEGMENTATION_RESPONSES, body_docs, query_docs
from .route import ScribbleRoute

router = APIRouter(route_class=ScribbleRoute, tags=["InteractiveScribbleSegmentation"])

Handler = Callable[[Request, bool], Awaitable[Response]]


def _add_segmentation_route(
    method: str, path: str, name: str, summary: str, handler: Handler, docs: dict[str, Any]
) -> None:
    # On "/" (the original's RPC style) Action is required: it picks the action.
    action_required = path == "/"

    async def endpoint(request: Request) -> Response:
        return await handler(request, action_required)

    router.add_api_route(
        path,
        endpoint,
        methods=[method],
        name=name,
        summary=summary,
        dependencies=[Depends(require_api_key)],
        responses=SEGMENTATION_RESPONSES,
        openapi_extra=docs,
        response_model=None,
    )


_add_segmentation_route(
    "GET",
    "/",
    "segment_by_query",
    "InteractiveScribbleSegmentation, every parameter in the query string (the original's request)",
    handle_query_request,
    query_docs(action_required=True),
)
_add_segmentation_route(
    "GET",
    "/InteractiveScribbleSegmentation",
    "segment_by_path_query",
    "InteractiveScribbleSegmentation, parameters in the query string",
    handle_query_request,
    query_docs(action_required=False),
)
_add_segmentation_route(
    "POST",
    "/",
    "segment_by_form",
    "InteractiveScribbleSegmentation, form-encoded or multipart (files in place of URLs)",
    handle_body_request,
    body_docs(with_json=False),
)
_add_segmentation_route(
    "POST",
    "/InteractiveScribbleSegmentation",
    "segment_by_body",
    "InteractiveScribbleSegmentation with a JSON body (or a form, or multipart with files)",
    handle_body_request,
    body_docs(with_json=True),
)


@router.get(
    "/results/{name:path}",
    summary="A result, through the signed ResultUrl returned by InteractiveScribbleSegmentation",
    responses=RESULT_RESPONSES,
    response_class=Response,
    openapi_extra=RESULT_DOCS,
)
async def get_result(name: str, request: Request) -> Response:
    store: ResultStore = request.app.state.result_store
    result = await run_in_threadpool(
        store.open, name, request.query_params.get("Expires"), request.query_params.get("Signature")
    )
    remaining = max(0, int(request.query_params["Expires"]) - int(store.clock()))
    return Response(
        result.content,
        media_type=result.media_type,
        headers={"Cache-Control": f"private, max-age={remaining}", "X-Content-Type-Options": "nosniff"},
    )
