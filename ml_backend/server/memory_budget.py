"""A per-worker budget for the memory of images being segmented at once.

Decoding, prompts, segmentation and encoding of one image hold several copies of it
in memory: about ``BYTES_PER_PIXEL`` bytes per pixel, measured at 4096x4096
(12 concurrent uploads took a worker from 385 MB to 3.4 GB). A request reserves its
estimate before its image is decoded; when the reservations would pass
``MEMORY_BUDGET_MB`` it waits (on the event loop, holding no thread) up to
``MEMORY_WAIT_SECONDS``, then gets 503 with ``Retry-After``. One image larger than the
whole budget still runs, alone.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from PIL import Image

from ..engine_registry import DEFAULT_BYTES_PER_PIXEL, engine_spec
from ..errors import Overloaded
from ..settings import Settings

BYTES_PER_PIXEL = DEFAULT_BYTES_PER_PIXEL
# decode_image refuses larger sides before decoding them.
MAX_SIDE = 4096
POLL_SECONDS = 0.02
MEGABYTE = 1024 * 1024


def estimate_image_bytes(data: bytes, bytes_per_pixel: int = BYTES_PER_PIXEL) -> int:
    """Memory to segment the image in ``data``, from its header (nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - unreadable: decoding will refuse it at once, cheaply
        return len(data)
    return bytes_per_pixel * min(width, MAX_SIDE) * min(height, MAX_SIDE)


class MemoryBudget:
    def __init__(self, budget_bytes: int, wait_seconds: float, bytes_per_pixel: int = BYTES_PER_PIXEL) -> None:
        self.budget_bytes = budget_bytes
        self.wait_seconds = wait_seconds
        self.bytes_per_pixel = bytes_per_pixel
        self._reserved = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "MemoryBudget":
        # Engines that work on the full-resolution image say in the registry that they need more.
        bytes_per_pixel = engine_spec(settings.ENGINE).bytes_per_pixel
        return cls(settings.MEMORY_BUDGET_MB * MEGABYTE, settings.MEMORY_WAIT_SECONDS, bytes_per_pixel)

    def estimate(self, data: bytes) -> int:
        return estimate_image_bytes(data, self.bytes_per_pixel)

    @property
    def reserved_bytes(self) -> int:
        with self._lock:
            return self._reserved

    def _try_reserve(self, size: int) -> bool:
        with self._lock:
            if self._reserved and self._reserved + size > self.budget_bytes:
                return False
            self._reserved += size
            return True

    def _release(self, size: int) -> None:
        with self._lock:
            self._reserved -= size

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        # Polled rather than an asyncio.Condition: that would bind to one event loop,
        # and test clients run each request on a loop of its own.
        give_up_at = time.monotonic() + self.wait_seconds
        while not self._try_reserve(size):
            if time.monotonic() >= give_up_at:
                raise Overloaded(
                    "MEMORY_BUDGET_MB",
                    f"images being segmented fill the {self.budget_bytes // MEGABYTE} MB memory budget "
                    f"(MEMORY_BUDGET_MB); waited {self.wait_seconds:g} s (MEMORY_WAIT_SECONDS); try again shortly",
                    retry_after_seconds=max(1, round(self.wait_seconds / 3)),
                )
            await asyncio.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            self._release(size)
