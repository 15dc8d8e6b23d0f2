"""Local files through the SDK's ``*_advance`` calls: ``AuthorizeFileUpload`` and the OSS form upload.

For a local file the official SDK first calls ``AuthorizeFileUpload`` (version
2019-12-19) on its ``open_platform_endpoint``, then POSTs the file as an OSS
form upload to ``http(s)://{Bucket}.{Endpoint}/`` with the policy and signature
it was given, and finally calls the API with
``ImageUrl=http(s)://{Bucket}.{Endpoint}/{ObjectKey}`` (some SDK versions send
``oss://{Bucket}/{ObjectKey}``). This server plays all three parts:

- ``AuthorizeFileUpload`` answers with this server's own host split at its first
  dot (``Bucket`` = the part before, ``Endpoint`` = the rest with the port), so
  the SDK's ``{Bucket}.{Endpoint}`` is this server again. The server must thus
  be addressed by an IP address or a dotted name (not ``localhost``).
- The form upload is checked against the signed policy (object key and expiry)
  and stored like a result: same store, same lifetime (``RESULT_TTL_SECONDS``),
  at most ``IMAGE_MAX_BYTES``, under a random name ``<32 hex>.bin``.
- An input URL naming such an object on this server (or an ``oss://`` URL) is
  read from the store, never fetched: a missing or expired upload is an error.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ClientError, ErrorCode
from ..io.images import IMAGE_MAX_BYTES, file_too_large
from ..settings import Settings
from .acs_protocol import ACTION_HEADER
from .result_store import ResultStore

AUTHORIZE_ACTION = "AuthorizeFileUpload"
OBJECT_PREFIX = "uploads/"
OBJECT_KEY = re.compile(r"^uploads/([0-9a-f]{32}\.bin)$")
# Not a secret: the upload is authorised by the policy's signature, not by this id.
UPLOAD_ACCESS_KEY_ID = "scribble-upload"
POST_OBJECT_FIELDS = ("policy", "Signature", "key")


def _host_of(request: Request, settings: Settings) -> str:
    if settings.PUBLIC_URL:
        return urlsplit(settings.PUBLIC_URL).netloc
    return request.headers.get("host", "") or request.url.netloc


def bucket_and_endpoint(host: str) -> tuple[str, str]:
    """Splits this server's ``host[:port]`` at its first dot, so that the SDK's
    ``{bucket}.{endpoint}`` is the host again."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.startswith("[") or "." not in name:
        raise ClientError(
            ErrorCode.INVALID_PARAMETER_ENDPOINT,
            f"open_platform_endpoint: {host!r} has no dot; the SDK uploads to '{{bucket}}.{{endpoint}}', so "
            "address this server by an IPv4 address or a dotted host name (or set PUBLIC_URL to one)",
            field="open_platform_endpoint",
        )
    bucket, endpoint = host.split(".", 1)
    return bucket, endpoint


def authorize_file_upload(
    request: Request, settings: Settings, store: ResultStore, request_id: str
) -> dict[str, Any]:
    """The ``AuthorizeFileUpload`` answer: where to upload one file, and the signed policy to do it with."""
    bucket, endpoint = bucket_and_endpoint(_host_of(request, settings))
    name = f"{uuid.uuid4().hex}.bin"
    expires = int(store.clock()) + store.ttl_seconds
    policy = {
        "expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        "conditions": [{"key": OBJECT_PREFIX + name}, ["content-length-range", 1, IMAGE_MAX_BYTES]],
    }
    return {
        "RequestId": request_id,
        "AccessKeyId": UPLOAD_ACCESS_KEY_ID,
        "Bucket": bucket,
        "Endpoint": endpoint,
        "EncodedPolicy": base64.b64encode(json.dumps(policy).encode("utf-8")).decode("ascii"),
        "ObjectKey": OBJECT_PREFIX + name,
        "Signature": store.sign(name, expires).signature,
        "UseAccelerate": False,
    }


def is_post_object(request: Request, fields: Mapping[str, Any], form: FormData | None) -> bool:
    """An OSS form upload: a multipart POST with a policy, its signature and a key, and no action."""
    if form is None or request.headers.get(ACTION_HEADER) or "Action" in fields or "Action" in request.query_params:
        return False
    return all(name in fields for name in POST_OBJECT_FIELDS)


def _refused(message: str, code: ErrorCode = ErrorCode.ACCESS_DENIED) -> ClientError:
    return ClientError(code, message)


def _checked_name(fields: Mapping[str, Any], store: ResultStore) -> str:
    """The upload's name, once its policy is ours, signed, unexpired and for this key."""
    try:
        policy = json.loads(base64.b64decode(str(fields["policy"]), validate=True))
        expiration = time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        policy_key = next(condition["key"] for condition in policy["conditions"] if isinstance(condition, dict))
    except (binascii.Error, ValueError, KeyError, TypeError, StopIteration):
        raise _refused(
            "policy: not a policy from AuthorizeFileUpload; call it for each upload", ErrorCode.INVALID_POLICY_DOCUMENT
        ) from None
    match = OBJECT_KEY.match(str(policy_key))
    if match is None or fields["key"] != policy_key:
        raise _refused(
            f"key: must be the ObjectKey AuthorizeFileUpload returned with this policy ({str(policy_key)[:80]!r})"
        )
    name = match.group(1)
    expires = calendar.timegm(expiration)
    expected = store.sign(name, expires).signature
    if not hmac.compare_digest(expected.encode(), str(fields["Signature"]).encode("utf-8", "replace")):
        raise _refused(
            "Signature: does not match the policy; send the EncodedPolicy and Signature AuthorizeFileUpload returned",
            ErrorCode.SIGNATURE_DOES_NOT_MATCH,
        )
    if expires < store.clock():
        raise _refused(f"policy: expired at {policy['expiration']}; call AuthorizeFileUpload again")
    return name


async def post_object(request: Request, form: FormData, store: ResultStore) -> Response:
    """Stores the file of an OSS form upload; answers as OSS does (201 with ``PostResponse``)."""
    from .scribble_api import to_xml  # the API's XML writer; imported here, the API imports this module

    request.state.response_format = "XML"  # OSS clients read errors as XML <Error>
    fields = {name: value for name, value in form.multi_items() if not isinstance(value, UploadFile)}
    name = _checked_name(fields, store)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ClientError(
            ErrorCode.INVALID_ARGUMENT, "file: the form upload has no file part named 'file'", field="file"
        )
    content = await upload.read(IMAGE_MAX_BYTES + 1)
    if len(content) > IMAGE_MAX_BYTES:
        raise ClientError(
            ErrorCode.INVALID_FILE_SIZE,
            f"file: larger than the {IMAGE_MAX_BYTES // (1024 * 1024)} MB allowed",
            field="file",
        )
    if not content:
        raise ClientError(ErrorCode.INVALID_ARGUMENT, "file: the uploaded file is empty", field="file")
    await run_in_threadpool(store.backend.put, name, content, store.ttl_seconds + 1)
    key = OBJECT_PREFIX + name
    body = {
        "Bucket": request.headers.get("host", "").split(".", 1)[0],
        "Key": key,
        "Location": f"{str(request.base_url).rstrip('/')}/{key}",
    }
    status = 201 if str(fields.get("success_action_status", "")) == "201" else 204
    if status == 204:
        return Response(status_code=204)
    return Response(to_xml("PostResponse", body), status_code=201, media_type="application/xml")


def upload_name_of(url: str, request: Request, settings: Settings) -> str | None:
    """The stored upload an input URL names, or None for an ordinary URL to fetch.

    ``oss://`` URLs are always uploads (there is nothing else to fetch them from);
    ``http(s)`` URLs are when they point at this server's ``uploads/`` objects.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "oss":
        key = parts.path.lstrip("/")
    elif scheme in ("http", "https") and parts.netloc.lower() in _own_hosts(request, settings):
        key = parts.path.lstrip("/")
        if not key.startswith(OBJECT_PREFIX):
            return None
    else:
        return None
    match = OBJECT_KEY.match(key)
    if match is None:
        raise ClientError(
            ErrorCode.INVALID_IMAGE_URL,
            f"{url[:120]}: not an object uploaded to this server (uploads/<32 hex>.bin from AuthorizeFileUpload)",
        )
    return match.group(1)


def _own_hosts(request: Request, settings: Settings) -> set[str]:
    hosts = {request.headers.get("host", "").lower(), request.url.netloc.lower()}
    if settings.PUBLIC_URL:
        hosts.add(urlsplit(settings.PUBLIC_URL).netloc.lower())
    hosts.discard("")
    return hosts


def read_upload(store: ResultStore, name: str, field: str, max_bytes: int) -> bytes:
    """An upload's bytes for the input ``field``, under that input's size limit."""
    content = store.backend.get(name)
    if content is None:
        raise ClientError(
            ErrorCode.INVALID_IMAGE_DOWNLOAD,
            f"{field}: the upload {OBJECT_PREFIX}{name} is unknown or has expired "
            f"(uploads are kept {store.ttl_seconds} s, RESULT_TTL_SECONDS)",
            field=field,
        )
    if len(content) > max_bytes:
        raise file_too_large(field, max_bytes, len(content))
    return content
