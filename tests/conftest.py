# Session-wide services, started once and shared by every test module that asks for them.
from tests.support.label_studio import label_studio  # noqa: F401
from tests.support.redis_server import redis_server  # noqa: F401
