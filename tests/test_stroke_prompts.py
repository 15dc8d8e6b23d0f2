"""Scribbles -> SAM prompts: points spread along strokes, a capped count, boxes and feedback."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_backend.core.prompts import make_prompts
from ml_backend.core.stroke_prompts import MIN_COMPONENT_PIXELS, farthest_points, padded_stroke_box, sam_prompts_from

HEIGHT, WIDTH = 240, 320


def blank() -> np.ndarray:
    return np.zeros((HEIGHT, WIDTH), bool)


def line(start: tuple[int, int], end: tuple[int, int], thickness: int = 5) -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.line(canvas, start, end, 1, thickness)
    return canvas.astype(bool)


def on_strokes(points: np.ndarray, strokes: np.ndarray) -> bool:
    xs = np.round(points[:, 0]).astype(int)
    ys = np.round(points[:, 1]).astype(int)
    return bool(strokes[ys, xs].all())


def test_a_long_stroke_gives_points_spread_to_both_ends():
    stroke = line((20, 120), (300, 120))
    result = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=stroke))
    assert len(result.points) >= 4
    assert (result.labels == 1).all()
    assert on_strokes(result.points, stroke)
    xs = np.sort(result.points[:, 0])
    # The ends are sampled (within the brush radius) and no two points bunch up.
    assert xs[0] <= 25 and xs[-1] >= 295
    assert np.diff(xs).min() >= 0.5 * (xs[-1] - xs[0]) / len(xs)


def test_longer_strokes_get_more_points():
    short = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=line((100, 60), (110, 60))))
    long = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=line((20, 60), (300, 60))))
    assert len(short.points) == 1
    assert len(long.points) > len(short.points)


def test_points_sit_on_the_centre_line_of_a_thick_stroke():
    stroke = line((40, 100), (280, 100), thickness=21)
    result = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=stroke))
    assert np.abs(result.points[:, 1] - 100).max() <= 6


def test_a_single_point_for_a_curved_stroke_lies_on_the_stroke_not_at_its_centroid():
    canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(canvas, (160, 120), (60, 60), 0, 30, 330, 1, 5)  # a "C": its centroid is off the stroke
    stroke = canvas.astype(bool)
    result = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=stroke), max_points=1)
    assert len(result.points) == 1
    assert on_strokes(result.points, stroke)


def test_negative_strokes_become_background_points_and_clicks_are_kept():
    positive = line((60, 120), (140, 120))
    negative = line((200, 40), (200, 200))
    prompts = make_prompts(
        (HEIGHT, WIDTH),
        positive_scribbles=positive,
        negative_scribbles=negative,
        points=[[10.0, 10.0], [300.0, 230.0]],
        point_labels=[1, 0],
    )
    result = sam_prompts_from(prompts)
    assert [10.0, 10.0] in result.points.tolist() and [300.0, 230.0] in result.points.tolist()
    stroke_points = result.points[2:]
    stroke_labels = result.labels[2:]
    assert on_strokes(stroke_points[stroke_labels == 1], positive)
    assert on_strokes(stroke_points[stroke_labels == 0], negative)
    assert (stroke_labels == 0).sum() >= 2  # a 160-pixel stroke gets more than one point


def test_the_total_number_of_points_is_capped_and_long_strokes_win():
    positive = blank()
    for index in range(40):  # forty dabs
        positive[10 + 5 * index : 12 + 5 * index, 10:13] = True
    long_stroke = line((100, 200), (310, 200))
    positive |= long_stroke
    result = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=positive), max_points=12)
    assert len(result.points) == 12
    assert on_strokes(result.points, positive)
    assert on_strokes(result.points[-1:], positive)
    assert any(long_stroke[int(y), int(x)] for x, y in result.points)


def test_too_many_clicks_keep_the_latest():
    points = [[float(x), 50.0] for x in range(30)]
    result = sam_prompts_from(make_prompts((HEIGHT, WIDTH), points=points), max_points=8)
    assert result.points[:, 0].tolist() == [float(x) for x in range(22, 30)]


def test_box_comes_from_an_explicit_box_first_then_the_current_mask_with_the_strokes():
    positive = line((200, 100), (250, 100))
    mask = blank()
    mask[50:90, 40:120] = True
    with_mask = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, current_mask=mask))
    x0, y0, x1, y1 = with_mask.box
    assert (x0, y0) == (40, 50)
    assert x1 >= 250 and y1 >= 100
    explicit = sam_prompts_from(
        make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, current_mask=mask, box=[5, 6, 70, 80])
    )
    assert explicit.box.tolist() == [5, 6, 70, 80]


def test_strokes_alone_give_no_box_unless_the_model_needs_one():
    positive = line((100, 100), (180, 140))
    assert sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=positive)).box is None
    boxed = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=positive), always_box=True)
    ys, xs = np.nonzero(positive)
    x0, y0, x1, y1 = boxed.box
    assert x0 < xs.min() and y0 < ys.min() and x1 > xs.max() + 1 and y1 > ys.max() + 1
    assert 0 <= x0 and 0 <= y0 and x1 <= WIDTH and y1 <= HEIGHT


def test_padded_box_grows_by_the_margin_and_stops_at_the_border():
    positive = line((100, 100), (200, 100))
    box = padded_stroke_box(positive, margin=0.5)
    stroke_ys, stroke_xs = np.nonzero(positive)
    stroke_width = stroke_xs.max() + 1 - stroke_xs.min()
    assert box[0] == pytest.approx(stroke_xs.min() - 0.5 * stroke_width)
    assert box[2] == pytest.approx(stroke_xs.max() + 1 + 0.5 * stroke_width)
    # A flat stroke's box still gets the minimum margin vertically.
    assert box[1] == pytest.approx(stroke_ys.min() - 4.0)
    edge = padded_stroke_box(line((2, 5), (60, 5)), margin=1.0)
    assert edge[0] == 0 and edge[1] == 0
    assert padded_stroke_box(blank(), margin=0.5) is None


def test_clicks_shape_the_box_when_points_are_not_wanted():
    result = sam_prompts_from(
        make_prompts((HEIGHT, WIDTH), points=[[100, 100], [140, 120], [10, 10]], point_labels=[1, 1, 0]),
        always_box=True,
        use_points=False,
    )
    assert len(result.points) == 0
    x0, y0, x1, y1 = result.box
    assert x0 < 100 and y0 < 100 and x1 > 140 and y1 > 120
    assert x0 > 10 and y0 > 10  # the background click is not part of the object's box


def test_previous_logits_become_mask_input_and_foreign_ones_are_ignored():
    positive = line((100, 100), (180, 100))
    logits = np.random.default_rng(0).normal(size=(1, 256, 256)).astype(np.float32)
    fed = sam_prompts_from(make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, previous_logits=logits))
    assert fed.mask_input.shape == (1, 256, 256)
    np.testing.assert_array_equal(fed.mask_input, logits)
    foreign = sam_prompts_from(
        make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, previous_logits=np.zeros((HEIGHT, WIDTH)))
    )
    assert foreign.mask_input is None
    unused = sam_prompts_from(
        make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, previous_logits=logits), use_mask_input=False
    )
    assert unused.mask_input is None


def test_multimask_only_for_one_or_two_points_without_box_or_mask():
    one_click = sam_prompts_from(make_prompts((HEIGHT, WIDTH), points=[[50, 50]]))
    assert one_click.multimask
    three_clicks = sam_prompts_from(make_prompts((HEIGHT, WIDTH), points=[[50, 50], [60, 60], [70, 70]]))
    assert not three_clicks.multimask
    click_and_box = sam_prompts_from(make_prompts((HEIGHT, WIDTH), points=[[50, 50]], box=[10, 10, 90, 90]))
    assert not click_and_box.multimask


def test_box_only_mode_drops_stroke_points_but_keeps_the_box():
    positive = line((100, 100), (180, 140))
    result = sam_prompts_from(
        make_prompts((HEIGHT, WIDTH), positive_scribbles=positive), always_box=True, use_points=False
    )
    assert len(result.points) == 0 and result.box is not None


def test_empty_prompts_and_bad_cap():
    empty = sam_prompts_from(make_prompts((HEIGHT, WIDTH)))
    assert empty.is_empty and not empty.has_positive_prompt
    only_negative = sam_prompts_from(make_prompts((HEIGHT, WIDTH), negative_scribbles=line((10, 10), (90, 10))))
    assert not only_negative.has_positive_prompt and len(only_negative.points) >= 1
    with pytest.raises(ValueError, match="max_points"):
        sam_prompts_from(make_prompts((HEIGHT, WIDTH)), max_points=0)


def test_farthest_points_starts_near_the_seed_and_spreads():
    pixels = np.stack([np.arange(100, dtype=np.float32), np.zeros(100, np.float32)], axis=1)
    chosen = farthest_points(pixels, 3, seed_xy=np.array([50.0, 0.0], np.float32))
    assert chosen[0, 0] == 50
    assert sorted(chosen[1:, 0].tolist()) == [0.0, 99.0]


@settings(max_examples=40, deadline=None)
@given(
    strokes=st.lists(
        st.tuples(
            st.integers(0, WIDTH - 1),
            st.integers(0, HEIGHT - 1),
            st.integers(0, WIDTH - 1),
            st.integers(0, HEIGHT - 1),
            st.integers(1, 15),
            st.booleans(),
        ),
        max_size=12,
    ),
    max_points=st.integers(1, 24),
)
def test_any_strokes_give_at_most_max_points_on_their_own_strokes(strokes, max_points):
    positive, negative = blank(), blank()
    for x0, y0, x1, y1, thickness, is_positive in strokes:
        target = positive if is_positive else negative
        target |= line((x0, y0), (x1, y1), thickness)
    prompts = make_prompts((HEIGHT, WIDTH), positive_scribbles=positive, negative_scribbles=negative)
    result = sam_prompts_from(prompts, max_points=max_points)
    assert len(result.points) <= max_points
    assert len(result.points) == len(result.labels)
    assert on_strokes(result.points[result.labels == 1], prompts.positive_scribbles)
    assert on_strokes(result.points[result.labels == 0], prompts.negative_scribbles)
    if any(
        (cv2.connectedComponentsWithStats(strokes.astype(np.uint8))[2][1:, cv2.CC_STAT_AREA] >= MIN_COMPONENT_PIXELS).any()
        for strokes in (prompts.positive_scribbles, prompts.negative_scribbles)
    ):
        assert len(result.points) >= 1
