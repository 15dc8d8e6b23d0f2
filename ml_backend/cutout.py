"""The original API's request in one call: decoded inputs in, an encoded result image out.

Shared by the HTTP scribble API and the CLI, so both answer the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .core.compose import RETURN_FORMS, compose_result
from .core.prompts import PromptError, Prompts, make_prompts
from .core.refine import REFINE_OPTIONS, feathered_alpha
from .core.segmenter import Segmenter
from .errors import ClientError, ErrorCode, invalid_parameter
from .io.images import encode_image

RETURN_FORMATS: tuple[str, ...] = ("PNG", "JPG")


@dataclass(frozen=True)
class CutoutOptions:
    return_form: str = "rgb_alpha"
    return_format: str = "PNG"
    edge_feathering: bool = True
    postprocess: str = "maskrefine"

    def __post_init__(self) -> None:
        if self.return_form not in RETURN_FORMS:
            raise invalid_parameter("ReturnForm", f"must be one of {', '.join(RETURN_FORMS)}, not {self.return_form!r}")
        if self.return_format not in RETURN_FORMATS:
            raise invalid_parameter("ReturnFormat", f"must be PNG or JPG, not {self.return_format!r}")
        if self.postprocess not in REFINE_OPTIONS:
            raise invalid_parameter(
                "PostprocessOption", f"must be maskrefine, edgerefine or none, not {self.postprocess!r}"
            )

    @property
    def encoded_format(self) -> str:
        """The format the result is encoded in. The original documents ``rgb_alpha`` as
        "a four-channel PNG" whatever ``ReturnFormat`` says, and JPG cannot carry alpha:
        so ``rgb_alpha`` is always PNG, and ``ReturnFormat`` applies to the other forms."""
        return "PNG" if self.return_form == "rgb_alpha" else self.return_format


@dataclass
class CutoutResult:
    content: bytes
    media_type: str
    mask: np.ndarray
    alpha: np.ndarray
    score: float
    timings: dict[str, float] = field(default_factory=dict)


def parse_bool(name: str, value: str | bool | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid_parameter(name, f"must be true or false, not {value!r}")


def build_prompts(
    image: np.ndarray,
    positive_scribbles: np.ndarray | None = None,
    negative_scribbles: np.ndarray | None = None,
    current_mask: np.ndarray | None = None,
    positive_field: str = "PosScribbleImageUrl",
) -> Prompts:
    """Prompts from stroke and mask arrays; errors name the parameter at fault."""
    try:
        prompts = make_prompts(image.shape, positive_scribbles, negative_scribbles, current_mask)
    except PromptError as error:
        raise invalid_parameter(error.field_name, str(error).split(": ", 1)[-1]) from None
    if not prompts.has_positive_evidence():
        raise ClientError(
            ErrorCode.INVALID_PARAMETER_SCRIBBLE,
            f"{positive_field}: no positive stroke and no current mask: mark the object with at least one stroke",
            field=positive_field,
        )
    return prompts


def cut_out(segmenter: Segmenter, image: np.ndarray, prompts: Prompts, options: CutoutOptions) -> CutoutResult:
    timings: dict[str, float] = {}
    prediction = segmenter.segment(image, prompts, refine=options.postprocess, timings=timings)
    if options.edge_feathering:
        alpha = feathered_alpha(prediction.mask, prompts)
    else:
        alpha = prediction.mask.astype(np.uint8) * 255
    composed = compose_result(image, alpha, options.return_form)
    content = encode_image(composed, options.encoded_format)
    media_type = "image/png" if options.encoded_format == "PNG" else "image/jpeg"
    return CutoutResult(content, media_type, prediction.mask, alpha, prediction.score, timings)
