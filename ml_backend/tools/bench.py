"""``scribble-seg bench``: where a round's time goes, per engine and image size.

Stages are timed in one process on one synthetic scene per size (a textured
ellipse, strokes across it and around it): decode the image, embed it (cold),
decode prompts with the embedding cached (warm), refine, encode the mask as
Label Studio RLE and as PNG. ``warm_round`` is what an annotator waits for after
the first click; ``cold_round`` is what recomputing the embedding every round
(the official Label Studio SAM example across two images) would cost.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.engine import Embedding, Engine, EngineUnavailable
from ..core.prompts import Prompts, make_prompts
from ..core.refine import refine_mask
from ..core.segmenter import Segmenter
from ..io.images import decode_image, encode_image
from ..labelstudio.rle import encode_mask
from .bench_rle import benchmark_rle
from .latency import percentile

SIZES: dict[str, tuple[int, int]] = {"640x480": (480, 640), "1024x768": (768, 1024), "4096x4096": (4096, 4096)}


def bench_scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, Prompts]:
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (70, 100, 160)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 4, height // 4), 20, 0, 360, 1, -1)
    image[mask > 0] = (190, 90, 60)
    image += rng.normal(0, 12, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    thickness = max(3, int(0.01 * np.hypot(height, width)))
    positive = np.zeros((height, width), np.uint8)
    cv2.line(positive, (width // 2 - width // 8, height // 2), (width // 2 + width // 8, height // 2), 1, thickness)
    negative = np.zeros((height, width), np.uint8)
    margin = max(4, width // 40)
    cv2.rectangle(negative, (margin, margin), (width - margin, height - margin), 1, thickness)
    return image, make_prompts(image.shape, positive > 0, negative > 0)


@dataclass
class Timing:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return float(statistics.median(self.samples_ms))

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 0.95)


def time_calls(function: Callable[[], object], repeats: int) -> tuple[Timing, object]:
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - started) * 1000)
    return Timing(samples), result


def bench_engine(engine: Engine, size_name: str, repeats: int, refine: str) -> dict[str, float]:
    height, width = SIZES[size_name]
    refine = engine.refine_option(refine)
    image, prompts = bench_scene(height, width)
    # A photo arrives as JPEG (this noisy scene as PNG would pass the upload limit at 4096x4096).
    jpeg = encode_image(image, "JPEG")
    load, _ = time_calls(lambda: decode_image(jpeg, "ImageUrl"), max(1, repeats // 2))
    cold_repeats = 1 if engine.name != "grabcut" and size_name == "4096x4096" else min(2, repeats)
    embed, embedding = time_calls(lambda: engine.embed(image), cold_repeats)
    predict, prediction = time_calls(lambda: engine.predict(embedding, prompts), repeats)
    refined, mask = time_calls(lambda: refine_mask(image, prediction.mask, prompts, refine), repeats)
    rle, _ = time_calls(lambda: encode_mask(mask), repeats)
    png_out, _ = time_calls(lambda: encode_image(mask.astype(np.uint8) * 255, "PNG"), repeats)

    segmenter = Segmenter(engine)
    # The server hashes an image once, when it loads it, and passes the key on.
    image_key, _ = segmenter.embed(image)
    warm_round, _ = time_calls(
        lambda: encode_mask(segmenter.segment(image, prompts, refine=refine, image_key=image_key).mask), repeats
    )
    cold_round_ms = embed.p50 + warm_round.p50
    figures = {
        "load_ms_p50": load.p50, "load_ms_p95": load.p95,
        "embed_ms_p50": embed.p50, "embed_ms_p95": embed.p95,
        "predict_ms_p50": predict.p50, "predict_ms_p95": predict.p95,
        "refine_ms_p50": refined.p50, "refine_ms_p95": refined.p95,
        "rle_ms_p50": rle.p50, "rle_ms_p95": rle.p95,
        "png_ms_p50": png_out.p50, "png_ms_p95": png_out.p95,
        "warm_predict_ms_p50": warm_round.p50, "warm_predict_ms_p95": warm_round.p95,
        "cold_round_ms_p50": cold_round_ms,
        "speedup_vs_recompute": cold_round_ms / max(warm_round.p50, 1e-6),
    }
    figures.update(time_decoders(engine, embedding, prompts, repeats))
    return {"refine": refine, **{name: round(value, 2) for name, value in figures.items()}}


def time_decoders(engine: Engine, embedding: Embedding, prompts: Prompts, repeats: int) -> dict[str, float]:
    """For a SAM-family engine: segment-anything's MaskDecoder against the engine's, same inputs."""
    from ..core.engines.sam_family import SamFamilyEngine

    if not isinstance(engine, SamFamilyEngine):
        return {}
    import torch

    inputs = engine.decoder_inputs(embedding, prompts)
    if inputs is None:
        return {}
    features, sparse, dense, multimask = inputs
    with torch.inference_mode():
        image_pe = engine.model.prompt_encoder.get_dense_pe()
        reference, _ = time_calls(
            lambda: engine.model.mask_decoder(
                image_embeddings=features, image_pe=image_pe, sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=multimask,
            ),
            repeats,
        )
        ours, _ = time_calls(lambda: engine.decoder(features, sparse, dense, multimask), repeats)
    return {
        "mask_decoder_ms_p50": reference.p50,
        "engine_decoder_ms_p50": ours.p50,
        "decoder_speedup": reference.p50 / max(ours.p50, 1e-6),
    }


def engines_for_bench(names: list[str] | None, random_weights: bool) -> list[tuple[Engine, bool]]:
    """(engine, trained) for each engine to time; untrained ones stand in for missing weights."""
    from ..engine_registry import create_engine, engine_catalog

    if names is None:
        names = [info.name for info in engine_catalog() if info.available]
        if random_weights:
            names += [name for name in ("sam", "mobile_sam") if name not in names]
    engines = []
    for name in names:
        try:
            engines.append((create_engine(name), True))
        except EngineUnavailable:
            if not random_weights or name not in ("sam", "mobile_sam"):
                raise
            engines.append((_untrained(name), False))
    return engines


def _untrained(name: str) -> Engine:
    """Same architecture, random weights: the timing is the model's, the masks mean nothing."""
    from ..core.engines.sam_family import MobileSamEngine, SamEngine
    from ..core.engines.sam_models import build_mobile_sam
    from ..engine_registry import torch_device
    from ..settings import get_settings

    settings = get_settings()
    device = torch_device(settings.DEVICE)
    if name == "sam":
        from segment_anything import sam_model_registry

        model_type = settings.SAM_MODEL_TYPE
        return SamEngine(sam_model_registry[model_type](checkpoint=None), model_type=model_type, device=device)
    return MobileSamEngine(build_mobile_sam(), device=device)


def run_bench(
    engine_names: list[str] | None,
    sizes: list[str],
    repeats: int,
    refine: str,
    random_weights: bool,
    print_line: Callable[[str], None] = print,
) -> dict:
    report: dict = {"engines": {}, "random_weights": [], "rle": benchmark_rle()}
    for engine, trained in engines_for_bench(engine_names, random_weights):
        if not trained:
            report["random_weights"].append(engine.name)
        report["engines"][engine.name] = {}
        for size_name in sizes:
            figures = bench_engine(engine, size_name, repeats, refine)
            report["engines"][engine.name][size_name] = figures
            print_line(
                f"{engine.name:<16} {size_name:>9}  {figures['refine']:<10}  embed {figures['embed_ms_p50']:9.1f} ms  "
                f"decode {figures['predict_ms_p50']:7.1f}  refine {figures['refine_ms_p50']:7.1f}  "
                f"rle {figures['rle_ms_p50']:6.1f}  warm round p50 {figures['warm_predict_ms_p50']:8.1f} "
                f"p95 {figures['warm_predict_ms_p95']:8.1f}  x{figures['speedup_vs_recompute']:.1f} vs recompute"
            )
            if "decoder_speedup" in figures:
                print_line(
                    f"{engine.name:<16} {size_name:>9}  mask decoder: segment-anything's {figures['mask_decoder_ms_p50']:.1f} ms, "
                    f"ours {figures['engine_decoder_ms_p50']:.1f} ms  x{figures['decoder_speedup']:.2f}"
                )
    rle = report["rle"]
    print_line(f"rle (noisy 1024x768): {json.dumps(rle)}")
    return report
