"""The inputs' bytes: uploaded file parts, this server's own uploads, or fetched URLs."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...errors import invalid_parameter
from ...settings import Settings
from .. import oss_uploads
from ..fetch_pool import FetchPool
from ..result_store import ResultStore
from .models import INPUTS, InputBytes, InputSpec, ScribbleSegmentationRequest


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
