"""Label Studio /predict: tasks with brush strokes in, brush mask regions out.

Interactive call (``params.context`` holds smart keypoints or rectangles): one
region of the context's class, for the instance the click names
(``labelstudio/instances.py``), from the annotator's draft that holds the click
(``labelstudio_drafts.py``: strokes painted just before a click arrive only in
the draft Label Studio saves about 5 s later). When those strokes cannot be had,
the answer is a message in the labeling config's TextArea, never a stale mask.
Every round is made from what the annotator has on screen (strokes, accepted
masks, clicks): nothing of an earlier round is remembered server-side.
Batch call (``context`` is null: a task opened, "Retrieve Predictions"): one
region per class that has strokes.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache

import numpy as np

from ..core.prompts import PromptError, make_prompts
from ..errors import ApiError, ClientError, invalid_parameter
from ..labelstudio.config import ScribbleConfig, parse_scribble_config
from ..labelstudio.instances import Stroke, plan_instance
from ..labelstudio.context import context_prompts
from ..labelstudio.mapping import brush_result, class_scribbles
from ..labelstudio.task_strokes import strokes_from_task, task_state
from ..labelstudio.touches import painting_budget
from .labelstudio_drafts import TaskDraftsReader, clicked_region_id, draft_holding, wait_for_draft
from .labelstudio_origin import Connection
from .metrics import ROUNDS
from .precompute import Precomputer, ThreadPrecomputer
from .state import ServiceState
from .task_images import LoadedImage, TaskImageLoader

logger = logging.getLogger(__name__)


class LabelStudioPredictor:
    def __init__(self, service: ServiceState, images: TaskImageLoader, precomputer: Precomputer | None = None) -> None:
        self.service = service
        self.images = images
        self.precomputer = precomputer or ThreadPrecomputer(self._embed_url)
        settings = service.settings
        self.connection = Connection.from_settings(settings)
        self._schemas: dict[str, str] = {}
        self.drafts_reader = TaskDraftsReader(settings.fetch_allowed_hosts, settings.LABEL_STUDIO_URL)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ /setup

    def setup(self, body: dict) -> dict:
        hostname, token = body.get("hostname"), body.get("access_token")
        settings = self.service.settings
        with self._lock:
            # The token stays bound to its origin; see labelstudio_origin.
            self.connection.apply_setup(hostname, token, settings)
            project, schema = body.get("project"), body.get("schema")
            if isinstance(project, str) and isinstance(schema, str):
                self._schemas[project.split(".")[0]] = schema
        return {"model_version": self.service.model_version}

    # ------------------------------------------------------------------ /predict

    def predict(self, body: dict) -> dict:
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise invalid_parameter("tasks", "must be a non-empty list of tasks")
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise invalid_parameter("params", "must be an object")
        context = (params or {}).get("context")
        if context is not None and not isinstance(context, dict):
            raise invalid_parameter("params.context", "must be an object or null")
        project = body.get("project") if isinstance(body.get("project"), str) else None
        config = self._config(body.get("label_config"), project)

        if context:
            if len(tasks) != 1:
                raise invalid_parameter("tasks", "an interactive call takes exactly one task")
            with painting_budget():
                return {"results": [self._interactive(tasks[0], context, config, project)]}
        results = []
        for index, task in enumerate(tasks):
            try:
                with painting_budget():
                    results.append(self._batch(task, config, project, f"tasks[{index}]"))
            except ApiError as error:
                # One bad task must not cost the others their predictions.
                logger.info("batch task %s skipped: %s", index, error.message)
                results.append({"result": [], "score": 0.0, "model_version": self.service.model_version, "error": error.message})
        return {"results": results}

    # ------------------------------------------------------------------ /webhook

    def webhook(self, body: dict) -> dict:
        """Task and annotation events schedule embeddings; nothing else is needed from them."""
        action = body.get("action") if isinstance(body.get("action"), str) else None
        project = body.get("project")
        label_config = project.get("label_config") if isinstance(project, dict) else None
        project_id = str(project.get("id")) if isinstance(project, dict) and project.get("id") is not None else None
        tasks = body.get("tasks") if isinstance(body.get("tasks"), list) else [body.get("task")]
        scheduled = 0
        try:
            config = self._config(label_config, project_id)
        except ClientError:
            return {"status": "ok", "action": action, "scheduled": 0}
        for task in tasks:
            if isinstance(task, dict) and isinstance(task.get("data"), dict):
                scheduled += self.schedule_precompute(task, config)
        return {"status": "ok", "action": action, "scheduled": scheduled}

    def schedule_precompute(self, task: dict, config: ScribbleConfig) -> int:
        data = task.get("data")
        url = data.get(config.image_value_key) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            return 0
        with self._lock:
            hostname, token = self.connection.hostname, self.connection.access_token
        task_id = task.get("id") if isinstance(task.get("id"), int) else None
        self.precomputer.schedule(url, hostname, token, task_id)
        return 1

    def _embed_url(self, url: str, hostname: str | None, token: str | None, task_id: int | None) -> None:
        image = self.images.load(url, hostname, token, task_id)
        self.service.segmenter.embed(image.pixels, image_key=image.key)

    def _config(self, label_config: object, project: str | None) -> ScribbleConfig:
        if not isinstance(label_config, str) or not label_config.strip():
            label_config = self._schemas.get((project or "").split(".")[0])
        if not isinstance(label_config, str):
            raise invalid_parameter("label_config", "is missing (and no /setup schema is known for this project)")
        return _parsed_config(label_config, tuple(self.service.settings.NEGATIVE_LABELS))

    def _image(self, task: dict, config: ScribbleConfig, name: str) -> LoadedImage:
        if not isinstance(task, dict):
            raise invalid_parameter(name, "must be an object")
        data = task.get("data")
        if not isinstance(data, dict) or config.image_value_key not in data:
            raise invalid_parameter(f"{name}.data", f"has no {config.image_value_key!r} image")
        with self._lock:
            hostname, token = self.connection.hostname, self.connection.access_token
        task_id = task.get("id") if isinstance(task.get("id"), int) else None
        return self.images.load(data[config.image_value_key], hostname, token, task_id)

    def _interactive(self, task: dict, context: dict, config: ScribbleConfig, project: str | None) -> dict:
        image = self._image(task, config, "tasks[0]")
        height, width = image.height, image.width
        prompts_from_context = context_prompts(context, config, height, width, name="params.context")
        label = prompts_from_context.target_label
        if label is None:
            raise invalid_parameter("params.context", "names no class: click a smart keypoint or draw a smart rectangle")
        task, missing = self._annotator_draft(task, context)
        if missing is not None:
            return self._message(config, f"Strokes not reached: {missing}. Nothing was segmented; click again.")

        state = task_state(task, config, height, width, name="tasks[0]")
        strokes = [Stroke(stroke_label, mask) for stroke_label, mask in state.stroke_regions]
        strokes += [Stroke(stroke_label, mask) for stroke_label, mask in prompts_from_context.strokes.items()]
        plan = plan_instance(
            strokes, state.accepted.get(label, []), label, (height, width),
            prompts_from_context.points, prompts_from_context.point_labels,
        )  # fmt: skip
        logger.info(
            "task %s: %d stroke regions, %d accepted %s masks, clicks %s: %s instance",
            task.get("id"), len(strokes), len(state.accepted.get(label, [])), label,
            [(round(float(x)), round(float(y)), int(positive)) for (x, y), positive
             in zip(prompts_from_context.points, prompts_from_context.point_labels)],
            "a new" if plan.refined is None else "refining an accepted",
        )  # fmt: skip
        # No server-side memory of earlier rounds: every round is made from what the
        # annotator has on screen (strokes, accepted masks, clicks), so accepting,
        # rejecting, erasing or another image can never bring back a mask the
        # annotator no longer sees. An accepted mask the click refines seeds it.
        previous = plan.previous
        mask, score = self._segment(
            image, plan.positive, plan.negative, previous,
            points=prompts_from_context.points,
            point_labels=prompts_from_context.point_labels,
            box=prompts_from_context.box,
        )  # fmt: skip
        mask = plan.apply(mask) if mask is not None else None
        ROUNDS.labels("labelstudio_interactive").inc()
        if mask is None or not mask.any():
            return {"result": [], "score": 0.0, "model_version": self.service.model_version}
        region = brush_result(mask, label, config, height, width, score)
        return {"result": [region], "score": score, "model_version": self.service.model_version}

    def _annotator_draft(self, task: dict, context: dict) -> tuple[dict, str | None]:
        """The task with the annotator's draft that holds the click, or why it cannot be had.

        A call made right after a stroke carries an older draft; Label Studio
        saves one holding the click (same region id) about 5 s later.
        """
        clicked = clicked_region_id(context)
        if clicked is None:
            return task, None  # not a click from the labeling UI: the call is all there is
        carried = draft_holding(task.get("drafts"), clicked)
        if carried is not None:
            # The draft holding the click is the annotator's screen: nothing else counts.
            return {**task, "drafts": [carried], "annotations": []}, None
        timeout = self.service.settings.DRAFT_WAIT_SECONDS
        task_id = task.get("id")
        if timeout <= 0 or isinstance(task_id, bool) or not isinstance(task_id, int):
            return task, None
        with self._lock:
            hostname, token = self.connection.hostname, self.connection.access_token
        wait = wait_for_draft(lambda: self.drafts_reader.read(hostname, token, task_id), clicked, timeout)
        logger.info("task %s: waited %.2f s for the draft holding click %s", task_id, wait.waited_s, clicked)
        if wait.draft is None:
            logger.warning("task %s: %s", task_id, wait.reason)
            return task, wait.reason
        return {**task, "drafts": [wait.draft], "annotations": []}, None

    def _message(self, config: ScribbleConfig, text: str) -> dict:
        """An answer the annotator reads in the labeling UI (Label Studio shows no error field)."""
        result = []
        if config.message_control:
            result.append({
                "from_name": config.message_control, "to_name": config.image_name, "type": "textarea",
                "value": {"text": [text]},
            })  # fmt: skip
        return {"result": result, "score": 0.0, "model_version": self.service.model_version, "error": text}

    def _batch(self, task: dict, config: ScribbleConfig, project: str | None, name: str) -> dict:
        if not isinstance(task, dict):
            raise invalid_parameter(name, "must be an object")
        if not _has_any_results(task):
            # Nothing painted yet (a task just opened): answer at once and compute
            # the embedding in the background, before the first click needs it.
            self.schedule_precompute(task, config)
            return {"result": [], "score": 0.0, "model_version": self.service.model_version}
        image = self._image(task, config, name)
        strokes = strokes_from_task(task, config, image.height, image.width, name=name)
        regions, scores = [], []
        for label in config.class_labels:
            if label not in strokes or not strokes[label].any():
                continue
            positive, negative = class_scribbles(strokes, label, config, shape=(image.height, image.width))
            mask, score = self._segment(image, positive, negative, None)
            if mask is not None:
                regions.append(brush_result(mask, label, config, image.height, image.width, score))
                scores.append(score)
        if regions:
            ROUNDS.labels("labelstudio_batch").inc()
        return {
            "result": regions,
            "score": float(np.mean(scores)) if scores else 0.0,
            "model_version": self.service.model_version,
        }

    def _segment(
        self,
        image: LoadedImage,
        positive: np.ndarray,
        negative: np.ndarray,
        previous: np.ndarray | None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, float]:
        try:
            prompts = make_prompts(
                image.pixels.shape, positive, negative, current_mask=previous,
                points=points, point_labels=point_labels, box=box,
            )  # fmt: skip
        except PromptError as error:
            raise invalid_parameter(f"params.context ({error.field_name})", str(error).split(": ", 1)[-1]) from None
        if not prompts.has_positive_evidence():
            return None, 0.0
        segmenter = self.service.segmenter
        refine = segmenter.engine.refine_option(self.service.settings.REFINE)
        prediction = segmenter.segment(image.pixels, prompts, refine=refine, image_key=image.key)
        if not prediction.mask.any():
            return None, 0.0
        return prediction.mask, round(float(prediction.score), 4)


def _has_any_results(task: dict) -> bool:
    for collection in ("drafts", "annotations"):
        items = task.get(collection)
        if isinstance(items, list) and any(isinstance(item, dict) and item.get("result") for item in items):
            return True
    return False


@lru_cache(maxsize=64)
def _parsed_config(label_config: str, negative_labels: tuple[str, ...]) -> ScribbleConfig:
    """A project's labeling config arrives with every request: parse each text once."""
    return parse_scribble_config(label_config, negative_labels=negative_labels)
