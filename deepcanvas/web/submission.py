"""A job submission checked and turned into a runnable job: the body's shape (:class:`JobRequest`),
its parameters and inputs against the technique's form, and what the technique itself checks.

Every refusal is an :class:`~.errors.ApiError` (400) with a one-line message the page shows.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..errors import DeepCanvasError
from . import forms
from .errors import ApiError
from .state import Studio

FIELDS = ("technique", "inputs", "params", "preview_every")


def _refuse(message: str):
    raise PydanticCustomError("job_request", message)


class JobRequest(BaseModel):
    """The body of ``POST /api/jobs``, also what a job stores for ``resubmit``."""

    model_config = ConfigDict(extra="forbid")  # unknown fields are refused first, with their name, below
    technique: str = Field(description="a technique's name, as /api/techniques lists it")
    inputs: dict[str, Any] = Field(default_factory=dict,
                                   description="input name -> image id(s) (bundled:NAME or upload:ID) or names")
    params: dict[str, Any] = Field(default_factory=dict, description="the technique's keyword arguments")
    preview_every: int = Field(5, ge=1, description="a preview image every this many iterations")

    @model_validator(mode="before")
    @classmethod
    def _object_of_known_fields(cls, body):
        if not isinstance(body, dict):
            _refuse("the request body must be a JSON object")
        unknown = set(body) - set(FIELDS)
        if unknown:
            _refuse(f"unknown field {sorted(unknown)[0]!r}; valid: {', '.join(FIELDS)}")
        name = body.get("technique")
        if not isinstance(name, str) or forms.load(name) is None:
            _refuse(f"unknown technique {name!r}; valid: {', '.join(t.name for t in forms.available())}")
        return body

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, v):
        if not v:
            return {}
        if not isinstance(v, dict):
            _refuse("params must be an object of name: value")
        return v

    @field_validator("preview_every", mode="before")
    @classmethod
    def _preview_every(cls, v):
        v = 5 if v in (None, "") else v
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            _refuse(f"preview_every must be a whole number of at least 1, got {v!r}")
        return v

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, v):
        if not v:
            return {}
        if not isinstance(v, dict):
            _refuse("inputs must be an object of name: image id(s)")
        return v


def read_request(body) -> JobRequest:
    """The body's shape checked; the first problem as a 400."""
    try:
        return JobRequest.model_validate(body)
    except ValidationError as e:
        raise ApiError(400, e.errors()[0]["msg"]) from None


def _arguments(studio: Studio, tech: forms.Technique, given: dict) -> tuple[list, dict, dict]:
    """The technique's positional and keyword image arguments (server paths) from the submitted inputs,
    and the inputs as recorded (ids and names, as submitted)."""
    spec_inputs = {i.name: i for i in tech.spec.inputs}
    unknown = [k for k in given if k not in spec_inputs]
    if unknown:
        raise ApiError(400, f"unknown input {unknown[0]!r} for {tech.name}; valid: {', '.join(spec_inputs)}")
    positional, keyword, inputs = [], {}, {}
    for spec in tech.spec.inputs:
        value = given.get(spec.name)
        values = [] if value in (None, "") else (list(value) if isinstance(value, list) else [value])
        if not values and spec.required:
            raise ApiError(400, f"{spec.label.lower()} is missing: pick or upload an image")
        if len(values) > 1 and not spec.multiple:
            raise ApiError(400, f"{spec.name} takes one image, got {len(values)}")
        if spec.kind == "mask" and not values:  # regions not used: not recorded (the job reads as before)
            continue
        if spec.kind in ("image", "mask"):  # mask: a painted region, uploaded like any image
            arg = [str(studio.image_path(v)) for v in values]
        else:
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
                raise ApiError(400, f"{spec.name} must be names or indices")
            arg = [str(v).strip() for v in values if str(v).strip()]
        inputs[spec.name] = values if spec.multiple else (values[0] if values else None)
        arg = arg if spec.multiple else (arg[0] if arg else None)
        if spec.keyword:
            if arg is not None:
                keyword[spec.name] = arg
        else:
            positional.append(arg if (arg or spec.kind == "image") else None)
    return positional, keyword, inputs


async def prepare(studio: Studio, body) -> dict:
    """Check a submission fully (shape, parameters, inputs, the technique's own checks) and return the
    keyword arguments of :meth:`JobQueue.submit <.jobs.JobQueue.submit>`; raises ApiError(400)."""
    req = read_request(body)
    tech = forms.load(req.technique)
    try:
        params = forms.convert_params(tech, req.params)
    except DeepCanvasError as e:
        raise ApiError(400, str(e)) from None
    positional, keyword, inputs = _arguments(studio, tech, req.inputs)
    try:
        await asyncio.to_thread(forms.check_job, tech, inputs, params)
    except DeepCanvasError as e:
        raise ApiError(400, studio.tidy_error(str(e))) from None

    func = tech.func

    def run(callback):
        from ..render import drive

        try:
            return drive(func(*positional, **keyword, **params), callback)
        except DeepCanvasError as e:
            raise DeepCanvasError(studio.tidy_error(str(e))) from None

    request = {"technique": tech.name, "inputs": inputs, "params": params, "preview_every": req.preview_every}
    return {"technique": tech.name, "title": tech.spec.title, "inputs": inputs, "params": params,
            "preview_every": req.preview_every, "run": run, "request": request}
