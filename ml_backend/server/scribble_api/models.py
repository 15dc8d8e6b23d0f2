"""The original API's request and response bodies, and the image inputs it takes."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...io.images import IMAGE_MAX_BYTES, MASK_MAX_BYTES

ACTION = "InteractiveScribbleSegmentation"
XML_ROOT = "InteractiveScribbleSegmentationResponse"


class ScribbleSegmentationRequest(BaseModel):
    """The original API's parameters. Unknown parameters (the original's common
    parameters such as ``Version`` or ``RegionId``) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", title="InteractiveScribbleSegmentationRequest")

    Action: str | None = Field(
        None,
        description="`InteractiveScribbleSegmentation`. Required on `/`; "
        "optional on `/InteractiveScribbleSegmentation`.",
        json_schema_extra={"enum": [ACTION]},
    )
    ImageUrl: str | None = Field(
        None,
        description="The image (required, or upload it as `Image`). JPG, JPEG, PNG, BMP or WEBP; at most 10 MB; "
        "each side 32..4096 pixels; ASCII-only URL.",
        examples=["https://example.com/photo.png"],
    )
    MaskImageUrl: str | None = Field(
        None,
        description="The current mask (or upload `MaskImage`): pixels >= 128 are the object. At most 5 MB; "
        "the image's resolution.",
    )
    PosScribbleImageUrl: str | None = Field(
        None,
        description="Positive strokes (or upload `PosScribbleImage`): pixels >= 128 (brightest channel, or alpha "
        "where the file has transparency) are on the object. At most 5 MB; the image's resolution.",
    )
    NegScribbleImageUrl: str | None = Field(
        None,
        description="Negative strokes (or upload `NegScribbleImage`): pixels >= 128 are not the object. "
        "At most 5 MB; the image's resolution.",
    )
    IntegratedMaskUrl: str | None = Field(
        None,
        description="The three above in one RGB image (or upload `IntegratedMask`): R = current mask, "
        "G = positive strokes, B = negative strokes, each >= 128. Combined with any of the separate ones given.",
    )
    ReturnForm: str | None = Field(
        "rgb_alpha",
        description="`rgb_alpha`: 4-channel PNG with transparent background; `only_alpha`: single-channel mask; "
        "`white_background`: the object on white.",
        json_schema_extra={"enum": ["rgb_alpha", "only_alpha", "white_background"]},
    )
    ReturnFormat: str | None = Field(
        "PNG",
        description="`PNG` or `JPG`. `rgb_alpha` is always PNG (JPG cannot carry alpha, and the original "
        "documents it as a four-channel PNG); `JPG` applies to `only_alpha` and `white_background`.",
        json_schema_extra={"enum": ["PNG", "JPG"]},
    )
    EdgeFeathering: str | bool | None = Field(
        "true", description="`true` or `false`: feather the mask's edge over a few pixels."
    )
    PostprocessOption: str | None = Field(
        "maskrefine",
        description="`maskrefine`: finest, less stable; `edgerefine`: stable, a little less fine; "
        "`none`: no refinement.",
        json_schema_extra={"enum": ["maskrefine", "edgerefine", "none"]},
    )
    ReturnBase64: str | bool | None = Field(
        "false", description="`true` adds the result itself, base64-encoded, as `Data.ResultBase64`."
    )
    Format: str | None = Field(
        None,
        description="`JSON` (default) or `XML`: the response format; `Accept: application/xml` does the same.",
        json_schema_extra={"enum": ["JSON", "XML"]},
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ResultData(BaseModel):
    ResultUrl: str = Field(description="Signed link to the result on this server; valid for RESULT_TTL_SECONDS.")
    ResultBase64: str | None = Field(None, description="The result itself, only with `ReturnBase64=true`.")


class ScribbleSegmentationResponse(BaseModel):
    model_config = ConfigDict(title="InteractiveScribbleSegmentationResponse")
    RequestId: str
    Data: ResultData


class ErrorBody(BaseModel):
    model_config = ConfigDict(title="Error")
    RequestId: str
    Code: str = Field(examples=["InvalidParameter", "InvalidImage.Format", "InvalidFile.Size"])
    Message: str = Field(description="Names the parameter at fault and the limit it broke.")


@dataclass(frozen=True)
class InputSpec:
    """One image input: given as a URL parameter or uploaded as a file part."""

    role: str
    url_parameter: str
    upload_parameter: str
    max_bytes: int


INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", "ImageUrl", "Image", IMAGE_MAX_BYTES),
    InputSpec("mask", "MaskImageUrl", "MaskImage", MASK_MAX_BYTES),
    InputSpec("positive", "PosScribbleImageUrl", "PosScribbleImage", MASK_MAX_BYTES),
    InputSpec("negative", "NegScribbleImageUrl", "NegScribbleImage", MASK_MAX_BYTES),
    InputSpec("integrated", "IntegratedMaskUrl", "IntegratedMask", MASK_MAX_BYTES),
)
UPLOAD_PARAMETERS = {spec.upload_parameter: spec for spec in INPUTS}
URL_PARAMETERS = {spec.url_parameter: spec for spec in INPUTS}


@dataclass(frozen=True)
class InputBytes:
    field: str  # the parameter the bytes came from, for error messages
    data: bytes
