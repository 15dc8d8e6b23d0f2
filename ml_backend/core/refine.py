"""Post-processing of a mask: edge-aware refinement, a second pass, and feathered alpha.

``edgerefine`` snaps the boundary to nearby image edges and never moves it by
more than ``max_shift`` pixels (stable). ``maskrefine`` runs a second GrabCut
pass in a band around the first mask's boundary, then ``edgerefine`` (finest,
may move the boundary further where colours disagree with the first mask).

Both work only on tiles that hold boundary pixels: their cost follows the
boundary's length, not the image's area. The GrabCut pass fits its colour
models once, on the band's surroundings at a bounded resolution, and then cuts
each tile at full resolution with those models frozen; on images larger than
``MASK_REFINE_LONG_SIDE`` it runs on a reduced copy and ``edgerefine`` brings
the boundary back to full resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import cv2
import numpy as np

from .constraints import apply_hard_constraints, keep_prompted_components
from .prompts import Prompts
from .regions import MIN_COLOUR_MODEL_SAMPLES, padded_box, shrink_any

RefineOption = Literal["none", "edgerefine", "maskrefine"]
REFINE_OPTIONS: tuple[str, ...] = ("none", "edgerefine", "maskrefine")

MASK_REFINE_LONG_SIDE = 1280
# Enough pixels for two 5-component colour models; more only costs time.
COLOUR_MODEL_PIXELS = 20_000
# Each GrabCut iteration refits the models to its own cut: the first fit takes the
# coarse mask's mistakes for samples, later ones drop them.
MODEL_ITERATIONS = 3
# Half-width of the band the second GrabCut pass may change, as a share of the diagonal.
MASK_REFINE_BAND_SHARE = 0.01
EDGE_TILE_PX = 48
# How far from a correction round's new prompts refinement may change the mask,
# as a share of the diagonal (40 px on a 640x480 image).
CORRECTION_REACH_SHARE = 0.05
CORRECTION_REACH_MIN_PX = 16
GRABCUT_TILE_PX = 96


def boundary_band(mask: np.ndarray, width_px: int) -> np.ndarray:
    """Pixels within ``width_px`` of the boundary, on either side."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width_px + 1, 2 * width_px + 1))
    as_uint8 = mask.astype(np.uint8)
    return cv2.dilate(as_uint8, kernel) != cv2.erode(as_uint8, kernel)


Tile = tuple[slice, slice]


def band_tiles(band: np.ndarray, tile_px: int, halo_px: int) -> Iterator[tuple[Tile, Tile, Tile]]:
    """(core, extended, core within extended) for each ``tile_px`` square holding band pixels.

    The extended tile adds ``halo_px`` of context on every side, so that a filter
    or a graph cut sees around the core it writes.
    """
    height, width = band.shape
    rows = -(-height // tile_px)
    cols = -(-width // tile_px)
    padded = np.zeros((rows * tile_px, cols * tile_px), bool)
    padded[:height, :width] = band
    occupied = padded.reshape(rows, tile_px, cols, tile_px).any(axis=(1, 3))
    for row, col in zip(*np.nonzero(occupied)):
        top, left = row * tile_px, col * tile_px
        bottom, right = min(height, top + tile_px), min(width, left + tile_px)
        outer_top, outer_left = max(0, top - halo_px), max(0, left - halo_px)
        outer_bottom, outer_right = min(height, bottom + halo_px), min(width, right + halo_px)
        yield (
            (slice(top, bottom), slice(left, right)),
            (slice(outer_top, outer_bottom), slice(outer_left, outer_right)),
            (slice(top - outer_top, bottom - outer_top), slice(left - outer_left, right - outer_left)),
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
    # Per-pixel 3x3 covariance of the guide (symmetric: six distinct entries),
    # regularised and inverted in closed form by cofactors.
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    products = np.stack([guide[:, :, i] * guide[:, :, j] for i, j in pairs], axis=2)
    moments = box(products)
    v00, v01, v02, v11, v12, v22 = (
        moments[:, :, k] - mean_guide[:, :, i] * mean_guide[:, :, j] + (eps if i == j else 0.0)
        for k, (i, j) in enumerate(pairs)
    )
    c00, c01, c02 = v11 * v22 - v12 * v12, v02 * v12 - v01 * v22, v01 * v12 - v02 * v11
    c11, c12, c22 = v00 * v22 - v02 * v02, v01 * v02 - v00 * v12, v00 * v11 - v01 * v01
    determinant = v00 * c00 + v01 * c01 + v02 * c02
    cov0, cov1, cov2 = (covariance_guide_source[:, :, k] for k in range(3))
    coefficients = np.stack(
        [c00 * cov0 + c01 * cov1 + c02 * cov2, c01 * cov0 + c11 * cov1 + c12 * cov2, c02 * cov0 + c12 * cov1 + c22 * cov2],
        axis=2,
    ) / determinant[:, :, None]
    offset = mean_source - np.einsum("hwc,hwc->hw", coefficients, mean_guide)
    mean_coefficients = box(coefficients)
    mean_offset = box(offset)
    return np.einsum("hwc,hwc->hw", mean_coefficients, guide) + mean_offset


def edge_refine(image: np.ndarray, mask: np.ndarray, prompts: Prompts, max_shift: int = 3) -> np.ndarray:
    """Moves the boundary onto image edges, by at most ``max_shift`` pixels."""
    mask = mask.astype(bool)
    if not mask.any() or mask.all():
        return mask
    radius = max_shift + 1
    halo = 2 * radius + 1  # two box filters deep: each tile's core is then exact
    # The boundary lies within the mask's bounding box: work in that box, grown by
    # the band and the filters' reach (so the result is the same), not over the
    # whole image; every pixel outside it keeps its value.
    x, y, box_width, box_height = cv2.boundingRect(mask.astype(np.uint8))
    height, width = mask.shape
    margin = max_shift + halo + 1
    rows = slice(max(0, y - margin), min(height, y + box_height + margin))
    cols = slice(max(0, x - margin), min(width, x + box_width + margin))
    image, box_mask = image[rows, cols], mask[rows, cols]
    band = boundary_band(box_mask, max_shift)
    refined = mask.copy()
    box_refined = refined[rows, cols]  # a view: writing it writes ``refined``
    for core, extended, inner in band_tiles(band, EDGE_TILE_PX, halo_px=halo):
        source = box_mask[extended].astype(np.float32)
        filtered = guided_filter(image[extended], source, radius=radius, eps=1e-3)[inner]
        band_core = band[core]
        box_refined[core][band_core] = filtered[band_core] > 0.5
    return apply_hard_constraints(refined, prompts)


def mask_refine(image: np.ndarray, mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """A second GrabCut pass seeded by the first mask, confined to a band around its boundary."""
    mask = mask.astype(bool)
    if not mask.any() or mask.all():
        return mask
    height, width = mask.shape
    scale = min(1.0, MASK_REFINE_LONG_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        small_negative = shrink_any(prompts.negative_scribbles, small_mask.shape)
        small_positive = shrink_any(prompts.positive_scribbles, small_mask.shape)
        small_refined = _grabcut_in_band(small_image, small_mask, small_positive & ~small_negative, small_negative)
        refined = cv2.resize(small_refined.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    else:
        refined = _grabcut_in_band(image, mask, prompts.positive_scribbles, prompts.negative_scribbles)
    refined = keep_prompted_components(apply_hard_constraints(refined, prompts), prompts)
    return edge_refine(image, refined, prompts)


def _grabcut_in_band(image: np.ndarray, mask: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    band_px = max(4, int(round(MASK_REFINE_BAND_SHARE * np.hypot(height, width))))
    band = boundary_band(mask, band_px)
    crop = padded_box(band, margin=2 * band_px)
    if crop is None:
        return mask
    rows, cols = crop
    inside = mask[rows, cols]
    band_crop = band[rows, cols]
    labels = np.where(inside, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    labels[band_crop & inside] = cv2.GC_PR_FGD
    labels[band_crop & ~inside] = cv2.GC_PR_BGD
    labels[positive[rows, cols]] = cv2.GC_FGD
    labels[negative[rows, cols]] = cv2.GC_BGD
    object_side = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    # Colour models need samples of both sides; without them there is nothing to separate.
    if object_side.sum() < MIN_COLOUR_MODEL_SAMPLES or (~object_side).sum() < MIN_COLOUR_MODEL_SAMPLES:
        return mask
    bgr = np.ascontiguousarray(image[rows, cols, ::-1])
    background_model, object_model = _colour_models(bgr, labels)
    result = object_side.copy()
    for core, extended, inner in band_tiles(band_crop, GRABCUT_TILE_PX, halo_px=band_px):
        tile_labels = labels[extended].copy()
        cv2.grabCut(
            np.ascontiguousarray(bgr[extended]), tile_labels, None,
            background_model.copy(), object_model.copy(), 1, cv2.GC_EVAL_FREEZE_MODEL,
        )
        tile_object = (tile_labels == cv2.GC_FGD) | (tile_labels == cv2.GC_PR_FGD)
        result[core] = tile_object[inner]
    refined = mask.copy()
    refined[rows, cols] = result
    return refined


def _colour_models(bgr: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut's background and object colour models, fitted on at most ``COLOUR_MODEL_PIXELS``
    by a whole GrabCut run there (its cut is dropped: the tiles cut at full resolution)."""
    height, width = labels.shape
    scale = min(1.0, (COLOUR_MODEL_PIXELS / (height * width)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_NEAREST)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    background_model = np.zeros((1, 65), np.float64)
    object_model = np.zeros((1, 65), np.float64)
    # The models start from k-means with random centres: seeded, the same request
    # always gives the same mask.
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(bgr), labels.copy(), None, background_model, object_model, MODEL_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return background_model, object_model


def correction_reach(prompts: Prompts) -> np.ndarray | None:
    """In a correction round (one with a non-empty ``current_mask``), the pixels the new
    strokes, clicks and box may speak for: within ``CORRECTION_REACH_SHARE`` of the
    diagonal (at least ``CORRECTION_REACH_MIN_PX``) of them. None in a first round.
    """
    if prompts.current_mask is None or not prompts.current_mask.any():
        return None
    height, width = prompts.shape
    reach_px = max(CORRECTION_REACH_MIN_PX, int(round(CORRECTION_REACH_SHARE * np.hypot(height, width))))
    touched = (prompts.positive_scribbles | prompts.negative_scribbles).astype(np.uint8)
    for x, y in prompts.points:
        touched[min(int(y), height - 1), min(int(x), width - 1)] = 1
    if prompts.box is not None:
        x0, y0, x1, y1 = (int(round(value)) for value in prompts.box)
        touched[y0:y1, x0:x1] = 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach_px + 1, 2 * reach_px + 1))
    return cv2.dilate(touched, kernel) > 0


def refine_mask(image: np.ndarray, mask: np.ndarray, prompts: Prompts, option: str) -> np.ndarray:
    """Refines ``mask`` (the engine's, hard constraints applied).

    In a correction round the refinement only counts within the new prompts' reach:
    elsewhere the unrefined mask is kept, which there is the previous round's mask
    wherever the engine kept it. Refining the whole boundary again would move it far
    from a small corrective stroke (maskrefine is not idempotent), changing what the
    user had already accepted.
    """
    if option == "none":
        return apply_hard_constraints(mask, prompts)
    if option == "edgerefine":
        refined = edge_refine(image, mask, prompts)
    elif option == "maskrefine":
        refined = mask_refine(image, mask, prompts)
    else:
        raise ValueError(f"refine option must be one of {', '.join(REFINE_OPTIONS)}, not {option!r}")
    reach = correction_reach(prompts)
    if reach is None:
        return refined
    return apply_hard_constraints(np.where(reach, refined, mask.astype(bool)), prompts)


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
