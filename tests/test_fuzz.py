"""Fuzzing: the scribble API against its own OpenAPI document, the Label Studio parsers
against random bytes and random JSON.

Schemathesis generates requests from `/openapi.json` (query strings, JSON bodies, forms,
multipart uploads of random bytes) and sends them to the app in process; no answer may
be a 5xx or carry a traceback. Hypothesis feeds the brush RLE decoder, the touches
rasteriser and the whole /predict mapping random structures; the only exception
allowed out is `ClientError`, and each input is handled in bounded time.
"""

from __future__ import annotations

import atexit
from collections import Counter
from collections.abc import Iterator
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_backend.config import labeling_config
from ml_backend.errors import ClientError, DownloadError
from ml_backend.io import fetch
from ml_backend.labelstudio.config import parse_scribble_config
from ml_backend.labelstudio.context import context_prompts
from ml_backend.labelstudio.rle import HEADER_BITS, decode_rle, encode_mask
from ml_backend.labelstudio.task_strokes import strokes_from_task
from ml_backend.labelstudio.touches import rasterize_brush_value, rasterize_touches
from ml_backend.server.app import create_app
from ml_backend.server.http_errors import http_status
from ml_backend.settings import Settings

CONFIG = labeling_config()
# Time one input may take; far above what any takes (milliseconds), far below a hang.
PER_INPUT_LIMIT_S = 5.0
FUZZ_SETTINGS = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


# ------------------------------------------------------------------ the scribble API's OpenAPI document


def _no_name_resolution(host: str, port: int, field: str) -> list:
    # Generated URLs must not reach the network (or wait on DNS): every name is unknown.
    raise DownloadError(field, f"{field}: the host {host} cannot be resolved (fuzzing)")


FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        # The documented examples point at example.com; the generated inputs are the point here.
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": True}, "stateful": {"enabled": False}},
        "generation": {"max-examples": 30, "deterministic": True, "database": "none"},
    }
)
_FUZZ_DIRECTORY = Path(tempfile.mkdtemp(prefix="test-fuzz-"))
atexit.register(shutil.rmtree, _FUZZ_DIRECTORY, ignore_errors=True)
FUZZ_APP = create_app(
    Settings(
        RESULT_DIR=_FUZZ_DIRECTORY / "results", CACHE_DIR=_FUZZ_DIRECTORY / "cache", REDIS_URL=None,
        RESULT_SIGNING_KEY=None, API_KEYS=[], ALLOWED_FETCH_HOSTS=[], LABEL_STUDIO_URL=None, REFINE="none",
        MAX_REQUEST_MB=2,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP, config=FUZZ_CONFIG)


@pytest.fixture(autouse=True)
def no_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "_resolve_addresses", _no_name_resolution)


@pytest.fixture(scope="module")
def statuses() -> Iterator[Counter]:
    """Answers by status over every generated request, printed for the record (pytest -rP)."""
    counts: Counter = Counter()
    yield counts
    print(f"scribble API fuzzing: {sum(counts.values())} requests, statuses {dict(sorted(counts.items()))}")


@schema.parametrize()
def test_scribble_api_never_answers_5xx(case: schemathesis.Case, statuses: Counter) -> None:
    started = time.monotonic()
    response = case.call()
    statuses[response.status_code] += 1
    assert time.monotonic() - started < 30
    assert response.status_code < 500, (response.status_code, response.text[:500], case.as_curl_command())
    assert "Traceback" not in response.text
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith("application/json"):
        body = json.loads(response.text)
        assert body.get("Code") and body.get("Message"), (response.status_code, body, case.as_curl_command())


# ------------------------------------------------------------------ the RLE decoder


def _header(value_count: int, word_size: int, field_widths: tuple[int, int, int, int]) -> bytes:
    fields = (value_count << 21) | ((word_size - 1) << 16)
    fields |= sum((width - 1) << (12 - 4 * index) for index, width in enumerate(field_widths))
    return (fields << (56 - HEADER_BITS)).to_bytes(7, "big")


def _decodes_or_refuses(rle: Any, height: int, width: int) -> np.ndarray | None:
    started = time.monotonic()
    try:
        mask = decode_rle(rle, height, width)
    except ClientError as error:
        assert http_status(error) == 400 and (error.field or "").startswith(("rle", "height", "width")), error
        mask = None
    assert time.monotonic() - started < PER_INPUT_LIMIT_S
    if mask is not None:
        assert mask.shape == (height, width) and mask.dtype == np.uint8
    return mask


@FUZZ_SETTINGS
@given(data=st.binary(max_size=4096), height=st.integers(1, 64), width=st.integers(1, 64))
def test_rle_decoder_refuses_random_bytes_cleanly(data: bytes, height: int, width: int) -> None:
    _decodes_or_refuses(list(data), height, width)


@FUZZ_SETTINGS
@given(
    height=st.integers(1, 48),
    width=st.integers(1, 48),
    word_size=st.integers(1, 32),
    field_widths=st.tuples(*[st.integers(1, 16)] * 4),
    tail=st.binary(max_size=6000),  # past 2 KiB the vectorised decoder takes over
)
def test_rle_decoder_refuses_random_records_behind_a_valid_header(
    height: int, width: int, word_size: int, field_widths: tuple[int, int, int, int], tail: bytes
) -> None:
    rle = _header(height * width * 4, word_size, field_widths) + tail
    _decodes_or_refuses(rle, height, width)


@FUZZ_SETTINGS
@given(
    mask=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.floats(0, 1)).map(
        lambda drawn: np.random.default_rng(drawn[2]).random((drawn[0], drawn[1])) < drawn[3]
    ),
    cut=st.integers(0, 20),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4),
)
def test_rle_decoder_survives_damaged_real_encodings(mask: np.ndarray, cut: int, flips: list[tuple[int, int]]) -> None:
    rle = encode_mask(mask)
    assert np.array_equal(_decodes_or_refuses(rle, *mask.shape) > 127, mask)
    damaged = rle[: len(rle) - cut] if cut else list(rle)
    for position, bit in flips:
        if damaged:
            damaged[position % len(damaged)] ^= 1 << bit
    _decodes_or_refuses(damaged, *mask.shape)


# ------------------------------------------------------------------ touches and whole requests

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=5)),
    max_leaves=25,
)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000), st.booleans())
touches_strategy = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(["add", "eraser"]), json_leaves),
        "relativePoints": st.one_of(st.lists(numbers, max_size=24), json_values),
        "relativeStrokeWidth": st.one_of(st.floats(-10, 150), numbers, json_leaves),
    },
)


@FUZZ_SETTINGS
@given(
    touches=st.one_of(st.lists(st.one_of(touches_strategy, json_values), max_size=6), json_values),
    height=st.integers(1, 64),
    width=st.integers(1, 64),
)
def test_touches_parser_refuses_random_structures_cleanly(touches: Any, height: int, width: int) -> None:
    started = time.monotonic()
    try:
        mask = rasterize_touches(touches, np.zeros((height, width), bool))
    except ClientError as error:
        assert (error.field or "").startswith("value.touches"), error
    else:
        assert mask.shape == (height, width) and mask.dtype == bool
    assert time.monotonic() - started < PER_INPUT_LIMIT_S


@FUZZ_SETTINGS
@given(
    value=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "rle": st.one_of(st.lists(st.integers(-3, 300), max_size=40), st.binary(max_size=40), json_values),
                "touches": st.lists(touches_strategy, max_size=3),
                "brushlabels": json_values,
            },
        ),
    ),
    height=st.integers(1, 48),
    width=st.integers(1, 48),
)
def test_brush_values_refuse_random_structures_cleanly(value: Any, height: int, width: int) -> None:
    try:
        mask = rasterize_brush_value(value, height, width)
    except ClientError as error:
        assert (error.field or "").startswith("value"), error
    else:
        assert mask.shape == (height, width)


SCRIBBLE_CONFIG = parse_scribble_config(CONFIG)
regions = st.fixed_dictionaries(
    {
        "type": st.one_of(
            st.sampled_from(["brushlabels", "keypointlabels", "rectanglelabels", "BrushLabels"]), json_leaves
        )
    },
    optional={
        "from_name": st.one_of(st.sampled_from(["strokes", "click", "box", "mask"]), json_leaves),
        "to_name": st.one_of(st.just("image"), json_leaves),
        "value": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "brushlabels": st.one_of(st.lists(st.sampled_from(["Object", "Background", "Cat"])), json_values),
                    "keypointlabels": st.one_of(st.lists(st.sampled_from(["Object", "Background"])), json_values),
                    "rectanglelabels": st.one_of(st.just(["Object"]), json_values),
                    "x": numbers, "y": numbers, "width": numbers, "height": numbers, "rotation": numbers,
                    "touches": st.lists(touches_strategy, max_size=2),
                    "rle": st.one_of(st.lists(st.integers(0, 255), max_size=20), json_values),
                },
            ),
        ),
        "is_positive": st.one_of(st.booleans(), json_leaves),
        "original_width": numbers,
        "original_height": numbers,
    },
)
tasks = st.fixed_dictionaries(
    {},
    optional={
        "drafts": st.one_of(st.lists(st.fixed_dictionaries({"result": st.lists(regions, max_size=4)},
                                                           optional={"user": json_leaves, "updated_at": json_leaves}),
                                     max_size=2), json_values),
        "annotations": st.one_of(st.lists(st.fixed_dictionaries({"result": st.lists(regions, max_size=3)},
                                                                optional={"was_cancelled": json_leaves}),
                                          max_size=2), json_values),
    },
)


@FUZZ_SETTINGS
@given(
    task=st.one_of(tasks, json_values),
    context=st.one_of(st.fixed_dictionaries({"result": st.lists(regions, max_size=4)}), json_values),
)
def test_label_studio_mapping_refuses_random_requests_cleanly(task: Any, context: Any) -> None:
    height, width = 24, 32
    started = time.monotonic()
    try:
        strokes = strokes_from_task(task, SCRIBBLE_CONFIG, height, width)
        assert all(mask.shape == (height, width) for mask in strokes.values())
        prompts = context_prompts(context, SCRIBBLE_CONFIG, height, width, name="params.context")
        assert len(prompts.points) == len(prompts.point_labels)
    except ClientError as error:
        assert http_status(error) == 400 and (error.field or "").startswith(("tasks[0]", "params.context")), error
    assert time.monotonic() - started < PER_INPUT_LIMIT_S
