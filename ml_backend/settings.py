"""All configuration, read once from environment variables and ``ml_backend/config/defaults.env``.

Names follow Label Studio ML backends (``LABEL_STUDIO_URL``, ``BASIC_AUTH_USER``, ...).
Environment variables win over the file.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_cache_path, user_data_path
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .config import defaults_env_path
from .engine_registry import DEFAULT_ENGINE, ENGINE_NAMES, SAM_MODEL_TYPES
from .errors import ServerError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = defaults_env_path().parent

CommaList = Annotated[list[str], NoDecode]

# Writable folders default to the user's own data and cache folders, never the package's:
# after a wheel install the package folder is site-packages, often read-only and shared.
APP_NAME = "scribble-segmentation"


def _one_of(value: str, names: tuple[str, ...]) -> str:
    if value not in names:
        raise ValueError(f"must be one of {', '.join(names)}")
    return value


def _user_data_dir(name: str) -> Path:
    return user_data_path(APP_NAME, appauthor=False) / name


def _user_cache_dir() -> Path:
    return user_cache_path(APP_NAME, appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=(str(defaults_env_path()), ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
    )

    # Server
    HOST: str = "0.0.0.0"
    PORT: int = Field(9090, ge=1, le=65535)
    WORKERS: int = Field(2, ge=1, le=64)
    THREADS: int = Field(4, ge=1, le=256)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    MAX_REQUEST_MB: int = Field(40, ge=1)

    # Label Studio
    LABEL_STUDIO_URL: str | None = None
    LABEL_STUDIO_API_KEY: str | None = None
    BASIC_AUTH_USER: str | None = None
    BASIC_AUTH_PASS: str | None = None
    NEGATIVE_LABELS: CommaList = ["Background"]

    # Engines
    ENGINE: str = DEFAULT_ENGINE.name
    REFINE: Literal["auto", "none", "edgerefine", "maskrefine"] = "auto"
    MODEL_DIR: Path = Field(default_factory=lambda: _user_data_dir("models"))
    SAM_MODEL_TYPE: str = SAM_MODEL_TYPES[0]
    SAM_CHECKPOINT: Path | None = None
    MOBILE_SAM_CHECKPOINT: Path | None = None
    TORCH_THREADS: int = Field(0, ge=0)
    # Where SAM-family engines run: auto (the GPU when torch sees one), cpu, cuda or cuda:N.
    DEVICE: str = "auto"

    # Caches and stores
    REDIS_URL: str | None = None
    # Where embeddings of just-opened tasks are computed: a background thread of the
    # server, or an RQ queue served by `scribble-seg worker` (needs REDIS_URL).
    PRECOMPUTE: Literal["thread", "queue"] = "thread"
    EMBEDDING_CACHE_MB: int = Field(1024, ge=0)
    RESULT_DIR: Path = Field(default_factory=lambda: _user_data_dir("results"))
    CACHE_DIR: Path = Field(default_factory=_user_cache_dir)
    RESULT_TTL_SECONDS: int = Field(1800, ge=1)
    RESULT_SIGNING_KEY: str | None = None
    PUBLIC_URL: str | None = None

    # Access
    API_KEYS: CommaList = []
    ALLOWED_FETCH_HOSTS: CommaList = []

    # Budgets and exposure (issue 19): limits that hold under hostile load.
    # Remote fetches (image URLs) run on their own threads, at most this many at once
    # per worker; more get 503 with Retry-After instead of holding compute threads.
    FETCH_CONCURRENCY: int = Field(16, ge=1, le=1024)
    # The whole of one fetch (connect, redirects, body) must end within this many seconds.
    FETCH_DEADLINE_SECONDS: float = Field(25.0, gt=0, le=600)
    # Decoded images in flight per worker, estimated at MEMORY_BYTES_PER_PIXEL; beyond
    # it requests wait up to MEMORY_WAIT_SECONDS, then get 503 with Retry-After.
    MEMORY_BUDGET_MB: int = Field(1536, ge=16)
    MEMORY_WAIT_SECONDS: float = Field(30.0, ge=0, le=600)
    # Result (and upload) files in RESULT_DIR; the oldest are evicted beyond it.
    RESULT_DISK_QUOTA_MB: int = Field(2048, ge=1)
    # Host names (Host header) a ResultUrl may be built from when PUBLIC_URL is unset.
    TRUSTED_HOSTS: CommaList = []
    # With BASIC_AUTH_* or API_KEYS set, /docs and /openapi.json need them; these two too?
    METRICS_AUTH: bool = True
    HEALTH_AUTH: bool = False

    # Label Studio sessions: how long an interactive call waits for the annotator's
    # autosaved draft to hold the click (Label Studio saves it about 5 s after the
    # click); strokes painted just before a click arrive only in that draft.
    # 0 answers at once with whatever strokes the call carries.
    DRAFT_WAIT_SECONDS: float = Field(12.0, ge=0, le=90)

    @field_validator("NEGATIVE_LABELS", "API_KEYS", "ALLOWED_FETCH_HOSTS", "TRUSTED_HOSTS", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "REDIS_URL", "PUBLIC_URL", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("DEVICE", mode="before")
    @classmethod
    def _known_device(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return "auto"
        if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("ENGINE")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        # The engine registry is the one list of names: a typo fails at start, not at the first request.
        return _one_of(value, ENGINE_NAMES)

    @field_validator("SAM_MODEL_TYPE")
    @classmethod
    def _known_sam_model(cls, value: str) -> str:
        return _one_of(value, SAM_MODEL_TYPES)

    @field_validator("SAM_CHECKPOINT", "MOBILE_SAM_CHECKPOINT", mode="before")
    @classmethod
    def _blank_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def fetch_allowed_hosts(self) -> list[str]:
        """ALLOWED_FETCH_HOSTS only. Label Studio's origin is opened for its own paths, for
        its /predict only, by ``server.labelstudio_origin`` (not for every port and path)."""
        return list(self.ALLOWED_FETCH_HOSTS)


class SettingsError(ServerError, ValueError):
    """A setting from the environment or ``ml_backend/config/defaults.env`` that cannot be used."""


_SECRET_WORDS = ("KEY", "PASS", "TOKEN", "SECRET")


def describe_settings_error(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        # Start-up errors end up in logs: a secret's value is never repeated there.
        shown = "hidden" if any(word in name for word in _SECRET_WORDS) else repr(problem.get("input"))
        problems.append(f"{name}: {problem['msg']} (got {shown})")
    return "; ".join(problems) + "; set it in the environment or ml_backend/config/defaults.env"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_settings_error(error)) from None
