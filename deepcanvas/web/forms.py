"""The studio's forms, derived from the techniques' API functions.

Each technique's fields come from its ``*_steps`` function the same way the CLI's
flags do (:func:`deepcanvas.signature.api_params`: names, types, defaults, ``Literal``
choices and the docstring's help), so the page cannot drift from the API. Which techniques
the page offers, their titles and which arguments are images (picked from the bundled ones
or uploaded, never a path typed by a person) come from :mod:`deepcanvas.registry`. What this
module adds is only presentation: which fields are shown up front and which ones pick from a
list (layers, classes, choices).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .. import limits, registry
from ..errors import DeepCanvasError
from ..signature import api_params

#: Keyword arguments the page never offers: they name files on the server's disk.
EXCLUDED = {"weights", "mean", "std", "callback"}  # a registered model keeps its own
#: Shown up front; the rest go into the "advanced" fold.
MAIN_NAMES = {"size", "iterations", "model", "channels", "objective", "method", "style_strength"}
SLIDERS = {"style_strength": (0.0, 1.0, 0.05)}  # fields shown as a slider: (min, max, step)

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


#: The techniques the studio offers, in tab order: the registry's records that have a studio title.
SPECS: tuple[registry.Technique, ...] = registry.in_studio()


@dataclass
class Technique:
    spec: registry.Technique
    func: object
    module: object
    fields: list[dict]

    @property
    def name(self) -> str:
        return self.spec.name

    def field(self, name: str) -> dict | None:
        return next((f for f in self.fields if f["name"] == name), None)


def _is_main(name: str) -> bool:
    return name in MAIN_NAMES or name.endswith("_weight") or "layer" in name


def derive_fields(func, module) -> list[dict]:
    """One form field per keyword-only argument of ``func``, like ``cli.add_api_arguments``.

    A Literal's values become a drop-down (for an open one, such as style's init, the page
    offers only the keywords: it never passes a file name on).
    """
    from .. import models

    out = []
    for p in api_params(func, skip=EXCLUDED):
        default = str(p.default) if isinstance(p.default, Path) else p.default
        choices = [i.name for i in models.catalog()] if p.name == "model" else (list(p.choices) if p.choices else None)
        out.append({
            "name": p.name,
            "label": p.name.replace("_", " "),
            "type": _TYPE_NAMES[p.type],
            "default": default,
            "optional": p.optional,
            "help": p.help,
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
                module = importlib.import_module(spec.import_path)
                func = getattr(module, spec.steps)
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
def convert_value(f: dict, value, function: str | None = None):
    """A submitted value of form field ``f`` as the API takes it (text for numbers and booleans accepted, ""
    for an optional field's default), inside its range; else a one-line DeepCanvasError."""
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
        # The range every entry point applies (deepcanvas.limits): finite, inside its bounds.
        num = limits.check(name, value, function)
        if typ == "int":
            if num != int(num):
                raise DeepCanvasError(f"{name} must be a whole number, got {value!r}")
            return int(num)
        return float(num)
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
    return {k: convert_value(tech.field(k), v, tech.spec.steps) for k, v in params.items()}


def check_job(tech: Technique, inputs: dict, params: dict) -> None:
    """What the technique itself checks before any slow work, run when the job is submitted.

    It calls the techniques' own helpers (no second copy of their rules): the device,
    precision, pooling and model (``begin``), every ``*layer*`` field against the model's
    layer names (built on the meta device: no weights loaded), classes against the
    classifier's names, blend weights against the number of styles, dream's channels and
    class visualization's objective. ``inputs``: input name -> submitted value(s).
    Raises DeepCanvasError with the technique's own one-line message.
    """
    from ..techniques.common import begin, check_layer_names, parse_floats, parse_layers

    def value(name):
        v = params.get(name)
        if v is None:
            f = tech.field(name)
            v = f["default"] if f else None
        return v

    kw = {k: value(k) for k in ("device", "precision", "pooling") if tech.field(k)}
    info, _ = begin(value("model"), **kw)
    for f in tech.fields:
        v = params.get(f["name"])
        if f["layers"] and v not in (None, ""):
            check_layer_names(info, list(parse_layers(v, f["name"].replace("_", " "))))
    if tech.field("style_blend_weights") and params.get("style_blend_weights") not in (None, ""):
        styles = inputs.get("styles") or []
        parse_floats(params["style_blend_weights"], len(styles), "style_blend_weights")
    if tech.field("style_blend_weights") is not None and inputs.get("style_masks"):  # regions (issue 11)
        from ..regions import check_mask_count

        check_mask_count(len(inputs["style_masks"]), len(inputs.get("styles") or []))
    if tech.spec.steps == "style_transfer_steps":
        check_style_scales(value)
    if tech.name == "dream" and params.get("channels") not in (None, ""):
        from ..techniques.dream import parse_channels

        parse_channels(params["channels"])
    # -- layer atlas (issue 14) -------------------------------------------------------------------
    if tech.name == "atlas":
        from ..techniques.atlas import parse_channels

        count, chosen = parse_channels(value("channels"))
        if inputs.get("photo") and chosen is not None:
            raise DeepCanvasError("with photo, give channels as a count (the most active ones are shown), "
                                  "not a list")
    # -- end layer atlas ---------------------------------------------------------------------------
    if tech.name == "classviz":
        from ..techniques.classviz import parse_objective, require_classifier, resolve_classes

        classes = inputs.get("classes") or []
        if classes:
            require_classifier(info)
            resolve_classes(classes, info.classes())
        if params.get("objective") not in (None, ""):
            check_layer_names(info, sorted({t[1] for t in parse_objective(params["objective"])}))


def check_style_scales(value) -> None:
    """Every scale of a style transfer, and the style images at it, at least limits.MIN_STYLE_SIDE pixels.

    ``value(name)``: a parameter as submitted, or its default. Smaller pictures fail inside the network
    (its deepest style layer is behind 4 poolings), after the job has waited its turn."""
    from ..techniques.style_presets import loss_setup, scale_schedule

    multiscale = value("multiscale")
    if multiscale is None:
        multiscale = loss_setup(value("preset"), value("method")).multiscale
    smallest = min(s for s, _ in scale_schedule(value("size"), value("min_size"), 1, multiscale))
    style_side = round(smallest * value("style_scale"))
    if style_side < limits.MIN_STYLE_SIDE:
        raise DeepCanvasError(f"style_scale {value('style_scale'):g} makes the style images {style_side} px at "
                              f"{smallest} px; they need at least {limits.MIN_STYLE_SIDE} px (raise style_scale or "
                              "size)")


async def save_upload(upload, path: Path, limit: int, too_big: Exception) -> int:
    """Copy an uploaded file to ``path`` 1 MiB at a time, raising ``too_big`` once it passes ``limit`` bytes.

    The Content-Length check comes first in each route; this bounds what is actually sent. Returns the size.
    """
    size = 0
    with open(path, "wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise too_big
            out.write(chunk)
    return size
