"""``scribble-seg bench`` end to end: every stage, and /predict through HTTP with 1 and 2 workers."""

import json
import time

import numpy as np
import pytest

from ml_backend.cli import main
from ml_backend.core.engine import Embedding, Engine, Prediction
from ml_backend.core.prompts import Prompts


def test_bench_times_each_stage_and_the_http_round_with_one_and_two_workers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--engine", "geodesic_grabcut", "--size", "640x480", "--repeats", "2", "--http-rounds", "3",
        "--json", str(out),
    ])
    assert code == 0
    report = json.loads(out.read_text())
    stages = report["engines"]["geodesic_grabcut"]["640x480"]
    for key in ("load_ms", "embed_ms", "predict_ms", "refine_ms", "rle_ms", "png_ms", "warm_predict_ms"):
        assert stages[f"{key}_p50"] <= stages[f"{key}_p95"], key
    # A round that must embed first costs the embedding on top of a warm round (figures rounded to 0.01).
    assert stages["cold_round_ms_p50"] == pytest.approx(stages["embed_ms_p50"] + stages["warm_predict_ms_p50"], abs=0.02)
    http = report["http"]["geodesic_grabcut"]["640x480"]
    for server in ("workers_1", "workers_2_redis"):
        assert http[server]["warm_predict_ms_p50"] <= http[server]["warm_predict_ms_p95"], server
        assert http[server]["rss_mb"] > 50, server
    # The two-worker server really has two workers (and so more memory than one).
    assert http["workers_2_redis"]["rss_mb"] > http["workers_1"]["rss_mb"]
    # The shared cache keeps a smaller blob (float16) than the embedding in a worker's memory.
    assert 0 < http["redis_blob_mb"] <= http["embedding_mb"]
    printed = capsys.readouterr().out
    assert "2 workers + Redis" in printed and "read from Redis" in printed
    assert report["rle"]["identical"] is True


def test_bench_times_segment_anythings_mask_decoder_against_the_engines_on_the_same_inputs():
    from ml_backend.tools.bench import bench_engine
    from ml_backend.core.engines.sam_checkpoints import load_litemedsam

    figures = bench_engine(load_litemedsam(), "640x480", repeats=2, refine="auto")
    ratio = figures["mask_decoder_ms_p50"] / figures["engine_decoder_ms_p50"]
    assert abs(figures["decoder_speedup"] - ratio) <= 0.02 * ratio
    # Engines without a SAM decoder report no such figures.
    from ml_backend.core.engines.geodesic_grabcut import GeodesicGrabCutEngine

    assert "decoder_speedup" not in bench_engine(GeodesicGrabCutEngine(), "640x480", repeats=1, refine="none")


def test_random_weights_stand_in_for_the_configured_sam_model(monkeypatch, tmp_path):
    from ml_backend.tools.bench import engines_for_bench
    from ml_backend.settings import get_settings

    monkeypatch.setenv("MODEL_DIR", str(tmp_path))  # no checkpoint here
    monkeypatch.setenv("SAM_MODEL_TYPE", "vit_l")
    monkeypatch.setenv("DEVICE", "cpu")
    get_settings.cache_clear()
    try:
        [(engine, trained)] = engines_for_bench(["sam"], random_weights=True)
    finally:
        get_settings.cache_clear()
    assert not trained
    assert engine.model_type == "vit_l" and str(engine.device) == "cpu"
    assert len(engine.model.image_encoder.blocks) == 24  # ViT-L's depth (ViT-B has 12)


class SleepyEngine(Engine):
    """An engine of known cost: each embed sleeps EMBED_S, each predict PREDICT_S; it counts its calls."""

    name = "sleepy"
    EMBED_S, PREDICT_S = 0.08, 0.02

    def __init__(self) -> None:
        self.embeds = self.predicts = 0

    @property
    def identity(self) -> str:
        return "sleepy"

    def embed(self, image: np.ndarray) -> Embedding:
        self.embeds += 1
        time.sleep(self.EMBED_S)
        return Embedding(self.identity, image.shape[:2], {"features": np.zeros((4, 4), np.float32)})

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        self.predicts += 1
        time.sleep(self.PREDICT_S)
        mask = np.zeros(embedding.image_shape, bool)
        mask[100:300, 200:400] = True
        return Prediction(mask=mask, score=1.0)


def test_bench_figures_cover_the_known_cost_of_each_stage_and_warm_rounds_skip_the_embedding():
    from ml_backend.tools.bench import bench_engine

    engine = SleepyEngine()
    figures = bench_engine(engine, "640x480", repeats=3, refine="none")
    # Two timed cold embeds and one to fill the segmenter's cache; the three warm rounds embed nothing.
    assert engine.embeds == 2 + 1
    assert engine.predicts == 3 + 3
    # Each figure covers the sleep of what it times, and only the embed figures hold an embed.
    assert figures["embed_ms_p50"] >= 1000 * SleepyEngine.EMBED_S
    assert figures["predict_ms_p50"] >= 1000 * SleepyEngine.PREDICT_S
    assert figures["warm_predict_ms_p50"] >= 1000 * SleepyEngine.PREDICT_S
    assert figures["cold_round_ms_p50"] == pytest.approx(figures["embed_ms_p50"] + figures["warm_predict_ms_p50"], abs=0.02)
    expected_speedup = figures["cold_round_ms_p50"] / figures["warm_predict_ms_p50"]
    assert figures["speedup_vs_recompute"] == pytest.approx(expected_speedup, rel=1e-3, abs=0.01)
    assert "decoder_speedup" not in figures  # not a SAM-family engine
