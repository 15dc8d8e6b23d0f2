"""Several objects of one class in one task: which strokes and pixels belong to the mask being made.

An annotator labels objects one after the other: strokes, a click, accept. Each
accepted mask of a class is an instance of its own, and the rule is:

- a stroke of the class belongs to the accepted instance that holds most of it
  (at least half of its pixels); a stroke outside every accepted mask is free;
- the click says which instance is being made: a positive click inside an
  accepted mask refines that instance (its own strokes and the free ones are
  positive, its accepted mask seeds the round); a click elsewhere makes a new
  instance from the free strokes;
- the strokes of every other instance say "not this object", and so do the
  pixels of every other accepted mask of the class, except where the strokes of
  the instance being made lie on them: only strokes claim an accepted pixel.

Plain arrays in and out (HxW bool masks, click points in pixels); nothing here
knows Label Studio's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A stroke belongs to an accepted mask that holds at least this share of its pixels.
OWNED_SHARE = 0.5
# A later accepted mask that covers this share of an earlier one (of the smaller of
# the two) is the same instance accepted again after a refinement: it replaces it.
SAME_INSTANCE_SHARE = 0.5


@dataclass
class Stroke:
    """One painted stroke region: its label and its pixels."""

    label: str
    mask: np.ndarray


@dataclass
class InstancePlan:
    """The scribbles of one round, and what the mask must keep out of.

    ``refined`` is the index (into the merged accepted instances) of the
    instance being refined, None for a new one; ``previous`` its accepted mask.
    ``keep_out`` are other instances' pixels no stroke of this one claims.
    """

    positive: np.ndarray
    negative: np.ndarray
    keep_out: np.ndarray
    previous: np.ndarray | None = None
    refined: int | None = None
    owners: list[int | None] = field(default_factory=list)

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """The segmented mask without the pixels of other instances that no stroke claims."""
        return np.asarray(mask, bool) & ~self.keep_out


def merge_accepted(accepted: list[np.ndarray]) -> list[np.ndarray]:
    """Accepted masks in order, a later one replacing an earlier one it mostly overlaps."""
    instances: list[np.ndarray] = []
    for mask in accepted:
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        for index, earlier in enumerate(instances):
            overlap = int(np.count_nonzero(mask & earlier))
            smaller = min(int(np.count_nonzero(mask)), int(np.count_nonzero(earlier)))
            if overlap >= SAME_INSTANCE_SHARE * smaller:
                instances[index] = mask
                break
        else:
            instances.append(mask)
    return instances


def stroke_owner(stroke: np.ndarray, instances: list[np.ndarray]) -> int | None:
    """The instance holding at least OWNED_SHARE of the stroke (the most of it), else None."""
    size = int(np.count_nonzero(stroke))
    if size == 0 or not instances:
        return None
    shares = [np.count_nonzero(stroke & instance) / size for instance in instances]
    best = int(np.argmax(shares))
    return best if shares[best] >= OWNED_SHARE else None


def clicked_instance(instances: list[np.ndarray], points: np.ndarray, point_labels: np.ndarray) -> int | None:
    """The instance under the newest positive click, else None (a new instance)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    labels = np.asarray(point_labels).reshape(-1)
    for (x, y), label in zip(points[::-1], labels[::-1]):
        if label != 1:
            continue
        for index, instance in enumerate(instances):
            height, width = instance.shape
            row, column = min(int(y), height - 1), min(int(x), width - 1)
            if row >= 0 and column >= 0 and instance[row, column]:
                return index
        return None
    return None


def plan_instance(
    strokes: list[Stroke],
    accepted: list[np.ndarray],
    target_label: str,
    shape: tuple[int, int],
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
) -> InstancePlan:
    """Positive and negative scribbles for the instance the click asks for (see the module rule).

    ``strokes`` are every stroke region of the task (all labels); ``accepted``
    the accepted masks of the target class, oldest first.
    """
    instances = merge_accepted(accepted)
    points = np.zeros((0, 2)) if points is None else points
    point_labels = np.zeros((0,)) if point_labels is None else point_labels
    refined = clicked_instance(instances, points, point_labels)

    positive = np.zeros(shape, bool)
    negative = np.zeros(shape, bool)
    owners: list[int | None] = []
    for stroke in strokes:
        mask = np.asarray(stroke.mask, bool)
        if stroke.label != target_label:
            negative |= mask
            owners.append(None)
            continue
        owner = stroke_owner(mask, instances)
        owners.append(owner)
        if owner is None or owner == refined:
            positive |= mask
        else:
            negative |= mask

    others = np.zeros(shape, bool)
    for index, instance in enumerate(instances):
        if index != refined:
            others |= instance
    keep_out = others & ~positive
    return InstancePlan(
        positive=positive,
        negative=negative | keep_out,
        keep_out=keep_out,
        previous=instances[refined] if refined is not None else None,
        refined=refined,
        owners=owners,
    )
