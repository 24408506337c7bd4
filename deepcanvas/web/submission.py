"""A job submission checked and turned into a runnable job: the body (:data:`.schemas.JobRequest`, its shape,
parameters and inputs against the technique's form), and what the technique itself checks.

Every refusal is an :class:`~.errors.ApiError` (400) with a one-line message the page shows.
"""

from __future__ import annotations

import asyncio

from ..errors import DeepCanvasError
from . import forms
from .errors import ApiError
from .schemas import read_request
from .state import Studio


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


async def prepare(studio: Studio, body, server_args: dict | None = None) -> dict:
    """Check a submission fully (shape, parameters, inputs, the technique's own checks) and return the
    keyword arguments of :meth:`JobQueue.submit <.jobs.JobQueue.submit>`; raises ApiError(400).

    ``body``: a :data:`~.schemas.JobRequest` FastAPI validated, or a stored request (validated here).
    ``server_args``: keyword arguments the studio itself adds (a print's ``init``: a server path the page
    never names), passed to the technique as they are."""
    if isinstance(body, dict):
        try:
            body = read_request(body)
        except DeepCanvasError as e:
            raise ApiError(400, str(e)) from None
    req = body
    tech = forms.load(req.technique)
    params = req.params.model_dump(exclude_unset=True)
    server_args = dict(server_args or {})
    if params.get("print_from_init") and "init" not in server_args:  # the page never names a file to start from
        raise ApiError(400, "print_from_init starts from a finished picture: use Print on a finished style job")
    positional, keyword, inputs = _arguments(studio, tech, req.inputs.model_dump(exclude_unset=True))
    try:
        await asyncio.to_thread(forms.check_job, tech, inputs, params)
    except DeepCanvasError as e:
        raise ApiError(400, studio.tidy_error(str(e))) from None

    func = tech.func

    def run(callback):
        from ..render import drive

        try:
            return drive(func(*positional, **keyword, **params, **server_args), callback)
        except DeepCanvasError as e:
            raise DeepCanvasError(studio.tidy_error(str(e))) from None

    request = {"technique": tech.name, "inputs": inputs, "params": params, "preview_every": req.preview_every}
    return {"technique": tech.name, "title": tech.spec.title, "inputs": inputs, "params": params,
            "preview_every": req.preview_every, "run": run, "request": request}
