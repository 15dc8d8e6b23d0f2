"""The Label Studio protocol with requests shaped exactly like the ones a real Label Studio 1.23.2 sends."""

import base64
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml_backend.config import labeling_config
from ml_backend.labelstudio.rle import decode_rle, encode_mask
from ml_backend.server.app import create_app
from ml_backend.settings import Settings
from ml_backend.tools.fake_label_studio import FakeLabelStudio

from .synthetic import disc_scene, iou

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CONFIG = labeling_config()
HEIGHT, WIDTH = 160, 200


@pytest.fixture(scope="module")
def scene():
    return disc_scene(HEIGHT, WIDTH, seed=11)


@pytest.fixture(scope="module")
def fake_label_studio(scene):
    image, _ = scene
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    with FakeLabelStudio(TOKEN, address="127.0.0.2") as label_studio:
        label_studio.upload("1/scene.png", buffer.getvalue())
        yield label_studio


@pytest.fixture(scope="module")
def label_studio_host(fake_label_studio):
    return fake_label_studio.origin


def make_client(tmp_path, **overrides) -> TestClient:
    settings = Settings(RESULT_DIR=tmp_path / "results", CACHE_DIR=tmp_path / "cache", **{"REFINE": "none", **overrides})
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture()
def client(tmp_path, label_studio_host):
    return make_client(tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN)


def _polyline_percent(points_px):
    relative = []
    for x, y in points_px:
        relative += [100.0 * x / WIDTH, 100.0 * y / HEIGHT]
    return relative


def _stroke_region(label, points_px, width_px=6, region_id="r"):
    return {
        "from_name": "strokes", "id": region_id, "image_rotation": 0, "origin": "manual",
        "original_height": HEIGHT, "original_width": WIDTH, "to_name": "image", "type": "brushlabels",
        "value": {
            "brushlabels": [label], "format": "rle",
            "touches": [{
                "eraserSize": 25, "points": [1, 2, 3, 4],
                "relativePoints": _polyline_percent(points_px),
                "relativeStrokeWidth": 100.0 * width_px / WIDTH, "strokeWidth": 12.0, "type": "add",
            }],
        },
    }


def _keypoint(x_px, y_px, positive=True, label="Object", region_id="naeSSXW5s7"):
    return {
        "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
        "value": {"x": 100.0 * x_px / WIDTH, "y": 100.0 * y_px / HEIGHT, "width": 0.206, "keypointlabels": [label]},
        "is_positive": positive, "id": region_id, "from_name": "click", "to_name": "image",
        "type": "keypointlabels", "origin": "manual",
    }


def interactive_body(draft_result, context_result):
    """The observed interactive body (tests/fixtures), with our config, image and regions."""
    body = json.loads((FIXTURES / "ls_interactive_predict.json").read_text())
    body["label_config"] = CONFIG
    task = body["tasks"][0]
    task["data"] = {"image": "/data/upload/1/scene.png"}
    # Label Studio's draft holds the clicks (saved about 5 s after each): the
    # call carries that draft when the annotator paused before clicking.
    prompts = [copy.deepcopy(item) for item in context_result if item.get("type") in ("keypointlabels", "rectanglelabels")]
    task["drafts"][0]["result"] = draft_result + prompts
    body["params"]["context"] = {"result": context_result}
    return body


OBJECT_STROKE = [(85, 80), (100, 78), (115, 82)]
BACKGROUND_STROKES = [[(10, 10), (190, 10)], [(10, 150), (190, 150)], [(8, 20), (8, 140)], [(192, 20), (192, 140)]]


def _default_draft():
    return [_stroke_region("Object", OBJECT_STROKE, region_id="pos")] + [
        _stroke_region("Background", stroke, region_id=f"neg{index}") for index, stroke in enumerate(BACKGROUND_STROKES)
    ]


def _decoded(region):
    return decode_rle(region["value"]["rle"], HEIGHT, WIDTH)


def test_health_and_setup_answer_at_once(client):
    assert client.get("/health").json()["status"] == "UP"
    answer = client.post("/setup", json={"project": "1.1795838382", "schema": CONFIG, "hostname": "http://localhost:8080", "access_token": "x", "extra_params": None})
    assert answer.status_code == 200 and answer.json()["model_version"].startswith("geodesic_grabcut")


def test_interactive_click_returns_the_object_from_the_drafts_strokes(client, scene, fake_label_studio):
    _, truth = scene
    body = interactive_body(_default_draft(), [_keypoint(100, 80)])
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert len(result["result"]) == 1 and 0 < result["score"] <= 1
    region = result["result"][0]
    assert region["type"] == "brushlabels" and region["from_name"] == "mask" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["Object"] and region["value"]["format"] == "rle"
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    decoded = _decoded(region)
    assert set(np.unique(decoded).tolist()) <= {0, 255}
    assert iou(decoded > 127, truth) >= 0.8
    # uploads are fetched from Label Studio with the token, through the SDK's URL rules
    assert "/data/upload/1/scene.png" in fake_label_studio.paths()


def test_negative_strokes_and_other_classes_cut_the_mask(client, scene):
    _, truth = scene
    # Without negatives the colour model is loose; a stroke of another class on the
    # background must count as negative just like Background strokes.
    draft = [_stroke_region("Object", OBJECT_STROKE)] + [
        _stroke_region("Other", stroke) for stroke in BACKGROUND_STROKES
    ]
    config = CONFIG.replace('<Label value="Background" background="#d62728"/>', '<Label value="Background"/><Label value="Other"/>')
    body = interactive_body(draft, [_keypoint(100, 80)])
    body["label_config"] = config
    region = client.post("/predict", json=body).json()["results"][0]["result"][0]
    decoded = _decoded(region) > 127
    assert iou(decoded, truth) >= 0.8
    assert not decoded[10, 100] and not decoded[150, 100]


def test_eraser_touches_remove_stroke_pixels(client, scene):
    draft = _default_draft()
    # the positive stroke erased again: nothing on the object remains but the click
    draft[0]["value"]["touches"].append(
        {"type": "eraser", "relativePoints": _polyline_percent(OBJECT_STROKE), "relativeStrokeWidth": 10.0, "points": [], "eraserSize": 25}
    )
    body = interactive_body(draft, [_keypoint(100, 80)])
    answer = client.post("/predict", json=body).json()["results"][0]
    # the click alone still asks for the object: a mask comes back around it
    assert answer["result"] and _decoded(answer["result"][0])[80, 100] == 255


def test_alt_click_is_a_negative_point(client, scene):
    image, truth = scene
    body = interactive_body(_default_draft(), [_keypoint(100, 80), _keypoint(60, 40, positive=False)])
    region = client.post("/predict", json=body).json()["results"][0]["result"][0]
    assert _decoded(region)[40, 60] == 0


def test_brush_regions_in_the_context_are_honoured(client, scene):
    _, truth = scene
    context_regions = [
        {"type": "brushlabels", "from_name": "strokes", "to_name": "image", "original_width": WIDTH, "original_height": HEIGHT,
         "value": {"format": "rle", "rle": encode_mask(_disc_stroke()), "brushlabels": ["Object"]}},
        _keypoint(100, 80),
    ]
    negatives_only = [_stroke_region("Background", stroke) for stroke in BACKGROUND_STROKES]
    region = client.post("/predict", json=interactive_body(negatives_only, context_regions)).json()["results"][0]["result"][0]
    assert iou(_decoded(region) > 127, truth) >= 0.8


def _disc_stroke():
    stroke = np.zeros((HEIGHT, WIDTH), bool)
    stroke[78:83, 80:120] = True
    return stroke


def test_rounds_are_made_from_what_is_on_screen_and_nothing_is_remembered(client, scene):
    first_click = _keypoint(100, 80, region_id="click1")
    body = interactive_body(_default_draft(), [first_click])
    first = _decoded(client.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    assert first[80, 100]
    # Next round: the same strokes, an Alt+click inside the mask: that spot leaves the mask.
    body = interactive_body(_default_draft(), [first_click, _keypoint(95, 70, positive=False, region_id="click2")])
    second = _decoded(client.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    assert not second[70, 95] and iou(second, first) > 0.5


def test_a_rejected_mask_does_not_survive_a_repaint(client, scene):
    """Reject keeps the clicks on screen; repainted strokes start the round afresh."""
    _, truth = scene
    click = _keypoint(100, 80, region_id="click1")
    # Round 1: only a stroke on the object's left end and no negative: a loose mask.
    loose = interactive_body([_stroke_region("Object", OBJECT_STROKE, region_id="pos")], [click])
    client.post("/predict", json=loose)
    # Rejected; the annotator repaints with the background frame and clicks again.
    click2 = _keypoint(110, 82, region_id="click2")
    repainted = _default_draft()
    fresh = _decoded(client.post("/predict", json=interactive_body(repainted, [click, click2])).json()["results"][0]["result"][0]) > 127
    # Same strokes and clicks on another backend that never saw round 1.
    other = make_client(client.app.state.service.settings.CACHE_DIR.parent / "other", **{
        key: getattr(client.app.state.service.settings, key) for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")
    })  # fmt: skip
    unseen = _decoded(other.post("/predict", json=interactive_body(repainted, [click, click2])).json()["results"][0]["result"][0]) > 127
    assert np.array_equal(fresh, unseen)
    assert iou(fresh, truth) >= 0.8


def test_a_changed_image_never_gets_another_images_mask(client, scene, tmp_path, fake_label_studio):
    image, _ = scene
    click = _keypoint(100, 80, region_id="click1")
    client.post("/predict", json=interactive_body(_default_draft(), [click]))
    # The same task id, clicks and strokes on another image (flipped): its own mask.
    flipped = image[:, ::-1].copy()
    buffer = io.BytesIO()
    Image.fromarray(flipped).save(buffer, format="PNG")
    fake_label_studio.upload("1/flipped.png", buffer.getvalue())
    body = interactive_body(_default_draft(), [click, _keypoint(100, 80, region_id="click2")])
    body["tasks"][0]["data"] = {"image": "/data/upload/1/flipped.png"}
    on_flipped = _decoded(client.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    other = make_client(tmp_path / "other", LABEL_STUDIO_URL=client.app.state.service.settings.LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY=TOKEN)
    fresh = _decoded(other.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    assert np.array_equal(on_flipped, fresh)


def test_a_click_waits_for_the_draft_that_holds_it(client, scene, fake_label_studio):
    """Strokes painted just before the click reach the backend only in the draft saved after it."""
    _, truth = scene
    click = _keypoint(100, 80, region_id="fresh-click")
    body = interactive_body([], [click])
    body["tasks"][0]["drafts"][0]["result"] = []  # the call's draft predates the strokes and the click
    saved = {"id": 5, "user": 1, "updated_at": "2026-12-03T05:00:05Z", "result": _default_draft() + [click]}
    fake_label_studio.drafts[1] = [[], [{"id": 4, "result": []}], [saved]]
    try:
        result = client.post("/predict", json=body).json()["results"][0]
    finally:
        fake_label_studio.drafts.clear()
    assert iou(_decoded(result["result"][0]) > 127, truth) >= 0.8
    assert "/api/tasks/1/drafts" in fake_label_studio.paths()


def test_a_click_whose_draft_never_comes_gets_a_message_not_a_stale_mask(tmp_path, label_studio_host, fake_label_studio):
    client = make_client(tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN, DRAFT_WAIT_SECONDS=0.7)
    body = interactive_body([], [_keypoint(100, 80, region_id="lost-click")])
    body["tasks"][0]["drafts"][0]["result"] = _default_draft()  # older strokes, without the click
    fake_label_studio.drafts[1] = [[{"id": 4, "result": _default_draft()}]]
    try:
        result = client.post("/predict", json=body).json()["results"][0]
    finally:
        fake_label_studio.drafts.clear()
    [message] = result["result"]
    assert message["type"] == "textarea" and message["from_name"] == "message" and message["to_name"] == "image"
    assert message["value"]["text"][0].startswith("Strokes not reached: ")
    assert "within 0.7 s" in message["value"]["text"][0]


def test_batch_call_returns_one_mask_per_class_and_nothing_for_unpainted_tasks(client, scene):
    _, truth = scene
    body = json.loads((FIXTURES / "ls_batch_predict.json").read_text())
    body["label_config"] = CONFIG
    template = body["tasks"][0]
    painted = copy.deepcopy(template)
    painted["id"] = 10
    painted["data"] = {"image": "/data/upload/1/scene.png"}
    object_rle = np.zeros((HEIGHT, WIDTH), bool)
    object_rle[78:83, 85:115] = True
    background_rle = np.zeros((HEIGHT, WIDTH), bool)
    background_rle[5:10, :] = background_rle[-10:-5, :] = True
    painted["annotations"] = [{
        "id": 3, "completed_by": 1, "was_cancelled": False, "created_at": "2026-11-28T05:32:03Z", "updated_at": "2026-11-28T05:32:03Z",
        "result": [
            {"from_name": "strokes", "to_name": "image", "type": "brushlabels", "original_width": WIDTH, "original_height": HEIGHT,
             "value": {"format": "rle", "rle": encode_mask(object_rle), "brushlabels": ["Object"]}},
            {"from_name": "strokes", "to_name": "image", "type": "brushlabels", "original_width": WIDTH, "original_height": HEIGHT,
             "value": {"format": "rle", "rle": encode_mask(background_rle), "brushlabels": ["Background"]}},
        ],
    }]
    unpainted = copy.deepcopy(template)
    unpainted["id"] = 11
    unpainted["data"] = {"image": "/data/upload/1/scene.png"}
    unpainted["annotations"] = []
    broken = copy.deepcopy(painted)
    broken["id"] = 12
    broken["data"] = {"image": "/data/upload/1/missing.png"}
    body["tasks"] = [painted, unpainted, broken]
    body["params"] = {"login": None, "password": None, "context": None}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 3
    assert [region["value"]["brushlabels"] for region in results[0]["result"]] == [["Object"]]
    assert iou(_decoded(results[0]["result"][0]) > 127, truth) >= 0.8
    assert results[1]["result"] == []
    assert results[2]["result"] == [] and "404" in results[2]["error"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ([1, 2], "JSON object"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"id": 1, "data": {"image": "/data/upload/1/scene.png"}}], "label_config": "<View/>", "params": {"context": {"result": []}}}, "BrushLabels"),
        ({"tasks": [{"id": 1}], "label_config": CONFIG, "params": {"context": {"result": [_keypoint(1, 1)]}}}, "image"),
        ({"tasks": [{"id": 1, "data": {"image": "/data/upload/1/scene.png"}}], "label_config": CONFIG, "params": "x"}, "params"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(client, body, fragment):
    answer = client.post("/predict", json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert fragment in answer.json()["Message"]


def test_not_json_is_a_400(client):
    answer = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "JSON" in answer.json()["Message"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:1/x.png", "file:///etc/passwd", "/etc/passwd"])
def test_task_urls_cannot_reach_private_hosts_or_files(client, url):
    body = interactive_body(_default_draft(), [_keypoint(100, 80)])
    body["tasks"][0]["data"]["image"] = url
    answer = client.post("/predict", json=body)
    assert 400 <= answer.status_code < 500, answer.text


def test_basic_auth_protects_the_label_studio_endpoints(tmp_path, label_studio_host):
    client = make_client(tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN, BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="s3cret")
    assert client.get("/health").status_code == 200
    body = {"project": "1.1", "schema": CONFIG}
    assert client.post("/setup", json=body).status_code == 401
    wrong = base64.b64encode(b"ls:wrong").decode()
    answer = client.post("/setup", json=body, headers={"Authorization": f"Basic {wrong}"})
    assert answer.status_code == 401 and "s3cret" not in answer.text
    right = base64.b64encode(b"ls:s3cret").decode()
    assert client.post("/setup", json=body, headers={"Authorization": f"Basic {right}"}).status_code == 200


def test_metrics_count_rounds_and_requests(client):
    client.post("/predict", json=interactive_body(_default_draft(), [_keypoint(100, 80)]))
    text = client.get("/metrics").text
    assert 'scribble_requests_total{method="POST",route="/predict",status="200"}' in text
    assert "scribble_segmentation_rounds_total" in text and "scribble_embedding_cache_total" in text


def test_concurrent_rounds_on_a_new_task_image_download_it_once(tmp_path, label_studio_host, fake_label_studio):
    from concurrent.futures import ThreadPoolExecutor

    from ml_backend.server.task_images import TaskImageLoader

    loader = TaskImageLoader(tmp_path / "images", [])
    before = fake_label_studio.reads_of("/data/upload/1/scene.png")
    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(lambda _: loader.load("/data/upload/1/scene.png", label_studio_host, TOKEN, 1), range(8)))
    assert len({image.key for image in images}) == 1 and images[0].pixels.shape == (HEIGHT, WIDTH, 3)
    assert fake_label_studio.reads_of("/data/upload/1/scene.png") == before + 1
    assert not (tmp_path / "images").exists()  # downloads stay in memory: nothing left on disk


@pytest.mark.parametrize(
    ("setting", "engine", "expected"),
    [("auto", "geodesic_grabcut", "maskrefine"), ("auto", "litemedsam", "edgerefine"), ("none", "litemedsam", "none")],
)
def test_refine_auto_gives_each_engine_its_own_refinement(tmp_path, label_studio_host, setting, engine, expected):
    client = make_client(
        tmp_path, LABEL_STUDIO_URL=label_studio_host, LABEL_STUDIO_API_KEY=TOKEN, ENGINE=engine, REFINE=setting
    )
    segmenter = client.app.state.service.segmenter
    used = []
    segment = segmenter.segment

    def recording_segment(*args, **kwargs):
        used.append(kwargs["refine"])
        return segment(*args, **kwargs)

    segmenter.segment = recording_segment
    response = client.post("/predict", json=interactive_body(_default_draft(), [_keypoint(100, 80)]))
    assert response.status_code == 200, response.text
    assert used == [expected]


def test_an_accepted_mask_of_the_class_is_another_instance(client, fake_label_studio):
    """Disc A labelled (its stroke and accepted mask in the draft); a stroke and a click on disc B: only B."""
    import cv2

    rng = np.random.default_rng(5)
    disc_a, disc_b = np.zeros((HEIGHT, WIDTH), np.uint8), np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(disc_a, (60, 80), 35, 1, -1)
    cv2.circle(disc_b, (140, 80), 35, 1, -1)
    disc_a, disc_b = disc_a > 0, disc_b > 0
    image = np.empty((HEIGHT, WIDTH, 3), np.float32)
    image[:] = (60, 90, 170)
    image[disc_a | disc_b] = (200, 80, 60)
    image = np.clip(image + rng.normal(0, 14, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    fake_label_studio.upload("1/two-discs.png", buffer.getvalue())
    accepted_a = {
        "from_name": "mask", "to_name": "image", "type": "brushlabels", "id": "acceptedA",
        "original_width": WIDTH, "original_height": HEIGHT,
        "value": {"format": "rle", "rle": encode_mask(disc_a), "brushlabels": ["Object"]},
    }  # fmt: skip
    draft = [_stroke_region("Object", [(45, 80), (75, 80)], region_id="strokeA"), accepted_a,
             _stroke_region("Object", [(125, 80), (155, 80)], region_id="strokeB")]  # fmt: skip
    body = interactive_body(draft, [_keypoint(140, 95, region_id="clickB")])
    body["tasks"][0]["data"] = {"image": "/data/upload/1/two-discs.png"}
    mask = _decoded(client.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    assert iou(mask, disc_b) >= 0.9
    assert not (mask & disc_a).any()
    # A click inside A refines A: its accepted mask seeds the round, and the answer stays A.
    body = interactive_body(draft, [_keypoint(60, 95, region_id="clickA")])
    body["tasks"][0]["data"] = {"image": "/data/upload/1/two-discs.png"}
    refined = _decoded(client.post("/predict", json=body).json()["results"][0]["result"][0]) > 127
    assert iou(refined, disc_a) >= 0.9
