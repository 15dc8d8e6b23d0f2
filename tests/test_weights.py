"""Checkpoint downloads against a local HTTP server: verify, refuse, skip, resume."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from ml_backend import weights
from ml_backend.weights import (
    KNOWN_CHECKPOINTS,
    CheckpointDownloadError,
    ChecksumMismatch,
    download_checkpoint,
    known_checkpoint,
    weights_status,
)

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several chunks
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer:
    """Serves PAYLOAD at /weights.pth with HTTP ranges; can ignore ranges or cut the body short."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str | None]] = []
        self.honour_ranges = True
        self.cut_after: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path != "/weights.pth":
                    self.send_error(404, "no such file")
                    return
                start = 0
                requested = self.headers.get("Range")
                if requested and server.honour_ranges:
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body = body[: server.cut_after]
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    file_server = FileServer()
    yield file_server
    file_server.close()


def fetch(server: FileServer, dest: Path, sha256: str | None = PAYLOAD_SHA256) -> Path:
    return download_checkpoint("test-model", dest, url=server.url, sha256=sha256, progress=False, timeout=10)


def test_download_verifies_and_renames_into_place(server, tmp_path):
    path = fetch(server, tmp_path)
    assert path == tmp_path / "weights.pth"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "weights.pth.part").exists()
    assert len(server.requests) == 1 and server.requests[0]["range"] is None


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    with pytest.raises(ChecksumMismatch, match="SHA-256"):
        fetch(server, tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_verified_file_is_kept_without_any_request(server, tmp_path):
    fetch(server, tmp_path)
    mtime = (tmp_path / "weights.pth").stat().st_mtime_ns
    again = fetch(server, tmp_path)
    assert again.read_bytes() == PAYLOAD
    assert len(server.requests) == 1
    assert again.stat().st_mtime_ns == mtime


def test_a_corrupt_file_is_replaced_by_a_verified_copy(server, tmp_path):
    (tmp_path / "weights.pth").write_bytes(b"not the model")
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    half = len(PAYLOAD) // 2
    (tmp_path / "weights.pth.part").write_bytes(PAYLOAD[:half])
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == f"bytes={half}-"


def test_a_server_ignoring_ranges_restarts_the_download(server, tmp_path):
    server.honour_ranges = False
    (tmp_path / "weights.pth.part").write_bytes(b"x" * 1000)
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_a_complete_partial_file_is_verified_and_renamed(server, tmp_path):
    (tmp_path / "weights.pth.part").write_bytes(PAYLOAD)
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == f"bytes={len(PAYLOAD)}-"


def test_a_cut_connection_keeps_the_part_and_the_next_call_finishes_it(server, tmp_path):
    server.cut_after = 300_000
    with pytest.raises(CheckpointDownloadError, match="resume"):
        fetch(server, tmp_path)
    assert (tmp_path / "weights.pth.part").stat().st_size == 300_000
    assert not (tmp_path / "weights.pth").exists()
    server.cut_after = None
    path = fetch(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=300000-"


def test_without_a_checksum_the_file_is_accepted_as_served(server, tmp_path):
    path = fetch(server, tmp_path, sha256=None)
    assert path.read_bytes() == PAYLOAD


def test_http_errors_and_unknown_names(server, tmp_path):
    with pytest.raises(CheckpointDownloadError, match="404"):
        download_checkpoint("x", tmp_path, url=server.url.replace("weights", "missing"), progress=False)
    with pytest.raises(ValueError, match="vit_b"):
        download_checkpoint("not-a-model", tmp_path)


def test_known_checkpoints_download_to_their_names_with_their_checksums(server, tmp_path, monkeypatch):
    # The registry's URL is replaced by the local one; the name, file name and checksum are the registry's.
    monkeypatch.setitem(
        KNOWN_CHECKPOINTS,
        "vit_b",
        weights.KnownCheckpoint(
            name="vit_b",
            engine="sam",
            setting="SAM_CHECKPOINT",
            filename="sam_vit_b_01ec64.pth",
            url=server.url,
            sha256=PAYLOAD_SHA256,
        ),
    )
    path = download_checkpoint("vit_b", tmp_path, progress=False)
    assert path.name == "sam_vit_b_01ec64.pth" and path.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumMismatch):
        download_checkpoint("sam", tmp_path / "other", sha256="1" * 64, progress=False)


def test_registry_matches_the_engines_download_hints():
    from ml_backend.core.engines.sam_family import OFFICIAL_CHECKPOINT_URLS

    for name, url in OFFICIAL_CHECKPOINT_URLS.items():
        assert known_checkpoint(name).url == url
    assert known_checkpoint("vit_t").name == "mobile_sam"
    for checkpoint in KNOWN_CHECKPOINTS.values():
        assert checkpoint.sha256 is None or len(checkpoint.sha256) == 64


def test_weights_status_lists_each_engine(tmp_path):
    present = tmp_path / "sam_vit_b_01ec64.pth"
    present.write_bytes(b"weights")
    rows = weights_status({"sam_checkpoint": str(present), "mobile_sam_checkpoint": str(tmp_path / "none.pt")})
    by_engine = {row.engine: row for row in rows}
    assert by_engine["sam"] == (("sam", True, str(present)))
    assert by_engine["mobile_sam"].present is False
    assert by_engine["litemedsam"].present is True and by_engine["litemedsam"].path.endswith("lite_medsam.pth")
    from_object = weights_status(SimpleNamespace(sam_checkpoint=None, mobile_sam_checkpoint=present))
    assert [(row.engine, row.present) for row in from_object][:2] == [("sam", False), ("mobile_sam", True)]
    from_environment_names = weights_status({"SAM_CHECKPOINT": str(present)})
    assert from_environment_names[0].present


def test_the_download_command_verifies_and_reports(tmp_path, capsys):
    """`scribble-seg download` against a local server: a good file lands, a bad checksum is an error."""
    import hashlib
    import http.server
    import threading

    from ml_backend.cli import main

    payload = b"checkpoint bytes " * 1000

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/sam_vit_b_01ec64.pth"
    try:
        good = hashlib.sha256(payload).hexdigest()
        assert main(["download", "vit_b", "--dir", str(tmp_path), "--url", url, "--sha256", good]) == 0
        assert (tmp_path / "sam_vit_b_01ec64.pth").read_bytes() == payload
        assert main(["download", "vit_l", "--dir", str(tmp_path / "bad"), "--url", url, "--sha256", "0" * 64]) == 2
        assert "download vit_l" in capsys.readouterr().err
    finally:
        server.shutdown()
