"""``scribble-seg soak``: its arguments, and a server of its own when no ``--url`` is given."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from ..ports import LOOPBACK_HOST, free_port
from .config import MAX_ANNOTATORS, SoakConfig
from .driver import require_loopback, run_soak
from .report import format_report
from .server_process import ServerProcess, running_server


@contextmanager
def soak_server(workers: int, images_port: int, token: str, extra_env: dict[str, str]) -> Iterator[ServerProcess]:
    """A ``scribble-seg serve`` of our own, reading images from the stand-in on ``images_port``."""
    environment = {"LABEL_STUDIO_URL": f"http://{LOOPBACK_HOST}:{images_port}", "LABEL_STUDIO_API_KEY": token}
    environment.update(extra_env)
    with running_server(workers, environment, prefix="scribble-soak-") as server:
        yield server


def _image_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, not {text!r}")
    return int(width), int(height)


def add_soak_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    soak = subparsers.add_parser(
        "soak",
        help="simulate annotators against a server: latency per round, errors, server memory",
        description="Each annotator opens a task, then clicks --rounds times with strokes that move a little. "
        "Without --url a server with --workers workers is started on loopback for the run.",
    )
    soak.add_argument("--url", help="a running server on loopback; its LABEL_STUDIO_URL must be "
                      "http://127.0.0.1:<--images-port> and LABEL_STUDIO_API_KEY the --token")
    soak.add_argument("--workers", type=int, default=2, help="workers of the server started here (default 2)")
    soak.add_argument("--annotators", type=int, default=4, help=f"concurrent annotators, 1..{MAX_ANNOTATORS}")
    soak.add_argument("--rounds", type=int, default=10, help="clicks per task after opening it")
    soak.add_argument("--duration", type=float, default=0.0,
                      help="seconds to keep going with new tasks (0: one task per annotator)")
    soak.add_argument("--image-size", type=_image_size, default=(320, 240), metavar="WxH")
    soak.add_argument("--images", type=int, default=0, help="distinct images (default: two per annotator)")
    soak.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    soak.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests")
    soak.add_argument("--redis-url", help="REDIS_URL for the server started here")
    soak.add_argument("--engine", help="ENGINE for the server started here (default: ENGINE)")
    soak.add_argument("--images-port", type=int, default=0, help="port of the Label Studio stand-in (with --url)")
    soak.add_argument("--token", help="token the stand-in asks for (with --url: the server's LABEL_STUDIO_API_KEY)")
    soak.add_argument("--seed", type=int, default=0)
    soak.add_argument("--json", metavar="OUT.json", help="write every figure here")
    soak.set_defaults(handler=run_soak_command)
    return soak


def run_soak_command(args: argparse.Namespace) -> int:
    config = SoakConfig(
        annotators=args.annotators,
        rounds=args.rounds,
        duration_s=args.duration,
        image_width=args.image_size[0],
        image_height=args.image_size[1],
        images=args.images,
        timeout_s=args.timeout,
        max_requests=args.max_requests,
        seed=args.seed,
    )
    try:
        config.check()
        if args.url:
            require_loopback(args.url)
            if not args.images_port or not args.token:
                raise ValueError("--url needs --images-port and --token: the server must know where images come from")
    except ValueError as error:
        print(f"scribble-seg soak: error: {error}", file=sys.stderr)
        return 2
    token = args.token or secrets.token_hex(16)
    if args.url:
        port = urlsplit(args.url).port or 80
        report = run_soak(args.url, port, config, args.images_port, token,
                          server_info={"url": args.url, "started_here": False})
    else:
        if not 1 <= args.workers <= 64:
            print("scribble-seg soak: error: --workers must be 1..64", file=sys.stderr)
            return 2
        images_port = args.images_port or free_port()
        extra = {key: value for key, value in (("REDIS_URL", args.redis_url), ("ENGINE", args.engine)) if value}
        with soak_server(args.workers, images_port, token, extra) as server:
            info = {"url": server.url, "started_here": True, "workers": args.workers, "redis": bool(args.redis_url)}
            report = run_soak(server.url, server.port, config, images_port, token, server_info=info)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(report.to_json())
        print(f"wrote {args.json}")
    return 0 if report.errors == 0 else 1
