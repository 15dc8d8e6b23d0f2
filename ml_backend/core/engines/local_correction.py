"""A correction round's change: only near its strokes, and only what they speak for.

A corrective stroke flips pixels of one label: a positive stroke outside the
current mask adds, a negative one inside it removes. Four limits keep the change
to the error the stroke was drawn on:

- ``correction_region``: a stroke reaches a share of its length around it;
- ``held_by_current_labels``: within that reach, the change stops at an edge
  beyond which the pixels are nearer what the stroke does not speak for
  (COCO128-instances robot rounds: the pixels a negative correction wrongly
  removes elsewhere fall from 0.52 to 0.29 of the corrected error's size);
- ``beyond_missed_width``: an addition stays within a few times the stroke's
  distance from the mask (a strip missed along the mask is narrow);
- ``applied_locally``: only changes connected to a corrective stroke are kept.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from .geodesic import _EIGHT_CONNECTED, enlarge, geodesic_graph, keep_components_touching, nearest_seed_labels

#: A stroke corrects an error about as long as itself: it reaches half its length around it.
REACH_LENGTH_SHARE = 0.5
#: In working pixels: a stroke on the mask's very edge still speaks for a thin strip.
_LEAST_MISSED_WIDTH = 2.0


def correction_region(
    strokes: np.ndarray, least_reach: float, length_share: float = REACH_LENGTH_SHARE
) -> tuple[np.ndarray, float]:
    """Where strokes may change the mask, and the farthest reach in pixels (0 without strokes).

    Each stroke reaches ``length_share`` of its length around it, and at least
    ``least_reach`` of the diagonal: a long stroke corrects a long error.
    """
    least = least_reach * float(np.hypot(*strokes.shape))
    labels, _ = ndimage.label(strokes, structure=_EIGHT_CONNECTED)
    region = np.zeros(strokes.shape, bool)
    farthest = 0.0
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        length = max(rows.stop - rows.start, cols.stop - cols.start)
        reach = max(least, length_share * length)
        farthest = max(farthest, reach)
        # Distances only matter within the reach: measure them in the stroke's padded box.
        pad = int(np.ceil(reach)) + 1
        box = (
            slice(max(0, rows.start - pad), rows.stop + pad),
            slice(max(0, cols.start - pad), cols.stop + pad),
        )
        outside_stroke = (labels[box] != index).astype(np.uint8)
        region[box] |= cv2.distanceTransform(outside_stroke, cv2.DIST_L2, 3) <= reach
    return region, farthest


def held_by_current_labels(
    costs: np.ndarray, current: np.ndarray, positive: np.ndarray, negative: np.ndarray, wide_reach: np.ndarray
) -> np.ndarray:
    """Pixels a correction leaves as they are: nearer, along pixels of their own label, to what
    the correction does not speak for than to a corrective stroke.

    The rivals of the strokes that flip one label are the pixels of that label
    beyond ``wide_reach`` and the earlier strokes of the other sign. A pixel nearer
    a rival stays: the change stops at the edge between the error and what was
    right, not wherever the colour models say (a second giraffe's colours are the
    first's). ``wide_reach`` lies well beyond the correction's own reach, so that
    without an edge nothing within that reach is held: a hat that runs on beyond
    it is still the hat (Berkeley: rivals at the reach itself cost 0.05 NoS@85).
    """
    held = np.zeros(current.shape, bool)
    for label_pixels, strokes, other_strokes in ((~current, positive, negative), (current, negative, positive)):
        strokes = strokes & label_pixels
        rivals = ((label_pixels & ~wide_reach) | (other_strokes & label_pixels)) & ~strokes
        if not strokes.any() or not rivals.any():
            continue
        seeds = np.zeros(current.shape, np.int32)
        seeds[rivals] = 2
        seeds[strokes] = 1
        nearest = nearest_seed_labels(geodesic_graph(costs, within=label_pixels), seeds)
        held |= label_pixels & (nearest == 2)
    return held


def beyond_missed_width(current: np.ndarray, adding: np.ndarray, width_factor: float) -> np.ndarray:
    """Pixels outside ``current`` that an adding stroke cannot speak for: each stroke pixel
    speaks for those within ``width_factor`` times its own distance from the mask.

    A stroke drawn along a missed part lies about halfway across it: a strip left
    beside the mask is as wide as twice the stroke's distance from it, while a
    missed lobe away from the mask may be as wide as that distance is long. Each
    pixel's own distance, not the stroke's farthest: a rim stroke that loops wide
    at one end must not let its near end take the wall beside the mask
    (COCO128-instances 446_11, round 2: 0.491 with the farthest, 0.704).
    """
    distance_to_mask = cv2.distanceTransform((~current).astype(np.uint8), cv2.DIST_L2, 3)
    radii = np.maximum(_LEAST_MISSED_WIDTH, np.ceil(distance_to_mask[adding]))
    rows, cols = np.nonzero(adding)
    spoken_for = np.zeros(current.shape, bool)
    # One distance transform per whole-pixel radius: a stroke spans a few dozen at most.
    for radius in np.unique(radii):
        not_at_radius = np.ones(current.shape, np.uint8)
        at_radius = radii == radius
        not_at_radius[rows[at_radius], cols[at_radius]] = 0
        spoken_for |= cv2.distanceTransform(not_at_radius, cv2.DIST_L2, 3) <= width_factor * radius
    return ~current & ~spoken_for


def applied_locally(
    current: np.ndarray,
    small_current: np.ndarray,
    small_mask: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    full_shape: tuple[int, int],
) -> np.ndarray:
    """The current mask, changed only where the working-size result differs in a part a correction touches.

    Without this a stroke on one error would also let GrabCut drift elsewhere;
    and unchanged parts keep the current mask's full-resolution edge.
    """
    small_changed = small_mask ^ small_current
    if small_changed.shape != full_shape:
        # One working pixel of margin: the enlarged change must cover its whole footprint.
        small_changed = cv2.dilate(small_changed.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    changed_region = enlarge(small_changed, full_shape)
    proposal = np.where(changed_region, enlarge(small_mask, full_shape), current)
    difference = proposal ^ current
    corrective = (positive & ~current) | (negative & current)
    touched = keep_components_touching(difference, corrective)
    return current ^ touched
