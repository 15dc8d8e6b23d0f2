"""``scribble-seg``: segment images from the shell, list engines, fetch weights, serve."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from .core.compose import RETURN_FORMS
from .core.refine import REFINE_OPTIONS
from .engine_registry import CHECKPOINTS, ENGINES, SAM, create_engine, engine_catalog, install_command
from .errors import ApiError, ClientError, ErrorCode, ScribbleSegError, invalid_parameter
from .settings import get_settings


#: Entry-point group through which the tools package adds its commands.
TOOL_COMMANDS_GROUP = "scribble_seg.commands"

#: Which extra brings each optional package (pyproject.toml's optional-dependencies); the
#: engines' packages are the engine registry's.
EXTRA_OF_PACKAGE = {
    "httpx": "tools", "matplotlib": "tools", "label_studio_sdk": "tools", "tqdm": "tools",
    **{module: spec.extra for spec in ENGINES.values() if spec.extra for module in spec.modules},
}


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise invalid_parameter(field, f"cannot read {path}: {error.strerror}") from None


def _segment(args: argparse.Namespace) -> int:
    from .core.prompts import decode_integrated_mask
    from .core.segmenter import Segmenter
    from .cutout import CutoutOptions, build_prompts, cut_out
    from .io.images import IMAGE_MAX_BYTES, MASK_MAX_BYTES, decode_image, decode_mask

    options = CutoutOptions(args.return_form, args.format.upper(), args.feathering, args.refine)
    if options.encoded_format != options.return_format:
        # The API serves rgb_alpha as PNG whatever ReturnFormat says; a file the user
        # named for JPG must not silently hold a PNG.
        raise ClientError(
            ErrorCode.INVALID_PARAMETER,
            "--format: JPG cannot carry alpha: use --return-form white_background or only_alpha, or PNG",
        )
    image = decode_image(_read(args.image, "IMAGE"), "IMAGE", IMAGE_MAX_BYTES)
    shape = image.shape[:2]

    def stroke_map(path: str | None, field: str) -> np.ndarray | None:
        if path is None:
            return None
        return decode_mask(_read(path, field), field, shape, MASK_MAX_BYTES) > 0

    positive = stroke_map(args.positive, "--positive")
    negative = stroke_map(args.negative, "--negative")
    current_mask = None
    if args.scribbles:
        scribbles = decode_mask(_read(args.scribbles, "--scribbles"), "--scribbles", shape, MASK_MAX_BYTES)
        positive = (scribbles == 255) | (positive if positive is not None else False)
        negative = (scribbles == 128) | (negative if negative is not None else False)
    if args.mask:
        current_mask = decode_mask(_read(args.mask, "--mask"), "--mask", shape, MASK_MAX_BYTES) >= 128
    if args.integrated:
        integrated = decode_mask(
            _read(args.integrated, "--integrated"), "--integrated", shape, MASK_MAX_BYTES, channels="rgb"
        )
        current_mask, integrated_positive, integrated_negative = decode_integrated_mask(integrated)
        positive = integrated_positive if positive is None else positive | integrated_positive
        negative = integrated_negative if negative is None else negative | integrated_negative

    prompts = build_prompts(image, positive, negative, current_mask, positive_field="--positive")
    segmenter = Segmenter(create_engine(args.engine))
    result = cut_out(segmenter, image, prompts, options)
    try:
        Path(args.output).write_bytes(result.content)
    except OSError as error:
        raise invalid_parameter("-o", f"cannot write {args.output}: {error.strerror}") from None
    object_share = float(result.mask.mean())
    print(
        f"{args.output}: {image.shape[1]}x{image.shape[0]} {args.return_form} {options.encoded_format}, "
        f"object {object_share:.1%} of the image, engine {segmenter.engine.name}, "
        f"{sum(result.timings.values()):.2f} s"
    )
    return 0


def _engines(args: argparse.Namespace) -> int:
    settings = get_settings()
    rows = engine_catalog(settings)
    width = max(len(row.name) for row in rows)
    for row in rows:
        state = "ready" if row.available else "missing"
        default = " (default)" if row.name == settings.ENGINE else ""
        needs = f"; needs: {row.needs}" if row.needs else ""
        print(f"{row.name:<{width}}  {state:<7}  {row.description}{default}; weights: {row.weights}{needs}")
    return 0


def _download(args: argparse.Namespace) -> int:
    try:
        from .weights import CheckpointDownloadError, ChecksumMismatch, download_checkpoint
    except ModuleNotFoundError as error:
        # The checkpoints are for the SAM family only, and so is the progress bar's package.
        raise invalid_parameter("download", f"{error.name} is missing: {install_command(SAM.extra or '')}") from None

    settings = get_settings()
    destination = Path(args.dir) if args.dir else settings.MODEL_DIR
    try:
        path = download_checkpoint(args.name, destination, url=args.url, sha256=args.sha256)
    except (CheckpointDownloadError, ChecksumMismatch, ValueError) as error:
        raise ClientError(ErrorCode.INVALID_PARAMETER, f"download {args.name}: {error}") from None
    print(f"{args.name}: {path}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from rq import SimpleWorker

    from .server.precompute import QUEUE_NAME
    from .server.redis_cache import connect_redis

    settings = get_settings()
    if not settings.REDIS_URL:
        raise invalid_parameter("REDIS_URL", "the worker takes its jobs from Redis; set REDIS_URL")
    # SimpleWorker runs jobs in this process, so the model is loaded once, not per job.
    worker = SimpleWorker([QUEUE_NAME], connection=connect_redis(settings.REDIS_URL))
    worker.work(burst=args.burst)
    return 0


def _warmup(args: argparse.Namespace) -> int:
    from label_studio_sdk import LabelStudio
    from tqdm import tqdm

    from .jobs import embed_image
    from .labelstudio.config import parse_scribble_config

    settings = get_settings()
    url = args.url or settings.LABEL_STUDIO_URL
    api_key = args.api_key or settings.LABEL_STUDIO_API_KEY
    if not url or not api_key:
        raise ClientError(
            ErrorCode.INVALID_PARAMETER, "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or --url, --api-key) are needed"
        )
    if not settings.REDIS_URL:
        print("scribble-seg: warning: REDIS_URL is not set; the embeddings stay in this process only", file=sys.stderr)
    client = LabelStudio(base_url=url, api_key=api_key)
    project = client.projects.get(id=args.project)
    config = parse_scribble_config(project.label_config, negative_labels=settings.NEGATIVE_LABELS)
    tasks = list(client.tasks.list(project=args.project, page_size=100))
    failures = 0
    for task in tqdm(tasks, desc=f"project {args.project}", unit="task"):
        image_url = (task.data or {}).get(config.image_value_key)
        try:
            embed_image(image_url, url, api_key, task.id)
        except ApiError as error:
            failures += 1
            tqdm.write(f"task {task.id}: {error.message}")
    print(f"project {args.project}: {len(tasks) - failures} of {len(tasks)} embeddings ready")
    return 0 if failures == 0 else 1


def _serve(args: argparse.Namespace) -> int:
    from .server.run import serve

    return serve(host=args.host, port=args.port, workers=args.workers)


def _add_tool_commands(commands: argparse._SubParsersAction) -> None:
    # Tools (bench, eval, soak) register through an entry point: the product never imports them.
    for entry in entry_points(group=TOOL_COMMANDS_GROUP):
        entry.load()(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scribble-seg", description="Scribble segmentation: strokes in, the object's mask out."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser(
        "segment",
        help="cut an object out of an image from stroke images",
        description="Stroke images: any non-zero pixel is a stroke. --scribbles takes one image "
        "with 255 = positive and 128 = negative.",
    )
    segment.add_argument("image", help="image file (JPG, PNG, BMP, WEBP; 32 to 4096 px per side)")
    segment.add_argument("--positive", metavar="P.png", help="strokes over the object")
    segment.add_argument("--negative", metavar="N.png", help="strokes over what is not the object")
    segment.add_argument("--scribbles", metavar="S.png", help="both kinds in one image: 255 positive, 128 negative")
    current = segment.add_mutually_exclusive_group()
    current.add_argument("--mask", metavar="M.png", help="current mask (>= 128 is the object)")
    current.add_argument("--integrated", metavar="I.png", help="R = current mask, G = positive, B = negative")
    segment.add_argument("--engine", choices=tuple(ENGINES), help="engine (see 'scribble-seg engines'; default: ENGINE)")
    segment.add_argument("--return-form", choices=RETURN_FORMS, default="rgb_alpha")
    segment.add_argument("--format", choices=("PNG", "JPG", "png", "jpg"), default="PNG")
    segment.add_argument("--feathering", action=argparse.BooleanOptionalAction, default=True, help="soft edge")
    segment.add_argument("--refine", choices=REFINE_OPTIONS, default="maskrefine")
    segment.add_argument("-o", "--output", required=True, metavar="OUT", help="result image path")
    segment.set_defaults(handler=_segment)

    engines = commands.add_parser("engines", help="list engines and whether their weights are here")
    engines.set_defaults(handler=_engines)

    download = commands.add_parser("download", help="download and verify a checkpoint into MODEL_DIR")
    download.add_argument("name", help=f"a checkpoint ({', '.join(CHECKPOINTS)}) or, with --url, any name")
    download.add_argument("--dir", help="destination folder (default: MODEL_DIR)")
    download.add_argument("--url", help="download from this URL instead of the official one")
    download.add_argument("--sha256", help="expected checksum (default: the official one)")
    download.set_defaults(handler=_download)

    worker = commands.add_parser("worker", help="run background embedding jobs from Redis (RQ)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=_worker)

    warmup = commands.add_parser("warmup", help="compute the embeddings of every task of a Label Studio project")
    warmup.add_argument("--project", type=int, required=True, help="Label Studio project id")
    warmup.add_argument("--url", help="Label Studio URL (default: LABEL_STUDIO_URL)")
    warmup.add_argument("--api-key", help="Label Studio token (default: LABEL_STUDIO_API_KEY)")
    warmup.set_defaults(handler=_warmup)

    serve = commands.add_parser("serve", help="run the HTTP server (Label Studio backend and scribble API)")
    serve.add_argument("--host", default=None, help="default: HOST (0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="default: PORT (9090)")
    serve.add_argument("--workers", type=int, default=None, help="default: WORKERS")
    serve.set_defaults(handler=_serve)

    _add_tool_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ScribbleSegError as error:  # bad input, settings, engines, weights: the message says what to fix
        print(f"scribble-seg: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        # A command of an extra run on the base install: name the extra, not a traceback.
        extra = EXTRA_OF_PACKAGE.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"scribble-seg: error: {args.command} needs {error.name}: {install_command(extra)}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
