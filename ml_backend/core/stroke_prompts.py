"""Turns scribbles into the prompts SAM-family decoders understand: points, a box, a mask.

SAM was trained on clicks and boxes, not strokes. A stroke is read as a handful of
clicks spread along it (one centroid would lose the stroke's extent and can fall
off a curved stroke), with more clicks for longer strokes and a cap on the total,
because SAM's masks get worse, not better, past a dozen or two points.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .prompts import Prompts

#: SAM's low-resolution mask grid; ``previous_logits`` of any other shape are not ours.
LOW_RES_MASK_SIZE = 256

#: Components smaller than this are specks from a shaky hand or an anti-aliased edge.
MIN_COMPONENT_PIXELS = 3

#: More candidate pixels than this are subsampled before farthest-point sampling.
MAX_SAMPLING_CANDIDATES = 20_000


@dataclass(frozen=True)
class SamPrompts:
    """Prompts on the image's pixel grid, ready to be scaled to an engine's input.

    ``points`` are (x, y); ``labels`` 1 = object, 0 = background; ``box`` is
    (x0, y0, x1, y1); ``mask_input`` the 1x256x256 logits of the previous round.
    ``multimask`` asks the decoder for its three candidates (for an ambiguous
    one- or two-click prompt), of which the caller keeps the best-scoring one.
    """

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None
    mask_input: np.ndarray | None
    multimask: bool

    @property
    def is_empty(self) -> bool:
        return len(self.points) == 0 and self.box is None and self.mask_input is None

    @property
    def has_positive_prompt(self) -> bool:
        return bool((self.labels == 1).any()) or self.box is not None or self.mask_input is not None


@dataclass(frozen=True)
class _StrokeComponent:
    pixels_xy: np.ndarray  # the stroke's core pixels, (x, y)
    centroid_xy: np.ndarray
    length: float
    label: int


def _stroke_components(strokes: np.ndarray, label: int) -> list[_StrokeComponent]:
    if not strokes.any():
        return []
    stroke_u8 = strokes.astype(np.uint8)
    count, component_map, stats, centroids = cv2.connectedComponentsWithStats(stroke_u8, connectivity=8)
    # Distance to the stroke's edge: its ridge is the stroke's centre line, so points
    # taken from the ridge sit mid-stroke instead of on a brush edge that may already
    # overlap the object's boundary.
    distance = cv2.distanceTransform(stroke_u8, cv2.DIST_L2, 3)
    components = []
    for index in range(1, count):
        area = int(stats[index, cv2.CC_STAT_AREA])
        if area < MIN_COMPONENT_PIXELS:
            continue
        left, top = stats[index, cv2.CC_STAT_LEFT], stats[index, cv2.CC_STAT_TOP]
        width, height = stats[index, cv2.CC_STAT_WIDTH], stats[index, cv2.CC_STAT_HEIGHT]
        window = (slice(top, top + height), slice(left, left + width))
        inside = component_map[window] == index
        local_distance = np.where(inside, distance[window], 0.0)
        half_width = float(local_distance.max())
        core = local_distance >= max(1.0, 0.5 * half_width)
        if not core.any():
            core = inside
        ys, xs = np.nonzero(core)
        pixels_xy = np.stack([xs + left, ys + top], axis=1).astype(np.float32)
        stroke_width = max(1.0, 2.0 * half_width)
        length = max(float(area) / stroke_width, float(max(width, height)))
        components.append(
            _StrokeComponent(
                pixels_xy=pixels_xy,
                centroid_xy=np.asarray(centroids[index], np.float32),
                length=length,
                label=label,
            )
        )
    return components


def farthest_points(pixels_xy: np.ndarray, count: int, seed_xy: np.ndarray) -> np.ndarray:
    """``count`` of ``pixels_xy`` spread as far apart as possible, starting next to ``seed_xy``.

    Starting from the pixel nearest the seed (a stroke's centroid) makes a single
    point central; each next one is the pixel farthest from all chosen so far, so
    the ends of a stroke come second and third.
    """
    if len(pixels_xy) == 0 or count <= 0:
        return np.zeros((0, 2), np.float32)
    if len(pixels_xy) > MAX_SAMPLING_CANDIDATES:
        step = int(np.ceil(len(pixels_xy) / MAX_SAMPLING_CANDIDATES))
        pixels_xy = pixels_xy[::step]
    count = min(count, len(pixels_xy))
    first = int(np.argmin(((pixels_xy - seed_xy) ** 2).sum(axis=1)))
    chosen = [first]
    nearest_chosen = ((pixels_xy - pixels_xy[first]) ** 2).sum(axis=1)
    for _ in range(count - 1):
        next_index = int(np.argmax(nearest_chosen))
        if nearest_chosen[next_index] <= 0:
            break
        chosen.append(next_index)
        nearest_chosen = np.minimum(nearest_chosen, ((pixels_xy - pixels_xy[next_index]) ** 2).sum(axis=1))
    return pixels_xy[chosen].astype(np.float32)


def _points_per_component(components: list[_StrokeComponent], budget: int, spacing: float) -> list[int]:
    """One point per ``spacing`` pixels of stroke, shrunk to fit ``budget`` points in all.

    Every component keeps at least one point while the budget allows; past that the
    shortest components are dropped, because a long stroke says more about where
    the object is than a dab.
    """
    if budget <= 0 or not components:
        return [0] * len(components)
    wanted = np.array([1 + int(component.length // spacing) for component in components], np.int64)
    if wanted.sum() <= budget:
        return wanted.tolist()
    allocation = np.zeros(len(components), np.int64)
    by_length = np.argsort([-component.length for component in components], kind="stable")
    kept = by_length[:budget]
    allocation[kept] = 1
    spare = budget - len(kept)
    if spare > 0:
        extra_wanted = (wanted - allocation).clip(min=0).astype(np.float64)
        extra = np.floor(extra_wanted * spare / max(extra_wanted.sum(), 1.0)).astype(np.int64)
        allocation += extra
        leftover = budget - int(allocation.sum())
        # Whole points left by rounding go to the components still furthest from their wish.
        for index in np.argsort(-(wanted - allocation), kind="stable")[:leftover]:
            if wanted[index] > allocation[index]:
                allocation[index] += 1
    return allocation.tolist()


def _mask_box(mask: np.ndarray) -> np.ndarray | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def padded_stroke_box(positive: np.ndarray, margin: float, min_margin_pixels: float = 4.0) -> np.ndarray | None:
    """The positive strokes' bounding box grown by ``margin`` of its size on each side.

    Strokes are drawn inside the object, so their box is too tight; the margin
    guesses how far the object reaches past them. The box stops at the image's
    border. It does not stop at negative strokes: on MedScribble, cutting the box
    at the nearest negative stroke beyond the positive ones lowered LiteMedSAM's
    IoU (0.69 -> 0.57), since objects curve around the background marked inside
    their box.
    """
    box = _mask_box(positive)
    if box is None:
        return None
    height, width = positive.shape
    x0, y0, x1, y1 = (float(value) for value in box)
    pad_x = max(min_margin_pixels, margin * (x1 - x0))
    pad_y = max(min_margin_pixels, margin * (y1 - y0))
    return np.array(
        [max(0.0, x0 - pad_x), max(0.0, y0 - pad_y), min(float(width), x1 + pad_x), min(float(height), y1 + pad_y)],
        np.float32,
    )


def _previous_logits(prompts: Prompts) -> np.ndarray | None:
    logits = prompts.previous_logits
    if logits is None:
        return None
    logits = np.asarray(logits, np.float32)
    if logits.size != LOW_RES_MASK_SIZE * LOW_RES_MASK_SIZE or logits.ndim not in (2, 3, 4):
        # Logits from another kind of engine (or none at all): nothing SAM can read.
        return None
    logits = logits.reshape(1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
    return logits if np.isfinite(logits).all() else None


def sam_prompts_from(
    prompts: Prompts,
    max_points: int = 16,
    point_spacing: float | None = None,
    always_box: bool = False,
    box_margin: float = 0.25,
    use_points: bool = True,
    use_mask_input: bool = True,
) -> SamPrompts:
    """SAM prompts for a round of strokes, clicks, a box and the mask so far.

    ``max_points`` caps all points together; explicit clicks are kept first (the
    latest ones when there are too many), strokes share the rest. ``point_spacing``
    is the stroke length per extra point (default: 1/16 of the image's longer side).
    A box is used when one is given, else the box of the current mask united with
    the positive strokes; with ``always_box`` (for box-trained models) the positive
    strokes' box grown by ``box_margin`` stands in when there is no mask.
    ``use_points=False`` gives no points at all (for models that points confuse):
    strokes and clicks then only shape the box.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    height, width = prompts.shape
    spacing = float(point_spacing) if point_spacing else max(height, width) / 16.0

    explicit_points = np.asarray(prompts.points, np.float32).reshape(-1, 2)
    explicit_labels = np.asarray(prompts.point_labels, np.int32).reshape(-1)
    if len(explicit_points) > max_points:
        explicit_points = explicit_points[-max_points:]
        explicit_labels = explicit_labels[-max_points:]

    point_sets = [explicit_points]
    label_sets = [explicit_labels]
    if use_points:
        components = _stroke_components(prompts.positive_scribbles, 1) + _stroke_components(
            prompts.negative_scribbles, 0
        )
        budget = max_points - len(explicit_points)
        for component, count in zip(components, _points_per_component(components, budget, spacing)):
            if count == 0:
                continue
            sampled = farthest_points(component.pixels_xy, count, component.centroid_xy)
            point_sets.append(sampled)
            label_sets.append(np.full(len(sampled), component.label, np.int32))
    points = np.concatenate(point_sets, axis=0).astype(np.float32)
    labels = np.concatenate(label_sets, axis=0).astype(np.int32)
    if not use_points:
        points, labels = points[:0], labels[:0]

    box = None
    if prompts.box is not None:
        box = np.asarray(prompts.box, np.float32).reshape(4)
    elif prompts.current_mask is not None and prompts.current_mask.any():
        kept = prompts.current_mask & ~claimed_by_negative_strokes(
            prompts.current_mask, prompts.positive_scribbles, prompts.negative_scribbles
        )
        box = _mask_box(kept | prompts.positive_scribbles)
    elif always_box:
        positive_marks = prompts.positive_scribbles
        if len(explicit_points) and (explicit_labels == 1).any():
            positive_marks = positive_marks | _points_mask(explicit_points[explicit_labels == 1], (height, width))
        box = padded_stroke_box(positive_marks, box_margin, min_margin_pixels=max(4.0, 0.02 * max(height, width)))

    mask_input = _previous_logits(prompts) if use_mask_input else None
    multimask = box is None and mask_input is None and 1 <= len(points) <= 2
    return SamPrompts(points=points, labels=labels, box=box, mask_input=mask_input, multimask=multimask)


# The cost of a step from outside the region: no path inside an image comes near it.
_OUTSIDE_STEP = 1e9


def claimed_by_negative_strokes(current: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Pixels of ``current`` nearer, within it, to a negative stroke on it than to any positive stroke.

    A negative stroke on a touching neighbour that the mask took in says the
    neighbour is not the object: the box drawn from the mask must leave it out,
    or a box-prompted decoder segments both again (LiteMedSAM, two touching
    discs: IoU 0.50 with the target before, see tests/test_lookalike_sam.py).
    Distances run inside the mask, so a stroke claims the part it lies on.
    """
    on_mask = negative & current
    if not on_mask.any() or not positive.any():
        return np.zeros(current.shape, bool)
    region = current | positive | on_mask
    to_positive = _distance_within(region, positive)
    to_negative = _distance_within(region, on_mask)
    return current & (to_negative < to_positive) & (to_negative < _OUTSIDE_STEP)


def _distance_within(region: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Geodesic (8-connected, unit step) distance from ``seeds`` through ``region``; inf outside."""
    from scipy.sparse.csgraph import dijkstra

    from .engines.geodesic_grabcut import geodesic_graph, step_costs

    height, width = region.shape
    # Steps from outside the region cost too much to be taken: paths stay inside.
    leaving = np.where(region, 1.0, _OUTSIDE_STEP).astype(np.float32)
    costs = step_costs(np.zeros((4, height, width), np.float32), 0.0) * leaving[None]
    graph = geodesic_graph(costs)
    distances = dijkstra(graph, directed=False, indices=np.flatnonzero(seeds), min_only=True)
    return distances.reshape(height, width)


def _points_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    xs = np.clip(np.round(points_xy[:, 0]).astype(np.int64), 0, shape[1] - 1)
    ys = np.clip(np.round(points_xy[:, 1]).astype(np.int64), 0, shape[0] - 1)
    mask[ys, xs] = True
    return mask
