"""The soak test's images: a textured ellipse (the object) on a textured background."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Scene:
    """An image, its object's true mask, and where to paint: the object's centre and half axes."""

    png: bytes
    truth: np.ndarray  # HxW bool
    centre: tuple[float, float]  # (x, y) pixels
    half_axes: tuple[float, float]
    width: int
    height: int


def make_scene(width: int, height: int, seed: int, image_format: str = "PNG") -> Scene:
    rng = np.random.default_rng(seed)
    centre = (width * rng.uniform(0.42, 0.58), height * rng.uniform(0.42, 0.58))
    half_axes = (width * rng.uniform(0.18, 0.26), height * rng.uniform(0.18, 0.26))
    object_mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(
        object_mask, (round(centre[0]), round(centre[1])), (round(half_axes[0]), round(half_axes[1])), 0, 0, 360, 1, -1
    )
    truth = object_mask.astype(bool)
    image = np.empty((height, width, 3), np.float32)
    image[:] = rng.uniform(40, 110, 3)
    image[truth] = rng.uniform(150, 230, 3)
    image += rng.normal(0, 12, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, image_format)
    return Scene(buffer.getvalue(), truth, centre, half_axes, width, height)
