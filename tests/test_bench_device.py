"""The GPU check runs end to end; here on the CPU against itself (no GPU on CI)."""

from __future__ import annotations

import json

import pytest

from ml_backend.tools.bench_device import main


def test_cpu_against_cpu_agrees_exactly(tmp_path, capsys):
    out = tmp_path / "device.json"
    assert main(["--device", "cpu", "--models", "litemedsam", "--repeats", "1", "--cpu-repeats", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["models"]["litemedsam"]
    assert figures["feature_difference_over_spread"] == 0.0
    assert figures["mask_iou_gpu_vs_cpu"] == figures["mask_iou_cpu_embedding_on_gpu"] == 1.0
    assert figures["mask_iou_float16_round_trip"] >= 0.99
    assert figures["mask_pixels"] > 0
    assert "litemedsam" in capsys.readouterr().out


def test_a_gpu_that_is_not_there_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda:99"])
    assert exit_info.value.code == 2
    assert "--device cuda:99: torch" in capsys.readouterr().err
