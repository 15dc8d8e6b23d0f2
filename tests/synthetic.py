"""Synthetic images with a known object, shared by the tests."""

from __future__ import annotations

import cv2
import numpy as np

# The one IoU of the project (the evaluation's), re-exported for the tests.
from ml_backend.tools.evaluation.metrics import iou

__all__ = ["disc_scene", "iou", "scribbles_for"]


def disc_scene(height: int = 160, width: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reddish textured ellipse on a bluish textured background; returns (image, object mask)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 4, height // 4), 15, 0, 360, 1, -1)
    mask = mask.astype(bool)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (60, 90, 170)
    image[mask] = (200, 80, 60)
    image += rng.normal(0, 14, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def scribbles_for(mask: np.ndarray, thickness: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A positive stroke across the object's middle and a negative frame near the border."""
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    center_y, center_x = int(rows.mean()), int(cols.mean())
    span = int((cols.max() - cols.min()) * 0.3)
    positive = np.zeros((height, width), np.uint8)
    cv2.line(positive, (center_x - span, center_y), (center_x + span, center_y), 1, thickness)
    negative = np.zeros((height, width), np.uint8)
    cv2.rectangle(negative, (5, 5), (width - 6, height - 6), 1, thickness)
    return positive.astype(bool) & mask, negative.astype(bool) & ~mask
