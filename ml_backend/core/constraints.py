"""Rules every result obeys, whichever engine made it."""

from __future__ import annotations

import cv2
import numpy as np

from .prompts import Prompts


def apply_hard_constraints(mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """A positive stroke pixel is always in the result, a negative one never."""
    return (mask.astype(bool) | prompts.positive_scribbles) & ~prompts.negative_scribbles


def keep_prompted_components(mask: np.ndarray, prompts: Prompts) -> np.ndarray:
    """Drops islands that nothing asked for.

    A component survives when it touches a positive stroke or click, or overlaps
    the previous mask; with no positive evidence at all, the mask is returned
    as it is (a box-only round may legitimately find several parts).
    """
    mask = mask.astype(bool)
    anchors = prompts.positive_scribbles.copy()
    height, width = mask.shape
    for x, y in prompts.positive_points:
        anchors[min(int(y), height - 1), min(int(x), width - 1)] = True
    if prompts.current_mask is not None:
        anchors |= prompts.current_mask
    if not anchors.any() or not mask.any():
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    anchored_labels = np.unique(labels[anchors & mask])
    anchored_labels = anchored_labels[anchored_labels > 0]
    if len(anchored_labels) == 0:
        return mask
    return np.isin(labels, anchored_labels)


def fill_small_holes(mask: np.ndarray, max_hole_fraction: float = 0.001, prompts: Prompts | None = None) -> np.ndarray:
    """Fills holes smaller than a fraction of the image unless a negative stroke marks them."""
    mask = mask.astype(bool)
    holes = ~mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    limit = max_hole_fraction * mask.size
    height, width = mask.shape
    touches_border = np.zeros(count, bool)
    border_labels = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touches_border[np.unique(border_labels)] = True
    small = (stats[:, cv2.CC_STAT_AREA] <= limit) & ~touches_border
    small[0] = False
    if prompts is not None and prompts.negative_scribbles.any():
        marked = np.unique(labels[prompts.negative_scribbles])
        small[marked] = False
    if not small.any():
        return mask
    return mask | small[labels]
