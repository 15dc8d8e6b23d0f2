"""Brush regions as Label Studio 1.23.2 autosaves them: RLE plus raw touches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_backend.errors import ClientError
from ml_backend.labelstudio.rle import encode_mask, encode_rle
from ml_backend.labelstudio.touches import rasterize_brush_value

# A fresh stroke in a draft, as observed (640x480 image, fast format, no RLE).
OBSERVED_VALUE = {
    "format": "rle",
    "brushlabels": ["Object"],
    "touches": [
        {
            "type": "add",
            "points": [397, 363, 401, 362, 409, 360],
            "relativePoints": [40.97, 49.95, 41.38, 49.81, 42.2, 49.54],
            "strokeWidth": 15,
            "relativeStrokeWidth": 1.548,
            "eraserSize": 25,
        }
    ],
}


def distance_to_polyline(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Brute force: distance from every pixel centre to the polyline (test oracle)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    starts, ends = (points[:-1], points[1:]) if len(points) > 1 else (points, points)
    best = np.full((height, width), np.inf)
    for start, end in zip(starts, ends):
        direction = end - start
        length_squared = max(float(direction @ direction), 1e-12)
        along = np.clip(((xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]) / length_squared, 0, 1)
        best = np.minimum(best, np.hypot(xs - start[0] - along * direction[0], ys - start[1] - along * direction[1]))
    return best


def touch(relative_points, relative_width, kind="add"):
    return {"type": kind, "relativePoints": list(relative_points), "relativeStrokeWidth": relative_width}


def test_observed_fresh_stroke_paints_a_round_capped_band():
    mask = rasterize_brush_value(OBSERVED_VALUE, 480, 640)
    points = np.array(OBSERVED_VALUE["touches"][0]["relativePoints"]).reshape(-1, 2) * [6.4, 4.8]
    radius = 1.548 * 640 / 100 / 2
    distance = distance_to_polyline(points, 480, 640)
    assert mask.dtype == bool and mask.shape == (480, 640)
    np.testing.assert_array_equal(mask, distance <= radius)
    # The pixels under the stroke's points are painted; the screen-pixel "points" are ignored.
    for x, y in points:
        assert mask[int(y), int(x)]
    assert not mask[363, 397]


@settings(max_examples=80, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(-4, 104), st.floats(-4, 104)), min_size=1, max_size=8),
    relative_width=st.floats(0.5, 40),
    height=st.integers(5, 50),
    width=st.integers(5, 50),
)
def test_stroke_is_every_pixel_centre_within_half_the_width(points, relative_width, height, width):
    mask = rasterize_brush_value({"touches": [touch(np.ravel(points), relative_width)]}, height, width)
    pixels = np.array(points, float) * [width / 100, height / 100]
    distance = distance_to_polyline(pixels, height, width)
    radius = relative_width * width / 100 / 2
    disagree = mask != (distance <= radius)
    # Only pixel centres lying on the stroke's edge (to rounding) may go either way.
    assert np.all(np.abs(distance[disagree] - radius) < 1e-6)


def test_width_is_a_percentage_of_the_image_width_not_height():
    wide = rasterize_brush_value({"touches": [touch([10, 50, 90, 50], 5)]}, 100, 400)
    rows = np.flatnonzero(wide[:, 200])
    assert len(rows) == 20  # 5% of 400 pixels, whatever the height


def test_single_click_is_a_dot_like_a_doubled_point():
    dot = rasterize_brush_value({"touches": [touch([50, 50], 10)]}, 100, 100)
    doubled = rasterize_brush_value({"touches": [touch([50, 50, 50, 50], 10)]}, 100, 100)
    np.testing.assert_array_equal(dot, doubled)
    assert 70 <= dot.sum() <= 90  # a disc of diameter 10: about 78.5 pixels
    assert dot[49:51, 49:51].all()


def test_eraser_removes_this_regions_pixels_in_order():
    add = touch([10, 50, 90, 50], 10)
    erase = touch([50, 0, 50, 100], 4, kind="eraser")
    add_again = touch([45, 50, 55, 50], 2)
    painted = rasterize_brush_value({"touches": [add]}, 100, 100)
    erased = rasterize_brush_value({"touches": [add, erase]}, 100, 100)
    repainted = rasterize_brush_value({"touches": [add, erase, add_again]}, 100, 100)
    cut = ~rasterize_brush_value({"touches": [touch([50, 0, 50, 100], 4)]}, 100, 100)
    np.testing.assert_array_equal(erased, painted & cut)
    assert painted[50, 50] and not erased[50, 50] and repainted[50, 50]
    assert not repainted[45, 50]  # the thin second stroke does not undo the whole cut
    # An eraser on an empty region erases nothing and adds nothing.
    assert not rasterize_brush_value({"touches": [erase]}, 100, 100).any()


def test_rle_and_touches_together_and_alpha_threshold():
    base = np.zeros((40, 60), np.uint8)
    base[5:15, 5:25] = 255
    value = {"format": "rle", "rle": encode_mask(base), "brushlabels": ["Object"], "touches": [touch([80, 80], 10)]}
    mask = rasterize_brush_value(value, 40, 60)
    assert mask[5:15, 5:25].all()
    assert mask[32, 48]  # the dot at (48, 32)
    erased = rasterize_brush_value({**value, "touches": [touch([0, 25, 100, 25], 5, kind="eraser")]}, 40, 60)
    assert not erased[10, 10] and erased[6, 10]

    # Anti-aliased RLE from Label Studio: alpha above 127 counts, below does not.
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 200)
    rgba[0, 1] = (255, 0, 0, 100)
    rgba[0, 2] = (255, 0, 0, 128)
    rgba[0, 3] = (255, 0, 0, 127)
    mask = rasterize_brush_value({"rle": encode_rle(rgba.reshape(-1))}, 4, 4)
    assert mask[0].tolist() == [True, False, True, False] and not mask[1:].any()


def test_points_slightly_outside_are_clipped():
    mask = rasterize_brush_value({"touches": [touch([-3, 50, 103, 50], 4)]}, 50, 100)
    assert mask[25, 0] and mask[25, 99]
    assert rasterize_brush_value({"touches": [touch([-10, -10], 4)]}, 50, 100).sum() == 0


def test_no_touches_and_no_rle_is_empty():
    assert not rasterize_brush_value({"format": "rle", "brushlabels": ["Object"]}, 8, 8).any()
    assert not rasterize_brush_value({"rle": None, "touches": []}, 8, 8).any()


@pytest.mark.parametrize(
    "touches, field, words",
    [
        ([touch([1, 2], 3), touch([1, 2], 3), touch([1, 2, 3], 3)], "value.touches[2].relativePoints", ["odd length"]),
        ([touch([1, float("nan")], 3)], "value.touches[0].relativePoints", ["NaN"]),
        ([touch([1, float("inf")], 3)], "value.touches[0].relativePoints", ["infinite"]),
        ([touch([1, "2"], 3)], "value.touches[0].relativePoints", ["numbers"]),
        ([touch([1, True], 3)], "value.touches[0].relativePoints", ["numbers"]),
        (
            [{"type": "add", "relativePoints": "1,2", "relativeStrokeWidth": 3}],
            "value.touches[0].relativePoints",
            ["list"],
        ),
        ([touch([-500, 20], 3)], "value.touches[0].relativePoints", ["between"]),
        ([touch([1, 2], -1)], "value.touches[0].relativeStrokeWidth", ["-1"]),
        ([touch([1, 2], 0)], "value.touches[0].relativeStrokeWidth", ["(0, 100]"]),
        ([touch([1, 2], 1e9)], "value.touches[0].relativeStrokeWidth", ["(0, 100]"]),
        ([touch([1, 2], float("nan"))], "value.touches[0].relativeStrokeWidth", ["nan"]),
        ([touch([1, 2], "3")], "value.touches[0].relativeStrokeWidth", ["number"]),
        (
            [{"type": "add", "relativePoints": [1, 2], "strokeWidth": 15}],
            "value.touches[0].relativeStrokeWidth",
            ["missing"],
        ),
        ([{"type": "add", "relativeStrokeWidth": 2}], "value.touches[0].relativePoints", ["missing"]),
        ([touch([1, 2], 3, kind="paint")], "value.touches[0].type", ["paint", "eraser"]),
        (["stroke"], "value.touches[0]", ["object"]),
        ({"type": "add"}, "value.touches", ["list"]),
    ],
)
def test_malformed_touches_name_the_field(touches, field, words):
    with pytest.raises(ClientError) as error:
        rasterize_brush_value({"format": "rle", "touches": touches}, 20, 30)
    assert error.value.code == "InvalidParameter"
    assert error.value.field == field
    for word in words:
        assert word in error.value.message
    assert error.value.message.startswith(field)


def test_malformed_value_and_rle_name_the_field():
    with pytest.raises(ClientError) as error:
        rasterize_brush_value(["rle"], 4, 4, field="result[1].value")
    assert error.value.field == "result[1].value"
    with pytest.raises(ClientError) as error:
        rasterize_brush_value({"rle": [0, 0, 0, 5, 999]}, 4, 4, field="result[1].value")
    assert error.value.field == "result[1].value.rle[4]" and "999" in error.value.message
    with pytest.raises(ClientError) as error:
        rasterize_brush_value({"rle": encode_mask(np.ones((5, 4), bool))}, 4, 4, field="result[1].value")
    assert error.value.field == "result[1].value.rle" and "declares 80 values" in error.value.message
