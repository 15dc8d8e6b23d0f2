"""Edge-weighted geodesic distances on the pixel grid, and the mask helpers the geodesic engine shares."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

# Neighbour offsets (dy, dx) of the 8-connected grid, each pair listed once.
_HALF_NEIGHBOURHOOD = ((0, 1), (1, 0), (1, 1), (1, -1))
_EIGHT_CONNECTED = np.ones((3, 3), bool)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from RGB, RGBA or grey input."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image: must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def lab_steps(rgb: np.ndarray) -> np.ndarray:
    """Lab colour change of each step to the half-neighbourhood, shape (4, H, W).

    Steps leaving the image are 0 and never used.
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    # A light blur keeps JPEG noise and fine texture from walling off regions.
    lab = cv2.GaussianBlur(lab, (3, 3), 0)
    height, width = lab.shape[:2]
    changes = np.zeros((len(_HALF_NEIGHBOURHOOD), height, width), np.float32)
    for index, (dy, dx) in enumerate(_HALF_NEIGHBOURHOOD):
        source, target = _offset_slices(height, width, dy, dx)
        changes[index][source] = np.sqrt(((lab[source] - lab[target]) ** 2).sum(axis=2))
    return changes


def step_costs(changes: np.ndarray, colour_weight: float) -> np.ndarray:
    """Cost of each step: length x (1 + colour_weight x Lab change)."""
    lengths = np.array([np.hypot(dy, dx) for dy, dx in _HALF_NEIGHBOURHOOD], np.float32)[:, None, None]
    return lengths * (1.0 + colour_weight * changes)


def geodesic_edge_costs(rgb: np.ndarray, colour_weight: float) -> np.ndarray:
    """Cost of each step to the half-neighbourhood: length x (1 + colour_weight x Lab change).

    Shape (4, H, W); steps leaving the image cost nothing and are never used.
    The engine's weight, 0.1, lets distance count as well as colour: textured
    objects are not split along their own edges (GrabCut set 1, round 1: 0.844 at
    1.0, 0.849 at 0.5, 0.856-0.860 from 0.05 to 0.3; set 2 0.924-0.931 throughout).
    """
    return step_costs(lab_steps(rgb), colour_weight)


def _offset_slices(height: int, width: int, dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    rows_from, rows_to = slice(0, height - dy), slice(dy, height)
    if dx >= 0:
        cols_from, cols_to = slice(0, width - dx), slice(dx, width)
    else:
        cols_from, cols_to = slice(-dx, width), slice(0, width + dx)
    return (rows_from, cols_from), (rows_to, cols_to)


def geodesic_graph(costs: np.ndarray, within: np.ndarray | None = None) -> csr_matrix:
    """The undirected pixel graph whose shortest paths are the geodesic distances.

    With ``within``, only steps between two of its pixels exist: paths stay inside it.
    """
    _, height, width = costs.shape
    index = np.arange(height * width).reshape(height, width)
    rows, cols, weights = [], [], []
    for offset, (dy, dx) in enumerate(_HALF_NEIGHBOURHOOD):
        source, target = _offset_slices(height, width, dy, dx)
        kept = slice(None) if within is None else (within[source] & within[target]).ravel()
        rows.append(index[source].ravel()[kept])
        cols.append(index[target].ravel()[kept])
        weights.append(costs[offset][source].ravel()[kept])
    size = height * width
    graph = csr_matrix(
        (np.concatenate(weights).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))),
        shape=(size, size),
    )
    return (graph + graph.T).tocsr()


def geodesically_nearer(graph: csr_matrix, seeds: np.ndarray, rivals: np.ndarray) -> np.ndarray:
    """Pixels whose nearest seed, along the cheapest path, is one of ``seeds`` rather than ``rivals``.

    One search from both seed sets at once (it tells which seed each pixel is
    nearest to): half the cost of comparing two distance maps.
    """
    if not seeds.any():
        return np.zeros(seeds.shape, bool)
    if not rivals.any():
        return np.ones(seeds.shape, bool)
    starts = np.flatnonzero(seeds | rivals)
    _, _, nearest = dijkstra(graph, directed=False, indices=starts, min_only=True, return_predecessors=True)
    # Unreachable pixels have no nearest seed (negative index): not the seeds'.
    return ((nearest >= 0) & seeds.ravel()[np.maximum(nearest, 0)]).reshape(seeds.shape)


def nearest_seed_labels(graph: csr_matrix, seed_labels: np.ndarray) -> np.ndarray:
    """For each pixel, the label of its geodesically nearest seed (``seed_labels`` > 0); 0 where unreachable."""
    starts = np.flatnonzero(seed_labels)
    if len(starts) == 0:
        return np.zeros(seed_labels.shape, seed_labels.dtype)
    _, _, nearest = dijkstra(graph, directed=False, indices=starts, min_only=True, return_predecessors=True)
    flat = seed_labels.ravel()
    return np.where(nearest >= 0, flat[np.maximum(nearest, 0)], 0).reshape(seed_labels.shape)


def shrink_majority(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Majority downscale, for regions (the current mask) rather than strokes."""
    if mask.shape == shape:
        return mask.copy()
    return cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0.5


def enlarge(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask.copy()
    return cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5


def keep_components_touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected parts of ``mask`` that contain a seed pixel."""
    labels, _ = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    kept = np.unique(labels[seeds & mask])
    kept = kept[kept > 0]
    return np.isin(labels, kept)


def correction_seeds(
    current: np.ndarray, result: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> np.ndarray:
    """Which parts of a corrected result stay: those connected to something still wanted.

    Wanted are the positive strokes and the parts of the current mask no negative
    stroke touches. A part the negative stroke does touch keeps its largest
    remaining piece only when that piece is most of it (a trim, not a removal):
    strokes may arrive without the earlier positive ones, so this cannot rely on them.
    """
    labels, count = ndimage.label(current, structure=_EIGHT_CONNECTED)
    hit = np.unique(labels[negative & current])
    hit = hit[hit > 0]
    seeds = positive | (current & ~np.isin(labels, hit))
    for component in hit:
        region = labels == component
        if (positive & region).any():
            continue
        pieces, piece_count = ndimage.label(result & region, structure=_EIGHT_CONNECTED)
        if piece_count == 0:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        largest = int(np.argmax(sizes))
        if sizes[largest] >= 0.5 * region.sum():
            seeds |= pieces == largest + 1
    return seeds


def border_pixels(shape: tuple[int, int]) -> np.ndarray:
    border = np.zeros(shape, bool)
    border[0, :] = border[-1, :] = True
    border[:, 0] = border[:, -1] = True
    return border
