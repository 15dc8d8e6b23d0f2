"""DEVICE: where SAM-family engines run, and a clear refusal when the GPU asked for is not there."""

from __future__ import annotations

import pydantic
import pytest
import torch

from ml_backend.core.engine import EngineUnavailable
from ml_backend.engine_registry import create_engine, torch_device
from ml_backend.settings import Settings

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_auto_takes_the_gpu_only_when_torch_sees_one() -> None:
    assert torch_device("auto") == ("cuda" if GPUS else "cpu")
    assert torch_device("cpu") == "cpu"


def test_a_gpu_that_is_not_there_is_refused_with_the_fix() -> None:
    missing = f"cuda:{GPUS}"  # one past the last GPU torch sees
    with pytest.raises(EngineUnavailable) as error:
        torch_device(missing)
    message = str(error.value)
    assert message.startswith(f"DEVICE: {missing} asked for")
    assert "DEVICE=auto" in message and "DEVICE=cpu" in message


def test_the_engine_runs_where_device_says() -> None:
    engine = create_engine("litemedsam", Settings(DEVICE="cpu"))
    assert engine.device == torch.device("cpu")
    assert next(engine.model.parameters()).device == torch.device("cpu")
    with pytest.raises(EngineUnavailable, match="DEVICE"):
        create_engine("litemedsam", Settings(DEVICE=f"cuda:{GPUS}"))


def test_blank_device_means_auto() -> None:
    assert Settings(DEVICE="").DEVICE == "auto"
    assert Settings(DEVICE="cuda:1").DEVICE == "cuda:1"


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "mps", "CPU"])
def test_unknown_devices_are_refused_by_name(value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="DEVICE"):
        Settings(DEVICE=value)
