"""Reading a request: its body (JSON, form or multipart) and the API's parameters in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from ...cutout import CutoutOptions, parse_bool
from ...errors import ClientError, ErrorCode, invalid_parameter
from .. import acs_protocol, oss_uploads
from ..request_body import BODY_FIELD, MEGABYTE, parse_json_object
from .models import ACTION, UPLOAD_PARAMETERS, URL_PARAMETERS, ScribbleSegmentationRequest
from .negotiation import JSON_MEDIA_TYPE

FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def validation_to_client_error(errors: list[Mapping[str, Any]]) -> ClientError:
    first = errors[0] if errors else {}
    # The parameter's name only: deeper parts of loc name pydantic's union members, not inputs.
    names = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header", "path")]
    return invalid_parameter(names[0] if names else "request", str(first.get("msg", "is invalid")))


@dataclass
class RequestBody:
    fields: dict[str, Any]
    uploads: dict[str, UploadFile]
    form: FormData | None = None  # closed by the caller: it owns the spooled upload files


async def _read_form(request: Request) -> RequestBody:
    try:
        form = await request.form(max_part_size=MEGABYTE)
    except HTTPException as error:  # starlette's word for a malformed multipart body
        raise invalid_parameter(BODY_FIELD, f"malformed form data ({error.detail})") from None
    body = RequestBody({}, {}, form)
    try:
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                body.fields.setdefault(name, value)
            elif name in UPLOAD_PARAMETERS:
                body.uploads.setdefault(name, value)
            elif name in URL_PARAMETERS:
                upload_name = URL_PARAMETERS[name].upload_parameter
                raise invalid_parameter(name, f"must be a text field holding a URL; upload the file as {upload_name}")
    except ClientError:
        await form.close()
        raise
    return body


async def read_body(request: Request) -> RequestBody:
    """Parameters and file parts from a JSON, form-encoded or multipart body (or none)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in FORM_MEDIA_TYPES:
        return await _read_form(request)
    raw = await request.body()
    if not raw.strip():
        return RequestBody({}, {})
    if media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        return RequestBody(parse_json_object(raw, "a JSON object of parameters"), {})
    raise ClientError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"{BODY_FIELD}: Content-Type {media_type or '(none)'} is not accepted; send application/json, "
        "application/x-www-form-urlencoded or multipart/form-data",
        field=BODY_FIELD,
    )


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
        raise validation_to_client_error(error.errors()) from None
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
