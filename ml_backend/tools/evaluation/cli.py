"""``scribble-seg eval``: the scribble benchmark from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ...core.refine import REFINE_OPTIONS
from .runner import NO_REFINE, Contender, as_segment_function, format_table, run_benchmark

REFINE_CHOICES = REFINE_OPTIONS


def _positive_int(field: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}: {text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{field}: must be at least 1, got {value}")
        return value

    return parse


def _iou_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--stop-at: {text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--stop-at: must be an IoU in (0, 1], got {value}")
    return value


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``eval`` command to ``scribble-seg``'s subcommands."""
    parser = subparsers.add_parser(
        "eval",
        help="benchmark engines with a robot annotator (mIoU per stroke, NoS@85/90)",
        description="Round 1 uses the real scribbles of --scribbles (or one robot stroke inside the "
        "object); each later round the robot adds one corrective stroke on the largest error. "
        "Scores: IoU and boundary IoU without void pixels, mIoU per round, mean strokes to reach "
        "IoU 0.85 / 0.90 (max interactions when never).",
    )
    parser.add_argument("--dataset", required=True, metavar="DIR", help="folder with images/, masks/ and optionally void/")
    parser.add_argument("--scribbles", metavar="SUBDIR", help="subfolder of real first-round scribbles (255 positive, 128 negative)")
    parser.add_argument(
        "--engine", nargs="+", action="extend", metavar="NAME",
        help="engines to compare (repeatable; default: ENGINE)",
    )
    parser.add_argument(
        "--refine", nargs="+", action="extend", choices=REFINE_CHOICES, metavar="{" + ",".join(REFINE_CHOICES) + "}",
        help="refine options to compare, each with every engine (default: none)",
    )
    parser.add_argument("--max-interactions", type=_positive_int("--max-interactions"), default=20, metavar="N")
    parser.add_argument("--limit", type=_positive_int("--limit"), metavar="N", help="only the first N samples (sorted by name)")
    parser.add_argument(
        "--stop-at", type=_iou_threshold, metavar="IOU",
        help="stop a sample once its IoU reaches this and carry it forward (faster; NoS above IOU is then meaningless)",
    )
    parser.add_argument(
        "--first-dab", action="store_true",
        help="round 1 is one positive dab off the object's centre, not the scribbles or the robot's line",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the summary and per-sample details here")
    parser.add_argument("--plot", metavar="OUT.png", help="save mIoU against strokes, one curve per engine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_eval_command)
    return parser


def _contenders(engine_names: list[str | None], refine_options: list[str]) -> list[Contender]:
    from ...core.segmenter import Segmenter
    from ...engine_registry import create_engine

    contenders = []
    for engine_name in engine_names:
        segmenter = Segmenter(create_engine(engine_name))
        name = segmenter.engine.name or (engine_name or "engine")
        for refine in refine_options:
            label = name if len(refine_options) == 1 and refine == NO_REFINE else f"{name}+{refine}"
            contenders.append(Contender(label, as_segment_function(segmenter, refine), engine=name, refine=refine))
    return contenders


def run_eval_command(args: argparse.Namespace) -> int:
    """Runs the benchmark for parsed ``eval`` arguments; prints the table. Returns the exit code."""
    from ...core.engine import EngineUnavailable
    from .datasets import DatasetError, discover_samples

    try:
        samples = discover_samples(args.dataset, args.scribbles)
    except DatasetError as error:
        print(f"scribble-seg eval: error: {error}", file=sys.stderr)
        return 2
    if args.limit is not None:
        samples = samples[: args.limit]

    engine_names: list[str | None] = list(dict.fromkeys(args.engine or [None]))
    refine_options = list(dict.fromkeys(args.refine or [NO_REFINE]))
    try:
        contenders = _contenders(engine_names, refine_options)
    except EngineUnavailable as error:
        print(f"scribble-seg eval: error: {error}", file=sys.stderr)
        return 2

    report = run_benchmark(
        samples,
        contenders,
        max_interactions=args.max_interactions,
        stop_at=args.stop_at,
        progress=not args.no_progress,
        description={"dataset": str(Path(args.dataset)), "scribbles": args.scribbles},
        first_dab=args.first_dab,
    )
    print(format_table(report))
    for skipped in report["skipped"]:
        print(f"skipped {skipped['name']} ({skipped['engine']}): {skipped['reason']}", file=sys.stderr)
    if args.json:
        json_path = Path(args.json)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=1))
        print(f"details: {json_path}")
    if args.plot:
        from .plot import plot_miou_curves

        start = " / a dab" if args.first_dab else f" / {args.scribbles}" if args.scribbles else " / robot start"
        title = Path(args.dataset).name + start
        print(f"plot: {plot_miou_curves(report, args.plot, title=title)}")
    return 0
