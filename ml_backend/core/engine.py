"""The one interface every engine implements: embed an image once, decode prompts often."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import ServerError
from .prompts import Prompts


class EngineUnavailable(ServerError, RuntimeError):
    """An engine cannot run here: weights or a package are missing. The message says how to fix it."""


@dataclass
class Embedding:
    """An engine's per-image state. Expensive to compute, cheap to keep and to ship.

    ``arrays`` hold everything ``predict`` needs; ``engine_identity`` guards against
    decoding one engine's embedding with another.
    """

    engine_identity: str
    image_shape: tuple[int, int]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(sum(array.nbytes for array in self.arrays.values()))

    def to_bytes(self, float16: bool = False) -> bytes:
        """Serialises to an .npz blob; ``float16`` halves float32 features for shared caches."""
        arrays = {}
        for name, array in self.arrays.items():
            if float16 and array.dtype == np.float32:
                array = array.astype(np.float16)
            arrays[f"array_{name}"] = array
        buffer = io.BytesIO()
        np.savez(
            buffer,
            engine_identity=np.frombuffer(self.engine_identity.encode(), np.uint8),
            image_shape=np.asarray(self.image_shape, np.int64),
            **arrays,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Embedding":
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            identity = stored["engine_identity"].tobytes().decode()
            shape = tuple(int(v) for v in stored["image_shape"])
            arrays = {}
            for key in stored.files:
                if key.startswith("array_"):
                    array = stored[key]
                    arrays[key[len("array_"):]] = array.astype(np.float32) if array.dtype == np.float16 else array
        return cls(engine_identity=identity, image_shape=shape, arrays=arrays)  # type: ignore[arg-type]


@dataclass
class Prediction:
    """A decoded mask. ``logits`` are the engine's low-resolution output, fed back next round."""

    mask: np.ndarray
    score: float
    logits: np.ndarray | None = None


class Engine(ABC):
    """A segmentation engine.

    ``embed`` sees the image once (slow, cacheable by image content and
    ``identity``); ``predict`` turns prompts into a mask using only the embedding.
    Scribble hard constraints are applied by the caller, not here.
    """

    #: the name of the engine's row in ``ml_backend.engine_registry`` (used in settings and the CLI);
    #: subclasses read it from there rather than spelling it
    name: str = ""
    #: the refinement "auto" stands for with this engine
    default_refine: str = "maskrefine"

    def refine_option(self, requested: str) -> str:
        """``requested``, with "auto" read as this engine's own refinement."""
        return self.default_refine if requested == "auto" else requested

    @property
    @abstractmethod
    def identity(self) -> str:
        """Names the engine and its weights, so cached embeddings never cross models."""

    @abstractmethod
    def embed(self, image: np.ndarray) -> Embedding:
        """``image``: HxWx3 uint8 RGB."""

    @abstractmethod
    def predict(self, embedding: Embedding, prompts: Prompts) -> Prediction:
        """Returns a mask at ``embedding.image_shape``."""

    def check_embedding(self, embedding: Embedding, prompts: Prompts) -> None:
        if embedding.engine_identity != self.identity:
            raise ValueError(
                f"embedding was made by {embedding.engine_identity!r}, not by {self.identity!r}"
            )
        if tuple(embedding.image_shape) != tuple(prompts.shape):
            raise ValueError(
                f"prompts are {prompts.shape[1]}x{prompts.shape[0]}, the embedded image "
                f"{embedding.image_shape[1]}x{embedding.image_shape[0]}"
            )
