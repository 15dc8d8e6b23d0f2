"""The tools' commands of ``scribble-seg``: bench, eval and soak.

``scribble-seg`` finds this module through the ``scribble_seg.commands`` entry point,
so the product's CLI never imports a tool. Heavy modules load only when their command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.refine import REFINE_OPTIONS
from .evaluation.cli import add_eval_parser
from .soak import add_soak_parser


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    report = run_bench(args.engine, args.size, args.repeats, args.refine, args.random_weights)
    if not args.no_http:
        from .bench import SIZES
        from .bench_http import run_http_bench

        # Served engines need their weights here: random-weight stand-ins are in-process only.
        served = [name for name in report["engines"] if name not in report.get("random_weights", [])]
        report["http"] = run_http_bench(
            served, {name: SIZES[name] for name in args.size}, args.http_rounds, args.refine, args.redis_url
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds bench, eval and soak to ``scribble-seg``'s subcommands."""
    bench = commands.add_parser("bench", help="time each stage of a round per engine and image size")
    bench.add_argument("--engine", nargs="+", help="engines to time (default: every one whose weights are here)")
    bench.add_argument("--size", nargs="+", default=["640x480", "1024x768", "4096x4096"],
                       choices=["640x480", "1024x768", "4096x4096"])
    bench.add_argument("--repeats", type=int, default=10, help="rounds per stage (p50, p95 over them)")
    bench.add_argument("--refine", choices=("auto", *REFINE_OPTIONS), default="auto",
                       help="auto: each engine's own (maskrefine for GrabCut engines, edgerefine for the SAM family)")
    bench.add_argument("--random-weights", action="store_true",
                       help="time sam (SAM_MODEL_TYPE) and mobile_sam with random weights when their checkpoints are missing")
    bench.add_argument("--json", metavar="OUT.json", help="write every figure here")
    bench.add_argument("--no-http", action="store_true",
                       help="skip timing /predict through HTTP (1 worker, then 2 workers sharing Redis)")
    bench.add_argument("--http-rounds", type=int, default=20, metavar="N", help="warm /predict rounds per server")
    bench.add_argument("--redis-url", metavar="URL",
                       help="Redis for the two-worker run (default: start redis-server on a free port)")
    bench.set_defaults(handler=_bench)
    add_eval_parser(commands)
    add_soak_parser(commands)
