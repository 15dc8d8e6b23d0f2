"""Post-processing of a mask: edge-aware refinement, a second pass, and feathered alpha.

``edgerefine`` snaps the boundary to nearby image edges and never moves it by
more than ``max_shift`` pixels (stable). ``maskrefine`` runs a second GrabCut
pass in a band around the first mask's boundary, then ``edgerefine`` (finest,
may move the boundary further where colours disagree with the first mask).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from .constraints import apply_hard_constraints, keep_prompted_components
from .engines.grabcut import run_grabcut
from .prompts import Prompts

RefineOption = Literal["none", "edgerefine", "maskrefine"]
REFINE_OPTIONS: tuple[str, ...] = ("none", "edgerefine", "maskrefine")


def boundary_band(mask: np.ndarray, width_px: int) -> np.ndarray:
    """Pixels within ``width_px`` of the boundary, on either side."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width_px + 1, 2 * width_px + 1))
    as_uint8 = mask.astype(np.uint8)
    return cv2.dilate(as_uint8, kernel) != cv2.erode(as_uint8, kernel)


def _band_crop(band: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(band.any(axis=1))
    cols = np.flatnonzero(band.any(axis=0))
    if len(rows) == 0:
        return None
    height, width = band.shape
    return (
        slice(max(0, rows[0] - margin), min(height, rows[-1] + margin + 1)),
        slice(max(0, cols[0] - margin), min(width, cols[-1] + margin + 1)),
    )


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour guided filter (He et al. 2010): smooths ``source`` while following ``guide``'s edges."""
    guide = guide.astype(np.float32) / 255.0
    source = source.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(array: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(array, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_guide = box(guide)  # HxWx3
    mean_source = box(source)
    mean_guide_source = box(guide * source[:, :, None])
    covariance_guide_source = mean_guide_source - mean_guide * mean_source[:, :, None]
    # Per-pixel 3x3 covariance of the guide, regularised, inverted in closed form.
    outer = guide[:, :, :, None] * guide[:, :, None, :]
    variance = box(outer.reshape(*guide.shape[:2], 9)).reshape(*guide.shape[:2], 3, 3)
    variance -= mean_guide[:, :, :, None] * mean_guide[:, :, None, :]
    variance += eps * np.eye(3, dtype=np.float32)
    coefficients = np.linalg.solve(variance, covariance_guide_source[:, :, :, None])[:, :, :, 0]
    offset = mean_source - np.einsum("hwc,hwc->hw", coefficients, mean_guide)
    mean_coefficients = box(coefficients)
    mean_offset = box(offset)
    return np.einsum("hwc,hwc->hw", mean_coefficients, guide) + mean_offset


def edge_refine(image: np.ndarray, mask: np.ndarray, prompts: Prompts, max_shift: int = 3) -> np.ndarray:
    """Moves the boundary onto image edges, by at most ``max_shift`` pixels."""
    mask = mask.astype(bool)
    if not mask.any() or mask.all():
        return mask
    band = boundary_band(mask, max_shift)
    crop = _band_crop(band, margin=4 * max_shift)
    if crop is None:
        return mask
    rows, cols = crop
    filtered = guided_filter(image[rows, cols], mask[rows, cols].astype(np.float32), radius=max_shift + 1, eps=1e-3)
    refined = mask.copy()
    band_crop = band[rows, cols]
    # Basic slicing gives a view, so this writes into ``refined``.
    refined[rows, cols][band_crop] = filtered[band_crop] > 0.5
    return apply_hard_constraints(refined, prompts)


def mask_refine(image: np.ndarray, mask: np.ndarray, prompts: Prompts, iterations: int = 3) -> np.ndarray:
    """A second GrabCut pass seeded by the first mask, confined to a band around its boundary."""
    mask = mask.astype(bool)
    if not mask.any() or mask.all():
        return mask
    height, width = mask.shape
    band_px = max(4, int(round(0.01 * np.hypot(height, width))))
    band = boundary_band(mask, band_px)
    crop = _band_crop(band, margin=2 * band_px)
    if crop is None:
        return mask
    rows, cols = crop
    labels = np.where(mask[rows, cols], cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    band_crop = band[rows, cols]
    labels[band_crop & mask[rows, cols]] = cv2.GC_PR_FGD
    labels[band_crop & ~mask[rows, cols]] = cv2.GC_PR_BGD
    labels[prompts.positive_scribbles[rows, cols]] = cv2.GC_FGD
    labels[prompts.negative_scribbles[rows, cols]] = cv2.GC_BGD
    refined = mask.copy()
    refined[rows, cols] = run_grabcut(image[rows, cols], labels, iterations)
    refined = keep_prompted_components(apply_hard_constraints(refined, prompts), prompts)
    return edge_refine(image, refined, prompts)


def refine_mask(image: np.ndarray, mask: np.ndarray, prompts: Prompts, option: str) -> np.ndarray:
    if option == "edgerefine":
        return edge_refine(image, mask, prompts)
    if option == "maskrefine":
        return mask_refine(image, mask, prompts)
    if option == "none":
        return apply_hard_constraints(mask, prompts)
    raise ValueError(f"refine option must be one of {', '.join(REFINE_OPTIONS)}, not {option!r}")


def feathered_alpha(mask: np.ndarray, prompts: Prompts | None = None, width_px: float = 2.0) -> np.ndarray:
    """Soft alpha (uint8) ramping over about ``2 * width_px`` pixels across the boundary.

    Alpha is 50% on the boundary itself; stroke pixels keep their hard value.
    """
    mask = mask.astype(bool)
    if not mask.any() or mask.all():
        return mask.astype(np.uint8) * 255
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    signed = np.where(mask, inside - 0.5, 0.5 - outside)
    alpha = np.clip(0.5 + signed / (2.0 * width_px), 0.0, 1.0)
    alpha = np.rint(alpha * 255).astype(np.uint8)
    if prompts is not None:
        alpha[prompts.positive_scribbles] = 255
        alpha[prompts.negative_scribbles] = 0
    return alpha
