"""The robot annotator: one corrective stroke per round, the way a careful person would draw it.

Each round the robot compares the current mask with the ground truth, leaving
out void pixels: the missed object (false negatives) and the wrongly included
background (false positives). It picks the error whose deepest inside point is
farthest from that error's boundary (distance transform; the image frame does
not count as a boundary, because an error cut by the frame goes on beyond it
for all the annotator knows; on a tie the missed object wins) and works on the
connected piece of that error holding the deepest point. It opens that piece
slightly (3x3 opening, which drops one-pixel slivers that would branch the
skeleton; if the opening leaves nothing near the deepest point it keeps the piece
as it was), thins it to a one-pixel skeleton (Zhang-Suen) and follows the
skeleton's longest path (two breadth-first searches: from the skeleton pixel
nearest the deepest point to the farthest pixel, then from there to the
farthest pixel again). The path is drawn with a round brush about 1% of the
image diagonal wide (at least 3 px) and clipped to the error piece, so a stroke
never leaves the error it corrects and never touches void. Strokes on missed
object are positive, strokes on wrongly included background negative. Without
real scribbles the first round's stroke comes from the same rule applied to an
empty mask: a positive stroke along the object's middle. Elongated errors get
long strokes; compact ones (a disc, a square) thin to nearly a point and get a
short dab at their centre, much like a click. Everything is deterministic: the
same masks always give the same stroke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

#: Opening that removes slivers one pixel wide before thinning.
OPENING_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class Stroke:
    """A stroke the robot drew: ``pixels`` HxW bool, ``positive`` True on missed object."""

    pixels: np.ndarray
    positive: bool


def brush_width(shape: tuple[int, ...]) -> int:
    """Brush diameter in pixels: 1% of the image diagonal, rounded, at least 3."""
    return max(3, int(round(0.01 * math.hypot(int(shape[0]), int(shape[1])))))


def inscribed_depth(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each region pixel to the nearest pixel outside the region.

    OpenCV treats everything beyond the image frame as inside the region, so the
    frame is not a boundary: a region cut by the frame is as deep as its visible
    part allows, not shallower.
    """
    return cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _component_at(mask: np.ndarray, row: int, column: int) -> np.ndarray:
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return labels == labels[row, column]


_NEIGHBOUR_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables indexed by the 8-bit code of a pixel's neighbours P2..P9 (N clockwise)."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        p2, p3, p4, p5, p6, p7, p8, p9 = ((code >> bit) & 1 for bit in range(8))
        ring = (p2, p3, p4, p5, p6, p7, p8, p9, p2)
        neighbours = sum(ring[:8])
        transitions = sum(1 for a, b in zip(ring, ring[1:]) if a == 0 and b == 1)
        removable = 2 <= neighbours <= 6 and transitions == 1
        first[code] = removable and p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second[code] = removable and p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


_DELETE_FIRST, _DELETE_SECOND = _zhang_suen_tables()


def skeletonize(region: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning to an 8-connected one-pixel skeleton (may vanish for 2x2 blobs).

    Only pixels on the shrinking boundary are examined each pass, so the cost
    follows the region's perimeter times its depth rather than its bounding box.
    """
    region = np.asarray(region, bool)
    if not region.any():
        return region.copy()
    rows, columns = np.nonzero(region)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    image = np.pad(region[top:bottom, left:right], 1).astype(np.uint8)
    width = image.shape[1]
    flat = image.reshape(-1)
    offsets = np.array([dy * width + dx for dy, dx in _NEIGHBOUR_OFFSETS], np.int64)
    weights = (1 << np.arange(8)).astype(np.int64)

    def neighbour_codes(pixels: np.ndarray) -> np.ndarray:
        return (flat[pixels[:, None] + offsets[None, :]].astype(np.int64) * weights).sum(axis=1)

    # The padding keeps every neighbour of an object pixel inside the array.
    object_pixels = np.flatnonzero(flat)
    candidates = object_pixels[neighbour_codes(object_pixels) != 255]
    changed = True
    while changed:
        changed = False
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            delete = table[neighbour_codes(candidates)]
            if not delete.any():
                continue
            changed = True
            removed = candidates[delete]
            flat[removed] = 0
            around = (removed[:, None] + offsets[None, :]).reshape(-1)
            candidates = np.union1d(candidates[~delete], around[flat[around] == 1])
    skeleton = np.zeros_like(region)
    skeleton[top:bottom, left:right] = image[1:-1, 1:-1] > 0
    return skeleton


def longest_skeleton_path(skeleton: np.ndarray, near: tuple[int, int]) -> np.ndarray:
    """The longest geodesic path (in 8-connected steps) through the skeleton piece nearest ``near``.

    Returns the path's (row, column) pixels in order. Two breadth-first searches:
    exact on a tree, a close approximation on a skeleton with loops.
    """
    rows, columns = np.nonzero(skeleton)
    if len(rows) == 0:
        return np.zeros((0, 2), np.int64)
    index = np.full(skeleton.shape, -1, np.int64)
    index[rows, columns] = np.arange(len(rows))
    height, width = skeleton.shape
    sources, targets = [], []
    # Each undirected edge once: towards E, SE, S and SW.
    for dy, dx in ((0, 1), (1, 1), (1, 0), (1, -1)):
        next_rows, next_columns = rows + dy, columns + dx
        inside = (next_rows < height) & (next_columns >= 0) & (next_columns < width)
        neighbour = np.full(len(rows), -1, np.int64)
        neighbour[inside] = index[next_rows[inside], next_columns[inside]]
        linked = neighbour >= 0
        sources.append(np.nonzero(linked)[0])
        targets.append(neighbour[linked])
    source, target = np.concatenate(sources), np.concatenate(targets)
    graph = sparse.coo_matrix((np.ones(len(source)), (source, target)), shape=(len(rows), len(rows))).tocsr()

    squared = (rows - near[0]) ** 2 + (columns - near[1]) ** 2
    start = int(np.argmin(squared))
    order = csgraph.breadth_first_order(graph, start, directed=False, return_predecessors=False)
    one_end = int(order[-1])
    order, predecessors = csgraph.breadth_first_order(graph, one_end, directed=False, return_predecessors=True)
    node = int(order[-1])
    path = [node]
    while node != one_end:
        node = int(predecessors[node])
        path.append(node)
    path_nodes = np.asarray(path[::-1], np.int64)
    return np.stack([rows[path_nodes], columns[path_nodes]], axis=1)


def draw_path(path: np.ndarray, shape: tuple[int, int], width: int) -> np.ndarray:
    """Paints a path of (row, column) pixels with a round brush ``width`` pixels across."""
    canvas = np.zeros(shape, np.uint8)
    canvas[path[:, 0], path[:, 1]] = 1
    return cv2.dilate(canvas, round_brush(width)) > 0


def round_brush(width: int) -> np.ndarray:
    """A disc ``width`` pixels across, symmetric for even widths too (OpenCV's even ellipses are not)."""
    offsets = np.arange(width) - (width - 1) / 2
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= (width / 2) ** 2).astype(np.uint8)


def corrective_stroke(
    ground_truth: np.ndarray,
    current_mask: np.ndarray | None,
    void: np.ndarray | None = None,
) -> Stroke | None:
    """The next stroke that corrects ``current_mask`` towards ``ground_truth``; None when nothing is wrong."""
    truth = np.asarray(ground_truth, bool)
    predicted = np.zeros_like(truth) if current_mask is None else np.asarray(current_mask, bool)
    scored = np.ones_like(truth) if void is None else ~np.asarray(void, bool)
    missed = truth & ~predicted & scored
    wrongly_included = predicted & ~truth & scored
    if not missed.any() and not wrongly_included.any():
        return None

    missed_depth = inscribed_depth(missed)
    wrong_depth = inscribed_depth(wrongly_included)
    positive = float(missed_depth.max()) >= float(wrong_depth.max())
    error, depth = (missed, missed_depth) if positive else (wrongly_included, wrong_depth)
    row, column = np.unravel_index(int(np.argmax(depth)), depth.shape)
    region = _component_at(error, row, column)

    opened = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, OPENING_KERNEL) > 0
    core = _component_at(opened, row, column) if opened[row, column] else region

    path = longest_skeleton_path(skeletonize(core), near=(row, column))
    if len(path) == 0:
        # Thinning erases blobs of 2x2 pixels and less; the deepest point stands in.
        path = np.array([[row, column]], np.int64)
    pixels = draw_path(path, truth.shape, brush_width(truth.shape)) & region
    return Stroke(pixels=pixels, positive=positive)


def first_dab(ground_truth: np.ndarray, void: np.ndarray | None = None, depth_share: float = 0.5) -> Stroke | None:
    """One positive dab, three brushes across, off the object's centre: where its inscribed
    depth is nearest ``depth_share`` of the deepest. Annotators dab where their cursor
    is, not on the medial axis the first robot line follows. None when nothing is to dab."""
    truth = np.asarray(ground_truth, bool)
    if void is not None:
        truth = truth & ~np.asarray(void, bool)
    if not truth.any():
        return None
    depth = inscribed_depth(truth)
    nearest = np.where(truth, np.abs(depth - depth_share * float(depth.max())), np.inf)
    row, column = np.unravel_index(int(np.argmin(nearest)), truth.shape)
    dab = np.zeros(truth.shape, np.uint8)
    cv2.circle(dab, (int(column), int(row)), 3 * brush_width(truth.shape) // 2, 1, -1)
    return Stroke(pixels=dab.astype(bool) & truth, positive=True)
