"""What each request does once parsed: segment, or the OSS upload steps of the SDK."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...core.segmenter import Segmenter
from ...cutout import parse_bool
from ...settings import Settings
from .. import acs_protocol, oss_uploads
from ..api_keys import invalid_api_key
from ..memory_budget import MemoryBudget
from ..metrics import ROUNDS
from ..public_url import result_base_url
from ..result_store import ResultStore
from . import segmentation
from .inputs import gather_inputs
from .models import XML_ROOT
from .negotiation import render, request_id_of
from .parsing import cutout_options, parse_parameters, read_body
from .slots import run_in_slot, segmentation_slots

logger = logging.getLogger("ml_backend.scribble_api")


async def handle_segmentation(
    request: Request, raw: Mapping[str, Any], uploads: Mapping[str, UploadFile], action_required: bool
) -> Response:
    started = time.perf_counter()
    settings: Settings = request.app.state.service.settings
    if isinstance(raw.get("Format"), str):  # known before validation, so its errors render alike
        request.state.response_format = raw["Format"]
    raw = acs_protocol.with_acs_headers(request, raw)  # the SDK's V3 signature sends Action only there
    parameters = parse_parameters(raw, action_required)
    options = cutout_options(parameters)
    return_base64 = parse_bool("ReturnBase64", parameters.ReturnBase64, default=False)
    inputs = await gather_inputs(parameters, uploads, settings, request.app.state.fetch_pool, request)
    fetched = time.perf_counter()

    segmenter: Segmenter = request.app.state.service.segmenter
    slots = segmentation_slots(request, settings)
    budget: MemoryBudget = request.app.state.memory_budget
    async with budget.reserve(budget.estimate(inputs["image"].data)):
        result = await run_in_threadpool(
            run_in_slot, slots, lambda: segmentation.segment_inputs(segmenter, inputs, options)
        )
    ROUNDS.labels("scribble_api").inc()

    store: ResultStore = request.app.state.result_store
    signed = await run_in_threadpool(store.save, result.content, result.media_type)
    data: dict[str, Any] = {"ResultUrl": result_base_url(request, settings) + signed.path_and_query}
    if return_base64:
        data["ResultBase64"] = base64.b64encode(result.content).decode("ascii")
    # URLs are not logged: they may carry credentials or presigned tokens.
    logger.info(
        "request %s: %s %s, inputs %.2f s, segmentation %s, result %s (%d bytes)",
        request_id_of(request),
        options.return_form,
        options.encoded_format,
        fetched - started,
        {name: round(seconds, 3) for name, seconds in result.timings.items()},
        signed.name,
        len(result.content),
    )
    return render(request, 200, {"RequestId": request_id_of(request), "Data": data}, XML_ROOT)


def render_authorize_file_upload(request: Request) -> Response:
    """``AuthorizeFileUpload``, the first step of the SDK's ``*_advance`` calls (see ``oss_uploads``)."""
    settings: Settings = request.app.state.service.settings
    content = oss_uploads.authorize_file_upload(
        request, settings, request.app.state.result_store, request_id_of(request)
    )
    return render(request, 200, content, "AuthorizeFileUploadResponse")


async def handle_query_request(request: Request, action_required: bool) -> Response:
    if action_required and acs_protocol.requested_action(request) == oss_uploads.AUTHORIZE_ACTION:
        return render_authorize_file_upload(request)
    return await handle_segmentation(request, request.query_params, {}, action_required)


async def handle_body_request(request: Request, action_required: bool) -> Response:
    body = await read_body(request)
    try:
        store: ResultStore = request.app.state.result_store
        if oss_uploads.is_post_object(request, body.fields, body.form):
            assert body.form is not None
            return await oss_uploads.post_object(request, body.form, store)
        if getattr(request.state, "api_key_deferred", False):
            raise invalid_api_key()  # deferred by require_api_key in case this was an OSS form upload
        if acs_protocol.requested_action(request, body.fields) == oss_uploads.AUTHORIZE_ACTION:
            return render_authorize_file_upload(request)
        # Parameters may also sit in the query string (the original's RPC style); the body wins.
        raw = {**request.query_params, **body.fields}
        return await handle_segmentation(request, raw, body.uploads, action_required)
    finally:
        if body.form is not None:
            await body.form.close()
