"""Reads what a scribble backend needs from a Label Studio labeling config.

The design this backend recommends (see docs/label-studio.md) keeps strokes and
results apart: one BrushLabels control for the annotator's strokes (the classes
plus negative labels such as ``Background``) and one for the masks the backend
returns (the classes only). A config with a single BrushLabels control also
works; strokes and returned masks then share it. Smart KeyPointLabels and
RectangleLabels controls are what make Label Studio send interactive requests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from ml_backend.errors import invalid_parameter

DEFAULT_NEGATIVE_LABELS = ("Background",)
CONFIG_FIELD = "label_config"
MAX_CONFIG_CHARS = 1_000_000


@dataclass(frozen=True)
class Control:
    """One labeling control: its name, the object it labels and its label values."""

    name: str
    tag: str
    to_name: str
    labels: tuple[str, ...]
    smart: bool = False


@dataclass(frozen=True)
class ScribbleConfig:
    """Where strokes come from, where masks go, and which labels mean what.

    ``class_labels`` are the classes a mask can be returned for (the output
    control's labels without the negative ones). ``negative_labels`` are stroke
    labels that only ever say "not the object".
    """

    stroke_controls: tuple[str, ...]
    output_control: str
    class_labels: tuple[str, ...]
    negative_labels: tuple[str, ...]
    image_name: str
    image_value_key: str
    stroke_labels: tuple[str, ...] = ()
    point_controls: tuple[str, ...] = ()
    box_controls: tuple[str, ...] = ()
    prompt_labels: tuple[str, ...] = ()
    controls: tuple[Control, ...] = field(default=(), repr=False)
    # A TextArea on the image where the backend writes what the annotator must do
    # when it cannot answer with a mask (None: the config has none).
    message_control: str | None = None

    def is_stroke_region(self, from_name: object) -> bool:
        return from_name in self.stroke_controls


def _strip_namespace(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attribute(element: ElementTree.Element, name: str) -> str | None:
    """Label Studio attribute names are case-insensitive (``toName`` / ``toname``)."""
    lowered = name.lower()
    for key, value in element.attrib.items():
        if key.lower() == lowered:
            return value
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _labels(element: ElementTree.Element) -> tuple[str, ...]:
    values = []
    for child in element.iter():
        if child is element or _strip_namespace(child.tag).lower() != "label":
            continue
        value = _attribute(child, "value")
        if value is not None and value not in values:
            values.append(value)
    return tuple(values)


def _parse(label_config: str) -> ElementTree.Element:
    if not isinstance(label_config, str) or not label_config.strip():
        raise invalid_parameter(CONFIG_FIELD, "must be a non-empty XML string")
    if len(label_config) > MAX_CONFIG_CHARS:
        raise invalid_parameter(CONFIG_FIELD, f"is {len(label_config)} characters long, at most {MAX_CONFIG_CHARS}")
    # Labeling configs never need a DTD; refusing one rules out entity expansion.
    if "<!DOCTYPE" in label_config.upper() or "<!ENTITY" in label_config.upper():
        raise invalid_parameter(CONFIG_FIELD, "must not contain a DOCTYPE or ENTITY declaration")
    try:
        return ElementTree.fromstring(label_config)
    except ElementTree.ParseError as error:
        raise invalid_parameter(CONFIG_FIELD, f"is not valid XML ({error})") from error


def _controls(root: ElementTree.Element, tag: str) -> list[Control]:
    found = []
    for element in root.iter():
        if _strip_namespace(element.tag).lower() != tag.lower():
            continue
        name = _attribute(element, "name")
        to_name = _attribute(element, "toName")
        if not name or not to_name:
            raise invalid_parameter(CONFIG_FIELD, f"a <{tag}> control needs both name and toName attributes")
        smart = _truthy(_attribute(element, "smart")) or _truthy(_attribute(element, "smartOnly"))
        found.append(Control(name, tag, to_name, _labels(element), smart))
    return found


def parse_scribble_config(
    label_config: str,
    negative_labels: list[str] | tuple[str, ...] | None = None,
    output_control: str | None = None,
    stroke_controls: list[str] | tuple[str, ...] | None = None,
) -> ScribbleConfig:
    """Finds the brush, smart prompt and image tags of a labeling config.

    With two or more BrushLabels controls the output is the first one that has
    no negative label and the strokes are the others; with one, strokes and
    output share it. ``output_control`` / ``stroke_controls`` override that.
    """
    negatives = tuple(DEFAULT_NEGATIVE_LABELS if negative_labels is None else negative_labels)
    root = _parse(label_config)
    brushes = _controls(root, "BrushLabels")
    if not brushes:
        raise invalid_parameter(CONFIG_FIELD, "has no <BrushLabels> control: strokes and masks need one")
    by_name = {control.name: control for control in brushes}

    if output_control is not None:
        if output_control not in by_name:
            raise invalid_parameter(
                "output_control", f"{output_control!r} is not a BrushLabels control of the config ({sorted(by_name)})"
            )
        output = by_name[output_control]
    elif len(brushes) == 1:
        output = brushes[0]
    else:
        clean = [control for control in brushes if not set(control.labels) & set(negatives)]
        output = clean[0] if clean else brushes[0]

    if stroke_controls is not None:
        unknown = [name for name in stroke_controls if name not in by_name]
        if unknown or not stroke_controls:
            raise invalid_parameter(
                "stroke_controls",
                f"must name BrushLabels controls of the config ({sorted(by_name)}), got {list(stroke_controls)}",
            )
        strokes = tuple(stroke_controls)
    elif len(brushes) == 1:
        strokes = (output.name,)
    else:
        strokes = tuple(control.name for control in brushes if control is not output)

    images = [element for element in root.iter() if _strip_namespace(element.tag).lower() == "image"]
    image = next((element for element in images if _attribute(element, "name") == output.to_name), None)
    if image is None:
        if not images:
            raise invalid_parameter(CONFIG_FIELD, "has no <Image> object to segment")
        raise invalid_parameter(
            CONFIG_FIELD, f"the BrushLabels control {output.name!r} labels {output.to_name!r}, which is not an <Image>"
        )
    value = _attribute(image, "value") or ""
    if not value.startswith("$") or len(value) < 2:
        raise invalid_parameter(CONFIG_FIELD, f'the <Image> value must be a task field like "$image", got {value!r}')

    class_labels = tuple(label for label in output.labels if label not in negatives)
    if not class_labels:
        raise invalid_parameter(
            CONFIG_FIELD, f"the BrushLabels control {output.name!r} has no class labels besides {list(negatives)}"
        )
    stroke_labels = tuple(
        dict.fromkeys(label for control in brushes if control.name in strokes for label in control.labels)
    )
    prompts = [
        control
        for tag in ("KeyPointLabels", "RectangleLabels")
        for control in _controls(root, tag)
        if control.smart and control.to_name == output.to_name
    ]
    return ScribbleConfig(
        stroke_controls=strokes,
        output_control=output.name,
        class_labels=class_labels,
        negative_labels=negatives,
        image_name=output.to_name,
        image_value_key=value[1:],
        stroke_labels=stroke_labels,
        point_controls=tuple(control.name for control in prompts if control.tag == "KeyPointLabels"),
        box_controls=tuple(control.name for control in prompts if control.tag == "RectangleLabels"),
        prompt_labels=tuple(dict.fromkeys(label for control in prompts for label in control.labels)),
        controls=tuple(brushes) + tuple(prompts),
        message_control=_message_control(root, output.to_name),
    )


def _message_control(root: ElementTree.Element, image_name: str) -> str | None:
    """The TextArea on the image named ``message``, else the first TextArea on the image."""
    areas = [
        _attribute(element, "name")
        for element in root.iter()
        if _strip_namespace(element.tag).lower() == "textarea" and _attribute(element, "toName") == image_name
    ]
    areas = [name for name in areas if name]
    return "message" if "message" in areas else (areas[0] if areas else None)
