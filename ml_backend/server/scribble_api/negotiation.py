"""Content negotiation: every answer in JSON, or in XML when the request asks for it."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response

JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "application/xml"


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
