"""Rasterises a Label Studio brush region: its RLE plus the strokes ("touches") painted since.

Label Studio autosaves fresh brush strokes in a "fast" format that carries the
raw touches instead of (or on top of) an RLE. How its frontend draws them
(``BrushRegion`` in Label Studio 1.23.2):

- each touch is a canvas path through ``relativePoints`` (percent of the image
  width for x, of the height for y) with round caps and joins;
- its line width is ``relativeStrokeWidth`` percent of the image WIDTH, for the
  brush and for the eraser alike: the eraser tool hands its size to the same
  ``strokeWidth``/``relativeStrokeWidth`` fields, and ``eraserSize`` is never
  read when drawing (it keeps its default of 25), so it is ignored here;
- ``"add"`` paints (``source-over``), ``"eraser"`` removes paint from this
  region only (``destination-out``), in the order the touches were made, on
  top of the region's RLE image;
- a click without a drag is saved as the same point twice: a round dot.

``points``/``strokeWidth`` are screen pixels at the zoom of the moment and are
never used. A missing ``relativeStrokeWidth`` is an error rather than Label
Studio's model default of 25 percent of the width, which would silently turn a
stroke into a blob.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from ml_backend.errors import ClientError, invalid_parameter
from ml_backend.labelstudio.rle import decode_rle

TOUCH_TYPES = ("add", "eraser")
# Label Studio anti-aliases stroke edges; a pixel at least half covered is in.
ALPHA_THRESHOLD = 127
# A stroke wider than the image is no brush stroke.
MAX_RELATIVE_STROKE_WIDTH = 100.0
# Points may stray a little past the image edge while painting (they are clipped
# by the drawing); ones further out than a whole image size are not a stroke.
MIN_RELATIVE_COORDINATE = -100.0
MAX_RELATIVE_COORDINATE = 200.0
MAX_TOUCH_POINTS = 1_000_000
# Touches per request (per task of a batch): each costs some fixed work on top of its
# points (about 0.1 ms), so 300,000 two-point touches in 24 MB held a worker for 40 s.
# A hand-painted draft has tens to a few hundred.
MAX_TOUCHES = 10_000
# How a touch shows in a raw request body (each carries this key), counted before parsing.
_TOUCH_KEY = b'"relativePoints"'
# A segment paints every row it crosses, widened by the brush. Segments are painted
# in batches of about this many rows, so the rasteriser's scratch memory (some
# hundred bytes per row) stays bounded whatever the stroke.
_BATCH_ROWS = 1 << 16
# Below one painted pixel (counted per segment) in this many of the window's, the
# stroke's pixels are set one by one rather than by a running sum over the window.
_SPARSE_WINDOW_SHARE = 8
# All touches of a value together may paint this many rows, counted per segment (a
# second or two of work): a draft painted by hand stays far below (a 2000-point
# stroke with a 300 px brush is 0.6 million), while a few megabytes of points with
# an image-wide brush would hold a worker for minutes and gigabytes.
MAX_PAINTED_ROWS = 8_000_000
# Rows painted so far under painting_budget(): one budget for every region of a request.
_painted_rows: ContextVar[list[int] | None] = ContextVar("painted_rows", default=None)
# Touches seen so far under painting_budget().
_touches_seen: ContextVar[list[int] | None] = ContextVar("touches_seen", default=None)


def too_many_touches(field: str) -> ClientError:
    return invalid_parameter(field, f"holds more than {MAX_TOUCHES} brush touches (the limit per request)")


def check_touch_count(raw: bytes, field: str = "body") -> None:
    """Refuses a raw JSON body with more than MAX_TOUCHES touches in well under a second,
    before it is parsed. An upper bound that cannot be dodged by spelling the key with
    escapes: such touches are counted again by rasterize_touches."""
    if raw.count(_TOUCH_KEY) > MAX_TOUCHES:
        raise too_many_touches(field)


@contextmanager
def painting_budget() -> Iterator[None]:
    """Counts MAX_PAINTED_ROWS over every rasterize_touches call inside (one task of a
    request), so that many regions cannot each spend the whole allowance."""
    token = _painted_rows.set([0])
    touches_token = _touches_seen.set([0])
    try:
        yield
    finally:
        _touches_seen.reset(touches_token)
        _painted_rows.reset(token)


def _number_array(value: object, field: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)):
        raise invalid_parameter(field, f"must be a list of numbers, got {type(value).__name__}")
    if any(isinstance(item, bool) or not isinstance(item, (int, float)) for item in value):
        raise invalid_parameter(field, "must hold only numbers")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise invalid_parameter(field, "holds NaN or infinite values")
    return array


def _touch_points(touch: dict, field: str, height: int, width: int) -> np.ndarray:
    """The touch's points as canvas (x, y): pixel (row i, column j) spans [j, j + 1) x [i, i + 1)."""
    if "relativePoints" not in touch:
        raise invalid_parameter(f"{field}.relativePoints", "is missing")
    relative = _number_array(touch["relativePoints"], f"{field}.relativePoints")
    if len(relative) % 2:
        raise invalid_parameter(f"{field}.relativePoints", f"has an odd length ({len(relative)}): it holds x, y pairs")
    if len(relative) and (relative.min() < MIN_RELATIVE_COORDINATE or relative.max() > MAX_RELATIVE_COORDINATE):
        raise invalid_parameter(
            f"{field}.relativePoints",
            f"must be percentages of the image size between {MIN_RELATIVE_COORDINATE:g} and {MAX_RELATIVE_COORDINATE:g}",
        )
    pairs = relative.reshape(-1, 2)
    return np.stack([pairs[:, 0] * width / 100.0, pairs[:, 1] * height / 100.0], axis=1)


def _stroke_diameter(touch: dict, field: str, width: int) -> float:
    if "relativeStrokeWidth" not in touch:
        raise invalid_parameter(f"{field}.relativeStrokeWidth", "is missing")
    relative_width = touch["relativeStrokeWidth"]
    if isinstance(relative_width, bool) or not isinstance(relative_width, (int, float)):
        raise invalid_parameter(
            f"{field}.relativeStrokeWidth", f"must be a number, got {type(relative_width).__name__}"
        )
    if not math.isfinite(relative_width) or not 0 < relative_width <= MAX_RELATIVE_STROKE_WIDTH:
        raise invalid_parameter(
            f"{field}.relativeStrokeWidth",
            f"is {relative_width!r}: it must be a percentage of the image width in (0, {MAX_RELATIVE_STROKE_WIDTH:g}]",
        )
    return relative_width * width / 100.0


def _crossings(row_centres: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right x where the edge start-end meets each row's centre line (+-inf when it misses)."""
    y0, y1 = start[:, 1], end[:, 1]
    flat = y0 == y1
    hits = (np.minimum(y0, y1) <= row_centres) & (row_centres <= np.maximum(y0, y1))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = start[:, 0] + (row_centres - y0) * (end[:, 0] - start[:, 0]) / (y1 - y0)
    left = np.where(flat, np.minimum(start[:, 0], end[:, 0]), x)
    right = np.where(flat, np.maximum(start[:, 0], end[:, 0]), x)
    return np.where(hits, left, np.inf), np.where(hits, right, -np.inf)


def _segment_row_counts(points: np.ndarray, radius: float, height: int) -> np.ndarray:
    """How many image rows each segment of the polyline (a lone point: its dot) paints."""
    starts, ends = (points[:-1], points[1:]) if len(points) > 1 else (points, points)
    low = np.ceil(np.minimum(starts[:, 1], ends[:, 1]) - radius - 0.5)
    high = np.floor(np.maximum(starts[:, 1], ends[:, 1]) + radius - 0.5)
    return np.maximum(np.minimum(high, height - 1) - np.maximum(low, 0) + 1, 0).astype(np.int64)


def _point_batches(points: np.ndarray, row_counts: np.ndarray) -> list[np.ndarray]:
    """The polyline cut into runs of consecutive segments painting about _BATCH_ROWS rows
    each; neighbouring runs share their joining point, so their union is the whole stroke."""
    if len(points) <= 2:
        return [points]
    batch = (np.cumsum(row_counts) - row_counts) // _BATCH_ROWS
    cuts = (np.flatnonzero(np.diff(batch)) + 1).tolist()
    edges = [0, *cuts, len(row_counts)]
    return [points[first : last + 1] for first, last in zip(edges[:-1], edges[1:])]


def _stroke_window(points: np.ndarray, diameter: float, height: int, width: int):
    """The pixels whose centre lies within diameter / 2 of the polyline through ``points``.

    That is the canvas's round-capped, round-joined stroke after the alpha
    threshold (a pixel is in when about half of it is covered); a single point
    gives a disc. Each segment's capsule is convex, so it meets every pixel row
    in one interval, found in closed form from the two end discs and the
    rectangle between them; the intervals are painted with a running sum. Work
    grows with the rows the stroke crosses and its bounding box, not with the
    brush area times the number of points.

    Returns (rows slice, columns slice, bool window) or None if nothing is painted.
    """
    radius = diameter / 2
    starts, ends = (points[:-1], points[1:]) if len(points) > 1 else (points, points)
    low = np.ceil(np.minimum(starts[:, 1], ends[:, 1]) - radius - 0.5).astype(np.int64)
    high = np.floor(np.maximum(starts[:, 1], ends[:, 1]) + radius - 0.5).astype(np.int64)
    low, high = np.maximum(low, 0), np.minimum(high, height - 1)
    row_counts = np.maximum(high - low + 1, 0)
    if not row_counts.any():
        return None
    segment = np.repeat(np.arange(len(starts)), row_counts)
    rows = low[segment] + np.arange(len(segment)) - np.repeat(np.cumsum(row_counts) - row_counts, row_counts)
    centres = rows + 0.5
    start, end = starts[segment], ends[segment]

    left = np.full(len(segment), np.inf)
    right = np.full(len(segment), -np.inf)
    for centre in (start, end):
        offset = centres - centre[:, 1]
        half = np.sqrt(np.maximum(radius * radius - offset * offset, 0.0))
        on_disc = np.abs(offset) <= radius
        left = np.where(on_disc, np.minimum(left, centre[:, 0] - half), left)
        right = np.where(on_disc, np.maximum(right, centre[:, 0] + half), right)
    direction = end - start
    length = np.linalg.norm(direction, axis=1)
    has_body = length > 1e-9
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1) * (radius / np.where(has_body, length, 1.0))[:, None]
    corners = (start + normal, end + normal, end - normal, start - normal)
    for corner, following in zip(corners, corners[1:] + corners[:1]):
        edge_left, edge_right = _crossings(centres, corner, following)
        left = np.where(has_body, np.minimum(left, edge_left), left)
        right = np.where(has_body, np.maximum(right, edge_right), right)

    with np.errstate(invalid="ignore"):
        first = np.ceil(left - 0.5)
        last = np.floor(right - 0.5)
    painted = np.isfinite(first) & np.isfinite(last)
    first = np.clip(first[painted], 0, width).astype(np.int64)
    last = np.clip(last[painted], -1, width - 1).astype(np.int64)
    rows = rows[painted]
    keep = first <= last
    first, last, rows = first[keep], last[keep], rows[keep]
    if not len(rows):
        return None
    row0, row1 = int(rows.min()), int(rows.max()) + 1
    column0, column1 = int(first.min()), int(last.max()) + 1
    lengths = last - first + 1
    painted_pixels = int(lengths.sum())
    window_width = column1 - column0
    if painted_pixels * _SPARSE_WINDOW_SHARE <= (row1 - row0) * window_width:
        # A thin stroke across a large box (the image's border): set the intervals'
        # pixels themselves instead of summing over the whole box.
        window = np.zeros((row1 - row0, window_width), bool)
        starts_flat = (rows - row0) * window_width + first - column0
        offsets = np.arange(painted_pixels) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        window.ravel()[np.repeat(starts_flat, lengths) + offsets] = True
        return slice(row0, row1), slice(column0, column1), window
    stride = window_width + 1
    size = (row1 - row0) * stride
    base = (rows - row0) * stride - column0
    change = np.bincount(base + first, minlength=size) - np.bincount(base + last + 1, minlength=size)
    window = np.cumsum(change.reshape(row1 - row0, stride), axis=1)[:, :-1] > 0
    return slice(row0, row1), slice(column0, column1), window


def rasterize_touches(touches: object, base: np.ndarray, field: str = "value.touches") -> np.ndarray:
    """Applies touches in order on top of ``base`` (HxW bool); returns a new mask."""
    height, width = base.shape
    if not isinstance(touches, (list, tuple)):
        raise invalid_parameter(field, f"must be a list, got {type(touches).__name__}")
    touches_seen = _touches_seen.get() or [0]
    touches_seen[0] += len(touches)
    if touches_seen[0] > MAX_TOUCHES:
        raise too_many_touches(field)
    mask = base.astype(bool, copy=True)
    total_points = 0
    painted_rows = _painted_rows.get() or [0]
    for index, touch in enumerate(touches):
        touch_field = f"{field}[{index}]"
        if not isinstance(touch, dict):
            raise invalid_parameter(touch_field, f"must be an object, got {type(touch).__name__}")
        kind = touch.get("type", "add")
        if kind not in TOUCH_TYPES:
            raise invalid_parameter(f"{touch_field}.type", f"is {kind!r}, expected one of {list(TOUCH_TYPES)}")
        points = _touch_points(touch, touch_field, height, width)
        diameter = _stroke_diameter(touch, touch_field, width)
        total_points += len(points)
        if total_points > MAX_TOUCH_POINTS:
            raise invalid_parameter(field, f"hold more than {MAX_TOUCH_POINTS} points")
        if not len(points):
            continue
        row_counts = _segment_row_counts(points, diameter / 2, height)
        painted_rows[0] += int(row_counts.sum())
        if painted_rows[0] > MAX_PAINTED_ROWS:
            raise invalid_parameter(
                field,
                f"paint more than {MAX_PAINTED_ROWS} rows counted per segment (each segment paints the rows "
                "it spans plus the brush width): too many points with too wide a brush",
            )
        for batch in _point_batches(points, row_counts):
            painted = _stroke_window(batch, diameter, height, width)
            if painted is None:
                continue
            rows, columns, stroke = painted
            if kind == "add":
                mask[rows, columns] |= stroke
            else:
                mask[rows, columns] &= ~stroke
    return mask


def _with_prefix(error: ClientError, prefix: str) -> ClientError:
    """The same error, its field named inside the region (``rle`` -> ``result[2].value.rle``)."""
    return invalid_parameter(f"{prefix}.{error.field or ''}", error.reason)


def rasterize_brush_value(value: dict, height: int, width: int, field: str = "value") -> np.ndarray:
    """The HxW bool mask of a brush region's ``value`` (its RLE, then its touches)."""
    if not isinstance(value, dict):
        raise invalid_parameter(field, f"must be an object, got {type(value).__name__}")
    rle = value.get("rle")
    if rle is None or (isinstance(rle, (list, tuple)) and len(rle) == 0):
        mask = np.zeros((height, width), bool)
    else:
        try:
            mask = decode_rle(rle, height, width) > ALPHA_THRESHOLD
        except ClientError as error:
            raise _with_prefix(error, field) from error
    touches = value.get("touches")
    if touches is None:
        return mask
    return rasterize_touches(touches, mask, f"{field}.touches")
