"""Bad input at every entry point, and the credentials that guard them.

Label Studio's /predict, /webhook and /setup, the InteractiveScribbleSegmentation API
and `scribble-seg segment` get empty, truncated and corrupt images, decompression
bombs, images too small and too large, masks of another size, malformed RLE and
touches, unknown regions and labels, bodies that are not JSON objects or are too
large. Each gets a 4xx (or exit status 2) whose message names the input at fault,
never a 500 or a traceback, and the server answers a good request right after.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml_backend import cli
from ml_backend.config import labeling_config
from ml_backend.labelstudio.regions import MAX_STROKE_REGIONS
from ml_backend.labelstudio.rle import encode_mask
from ml_backend.labelstudio.touches import MAX_PAINTED_ROWS
from ml_backend.server.app import create_app
from ml_backend.settings import Settings
from ml_backend.tools.fake_label_studio import FakeLabelStudio
from tests.synthetic import disc_scene, scribbles_for

HOST = "127.0.0.2"
TOKEN = "ls-token-0f9e8d7c6b5a493827160f9e8d7c6b5a"
CONFIG = labeling_config()
HEIGHT, WIDTH = 120, 160
MAX_REQUEST_MB = 2
ACTION = "InteractiveScribbleSegmentation"


# ------------------------------------------------------------------ hostile files


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bilevel_png(width: int, height: int) -> bytes:
    """A real 1-bit PNG of zeros: a few KB on disk, width x height pixels decoded."""
    compressor = zlib.compressobj(9)
    rows = bytes((1 + (width + 7) // 8) * 1000)  # a thousand rows: filter byte + packed bits each
    data = b"".join(compressor.compress(rows[: len(rows) // 1000 * min(1000, height - start)])
                    for start in range(0, height, 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    start_of_frame = data.find(b"\xff\xc0")
    data[start_of_frame + 5 : start_of_frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_with_text_bomb(image: bytes) -> bytes:
    """A valid PNG carrying a compressed text chunk that inflates to 64 MB."""
    bomb = zlib.compress(bytes(64 * 2**20), 9)
    return image[:-12] + _chunk(b"zTXt", b"Comment\0\0" + bomb) + image[-12:]


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    return disc_scene(HEIGHT, WIDTH, seed=21)


@pytest.fixture(scope="module")
def hostile_files(scene: tuple[np.ndarray, np.ndarray]) -> dict[str, bytes]:
    good = png(scene[0])
    corrupt = bytearray(good)
    corrupt[60:400] = bytes(range(256)) + bytes(84)  # the pixel data, scrambled
    return {
        "good": good,
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "corrupt": bytes(corrupt),
        "not_an_image": b"%PDF-1.7 definitely not pixels",
        "bomb": bilevel_png(30000, 30000),
        "jpeg_bomb": jpeg_claiming(65000, 65000),
        "text_bomb": png_with_text_bomb(good),
        "one_pixel": png(np.zeros((1, 1, 3), np.uint8)),
        "huge": bilevel_png(5000, 5000),
    }


# Which code and message each hostile image gets, wherever it comes in.
IMAGE_CASES = [
    ("empty", 400, "InvalidImage.Content", "empty"),
    ("truncated", 400, "InvalidImage.Content", "truncated"),
    ("corrupt", 400, "InvalidImage.Content", "corrupt"),
    ("not_an_image", 415, "InvalidImage.Format", "PNG"),
    ("bomb", 400, "InvalidImage.Resolution", "30000x30000"),
    ("jpeg_bomb", 400, "InvalidImage.Resolution", "65000x65000"),
    ("text_bomb", 400, "InvalidImage.Content", "too large"),
    ("one_pixel", 400, "InvalidImage.Resolution", "1x1"),
    ("huge", 400, "InvalidImage.Resolution", "5000x5000"),
]


# ------------------------------------------------------------------ Label Studio stand-in and clients


@pytest.fixture(scope="module")
def label_studio(hostile_files: dict[str, bytes]) -> Iterator[str]:
    with FakeLabelStudio(TOKEN, address=HOST) as label_studio:
        for name, content in hostile_files.items():
            label_studio.upload(f"1/{name}.png", content)
        yield label_studio.origin


def make_client(tmp_path: Path, label_studio: str, **overrides: Any) -> TestClient:
    values: dict[str, Any] = {
        "RESULT_DIR": tmp_path / "results",
        "CACHE_DIR": tmp_path / "cache",
        "REFINE": "none",
        "REDIS_URL": None,
        "RESULT_SIGNING_KEY": None,
        "LABEL_STUDIO_URL": label_studio,
        "LABEL_STUDIO_API_KEY": TOKEN,
        "MAX_REQUEST_MB": MAX_REQUEST_MB,
        "API_KEYS": [],
        "BASIC_AUTH_USER": None,
        "BASIC_AUTH_PASS": None,
        "ALLOWED_FETCH_HOSTS": [],
    }
    values.update(overrides)
    return TestClient(create_app(Settings(**values)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, label_studio: str) -> TestClient:
    return make_client(tmp_path_factory.mktemp("bad-inputs"), label_studio)


def assert_refused(response: Any, status: int | tuple[int, ...], code: str | None, *words: str) -> dict:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert {"RequestId", "Code", "Message"} <= set(body), body
    if code is not None:
        assert body["Code"] == code, body
    for word in words:
        assert word in body["Message"], body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


# ------------------------------------------------------------------ Label Studio request bodies


def _stroke(label: str, points: list[tuple[float, float]], width_px: float = 5.0) -> dict:
    relative: list[float] = []
    for x, y in points:
        relative += [100.0 * x / WIDTH, 100.0 * y / HEIGHT]
    return {
        "from_name": "strokes", "to_name": "image", "type": "brushlabels",
        "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
        "value": {
            "format": "rle", "brushlabels": [label],
            "touches": [{"type": "add", "relativePoints": relative, "relativeStrokeWidth": 100.0 * width_px / WIDTH}],
        },
    }


def _keypoint(x: float, y: float, label: str = "Object", positive: bool = True) -> dict:
    return {
        "from_name": "click", "to_name": "image", "type": "keypointlabels", "is_positive": positive,
        "original_width": WIDTH, "original_height": HEIGHT,
        "value": {"x": 100.0 * x / WIDTH, "y": 100.0 * y / HEIGHT, "width": 0.5, "keypointlabels": [label]},
    }


def good_draft() -> list[dict]:
    frame = [(6, 6), (WIDTH - 6, 6), (WIDTH - 6, HEIGHT - 6), (6, HEIGHT - 6), (6, 6)]
    return [_stroke("Object", [(65, 60), (80, 58), (95, 62)]), _stroke("Background", frame)]


def interactive(image: str = "good", draft: list[dict] | None = None, context: list[dict] | None = None) -> dict:
    return {
        "project": "1.1700000000",
        "label_config": CONFIG,
        "params": {"login": None, "password": None, "context": {"result": context or [_keypoint(80, 60)]}},
        "tasks": [{
            "id": 1,
            "data": {"image": f"/data/upload/1/{image}.png"},
            "annotations": [],
            "drafts": [{"id": 1, "user": "annotator@example.com", "result": good_draft() if draft is None else draft}],
        }],
    }


def assert_still_serving(client: TestClient) -> None:
    answer = client.post("/predict", json=interactive())
    assert answer.status_code == 200, answer.text
    regions = answer.json()["results"][0]["result"]
    assert len(regions) == 1 and regions[0]["value"]["brushlabels"] == ["Object"]


@pytest.mark.parametrize(("name", "status", "code", "word"), IMAGE_CASES)
def test_predict_refuses_hostile_task_images(
    client: TestClient, name: str, status: int, code: str, word: str
) -> None:
    body = assert_refused(client.post("/predict", json=interactive(image=name)), status, code, "task.data", word)
    assert len(body["Message"]) < 400
    assert_still_serving(client)


def _with_value(change: dict[str, Any], region: int = 0) -> list[dict]:
    draft = good_draft()
    draft[region]["value"].update(change)
    return draft


def _with_touch(change: dict[str, Any]) -> list[dict]:
    draft = good_draft()
    draft[0]["value"]["touches"][0].update(change)
    return draft


def _other_size_rle() -> list[dict]:
    draft = good_draft()
    draft[0]["original_width"] = WIDTH // 2
    draft[0]["value"] = {"format": "rle", "brushlabels": ["Object"], "rle": encode_mask(np.ones((HEIGHT, WIDTH // 2)))}
    return draft


def _truncated_rle() -> list[dict]:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[50:70, 60:100] = True
    return _with_value({"rle": encode_mask(mask)[:-6], "touches": None})


DRAFT_CASES = [
    ("rle of another size", _other_size_rle, ["original_width", "80"]),
    ("rle declaring another length", lambda: _with_value({"rle": encode_mask(np.ones((10, 10)))}), ["rle", "declares"]),
    ("rle of garbage bytes", lambda: _with_value({"rle": [7, 255, 0, 13, 99, 1, 2, 3, 4, 5, 6]}), ["rle"]),
    ("truncated rle", _truncated_rle, ["value.rle", "ends after"]),
    ("rle as a string", lambda: _with_value({"rle": "AAAA"}), ["rle", "list"]),
    ("rle with values over 255", lambda: _with_value({"rle": [0, 0, 1, 300]}), ["rle[3]", "0..255"]),
    ("odd-length touch points", lambda: _with_touch({"relativePoints": [10.0, 20.0, 30.0]}), ["relativePoints", "odd"]),
    ("NaN touch points", lambda: _with_touch({"relativePoints": [10.0, float("nan"), 30.0, 40.0]}), ["NaN"]),
    ("infinite touch points", lambda: _with_touch({"relativePoints": [10.0, float("inf")]}), ["infinite"]),
    ("touch points far outside", lambda: _with_touch({"relativePoints": [10.0, 5000.0]}), ["percentages"]),
    ("negative stroke width", lambda: _with_touch({"relativeStrokeWidth": -3}), ["relativeStrokeWidth", "-3"]),
    ("zero stroke width", lambda: _with_touch({"relativeStrokeWidth": 0}), ["relativeStrokeWidth"]),
    ("stroke width as text", lambda: _with_touch({"relativeStrokeWidth": "5"}), ["relativeStrokeWidth", "number"]),
    ("unknown touch type", lambda: _with_touch({"type": "smudge"}), ["touches[0].type", "smudge"]),
    ("touches not a list", lambda: _with_value({"touches": {"type": "add"}}), ["touches", "list"]),
    ("label missing from the config", lambda: _with_value({"brushlabels": ["Cat"]}), ["brushlabels[0]", "'Cat'"]),
    ("value not an object", lambda: [dict(good_draft()[0], value=[1, 2])], ["value", "object"]),
    ("region not an object", lambda: ["brushlabels"], ["result[0]", "object"]),
]


@pytest.mark.parametrize(("case", "make_draft", "words"), DRAFT_CASES, ids=[case[0] for case in DRAFT_CASES])
def test_predict_refuses_malformed_strokes_naming_the_field(
    client: TestClient, case: str, make_draft: Any, words: list[str]
) -> None:
    # NaN and Infinity are not JSON, but Python's and JavaScript's encoders can write them.
    raw = json.dumps(interactive(draft=make_draft()))
    answer = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert_refused(answer, 400, "InvalidParameter", "tasks[0].drafts[0].result", *words)
    assert_still_serving(client)


CONTEXT_CASES = [
    ("only unknown region types", [{"type": "ellipselabels", "value": {"x": 1}}], ["params.context", "no class"]),
    ("click label missing from the config", [_keypoint(80, 60, label="Cat")], ["keypointlabels[0]", "'Cat'"]),
    ("click on a negative label", [_keypoint(80, 60, label="Background")], ["'Background'", "not a class"]),
    ("click without a label", [{**_keypoint(80, 60), "value": {"x": 50, "y": 50}}], ["keypointlabels", "missing"]),
    ("click at NaN", [{**_keypoint(80, 60), "value": {"x": float("nan"), "y": 5, "keypointlabels": ["Object"]}}],
     ["value.x", "finite"]),
    ("is_positive not a boolean", [{**_keypoint(80, 60), "is_positive": "yes"}], ["is_positive"]),
    ("rectangle of negative width",
     [{"from_name": "box", "to_name": "image", "type": "rectanglelabels",
       "value": {"x": 50, "y": 10, "width": -20, "height": 30, "rectanglelabels": ["Object"]}}], ["negative"]),
    ("rectangle outside the image",
     [{"from_name": "box", "to_name": "image", "type": "rectanglelabels",
       "value": {"x": 150, "y": 150, "width": 10, "height": 10, "rectanglelabels": ["Object"]}}], ["no pixel"]),
    ("context result not a list", {"result": "click"}, ["params.context.result", "list"]),
]


@pytest.mark.parametrize(("case", "context", "words"), CONTEXT_CASES, ids=[case[0] for case in CONTEXT_CASES])
def test_predict_refuses_malformed_contexts_naming_the_field(
    client: TestClient, case: str, context: Any, words: list[str]
) -> None:
    body = interactive()
    body["params"]["context"] = context if isinstance(context, dict) else {"result": context}
    answer = client.post("/predict", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_refused(answer, 400, "InvalidParameter", *words)
    assert_still_serving(client)


def _body_with(**changes: Any) -> dict:
    body = interactive()
    body.update(changes)
    return body


BODY_CASES = [
    ("a list", [1, 2], ["body", "JSON object"]),
    ("a string", "predict", ["body", "JSON object"]),
    ("a number", 12, ["body", "JSON object"]),
    ("no tasks", _body_with(tasks=[]), ["tasks", "non-empty"]),
    ("tasks not a list", _body_with(tasks={"id": 1}), ["tasks"]),
    ("task not an object", _body_with(tasks=["task"]), ["tasks[0]", "object"]),
    ("task without its image", _body_with(tasks=[{"id": 1, "data": {}}]), ["tasks[0].data", "'image'"]),
    ("two tasks in an interactive call", _body_with(tasks=interactive()["tasks"] * 2), ["exactly one task"]),
    ("params not an object", _body_with(params=[1]), ["params", "object"]),
    ("context not an object", _body_with(params={"context": "click"}), ["params.context", "object"]),
    ("no label config", _body_with(label_config=None, project="9.9"), ["label_config", "missing"]),
    ("label config not XML", _body_with(label_config="<View"), ["label_config", "XML"]),
    ("label config with entities",
     _body_with(label_config='<!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">]><View>&a;</View>'), ["label_config", "ENTITY"]),
    ("label config without brushes", _body_with(label_config='<View><Image name="i" value="$image"/></View>'),
     ["BrushLabels"]),
]


@pytest.mark.parametrize(("case", "body", "words"), BODY_CASES, ids=[case[0] for case in BODY_CASES])
def test_predict_refuses_malformed_bodies(client: TestClient, case: str, body: Any, words: list[str]) -> None:
    assert_refused(client.post("/predict", json=body), 400, "InvalidParameter", *words)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "raw", [b"", b"{not json", b'{"tasks": [', b"\xff\xfe\x00garbage", b"[" * 100_000 + b"]" * 100_000]
)
def test_predict_refuses_what_is_not_json(client: TestClient, raw: bytes) -> None:
    answer = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert_refused(answer, 400, "InvalidParameter", "body")
    assert_still_serving(client)


def test_bodies_over_max_request_mb_are_refused_before_being_read_whole(client: TestClient) -> None:
    oversized = b'{"tasks": [], "padding": "' + b"x" * (MAX_REQUEST_MB * 2**20) + b'"}'
    for endpoint in ("/predict", "/webhook", "/setup"):
        declared = client.post(endpoint, content=oversized, headers={"Content-Type": "application/json"})
        assert_refused(declared, 413, "InvalidFile.Size", "body", f"{MAX_REQUEST_MB} MB", "MAX_REQUEST_MB")

    streamed_chunks = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        nonlocal streamed_chunks
        for _ in range(200):
            streamed_chunks += 1
            yield b" " * 100_000

    streamed = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert_refused(streamed, 413, "InvalidFile.Size", "MAX_REQUEST_MB")
    assert_still_serving(client)


def test_missing_params_is_a_batch_call_and_unknown_region_types_in_drafts_are_ignored(client: TestClient) -> None:
    # Without params (or a null context) Label Studio asks for every class with strokes.
    body = interactive()
    del body["params"]
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    assert [region["value"]["brushlabels"] for region in answer.json()["results"][0]["result"]] == [["Object"]]
    # Regions of other controls (a polygon, a choice) live in the same drafts; they say nothing about strokes.
    draft = good_draft() + [
        {"type": "polygonlabels", "from_name": "poly", "to_name": "image", "value": {"points": [[1, 2]]}},
        {"type": "choices", "from_name": "quality", "to_name": "image", "value": {"choices": ["ok"]}},
    ]
    answer = client.post("/predict", json=interactive(draft=draft))
    assert answer.status_code == 200 and len(answer.json()["results"][0]["result"]) == 1, answer.text


def test_batch_with_bad_tasks_still_answers_the_good_ones(client: TestClient) -> None:
    good = interactive()["tasks"][0]
    good["annotations"] = [{"id": 5, "result": good.pop("drafts")[0]["result"]}]
    broken_strokes = copy.deepcopy(good)
    broken_strokes["id"] = 2
    broken_strokes["annotations"][0]["result"][0]["value"]["touches"][0]["relativePoints"] = [1.0]
    broken_image = copy.deepcopy(good)
    broken_image["id"] = 3
    broken_image["data"]["image"] = "/data/upload/1/bomb.png"
    body = {"label_config": CONFIG, "project": "1.1", "params": {"context": None},
            "tasks": [good, broken_strokes, "not a task", broken_image, good]}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 5
    assert len(results[0]["result"]) == 1 and len(results[4]["result"]) == 1
    assert results[1]["result"] == [] and "relativePoints" in results[1]["error"]
    assert results[2]["result"] == [] and "tasks[2]" in results[2]["error"]
    assert results[3]["result"] == [] and "30000x30000" in results[3]["error"]


def test_brush_work_is_bounded_per_request(client: TestClient) -> None:
    # 100,000 points with an image-wide brush (12 million rows on this small image;
    # on a 4096-pixel one, minutes and gigabytes if painted).
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, 200_000).round(1).tolist()
    started = time.monotonic()
    answer = client.post("/predict", json=interactive(draft=_with_touch({"relativePoints": points,
                                                                          "relativeStrokeWidth": 100})))
    assert_refused(answer, 400, "InvalidParameter", "touches", str(MAX_PAINTED_ROWS))
    # The same work spread over many regions draws on one budget per task.
    wide = _stroke("Object", [(0, 0), (WIDTH, HEIGHT)] * 250, width_px=WIDTH)  # 60,000 rows
    answer = client.post("/predict", json=interactive(draft=[copy.deepcopy(wide) for _ in range(200)]))
    assert_refused(answer, 400, "InvalidParameter", "touches", str(MAX_PAINTED_ROWS))
    # And regions themselves are counted: each one is decoded to a full-size mask.
    many = [_stroke("Object", [(80, 60)]) for _ in range(MAX_STROKE_REGIONS + 1)]
    answer = client.post("/predict", json=interactive(draft=many))
    assert_refused(answer, 400, "InvalidParameter", "result", str(MAX_STROKE_REGIONS))
    assert time.monotonic() - started < 30
    assert_still_serving(client)


def test_webhook_and_setup_shrug_off_garbage(client: TestClient) -> None:
    assert_refused(client.post("/webhook", json=[1]), 400, "InvalidParameter", "body")
    assert_refused(client.post("/setup", json="x"), 400, "InvalidParameter", "body")
    assert_refused(client.post("/webhook", content=b"\x00\x01", headers={"Content-Type": "application/json"}),
                   400, "InvalidParameter", "body")
    for body in (
        {},
        {"action": 7, "project": "not an object", "tasks": "nope"},
        {"action": "TASKS_CREATED", "project": {"id": 1, "label_config": "<View"}, "tasks": [{"data": {}}]},
        {"action": "TASKS_CREATED", "project": {"id": 1, "label_config": CONFIG},
         "tasks": [None, 5, {"data": {"image": 12}}, {"data": {"image": "/data/upload/1/bomb.png"}, "id": "x"}]},
        {"action": "ANNOTATION_CREATED", "task": {"data": "oops"}, "project": {"label_config": CONFIG}},
    ):
        answer = client.post("/webhook", json=body)
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
    for body in ({}, {"project": 1, "schema": {}}):
        answer = client.post("/setup", json=body)
        assert answer.status_code == 200 and "model_version" in answer.json(), answer.text
    # A hostname or token that is not what Label Studio sends is refused (issue 19).
    for body, field in (({"hostname": 5}, "hostname"), ({"hostname": "javascript:alert(1)"}, "hostname"),
                        ({"access_token": ["x"]}, "access_token")):
        assert_refused(client.post("/setup", json=body), 400, "InvalidParameter", field)
    # JSON only: a text/plain body is what a web page can send without a CORS preflight.
    for path in ("/setup", "/predict", "/webhook"):
        answer = client.post(path, content=json.dumps({}).encode(), headers={"Content-Type": "text/plain"})
        assert_refused(answer, 415, "UnsupportedMediaType", "Content-Type")
    assert_still_serving(client)


# ------------------------------------------------------------------ the scribble API with uploads


def _upload_request(client: TestClient, files: dict[str, bytes], **data: str) -> Any:
    parts = {name: (f"{name}.png", content, "image/png") for name, content in files.items()}
    return client.post(f"/{ACTION}", data=data, files=parts)


@pytest.fixture(scope="module")
def strokes(scene: tuple[np.ndarray, np.ndarray]) -> dict[str, bytes]:
    positive, negative = scribbles_for(scene[1])
    return {
        "PosScribbleImage": png(positive.astype(np.uint8) * 255),
        "NegScribbleImage": png(negative.astype(np.uint8) * 255),
    }


def assert_api_still_serving(client: TestClient, hostile_files: dict[str, bytes], strokes: dict[str, bytes]) -> None:
    answer = _upload_request(client, {"Image": hostile_files["good"], **strokes}, ReturnForm="only_alpha")
    assert answer.status_code == 200, answer.text
    assert client.get(answer.json()["Data"]["ResultUrl"]).status_code == 200


@pytest.mark.parametrize(("name", "status", "code", "word"), IMAGE_CASES)
@pytest.mark.parametrize("role", ["Image", "PosScribbleImage", "IntegratedMask"])
def test_scribble_api_refuses_hostile_uploads(
    client: TestClient, hostile_files: dict[str, bytes], strokes: dict[str, bytes],
    role: str, name: str, status: int, code: str, word: str,
) -> None:
    files = {"Image": hostile_files["good"], **strokes}
    files[role] = hostile_files[name]
    assert_refused(_upload_request(client, files), status, code, role, word)
    assert_api_still_serving(client, hostile_files, strokes)


@pytest.mark.parametrize("role", ["MaskImage", "PosScribbleImage", "NegScribbleImage", "IntegratedMask"])
def test_scribble_api_refuses_masks_of_another_size(
    client: TestClient, hostile_files: dict[str, bytes], strokes: dict[str, bytes], role: str
) -> None:
    files = {"Image": hostile_files["good"], **strokes, role: png(np.zeros((HEIGHT, WIDTH + 8), np.uint8))}
    assert_refused(_upload_request(client, files), 400, "InvalidImage.Resolution", role, f"{WIDTH + 8}x{HEIGHT}")
    assert_api_still_serving(client, hostile_files, strokes)


def test_scribble_api_refuses_malformed_bodies(
    client: TestClient, hostile_files: dict[str, bytes], strokes: dict[str, bytes]
) -> None:
    headers = {"Content-Type": "application/json"}
    assert_refused(
        client.post(f"/{ACTION}", content=b"[1, 2]", headers=headers), 400, "InvalidParameter", "JSON object"
    )
    assert_refused(client.post(f"/{ACTION}", content=b"\xff\xfe", headers=headers), 400, "InvalidParameter", "JSON")
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_refused(client.post(f"/{ACTION}", content=deep, headers=headers), 400, "InvalidParameter", "JSON")
    assert_refused(client.post(f"/{ACTION}", json={}), 400, "InvalidParameter", "ImageUrl", "required")
    assert_refused(client.post(f"/{ACTION}", json={"ImageUrl": ["a", "b"]}), 400, "InvalidParameter", "ImageUrl")
    assert_refused(client.post("/", data={}), 400, "InvalidParameter", "Action")
    oversized = {"Image": hostile_files["good"] + bytes(MAX_REQUEST_MB * 2**20)}
    assert_refused(_upload_request(client, oversized), 413, "InvalidFile.Size", "MAX_REQUEST_MB")
    assert_api_still_serving(client, hostile_files, strokes)


# ------------------------------------------------------------------ scribble-seg segment


@pytest.mark.parametrize(("name", "status", "code", "word"), IMAGE_CASES)
def test_cli_segment_refuses_hostile_images_with_a_message(
    tmp_path: Path, hostile_files: dict[str, bytes], strokes: dict[str, bytes],
    capsys: pytest.CaptureFixture[str], name: str, status: int, code: str, word: str,
) -> None:
    image = tmp_path / f"{name}.png"
    image.write_bytes(hostile_files[name])
    positive = tmp_path / "positive.png"
    positive.write_bytes(strokes["PosScribbleImage"])
    exit_status = cli.main(["segment", str(image), "--positive", str(positive), "-o", str(tmp_path / "out.png")])
    error = capsys.readouterr().err
    assert exit_status == 2
    assert error.startswith("scribble-seg: error: IMAGE: ") and word in error and "Traceback" not in error
    assert not (tmp_path / "out.png").exists()


def test_cli_segment_refuses_masks_of_another_size_and_unreadable_files(
    tmp_path: Path, hostile_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(hostile_files["good"])
    other_size = tmp_path / "other.png"
    other_size.write_bytes(png(np.full((HEIGHT // 2, WIDTH), 255, np.uint8)))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(hostile_files["corrupt"])
    for option, path, words in (
        ("--positive", other_size, ["--positive", f"{WIDTH}x{HEIGHT // 2}"]),
        ("--scribbles", other_size, ["--scribbles", "resolution"]),
        ("--integrated", corrupt, ["--integrated", "corrupt"]),
        ("--mask", tmp_path / "missing.png", ["--mask", "cannot read"]),
        ("--negative", tmp_path, ["--negative", "cannot read"]),
    ):
        assert cli.main(["segment", str(image), option, str(path), "-o", str(tmp_path / "out.png")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("scribble-seg: error: ") and "Traceback" not in error
        for word in words:
            assert word in error, error


# ------------------------------------------------------------------ credentials


def _basic(user: str | bytes, password: str | bytes) -> dict[str, bytes]:
    pair = (user if isinstance(user, bytes) else user.encode()) + b":" + (
        password if isinstance(password, bytes) else password.encode()
    )
    return {"Authorization": b"Basic " + base64.b64encode(pair)}


def test_basic_auth_guards_label_studio_and_keys_guard_the_api_without_leaking_secrets(
    tmp_path: Path, label_studio: str, hostile_files: dict[str, bytes], strokes: dict[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: nothing secret may appear
    password, api_keys = "pa55-Word-7d1e0c", ["key-one-a8f3b2c1d0", "key-two-9e8d7c6b5a"]
    wrong_password, wrong_key, setup_token = "wrong-guess-4411", "key-wrong-00000000", "setup-token-5c4b3a2918"
    client = make_client(
        tmp_path, label_studio, BASIC_AUTH_USER="labelstudio", BASIC_AUTH_PASS=password, API_KEYS=api_keys
    )
    right = _basic("labelstudio", password)
    label_studio_calls = [
        ("/predict", interactive()),
        ("/webhook", {"action": "TASKS_CREATED", "tasks": []}),
        ("/setup", {"project": "1.1", "schema": CONFIG, "hostname": label_studio, "access_token": setup_token}),
    ]
    refused_headers: list[dict[str, Any]] = [
        {},
        _basic("labelstudio", wrong_password),
        _basic("someone", password),
        _basic("labelstudio", password + "x"),
        {"Authorization": b"Bearer " + password.encode()},
        {"Authorization": b"Basic !!!not-base64!!!"},
        {"Authorization": b"Basic \xe9\xe9\xff"},  # not ASCII: once a 500
        {"Authorization": b"Basic " + base64.b64encode(b"\xff\xfe:\xfd")},  # not UTF-8
        {"Authorization": b"Basic"},
        {"X-API-Key": api_keys[0].encode()},  # the API's key opens only the API
    ]
    for endpoint, body in label_studio_calls:
        for headers in refused_headers:
            answer = client.post(endpoint, json=body, headers=headers)
            refusal = assert_refused(answer, 401, "Unauthorized")
            assert refusal["Message"] == "authentication required"  # no hint which part was wrong
            assert password not in answer.text and wrong_password not in answer.text
        answer = client.post(endpoint, json=body, headers=right)
        assert answer.status_code == 200, answer.text

    api_request = {"Image": hostile_files["good"], **strokes}
    for headers in ({}, {"X-API-Key": wrong_key}, {"Authorization": f"Bearer {wrong_key}"}, right,
                    {"X-API-Key": api_keys[0][:-1]}, {"Authorization": b"Bearer \xe9"}):
        parts = {name: (f"{name}.png", content, "image/png") for name, content in api_request.items()}
        answer = client.post(f"/{ACTION}", files=parts, headers=headers)
        refusal = assert_refused(answer, 401, "InvalidApiKey")
        assert wrong_key not in refusal["Message"] and api_keys[0] not in refusal["Message"]
    parts = {name: (f"{name}.png", content, "image/png") for name, content in api_request.items()}
    answer = client.post(f"/{ACTION}", files=parts, headers={"X-API-Key": api_keys[1]})
    assert answer.status_code == 200, answer.text

    assert client.get("/health").status_code == 200  # open: load balancers and Label Studio probe it
    secrets = [password, wrong_password, wrong_key, setup_token, TOKEN, *api_keys]
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for secret in secrets:
        assert secret not in caplog.text
        assert base64.b64encode(f"labelstudio:{secret}".encode()).decode() not in caplog.text
