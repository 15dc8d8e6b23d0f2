"""A real ``redis-server`` for tests (see ``ml_backend.tools.redis_process``).

Use ``from tests.support.redis_server import redis_server  # noqa`` in a test module.
The fixture fails (never skips) when the server cannot be started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from ml_backend.tools.redis_process import RedisServer, running_redis_server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_redis_server())
        except Exception as error:  # the test must fail, not skip, without its service
            pytest.fail(f"cannot start redis-server for the tests: {error}")
        yield server
