"""Remote fetches on threads of their own, bounded in number and in time.

Fetching an image URL is waiting, not computing: a host that trickles one byte a
second holds its thread for the whole deadline. On the shared request thread pool,
45 such fetches held every thread and a normal upload waited 23 s for one. Here at
most ``FETCH_CONCURRENCY`` fetches run at once per worker, each ends within
``FETCH_DEADLINE_SECONDS``, and a fetch beyond capacity is refused at once with 503
and ``Retry-After`` rather than queued behind slow hosts.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import Overloaded
from ..io.fetch import OriginRule, fetch_url
from ..settings import Settings

# Connecting gets at most this share of the deadline (and at most 5 s); reading the rest.
CONNECT_SHARE = 0.2
MAX_CONNECT_SECONDS = 5.0


class FetchPool:
    def __init__(self, concurrency: int, deadline_seconds: float) -> None:
        self.concurrency = concurrency
        self.deadline_seconds = deadline_seconds
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch")
        self._in_flight = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "FetchPool":
        return cls(settings.FETCH_CONCURRENCY, settings.FETCH_DEADLINE_SECONDS)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _take_slot(self) -> None:
        with self._lock:
            if self._in_flight >= self.concurrency:
                raise Overloaded(
                    "FETCH_CONCURRENCY",
                    f"all {self.concurrency} fetch slots are busy (FETCH_CONCURRENCY); try again shortly",
                    retry_after_seconds=max(1, math.ceil(self.deadline_seconds / 5)),
                )
            self._in_flight += 1

    def _release_slot(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _fetch_then_release(self, url: str, field: str, max_bytes: int, allowed_hosts: Sequence[str],
                            origin_rules: Sequence[OriginRule], headers: Mapping[str, str] | None = None) -> bytes:
        # Released by the thread itself: a request that gave up (client gone) still
        # holds its slot until the fetch really ends, so the count never lies.
        try:
            connect = min(MAX_CONNECT_SECONDS, self.deadline_seconds * CONNECT_SHARE)
            return fetch_url(
                url, field, max_bytes, allowed_hosts, connect_timeout=connect,
                read_timeout=self.deadline_seconds - connect, headers=headers, origin_rules=origin_rules,
            )
        finally:
            self._release_slot()

    def fetch_blocking(self, url: str, field: str, max_bytes: int, allowed_hosts: Sequence[str] = (),
                       headers: Mapping[str, str] | None = None, origin_rules: Sequence[OriginRule] = ()) -> bytes:
        """The same for code already on a worker thread (Label Studio's task images): it
        waits, but the number of such fetches at once is bounded with the others."""
        self._take_slot()
        try:
            future = self._executor.submit(
                self._fetch_then_release, url, field, max_bytes, allowed_hosts, origin_rules, headers
            )
        except BaseException:
            self._release_slot()
            raise
        return future.result()

    async def fetch(self, url: str, field: str, max_bytes: int, allowed_hosts: Sequence[str] = (),
                    origin_rules: Sequence[OriginRule] = ()) -> bytes:
        """``fetch_url`` on the pool, or ``Overloaded`` (503) when every slot is taken."""
        self._take_slot()
        try:
            future = self._executor.submit(
                self._fetch_then_release, url, field, max_bytes, allowed_hosts, origin_rules
            )
        except BaseException:
            self._release_slot()
            raise
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
