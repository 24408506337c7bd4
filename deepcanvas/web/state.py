"""What the studio's routes share: one :class:`Studio` per app (files, store, job queue) and its limits.

Routes reach it through the :func:`get_studio` dependency (``app.state.studio``), never a closure.
"""

from __future__ import annotations

import io as _io
import os
import re
import stat
from pathlib import Path

from fastapi import Request
from PIL import Image

from . import videojobs
from .datadir import FolderLock
from .errors import ApiError
from .jobs import TERMINAL, JobQueue
from .store import Store

STATIC = Path(__file__).parent / "static"
DATA = Path(__file__).resolve().parents[1] / "data"

#: Largest upload in bytes (``deepcanvas serve --max-upload-mb``).
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
#: The studio's working limit for an uploaded image, read from its header before it is decoded.
MAX_UPLOAD_PIXELS = 40_000_000
#: Jobs waiting at once; past this a submission is a 429.
MAX_QUEUED = 50
#: A job is a few hundred bytes of JSON; past this: 413.
MAX_JOB_BODY = 1024 * 1024
THUMB_SIDE = 512
#: Retention defaults (``deepcanvas serve --keep-jobs/--keep-uploads/--keep-mb``).
KEEP_JOBS = 500
KEEP_UPLOADS = 200
KEEP_MB = 2048

_UPLOAD_RE = re.compile(r"^upload:([0-9a-f]{32})$")
_BUNDLED_RE = re.compile(r"^bundled:([A-Za-z0-9_-]+\.jpg)$")


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("deepcanvas")) / "studio"


def read_own_file(path: Path, what: str = "file") -> bytes:
    """The bytes of a regular file the studio wrote; a link or anything else is a 404 (never followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        raise ApiError(404, f"the {what} is missing") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ApiError(404, f"the {what} is missing")
        return f.read()


def is_own_file(path: Path) -> bool:
    """A regular file, not a link (the only kind the studio writes and serves)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def jpeg_bytes(img: Image.Image, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of ``img`` (at most ``side`` px), for display."""
    img = img.copy()
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = _io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=88)
    return buf.getvalue()


class Studio:
    """State shared by the endpoints: where files live, the store, the job queue."""

    def __init__(self, data_dir: Path | None = None, max_upload: int = DEFAULT_MAX_UPLOAD, *,
                 keep_jobs: int = KEEP_JOBS, keep_uploads: int = KEEP_UPLOADS, keep_mb: float = KEEP_MB,
                 checkpoint_every: float = 10.0, port: int | None = None, repair: bool = False):
        """``port``: named in the lock so that a second server says who holds the folder; ``repair``: a missing,
        empty or damaged database starts afresh, its files moved into ``quarantine/`` (never deleted)."""
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.folder_lock = FolderLock(self.data_dir, port)  # before anything reads or tidies the folder
        try:
            self.store = Store(self.data_dir, repair=repair)
        except BaseException:
            self.folder_lock.release()
            raise
        self.uploads = self.store.uploads
        self.results = self.store.results
        self.videos = self.data_dir / "videos"  # the video tab's clips and MP4s (videojobs.py)
        self.videos.mkdir(parents=True, exist_ok=True)
        self.max_upload = int(max_upload)
        self.keep = (int(keep_jobs), int(keep_uploads), int(keep_mb * 1024 * 1024))
        self.recovered = self.store.recover()
        self.recovered.update(videojobs.recover(self.store, self.videos))
        self.queue = JobQueue(self.results, store=self.store, checkpoint_every=checkpoint_every,
                              on_finish=self.finished)
        self.queue.load()
        self.retain()
        self._bundled_thumbs: dict[str, bytes] = {}
        self._models: list[dict] | None = None

    def close(self) -> None:
        self.store.close()
        self.folder_lock.release()

    def check_room(self) -> None:
        """429 when :data:`MAX_QUEUED` jobs (image and video alike) are already waiting."""
        with self.queue.cond:
            queued = sum(1 for j in self.queue.jobs.values() if j.state == "queued")
        if queued >= MAX_QUEUED:
            raise ApiError(429, f"{queued} jobs are already waiting; cancel some or wait")

    def finished(self, job=None) -> None:
        """After a job ran: a video job's MP4 counts in its bytes (for --keep-mb); then retention."""
        if job is not None and job.technique == videojobs.TECHNIQUE:
            size = sum(p.stat().st_size for p in (self.results / r["file"] for r in job.results) if p.is_file())
            self.store.update_job(job.id, bytes=size + videojobs.disk_bytes(self.videos, job.id, job.request))
        self.retain()

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
                job = self.queue.get(key)
                if job is not None and job.technique == videojobs.TECHNIQUE:
                    videojobs.remove(self.videos, key, job.request)
                self.queue.forget(key)

    def snapshot(self, job) -> dict:
        """A job as JSON, read under the queue's lock."""
        with self.queue.cond:
            return job.public()

    # -- images ----------------------------------------------------------------------------------
    def upload_entries(self) -> list[dict]:
        return [{"id": f"upload:{u['id']}", "name": u["name"], "url": f"/api/images/upload:{u['id']}",
                 "width": u["width"], "height": u["height"], "bundled": False} for u in self.store.uploads_list()]

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
        if m and self.store.has_upload(m.group(1)) and is_own_file(self.uploads / f"{m.group(1)}.img"):
            return self.uploads / f"{m.group(1)}.img"
        raise ApiError(400, f"unknown image {image_id!r}: pick a bundled image or upload one")

    def thumb(self, image_id: str) -> bytes:
        path = self.image_path(image_id)
        if image_id.startswith("upload:"):
            return read_own_file(path.with_suffix(".jpg"), "thumbnail")
        if image_id not in self._bundled_thumbs:
            from ..io import load_image

            self._bundled_thumbs[image_id] = jpeg_bytes(load_image(path))
        return self._bundled_thumbs[image_id]

    # -- models ------------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        if self._models is None:
            from .. import models

            rows = []
            for info in models.catalog():
                rows.append({"name": info.name, "description": info.description, "offline": info.offline,
                             "available": bool(info.available()), "layers": info.layer_names(),
                             "defaults": dict(info.defaults), "classifier": info.classes is not None})
            self._models = rows
        return self._models

    def tidy_error(self, msg: str) -> str:
        """Server paths in a message -> the ids the page knows."""
        msg = re.sub(re.escape(str(self.uploads)) + r"/([0-9a-f]{32})\.img", r"upload:\1", msg)
        return re.sub(re.escape(str(DATA)) + r"/([A-Za-z0-9_-]+\.jpg)", r"bundled:\1", msg)


def get_studio(request: Request) -> Studio:
    """The app's Studio (a FastAPI dependency)."""
    return request.app.state.studio
