"""Small mask helpers shared by the GrabCut engine and the refinement."""

from __future__ import annotations

import cv2
import numpy as np

# GrabCut fits 5-component colour models: with fewer samples than this per side
# its k-means initialisation fails, so such trimaps are answered without it.
MIN_COLOUR_MODEL_SAMPLES = 10


def padded_box(region: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of ``region`` grown by ``margin`` on each side and clipped to the image; None when empty."""
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    if len(rows) == 0:
        return None
    height, width = region.shape
    return (
        slice(max(0, rows[0] - margin), min(height, rows[-1] + margin + 1)),
        slice(max(0, cols[0] - margin), min(width, cols[-1] + margin + 1)),
    )


def shrink_any(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Any-pixel downscale: a thin stroke must survive the reduction."""
    if mask.shape == shape:
        return mask.copy()
    return cv2.resize(mask.astype(np.uint8) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0


def stroke_extent(strokes: np.ndarray) -> float:
    """Diagonal of the strokes' bounding box."""
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    return float(np.hypot(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


# A stroke no longer than this many times its own thickness is a dab.
_DAB_LENGTH_RATIO = 3.0


def is_dab(strokes: np.ndarray) -> bool:
    """True when ``strokes`` are a blob, not a line: at most ``_DAB_LENGTH_RATIO`` times as long
    (bounding-box diagonal) as they are thick (twice the inscribed radius)."""
    if not strokes.any():
        return False
    # Padded: the image's frame must bound a dab that touches it.
    inscribed_radius = cv2.distanceTransform(np.pad(strokes, 1).astype(np.uint8), cv2.DIST_L2, 3).max()
    return stroke_extent(strokes) <= _DAB_LENGTH_RATIO * 2 * float(inscribed_radius)
