"""Prints in the studio: a finished style picture made larger, coarse to fine, as an ordinary queued job.

A print job is the finished job's request (its content, styles and options) with the new size,
``print_from_init`` and, as ``init``, the finished picture (:mod:`deepcanvas.techniques.style_print`
skips the working size and refines it at each larger size). The picture is copied into the uploads
(``upload:<id>``) when the print is asked for: so it outlives the finished job's own retention, counts in
``--keep-mb``, is kept while the print is queued or running (it is listed in the job's inputs as ``init``),
and a resubmit after a restart still finds it. The stored request names it under ``print``.

The size limit is the studio's one limit for a style job's ``size`` (the form's range, from
:mod:`deepcanvas.limits`); the memory a print needs is checked when it starts (the network is loaded then),
and a print that does not fit fails in one line naming the largest size that does.
"""

from __future__ import annotations

import asyncio
import copy
import uuid

from ..errors import DeepCanvasError
from . import forms
from .errors import ApiError
from .jobs import Job
from .state import THUMB_SIDE, Studio, jpeg_bytes, read_own_file
from .submission import prepare

TECHNIQUE = "style"


def print_params(params: dict, size: int | None, print_size: str | None, dpi: float | None) -> dict:
    """A finished job's parameters turned into its print's: the new size (or print size and dpi), started
    from the finished picture."""
    out = {k: v for k, v in params.items() if k not in ("init", "size", "print_size", "dpi")}
    if size is not None:
        out["size"] = size
    elif "size" in params:
        out["size"] = params["size"]
    out.update({k: v for k, v in (("print_size", print_size), ("dpi", dpi)) if v is not None})
    out["print_from_init"] = True
    return out


def check_side(studio: Studio, request: dict) -> int:
    """The print's longest side in pixels; a one-line ApiError(400) when it is not above the working size
    or over the limit (a print size at its dpi)."""
    from ..options import PrintOptions
    from ..options.prints import WORKING_SIZE

    params = request.get("params") if isinstance(request.get("params"), dict) else {}
    working = params.get("working_size") or WORKING_SIZE
    try:
        prints = PrintOptions(print_size=params.get("print_size"), dpi=params.get("dpi"))
        side = params.get("size") or forms.load(TECHNIQUE).field("size")["default"]
        if prints.print_size is not None:
            from ..io import load_preview

            content = (request.get("inputs") or {}).get("content")
            _, (w, h) = load_preview(studio.image_path(content), 64, what="content image")  # as it is oriented
            side = prints.side((h, w), side)
    except DeepCanvasError as e:
        raise ApiError(400, studio.tidy_error(str(e))) from None
    if side <= working:
        raise ApiError(400, f"a print is larger than the working size ({working} px): got {side} px; pick a "
                            f"larger size")
    return side


def keep_start(studio: Studio, source: Job) -> str:
    """A copy of ``source``'s picture as an upload (the print's start); its ``upload:<id>``."""
    from .. import limits
    from ..atomic import save_bytes_atomic
    from ..io import load_preview

    result = source.results[0]
    data = read_own_file(studio.results / result["file"], "result image")
    uid = uuid.uuid4().hex
    path = studio.uploads / f"{uid}.img"
    save_bytes_atomic(data, path)
    try:
        img, _ = load_preview(path, THUMB_SIDE, what="result image", max_pixels=limits.MAX_SIDE ** 2)
        save_bytes_atomic(jpeg_bytes(img), studio.uploads / f"{uid}.jpg")
    except (DeepCanvasError, OSError):
        path.unlink(missing_ok=True)
        raise ApiError(404, f"the result image of job {source.id} is unreadable") from None
    studio.store.insert_upload(uid, f"result {source.id[:8]}", result["width"], result["height"])
    return f"upload:{uid}"


def start_path(studio: Studio, start: str) -> str:
    """The server path of a print's start picture; a one-line ApiError(400) once retention deleted it."""
    try:
        return str(studio.image_path(start))
    except ApiError:
        raise ApiError(400, "the picture this print started from is gone (retention deleted it): make the "
                            "print again from a finished picture") from None


async def submit(studio: Studio, request: dict, *, source: Job | None = None, start: str | None = None,
                 of: str | None = None) -> Job:
    """Queue the print ``request`` (a style job's, with the print's parameters) from ``source``'s picture,
    copied now, or (a resubmit of a print of job ``of``) from the kept ``start`` upload. Every check comes first; a refused print
    keeps no copy."""
    request = {k: v for k, v in request.items() if k != "print"}
    check_side(studio, request)
    studio.check_room()
    path = start_path(studio, start) if start is not None else None
    made = None
    if start is None:
        start = made = await asyncio.to_thread(keep_start, studio, source)
        path = start_path(studio, start)
    try:
        submission = await prepare(studio, request, {"init": path})
    except BaseException:
        if made is not None:
            studio.store.delete_upload(made.split(":", 1)[1])
        raise
    of = source.id if source is not None else of
    submission["title"] = f"{submission['title']} print"
    submission["inputs"] = {**submission["inputs"], "init": start}  # listed: kept while the print is live
    submission["request"] = {**submission["request"], "print": {"of": of, "start": start}}
    return studio.queue.submit(**submission)


async def print_job(studio: Studio, source: Job, size: int | None, print_size: str | None,
                    dpi: float | None) -> Job:
    """A print of the finished style job ``source`` (``size``: longest side in px, or ``print_size`` at
    ``dpi``), queued; a one-line ApiError(400) for a job that is not a finished style picture or a size
    that is not a print's."""
    if source.technique != TECHNIQUE:
        raise ApiError(400, f"job {source.id} is a {source.technique} job: only a style transfer's picture can "
                            "be made into a print")
    if source.state != "done" or not source.results:
        raise ApiError(400, f"job {source.id} is {source.state}: only a finished picture can be made into a print")
    if not source.request:
        raise ApiError(400, f"job {source.id} has no stored request to make a print from")
    if size is None and print_size is None:
        raise ApiError(400, "give the print's size: size (longest side in px), or print_size with dpi")
    if size is not None and print_size is not None:
        raise ApiError(400, "give size or print_size, not both")
    if print_size is not None and dpi is None:
        raise ApiError(400, "print_size needs a dpi to give the pixels, e.g. 300")
    request = copy.deepcopy(source.request)
    request["params"] = print_params(request.get("params") or {}, size, print_size, dpi)
    return await submit(studio, request, source=source)
