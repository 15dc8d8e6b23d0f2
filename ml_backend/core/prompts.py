"""What a person told us about the object: strokes, clicks, a box and the mask so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


class PromptError(InputError):
    """Prompts that do not fit the image (shape, dtype, coordinates)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name


def _empty_points() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float32)


def _empty_labels() -> np.ndarray:
    return np.zeros((0,), dtype=np.int32)


@dataclass(frozen=True)
class Prompts:
    """Everything a round knows about the wanted object, on the image's pixel grid.

    ``points`` are (x, y) pixel coordinates; ``point_labels`` 1 = on the object,
    0 = not on it. ``box`` is (x0, y0, x1, y1) in pixels. ``previous_logits`` are an
    engine's own low-resolution logits from the round that produced
    ``current_mask``; engines that cannot use them ignore them.
    """

    positive_scribbles: np.ndarray
    negative_scribbles: np.ndarray
    current_mask: np.ndarray | None = None
    points: np.ndarray = field(default_factory=_empty_points)
    point_labels: np.ndarray = field(default_factory=_empty_labels)
    box: np.ndarray | None = None
    previous_logits: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.positive_scribbles.shape)  # type: ignore[return-value]

    @property
    def positive_points(self) -> np.ndarray:
        return self.points[self.point_labels == 1]

    @property
    def negative_points(self) -> np.ndarray:
        return self.points[self.point_labels == 0]

    def has_positive_evidence(self) -> bool:
        """True when something says where the object is (a stroke, a click, a box or a mask)."""
        return bool(
            self.positive_scribbles.any()
            or len(self.positive_points)
            or self.box is not None
            or (self.current_mask is not None and self.current_mask.any())
        )

    def replace(self, **changes: object) -> "Prompts":
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Prompts(**values)  # type: ignore[arg-type]


def make_prompts(
    image_shape: tuple[int, ...],
    positive_scribbles: np.ndarray | None = None,
    negative_scribbles: np.ndarray | None = None,
    current_mask: np.ndarray | None = None,
    points: np.ndarray | list | None = None,
    point_labels: np.ndarray | list | None = None,
    box: np.ndarray | list | tuple | None = None,
    previous_logits: np.ndarray | None = None,
) -> Prompts:
    """Checks and normalises prompts for an image of ``image_shape`` (H, W[, C])."""
    height, width = int(image_shape[0]), int(image_shape[1])

    def as_map(name: str, value: np.ndarray | None) -> np.ndarray | None:
        if value is None:
            return None
        array = np.asarray(value)
        if array.ndim == 3 and array.shape[2] in (1, 3, 4):
            array = array.max(axis=2) if array.dtype != bool else array.any(axis=2)
        if array.shape != (height, width):
            raise PromptError(
                name,
                f"is {array.shape[1] if array.ndim > 1 else '?'}x{array.shape[0]} pixels, "
                f"the image is {width}x{height}: it must have the image's resolution",
            )
        return array.astype(bool, copy=False) if array.dtype == bool else array > 0

    positive = as_map("positive_scribbles", positive_scribbles)
    negative = as_map("negative_scribbles", negative_scribbles)
    mask = as_map("current_mask", current_mask)
    if mask is not None and not mask.any():
        # An empty mask says nothing about the object: a round with one must be
        # the same round as one without (engines would otherwise read "all background").
        mask = None
    positive = np.zeros((height, width), bool) if positive is None else positive
    negative = np.zeros((height, width), bool) if negative is None else negative
    # A pixel painted both ways is ambiguous; the later, corrective intent is
    # unknowable here, so the safer reading is "not the object".
    positive = positive & ~negative

    point_array = _empty_points() if points is None else np.asarray(points, np.float32).reshape(-1, 2)
    if point_labels is None:
        label_array = np.ones(len(point_array), np.int32)
    else:
        label_array = np.asarray(point_labels, np.int32).reshape(-1)
    if len(label_array) != len(point_array):
        raise PromptError("point_labels", f"has {len(label_array)} labels for {len(point_array)} points")
    if len(point_array) and not np.isfinite(point_array).all():
        raise PromptError("points", "must be finite numbers")
    if len(point_array):
        inside = (
            (point_array[:, 0] >= 0)
            & (point_array[:, 0] <= width)
            & (point_array[:, 1] >= 0)
            & (point_array[:, 1] <= height)
        )
        if not inside.all():
            raise PromptError("points", f"must lie inside the {width}x{height} image")
    if not set(np.unique(label_array).tolist()) <= {0, 1}:
        raise PromptError("point_labels", "must be 1 (object) or 0 (not the object)")

    box_array = None
    if box is not None:
        box_array = np.asarray(box, np.float32).reshape(-1)
        if box_array.shape != (4,) or not np.isfinite(box_array).all():
            raise PromptError("box", "must be four finite numbers x0, y0, x1, y1")
        x0, y0, x1, y1 = box_array
        box_array = np.array(
            [max(0, min(x0, x1)), max(0, min(y0, y1)), min(width, max(x0, x1)), min(height, max(y0, y1))],
            np.float32,
        )
        if box_array[2] - box_array[0] < 1 or box_array[3] - box_array[1] < 1:
            raise PromptError("box", "must cover at least one pixel of the image")

    return Prompts(
        positive_scribbles=positive,
        negative_scribbles=negative,
        current_mask=mask,
        points=point_array,
        point_labels=label_array,
        box=box_array,
        previous_logits=previous_logits,
    )


def decode_integrated_mask(integrated: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits the API's integrated image: R = current mask, G = positive, B = negative (>= 128)."""
    array = np.asarray(integrated)
    if array.ndim != 3 or array.shape[2] < 3:
        raise PromptError("IntegratedMask", "must be an RGB image (R = mask, G = positive, B = negative)")
    threshold = 128
    current_mask = array[:, :, 0] >= threshold
    positive = array[:, :, 1] >= threshold
    negative = array[:, :, 2] >= threshold
    return current_mask, positive, negative
