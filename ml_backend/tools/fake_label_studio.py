"""Label Studio as the backend meets it, on loopback: the one stand-in the tools and tests use.

The backend asks Label Studio for two things: a task's image (``/data/upload/...``, the
legacy upload path) and, while a click waits for its autosave, the task's drafts
(``GET /api/tasks/{id}/drafts``). Both need ``Authorization: Token <token>``, as in
Label Studio with legacy tokens.

    with FakeLabelStudio(token) as label_studio:
        path = label_studio.upload("1/scene.png", png_bytes)   # "/data/upload/1/scene.png"
        label_studio.drafts[1] = [[], [draft]]                  # the draft appears on the second read
        Settings(LABEL_STUDIO_URL=label_studio.origin, LABEL_STUDIO_API_KEY=token)
"""

from __future__ import annotations

import re

from .loopback_host import Exchange, LoopbackHost
from .ports import LOOPBACK_HOST

UPLOADS = "/data/upload/"
_TASK_DRAFTS = re.compile(r"/api/tasks/(\d+)/drafts")


class FakeLabelStudio(LoopbackHost):
    """Uploads and each task's drafts, served only with the token; every request recorded."""

    def __init__(self, token: str, address: str = LOOPBACK_HOST, port: int = 0) -> None:
        super().__init__(address, port, token=token)
        # Per task, the answers of successive reads of its drafts, the last one repeated:
        # [[], [draft]] is a draft that autosave brings on the second read. A task that is
        # not here answers 404, as Label Studio does for a task it does not have.
        self.drafts: dict[int, list[list[dict]]] = {}
        self.routes["/api/tasks/"] = self._task_drafts

    def upload(self, name: str, content: bytes) -> str:
        """Serves ``content`` as the upload ``name``; returns the path a task's data holds."""
        path = UPLOADS + name.lstrip("/")
        self.add(path, content)
        return path

    def reads_of(self, path: str) -> int:
        """How many times ``path`` was asked for."""
        return self.paths().count(path)

    def _task_drafts(self, exchange: Exchange) -> None:
        match = _TASK_DRAFTS.fullmatch(exchange.route_path)
        answers = self.drafts.get(int(match.group(1))) if match else None
        if not answers:
            exchange.reply_json(404, {"detail": "Not found."})
            return
        with self.lock:
            answer = answers[0] if len(answers) == 1 else answers.pop(0)
        exchange.reply_json(200, answer)
