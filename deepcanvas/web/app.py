"""The studio's HTTP API (FastAPI) and its static page.

Endpoints (all JSON unless noted; errors are ``{"error": "..."}`` with a 4xx status):

    GET  /                              the page (static/index.html)
    GET  /api/info                      techniques, models, bundled and uploaded images, limits
    GET  /api/techniques                each technique's inputs and form fields (from the API signatures)
    GET  /api/models                    networks with layer names, default layers, availability
    GET  /api/classes?model=NAME        a classifier's class names (efficientnet-lite0: 1000 ImageNet names)
    GET  /api/images                    pickable images: the bundled ones and the stored uploads
    GET  /api/images/{id}               a small JPEG of one of them (for display)
    POST /api/uploads                   multipart "file": size from the header (MAX_UPLOAD_PIXELS), then checked
                                        with io.load_image, stored as upload:<uuid> and recorded in the store
    POST /api/jobs                      {"technique", "inputs", "params", "preview_every"} -> the queued job
                                        (every parameter checked first: forms.convert_params, forms.check_job)
    POST /api/jobs/{id}/resubmit        a new job from a stored one's request (e.g. one a restart interrupted)
    GET  /api/jobs                      every stored job, newest first (the gallery)
    GET  /api/jobs/{id}                 one job
    POST /api/jobs/{id}/cancel          queued: removed; running: stopped, best image so far kept
    GET  /api/jobs/{id}/events          server-sent events: the job (state, queue position, progress,
                                        loss, time left, preview data URL) on every change until it ends
    GET  /api/jobs/{id}/result/{i}      the result as a full-size PNG (?download=1: as an attachment;
                                        ?thumb=1: a small JPEG)
    GET  /video, POST /api/videos,      the video tab: upload a clip, style it, download the MP4 (web/video.py)
    GET  /api/videos/{id}.mp4
"""

from __future__ import annotations

import asyncio
import io as _io
import json
import re
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import DeepCanvasError
from . import forms
from .jobs import TERMINAL, JobQueue

STATIC = Path(__file__).parent / "static"
DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
MAX_QUEUED = 50
MAX_JOB_BODY = 1024 * 1024  # a job is a few hundred bytes of JSON; past this: 413
#: The studio's working limit for an uploaded image, read from its header before it is decoded.
MAX_UPLOAD_PIXELS = 40_000_000
THUMB_SIDE = 512
_DECODE_LOCK = threading.Lock()
_UPLOAD_RE = re.compile(r"^upload:([0-9a-f]{32})$")
_BUNDLED_RE = re.compile(r"^bundled:([A-Za-z0-9_-]+\.jpg)$")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("deepcanvas")) / "studio"


def _jpeg(img: Image.Image, side: int = THUMB_SIDE) -> bytes:
    img = img.copy()
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = _io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=88)
    return buf.getvalue()


#: Retention defaults (``deepcanvas serve --keep-jobs/--keep-uploads/--keep-mb``).
KEEP_JOBS = 500
KEEP_UPLOADS = 200
KEEP_MB = 2048


class Studio:
    """State shared by the endpoints: where files live, the store, the job queue."""

    def __init__(self, data_dir: Path | None = None, max_upload: int = DEFAULT_MAX_UPLOAD, *,
                 keep_jobs: int = KEEP_JOBS, keep_uploads: int = KEEP_UPLOADS, keep_mb: float = KEEP_MB,
                 checkpoint_every: float = 10.0):
        from .store import Store

        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.store = Store(self.data_dir)
        self.uploads = self.store.uploads
        self.results = self.store.results
        self.max_upload = int(max_upload)
        self.keep = (int(keep_jobs), int(keep_uploads), int(keep_mb * 1024 * 1024))
        self.recovered = self.store.recover()
        self.queue = JobQueue(self.results, store=self.store, checkpoint_every=checkpoint_every,
                              on_finish=self.retain)
        self.queue.load()
        self.retain()
        self._bundled_thumbs: dict[str, bytes] = {}
        self._models: list[dict] | None = None

    def retain(self) -> None:
        """The retention rule: oldest finished jobs and uploads go, files and rows together."""
        with self.queue.cond:
            live = [j for j in self.queue.jobs.values() if j.state not in TERMINAL]
        in_use = set()
        for j in live:
            for v in j.inputs.values():
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, str) and x.startswith("upload:"):
                        in_use.add(x.split(":", 1)[1])
        for kind, key in self.store.retain(*self.keep, in_use=frozenset(in_use)):
            if kind == "job":
                self.queue.forget(key)

    def upload_entries(self) -> list[dict]:
        return [{"id": f"upload:{u['id']}", "name": u["name"], "url": f"/api/images/upload:{u['id']}",
                 "width": u["width"], "height": u["height"], "bundled": False} for u in self.store.uploads_list()]

    # -- images ----------------------------------------------------------------------------------
    def bundled(self) -> list[dict]:
        return [{"id": f"bundled:{p.name}", "name": p.stem, "url": f"/api/images/bundled:{p.name}", "bundled": True}
                for p in sorted(DATA.glob("*.jpg"))]

    def image_path(self, image_id) -> Path:
        """Server path of an image id; anything else (a path, an unknown id) is refused."""
        if not isinstance(image_id, str):
            raise ApiError(400, f"an image must be given by its id (bundled:NAME or upload:ID), got {image_id!r}")
        m = _BUNDLED_RE.match(image_id)
        if m and (DATA / m.group(1)).is_file():
            return DATA / m.group(1)
        m = _UPLOAD_RE.match(image_id)
        if m and self.store.has_upload(m.group(1)) and (self.uploads / f"{m.group(1)}.img").is_file():
            return self.uploads / f"{m.group(1)}.img"
        raise ApiError(400, f"unknown image {image_id!r}: pick a bundled image or upload one")

    def thumb(self, image_id: str) -> bytes:
        path = self.image_path(image_id)
        if image_id.startswith("upload:"):
            return path.with_suffix(".jpg").read_bytes()
        if image_id not in self._bundled_thumbs:
            from ..io import load_image

            self._bundled_thumbs[image_id] = _jpeg(load_image(path))
        return self._bundled_thumbs[image_id]

    # -- models ------------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        if self._models is None:
            from .. import models

            rows = []
            for info in models.REGISTRY.values():
                rows.append({"name": info.name, "description": info.description, "offline": info.offline,
                             "available": bool(info.available()), "layers": info.layer_names(),
                             "defaults": dict(info.defaults), "classifier": info.classes is not None})
            self._models = rows
        return self._models

    def tidy_error(self, msg: str) -> str:
        """Server paths in a message -> the ids the page knows."""
        msg = re.sub(re.escape(str(self.uploads)) + r"/([0-9a-f]{32})\.img", r"upload:\1", msg)
        return re.sub(re.escape(str(DATA)) + r"/([A-Za-z0-9_-]+\.jpg)", r"bundled:\1", msg)


from . import LOOPBACK_NAMES  # noqa: E402  (re-exported: the names a loopback studio answers to)


class SameOriginGuard:
    """Refuse requests another web site makes the browser send (ASGI middleware).

    * A Host header not in ``allowed_hosts`` (when given) is refused: a page on another
      site that rebinds its DNS name to 127.0.0.1 still sends its own name.
    * A request that changes something (not GET/HEAD) whose Origin header names another
      host:port than the one it was sent to is refused; so is ``Origin: null`` (what sandboxed
      iframes, data: and file: pages send), and a ``Sec-Fetch-Site`` other than same-origin or none.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None):
        self.app, self.allowed = app, allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host", "")
            name = urlsplit(f"//{host}").hostname or ""
            msg = None
            if self.allowed is not None and name not in self.allowed:
                msg = f"this studio answers to {', '.join(self.allowed)}, not to {name or 'no host'}"
            elif scope["method"] not in ("GET", "HEAD") and not _same_origin(headers, host):
                msg = "cross-site request refused"
            if msg:
                await JSONResponse({"error": msg}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same_origin(headers: dict, host: str) -> bool:
    origin = headers.get("origin")
    if origin is not None:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc != host:
            return False
    return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (before reading it when Content-Length says so)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, f"the request body is too large; the limit is {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is too large; the limit is {limit:,} bytes")
    return bytes(body)


def _bad_json(what: str):
    raise ApiError(400, f"the request body is not valid JSON: {what}")


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        _bad_json(f"a number of {len(text)} digits is too long")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > 64:
        _bad_json(f"a number of {len(text)} characters is too long")
    v = float(text)
    if v in (float("inf"), float("-inf")):
        _bad_json(f"{text} is out of range")
    return v


MAX_JSON_DEPTH = 16
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')  # "? : an unclosed string ends the text


def _nesting(text: str) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes):
    """JSON as the studio accepts it: no NaN/Infinity, no overlong numbers, no deep nesting; else 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _bad_json("it is not UTF-8")
    if _nesting(text) > MAX_JSON_DEPTH:  # counted before parsing: json's recursion is never reached
        _bad_json(f"it is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=lambda c: _bad_json(f"{c} is not a number JSON allows"))
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        _bad_json(str(e).split("\n")[0][:120] if isinstance(e, json.JSONDecodeError) else "it cannot be read")


def create_app(data_dir: Path | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
               allowed_hosts: tuple[str, ...] | None = None, **studio_options) -> FastAPI:
    """The studio. ``allowed_hosts``: Host header names accepted (None: any; ``deepcanvas serve``
    on a loopback address passes :data:`LOOPBACK_NAMES`). ``studio_options``: :class:`Studio`'s
    keep_jobs, keep_uploads, keep_mb (retention) and checkpoint_every (seconds)."""
    studio = Studio(data_dir, max_upload, **studio_options)

    @asynccontextmanager
    async def lifespan(app):
        studio.queue.start()
        try:
            yield
        finally:
            await asyncio.to_thread(studio.queue.stop)
            studio.store.close()

    app = FastAPI(title="deepcanvas studio", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.studio = studio
    app.add_middleware(SameOriginGuard, allowed_hosts=allowed_hosts)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        errs = exc.errors()
        where = ".".join(str(x) for x in errs[0].get("loc", ())) if errs else ""
        msg = errs[0].get("msg", "invalid request") if errs else "invalid request"
        return JSONResponse({"error": f"{where}: {msg}" if where else msg}, status_code=400)

    # -- page ----------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- what the page is built from ------------------------------------------------------------------
    @app.get("/api/techniques")
    async def techniques():
        return [forms.describe(t) for t in forms.available()]

    @app.get("/api/models")
    async def models_():
        return studio.models()

    @app.get("/api/classes")
    async def classes(model: str = "efficientnet-lite0"):
        from .. import models
        from ..techniques.classviz import require_classifier

        try:
            info = models.get_info(model)
            require_classifier(info)
        except DeepCanvasError as e:
            raise ApiError(400, str(e)) from None
        return {"model": model, "classes": info.classes()}

    @app.get("/api/images")
    async def images():
        return studio.bundled() + studio.upload_entries()

    @app.get("/api/images/{image_id}")
    async def image(image_id: str):
        data = await asyncio.to_thread(studio.thumb, image_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/info")
    async def info():
        return {"version": __version__, "techniques": await techniques(), "models": studio.models(),
                "images": await images(), "max_upload": studio.max_upload,
                "max_upload_pixels": MAX_UPLOAD_PIXELS}

    # -- uploads ------------------------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201)
    async def upload(request: Request):
        limit = studio.max_upload
        too_big = ApiError(413, f"the file is too large; the limit is {limit / 1024 / 1024:.0f} MB")
        length = request.headers.get("content-length")
        if length is None:
            raise ApiError(411, "the upload needs a Content-Length header")
        if not length.isdigit() or int(length) > limit + 64 * 1024:  # the multipart framing is small
            raise too_big
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "send the image as multipart/form-data in a field called 'file'")
        form = await request.form(max_files=1, max_fields=4)
        try:
            f = form.get("file")
            if f is None or isinstance(f, str):
                raise ApiError(400, "no file: send the image in a multipart field called 'file'")
            name = re.sub(r"[^\w. -]+", "_", Path(f.filename or "image").name)[:80] or "image"
            uid = uuid.uuid4().hex
            part = studio.uploads / f".{uid}.part"
            try:
                await forms.save_upload(f, part, limit, too_big)
                entry = await asyncio.to_thread(_accept_upload, studio, part, uid, name)
            finally:
                part.unlink(missing_ok=True)
        finally:
            await form.close()
        await asyncio.to_thread(studio.retain)
        return entry

    # -- jobs -----------------------------------------------------------------------------------------
    @app.post("/api/jobs", status_code=201)
    async def submit(request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError(415, "send the job as JSON (Content-Type: application/json)")
        body = parse_json(await _read_body(request, MAX_JOB_BODY))
        return await _enqueue(body)

    @app.post("/api/jobs/{job_id}/resubmit", status_code=201)
    async def resubmit(job_id: str):
        """A new job from an earlier one's request, checked again (e.g. one a restart interrupted)."""
        old = _job(job_id)
        if not old.request:
            raise ApiError(400, f"job {job_id} has no stored request to resubmit")
        return await _enqueue(old.request)

    async def _enqueue(body) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        unknown = set(body) - {"technique", "inputs", "params", "preview_every"}
        if unknown:
            raise ApiError(400, f"unknown field {sorted(unknown)[0]!r}; valid: technique, inputs, params, "
                                "preview_every")
        name = body.get("technique")
        tech = forms.load(name) if isinstance(name, str) else None
        if tech is None:
            valid = ", ".join(t.name for t in forms.available())
            raise ApiError(400, f"unknown technique {name!r}; valid: {valid}")
        try:
            params = forms.convert_params(tech, body.get("params") or {})
        except DeepCanvasError as e:
            raise ApiError(400, str(e)) from None
        preview_every = body.get("preview_every")
        preview_every = 5 if preview_every in (None, "") else preview_every
        if isinstance(preview_every, str) and preview_every.strip().isdigit():
            preview_every = int(preview_every)
        if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 1:
            raise ApiError(400, f"preview_every must be a whole number of at least 1, got {preview_every!r}")
        inputs_in = body.get("inputs") or {}
        if not isinstance(inputs_in, dict):
            raise ApiError(400, "inputs must be an object of name: image id(s)")
        spec_inputs = {i.name: i for i in tech.spec.inputs}
        unknown = [k for k in inputs_in if k not in spec_inputs]
        if unknown:
            raise ApiError(400, f"unknown input {unknown[0]!r} for {tech.name}; valid: {', '.join(spec_inputs)}")
        positional, keyword, inputs = [], {}, {}
        for spec in tech.spec.inputs:
            value = inputs_in.get(spec.name)
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
        try:
            await asyncio.to_thread(forms.check_job, tech, inputs, params)
        except DeepCanvasError as e:
            raise ApiError(400, studio.tidy_error(str(e))) from None
        with studio.queue.cond:
            queued = sum(1 for j in studio.queue.jobs.values() if j.state == "queued")
        if queued >= MAX_QUEUED:
            raise ApiError(429, f"{queued} jobs are already waiting; cancel some or wait")

        func = tech.func

        def run(callback):
            from ..render import drive

            try:
                return drive(func(*positional, **keyword, **params), callback)
            except DeepCanvasError as e:
                raise DeepCanvasError(studio.tidy_error(str(e))) from None

        request = {"technique": tech.name, "inputs": inputs, "params": params, "preview_every": preview_every}
        job = studio.queue.submit(technique=tech.name, title=tech.spec.title, inputs=inputs, params=params,
                                  preview_every=preview_every, run=run, request=request)
        return _snapshot(studio, job)

    @app.get("/api/jobs")
    async def jobs():
        with studio.queue.cond:
            items = [j.public(with_preview=False) for j in studio.queue.jobs.values()]
        return sorted(items, key=lambda d: d["created"], reverse=True)

    def _job(job_id: str):
        job = studio.queue.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}")
        return job

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str):
        return _snapshot(studio, _job(job_id))

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        _job(job_id)
        return _snapshot(studio, studio.queue.cancel(job_id))

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request):
        job = _job(job_id)

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

    @app.get("/api/jobs/{job_id}/result/{index}")
    async def result(job_id: str, index: int, download: bool = False, thumb: bool = False):
        job = _job(job_id)
        if not job.results:
            raise ApiError(404, f"job {job_id} has no result (it is {job.state})")
        if not 0 <= index < len(job.results):
            raise ApiError(404, f"job {job_id} has {len(job.results)} result(s); no index {index}")
        path = studio.results / job.results[index]["file"]
        if thumb:
            data = await asyncio.to_thread(lambda: _jpeg(Image.open(path), 320))
            return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
        fname = f"deepcanvas-{job.technique}-{job.id[:8]}{'' if len(job.results) == 1 else f'-{index}'}.png"
        return FileResponse(path, media_type="image/png", filename=fname if download else None,
                            content_disposition_type="attachment" if download else "inline")

    # -- the video tab (web/video.py: its own routes and page) ----------------------------------------
    from .video import add_video_routes

    add_video_routes(app, studio, ApiError)
    return app


def _snapshot(studio: Studio, job) -> dict:
    with studio.queue.cond:
        return job.public()


def _accept_upload(studio: Studio, part: Path, uid: str, name: str) -> dict:
    """Check an uploaded file with io.load_image; keep it (server-chosen name) and a small JPEG of it."""
    from ..atomic import save_bytes_atomic
    from ..io import load_image

    try:
        with _DECODE_LOCK:  # one upload decoded at a time: memory bounded by one image at the working limit
            img = load_image(part, what="uploaded image", max_pixels=MAX_UPLOAD_PIXELS)
    except DeepCanvasError as e:
        raise ApiError(400, str(e).replace(str(part), name)) from None
    thumb, (width, height) = _jpeg(img), img.size
    del img
    # Files first, then the row that lists them: a crash in between leaves orphans, removed at start-up.
    part.replace(studio.uploads / f"{uid}.img")
    save_bytes_atomic(thumb, studio.uploads / f"{uid}.jpg")
    row = studio.store.insert_upload(uid, Path(name).stem or "upload", width, height)
    return {"id": f"upload:{uid}", "name": row["name"], "url": f"/api/images/upload:{uid}",
            "width": row["width"], "height": row["height"], "bundled": False}

