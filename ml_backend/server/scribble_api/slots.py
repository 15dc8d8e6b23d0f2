"""The concurrency gate: at most THREADS segmentations at once in a worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request

from ...settings import Settings

Result = TypeVar("Result")


def segmentation_slots(request: Request, settings: Settings) -> threading.BoundedSemaphore:
    # Each segmentation holds several copies of an image of up to 4096x4096 in
    # memory, and more at once than THREADS would not be faster.
    extras = request.app.state.service.extras
    return extras.setdefault("scribble_segmentation_slots", threading.BoundedSemaphore(settings.THREADS))


def run_in_slot(slots: threading.BoundedSemaphore, work: Callable[[], Result]) -> Result:
    """Runs ``work`` once a slot is free (blocking: call it from a worker thread)."""
    with slots:
        return work()
