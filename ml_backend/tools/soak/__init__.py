"""``scribble-seg soak``: simulated annotators against a running server; latency, errors, memory.

Each annotator opens a task (``/predict`` with a null context, as Label Studio
sends when a task is opened) and then clicks K times (``/predict`` with a smart
keypoint context and the draft's strokes, which move a little every round, as
fresh autosaved touches do). Images come from the Label Studio stand-in
(``tools/fake_label_studio.py``): ``/data/upload/...`` with the legacy token, on loopback.

Recorded: the latency of every request by round (p50/p95), errors (non-200
answers, transport failures, answers without a mask), the IoU of each mask
against the known object, and the server's resident memory, summed over the
processes that hold its listening socket (the uvicorn parent and its workers),
sampled from ``/proc``. Everything is bounded: annotators, rounds, duration and
requests have hard caps, and only loopback servers are driven.

One concept a module: ``scenes`` (the images), ``payloads`` (Label Studio's bodies),
``images`` (the scenes as uploads), ``server_process`` (``scribble-seg serve`` of our
own), ``proc`` and ``rss`` (memory), ``config``, ``driver`` (the annotators),
``report`` and ``command`` (the arguments).
"""

from ..ports import LOOPBACK_HOST, free_port
from .command import add_soak_parser, run_soak_command, soak_server
from .config import MAX_ANNOTATORS, MAX_DURATION_S, MAX_REQUESTS, MAX_ROUNDS, SoakConfig
from .driver import require_loopback, run_soak
from .images import LabelStudioImages
from .payloads import LABEL, NEGATIVE_LABEL, PROJECT, click_body, draft_strokes, label_config, task_body
from .proc import child_pids, listening_pids, open_files, rss_bytes
from .report import Outcome, SoakReport, format_report
from .rss import RssSampler
from .scenes import Scene, make_scene
from .server_process import ServerProcess, running_server, scribble_seg_command, start_server

__all__ = [
    "LABEL", "LOOPBACK_HOST", "MAX_ANNOTATORS", "MAX_DURATION_S", "MAX_REQUESTS", "MAX_ROUNDS", "NEGATIVE_LABEL",
    "PROJECT", "LabelStudioImages", "Outcome", "RssSampler", "Scene", "ServerProcess", "SoakConfig", "SoakReport",
    "add_soak_parser", "child_pids", "click_body", "draft_strokes", "format_report", "free_port", "label_config",
    "listening_pids", "make_scene", "open_files", "require_loopback", "rss_bytes", "run_soak", "run_soak_command",
    "running_server", "scribble_seg_command", "soak_server", "start_server", "task_body",
]
