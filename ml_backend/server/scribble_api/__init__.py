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

Modules, one concept each: ``models`` (request and response bodies), ``negotiation``
(JSON or XML), ``parsing`` (body and parameters), ``inputs`` (the images' bytes),
``slots`` (the concurrency gate), ``segmentation``, ``handlers``, ``openapi``,
``route`` (the route class that renders errors) and ``routes``. The body-size limit
is shared with the Label Studio routes (``server.request_body``).
"""

from __future__ import annotations

from .negotiation import to_xml
from .routes import router

__all__ = ["router", "to_xml"]
