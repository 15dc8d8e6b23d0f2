"""Checkpoint downloads against a local HTTP server: verify, refuse, skip, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path
from dataclasses import replace

import pytest

from ml_backend.engine_registry import CHECKPOINTS, ENGINES
from ml_backend.tools.loopback_host import Exchange, LoopbackHost
from ml_backend.weights import CheckpointDownloadError, ChecksumMismatch, download_checkpoint, known_checkpoint

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several chunks
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer:
    """Serves PAYLOAD at /weights.pth with HTTP ranges; can ignore ranges or cut the body short."""

    def __init__(self) -> None:
        self.honour_ranges = True
        self.cut_after: int | None = None
        self.host = LoopbackHost().start()
        self.host.routes["/weights.pth"] = self._serve
        self.url = self.host.url("/weights.pth")

    @property
    def requests(self) -> list[dict[str, str | None]]:
        return [{"path": request.path, "range": request.header("Range")} for request in self.host.requests]

    def _serve(self, exchange: Exchange) -> None:
        start = 0
        requested = exchange.headers.get("Range")
        if requested and self.honour_ranges:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                exchange.reply(416, headers={"Content-Range": f"bytes */{len(PAYLOAD)}"})
                return
            exchange.send_response(206)
            exchange.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            exchange.send_response(200)
        body = PAYLOAD[start:]
        exchange.send_header("Content-Length", str(len(body)))
        exchange.end_headers()
        exchange.wfile.write(body if self.cut_after is None else body[: self.cut_after])

    def close(self) -> None:
        self.host.stop()


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
    monkeypatch.setitem(CHECKPOINTS, "vit_b", replace(CHECKPOINTS["vit_b"], url=server.url, sha256=PAYLOAD_SHA256))
    path = download_checkpoint("vit_b", tmp_path, progress=False)
    assert path.name == "sam_vit_b_01ec64.pth" and path.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumMismatch):
        download_checkpoint("sam", tmp_path / "other", sha256="1" * 64, progress=False)


def test_every_checkpoint_is_found_by_its_names_and_belongs_to_one_engine():
    owners = {checkpoint.name: spec.name for spec in ENGINES.values() for checkpoint in spec.checkpoints}
    assert owners == {"vit_b": "sam", "vit_l": "sam", "vit_h": "sam", "mobile_sam": "mobile_sam"}
    for checkpoint in CHECKPOINTS.values():
        assert checkpoint.sha256 is None or len(checkpoint.sha256) == 64
        assert checkpoint.url.endswith("/" + checkpoint.filename)
        for name in (checkpoint.name, *checkpoint.aliases, checkpoint.name.upper()):
            assert known_checkpoint(name) is checkpoint
    assert known_checkpoint("vit_t").name == "mobile_sam" and known_checkpoint("sam").name == "vit_b"


def test_a_missing_checkpoint_names_the_registry_download(tmp_path):
    """The message an engine gives without its weights points at the registry's file and URL."""
    from ml_backend.core.engine import EngineUnavailable
    from ml_backend.core.engines.sam_checkpoints import load_mobile_sam, load_sam

    for model_type in ("vit_b", "vit_h"):
        with pytest.raises(EngineUnavailable) as error:
            load_sam(model_type, tmp_path / "absent.pth")
        assert CHECKPOINTS[model_type].url in str(error.value)
        assert f"scribble-seg download {model_type}" in str(error.value)
    with pytest.raises(EngineUnavailable) as error:
        load_mobile_sam(tmp_path / "absent.pt")
    assert CHECKPOINTS["mobile_sam"].url in str(error.value)


def test_the_download_command_verifies_and_reports(tmp_path, capsys):
    """`scribble-seg download` against a local server: a good file lands, a bad checksum is an error."""
    from ml_backend.cli import main

    payload = b"checkpoint bytes " * 1000

    host = LoopbackHost().start()
    url = host.add("/sam_vit_b_01ec64.pth", payload)
    try:
        good = hashlib.sha256(payload).hexdigest()
        assert main(["download", "vit_b", "--dir", str(tmp_path), "--url", url, "--sha256", good]) == 0
        assert (tmp_path / "sam_vit_b_01ec64.pth").read_bytes() == payload
        assert main(["download", "vit_l", "--dir", str(tmp_path / "bad"), "--url", url, "--sha256", "0" * 64]) == 2
        assert "download vit_l" in capsys.readouterr().err
    finally:
        host.stop()
