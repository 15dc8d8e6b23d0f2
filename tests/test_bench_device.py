"""The device check's comparison: it reports a real mismatch, and its figures come from the runs.

No GPU here: ``compare`` is given two engines, one of which is made to differ
(its features, its decoder, or its speed), and the report must show it. The
script itself runs once end to end on the CPU.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ml_backend.core.engine import Embedding, Engine, Prediction
from ml_backend.core.prompts import Prompts
from ml_backend.tools.bench import bench_scene
from ml_backend.tools.bench_device import HEIGHT, WIDTH, compare, main
from tests.synthetic import iou

BLOCK = 16  # the toy engine's feature grid: one value per 16x16 block


class ToyEngine(Engine):
    """Features: red minus blue per block (the bench scene's object is red on blue); mask: features > 0.

    ``feature_shift`` is added to the leftmost quarter of the feature columns;
    ``decoder_drops_top`` makes the decoder drop the mask's top half;
    ``embed_sleep_s`` makes each embed take at least that long.
    """

    name = "toy"

    def __init__(self, feature_shift: float = 0.0, decoder_drops_top: bool = False, embed_sleep_s: float = 0.0):
        self.feature_shift = feature_shift
        self.decoder_drops_top = decoder_drops_top
        self.embed_sleep_s = embed_sleep_s
        self.embeds = 0

    @property
    def identity(self) -> str:
        return "toy"

    def embed(self, image: np.ndarray) -> Embedding:
        self.embeds += 1
        time.sleep(self.embed_sleep_s)
        return Embedding("toy", image.shape[:2], {"features": toy_features(image, self.feature_shift)})

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        mask = toy_mask(embedding.arrays["features"], embedding.image_shape)
        if self.decoder_drops_top:
            mask[: mask.shape[0] // 2] = False
        return Prediction(mask=mask, score=1.0)


def toy_features(image: np.ndarray, shift: float = 0.0) -> np.ndarray:
    height, width = image.shape[:2]
    difference = image[..., 0].astype(np.float32) - image[..., 2].astype(np.float32)
    blocks = difference[: height // BLOCK * BLOCK, : width // BLOCK * BLOCK]
    features = blocks.reshape(height // BLOCK, BLOCK, width // BLOCK, BLOCK).mean(axis=(1, 3))
    features[:, : features.shape[1] // 4] += shift
    return features.astype(np.float32)


def toy_mask(features: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.kron(features > 0, np.ones((BLOCK, BLOCK), bool))
    return np.pad(mask, ((0, shape[0] - mask.shape[0]), (0, shape[1] - mask.shape[1])))


@pytest.fixture(scope="module")
def scene_features() -> np.ndarray:
    image, _prompts = bench_scene(HEIGHT, WIDTH)
    return toy_features(image)


def run(device_engine: ToyEngine, cpu_engine: ToyEngine) -> dict:
    return compare(device_engine, cpu_engine, embed_repeats=2, round_repeats=3, cpu_embed_repeats=2)


def test_identical_engines_agree_exactly(scene_features: np.ndarray) -> None:
    figures = run(ToyEngine(), ToyEngine())
    assert figures["feature_difference_over_spread"] == 0.0
    assert figures["mask_iou_gpu_vs_cpu"] == figures["mask_iou_cpu_embedding_on_gpu"] == 1.0
    assert figures["mask_pixels"] == int(toy_mask(scene_features, (HEIGHT, WIDTH)).sum()) > 0


def test_different_features_are_reported_and_traced_to_the_embedding(scene_features: np.ndarray) -> None:
    # The device's features are off by 300 in a quarter of the image (the scene's
    # red-minus-blue runs from about -90 to 130): its mask grows there.
    figures = run(ToyEngine(feature_shift=300.0), ToyEngine())
    assert figures["feature_difference_over_spread"] == pytest.approx(300.0 / scene_features.std(), rel=1e-4)
    shifted = toy_mask(toy_features(bench_scene(HEIGHT, WIDTH)[0], 300.0), (HEIGHT, WIDTH))
    plain = toy_mask(scene_features, (HEIGHT, WIDTH))
    assert figures["mask_iou_gpu_vs_cpu"] == pytest.approx(iou(shifted, plain)) and figures["mask_iou_gpu_vs_cpu"] < 0.9
    assert figures["mask_pixels"] == int(shifted.sum())
    # The device's decoder on the CPU's embedding agrees: the mismatch is the embedding's.
    assert figures["mask_iou_cpu_embedding_on_gpu"] == 1.0


def test_a_different_decoder_is_reported_with_equal_features(scene_features: np.ndarray) -> None:
    figures = run(ToyEngine(decoder_drops_top=True), ToyEngine())
    assert figures["feature_difference_over_spread"] == 0.0
    plain = toy_mask(scene_features, (HEIGHT, WIDTH))
    cut = plain.copy()
    cut[: HEIGHT // 2] = False
    assert figures["mask_iou_gpu_vs_cpu"] == pytest.approx(iou(cut, plain)) and figures["mask_iou_gpu_vs_cpu"] < 0.7
    assert figures["mask_iou_cpu_embedding_on_gpu"] == figures["mask_iou_gpu_vs_cpu"]


def test_the_timings_are_the_runs_own(scene_features: np.ndarray) -> None:
    device_engine, cpu_engine = ToyEngine(embed_sleep_s=0.02), ToyEngine(embed_sleep_s=0.08)
    figures = compare(device_engine, cpu_engine, embed_repeats=3, round_repeats=3, cpu_embed_repeats=2)
    # A warm-up and 3 timed embeds on the device, 2 on the CPU: each at least its sleep.
    assert (device_engine.embeds, cpu_engine.embeds) == (4, 2)
    assert figures["gpu_embed_ms"]["p50"] >= 20.0 and figures["cpu_embed_ms"]["p50"] >= 80.0
    assert figures["gpu_embed_ms"]["p50"] <= figures["gpu_embed_ms"]["p95"]
    ratio = figures["cpu_embed_ms"]["p50"] / figures["gpu_embed_ms"]["p50"]
    assert figures["embed_speedup"] == pytest.approx(ratio, abs=0.06)
    ratio = figures["cpu_round_ms"]["p50"] / figures["gpu_round_ms"]["p50"]
    assert figures["round_speedup"] == pytest.approx(ratio, abs=0.06 + 0.01 * ratio)
    assert figures["gpu_decoders_ms"] == {}  # not a SAM-family engine: no decoder to time


def test_the_script_writes_its_report_for_a_real_model_on_the_cpu(tmp_path, capsys) -> None:
    out = tmp_path / "device.json"
    assert main(["--device", "cpu", "--models", "litemedsam", "--repeats", "1", "--cpu-repeats", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    figures = report["models"]["litemedsam"]
    # The same weights on the same device: nothing may differ (the comparison itself is
    # checked with the toy engines above).
    assert figures["feature_difference_over_spread"] == 0.0
    assert figures["mask_iou_gpu_vs_cpu"] == figures["mask_iou_cpu_embedding_on_gpu"] == 1.0
    assert figures["mask_iou_float16_round_trip"] >= 0.99
    assert 0 < figures["mask_pixels"] < HEIGHT * WIDTH
    assert report["device"] == "cpu" and report["image"] == f"{WIDTH}x{HEIGHT}"
    assert f"litemedsam  embed {figures['gpu_embed_ms']['p50']:8.1f} ms" in capsys.readouterr().out


def test_a_gpu_that_is_not_there_is_refused_by_name(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda:99"])
    assert exit_info.value.code == 2
    assert "--device cuda:99: torch" in capsys.readouterr().err
