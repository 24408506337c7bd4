"""The studio's video tab: upload a short clip, watch its frames being styled, download the MP4.

Self-contained (its own routes and page, ``static/video.html``); ``app.create_app`` adds it with one call.

    GET  /video                           the page
    POST /api/videos                      multipart "file" (the clip) plus fields "style" (an image id),
                                          "size", "iterations", "consistent": the clip is probed (container,
                                          first frame, resolution, duration, frame count) against the studio's
                                          limits before anything is queued -> the queued job
    GET  /api/videos/{job_id}.mp4         the finished clip (?download=1: as an attachment)

The job is an ordinary studio job (``/api/jobs/{id}`` and its events: stage "frame 3/24", time left,
and a preview of the frame being styled, so the frames appear as they are made). Its result image is
the last frame; the MP4 lives in ``DATA_DIR/videos/`` and goes when its job does.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse

from ..errors import DeepCanvasError
from ..limits import check_number
from .forms import save_upload

#: The studio's limits for a clip, checked by probing it before any work is queued.
MAX_VIDEO_BYTES = 50 * 1024 * 1024
MAX_VIDEO_SECONDS = 10.0
MAX_VIDEO_PIXELS = 1920 * 1080
MAX_VIDEO_FRAMES = 300
MAX_VIDEO_SIZE = 384  # longest side of the styled frames
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v"}
_JOB_RE = re.compile(r"^[0-9a-f]{32}$")


def _int_field(form, name: str, default: int, lo: int, hi: int, error) -> int:
    """A whole-number form field inside the studio's own (narrower) bounds; limits.check_number's messages."""
    v = form.get(name)
    if v in (None, ""):
        return default
    try:
        return int(check_number(name, v, integer=True, minimum=lo, maximum=hi))
    except DeepCanvasError as e:
        raise error(400, str(e)) from None


def add_video_routes(app, studio, api_error) -> None:
    """The video tab's endpoints on ``app`` (``api_error(status, message)`` is app.ApiError)."""
    from ..render import drive
    from .jobs import TERMINAL

    videos = studio.data_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)

    def sweep() -> None:
        """MP4s and clips whose job is gone (retention), and pieces a crash left."""
        with studio.queue.cond:
            live = set(studio.queue.jobs)
        for p in videos.iterdir():
            stem = p.name.split(".")[0]
            if stem not in live and not p.name.startswith("up-"):
                p.unlink(missing_ok=True)

    @app.get("/video", include_in_schema=False)
    async def video_page():
        from .app import STATIC

        return FileResponse(STATIC / "video.html", headers={"Cache-Control": "no-cache"})

    @app.post("/api/videos", status_code=201)
    async def upload_video(request: Request):
        too_big = api_error(413, f"the clip is too large; the limit is {MAX_VIDEO_BYTES / 1024 / 1024:.0f} MB")
        length = request.headers.get("content-length")
        if length is None:
            raise api_error(411, "the upload needs a Content-Length header")
        if not length.isdigit() or int(length) > MAX_VIDEO_BYTES + 64 * 1024:
            raise too_big
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise api_error(400, "send the clip as multipart/form-data in a field called 'file'")
        await asyncio.to_thread(sweep)
        form = await request.form(max_files=1, max_fields=8)
        part = None
        try:
            f = form.get("file")
            if f is None or isinstance(f, str):
                raise api_error(400, "no file: send the clip in a multipart field called 'file'")
            suffix = Path(f.filename or "clip.mp4").suffix.lower()
            if suffix not in VIDEO_SUFFIXES:
                raise api_error(400, f"not a video file name ({suffix or 'no extension'}); "
                                     f"send one of {', '.join(sorted(VIDEO_SUFFIXES))}")
            style = form.get("style") or "bundled:swirls.jpg"
            style_path = studio.image_path(style)
            size = _int_field(form, "size", 256, 32, MAX_VIDEO_SIZE, api_error)
            iterations = _int_field(form, "iterations", 40, 1, 200, api_error)
            consistent = str(form.get("consistent", "1")).lower() not in ("0", "false", "off", "no")
            part = videos / f"up-{uuid.uuid4().hex}{suffix}"
            await save_upload(f, part, MAX_VIDEO_BYTES, too_big)
            try:
                info = await asyncio.to_thread(_check_clip, part, size)
            except DeepCanvasError as e:
                raise api_error(400, str(e).replace(str(part), Path(f.filename or "clip").name)) from None
        except BaseException:
            if part is not None:
                part.unlink(missing_ok=True)
            raise
        finally:
            await form.close()

        holder: dict = {}

        def run(callback):
            from ..techniques.video import style_video_steps

            job_id = holder["id"]
            try:
                return drive(style_video_steps(str(part), [str(style_path)], str(videos / f"{job_id}.mp4"),
                                               size=size, iterations=iterations, consistent=consistent, seed=0),
                             callback)
            finally:
                part.unlink(missing_ok=True)

        params = {"size": size, "iterations": iterations, "consistent": consistent, "frames": info["frames"]}
        job = studio.queue.submit(technique="style-video", title="Video style transfer",
                                  inputs={"clip": Path(f.filename or "clip").name, "styles": [style]},
                                  params=params, preview_every=1, run=run, request={})
        holder["id"] = job.id
        with studio.queue.cond:
            out = job.public()
        out["video_url"] = f"/api/videos/{job.id}.mp4"
        out["clip"] = info
        return out

    @app.get("/api/videos/{name}")
    async def video_file(name: str, download: bool = False):
        job_id = name[:-4] if name.endswith(".mp4") else name
        if not _JOB_RE.match(job_id):
            raise api_error(404, f"no video {name!r}")
        job = studio.queue.get(job_id)
        path = videos / f"{job_id}.mp4"
        if job is None or not path.is_file():
            state = job.state if job is not None else "unknown"
            raise api_error(404, f"video {job_id} is not ready (the job is {state})"
                            if job is not None and job.state not in TERMINAL else f"no video {name!r}")
        return FileResponse(path, media_type="video/mp4",
                            filename=f"deepcanvas-video-{job_id[:8]}.mp4" if download else None,
                            content_disposition_type="attachment" if download else "inline")


def _check_clip(path: Path, size: int) -> dict:
    """Probe the clip against the studio's limits; a one-line DeepCanvasError if it is unusable."""
    from .. import clip

    info = clip.probe(str(path), max_pixels=MAX_VIDEO_PIXELS, max_seconds=MAX_VIDEO_SECONDS)
    pl = clip.plan(info, size=size, max_frames=MAX_VIDEO_FRAMES)
    return {"width": info.width, "height": info.height, "fps": round(pl.fps, 3), "frames": len(pl.times),
            "seconds": round(pl.duration, 3), "audio": info.has_audio}
