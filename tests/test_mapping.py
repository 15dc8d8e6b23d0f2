"""Label Studio request pieces -> per-class scribbles and prompts, and masks -> result regions.

The requests are the ones a real Label Studio 1.23.2 sent (tests/fixtures, recorded
by the harness in test_label_studio_harness.py) and variants of the same shape.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.converter import brush

from ml_backend.errors import ClientError
from ml_backend.labelstudio.config import parse_scribble_config
from ml_backend.labelstudio.context import ContextPrompts, context_prompts
from ml_backend.labelstudio.mapping import brush_result, class_scribbles
from ml_backend.labelstudio.regions import merge_strokes, strokes_from_results
from ml_backend.labelstudio.rle import decode_rle, encode_mask
from ml_backend.labelstudio.task_strokes import strokes_from_task
from ml_backend.labelstudio.touches import rasterize_brush_value

FIXTURES = Path(__file__).parent / "fixtures"
INTERACTIVE = json.loads((FIXTURES / "ls_interactive_predict.json").read_text())
BATCH = json.loads((FIXTURES / "ls_batch_predict.json").read_text())
WIDTH, HEIGHT = 64, 48  # the fixtures' image

# The recommended layout: strokes (with the negative label) apart from returned masks.
TWO_CONTROL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Object" background="#00ff00"/>
    <Label value="Car" background="#0000ff"/>
    <Label value="Background" background="#ff0000"/>
  </BrushLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#00ff00"/>
    <Label value="Car" background="#0000ff"/>
  </BrushLabels>
  <KeyPointLabels name="kp" toName="image" smart="true">
    <Label value="Object" smart="true"/>
    <Label value="Car" smart="true"/>
  </KeyPointLabels>
  <RectangleLabels name="box" toName="image" smart="true">
    <Label value="Object"/>
    <Label value="Car"/>
  </RectangleLabels>
</View>"""


def observed_draft() -> dict:
    return copy.deepcopy(INTERACTIVE["tasks"][0]["drafts"][0])


def observed_stroke() -> dict:
    return copy.deepcopy(INTERACTIVE["tasks"][0]["drafts"][0]["result"][0])


def observed_keypoint() -> dict:
    return copy.deepcopy(INTERACTIVE["params"]["context"]["result"][0])


def observed_annotation() -> dict:
    return copy.deepcopy(BATCH["tasks"][0]["annotations"][0])


def stroke(label: str, relative_points: list[float], relative_width: float = 6.25, from_name: str = "tag") -> dict:
    region = observed_stroke()
    region["from_name"] = from_name
    region["value"]["brushlabels"] = [label]
    region["value"]["touches"][0]["relativePoints"] = relative_points
    region["value"]["touches"][0]["relativeStrokeWidth"] = relative_width
    return region


def saved_region(label: str, mask: np.ndarray, from_name: str = "tag") -> dict:
    region = copy.deepcopy(BATCH["tasks"][0]["annotations"][0]["result"][0])
    region["from_name"] = from_name
    region["value"]["brushlabels"] = [label]
    region["value"]["rle"] = encode_mask(mask)
    return region


def task_with(drafts=(), annotations=()) -> dict:
    task = copy.deepcopy(INTERACTIVE["tasks"][0])
    task["drafts"] = list(drafts)
    task["annotations"] = list(annotations)
    return task


def draft_with(
    result: list, user: str = "harness@example.com", user_number: int = 1, updated_at: str | None = None
) -> dict:
    draft = observed_draft()
    draft["result"] = result
    draft["user"] = user
    draft["created_username"] = f"{user}, {user_number}"
    if updated_at:
        draft["updated_at"] = updated_at
    return draft


@pytest.fixture(scope="module")
def single_config():
    return parse_scribble_config(INTERACTIVE["label_config"])


@pytest.fixture(scope="module")
def two_config():
    return parse_scribble_config(TWO_CONTROL_CONFIG)


# ----------------------------------------------------------------------------- config


def test_single_control_config_from_a_real_request(single_config):
    assert single_config.stroke_controls == ("tag",)
    assert single_config.output_control == "tag"
    assert single_config.class_labels == ("Object",)
    assert single_config.negative_labels == ("Background",)
    assert single_config.image_name == "image"
    assert single_config.image_value_key == "image"
    assert single_config.point_controls == ("kp",)
    assert INTERACTIVE["tasks"][0]["data"][single_config.image_value_key].startswith("/data/upload/")


def test_two_controls_keep_strokes_and_masks_apart(two_config):
    assert two_config.stroke_controls == ("tag",)
    assert two_config.output_control == "mask"
    assert two_config.class_labels == ("Object", "Car")
    assert two_config.point_controls == ("kp",)
    assert two_config.box_controls == ("box",)
    # The negative label list is configurable, and explicit choices win.
    custom = parse_scribble_config(TWO_CONTROL_CONFIG, negative_labels=["Car", "Background"])
    assert custom.class_labels == ("Object",)
    chosen = parse_scribble_config(TWO_CONTROL_CONFIG, output_control="tag", stroke_controls=["mask"])
    assert (chosen.output_control, chosen.stroke_controls) == ("tag", ("mask",))


def test_config_attributes_are_case_insensitive_and_non_smart_prompts_ignored():
    config = parse_scribble_config(
        '<View><Image name="img" value="$photo"/>'
        '<BrushLabels name="b" toname="img"><Label value="Cat"/></BrushLabels>'
        '<KeyPointLabels name="plain" toName="img"><Label value="Cat"/></KeyPointLabels>'
        '<RectangleLabels name="r" toName="img" smartOnly="true"><Label value="Cat"/></RectangleLabels></View>'
    )
    assert (config.image_name, config.image_value_key, config.output_control) == ("img", "photo", "b")
    assert config.point_controls == () and config.box_controls == ("r",)


@pytest.mark.parametrize(
    "xml, words",
    [
        ('<View><Image name="image" value="$image"/></View>', ["no <BrushLabels>"]),
        ('<View><BrushLabels name="t" toName="image"><Label value="A"/></BrushLabels></View>', ["no <Image>"]),
        (
            '<View><Image name="i" value="$i"/><BrushLabels name="t" toName="x"><Label value="A"/></BrushLabels></View>',
            ["'x'", "not an <Image>"],
        ),
        ('<View><Image name="i" value="$i"/><BrushLabels name="t"><Label value="A"/></BrushLabels></View>', ["toName"]),
        (
            '<View><Image name="i" value="$i"/><BrushLabels name="t" toName="i"><Label value="Background"/></BrushLabels></View>',
            ["no class labels"],
        ),
        (
            '<View><Image name="i" value="i"/><BrushLabels name="t" toName="i"><Label value="A"/></BrushLabels></View>',
            ["$image"],
        ),
        ("<View><Image", ["not valid XML"]),
        ('<!DOCTYPE x [<!ENTITY a "b">]><View/>', ["DOCTYPE"]),
        ("", ["non-empty"]),
    ],
)
def test_bad_configs_raise_client_errors(xml, words):
    with pytest.raises(ClientError) as error:
        parse_scribble_config(xml)
    assert error.value.code == "InvalidParameter" and error.value.field == "label_config"
    for word in words:
        assert word in error.value.message


def test_unknown_override_controls_are_rejected():
    with pytest.raises(ClientError) as error:
        parse_scribble_config(TWO_CONTROL_CONFIG, output_control="nope")
    assert error.value.field == "output_control" and "nope" in error.value.message
    with pytest.raises(ClientError) as error:
        parse_scribble_config(TWO_CONTROL_CONFIG, stroke_controls=["kp"])
    assert error.value.field == "stroke_controls"


# ----------------------------------------------------------------------------- strokes from the task


def test_observed_draft_touches_become_object_strokes(single_config):
    strokes = strokes_from_task(INTERACTIVE["tasks"][0], single_config, HEIGHT, WIDTH)
    assert set(strokes) == {"Object"}
    expected = rasterize_brush_value(observed_stroke()["value"], HEIGHT, WIDTH)
    np.testing.assert_array_equal(strokes["Object"], expected)
    # The stroke passes through its points: (18.75%, 41.7%) of 64x48 is pixel (12, 20).
    assert strokes["Object"][20, 12] and expected.sum() > 50


def test_observed_annotation_rle_becomes_background_strokes(single_config):
    strokes = strokes_from_task(BATCH["tasks"][0], single_config, HEIGHT, WIDTH)
    rle = BATCH["tasks"][0]["annotations"][0]["result"][0]["value"]["rle"]
    reference = np.asarray(brush.decode_rle(rle)).reshape(HEIGHT, WIDTH, 4)[:, :, 3] > 127
    assert set(strokes) == {"Background"}
    np.testing.assert_array_equal(strokes["Background"], reference)
    assert reference.any()


def test_the_newest_draft_is_read_whoever_saved_it(single_config):
    # Label Studio sends only the requesting annotator's drafts and /predict names no
    # user, so drafts are ordered by time alone (the server has no user to filter by).
    old = draft_with([stroke("Object", [10, 10, 20, 10])], updated_at="2026-11-28T05:30:00.000000Z")
    new = draft_with([stroke("Object", [10, 80, 20, 80])], updated_at="2026-11-28T05:32:00.000000Z")
    other_user = draft_with(
        [stroke("Object", [80, 50, 90, 50])], user="other@example.com", user_number=2, updated_at="2026-11-28T05:40:00Z"
    )
    strokes = strokes_from_task(task_with(drafts=[old, new]), single_config, HEIGHT, WIDTH)["Object"]
    assert strokes[38, 8] and not strokes[4, 8]
    strokes = strokes_from_task(task_with(drafts=[old, other_user, new]), single_config, HEIGHT, WIDTH)["Object"]
    assert strokes[24, 54] and not strokes[38, 8] and not strokes[4, 8]


def test_regions_with_the_same_label_are_united(two_config):
    a, b = stroke("Object", [10, 10, 20, 10]), stroke("Object", [10, 80, 20, 80])
    background = stroke("Background", [80, 50, 90, 50])
    strokes = strokes_from_task(task_with(drafts=[draft_with([a, b, background])]), two_config, HEIGHT, WIDTH)
    assert strokes["Object"][4, 8] and strokes["Object"][38, 8] and not strokes["Object"][24, 54]
    assert strokes["Background"][24, 54]


def test_draft_without_strokes_falls_back_to_the_newest_annotation(single_config):
    keypoint_only = draft_with([observed_keypoint()])
    older, newer, cancelled = observed_annotation(), observed_annotation(), observed_annotation()
    first_mask, second_mask = np.zeros((HEIGHT, WIDTH), bool), np.zeros((HEIGHT, WIDTH), bool)
    first_mask[:10], second_mask[-10:] = True, True
    older["result"], older["updated_at"] = [saved_region("Object", first_mask)], "2026-11-28T05:00:00Z"
    newer["result"], newer["updated_at"], newer["id"] = [saved_region("Object", second_mask)], "2026-11-28T06:00:00Z", 2
    cancelled["result"], cancelled["updated_at"], cancelled["id"] = (
        [saved_region("Car", first_mask)],
        "2026-11-28T07:00:00Z",
        3,
    )
    cancelled["was_cancelled"] = True
    task = task_with(drafts=[keypoint_only], annotations=[older, cancelled, newer])
    strokes = strokes_from_task(task, single_config, HEIGHT, WIDTH)
    assert set(strokes) == {"Object"}
    np.testing.assert_array_equal(strokes["Object"], second_mask)


def test_nothing_to_read_gives_no_strokes(single_config):
    assert strokes_from_task(task_with(), single_config, HEIGHT, WIDTH) == {}
    bare = {"id": 1, "data": {"image": "x.png"}}  # drafts and annotations not expanded
    assert strokes_from_task(bare, single_config, HEIGHT, WIDTH) == {}


def test_masks_returned_earlier_are_not_strokes_in_a_two_control_config(two_config):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[5:20, 5:20] = True
    accepted = saved_region("Object", mask, from_name="mask")
    unknown = {"type": "textarea", "from_name": "notes", "to_name": "image", "value": {"text": ["hi"]}}
    other_kind = {"type": "polygonlabels", "from_name": "poly", "value": {"points": "odd"}}
    task = task_with(drafts=[draft_with([accepted, unknown, other_kind, stroke("Car", [50, 50])])])
    strokes = strokes_from_task(task, two_config, HEIGHT, WIDTH)
    assert set(strokes) == {"Car"}


def test_unknown_labels_and_odd_fields_raise_client_errors(single_config):
    def error_for(result) -> ClientError:
        with pytest.raises(ClientError) as error:
            strokes_from_task(task_with(drafts=[draft_with(result)]), single_config, HEIGHT, WIDTH)
        assert error.value.code == "InvalidParameter"
        return error.value

    error = error_for([stroke("Dog", [10, 10])])
    assert error.field == "tasks[0].drafts[0].result[0].value.brushlabels[0]" and "'Dog'" in error.message
    bad_touch = stroke("Object", [10, 10, 20])
    error = error_for([observed_stroke(), bad_touch])
    assert error.field == "tasks[0].drafts[0].result[1].value.touches[0].relativePoints"
    assert "odd length" in error.message
    region = observed_stroke()
    region["value"] = "Object"
    assert error_for([region]).field == "tasks[0].drafts[0].result[0].value"
    region = observed_stroke()
    region["value"]["brushlabels"] = "Object"
    assert error_for([region]).field == "tasks[0].drafts[0].result[0].value.brushlabels"
    assert error_for(["region"]).field == "tasks[0].drafts[0].result[0]"
    wrong_size = saved_region("Object", np.ones((HEIGHT, WIDTH + 1), bool))
    wrong_size["original_width"] = WIDTH + 1
    error = error_for([wrong_size])
    assert error.field == "tasks[0].drafts[0].result[0].original_width" and "65" in error.message

    for task, field in [
        ({"drafts": "none"}, "tasks[0].drafts"),
        ({"drafts": [7]}, "tasks[0].drafts[0]"),
        ({"drafts": [{"result": {"a": 1}}]}, "tasks[0].drafts[0].result"),
        ({"annotations": {"id": 1}}, "tasks[0].annotations"),
        ([], "tasks[0]"),
    ]:
        with pytest.raises(ClientError) as error:
            strokes_from_task(task, single_config, HEIGHT, WIDTH)
        assert error.value.field == field


def test_unlabelled_regions_are_ignored(single_config):
    region = observed_stroke()
    region["value"]["brushlabels"] = []
    missing = observed_stroke()
    del missing["value"]["brushlabels"]
    assert strokes_from_results([region, missing], single_config, HEIGHT, WIDTH) == {}


# ----------------------------------------------------------------------------- context


def test_observed_keypoint_context(single_config):
    prompts = context_prompts(INTERACTIVE["params"]["context"], single_config, HEIGHT, WIDTH)
    assert isinstance(prompts, ContextPrompts)
    assert prompts.target_label == "Object"
    np.testing.assert_allclose(prompts.points, [[37.5 * WIDTH / 100, 37.5 * HEIGHT / 100]])
    assert prompts.points.dtype == np.float32 and prompts.point_labels.tolist() == [1]
    assert prompts.box is None and prompts.strokes == {}


def test_null_context_has_no_target(single_config):
    prompts = context_prompts(BATCH["params"]["context"], single_config, HEIGHT, WIDTH)
    assert prompts.target_label is None and len(prompts.points) == 0 and prompts.box is None


def keypoint(x: float, y: float, label: str = "Object", positive: bool | None = True) -> dict:
    item = observed_keypoint()
    item["value"].update(x=x, y=y, keypointlabels=[label])
    if positive is None:
        del item["is_positive"]
    else:
        item["is_positive"] = positive
    return item


def rectangle(x: float, y: float, width: float, height: float, label: str = "Object", rotation: float = 0) -> dict:
    return {
        "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": rotation, "rectanglelabels": [label]},
        "id": "rect01", "from_name": "box", "to_name": "image", "type": "rectanglelabels", "origin": "manual",
    }  # fmt: skip


def test_alt_click_and_missing_is_positive(two_config):
    context = {"result": [keypoint(10, 10), keypoint(50, 50, positive=False), keypoint(90, 90, positive=None)]}
    prompts = context_prompts(context, two_config, HEIGHT, WIDTH)
    assert prompts.point_labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(prompts.points[1], [32, 24])


def test_latest_label_is_the_target_and_other_class_points_are_negative(two_config):
    context = {"result": [keypoint(10, 10, "Car"), keypoint(50, 50, "Object")]}
    prompts = context_prompts(context, two_config, HEIGHT, WIDTH)
    assert prompts.target_label == "Object"
    assert prompts.point_labels.tolist() == [0, 1]


def test_smart_rectangle_gives_a_pixel_box(two_config):
    prompts = context_prompts({"result": [rectangle(25, 50, 50, 25)]}, two_config, HEIGHT, WIDTH)
    assert prompts.target_label == "Object"
    np.testing.assert_allclose(prompts.box, [16, 24, 48, 36])
    assert len(prompts.points) == 0
    rotated = context_prompts({"result": [rectangle(50, 50, 10, 10, rotation=90)]}, two_config, HEIGHT, WIDTH)
    np.testing.assert_allclose(rotated.box, [32 - 4.8, 24, 32, 24 + 6.4], atol=1e-4)
    clipped = context_prompts({"result": [rectangle(90, 90, 30, 30)]}, two_config, HEIGHT, WIDTH)
    np.testing.assert_allclose(clipped.box, [57.6, 43.2, 64, 48], atol=1e-4)


def test_points_just_outside_are_clipped_to_the_image(two_config):
    prompts = context_prompts({"result": [keypoint(-0.5, 100.4)]}, two_config, HEIGHT, WIDTH)
    np.testing.assert_allclose(prompts.points, [[0, HEIGHT]])


def test_brush_regions_in_the_context_are_strokes(two_config):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:20, 10:30] = True
    context_region = {"type": "brushlabels", "from_name": "tag", "to_name": "image",
                      "value": {"format": "rle", "rle": encode_mask(mask), "brushlabels": ["Background"]}}  # fmt: skip
    prompts = context_prompts({"result": [context_region, keypoint(50, 50)]}, two_config, HEIGHT, WIDTH)
    np.testing.assert_array_equal(prompts.strokes["Background"], mask)
    task_strokes = strokes_from_task(INTERACTIVE["tasks"][0], two_config, HEIGHT, WIDTH)
    merged = merge_strokes(task_strokes, prompts.strokes)
    assert set(merged) == {"Object", "Background"}
    np.testing.assert_array_equal(merged["Background"], mask)


def test_bad_context_items_raise_client_errors(two_config):
    cases = [
        ({"result": [keypoint(10, 10, "Dog")]}, "context.result[0].value.keypointlabels[0]", "'Dog'"),
        ({"result": [keypoint(10, 10, "Background")]}, "context.result[0].value.keypointlabels", "not a class"),
        ({"result": [keypoint(float("nan"), 10)]}, "context.result[0].value.x", "finite"),
        ({"result": [keypoint("10", 10)]}, "context.result[0].value.x", "number"),
        ({"result": [keypoint(10, 10, positive="yes")]}, "context.result[0].is_positive", "true or false"),
        ({"result": [{**keypoint(10, 10), "value": None}]}, "context.result[0].value", "object"),
        ({"result": [rectangle(10, 10, -5, 5)]}, "context.result[0].value", "negative"),
        ({"result": [rectangle(150, 10, 5, 5)]}, "context.result[0].value", "covers no pixel"),
        ({"result": "kp"}, "context.result", "list"),
        ("context", "context", "object"),
    ]
    for context, field, word in cases:
        with pytest.raises(ClientError) as error:
            context_prompts(context, two_config, HEIGHT, WIDTH)
        assert error.value.field == field, (context, error.value.field)
        assert word in error.value.message
    missing = keypoint(10, 10)
    del missing["value"]["keypointlabels"]
    with pytest.raises(ClientError) as error:
        context_prompts({"result": [missing]}, two_config, HEIGHT, WIDTH)
    assert error.value.field == "context.result[0].value.keypointlabels" and "missing" in error.value.message


# ----------------------------------------------------------------------------- classes and results


def test_class_scribbles_split_target_from_everything_else(two_config):
    shape = (HEIGHT, WIDTH)
    objects, cars, background = (np.zeros(shape, bool) for _ in range(3))
    objects[0, :5], cars[1, :5], background[2, :5] = True, True, True
    positive, negative = class_scribbles(
        {"Object": objects, "Car": cars, "Background": background}, "Object", two_config
    )
    np.testing.assert_array_equal(positive, objects)
    np.testing.assert_array_equal(negative, cars | background)
    positive, negative = class_scribbles({"Object": objects, "Car": cars, "Background": background}, "Car", two_config)
    np.testing.assert_array_equal(positive, cars)
    np.testing.assert_array_equal(negative, objects | background)
    positive, negative = class_scribbles({}, "Car", two_config, shape=shape)
    assert positive.shape == shape and not positive.any() and not negative.any()
    with pytest.raises(ClientError) as error:
        class_scribbles({}, "Background", two_config, shape=shape)
    assert "'Background'" in error.value.message


def test_brush_result_is_what_label_studio_accepts(two_config):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[8:30, 12:50] = True
    region = brush_result(mask, "Car", two_config, HEIGHT, WIDTH, score=0.9)
    assert region == {
        "from_name": "mask",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": region["value"]["rle"], "brushlabels": ["Car"]},
        "score": 0.9,
    }
    json.dumps(region)  # plain JSON types only
    rgba = np.asarray(brush.decode_rle(region["value"]["rle"])).reshape(HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(rgba, np.repeat((mask * 255).astype(np.uint8)[:, :, None], 4, axis=2))
    np.testing.assert_array_equal(decode_rle(region["value"]["rle"], HEIGHT, WIDTH) > 127, mask)
    with pytest.raises(ClientError):
        brush_result(mask, "Background", two_config, HEIGHT, WIDTH, score=0.9)
    with pytest.raises(ValueError):
        brush_result(mask[:-1], "Car", two_config, HEIGHT, WIDTH, score=0.9)


def test_accepted_result_reads_back_as_strokes_in_a_single_control_config(single_config):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[20:40, 5:25] = True
    region = brush_result(mask, "Object", single_config, HEIGHT, WIDTH, score=0.8)
    annotation = observed_annotation()
    annotation["result"] = [region]
    strokes = strokes_from_task(task_with(annotations=[annotation]), single_config, HEIGHT, WIDTH)
    np.testing.assert_array_equal(strokes["Object"], mask)
