"""The server's resident memory over a run, summed over the processes that hold its socket."""

from __future__ import annotations

import threading
import time

import numpy as np

from .proc import listening_pids, rss_bytes

RSS_SAMPLE_INTERVAL_S = 0.5


class RssSampler:
    """Samples the summed RSS of the server's processes every half second, in a thread."""

    def __init__(self, port: int, interval_s: float = RSS_SAMPLE_INTERVAL_S) -> None:
        self.port = port
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, bytes, processes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)
        self._started = time.monotonic()

    def sample(self) -> tuple[int, int]:
        pids = listening_pids(self.port)
        total = sum(rss_bytes(pid) for pid in pids)
        self.samples.append((time.monotonic() - self._started, total, len(pids)))
        return total, len(pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def summary(self, timeline_points: int = 20) -> dict:
        megabytes = [total / 2**20 for _, total, _ in self.samples]
        # A few evenly spaced samples: whether memory levels off or keeps climbing.
        picks = np.linspace(0, len(self.samples) - 1, min(timeline_points, len(self.samples))).round().astype(int)
        return {
            "start_mb": round(megabytes[0], 1),
            "peak_mb": round(max(megabytes), 1),
            "end_mb": round(megabytes[-1], 1),
            "processes": max(count for _, _, count in self.samples),
            "samples": len(self.samples),
            "timeline_mb": [(round(self.samples[index][0], 1), round(megabytes[index], 1)) for index in picks],
        }
