"""The studio's video tab: upload a short clip, watch its frames being styled, download the MP4.

    POST /api/videos                      multipart "file" (the clip) plus fields "style" (an image id),
                                          "size", "iterations", "consistent": the clip is probed (container,
                                          first frame, resolution, duration, frame count) against the studio's
                                          limits before anything is queued -> the queued job
    GET  /api/videos/{job_id}.mp4         the finished clip (?download=1: as an attachment)

The job is an ordinary studio job (``/api/jobs/{id}`` and its events: stage "frame 3/24", time left,
and a preview of the frame being styled, so the frames appear as they are made). Its result image is
the last frame; the MP4 lives in ``DATA_DIR/videos/`` and goes when its job does (videojobs.py: the clip,
the frames and the MP4 of a video job, through cancel, failure, a kill and retention). The page is
``static/video.html`` (routes/pages.py).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from pydantic import BaseModel, ValidationError

from ...errors import DeepCanvasError
from ..errors import ApiError
from .. import videojobs
from ..forms import save_upload
from ..jobs import TERMINAL
from ..schemas import first_error, video_request
from ..state import Studio, get_studio, is_own_file

#: The studio's limits for a clip, checked by probing it before any work is queued.
MAX_VIDEO_BYTES = 50 * 1024 * 1024
MAX_VIDEO_SECONDS = 10.0
MAX_VIDEO_PIXELS = 1920 * 1080
MAX_VIDEO_FRAMES = 300
MAX_VIDEO_SIZE = 384  # longest side of the styled frames
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v"}
_JOB_RE = re.compile(r"^[0-9a-f]{32}$")
_PROBE_LOCK = threading.Lock()  # one clip probed at a time: its memory is bounded by one frame at the limits

router = APIRouter(prefix="/api/videos")


#: The form fields besides the clip, as a model (web/schemas.py) with the studio's bounds.
VideoRequest = video_request(MAX_VIDEO_SIZE)


def _fields(form) -> BaseModel:
    try:
        return VideoRequest.model_validate({k: form.get(k) for k in VideoRequest.model_fields if k in form})
    except ValidationError as e:
        raise ApiError(400, first_error(e.errors())) from None


@router.post("", status_code=201)
async def upload_video(request: Request, studio: Studio = Depends(get_studio)):
    """A clip and how to style it -> the queued job, with the clip's probed facts and its video URL."""
    too_big = ApiError(413, f"the clip is too large; the limit is {MAX_VIDEO_BYTES / 1024 / 1024:.0f} MB")
    length = request.headers.get("content-length")
    if length is None:
        raise ApiError(411, "the upload needs a Content-Length header")
    if not length.isdigit() or int(length) > MAX_VIDEO_BYTES + 64 * 1024:
        raise too_big
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the clip as multipart/form-data in a field called 'file'")
    studio.check_room()  # before the upload is read; checked again when the job is queued
    form = await request.form(max_files=1, max_fields=8)
    part = None
    try:
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise ApiError(400, "no file: send the clip in a multipart field called 'file'")
        suffix = Path(f.filename or "clip.mp4").suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise ApiError(400, f"not a video file name ({suffix or 'no extension'}); "
                                f"send one of {', '.join(sorted(VIDEO_SUFFIXES))}")
        fields = _fields(form)
        style, size, iterations, consistent = fields.style, fields.size, fields.iterations, fields.consistent
        studio.image_path(style)
        part = studio.videos / videojobs.new_clip_name(suffix)
        await save_upload(f, part, MAX_VIDEO_BYTES, too_big)
        try:
            info = await asyncio.to_thread(_check_clip, part, size)
        except DeepCanvasError as e:
            raise ApiError(400, str(e).replace(str(part), Path(f.filename or "clip").name)) from None
    except BaseException:
        if part is not None:
            part.unlink(missing_ok=True)
        raise
    finally:
        await form.close()
    video = {"clip": part.name, "style": style, "size": size, "iterations": iterations, "consistent": consistent,
             "fps": info["fps"]}
    params = {"size": size, "iterations": iterations, "consistent": consistent, "frames": info["frames"]}
    job = videojobs.submit(studio, {"video": video}, {"clip": Path(f.filename or "clip").name, "styles": [style]},
                           params)
    out = studio.snapshot(job)
    out["video_url"] = f"/api/videos/{job.id}.mp4"
    out["clip"] = info
    return out


@router.get("/{name}")
async def video_file(name: str, download: bool = False, studio: Studio = Depends(get_studio)):
    """The finished MP4 of a video job (``{job_id}.mp4``)."""
    job_id = name[:-4] if name.endswith(".mp4") else name
    if not _JOB_RE.match(job_id):
        raise ApiError(404, f"no video {name!r}")
    job = studio.queue.get(job_id)
    path = videojobs.mp4_path(studio.videos, job_id)
    if job is None or not is_own_file(path):
        raise ApiError(404, f"video {job_id} is not ready (the job is {job.state})"
                       if job is not None and job.state not in TERMINAL else f"no video {name!r}")
    return FileResponse(path, media_type="video/mp4",
                        filename=f"deepcanvas-video-{job_id[:8]}.mp4" if download else None,
                        content_disposition_type="attachment" if download else "inline")


def _check_clip(path: Path, size: int) -> dict:
    """Probe the clip against the studio's limits; a one-line DeepCanvasError if it is unusable."""
    from ... import clip

    with _PROBE_LOCK:
        info = clip.probe(str(path), max_pixels=MAX_VIDEO_PIXELS, max_seconds=MAX_VIDEO_SECONDS)
        pl = clip.select(info, size=size, max_frames=MAX_VIDEO_FRAMES)
    return {"width": info.width, "height": info.height, "fps": round(pl.fps, 3), "frames": len(pl.times),
            "seconds": round(pl.duration, 3), "audio": info.has_audio}
