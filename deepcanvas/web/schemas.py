"""The studio's request bodies as pydantic models, derived from the techniques' options.

A job body (``POST /api/jobs``) is one model per technique, told apart by ``technique``
(:data:`JobRequest`). A technique's ``params`` model has one field per form field
(:mod:`.forms`, which reads the API signature and so the option records of
:mod:`deepcanvas.options`): its type, its ``Literal`` choices and its range from
:mod:`deepcanvas.limits`, so FastAPI validates it and the OpenAPI schema shows it. The
conversion the page relies on (numbers and booleans sent as text, "" for "the default") and
the one-line messages come from :func:`.forms.convert_value`, run before the typed check.
Lists (images, classes) and text have length limits.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, TypeAdapter, ValidationError, create_model
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from .. import limits
from ..errors import DeepCanvasError
from . import forms

#: The type every refusal of ours carries; the error handler shows its message alone.
ERROR_TYPE = "deepcanvas"
FIELDS = ("technique", "inputs", "params", "preview_every")
#: Longest text parameter (layers, objectives, channel lists) and image id or class name.
MAX_TEXT = 2000
MAX_NAME = 200
#: Most images one list input takes (style images, their masks and maps), and most class names.
MAX_IMAGES = 16
MAX_CLASSES = 64
#: A preview every this many iterations at most (a run is never longer); stored as a SQLite integer.
MAX_PREVIEW_EVERY = limits.MAX_ITERATIONS
_DIGITS = re.compile(r"^\s*[0-9]{1,18}\s*$")  # ASCII only: str.isdigit() also takes "²"
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def refuse(message: str):
    """Raise the one-line ``message`` as a validation error of the studio's own type."""
    raise PydanticCustomError(ERROR_TYPE, "{reason}", {"reason": message})


def first_error(errors: list[dict]) -> str:
    """One line for a list of pydantic errors: ours as written, others prefixed by where they are."""
    if not errors:
        return "invalid request"
    e = errors[0]
    if e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",):
        return "the request body is empty: send a JSON object"
    if e.get("type") == ERROR_TYPE:
        return str(e.get("ctx", {}).get("reason") or e.get("msg"))
    loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
    # The union's tag (the technique's name) is not part of where the value was.
    loc = [x for i, x in enumerate(loc) if not (i == 0 and forms.load(x) is not None)]
    where = ".".join(loc)
    msg = str(e.get("msg", "invalid value")).split("\n")[0][:200]
    return f"{where}: {msg}" if where else msg


def _convert(field: dict, function: str, value):
    try:
        return forms.convert_value(field, value, function)
    except DeepCanvasError as e:
        refuse(str(e))


def _param_type(field: dict, function: str):
    """A form field's annotation: its type, choices and range, after the page's conversion."""
    typ = _TYPES[field["type"]]
    constraints: dict[str, Any] = {}
    if field["choices"]:
        typ = Literal[tuple(field["choices"])]
    elif typ is str:
        constraints["max_length"] = MAX_TEXT
    r = limits.range_of(field["name"], function) if typ in (int, float) else None
    if r is not None:
        constraints["gt" if r.above else "ge"] = typ(r.minimum)
        constraints["lt" if r.below else "le"] = typ(r.maximum)
    inner = Annotated[typ, Field(**constraints)] if constraints else typ
    if field["optional"]:
        inner = Optional[inner]
    return Annotated[inner, BeforeValidator(partial(_convert, field, function)),
                     Field(description=field["help"] or None)]


class _NamedBase(BaseModel):
    """An object of name: value whose names are the model's fields; an unknown name is refused with the valid ones."""

    model_config = ConfigDict(extra="forbid")
    technique: ClassVar[str] = ""
    what: ClassVar[str] = ""  # what one name is, for the messages
    shape: ClassVar[str] = ""  # the refusal when the value is not an object

    @model_validator(mode="before")
    @classmethod
    def _known(cls, v):
        if v in (None, ""):
            return {}
        if not isinstance(v, dict):
            refuse(cls.shape)
        unknown = [k for k in v if k not in cls.model_fields]
        if unknown:
            refuse(f"unknown {cls.what} {unknown[0]!r} for {cls.technique}; valid: {', '.join(cls.model_fields)}")
        return v


class ParamsBase(_NamedBase):
    """A technique's keyword arguments."""

    what: ClassVar[str] = "parameter"
    shape: ClassVar[str] = "params must be an object of name: value"


class InputsBase(_NamedBase):
    """A technique's images (bundled:NAME or upload:ID) or class names."""

    what: ClassVar[str] = "input"
    shape: ClassVar[str] = "inputs must be an object of name: image id(s)"


def _bounded_list(name: str, most: int, what: str, v):
    if isinstance(v, list) and len(v) > most:
        refuse(f"{name} takes at most {most} {what}, got {len(v)}")
    kinds = (str, int) if what == "classes" else (str,)
    items = v if isinstance(v, list) else [v]
    if not all(x is None or (isinstance(x, kinds) and not isinstance(x, bool)) for x in items):
        refuse(f"{name} must be {'class names or indices' if what == 'classes' else 'image ids'} "
               f"(bundled:NAME or upload:ID), or a list of them")
    longest = max((len(x) for x in items if isinstance(x, str)), default=0)
    if longest > MAX_NAME:
        refuse(f"{name}: a name of {longest:,} characters is too long; names have at most {MAX_NAME} characters")
    return v


def _input_type(spec):
    one = Annotated[str, Field(max_length=MAX_NAME)]
    if spec.kind == "classes":
        one = Union[Annotated[str, Field(max_length=MAX_NAME)], int]
        most, what = MAX_CLASSES, "classes"
    else:
        most, what = MAX_IMAGES, "images"
    many = Annotated[list[one], Field(max_length=most)]
    return Annotated[Optional[Union[one, many]], BeforeValidator(partial(_bounded_list, spec.name, most, what)),
                     Field(description=spec.label)]


def _preview_every(v):
    if v in (None, ""):
        return 5
    if isinstance(v, str) and _DIGITS.match(v):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_PREVIEW_EVERY:
        refuse(f"preview_every must be a whole number from 1 to {MAX_PREVIEW_EVERY:,}, got {limits.short(v)}")
    return v


PreviewEvery = Annotated[int, BeforeValidator(_preview_every), Field(ge=1, le=MAX_PREVIEW_EVERY)]


class JobBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preview_every: PreviewEvery = Field(5, description="a preview image every this many iterations")


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))


def job_model(tech: forms.Technique) -> type[BaseModel]:
    """The body of a job of ``tech``: its technique tag, inputs and params models."""
    title = _title(tech.name)
    params = create_model(f"{title}Params", __base__=ParamsBase,
                          **{f["name"]: (_param_type(f, tech.spec.steps), f["default"]) for f in tech.fields})
    inputs = create_model(f"{title}Inputs", __base__=InputsBase,
                          **{i.name: (_input_type(i), None) for i in tech.spec.inputs})
    params.technique = inputs.technique = tech.name
    return create_model(f"{title}Job", __base__=JobBase,
                        technique=(Literal[tech.name], Field(description=tech.spec.title)),
                        inputs=(inputs, Field(default_factory=inputs)), params=(params, Field(default_factory=params)))


def _envelope(body):
    """The checks that come before the technique's own model, with the messages the page shows."""
    if not isinstance(body, dict):
        refuse("the request body must be a JSON object")
    unknown = set(body) - set(FIELDS)
    if unknown:
        refuse(f"unknown field {sorted(unknown)[0]!r}; valid: {', '.join(FIELDS)}")
    name = body.get("technique")
    if not isinstance(name, str) or forms.load(name) is None:
        refuse(f"unknown technique {limits.short(name)}; valid: {', '.join(t.name for t in forms.available())}")
    return body


def _job_request():
    models = tuple(job_model(t) for t in forms.available())
    union = Union[models] if len(models) > 1 else models[0]
    tagged = Annotated[union, Discriminator("technique")] if len(models) > 1 else union
    return Annotated[tagged, BeforeValidator(_envelope)]


#: The body of ``POST /api/jobs`` (also what a job stores for ``resubmit``).
JobRequest = _job_request()
_JOB_ADAPTER = TypeAdapter(JobRequest)


def read_request(body) -> BaseModel:
    """A stored or submitted body validated as :data:`JobRequest`; the first problem as DeepCanvasError."""
    try:
        return _JOB_ADAPTER.validate_python(body)
    except ValidationError as e:
        raise DeepCanvasError(first_error(e.errors())) from None


def _video_int(name: str, default: int, lo: int, hi: int, v):
    if v in (None, ""):
        return default
    try:
        return int(limits.check_number(name, v, integer=True, minimum=lo, maximum=hi))
    except DeepCanvasError as e:
        refuse(str(e))


def _flag(v):
    return str(True if v is None else v).lower() not in ("0", "false", "off", "no")


def video_request(max_size: int):
    """The fields of ``POST /api/videos`` besides the clip (form fields: text), with the studio's bounds."""
    return create_model(
        "VideoRequest", __config__=ConfigDict(extra="ignore"),
        style=(Annotated[str, BeforeValidator(lambda v: v or "bundled:swirls.jpg"), Field(max_length=MAX_NAME)],
               "bundled:swirls.jpg"),
        size=(Annotated[int, BeforeValidator(partial(_video_int, "size", 256, 32, max_size)),
                        Field(ge=32, le=max_size)], 256),
        iterations=(Annotated[int, BeforeValidator(partial(_video_int, "iterations", 40, 1, 200)),
                              Field(ge=1, le=200)], 40),
        consistent=(Annotated[bool, BeforeValidator(_flag)], True))


def print_request():
    """The body of ``POST /api/jobs/{id}/print``: the print's longest side (``size``), or a ``print_size`` with
    its ``dpi``; each typed and bounded as the style form's field of that name (the studio's one size limit)."""
    tech = forms.load("style")
    fields = {n: (_param_type({**tech.field(n), "optional": True}, tech.spec.steps), None)
              for n in ("size", "print_size", "dpi")}
    model = create_model("PrintRequest", __base__=ParamsBase, **fields)
    model.technique = "a print"
    return model
