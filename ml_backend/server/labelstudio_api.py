"""The Label Studio ML backend protocol: /setup, /predict, /webhook (and /health in app.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import ClientError, ErrorCode
from ..labelstudio.touches import check_touch_count
from .docs_access import basic_auth_ok
from .labelstudio_origin import require_json
from .labelstudio_predictor import LabelStudioPredictor
from .request_body import limited_request, parse_json_object


def require_basic_auth(request: Request) -> None:
    """When BASIC_AUTH_USER/PASS are set, Label Studio must send them (it does when configured)."""
    settings = request.app.state.service.settings
    if not (settings.BASIC_AUTH_USER and settings.BASIC_AUTH_PASS):
        return
    if not basic_auth_ok(request.headers.get("authorization", ""), settings):
        raise ClientError(ErrorCode.UNAUTHORIZED, "authentication required")


router = APIRouter(tags=["Label Studio ML backend"], dependencies=[Depends(require_basic_auth)])


async def _json_object(request: Request) -> dict:
    require_json(request)
    limit_mb = request.app.state.service.settings.MAX_REQUEST_MB
    raw = await limited_request(request, limit_mb).body()
    # Before parsing: a body of 300,000 tiny touches costs far more to parse and paint
    # than its size suggests, and is refused from a count of its bytes.
    check_touch_count(raw, "body")
    return parse_json_object(raw)


def _predictor(request: Request) -> LabelStudioPredictor:
    return request.app.state.labelstudio


@router.post("/setup")
async def setup(request: Request) -> dict:
    """Label Studio connects (3 s limit): remember its hostname and token; models are loaded already."""
    return _predictor(request).setup(await _json_object(request))


@router.post("/predict")
async def predict(request: Request) -> JSONResponse:
    body = await _json_object(request)
    answer = await run_in_threadpool(_predictor(request).predict, body)
    return JSONResponse(answer)


@router.post("/webhook")
async def webhook(request: Request) -> dict:
    body = await _json_object(request)
    return _predictor(request).webhook(body)
