"""Drop-in replacement for the hosted ``InteractiveScribbleSegmentation`` API.

Accepts the original's requests: ``GET /?Action=InteractiveScribbleSegmentation&ImageUrl=...``
with every parameter in the query string, the same as a form-encoded ``POST /``,
and ``POST /InteractiveScribbleSegmentation`` with JSON. Files may be uploaded
(multipart) as ``Image``, ``MaskImage``, ``PosScribbleImage``, ``NegScribbleImage``
and ``IntegratedMask`` instead of giving URLs. Answers
``{"RequestId", "Data": {"ResultUrl"}}`` in JSON, or XML on request
(``Accept: application/xml`` or ``Format=XML``); errors ``{"RequestId", "Code",
"Message"}`` in the same format, with a 4xx status. ``ResultUrl`` is a signed link
to ``/results/<name>`` on this server, valid for ``RESULT_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from ..core.prompts import decode_integrated_mask
from ..core.segmenter import Segmenter
from ..cutout import CutoutOptions, CutoutResult, build_prompts, cut_out, parse_bool
from ..errors import ClientError, Overloaded, invalid_parameter
from ..io.images import IMAGE_MAX_BYTES, MASK_MAX_BYTES, decode_image, decode_mask
from ..settings import Settings
from . import acs_protocol, oss_uploads
from .metrics import ROUNDS
from .api_keys import invalid_api_key, require_api_key
from .fetch_pool import FetchPool
from .memory_budget import MemoryBudget
from .public_url import result_base_url
from .result_store import ResultStore

logger = logging.getLogger("ml_backend.scribble_api")

ACTION = "InteractiveScribbleSegmentation"
XML_ROOT = "InteractiveScribbleSegmentationResponse"
STROKE_THRESHOLD = 128  # stroke and mask pixels count from half intensity up
MEGABYTE = 1024 * 1024
JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "application/xml"


# --------------------------------------------------------------------------- parameters


class ScribbleSegmentationRequest(BaseModel):
    """The original API's parameters. Unknown parameters (the original's common
    parameters such as ``Version`` or ``RegionId``) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", title="InteractiveScribbleSegmentationRequest")

    Action: str | None = Field(
        None,
        description="`InteractiveScribbleSegmentation`. Required on `/`; "
        "optional on `/InteractiveScribbleSegmentation`.",
        json_schema_extra={"enum": [ACTION]},
    )
    ImageUrl: str | None = Field(
        None,
        description="The image (required, or upload it as `Image`). JPG, JPEG, PNG, BMP or WEBP; at most 10 MB; "
        "each side 32..4096 pixels; ASCII-only URL.",
        examples=["https://example.com/photo.png"],
    )
    MaskImageUrl: str | None = Field(
        None,
        description="The current mask (or upload `MaskImage`): pixels >= 128 are the object. At most 5 MB; "
        "the image's resolution.",
    )
    PosScribbleImageUrl: str | None = Field(
        None,
        description="Positive strokes (or upload `PosScribbleImage`): pixels >= 128 (brightest channel, or alpha "
        "where the file has transparency) are on the object. At most 5 MB; the image's resolution.",
    )
    NegScribbleImageUrl: str | None = Field(
        None,
        description="Negative strokes (or upload `NegScribbleImage`): pixels >= 128 are not the object. "
        "At most 5 MB; the image's resolution.",
    )
    IntegratedMaskUrl: str | None = Field(
        None,
        description="The three above in one RGB image (or upload `IntegratedMask`): R = current mask, "
        "G = positive strokes, B = negative strokes, each >= 128. Combined with any of the separate ones given.",
    )
    ReturnForm: str | None = Field(
        "rgb_alpha",
        description="`rgb_alpha`: 4-channel PNG with transparent background; `only_alpha`: single-channel mask; "
        "`white_background`: the object on white.",
        json_schema_extra={"enum": ["rgb_alpha", "only_alpha", "white_background"]},
    )
    ReturnFormat: str | None = Field(
        "PNG",
        description="`PNG` or `JPG`. `rgb_alpha` is always PNG (JPG cannot carry alpha, and the original "
        "documents it as a four-channel PNG); `JPG` applies to `only_alpha` and `white_background`.",
        json_schema_extra={"enum": ["PNG", "JPG"]},
    )
    EdgeFeathering: str | bool | None = Field(
        "true", description="`true` or `false`: feather the mask's edge over a few pixels."
    )
    PostprocessOption: str | None = Field(
        "maskrefine",
        description="`maskrefine`: finest, less stable; `edgerefine`: stable, a little less fine; "
        "`none`: no refinement.",
        json_schema_extra={"enum": ["maskrefine", "edgerefine", "none"]},
    )
    ReturnBase64: str | bool | None = Field(
        "false", description="`true` adds the result itself, base64-encoded, as `Data.ResultBase64`."
    )
    Format: str | None = Field(
        None,
        description="`JSON` (default) or `XML`: the response format; `Accept: application/xml` does the same.",
        json_schema_extra={"enum": ["JSON", "XML"]},
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ResultData(BaseModel):
    ResultUrl: str = Field(description="Signed link to the result on this server; valid for RESULT_TTL_SECONDS.")
    ResultBase64: str | None = Field(None, description="The result itself, only with `ReturnBase64=true`.")


class ScribbleSegmentationResponse(BaseModel):
    model_config = ConfigDict(title="InteractiveScribbleSegmentationResponse")
    RequestId: str
    Data: ResultData


class ErrorBody(BaseModel):
    model_config = ConfigDict(title="Error")
    RequestId: str
    Code: str = Field(examples=["InvalidParameter", "InvalidImage.Format", "InvalidFile.Size"])
    Message: str = Field(description="Names the parameter at fault and the limit it broke.")


@dataclass(frozen=True)
class InputSpec:
    """One image input: given as a URL parameter or uploaded as a file part."""

    role: str
    url_parameter: str
    upload_parameter: str
    max_bytes: int


INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", "ImageUrl", "Image", IMAGE_MAX_BYTES),
    InputSpec("mask", "MaskImageUrl", "MaskImage", MASK_MAX_BYTES),
    InputSpec("positive", "PosScribbleImageUrl", "PosScribbleImage", MASK_MAX_BYTES),
    InputSpec("negative", "NegScribbleImageUrl", "NegScribbleImage", MASK_MAX_BYTES),
    InputSpec("integrated", "IntegratedMaskUrl", "IntegratedMask", MASK_MAX_BYTES),
)
UPLOAD_PARAMETERS = {spec.upload_parameter: spec for spec in INPUTS}
URL_PARAMETERS = {spec.url_parameter: spec for spec in INPUTS}


@dataclass(frozen=True)
class InputBytes:
    field: str  # the parameter the bytes came from, for error messages
    data: bytes


# --------------------------------------------------------------------------- rendering


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters, escaped or not.
    return "".join(
        (
            character
            if character in "\t\n\r" or ord(character) >= 0x20 and ord(character) not in (0xFFFE, 0xFFFF)
            else "\ufffd"
        )
        for character in text
    )


def to_xml(root: str, content: Mapping[str, Any]) -> bytes:
    def fill(element: ElementTree.Element, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                continue
            child = ElementTree.SubElement(element, key)
            if isinstance(value, Mapping):
                fill(child, value)
            else:
                child.text = _xml_safe(str(value))

    element = ElementTree.Element(root)
    fill(element, content)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        element, encoding="utf-8", xml_declaration=False
    )


def _prefers_xml_by_accept(accept: str) -> bool:
    best_xml = best_json = 0.0
    for item in accept.split(","):
        media_type, *parameters = item.strip().split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.strip().lower()
        if media_type in (XML_MEDIA_TYPE, "text/xml"):
            best_xml = max(best_xml, quality)
        elif media_type == JSON_MEDIA_TYPE:
            best_json = max(best_json, quality)
    return best_xml > best_json


def wants_xml(request: Request) -> bool:
    """``Format`` (query or body, once read) wins; else the Accept header; JSON by default."""
    requested_format = getattr(request.state, "response_format", None) or request.query_params.get("Format")
    if requested_format:
        return requested_format.strip().upper() == "XML"
    return _prefers_xml_by_accept(request.headers.get("accept", ""))


def request_id_of(request: Request) -> str:
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:
        request_id = str(uuid.uuid4())
        request.state.request_id = request_id
    return request_id


def render(request: Request, status: int, content: dict[str, Any], xml_root: str) -> Response:
    if wants_xml(request):
        return Response(to_xml(xml_root, content), status_code=status, media_type=XML_MEDIA_TYPE)
    return Response(
        json.dumps(content, ensure_ascii=False).encode("utf-8"), status_code=status, media_type=JSON_MEDIA_TYPE
    )


def error_response(request: Request, error: ClientError) -> Response:
    public_url = request.app.state.service.settings.PUBLIC_URL
    content = acs_protocol.error_content(request, error, request_id_of(request), public_url)
    response = render(request, error.status, content, "Error")
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="scribble-api"'
    if isinstance(error, Overloaded):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def _validation_to_client_error(errors: list[Mapping[str, Any]]) -> ClientError:
    first = errors[0] if errors else {}
    # The parameter's name only: deeper parts of loc name pydantic's union members, not inputs.
    names = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header", "path")]
    return invalid_parameter(names[0] if names else "request", str(first.get("msg", "is invalid")))


# --------------------------------------------------------------------------- route class


class BodyTooLarge(ClientError):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            "InvalidFile.Size",
            f"request body: larger than the {limit_mb} MB allowed (MAX_REQUEST_MB)",
            status=413,
        )


def _limited_receive(receive: Receive, limit_mb: int) -> Receive:
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit_mb * MEGABYTE:
                raise BodyTooLarge(limit_mb)
        return message

    return limited


class ScribbleRoute(APIRoute):
    """Gives every request an id, caps the body at MAX_REQUEST_MB, and renders every
    client error (from the endpoint or its dependencies) as the API's error, in
    JSON or XML as the request asked."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_api_errors(request: Request) -> Response:
            request_id_of(request)
            settings: Settings = request.app.state.service.settings
            try:
                declared_length = request.headers.get("content-length", "")
                if declared_length.isdigit() and int(declared_length) > settings.MAX_REQUEST_MB * MEGABYTE:
                    raise BodyTooLarge(settings.MAX_REQUEST_MB)
                limited = Request(request.scope, _limited_receive(request.receive, settings.MAX_REQUEST_MB))
                return await handle(limited)
            except ClientError as error:
                return error_response(request, error)
            except RequestValidationError as error:
                return error_response(request, _validation_to_client_error(list(error.errors())))

        return handle_with_api_errors


# --------------------------------------------------------------------------- reading requests


@dataclass
class RequestBody:
    fields: dict[str, Any]
    uploads: dict[str, UploadFile]
    form: FormData | None = None  # closed by the caller: it owns the spooled upload files


async def read_body(request: Request) -> RequestBody:
    """Parameters and file parts from a JSON, form-encoded or multipart body (or none)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form(max_part_size=MEGABYTE)
        except HTTPException as error:  # starlette's word for a malformed multipart body
            raise ClientError("InvalidParameter", f"request body: malformed form data ({error.detail})") from None
        body = RequestBody({}, {}, form)
        try:
            for name, value in form.multi_items():
                if not isinstance(value, UploadFile):
                    body.fields.setdefault(name, value)
                elif name in UPLOAD_PARAMETERS:
                    body.uploads.setdefault(name, value)
                elif name in URL_PARAMETERS:
                    upload_name = URL_PARAMETERS[name].upload_parameter
                    raise invalid_parameter(
                        name, f"must be a text field holding a URL; upload the file as {upload_name}"
                    )
        except ClientError:
            await form.close()
            raise
        return body
    raw = await request.body()
    if not raw.strip():
        return RequestBody({}, {})
    if media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ClientError("InvalidParameter", f"request body: not valid JSON ({error})") from None
        except RecursionError:
            raise ClientError("InvalidParameter", "request body: not valid JSON: nested too deeply") from None
        if not isinstance(parsed, dict):
            raise ClientError("InvalidParameter", "request body: must be a JSON object of parameters")
        return RequestBody(parsed, {})
    raise ClientError(
        "UnsupportedMediaType",
        f"request body: Content-Type {media_type or '(none)'} is not accepted; send application/json, "
        "application/x-www-form-urlencoded or multipart/form-data",
        status=415,
    )


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


def parse_parameters(raw: Mapping[str, Any], action_required: bool) -> ScribbleSegmentationRequest:
    for name in UPLOAD_PARAMETERS:
        if name in raw and raw[name] not in (None, ""):
            url_name = UPLOAD_PARAMETERS[name].url_parameter
            raise invalid_parameter(
                name, f"must be a file part of a multipart/form-data upload; for a URL use {url_name}"
            )
    try:
        parameters = ScribbleSegmentationRequest.model_validate(dict(raw))
    except ValidationError as error:
        raise _validation_to_client_error(error.errors()) from None
    if parameters.Action is None and action_required:
        raise invalid_parameter("Action", f"is required; use Action={ACTION}")
    if parameters.Action is not None and parameters.Action != ACTION:
        raise acs_protocol.action_not_found(parameters.Action, (ACTION, oss_uploads.AUTHORIZE_ACTION))
    if parameters.Format is not None and parameters.Format.strip().upper() not in ("JSON", "XML"):
        raise invalid_parameter("Format", f"must be JSON or XML, not {parameters.Format[:100]!r}")
    return parameters


def cutout_options(parameters: ScribbleSegmentationRequest) -> CutoutOptions:
    return_format = (parameters.ReturnFormat or "PNG").strip().upper()
    return CutoutOptions(
        return_form=(parameters.ReturnForm or "rgb_alpha").strip().lower(),
        return_format="JPG" if return_format == "JPEG" else return_format,
        edge_feathering=parse_bool("EdgeFeathering", parameters.EdgeFeathering, default=True),
        postprocess=(parameters.PostprocessOption or "maskrefine").strip().lower(),
    )


def _check_url_syntax(url: str, field: str) -> None:
    """Refuses URLs the standard library cannot even split (``http://[::1``), before fetching."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError as error:
        raise invalid_parameter(field, f"the URL is malformed ({error})") from None


async def gather_inputs(
    parameters: ScribbleSegmentationRequest,
    uploads: Mapping[str, UploadFile],
    settings: Settings,
    fetch_pool: FetchPool,
    request: Request | None = None,
) -> dict[str, InputBytes]:
    """Each input's bytes, from its upload or its URL (fetched concurrently, off the event loop).

    With ``request``, URLs naming files uploaded through ``AuthorizeFileUpload`` are
    read from the result store instead (see ``oss_uploads``)."""
    sources: dict[str, tuple[InputSpec, str | None, UploadFile | None]] = {}
    for spec in INPUTS:
        url: str | None = getattr(parameters, spec.url_parameter)
        upload = uploads.get(spec.upload_parameter)
        if upload is not None and not upload.filename and not upload.size:
            upload = None  # a browser form's file input left empty
        if url is not None and upload is not None:
            raise invalid_parameter(
                spec.url_parameter, f"give {spec.url_parameter} or upload {spec.upload_parameter}, not both"
            )
        if url is not None:
            _check_url_syntax(url, spec.url_parameter)
        if url is not None or upload is not None:
            sources[spec.role] = (spec, url, upload)
    if "image" not in sources:
        raise invalid_parameter("ImageUrl", "is required: the image to segment (or upload it as the file part Image)")

    # Not Label Studio's host: its uploads are no business of the scribble API.
    allowed_hosts = list(settings.ALLOWED_FETCH_HOSTS)
    inputs: dict[str, InputBytes] = {}
    fetched_roles: list[str] = []
    fetches = []
    for role, (spec, url, upload) in sources.items():
        if upload is not None:
            data = await upload.read(spec.max_bytes + 1)  # one byte over is enough to refuse it
            inputs[role] = InputBytes(spec.upload_parameter, data)
        else:
            fetched_roles.append(role)
            upload_name = oss_uploads.upload_name_of(url, request, settings) if request is not None else None
            if upload_name is not None:
                assert request is not None
                store: ResultStore = request.app.state.result_store
                fetches.append(
                    run_in_threadpool(oss_uploads.read_upload, store, upload_name, spec.url_parameter, spec.max_bytes)
                )
            else:
                # On the fetch pool's own threads: a slow host never holds a compute thread.
                fetches.append(fetch_pool.fetch(url, spec.url_parameter, spec.max_bytes, allowed_hosts))
    results = await asyncio.gather(*fetches, return_exceptions=True)
    for result in results:  # the first failure in parameter order is the one reported
        if isinstance(result, BaseException):
            raise result
    for role, data in zip(fetched_roles, results):
        inputs[role] = InputBytes(sources[role][0].url_parameter, data)  # type: ignore[arg-type]
    return inputs


# --------------------------------------------------------------------------- segmentation


def _stroke_map(source: InputBytes, image_shape: tuple[int, int]) -> np.ndarray:
    return decode_mask(source.data, source.field, image_shape) >= STROKE_THRESHOLD


def segment_inputs(segmenter: Segmenter, inputs: Mapping[str, InputBytes], options: CutoutOptions) -> CutoutResult:
    """Decode, build prompts, segment and encode. CPU-bound: runs in a worker thread."""
    image = decode_image(inputs["image"].data, inputs["image"].field)
    shape = image.shape[:2]
    maps: dict[str, np.ndarray | None] = {
        role: _stroke_map(inputs[role], shape) if role in inputs else None for role in ("mask", "positive", "negative")
    }
    if "integrated" in inputs:
        integrated = decode_mask(inputs["integrated"].data, inputs["integrated"].field, shape, channels="rgb")
        for role, channel in zip(("mask", "positive", "negative"), decode_integrated_mask(integrated)):
            maps[role] = channel if maps[role] is None else (maps[role] | channel)
    prompts = build_prompts(image, maps["positive"], maps["negative"], maps["mask"])
    return cut_out(segmenter, image, prompts, options)


def _segmentation_slots(request: Request, settings: Settings) -> threading.BoundedSemaphore:
    # At most THREADS segmentations at once per worker: each holds several copies of
    # an image of up to 4096x4096 in memory, and more at once would not be faster.
    extras = request.app.state.service.extras
    return extras.setdefault("scribble_segmentation_slots", threading.BoundedSemaphore(settings.THREADS))


def _run_limited(slots: threading.BoundedSemaphore, work: Callable[[], CutoutResult]) -> CutoutResult:
    with slots:
        return work()


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
    slots = _segmentation_slots(request, settings)
    budget: MemoryBudget = request.app.state.memory_budget
    async with budget.reserve(budget.estimate(inputs["image"].data)):
        result = await run_in_threadpool(_run_limited, slots, lambda: segment_inputs(segmenter, inputs, options))
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


# --------------------------------------------------------------------------- OpenAPI


def _parameter_docs(action_required: bool) -> list[dict[str, Any]]:
    schema = ScribbleSegmentationRequest.model_json_schema()
    documented = []
    for name, field_schema in schema["properties"].items():
        parameter_schema: dict[str, Any] = {"type": "string"}
        if "enum" in field_schema:
            parameter_schema["enum"] = field_schema["enum"]
        if field_schema.get("default") is not None:
            parameter_schema["default"] = str(field_schema["default"])
        documented.append(
            {
                "name": name,
                "in": "query",
                "required": name == "ImageUrl" or (name == "Action" and action_required),
                "description": field_schema.get("description", ""),
                "schema": parameter_schema,
            }
        )
    return documented


def _form_schema(with_files: bool) -> dict[str, Any]:
    schema = ScribbleSegmentationRequest.model_json_schema()
    properties: dict[str, Any] = {}
    for name, field_schema in schema["properties"].items():
        properties[name] = {key: value for key, value in field_schema.items() if key not in ("anyOf", "title")}
        properties[name]["type"] = "string"
    if with_files:
        for spec in INPUTS:
            properties[spec.upload_parameter] = {
                "type": "string",
                "format": "binary",
                "description": f"Upload in place of {spec.url_parameter}; at most {spec.max_bytes // MEGABYTE} MB.",
            }
    return {"type": "object", "properties": properties, "title": schema.get("title")}


def _json_schema() -> dict[str, Any]:
    schema = ScribbleSegmentationRequest.model_json_schema()
    schema["required"] = ["ImageUrl"]
    return schema


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "InvalidParameter, InvalidImage.Resolution, InvalidImage.Download, InvalidImage.Url, ...",
    },
    401: {"model": ErrorBody, "description": "InvalidApiKey (only when API_KEYS is set)"},
    413: {"model": ErrorBody, "description": "InvalidFile.Size: an input or the request body is too large"},
    415: {"model": ErrorBody, "description": "InvalidImage.Format or UnsupportedMediaType"},
    503: {
        "model": ErrorBody,
        "description": "ServiceUnavailable, with Retry-After: fetch slots (FETCH_CONCURRENCY) or the memory budget "
        "(MEMORY_BUDGET_MB) are full, or Redis holds the signing key and cannot be reached",
    },
}
SUCCESS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ScribbleSegmentationResponse,
        "description": "JSON, or XML with `Accept: application/xml` or `Format=XML`",
        "content": {XML_MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}
SEGMENTATION_RESPONSES = {**SUCCESS_RESPONSE, **ERROR_RESPONSES}


# --------------------------------------------------------------------------- routes

router = APIRouter(route_class=ScribbleRoute, tags=["InteractiveScribbleSegmentation"])
guarded = [Depends(require_api_key)]


@router.get(
    "/",
    summary="InteractiveScribbleSegmentation, every parameter in the query string (the original's request)",
    dependencies=guarded,
    responses=SEGMENTATION_RESPONSES,
    openapi_extra={"parameters": _parameter_docs(action_required=True)},
    response_model=None,
)
async def segment_by_query(request: Request) -> Response:
    if acs_protocol.requested_action(request) == oss_uploads.AUTHORIZE_ACTION:
        return render_authorize_file_upload(request)
    return await handle_segmentation(request, request.query_params, {}, action_required=True)


@router.get(
    "/InteractiveScribbleSegmentation",
    summary="InteractiveScribbleSegmentation, parameters in the query string",
    dependencies=guarded,
    responses=SEGMENTATION_RESPONSES,
    openapi_extra={"parameters": _parameter_docs(action_required=False)},
    response_model=None,
)
async def segment_by_path_query(request: Request) -> Response:
    return await handle_segmentation(request, request.query_params, {}, action_required=False)


@router.post(
    "/",
    summary="InteractiveScribbleSegmentation, form-encoded or multipart (files in place of URLs)",
    dependencies=guarded,
    responses=SEGMENTATION_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _form_schema(with_files=False)},
                "multipart/form-data": {"schema": _form_schema(with_files=True)},
            },
        }
    },
    response_model=None,
)
async def segment_by_form(request: Request) -> Response:
    return await handle_body_request(request, action_required=True)


@router.post(
    "/InteractiveScribbleSegmentation",
    summary="InteractiveScribbleSegmentation with a JSON body (or a form, or multipart with files)",
    dependencies=guarded,
    responses=SEGMENTATION_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": _json_schema()},
                "application/x-www-form-urlencoded": {"schema": _form_schema(with_files=False)},
                "multipart/form-data": {"schema": _form_schema(with_files=True)},
            },
        }
    },
    response_model=None,
)
async def segment_by_body(request: Request) -> Response:
    return await handle_body_request(request, action_required=False)


@router.get(
    "/results/{name:path}",
    summary="A result, through the signed ResultUrl returned by InteractiveScribbleSegmentation",
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The result image"},
        403: {"model": ErrorBody, "description": "AccessDenied (expired, or no signature) or SignatureDoesNotMatch"},
        404: {"model": ErrorBody, "description": "NoSuchKey: unknown or already dropped"},
    },
    response_class=Response,
    openapi_extra={
        "parameters": [
            {"name": "Expires", "in": "query", "required": True, "schema": {"type": "integer"}},
            {"name": "Signature", "in": "query", "required": True, "schema": {"type": "string"}},
        ]
    },
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
