"""Scores of one predicted mask against the ground truth, and the per-engine summary.

Void pixels (the benchmark's "unknown" band) are left out of every score. An
empty prediction of an empty object scores 1.0: there was nothing to find.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

#: IoU thresholds reported as "number of strokes" (NoS@85, NoS@90).
NOS_THRESHOLDS: tuple[float, ...] = (0.85, 0.90)


def _as_bool(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    return array if array.dtype == bool else array > 0


def _scored_pixels(shape: tuple[int, ...], void: np.ndarray | None) -> np.ndarray:
    if void is None:
        return np.ones(shape[:2], bool)
    return ~_as_bool(void)


def iou(prediction: np.ndarray, ground_truth: np.ndarray, void: np.ndarray | None = None) -> float:
    """Intersection over union of two masks, counting only pixels outside ``void``."""
    predicted = _as_bool(prediction)
    truth = _as_bool(ground_truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"prediction is {predicted.shape}, ground truth {truth.shape}: they must match")
    scored = _scored_pixels(truth.shape, void)
    union = np.count_nonzero((predicted | truth) & scored)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(predicted & truth & scored) / union)


def boundary_band_width(shape: tuple[int, ...]) -> int:
    """The band's width in pixels: 2% of the image diagonal, at least 1."""
    height, width = int(shape[0]), int(shape[1])
    return max(1, int(round(0.02 * math.hypot(height, width))))


def boundary_band(mask: np.ndarray, band_width: int) -> np.ndarray:
    """``mask - erode(mask, 3x3, band_width)``: the object's pixels near its boundary.

    The mask is padded with background before eroding, so an object cut by the
    image frame has a band along the frame too, as in Cheng et al.'s Boundary
    IoU reference code (on GrabCut the choice moves mean boundary IoU by < 0.005).
    """
    object_pixels = _as_bool(mask).astype(np.uint8)
    padded = cv2.copyMakeBorder(object_pixels, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=band_width)[1:-1, 1:-1]
    return (object_pixels > 0) & (eroded == 0)


def boundary_iou(prediction: np.ndarray, ground_truth: np.ndarray, void: np.ndarray | None = None) -> float:
    """IoU of the ground truth's boundary band against the prediction's, outside ``void``."""
    predicted = _as_bool(prediction)
    truth = _as_bool(ground_truth)
    band_width = boundary_band_width(truth.shape)
    return iou(boundary_band(predicted, band_width), boundary_band(truth, band_width), void)


def strokes_to_reach(ious: Sequence[float], threshold: float, max_interactions: int) -> tuple[int, bool]:
    """Strokes needed until IoU first reaches ``threshold`` (round 1 = 1), and whether it did.

    A sample that never gets there within ``max_interactions`` counts as
    ``max_interactions``, as in the NoC protocol of click benchmarks.
    """
    for round_index, value in enumerate(ious[:max_interactions]):
        if value >= threshold:
            return round_index + 1, True
    return max_interactions, False


def nos_key(threshold: float) -> str:
    return f"nos_{int(round(threshold * 100))}"


def summarize(
    per_sample_ious: Sequence[Sequence[float]],
    per_sample_boundary_ious: Sequence[Sequence[float]],
    round_seconds: Sequence[float],
    max_interactions: int,
) -> dict[str, object]:
    """Benchmark figures over samples whose IoU lists hold ``max_interactions`` rounds each.

    ``miou_at[k]`` is the mean IoU after round k + 1; ``nos_85``/``nos_90`` the mean
    strokes to reach that IoU and ``nos_*_failures`` how many samples never did.
    """
    count = len(per_sample_ious)
    summary: dict[str, object] = {"count": count}
    if count == 0:
        summary.update({"miou_at": [], "miou_first": None, "biou_first": None, "mbiou_at": []})
        for threshold in NOS_THRESHOLDS:
            summary[nos_key(threshold)] = None
            summary[nos_key(threshold) + "_failures"] = 0
    else:
        ious = np.asarray(per_sample_ious, np.float64)
        boundary = np.asarray(per_sample_boundary_ious, np.float64)
        if ious.shape != (count, max_interactions) or boundary.shape != (count, max_interactions):
            raise ValueError(f"every sample needs {max_interactions} rounds of IoU and boundary IoU")
        miou_at = ious.mean(axis=0)
        mbiou_at = boundary.mean(axis=0)
        summary["miou_at"] = [float(value) for value in miou_at]
        summary["mbiou_at"] = [float(value) for value in mbiou_at]
        summary["miou_first"] = float(miou_at[0])
        summary["biou_first"] = float(mbiou_at[0])
        for threshold in NOS_THRESHOLDS:
            reached = [strokes_to_reach(row, threshold, max_interactions) for row in per_sample_ious]
            summary[nos_key(threshold)] = float(np.mean([strokes for strokes, _ in reached]))
            summary[nos_key(threshold) + "_failures"] = sum(1 for _, ok in reached if not ok)
    summary["seconds_per_round_median"] = float(np.median(round_seconds)) if len(round_seconds) else None
    return summary
