"""The Label Studio stand-in every test uses answers as Label Studio does (tools/fake_label_studio.py)."""

from __future__ import annotations

import httpx

from ml_backend.tools.fake_label_studio import FakeLabelStudio
from ml_backend.tools.loopback_host import LoopbackHost, trickle

TOKEN = "0123456789abcdef0123456789abcdef01234567"
AUTHORIZED = {"Authorization": f"Token {TOKEN}"}


def test_uploads_and_drafts_need_the_token_and_every_request_is_recorded():
    with FakeLabelStudio(TOKEN) as label_studio:
        path = label_studio.upload("1/scene.png", b"png bytes")
        label_studio.drafts[7] = [[{"id": 1, "result": []}]]
        assert path == "/data/upload/1/scene.png"
        for headers in ({}, {"Authorization": "Token wrong"}):
            assert httpx.get(label_studio.url(path), headers=headers).status_code == 401
            assert httpx.get(label_studio.url("/api/tasks/7/drafts"), headers=headers).status_code == 401
        answer = httpx.get(label_studio.url(path), headers=AUTHORIZED)
        assert (answer.status_code, answer.content, answer.headers["Content-Type"]) == (200, b"png bytes", "image/png")
        assert label_studio.reads_of(path) == 3
        assert [seen.authorization for seen in label_studio.requests][-1] == f"Token {TOKEN}"


def test_drafts_come_one_answer_per_read_and_the_last_one_stays():
    draft = {"id": 4, "result": [{"id": "click"}]}
    with FakeLabelStudio(TOKEN) as label_studio:
        label_studio.drafts[1] = [[], [draft]]
        reads = [httpx.get(label_studio.url("/api/tasks/1/drafts"), headers=AUTHORIZED).json() for _ in range(3)]
        assert reads == [[], [draft], [draft]]
        # A task it does not have, or another path under /api/tasks/, is 404 as in Label Studio.
        assert httpx.get(label_studio.url("/api/tasks/2/drafts"), headers=AUTHORIZED).status_code == 404
        assert httpx.get(label_studio.url("/api/tasks/1"), headers=AUTHORIZED).status_code == 404
        assert httpx.get(label_studio.url("/data/upload/1/none.png"), headers=AUTHORIZED).status_code == 404


def test_the_longest_route_wins_and_a_trickle_sends_a_byte_at_a_time():
    host = LoopbackHost()
    host.routes["/a/"] = lambda exchange: exchange.reply(200, b"short")
    host.routes["/a/b/"] = lambda exchange: exchange.reply_json(201, {"route": "long"})
    host.routes["/slow"] = trickle(declared_bytes=100, interval_s=0.05)
    with host:
        assert httpx.get(host.url("/a/x")).content == b"short"
        assert httpx.get(host.url("/a/b/x")).json() == {"route": "long"}
        with httpx.stream("GET", host.url("/slow"), timeout=5) as answer:
            assert next(answer.iter_raw(1)) == b"\0"
    assert host.paths() == ["/a/x", "/a/b/x", "/slow"]
