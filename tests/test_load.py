"""Load: simulated annotators against a real `scribble-seg serve` with two worker processes.

A CI-sized run of `scribble-seg soak` (4 annotators x 3 rounds, small images) through
its own command-line parser, against a server started here as a subprocess. The long
version is `scribble-seg soak --annotators 16 --rounds 10 --workers 2 --duration 300`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_backend.tools import soak

ANNOTATORS, ROUNDS, WORKERS = 4, 3, 2
# Two grabcut workers idle at about 0.3 GB together with their parent; a run that
# leaked per request, or kept every image, would pass this.
RSS_LIMIT_MB = 1500
RSS_GROWTH_LIMIT_MB = 400


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[soak.ServerProcess, int, str]]:
    images_port, token = soak.free_port(), secrets.token_hex(16)
    environment = {
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{images_port}",
        "LABEL_STUDIO_API_KEY": token,
        "REFINE": "none",
        "REDIS_URL": "",
    }
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(soak.running_server(WORKERS, environment, prefix="test-load-"))
        except RuntimeError as error:
            pytest.fail(f"cannot start scribble-seg serve: {error}")
        yield server, images_port, token


def soak_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scribble-seg")
    soak.add_soak_parser(parser.add_subparsers(dest="command", required=True))
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


def test_annotators_in_parallel_get_every_answer_with_bounded_memory(
    served: tuple[soak.ServerProcess, int, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, images_port, token = served
    figures_path = tmp_path / "soak.json"
    status = soak_main([
        "soak", "--url", server.url, "--images-port", str(images_port), "--token", token,
        "--annotators", str(ANNOTATORS), "--rounds", str(ROUNDS), "--image-size", "160x120",
        "--timeout", "60", "--json", str(figures_path),
    ])
    printed = capsys.readouterr().out
    figures = json.loads(figures_path.read_text())
    assert status == 0, printed
    assert figures["errors"] == 0, figures["error_examples"]
    assert figures["requests"] == ANNOTATORS * (ROUNDS + 1)
    assert figures["latency_ms"]["open"]["n"] == ANNOTATORS
    for round_index in range(1, ROUNDS + 1):
        assert figures["latency_ms"][f"round_{round_index}"]["n"] == ANNOTATORS
    assert 0 < figures["latency_ms"]["all_rounds"]["p50"] <= figures["latency_ms"]["all_rounds"]["p95"]
    # Every click came back as the object (the scenes are easy; a wrong answer is a bug).
    assert figures["mean_iou"] >= 0.8
    # The server's memory is the parent plus every worker, summed from /proc.
    rss = figures["rss"]
    assert rss["processes"] == WORKERS + 1
    assert 50 < rss["start_mb"] <= rss["peak_mb"] < RSS_LIMIT_MB
    assert rss["end_mb"] - rss["start_mb"] < RSS_GROWTH_LIMIT_MB
    assert "p95 ms" in printed and "errors 0" in printed
    # Images were fetched from the Label Studio stand-in with its token, not read elsewhere.
    assert figures["label_studio_image_requests"] >= 1
    assert server.process.poll() is None
    assert token not in server.log()


def test_soak_refuses_servers_off_loopback_and_unbounded_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert soak_main(["soak", "--url", "http://192.0.2.10:9090", "--images-port", "1", "--token", "t"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert soak_main(["soak", "--annotators", "500"]) == 2
    assert "--annotators" in capsys.readouterr().err
    assert soak_main(["soak", "--duration", "999999"]) == 2
    assert "--duration" in capsys.readouterr().err
    assert soak_main(["soak", "--url", "http://127.0.0.1:9"]) == 2
    assert "--images-port" in capsys.readouterr().err
