"""Waiting for the annotator's draft that holds the click (ml_backend/server/labelstudio_drafts.py)."""

import pytest

from ml_backend.server.labelstudio_drafts import (
    DraftsUnavailable,
    TaskDraftsReader,
    clicked_region_id,
    draft_holding,
    wait_for_draft,
)
from ml_backend.tools.fake_label_studio import FakeLabelStudio

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _draft(draft_id, region_ids, updated_at="2026-12-03T05:00:00Z"):
    return {
        "id": draft_id,
        "updated_at": updated_at,
        "result": [{"id": region_id, "type": "brushlabels"} for region_id in region_ids],
    }


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_clicked_region_is_the_newest_keypoint_or_rectangle_of_the_context():
    context = {"result": [
        {"id": "first", "type": "keypointlabels"},
        {"id": "stroke", "type": "brushlabels"},
        {"id": "second", "type": "rectanglelabels"},
        {"id": "later-stroke", "type": "brushlabels"},
    ]}  # fmt: skip
    assert clicked_region_id(context) == "second"
    assert clicked_region_id({"result": [{"type": "keypointlabels"}]}) is None
    assert clicked_region_id(None) is None


def test_the_newest_draft_holding_the_click_is_chosen():
    drafts = [
        _draft(1, ["click"], "2026-12-03T05:00:00Z"),
        _draft(2, ["click", "stroke"], "2026-12-03T05:00:05Z"),
        _draft(3, ["other"], "2026-12-03T05:00:09Z"),
    ]
    assert draft_holding(drafts, "click")["id"] == 2
    assert draft_holding(drafts, "absent") is None
    assert draft_holding("not a list", "click") is None


def test_the_wait_polls_until_a_draft_holds_the_click():
    clock = FakeClock()
    answers = [[_draft(1, ["stroke"])]] * 5 + [[_draft(1, ["stroke", "click"])]]
    reads = []

    def read():
        reads.append(clock.now)
        return answers[min(len(reads) - 1, len(answers) - 1)]

    wait = wait_for_draft(read, "click", timeout_s=12, poll_s=0.3, clock=clock, sleep=clock.sleep)
    assert wait.draft is not None and wait.reason is None
    assert len(reads) == 6 and wait.waited_s == pytest.approx(1.5)


def test_the_wait_gives_up_after_its_bound_and_says_why():
    clock = FakeClock()
    wait = wait_for_draft(
        lambda: [_draft(1, ["stroke"])], "click", timeout_s=2, poll_s=0.3, clock=clock, sleep=clock.sleep
    )
    assert wait.draft is None
    assert "within 2 s" in wait.reason
    assert wait.waited_s <= 2


def test_a_failed_read_ends_the_wait_with_its_reason():
    def read():
        raise DraftsUnavailable("the backend cannot read the task's drafts (HTTP 403)")

    wait = wait_for_draft(read, "click", timeout_s=12)
    assert wait.draft is None and "403" in wait.reason


@pytest.fixture()
def label_studio():
    with FakeLabelStudio(TOKEN, address="127.0.0.2") as label_studio:
        yield label_studio


def test_the_reader_gets_the_task_drafts_with_the_backend_token(label_studio):
    label_studio.drafts[42] = [[_draft(7, ["click"])]]
    drafts = TaskDraftsReader([]).read(label_studio.origin, TOKEN, 42)
    assert drafts == [_draft(7, ["click"])]
    assert [(seen.path, seen.authorization) for seen in label_studio.requests] == [
        ("/api/tasks/42/drafts", f"Token {TOKEN}")
    ]


def test_the_reader_names_a_refused_token(label_studio):
    label_studio.drafts[42] = [[_draft(7, ["click"])]]
    with pytest.raises(DraftsUnavailable, match="cannot read the task's drafts"):
        TaskDraftsReader([]).read(label_studio.origin, "f" * 40, 42)


def test_the_reader_without_label_studio_url_says_what_to_set():
    with pytest.raises(DraftsUnavailable, match="LABEL_STUDIO_URL"):
        TaskDraftsReader([]).read(None, None, 42)
