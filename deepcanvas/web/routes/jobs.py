"""Jobs: submit (checked in full first), list, watch as server-sent events, cancel, resubmit, print, fetch results."""

from __future__ import annotations

import asyncio
import io
import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from PIL import Image

from .. import printjobs, videojobs
from ..errors import ApiError
from ..jobs import TERMINAL, Job
from ..jsonbody import strict_json_route
from ..schemas import JobRequest, print_request
from ..state import MAX_JOB_BODY, MAX_QUEUED, Studio, get_studio, jpeg_bytes, read_own_file
from ..submission import prepare

# Bodies are read as strict JSON (no NaN, huge numbers or deep nesting; at most MAX_JOB_BODY bytes), then
# validated by FastAPI against the models of web/schemas.py.
router = APIRouter(prefix="/api/jobs", route_class=strict_json_route(MAX_JOB_BODY))


def job_of(job_id: str, studio: Studio = Depends(get_studio)) -> Job:
    """The job named in the path, or 404 (a FastAPI dependency)."""
    job = studio.queue.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job


async def _enqueue(studio: Studio, body) -> dict:
    submission = await prepare(studio, body)
    with studio.queue.cond:
        queued = sum(1 for j in studio.queue.jobs.values() if j.state == "queued")
    if queued >= MAX_QUEUED:
        raise ApiError(429, f"{queued} jobs are already waiting; cancel some or wait")
    return studio.snapshot(studio.queue.submit(**submission))


@router.post("", status_code=201)
async def submit(body: JobRequest, studio: Studio = Depends(get_studio)):
    """A job: {"technique", "inputs", "params", "preview_every"}, every parameter checked -> the queued job."""
    return await _enqueue(studio, body)


@router.post("/{job_id}/resubmit", status_code=201)
async def resubmit(old: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    """A new job from an earlier one's request, checked again (e.g. one a restart interrupted)."""
    if old.technique == videojobs.TECHNIQUE:
        new = videojobs.submit(studio, videojobs.resubmit_request(studio, old), old.inputs, old.params)
        return {**studio.snapshot(new), "video_url": f"/api/videos/{new.id}.mp4"}
    if not old.request:
        raise ApiError(400, f"job {old.id} has no stored request to resubmit")
    if isinstance(old.request.get("print"), dict):  # a print: from the picture it started from, kept as an upload
        made = old.request["print"]
        return studio.snapshot(await printjobs.submit(studio, old.request, start=made.get("start"), of=made.get("of")))
    return await _enqueue(studio, old.request)


PrintRequest = print_request()


@router.post("/{job_id}/print", status_code=201)
async def make_print(body: PrintRequest, old: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    """A print of a finished style job: {"size": px} or {"print_size": "30x40cm", "dpi": 300} -> the queued job,
    the same request started from the finished picture (web/printjobs.py)."""
    return studio.snapshot(await printjobs.print_job(studio, old, body.size, body.print_size, body.dpi))


@router.get("")
async def jobs(studio: Studio = Depends(get_studio)):
    """Every stored job, newest first (the gallery)."""
    with studio.queue.cond:
        items = [j.public(with_preview=False) for j in studio.queue.jobs.values()]
    return sorted(items, key=lambda d: d["created"], reverse=True)


@router.get("/{job_id}")
async def job(job: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    return studio.snapshot(job)


@router.post("/{job_id}/cancel")
async def cancel(job: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    """Queued: removed; running: stopped, the best image so far kept."""
    return studio.snapshot(studio.queue.cancel(job.id))


@router.get("/{job_id}/events")
async def events(request: Request, job: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    """Server-sent events: the job (state, queue position, progress, loss, time left, preview data URL)
    on every change, until it ends."""

    async def stream():
        sent_version, sent_preview, last_write = None, -1, time.monotonic()
        yield "retry: 2000\n\n"
        while True:
            with studio.queue.cond:
                version, state, preview_count = job.version, job.state, job.preview_count
                data = job.public(with_preview=preview_count != sent_preview) if version != sent_version else None
            if data is not None:
                sent_version, sent_preview, last_write = version, preview_count, time.monotonic()
                yield f"id: {version}\ndata: {json.dumps(data)}\n\n"
                if state in TERMINAL:
                    return
            elif time.monotonic() - last_write > 15:
                last_write = time.monotonic()
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/result/{index}")
async def result(index: int, download: bool = False, thumb: bool = False,
                 job: Job = Depends(job_of), studio: Studio = Depends(get_studio)):
    """The result as a full-size PNG (?download=1: as an attachment; ?thumb=1: a small JPEG)."""
    if not job.results:
        raise ApiError(404, f"job {job.id} has no result (it is {job.state})")
    if not 0 <= index < len(job.results):
        raise ApiError(404, f"job {job.id} has {len(job.results)} result(s); no index {index}")
    # Only the regular file the studio wrote is served: a link put in its place is never followed.
    png = await asyncio.to_thread(read_own_file, studio.results / job.results[index]["file"], "result image")
    if thumb:
        try:
            data = await asyncio.to_thread(lambda: jpeg_bytes(Image.open(io.BytesIO(png)), 320))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ApiError(404, f"the result image of job {job.id} is unreadable") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
    fname = f"deepcanvas-{job.technique}-{job.id[:8]}{'' if len(job.results) == 1 else f'-{index}'}.png"
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": f'attachment; filename="{fname}"'} if download else None)
