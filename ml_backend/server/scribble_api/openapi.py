"""The API's OpenAPI description: its parameters, request bodies and answers."""

from __future__ import annotations

from typing import Any

from ..request_body import MEGABYTE
from .models import INPUTS, ErrorBody, ScribbleSegmentationRequest, ScribbleSegmentationResponse
from .negotiation import JSON_MEDIA_TYPE, XML_MEDIA_TYPE


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


def query_docs(action_required: bool) -> dict[str, Any]:
    """``openapi_extra`` for a route reading its parameters from the query string."""
    return {"parameters": _parameter_docs(action_required)}


def body_docs(with_json: bool) -> dict[str, Any]:
    """``openapi_extra`` for a route reading a form or multipart body (and JSON, ``with_json``)."""
    content: dict[str, Any] = {JSON_MEDIA_TYPE: {"schema": _json_schema()}} if with_json else {}
    content["application/x-www-form-urlencoded"] = {"schema": _form_schema(with_files=False)}
    content["multipart/form-data"] = {"schema": _form_schema(with_files=True)}
    return {"requestBody": {"required": True, "content": content}}


RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The result image"},
    403: {"model": ErrorBody, "description": "AccessDenied (expired, or no signature) or SignatureDoesNotMatch"},
    404: {"model": ErrorBody, "description": "NoSuchKey: unknown or already dropped"},
}
RESULT_DOCS: dict[str, Any] = {
    "parameters": [
        {"name": "Expires", "in": "query", "required": True, "schema": {"type": "integer"}},
        {"name": "Signature", "in": "query", "required": True, "schema": {"type": "string"}},
    ]
}
