"""Which Label Studio the server talks to, and where its token may go.

Label Studio's ``/setup`` carries its ``hostname`` and an ``access_token``. Anyone who
can reach an unauthenticated server can send a ``/setup`` too, so:

- the token is bound to the origin (scheme, host, port) it came with: a ``/setup``
  naming another origin without a token of its own leaves the server with no token,
  never the old one sent to the new host;
- ``LABEL_STUDIO_URL`` pins the origin: ``/setup`` then cannot repoint the server, and
  ``LABEL_STUDIO_API_KEY`` is only ever sent there (without ``LABEL_STUDIO_URL`` it has
  no origin to be bound to, so it is not used);
- a hostname that is no http(s) URL is refused (400) and changes nothing;
- the Label Studio origin is the only extra origin images may be fetched from
  (although it may be on a private or loopback address), and only for Label
  Studio's own paths (``LABEL_STUDIO_PATH_PREFIXES``); the scribble API gets nothing
  from it;
- these endpoints take JSON only: a ``text/plain`` body (which a web page can send
  from a visitor's browser without a CORS preflight) is refused with 415.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from ..errors import ClientError, ErrorCode, invalid_parameter
from ..io.fetch import OriginRule
from ..settings import Settings

logger = logging.getLogger(__name__)

# Where Label Studio serves task files: uploads, local and cloud storage, presign redirects.
LABEL_STUDIO_PATH_PREFIXES = ("/data/", "/storage-data/", "/tasks/", "/api/")
JSON_MEDIA_TYPE = "application/json"

Origin = tuple[str, str, int]


def parse_origin(url: object, field: str) -> Origin:
    """(scheme, host, port) of an http(s) URL, or a 400 naming ``field``."""
    if not isinstance(url, str):
        raise invalid_parameter(field, f"must be an http(s) URL string, got {type(url).__name__}")
    if any(ord(character) <= 32 or ord(character) >= 127 for character in url):
        raise invalid_parameter(field, "must be an http(s) URL without spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as error:
        raise invalid_parameter(field, f"is a malformed URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise invalid_parameter(field, "must be an http or https URL with a host, such as http://localhost:8080")
    if parts.username is not None or parts.password is not None:
        raise invalid_parameter(field, "must not carry credentials")
    return scheme, host.lower().rstrip("."), port or (443 if scheme == "https" else 80)


def origin_of(url: str | None) -> Origin | None:
    """The origin of a URL already accepted, or None."""
    if not url:
        return None
    try:
        return parse_origin(url, "url")
    except ClientError:
        return None


def label_studio_rule(hostname: str | None, configured_url: str | None = None) -> OriginRule | None:
    """The one non-public origin images may come from: Label Studio's, for its own paths.

    Its fetch errors are detailed only when it is the configured LABEL_STUDIO_URL: an
    origin named by a /setup may be anyone's choice, and must not make a port scanner."""
    origin = origin_of(hostname)
    if origin is None:
        return None
    scheme, host, port = origin
    configured = origin == origin_of(configured_url)
    return OriginRule(scheme, host.strip("[]"), port, LABEL_STUDIO_PATH_PREFIXES, uniform_errors=not configured)


@dataclass
class Connection:
    """How to reach Label Studio: pinned by LABEL_STUDIO_URL, else what /setup said.

    Invariant: ``access_token`` came with ``hostname``'s origin (or with
    LABEL_STUDIO_URL), so sending it to ``hostname`` never sends it elsewhere.
    """

    hostname: str | None = None
    access_token: str | None = None
    pinned: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "Connection":
        if settings.LABEL_STUDIO_URL:
            parse_origin(settings.LABEL_STUDIO_URL, "LABEL_STUDIO_URL")
            return cls(settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY, pinned=True)
        if settings.LABEL_STUDIO_API_KEY:
            logger.warning(
                "LABEL_STUDIO_API_KEY is set without LABEL_STUDIO_URL: it is not used, since it would go to "
                "whichever host a /setup names; set LABEL_STUDIO_URL too"
            )
        return cls()

    @property
    def origin(self) -> Origin | None:
        return origin_of(self.hostname)

    def apply_setup(self, hostname: object, token: object, settings: Settings) -> None:
        """Takes a /setup's hostname and token; checks everything before changing anything."""
        new_origin = None
        if hostname is not None and hostname != "":
            new_origin = parse_origin(hostname, "hostname")
        if token is not None and not isinstance(token, str):
            raise invalid_parameter("access_token", f"must be a string, got {type(token).__name__}")
        new_token = token or None
        if self.pinned:
            # LABEL_STUDIO_URL wins: the token can only ever go there.
            if new_token and not settings.LABEL_STUDIO_API_KEY:
                self.access_token = new_token
            return
        if new_origin is not None and new_origin != self.origin:
            # Another Label Studio (or someone else): the old token stays behind.
            self.hostname = str(hostname)
            self.access_token = new_token
            return
        if new_token:
            self.access_token = new_token


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON: no CORS-simple (text/plain, form) requests."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE and not media_type.endswith("+json"):
        raise ClientError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"body: Content-Type must be {JSON_MEDIA_TYPE}, not {media_type[:100] or 'missing'}",
            field="Content-Type",
        )
