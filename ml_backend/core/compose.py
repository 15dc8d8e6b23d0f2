"""The original API's return forms, as arrays: a cut-out, the alpha alone, or the object on white."""

from __future__ import annotations

from typing import Literal

import numpy as np

ReturnForm = Literal["rgb_alpha", "only_alpha", "white_background"]
RETURN_FORMS: tuple[str, ...] = ("rgb_alpha", "only_alpha", "white_background")


def compose_result(image: np.ndarray, alpha: np.ndarray, return_form: str) -> np.ndarray:
    """``image`` HxWx3 uint8, ``alpha`` HxW uint8 -> HxWx4 (rgb_alpha), HxW (only_alpha) or HxWx3."""
    if alpha.shape != image.shape[:2]:
        raise ValueError(f"alpha is {alpha.shape}, image {image.shape[:2]}")
    if return_form == "rgb_alpha":
        return np.dstack([image, alpha])
    if return_form == "only_alpha":
        return alpha.copy()
    if return_form == "white_background":
        # Integer blend: exact at alpha 0 and 255, rounded in between.
        weight = alpha.astype(np.uint16)[:, :, None]
        blended = (image.astype(np.uint16) * weight + 255 * (255 - weight) + 127) // 255
        return blended.astype(np.uint8)
    raise ValueError(f"return form must be one of {', '.join(RETURN_FORMS)}, not {return_form!r}")
