"""SAM, MobileSAM and LiteMedSAM as engines: one image encoder run per image, a light decoder per round.

All three share SAM's prompt encoder and mask decoder and differ only in the image
encoder, its input size and how pixels are normalised, so one implementation
serves them; the subclasses say which model, which input and which prompts suit it.
This is segment-anything's predictor; the networks are built in ``sam_models`` and
loaded with their weights in ``sam_checkpoints``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...engine_registry import LITEMEDSAM, MOBILE_SAM, SAM, SAM_MODEL_TYPES
from ..engine import Embedding, Engine, Prediction
from ..prompts import Prompts
from ..stroke_prompts import LOW_RES_MASK_SIZE, SamPrompts, claimed_by_negative_strokes, sam_prompts_from
from .sam_decoder import FastMaskDecoder

#: Bumped when preprocessing or decoding changes, so cached embeddings of older code are not reused.
PIPELINE_VERSION = "1"


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
    """The shared embed/predict of the SAM family; use a subclass.

    ``model`` is a module with ``image_encoder``, ``prompt_encoder`` and
    ``mask_decoder`` (segment-anything's ``Sam`` or LiteMedSAM's ``MedSAMLite``).
    ``predict`` runs only the prompt encoder and the mask decoder, with no shared
    mutable state, so concurrent calls are safe.
    """

    # The decoder's mask already follows image edges; a GrabCut pass in its band
    # would cost two to three decoder runs per round for little (see README).
    default_refine = "edgerefine"

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

    name = SAM.name
    prompt_options = {"max_points": 16}

    def __init__(
        self,
        model: nn.Module,
        model_type: str = SAM_MODEL_TYPES[0],
        weights_id: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"model_type must be one of {', '.join(SAM_MODEL_TYPES)}, got {model_type!r}")
        self.model_type = model_type
        super().__init__(model, weights_id=weights_id, device=device)


class MobileSamEngine(SamFamilyEngine):
    """MobileSAM: SAM's decoder on a 5M-parameter TinyViT encoder, about 10x faster to embed."""

    name = MOBILE_SAM.name
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

    name = LITEMEDSAM.name
    model_type = "lite_medsam"
    input_spec = _InputSpec(size=256, normalisation="minmax")
    prompt_options = {"always_box": True, "box_margin": 0.25, "use_points": False, "use_mask_input": False}

    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        """The decoded mask less what a correction's negative strokes claim in it.

        A box cannot leave out a neighbour inside it, so a negative stroke on the
        previous mask removes the part of the new mask nearer it than any positive
        stroke. MedScribble (111 robot negative strokes on a wrongly included region):
        share of the region removed, median 0.61 -> 0.79; IoU gain of the round 0.048
        -> 0.072. Strokes off the previous mask (round 1's, drawn beside the object)
        claim nothing: they would cut the object's rim.
        """
        prediction = super().predict(embedding, prompts)
        if prompts.current_mask is None:
            return prediction
        on_mask = prompts.negative_scribbles & prompts.current_mask
        if not on_mask.any():
            return prediction
        claimed = claimed_by_negative_strokes(prediction.mask | on_mask, prompts.positive_scribbles, on_mask)
        return Prediction(mask=prediction.mask & ~claimed, score=prediction.score, logits=prediction.logits)
