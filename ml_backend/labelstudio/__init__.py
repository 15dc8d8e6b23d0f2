"""Label Studio translation layer: brush RLE, stroke touches, labeling config, request mapping.

Pure functions over Label Studio's JSON; no HTTP here.
"""

from ml_backend.labelstudio.config import ScribbleConfig, parse_scribble_config
from ml_backend.labelstudio.mapping import (
    ContextPrompts,
    brush_result,
    class_scribbles,
    context_prompts,
    merge_strokes,
    strokes_from_results,
    strokes_from_task,
    task_state,
)
from ml_backend.labelstudio.rle import decode_rle, decode_rle_rgba, encode_mask, encode_rle
from ml_backend.labelstudio.touches import rasterize_brush_value

__all__ = [
    "ContextPrompts",
    "ScribbleConfig",
    "brush_result",
    "class_scribbles",
    "context_prompts",
    "decode_rle",
    "decode_rle_rgba",
    "encode_mask",
    "encode_rle",
    "merge_strokes",
    "parse_scribble_config",
    "rasterize_brush_value",
    "strokes_from_results",
    "strokes_from_task",
    "task_state",
]
