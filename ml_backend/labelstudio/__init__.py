"""Label Studio translation layer: brush RLE, stroke touches, labeling config, request mapping.

Pure functions over Label Studio's JSON; no HTTP here. One concept a module:
``rle`` (brush RLE, over ``rle_format``/``rle_encode``/``rle_decode``),
``touches`` (painted strokes), ``config`` (the labeling config), ``regions``
(result lists and brush masks), ``task_strokes`` (the draft or annotation
holding the strokes), ``context`` (an interactive call's clicks and box),
``mapping`` (scribbles for a class, masks back to regions), ``instances``
(several objects of one class).
"""

from ml_backend.labelstudio.config import ScribbleConfig, parse_scribble_config
from ml_backend.labelstudio.context import ContextPrompts, context_prompts
from ml_backend.labelstudio.mapping import brush_result, class_scribbles
from ml_backend.labelstudio.regions import merge_strokes, strokes_from_results
from ml_backend.labelstudio.rle import decode_rle, decode_rle_rgba, encode_mask, encode_rle
from ml_backend.labelstudio.task_strokes import TaskState, strokes_from_task, task_state
from ml_backend.labelstudio.touches import rasterize_brush_value

__all__ = [
    "ContextPrompts",
    "ScribbleConfig",
    "TaskState",
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
