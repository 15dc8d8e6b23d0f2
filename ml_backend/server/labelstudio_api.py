"""The Label Studio ML backend protocol: /setup, /predict, /webhook (and /health in app.py)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import ClientError, invalid_parameter
from .labelstudio_predictor import LabelStudioPredictor


def require_basic_auth(request: Request) -> None:
    """When BASIC_AUTH_USER/PASS are set, Label Studio must send them (it does when configured)."""
    settings = request.app.state.service.settings
    if not (settings.BASIC_AUTH_USER and settings.BASIC_AUTH_PASS):
        return
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, password = "", ""
    user_ok = hmac.compare_digest(user.encode(), settings.BASIC_AUTH_USER.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.BASIC_AUTH_PASS.encode())
    if scheme.lower() != "basic" or not (user_ok and password_ok):
        raise ClientError("Unauthorized", "authentication required", status=401)


router = APIRouter(tags=["Label Studio ML backend"], dependencies=[Depends(require_basic_auth)])


async def _json_object(request: Request) -> dict:
    raw = await request.body()
    limit = request.app.state.service.settings.MAX_REQUEST_MB * 1024 * 1024
    if len(raw) > limit:
        raise ClientError("InvalidFile.Size", f"body: larger than {limit // (1024 * 1024)} MB", status=413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_parameter("body", f"is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise invalid_parameter("body", "must be a JSON object")
    return body


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
