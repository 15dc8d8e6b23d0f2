"""Waits for the annotator's draft that holds the click, so every stroke painted before it counts.

Label Studio 1.23.2 autosaves a draft 5 s after the annotator's last change
(a trailing debounce), but sends an interactive call at once on every smart
click. A call made right after a stroke therefore carries a draft without that
stroke. The click itself is a change, so about 5 s later Label Studio saves a
draft that holds every earlier stroke and the clicked keypoint, under the same
region ``id`` as the call's context. This module reads the task's drafts
(``GET /api/tasks/{id}/drafts`` lists every user's drafts; any authenticated
user may read them, so the backend's token works even when another user is
annotating) until one holds the click, within ``DRAFT_WAIT_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

from ..errors import ClientError, ServerError
from ..io.fetch import fetch_url
from .labelstudio_origin import label_studio_rule

logger = logging.getLogger(__name__)

DRAFT_POLL_SECONDS = 0.3
DRAFTS_MAX_BYTES = 64 * 1024 * 1024
# Access tokens made from a personal access token live 5 minutes; renew well before.
ACCESS_TOKEN_REUSE_SECONDS = 120.0
PROMPT_TYPES = ("keypointlabels", "rectanglelabels")


class DraftsUnavailable(ServerError):
    """Label Studio's drafts could not be read; ``reason`` says why in the annotator's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clicked_region_id(context: dict | None) -> str | None:
    """The id of the context's newest smart keypoint or rectangle: the click that made this call."""
    if not isinstance(context, dict) or not isinstance(context.get("result"), list):
        return None
    for item in reversed(context["result"]):
        if isinstance(item, dict) and str(item.get("type", "")).lower() in PROMPT_TYPES:
            region_id = item.get("id")
            return region_id if isinstance(region_id, str) and region_id else None
    return None


def draft_holds(draft: object, region_id: str) -> bool:
    if not isinstance(draft, dict) or not isinstance(draft.get("result"), list):
        return False
    return any(isinstance(region, dict) and region.get("id") == region_id for region in draft["result"])


def draft_holding(drafts: object, region_id: str) -> dict | None:
    """The newest draft (by ``updated_at``, then ``id``) that holds the region, else None."""
    if not isinstance(drafts, list):
        return None
    holding = [draft for draft in drafts if draft_holds(draft, region_id)]
    if not holding:
        return None

    def newest(draft: dict) -> tuple:
        identifier = draft.get("id")
        return (str(draft.get("updated_at") or ""), identifier if isinstance(identifier, int) else -1)

    return max(holding, key=newest)


@dataclass
class DraftWait:
    """The draft found (None when none held the click in time), the seconds waited, and why it failed."""

    draft: dict | None
    waited_s: float
    reason: str | None = None


def wait_for_draft(
    read_drafts: Callable[[], list],
    region_id: str,
    timeout_s: float,
    poll_s: float = DRAFT_POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DraftWait:
    """Reads the drafts every ``poll_s`` until one holds ``region_id`` or ``timeout_s`` passes."""
    started = clock()
    while True:
        try:
            drafts = read_drafts()
        except DraftsUnavailable as error:
            return DraftWait(None, clock() - started, error.reason)
        found = draft_holding(drafts, region_id)
        waited = clock() - started
        if found is not None:
            return DraftWait(found, waited)
        if waited + poll_s > timeout_s:
            return DraftWait(
                None,
                waited,
                f"Label Studio saved no draft holding this click within {timeout_s:g} s",
            )
        sleep(poll_s)


class TaskDraftsReader:
    """GET /api/tasks/{id}/drafts with the backend's token (legacy token or personal access token)."""

    def __init__(self, allowed_hosts: list[str], label_studio_url: str | None = None) -> None:
        self.allowed_hosts = allowed_hosts
        self.label_studio_url = label_studio_url
        self._access: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def read(self, hostname: str | None, token: str | None, task_id: int) -> list:
        if not hostname or not token:
            raise DraftsUnavailable(
                "the backend knows no Label Studio URL and token (set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)"
            )
        base = hostname.rstrip("/")
        # Label Studio's origin is opened for its own paths only, never as a whole host.
        rule = label_studio_rule(base, self.label_studio_url)
        try:
            body = fetch_url(
                f"{base}/api/tasks/{int(task_id)}/drafts",
                "drafts",
                DRAFTS_MAX_BYTES,
                list(self.allowed_hosts),
                read_timeout=5,
                headers={"Authorization": self._authorization(base, token)},
                origin_rules=[rule] if rule is not None else [],
            )
        except ClientError as error:
            raise DraftsUnavailable(f"the backend cannot read the task's drafts ({error.message})") from None
        try:
            drafts = json.loads(body)
        except ValueError:
            raise DraftsUnavailable(
                "Label Studio answered the drafts request with something that is not JSON"
            ) from None
        if isinstance(drafts, dict) and isinstance(drafts.get("results"), list):
            drafts = drafts["results"]  # a paginated answer
        if not isinstance(drafts, list):
            raise DraftsUnavailable("Label Studio answered the drafts request without a list of drafts")
        return drafts

    def _authorization(self, base: str, token: str) -> str:
        # A personal access token is a JWT refresh token (three dot-separated parts):
        # Label Studio wants a short-lived access token made from it.
        if token.count(".") != 2:
            return f"Token {token}"
        with self._lock:
            cached = self._access.get(base)
            if cached and time.monotonic() - cached[1] < ACCESS_TOKEN_REUSE_SECONDS:
                return f"Bearer {cached[0]}"
        try:
            # The token goes to the origin it came with (see labelstudio_origin.Connection).
            answer = urllib3.request(
                "POST", f"{base}/api/token/refresh", json={"refresh": token}, timeout=5, redirect=False
            )
            if answer.status != 200:
                raise ValueError(answer.status)
            access = answer.json()["access"]
        except (urllib3.exceptions.HTTPError, ValueError, KeyError, TypeError):
            raise DraftsUnavailable(
                "Label Studio refused to turn the backend's personal access token into an access token"
            ) from None
        with self._lock:
            self._access[base] = (access, time.monotonic())
        return f"Bearer {access}"
