"""Task image references resolve to the URLs Label Studio serves them at, with the right token."""

from __future__ import annotations

import base64
import json

import pytest

from ml_backend.labelstudio.media_urls import MediaUrlError, authorization_headers, resolve_media_urls

LS = "http://ls.example:8080"
TOKEN = "abc123"


def _jwt() -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'user_id': 1})}.c2lnbmF0dXJl"


@pytest.mark.parametrize("reference", ["/data/upload/3/x.png", "upload/3/x.png", "/upload/3/x.png"])
def test_an_upload_tries_the_storage_proxy_then_the_older_upload_path(reference):
    media = resolve_media_urls(reference, LS + "/", TOKEN, 7)
    assert media.candidates == (
        f"{LS}/storage-data/uploaded/?filepath=upload/3/x.png",
        f"{LS}/data/upload/3/x.png",
    )
    assert media.headers == {"Authorization": f"Token {TOKEN}"}


def test_local_storage_and_storage_proxy_urls_go_to_label_studio():
    assert resolve_media_urls("/data/local-files/?d=dir/a.png", LS, TOKEN, 1).candidates == (
        f"{LS}/data/local-files/?d=dir/a.png",
    )
    assert resolve_media_urls("/storage-data/uploaded/?filepath=upload/1/a.png", LS, TOKEN, 1).candidates == (
        f"{LS}/storage-data/uploaded/?filepath=upload/1/a.png",
    )


def test_a_cloud_uri_is_presigned_by_label_studio_for_the_task():
    media = resolve_media_urls("s3://bucket/dir/a.png", LS, TOKEN, 42)
    encoded = base64.urlsafe_b64encode(b"s3://bucket/dir/a.png").decode()
    assert media.candidates == (f"{LS}/tasks/42/presign/?fileuri={encoded}",)
    with pytest.raises(MediaUrlError, match="task id"):
        resolve_media_urls("gs://bucket/a.png", LS, TOKEN, None)


def test_the_token_goes_only_to_label_studios_own_origin():
    assert resolve_media_urls(f"{LS}/data/upload/1/a.png", LS, TOKEN, 1).headers == {"Authorization": f"Token {TOKEN}"}
    elsewhere = resolve_media_urls("http://images.example/a.png", LS, TOKEN, 1)
    assert elsewhere.candidates == ("http://images.example/a.png",) and elsewhere.headers == {}
    other_port = resolve_media_urls("http://ls.example:9999/a.png", LS, TOKEN, 1)
    assert other_port.headers == {}


def test_a_personal_access_token_is_sent_as_bearer():
    token = _jwt()
    assert authorization_headers(token) == {"Authorization": f"Bearer {token}"}
    assert authorization_headers("not.a.jwt") == {"Authorization": "Token not.a.jwt"}
    assert authorization_headers(None) == {}


@pytest.mark.parametrize(
    ("reference", "label_studio_url", "reason"),
    [
        ("/data/upload/1/a.png", None, "LABEL_STUDIO_URL"),
        ("/data/local-files/?d=", LS, "names no file"),
        ("ftp://example/a.png", LS, "not an http"),
        ("/data/upload/1/a.png", "ls.example:8080", "must start with http"),
    ],
)
def test_an_unusable_reference_says_why(reference, label_studio_url, reason):
    with pytest.raises(MediaUrlError, match=reason):
        resolve_media_urls(reference, label_studio_url, TOKEN, 1)
