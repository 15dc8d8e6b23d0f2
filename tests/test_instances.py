"""Several objects of one class in one task (ml_backend/labelstudio/instances.py)."""

import numpy as np

from ml_backend.labelstudio.instances import Stroke, clicked_instance, merge_accepted, plan_instance, stroke_owner

SHAPE = (60, 120)


def _box(top, left, bottom, right):
    mask = np.zeros(SHAPE, bool)
    mask[top:bottom, left:right] = True
    return mask


# Two touching squares: A on the left, B on the right.
DISC_A = _box(10, 10, 50, 60)
DISC_B = _box(10, 60, 50, 110)
STROKE_A = _box(28, 20, 32, 50)
STROKE_B = _box(28, 70, 32, 100)
BACKGROUND = _box(0, 0, 3, 120)


def test_a_stroke_belongs_to_the_accepted_mask_holding_most_of_it():
    assert stroke_owner(STROKE_A, [DISC_A]) == 0
    assert stroke_owner(STROKE_B, [DISC_A]) is None
    straddling = _box(28, 50, 32, 62)  # 10 columns in A, 2 in B
    assert stroke_owner(straddling, [DISC_A, DISC_B]) == 0


def test_a_new_instance_takes_no_pixel_and_no_stroke_of_an_accepted_one():
    strokes = [Stroke("Object", STROKE_A), Stroke("Object", STROKE_B), Stroke("Background", BACKGROUND)]
    plan = plan_instance(strokes, [DISC_A], "Object", SHAPE, np.array([[85.0, 40.0]]), np.array([1]))
    assert plan.refined is None and plan.previous is None
    assert np.array_equal(plan.positive, STROKE_B)
    # A's stroke, A's pixels and the background stroke all say "not this object"
    assert plan.negative[STROKE_A].all() and plan.negative[DISC_A].all() and plan.negative[BACKGROUND].all()
    segmented_over_both = DISC_A | DISC_B
    assert np.array_equal(plan.apply(segmented_over_both), DISC_B)


def test_strokes_claim_accepted_pixels_for_the_new_instance():
    reaching_into_a = _box(28, 50, 32, 100)  # mostly in B, its left end in A
    plan = plan_instance([Stroke("Object", reaching_into_a)], [DISC_A], "Object", SHAPE)
    assert plan.refined is None
    kept = plan.apply(DISC_A | DISC_B)
    assert kept[reaching_into_a].all()  # the stroke's pixels in A go to the new instance
    assert not kept[DISC_A & ~reaching_into_a].any()  # the rest of A stays A's


def test_a_click_inside_an_accepted_mask_refines_that_instance():
    strokes = [Stroke("Object", STROKE_A), Stroke("Object", STROKE_B)]
    plan = plan_instance(strokes, [DISC_A, DISC_B], "Object", SHAPE, np.array([[30.0, 20.0]]), np.array([1]))
    assert plan.refined == 0
    assert np.array_equal(plan.previous, DISC_A)
    assert np.array_equal(plan.positive, STROKE_A)
    assert plan.negative[STROKE_B].all() and plan.negative[DISC_B].all()
    assert np.array_equal(plan.apply(DISC_A | DISC_B), DISC_A)


def test_a_negative_click_inside_an_accepted_mask_does_not_pick_it():
    assert clicked_instance([DISC_A], np.array([[30.0, 20.0]]), np.array([0])) is None
    assert clicked_instance([DISC_A], np.array([[30.0, 20.0], [85.0, 40.0]]), np.array([1, 1])) is None
    assert clicked_instance([DISC_A], np.array([[85.0, 40.0], [30.0, 20.0]]), np.array([1, 1])) == 0


def test_a_mask_accepted_again_after_refinement_replaces_the_earlier_one():
    grown_a = _box(10, 10, 52, 62)
    assert [mask.sum() for mask in merge_accepted([DISC_A, DISC_B, grown_a])] == [grown_a.sum(), DISC_B.sum()]


def test_without_accepted_masks_the_plan_is_the_plain_class_scribbles():
    strokes = [Stroke("Object", STROKE_A), Stroke("Background", BACKGROUND), Stroke("Other", STROKE_B)]
    plan = plan_instance(strokes, [], "Object", SHAPE)
    assert np.array_equal(plan.positive, STROKE_A)
    assert np.array_equal(plan.negative, BACKGROUND | STROKE_B)
    assert not plan.keep_out.any()
