"""Fetch an image from a URL without letting the URL reach the server's own network.

Server-side request forgery guard: the host is resolved once, every address it
resolves to must be public (or covered by ``allowed_hosts``), and the connection goes
to that validated address, with the original name kept in the Host header and as
the TLS server name, so a DNS answer that changes between check and connect (DNS
rebinding) cannot redirect the request. Redirects are followed by hand and each
target is checked by the same rules. The size limit is enforced while streaming.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from ml_backend.errors import ClientError, DownloadError, ErrorCode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
USER_AGENT = "scribble-ml-backend"
# NAT64 well-known prefix: 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


class UpstreamStatusError(DownloadError):
    """The image server answered, but not with the image: ``upstream_status`` is its HTTP status, ``url`` the URL.

    A caller with another URL to try (Label Studio's older upload path) tells this
    apart from a refused or unreachable URL, which no other path would fix.
    """

    def __init__(self, field: str, upstream_status: int, url: str) -> None:
        super().__init__(field, f"{field}: the server answered HTTP {upstream_status} for {url}", upstream_status)
        self.url = url


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    path_and_query: str
    basic_auth: str | None


@dataclass(frozen=True)
class OriginRule:
    """One origin (scheme, host, port) that may be fetched from although its address is
    not public, for the listed path prefixes only: Label Studio on the same machine or
    network serves its uploads there, and nothing else on that host is the server's
    business (another port, or the same port's other paths, stays refused).

    With ``uniform_errors``, failures fetching from such an origin are reported in one
    message, so a caller who could point the origin somewhere (an unauthenticated
    /setup) learns nothing about which ports are open or what they answer."""

    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    path_prefixes: tuple[str, ...]
    uniform_errors: bool = True

    def covers(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host.rstrip("."), port) != (self.scheme, self.host.rstrip("."), self.port):
            return False
        # Dot segments, plain or percent-encoded, must not climb out of a prefix.
        decoded = unquote(path)
        if "\\" in decoded or any(segment in (".", "..") for segment in decoded.split("/")):
            return False
        return any(path.startswith(prefix) for prefix in self.path_prefixes)


def parse_allowed_hosts(text: str) -> list[str]:
    """Split the comma-separated ALLOWED_FETCH_HOSTS value; refuse malformed CIDRs loudly."""
    entries = [entry.strip().lower() for entry in text.replace("\n", ",").split(",")]
    entries = [entry.strip("[]") for entry in entries if entry]
    for entry in entries:
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as error:
                raise ValueError(f"ALLOWED_FETCH_HOSTS: {entry!r} is not a valid CIDR ({error})") from None
    return entries


def fetch_url(
    url: str,
    field: str,
    max_bytes: int,
    allowed_hosts: Sequence[str] = (),
    connect_timeout: float = 5,
    read_timeout: float = 20,
    max_redirects: int = 3,
    headers: Mapping[str, str] | None = None,
    origin_rules: Sequence[OriginRule] = (),
) -> bytes:
    """GET ``url`` and return its body (at most ``max_bytes``), or raise ``ClientError``.

    The whole fetch, redirects included, must finish within ``connect_timeout +
    read_timeout`` seconds, so a server that trickles bytes cannot hold a worker.
    ``headers`` (e.g. a Label Studio token) are sent to the original origin only,
    never to a redirect target elsewhere (a presigned storage URL, say).
    ``origin_rules`` open non-public origins for some paths (see ``OriginRule``).
    """
    allowed_names, allowed_networks = _split_allowed(allowed_hosts)
    deadline_s = connect_timeout + read_timeout
    deadline = time.monotonic() + deadline_s
    target = _parse_target(url, field, via=None)
    origin = (target.scheme, target.host, target.port)
    for redirects_followed in range(max_redirects + 1):
        if time.monotonic() > deadline:
            raise DownloadError(field, f"{field}: the download timed out after {deadline_s:g} s")
        rule = _rule_for(target, origin_rules)
        try:
            address = _checked_address(target, field, allowed_names, allowed_networks, rule)
        except DownloadError as error:
            raise _uniform(error, field, rule) from None
        extra_headers = headers if (target.scheme, target.host, target.port) == origin else None
        pool = _pool_for(target, address, connect_timeout, read_timeout)
        try:
            try:
                response = _send(pool, target, extra_headers, field)
            except DownloadError as error:
                raise _uniform(error, field, rule) from None
            try:
                if response.status in REDIRECT_STATUSES and response.headers.get("Location"):
                    try:
                        location = urljoin(target.url, response.headers["Location"])
                    except ValueError:
                        location = response.headers["Location"]  # _parse_target refuses it with the reason
                    if redirects_followed == max_redirects:
                        raise DownloadError(
                            field, f"{field}: more than {max_redirects} redirects (the last one to {location})"
                        )
                    target = _parse_target(location, field, via=target.url)
                    continue
                if not 200 <= response.status < 300:
                    failure = UpstreamStatusError(field, response.status, target.url)
                    raise _uniform(failure, field, rule)
                try:
                    return _read_limited(response, field, max_bytes, deadline, deadline_s, pool.timeout)
                except DownloadError as error:
                    raise _uniform(error, field, rule) from None
            finally:
                response.release_conn()
        finally:
            pool.close()
    raise AssertionError("unreachable: the loop returns or raises")


def _rule_for(target: _Target, origin_rules: Sequence[OriginRule]) -> OriginRule | None:
    path = target.path_and_query.split("?", 1)[0]
    return next((rule for rule in origin_rules if rule.covers(target.scheme, target.host, target.port, path)), None)


def _uniform(error: DownloadError, field: str, rule: OriginRule | None) -> DownloadError:
    """Through an origin rule, every failure reads the same (``upstream_status`` is kept for the caller)."""
    if rule is None or not rule.uniform_errors:
        return error
    return DownloadError(
        field,
        f"{field}: the file could not be downloaded from Label Studio (no answer, an error status, or too slow)",
        error.upstream_status,
    )


def _split_allowed(allowed_hosts: Sequence[str]) -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allowed_hosts:
        entry = entry.strip().strip("[]").lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _parse_target(url: str, field: str, via: str | None) -> _Target:
    context = f" (redirected from {via})" if via else ""

    def refuse(reason: str) -> ClientError:
        return ClientError(ErrorCode.INVALID_PARAMETER, f"{field}: {reason}{context}", field=field)

    if any(ord(character) > 127 for character in url):
        raise refuse("the URL contains non-ASCII characters; percent-encode them")
    if any(ord(character) <= 32 or ord(character) == 127 for character in url):
        raise refuse("the URL contains spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise refuse(f"the URL is malformed ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise refuse(f"only http and https URLs can be fetched, not {scheme or 'a URL without a scheme'}")
    try:
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise refuse(f"the URL is malformed ({error})") from None
    if not host:
        raise refuse("the URL has no host")
    basic_auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        basic_auth = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(url, scheme, host.lower(), port, path_and_query, basic_auth)


def _checked_address(
    target: _Target,
    field: str,
    allowed_names: set[str],
    allowed_networks: list[IPNetwork],
    rule: OriginRule | None = None,
) -> IPAddress:
    """Resolve once; refuse if any address is off-limits; return the one to connect to."""
    try:
        addresses = [ipaddress.ip_address(target.host)]
        literal = True
    except ValueError:
        addresses = _resolve_addresses(target.host, target.port, field)
        literal = False
    if target.host.rstrip(".") in allowed_names or rule is not None:
        return addresses[0]
    for address in addresses:
        reason = _forbidden_reason(address)
        if reason is not None and not any(address in network for network in allowed_networks):
            # What a name resolves to is the server's business: say only that it is refused.
            what = f"is a {reason} address" if literal else "resolves to an address of the server's own networks"
            raise ClientError(
                ErrorCode.INVALID_IMAGE_URL,
                f"{field}: {target.host} {what}; the server fetches nothing from "
                f"its own networks unless allowed with ALLOWED_FETCH_HOSTS",
                field=field,
            )
    return addresses[0]


def _resolve_addresses(host: str, port: int, field: str) -> list[IPAddress]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DownloadError(field, f"{field}: the host {host} cannot be resolved") from None
    addresses: list[IPAddress] = []
    for _family, _type, _protocol, _canonical_name, socket_address in answers:
        # Scope ids ("fe80::1%eth0") are dropped: the check is about the address itself.
        address = ipaddress.ip_address(str(socket_address[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DownloadError(field, f"{field}: the host {host} has no address")
    return addresses


def _forbidden_reason(address: IPAddress) -> str | None:
    """Why the address must not be fetched from, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = _forbidden_reason(embedded)
            return None if reason is None else f"{reason} (embedded in IPv6)"
        if address.teredo is not None:
            return "Teredo tunnel"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    )
    for reason, applies in checks:
        if applies:
            return reason
    return None


def _pool_for(
    target: _Target, address: IPAddress, connect_timeout: float, read_timeout: float
) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    if target.scheme == "https":
        # Connect to the pinned address; verify the certificate against the URL's name.
        return urllib3.HTTPSConnectionPool(
            str(address),
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, retries=False)


def _send(
    pool: urllib3.HTTPConnectionPool,
    target: _Target,
    extra_headers: Mapping[str, str] | None,
    field: str,
) -> urllib3.BaseHTTPResponse:
    default_port = 443 if target.scheme == "https" else 80
    host_name = f"[{target.host}]" if ":" in target.host else target.host
    request_headers = {
        "Host": host_name if target.port == default_port else f"{host_name}:{target.port}",
        "User-Agent": USER_AGENT,
        "Accept": "image/*, */*;q=0.5",
    }
    if target.basic_auth:
        request_headers["Authorization"] = target.basic_auth
    request_headers.update(extra_headers or {})
    try:
        return pool.urlopen(
            "GET",
            target.path_and_query,
            headers=request_headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
    except HTTPError as error:
        raise _download_error(error, field, pool.timeout) from None


def _read_limited(
    response: urllib3.BaseHTTPResponse,
    field: str,
    max_bytes: int,
    deadline: float,
    deadline_s: float,
    timeout: urllib3.Timeout,
) -> bytes:
    too_large = ClientError(
        ErrorCode.INVALID_FILE_SIZE,
        f"{field}: the file is larger than the {max_bytes / (1024 * 1024):g} MB allowed",
        field=field,
    )
    declared_length = response.headers.get("Content-Length", "")
    if declared_length.isdigit() and int(declared_length) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        # read1 returns whatever has arrived, so the deadline is checked between packets
        # rather than after a full chunk that a trickling server may never complete.
        while chunk := response.read1(CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                raise too_large
            if time.monotonic() > deadline:
                raise DownloadError(field, f"{field}: the download timed out after {deadline_s:g} s")
    except HTTPError as error:
        raise _download_error(error, field, timeout) from None
    return bytes(body)


def _download_error(error: HTTPError, field: str, timeout: urllib3.Timeout) -> DownloadError:
    if isinstance(error, NewConnectionError):  # checked first: urllib3 derives it from ConnectTimeoutError
        # Not the socket's own words: they name the address the host resolved to.
        message = "could not connect (connection refused or unreachable)"
    elif isinstance(error, ConnectTimeoutError):
        message = f"connecting timed out after {timeout.connect_timeout:g} s"
    elif isinstance(error, ReadTimeoutError):
        message = f"the server stopped sending; timed out after {timeout.read_timeout:g} s"
    else:
        # The class only: urllib3's own text may name the address the host resolved to.
        message = f"the download failed ({type(error).__name__})"
    return DownloadError(field, f"{field}: {message}")
