"""The studio's forms, derived from the techniques' API functions.

Each technique's fields come from its ``*_steps`` function the same way the CLI's
flags do (:func:`deepcanvas.cli._doc_args` for the help text, :func:`deepcanvas.cli._base_type`
for the type, the signature for names and defaults), so the page cannot drift from
the API. What the page adds is only presentation: which fields are shown up front,
which ones pick from a list (layers, classes, choices), and which arguments are
images (picked from the bundled ones or uploaded, never a path typed by a person).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import _base_type, _doc_args
from ..errors import DeepCanvasError

#: Keyword arguments the page never offers: they name files on the server's disk.
EXCLUDED = {"weights", "callback"}
#: Shown up front; the rest go into the "advanced" fold.
MAIN_NAMES = {"size", "iterations", "model", "channels", "objective", "method", "style_strength"}
SLIDERS = {"style_strength": (0.0, 1.0, 0.05)}  # fields shown as a slider: (min, max, step)

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


@dataclass(frozen=True)
class Input:
    """A positional argument (or an image-valued keyword) of a technique."""

    name: str
    label: str
    kind: str = "image"  # image | classes
    multiple: bool = False
    required: bool = True
    default: tuple = ()
    keyword: bool = False  # passed as name=value rather than positionally


@dataclass(frozen=True)
class TechniqueSpec:
    name: str
    title: str
    blurb: str
    module: str
    function: str
    inputs: tuple[Input, ...]
    extra: dict = field(default_factory=dict)


SPECS: tuple[TechniqueSpec, ...] = (
    TechniqueSpec(
        "style", "Style transfer", "Paint a photo in the style of one or more paintings.",
        "deepcanvas.techniques.style", "style_transfer_steps",
        (Input("content", "Content image", default=("bundled:chelsea.jpg",)),
         Input("styles", "Style image(s)", multiple=True, default=("bundled:swirls.jpg",))),
    ),
    TechniqueSpec(
        "dream", "DeepDream", "Amplify what a layer of the network sees in a photo.",
        "deepcanvas.techniques.dream", "dream_steps",
        (Input("image", "Photo", default=("bundled:coffee.jpg",)),
         Input("guide", "Guide image (optional)", required=False, keyword=True)),
    ),
    TechniqueSpec(
        "classviz", "Class visualization", "Paint an image the classifier scores as the chosen classes.",
        "deepcanvas.techniques.classviz", "visualize_class_steps",
        (Input("classes", "Classes", kind="classes", multiple=True, required=False, default=("goldfinch",)),),
    ),
    TechniqueSpec(
        "invert", "Feature inversion", "Rebuild a photo from one layer's features alone.",
        "deepcanvas.techniques.invert", "invert_steps",
        (Input("image", "Photo", default=("bundled:astronaut.jpg",)),),
    ),
)


@dataclass
class Technique:
    spec: TechniqueSpec
    func: object
    module: object
    fields: list[dict]

    @property
    def name(self) -> str:
        return self.spec.name

    def field(self, name: str) -> dict | None:
        return next((f for f in self.fields if f["name"] == name), None)


def _choices(module, name: str, help_: str, default) -> list[str] | None:
    """A field's valid values: the technique module's NAMEs constant, else an "a, b or c." help."""
    const = getattr(module, name.upper() + "S", None) or getattr(module, name.upper(), None)
    if isinstance(const, (tuple, list)) and const and all(isinstance(c, str) for c in const):
        return list(const)
    text = help_.rsplit(": ", 1)[-1].strip().rstrip(".")
    text = re.sub(r"\s*\([^)]*\)", "", text)  # "auto (bf16 on CUDA, fp32 elsewhere)" -> "auto"
    m = re.fullmatch(r"([a-z0-9][\w-]*(?:, [a-z0-9][\w-]*)*),? or ([a-z0-9][\w-]*)", text)
    if not m:
        return None
    words = m.group(1).split(", ") + [m.group(2)]
    if default is not None and default not in words:
        return None
    return words


def _is_main(name: str) -> bool:
    return name in MAIN_NAMES or name.endswith("_weight") or "layer" in name


def derive_fields(func, module) -> list[dict]:
    """One form field per keyword-only argument of ``func``, like ``cli.add_api_arguments``."""
    from .. import models

    helps = _doc_args(func)
    out = []
    for p in inspect.signature(func).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name in EXCLUDED:
            continue
        typ = _base_type(p.annotation)
        default = None if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, Path):
            default = str(default)
        help_ = helps.get(p.name, "")
        choices = list(models.REGISTRY) if p.name == "model" else (
            _choices(module, p.name, help_, default) if typ is str else None)
        out.append({
            "name": p.name,
            "label": p.name.replace("_", " "),
            "type": _TYPE_NAMES[typ],
            "default": default,
            "optional": default is None or "None" in str(p.annotation),
            "help": help_,
            "choices": choices,
            "layers": "layer" in p.name,
            "main": _is_main(p.name),
            "slider": SLIDERS.get(p.name),
        })
    return out


_CACHE: dict[str, Technique | None] = {}


def load(name: str) -> Technique | None:
    """The technique called ``name``, or None if its module is not there (yet)."""
    if name not in _CACHE:
        spec = next((s for s in SPECS if s.name == name), None)
        tech = None
        if spec is not None:
            try:
                module = importlib.import_module(spec.module)
                func = getattr(module, spec.function)
            except (ImportError, AttributeError):
                module = func = None
            if func is not None:
                inputs_kw = {i.name for i in spec.inputs if i.keyword}
                fields = [f for f in derive_fields(func, module) if f["name"] not in inputs_kw]
                tech = Technique(spec, func, module, fields)
        _CACHE[name] = tech
    return _CACHE[name]


def available() -> list[Technique]:
    return [t for t in (load(s.name) for s in SPECS) if t is not None]


def describe(tech: Technique) -> dict:
    s = tech.spec
    return {
        "name": s.name,
        "title": s.title,
        "blurb": s.blurb,
        "inputs": [{"name": i.name, "label": i.label, "kind": i.kind, "multiple": i.multiple,
                    "required": i.required, "default": list(i.default)} for i in s.inputs],
        "fields": tech.fields,
    }


# -- turning a submitted form into keyword arguments -----------------------------------------------
def _convert(f: dict, value):
    name, typ = f["name"], f["type"]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if f["optional"]:
            return None
        raise DeepCanvasError(f"{name} needs a value")
    if typ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise DeepCanvasError(f"{name} must be true or false, got {value!r}")
    if typ in ("int", "float"):
        if isinstance(value, bool):
            raise DeepCanvasError(f"{name} must be a number, got {value!r}")
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise DeepCanvasError(f"{name} must be a number, got {value!r}") from None
        if typ == "int":
            if num != num or num in (float("inf"), float("-inf")) or num != int(num):
                raise DeepCanvasError(f"{name} must be a whole number, got {value!r}")
            return int(num)
        return num
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise DeepCanvasError(f"{name} must be text, got {value!r}")
    value = str(value).strip()
    if f["choices"]:
        if value not in f["choices"]:
            raise DeepCanvasError(f"unknown {name} {value!r}; valid: {', '.join(f['choices'])}")
    elif "/" in value or "\\" in value:  # the page never passes a path on to the API
        raise DeepCanvasError(f"{name}: file paths are not accepted here; upload an image instead")
    return value


def convert_params(tech: Technique, params: dict) -> dict:
    """Check and convert submitted values; unknown names and bad values raise DeepCanvasError."""
    if not isinstance(params, dict):
        raise DeepCanvasError("params must be an object of name: value")
    unknown = [k for k in params if tech.field(k) is None]
    if unknown:
        valid = ", ".join(f["name"] for f in tech.fields)
        raise DeepCanvasError(f"unknown parameter {unknown[0]!r} for {tech.name}; valid: {valid}")
    return {k: _convert(tech.field(k), v) for k, v in params.items()}
