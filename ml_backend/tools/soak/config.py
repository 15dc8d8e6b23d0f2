"""What one soak run does, and the hard caps that bound every run."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ANNOTATORS = 64
MAX_ROUNDS = 1000
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class SoakConfig:
    annotators: int = 4
    rounds: int = 10
    duration_s: float = 0.0  # 0: one task per annotator; else new tasks until the time is up
    image_width: int = 320
    image_height: int = 240
    images: int = 0  # distinct images; 0: two per annotator
    timeout_s: float = 120.0
    max_requests: int = 20_000
    seed: int = 0

    def check(self) -> None:
        if not 1 <= self.annotators <= MAX_ANNOTATORS:
            raise ValueError(f"--annotators must be 1..{MAX_ANNOTATORS}, not {self.annotators}")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ValueError(f"--rounds must be 1..{MAX_ROUNDS}, not {self.rounds}")
        if not 0 <= self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"--duration must be 0..{MAX_DURATION_S:g} seconds, not {self.duration_s:g}")
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise ValueError(f"--max-requests must be 1..{MAX_REQUESTS}, not {self.max_requests}")
        if not (32 <= self.image_width <= 4096 and 32 <= self.image_height <= 4096):
            raise ValueError("--image-size: each side must be 32..4096 pixels")
