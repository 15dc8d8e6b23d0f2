"""``scribble-seg bench`` end to end: every stage, and /predict through HTTP with 1 and 2 workers."""

import json

from ml_backend.cli import main


def test_bench_times_each_stage_and_the_http_round_with_one_and_two_workers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--engine", "geodesic_grabcut", "--size", "640x480", "--repeats", "2", "--http-rounds", "3",
        "--json", str(out),
    ])
    assert code == 0
    report = json.loads(out.read_text())
    stages = report["engines"]["geodesic_grabcut"]["640x480"]
    for key in ("load_ms_p50", "embed_ms_p50", "predict_ms_p50", "refine_ms_p50", "rle_ms_p50", "warm_predict_ms_p50"):
        assert stages[key] > 0, key
    assert stages["cold_round_ms_p50"] > stages["warm_predict_ms_p50"]
    http = report["http"]["geodesic_grabcut"]["640x480"]
    for server in ("workers_1", "workers_2_redis"):
        assert 0 < http[server]["warm_predict_ms_p50"] <= http[server]["warm_predict_ms_p95"], server
        assert http[server]["rss_mb"] > 50, server
    # The two-worker server really has two workers (and so more memory than one).
    assert http["workers_2_redis"]["rss_mb"] > http["workers_1"]["rss_mb"]
    assert 0 < http["redis_fetch_ms_p50"] and 0 < http["redis_blob_mb"] <= http["embedding_mb"]
    printed = capsys.readouterr().out
    assert "2 workers + Redis" in printed and "read from Redis" in printed
    assert report["rle"]["identical"] is True


def test_bench_times_segment_anythings_mask_decoder_against_the_engines_on_the_same_inputs():
    from ml_backend.tools.bench import bench_engine
    from ml_backend.core.engines.sam_checkpoints import load_litemedsam

    figures = bench_engine(load_litemedsam(), "640x480", repeats=2, refine="auto")
    assert figures["mask_decoder_ms_p50"] > 0 and figures["engine_decoder_ms_p50"] > 0
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
