"""URL fetching: limits, timeouts and the server-side request forgery guard.

A real HTTP server runs on 127.0.0.2 (all of 127/8 is loopback on Linux) and only
"127.0.0.2" is allowed, so every other loopback, private or link-local destination
must be refused. Every socket connect is watched: a refused destination must never
see a connection attempt, and no test sends traffic off this machine.
"""

from __future__ import annotations

import io
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml_backend.errors import ClientError
from ml_backend.io import fetch
from ml_backend.io.fetch import OriginRule, fetch_url, parse_allowed_hosts
from ml_backend.server.http_errors import http_status
from ml_backend.tools.loopback_host import Exchange, LoopbackHost, trickle

SERVER_ADDRESS = "127.0.0.2"
ALLOWED = ("127.0.0.2",)
MAX_BYTES = 50_000

# Self-signed certificate for "pinned.test", valid 2000-2100, made for this test only
# (openssl ca -selfsign); it protects nothing.
TEST_CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBZzCCAQ2gAwIBAgIBATAKBggqhkjOPQQDAjAWMRQwEgYDVQQDDAtwaW5uZWQu
dGVzdDAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowFjEUMBIGA1UE
AwwLcGlubmVkLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASLvnBd3Tqc
mfmnGyvlvB3GBtckq33HLqeZGMSCSEDzFoqWKcRCJKlBmd8MKyxDP3PRuhIfdsbL
WRd3mkJxjxCVo0owSDAPBgNVHRMBAf8EBTADAQH/MB0GA1UdDgQWBBRn5Gd/JttG
inu9a3eBtSlBEMBZRzAWBgNVHREEDzANggtwaW5uZWQudGVzdDAKBggqhkjOPQQD
AgNIADBFAiBTUXzN4vbVW/Pg5RpzbfLoIsDY/W7fpO/P1s1aRL0pSQIhAPhWgSYZ
Fj62X6h/Ku6dCALPBAktlUVhCMu7oued9OXx
-----END CERTIFICATE-----
"""
TEST_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpfrPcjgq3/B6Cal
Pjii6lJ/2Gtmy55JuopfjayZo3yhRANCAASLvnBd3TqcmfmnGyvlvB3GBtckq33H
LqeZGMSCSEDzFoqWKcRCJKlBmd8MKyxDP3PRuhIfdsbLWRd3mkJxjxCV
-----END PRIVATE KEY-----
"""


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = png_bytes()
# How long /sleeps and /trickles hold a request unless released: any timeout under test
# is far shorter, so a refusal well before it shows the timeout, whatever the machine's load.
SERVER_HOLDS_S = 20.0


def _redirect_to_query(exchange: Exchange) -> None:
    exchange.redirect(exchange.query)


def _chain(exchange: Exchange) -> None:
    remaining = int(exchange.route_path.rsplit("/", 1)[1])
    exchange.redirect(f"/chain/{remaining - 1}" if remaining > 0 else "/image.png")


def _endless(exchange: Exchange) -> None:
    # No Content-Length: the body ends when the connection closes, so only
    # counting while streaming can stop it.
    exchange.send_response(200)
    exchange.end_headers()
    try:
        for _ in range(1000):
            exchange.wfile.write(b"\0" * 10_000)
    except OSError:
        pass  # the client hung up once it had enough: expected


def _declares_huge(exchange: Exchange) -> None:
    exchange.send_response(200)
    exchange.send_header("Content-Length", str(10**9))
    exchange.end_headers()
    exchange.wfile.write(b"\0" * 100)


def _sleeps(exchange: Exchange) -> None:
    exchange.host.released.wait(SERVER_HOLDS_S)
    exchange.reply(200, IMAGE)


class LocalServer(LoopbackHost):
    """The loopback host with this file's scripted paths; ``/missing`` and unknown paths answer 404."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(SERVER_ADDRESS, tls=tls)
        self.add("/image.png", IMAGE)
        self.add("/data/upload/1/image.png", IMAGE)
        self.routes.update({
            "/redirect": _redirect_to_query, "/chain/": _chain, "/endless": _endless,
            "/declares-huge": _declares_huge, "/sleeps": _sleeps, "/trickles": trickle(MAX_BYTES, 0.05),
        })  # fmt: skip

    @property
    def base(self) -> str:
        return self.origin

    @property
    def server_port(self) -> int:
        return self.port

    def seen(self) -> list[tuple[str, str | None, str | None]]:
        """(path, Host header, Authorization header) of each request."""
        return [(request.path, request.host, request.authorization) for request in self.requests]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as test_server:
        yield test_server


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every socket connect made during the test; anything but the test server fails it."""
    attempted: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def watched_connect(self: socket.socket, address: tuple[str, int]) -> None:
        attempted.append((address[0], address[1]))
        if address[0] != SERVER_ADDRESS:
            raise AssertionError(f"connection attempted to {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", watched_connect)
    return attempted


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Host name -> successive DNS answers (the last one repeats); other names resolve for real."""
    answers: dict[str, list[list[str]]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def refusal(url: str, **kwargs: object) -> ClientError:
    options: dict[str, object] = {"field": "ImageUrl", "max_bytes": MAX_BYTES, "allowed_hosts": ALLOWED}
    options.update(kwargs)
    with pytest.raises(ClientError) as caught:
        fetch_url(url, **options)
    return caught.value


def test_fetches_from_allowed_server(server: LocalServer, connections: list) -> None:
    body = fetch_url(f"{server.base}/image.png", "ImageUrl", MAX_BYTES, allowed_hosts=ALLOWED)
    assert body == IMAGE
    assert connections == [(SERVER_ADDRESS, server.server_port)]


def test_allowed_cidr_covers_the_address(server: LocalServer, connections: list) -> None:
    assert fetch_url(f"{server.base}/image.png", "ImageUrl", MAX_BYTES, allowed_hosts=["127.0.0.0/30"]) == IMAGE


def test_loopback_refused_without_allow_list(server: LocalServer, connections: list) -> None:
    error = refusal(f"{server.base}/image.png", allowed_hosts=())
    assert (error.code, http_status(error), error.field) == ("InvalidImage.Url", 400, "ImageUrl")
    assert "loopback" in error.message and "ALLOWED_FETCH_HOSTS" in error.message
    assert connections == [] and server.seen() == []


def test_allowed_host_name_and_headers_sent(server: LocalServer, connections: list, fake_dns: dict) -> None:
    fake_dns["ls.internal"] = [[SERVER_ADDRESS]]
    url = f"http://ls.internal:{server.server_port}/image.png"
    body = fetch_url(url, "ImageUrl", MAX_BYTES, allowed_hosts=["ls.internal"], headers={"Authorization": "Token k"})
    assert body == IMAGE
    assert server.seen() == [("/image.png", f"ls.internal:{server.server_port}", "Token k")]


def test_headers_not_forwarded_to_another_origin(server: LocalServer, connections: list, fake_dns: dict) -> None:
    fake_dns["ls.internal"] = [[SERVER_ADDRESS]]
    url = f"http://ls.internal:{server.server_port}/redirect?{server.base}/image.png"
    allowed = ["ls.internal", SERVER_ADDRESS]
    body = fetch_url(url, "ImageUrl", MAX_BYTES, allowed_hosts=allowed, headers={"Authorization": "Token k"})
    assert body == IMAGE
    (_, first_host, first_auth), (_, second_host, second_auth) = server.seen()
    assert first_auth == "Token k" and second_auth is None
    assert second_host == f"{SERVER_ADDRESS}:{server.server_port}"


def test_http_error_names_field_and_status(server: LocalServer, connections: list) -> None:
    error = refusal(f"{server.base}/missing", field="MaskImageUrl")
    assert (error.code, error.field) == ("InvalidImage.Download", "MaskImageUrl")
    assert "MaskImageUrl" in error.message and "404" in error.message


def test_size_limit_enforced_while_streaming(server: LocalServer, connections: list) -> None:
    started = time.monotonic()
    error = refusal(f"{server.base}/endless")
    assert (error.code, http_status(error)) == ("InvalidFile.Size", 413)
    assert "ImageUrl" in error.message
    assert time.monotonic() - started < 5


def test_declared_length_over_limit_refused_early(server: LocalServer, connections: list) -> None:
    error = refusal(f"{server.base}/declares-huge")
    assert (error.code, http_status(error)) == ("InvalidFile.Size", 413)


def test_body_at_the_limit_accepted(server: LocalServer, connections: list) -> None:
    assert fetch_url(f"{server.base}/image.png", "ImageUrl", len(IMAGE), allowed_hosts=ALLOWED) == IMAGE
    assert refusal(f"{server.base}/image.png", max_bytes=len(IMAGE) - 1).code == "InvalidFile.Size"


def test_silent_server_times_out(server: LocalServer, connections: list) -> None:
    started = time.monotonic()
    error = refusal(f"{server.base}/sleeps", connect_timeout=1, read_timeout=0.3)
    elapsed = time.monotonic() - started
    assert error.code == "InvalidImage.Download"
    assert "timed out after 0.3 s" in error.message and "ImageUrl" in error.message
    # It waited its read timeout, and gave up long before the server would have answered.
    assert 0.3 <= elapsed < SERVER_HOLDS_S / 2


def test_trickling_server_stopped_by_the_overall_deadline(server: LocalServer, connections: list) -> None:
    started = time.monotonic()
    error = refusal(f"{server.base}/trickles", connect_timeout=0.2, read_timeout=0.5)
    elapsed = time.monotonic() - started
    assert error.code == "InvalidImage.Download" and "timed out after 0.7 s" in error.message
    # Each byte comes within the read timeout: only the overall deadline stops it, and the
    # server trickles until released (SERVER_HOLDS_S), so an answer before that is the deadline's.
    assert 0.7 <= elapsed < SERVER_HOLDS_S / 2


def test_connect_timeout(connections: list) -> None:
    # A listener whose backlog is full drops further connection attempts on Linux.
    with socket.socket() as listener:
        listener.bind((SERVER_ADDRESS, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection((SERVER_ADDRESS, port)):
            started = time.monotonic()
            error = refusal(f"http://{SERVER_ADDRESS}:{port}/", connect_timeout=0.3, read_timeout=1)
            elapsed = time.monotonic() - started
    assert error.code == "InvalidImage.Download" and "timed out after 0.3 s" in error.message
    # The connect timeout was waited, not the whole deadline's worth of retries.
    assert elapsed >= 0.3


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.1.1:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "non-public"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[2002:a9fe:a9fe::]/", "link-local"),  # 6to4 of 169.254.169.254
        ("http://[64:ff9b::a01:203]/", "private"),  # NAT64 of 10.1.2.3
        # Names: refused without saying what they resolve to (issue 19).
        ("http://2130706433/", "resolves to an address of the server's own networks"),  # 127.0.0.1 as one number
        ("http://localhost/", "resolves to an address of the server's own networks"),
    ],
)
def test_forbidden_destinations_refused_before_connecting(url: str, reason: str, connections: list) -> None:
    error = refusal(url)
    assert (error.code, http_status(error), error.field) == ("InvalidImage.Url", 400, "ImageUrl")
    assert reason in error.message and "ImageUrl" in error.message
    assert connections == []  # refused before any connection was tried


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/image.png", "gopher://127.0.0.2/", "//127.0.0.2/x.png", "image.png"],
)
def test_only_http_and_https(url: str, connections: list) -> None:
    error = refusal(url)
    assert (error.code, error.field) == ("InvalidParameter", "ImageUrl")
    assert "http" in error.message
    assert connections == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.2/图片.png", "http://exämple.com/a.png", "http://127.0.0.2/a b.png"]
)
def test_non_ascii_and_spaces_refused(url: str, connections: list) -> None:
    error = refusal(url)
    assert (error.code, error.field) == ("InvalidParameter", "ImageUrl")
    assert connections == []


def test_redirect_to_loopback_refused_and_never_connected(server: LocalServer, connections: list) -> None:
    with socket.socket() as decoy:
        decoy.bind(("127.0.0.1", 0))
        decoy.listen(1)
        decoy.setblocking(False)
        decoy_url = f"http://127.0.0.1:{decoy.getsockname()[1]}/secret"
        error = refusal(f"{server.base}/redirect?{decoy_url}")
        with pytest.raises(BlockingIOError):
            decoy.accept()  # nobody knocked
    assert error.code == "InvalidImage.Url" and "loopback" in error.message
    assert connections == [(SERVER_ADDRESS, server.server_port)]


def test_redirect_to_metadata_address_refused(server: LocalServer, connections: list) -> None:
    error = refusal(f"{server.base}/redirect?http://169.254.169.254/latest/meta-data/")
    assert error.code == "InvalidImage.Url" and "link-local" in error.message
    assert {address for address, _port in connections} == {SERVER_ADDRESS}


def test_redirect_to_file_scheme_refused(server: LocalServer, connections: list) -> None:
    error = refusal(f"{server.base}/redirect?file:///etc/passwd")
    assert error.code == "InvalidParameter" and "redirected from" in error.message


def test_three_redirects_followed_four_refused(server: LocalServer, connections: list) -> None:
    assert fetch_url(f"{server.base}/chain/2", "ImageUrl", MAX_BYTES, allowed_hosts=ALLOWED) == IMAGE
    server.requests.clear()
    error = refusal(f"{server.base}/chain/3")
    assert error.code == "InvalidImage.Download" and "more than 3 redirects" in error.message
    assert len(server.requests) == 4  # the original request and three redirects, no more


def test_dns_answer_with_any_forbidden_address_refused(server: LocalServer, connections: list, fake_dns: dict) -> None:
    fake_dns["rebind.test"] = [[SERVER_ADDRESS, "127.0.0.1"]]
    error = refusal(f"http://rebind.test:{server.server_port}/image.png")
    assert error.code == "InvalidImage.Url" and "own networks" in error.message
    # What a name resolves to is not told (issue 19: a probe learned internal addresses).
    assert "127.0.0.1" not in error.message and SERVER_ADDRESS not in error.message
    assert connections == [] and server.seen() == []


def test_connection_pinned_to_the_checked_address(server: LocalServer, connections: list, fake_dns: dict) -> None:
    # Rebinding: the first answer passes the check, later answers point at a forbidden address.
    fake_dns["rebind.test"] = [[SERVER_ADDRESS], ["127.0.0.1"]]
    url = f"http://rebind.test:{server.server_port}/image.png"
    assert fetch_url(url, "ImageUrl", MAX_BYTES, allowed_hosts=["rebind.test"]) == IMAGE
    assert connections == [(SERVER_ADDRESS, server.server_port)]
    assert server.seen() == [("/image.png", f"rebind.test:{server.server_port}", None)]


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    certificate = tmp_path / "certificate.pem"
    certificate.write_text(TEST_CERTIFICATE)
    key = tmp_path / "key.pem"
    key.write_text(TEST_PRIVATE_KEY)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # trust the test certificate only
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with LocalServer(tls=context) as test_server:
        yield test_server


def test_https_pinned_address_verified_against_the_url_name(
    tls_server: LocalServer, connections: list, fake_dns: dict
) -> None:
    fake_dns["pinned.test"] = [[SERVER_ADDRESS]]
    url = f"https://pinned.test:{tls_server.server_port}/image.png"
    assert fetch_url(url, "ImageUrl", MAX_BYTES, allowed_hosts=ALLOWED) == IMAGE
    assert tls_server.seen() == [("/image.png", f"pinned.test:{tls_server.server_port}", None)]


def test_https_certificate_for_another_name_refused(tls_server: LocalServer, connections: list, fake_dns: dict) -> None:
    fake_dns["impostor.test"] = [[SERVER_ADDRESS]]
    error = refusal(f"https://impostor.test:{tls_server.server_port}/image.png")
    assert error.code == "InvalidImage.Download" and "ImageUrl" in error.message
    assert tls_server.seen() == []


def test_parse_allowed_hosts() -> None:
    assert parse_allowed_hosts(" ls.internal, 10.0.0.0/8,,127.0.0.2 , [::1] ") == [
        "ls.internal",
        "10.0.0.0/8",
        "127.0.0.2",
        "::1",
    ]
    assert parse_allowed_hosts("") == []
    with pytest.raises(ValueError, match="10.0.0.0/33"):
        parse_allowed_hosts("10.0.0.0/33")


def test_public_addresses_pass_the_check() -> None:
    import ipaddress

    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"):
        assert fetch._forbidden_reason(ipaddress.ip_address(public)) is None, public


def test_refused_connection_reported_as_download_error(connections: list) -> None:
    with socket.socket() as probe:
        probe.bind((SERVER_ADDRESS, 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe is closed
    started = time.monotonic()
    error = refusal(f"http://{SERVER_ADDRESS}:{closed_port}/image.png", connect_timeout=30)
    assert error.code == "InvalidImage.Download" and "could not connect" in error.message
    # Refused at once, not retried until the connect timeout ran out.
    assert time.monotonic() - started < 30 / 2


def test_a_malformed_url_is_a_client_error_not_a_crash():
    from ml_backend.errors import ClientError
    from ml_backend.io.fetch import fetch_url

    with pytest.raises(ClientError, match="malformed"):
        fetch_url("http://[::1", "ImageUrl", 1000)


# ------------------------------------------------------------------ origin rules (issue 19)


def test_origin_rule_opens_one_origin_for_its_paths_only(server: LocalServer, connections: list) -> None:
    rule = OriginRule("http", SERVER_ADDRESS, server.server_port, ("/data/",))
    url = f"{server.base}/data/upload/1/image.png"
    assert fetch_url(url, "task.data", MAX_BYTES, allowed_hosts=(), origin_rules=[rule]) == IMAGE
    # The same origin's other paths, and climbing out of the prefix, stay refused.
    for path in ("/image.png", "/data/../image.png", "/data/%2e%2e%2fimage.png"):
        error = refusal(f"{server.base}{path}", allowed_hosts=(), origin_rules=[rule])
        assert error.code == "InvalidImage.Url" and "loopback" in error.message, path
    # So does another port of the same host.
    error = refusal(f"http://{SERVER_ADDRESS}:{server.server_port + 1}/data/upload/1/image.png",
                    allowed_hosts=(), origin_rules=[rule])
    assert error.code == "InvalidImage.Url"
    assert connections == [(SERVER_ADDRESS, server.server_port)]


def test_failures_through_an_origin_rule_read_alike(server: LocalServer, connections: list) -> None:
    # A repointed Label Studio origin must not make a port scanner: closed port, error
    # status and a protocol error all read the same (the status stays an attribute).
    with socket.socket() as probe:
        probe.bind((SERVER_ADDRESS, 0))
        closed_port = probe.getsockname()[1]
    messages = []
    for port, path in ((closed_port, "/data/x.png"), (server.server_port, "/missing")):
        rule = OriginRule("http", SERVER_ADDRESS, port, ("/",))
        error = refusal(f"http://{SERVER_ADDRESS}:{port}{path}", allowed_hosts=(), origin_rules=[rule])
        assert error.code == "InvalidImage.Download"
        messages.append(error.message)
        if port == server.server_port:
            assert error.upstream_status == 404  # type: ignore[attr-defined]
    assert messages[0] == messages[1], messages
    assert str(closed_port) not in messages[0] and "404" not in messages[1]
