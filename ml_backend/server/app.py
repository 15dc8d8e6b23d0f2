"""The HTTP application: Label Studio ML backend and the scribble API in one server."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import ApiError, ErrorCode, invalid_parameter
from ..settings import Settings, get_settings
from .docs_access import DocsAccessMiddleware
from .fetch_pool import FetchPool
from .http_errors import http_status, retry_headers
from .labelstudio_api import router as labelstudio_router
from .labelstudio_predictor import LabelStudioPredictor
from .log_redaction import client_disconnected, install_log_redaction
from .memory_budget import MemoryBudget
from .metrics import install_metrics
from .result_store import build_result_store
from .scribble_api import router as scribble_router
from .state import build_state
from .task_images import TaskImageLoader

logger = logging.getLogger("ml_backend")

# Routing refusals (no such path, method not allowed) in the same shape as every other error.
HTTP_ERROR_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    app = FastAPI(
        title="Scribble segmentation",
        version="0.1.0",
        description="Label Studio ML backend and a drop-in InteractiveScribbleSegmentation API.",
    )
    app.state.service = build_state(settings)
    app.state.result_store = build_result_store(settings)
    app.state.fetch_pool = FetchPool.from_settings(settings)
    app.state.memory_budget = MemoryBudget.from_settings(settings)
    image_loader = TaskImageLoader.from_settings(settings)
    image_loader.fetch_pool = app.state.fetch_pool
    precomputer = None
    if settings.PRECOMPUTE == "queue":
        if app.state.service.redis_client is None:
            raise ValueError("PRECOMPUTE=queue needs REDIS_URL: the queue lives in Redis")
        from .precompute import QueuePrecomputer

        precomputer = QueuePrecomputer(app.state.service.redis_client)
    app.state.labelstudio = LabelStudioPredictor(app.state.service, image_loader, precomputer)
    install_metrics(app)
    app.add_middleware(DocsAccessMiddleware, settings=settings)
    app.add_exception_handler(ClientDisconnect, client_disconnected)  # type: ignore[arg-type]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            status_code=http_status(error),
            content={"RequestId": str(uuid.uuid4()), "Code": error.code.value, "Message": error.message},
            headers=retry_headers(error) or None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=error.status_code,
            content={
                "RequestId": str(uuid.uuid4()),
                "Code": HTTP_ERROR_CODES.get(error.status_code, ErrorCode.HTTP_ERROR).value,
                "Message": f"{request.method} {request.url.path[:200]}: {error.detail}",
            },
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
        return await api_error(request, invalid_parameter(where, str(first.get("msg", "invalid"))))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        request_id = str(uuid.uuid4())
        logger.exception("request %s failed", request_id)
        return JSONResponse(
            status_code=500,
            content={
                "RequestId": request_id,
                "Code": ErrorCode.INTERNAL_ERROR.value,
                "Message": "internal error; see the server log",
            },
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "UP", "model_class": "ScribbleSegmentation", "engine": app.state.service.segmenter.engine.name}

    app.include_router(labelstudio_router)
    app.include_router(scribble_router)
    return app

