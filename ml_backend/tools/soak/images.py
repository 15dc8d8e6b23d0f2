"""The soak scenes as Label Studio uploads, served by the one Label Studio stand-in."""

from __future__ import annotations

from ..fake_label_studio import FakeLabelStudio
from .scenes import Scene


class LabelStudioImages:
    """Scene ``i`` at ``/data/upload/soak/i.png``, only with ``Token <token>``."""

    def __init__(self, scenes: list[Scene], token: str, port: int = 0) -> None:
        self.label_studio = FakeLabelStudio(token, port=port)
        for index, scene in enumerate(scenes):
            self.label_studio.upload(f"soak/{index}.png", scene.png)

    @property
    def url(self) -> str:
        return self.label_studio.origin

    @property
    def requests(self) -> int:
        """Every request Label Studio got, whatever it answered."""
        return len(self.label_studio.requests)

    def path(self, index: int) -> str:
        return f"/data/upload/soak/{index}.png"

    def __enter__(self) -> LabelStudioImages:
        self.label_studio.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.label_studio.stop()
