"""The studio's job queue: one worker thread runs the jobs in order, one at a time.

A job is a technique's ``*_steps`` generator run through :func:`deepcanvas.render.drive`
with a callback that records the progress (loss, stage, time left, a small preview
every few iterations) and checks the job's cancel flag. A cancel raises
KeyboardInterrupt in the callback; ``drive`` throws it into the generator, which ends
as :class:`~deepcanvas.render.Interrupted` carrying the best image so far, kept as
the job's partial result.

Everything a page sees of a job is :meth:`Job.public`; every change bumps
``Job.version`` so that the server-sent event streams know when to send.
"""

from __future__ import annotations

import base64
import collections
import io as _io
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import DeepCanvasError

TERMINAL = ("done", "failed", "cancelled")
PREVIEW_SIDE = 512


def preview_data_url(images: list[Image.Image], side: int = PREVIEW_SIDE) -> str:
    """Images side by side, downscaled to at most ``side`` px, as a JPEG data URL."""
    if len(images) > 1:
        h = max(im.height for im in images)
        strip = Image.new("RGB", (sum(im.width for im in images) + 4 * (len(images) - 1), h), (255, 255, 255))
        x = 0
        for im in images:
            strip.paste(im, (x, 0))
            x += im.width + 4
        img = strip
    else:
        img = images[0]
    if max(img.size) > side:
        img = img.copy()
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = _io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def progress_images(p) -> list[Image.Image]:
    """A Progress's image(s): one per batch item (class visualization of several classes)."""
    t = p.tensor
    if getattr(t, "dim", lambda: 0)() == 4 and t.shape[0] > 1:
        return p.images
    return [p.image]


@dataclass
class Job:
    id: str
    technique: str
    title: str
    inputs: dict  # input name -> image id(s) or class names, as submitted
    params: dict  # converted keyword arguments, as submitted (rerun refills the form with these)
    preview_every: int
    run: Callable  # (callback) -> final Progress; raises DeepCanvasError / Interrupted
    state: str = "queued"
    position: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    iteration: int = 0
    total: int = 0
    loss: float | None = None
    parts: dict = field(default_factory=dict)
    stage: str = ""
    elapsed: float = 0.0
    eta: float | None = None
    preview: str | None = None
    preview_count: int = 0
    error: str | None = None
    results: list = field(default_factory=list)  # [{"file": name, "width": w, "height": h}]
    partial: bool = False
    version: int = 0
    cancel_requested: bool = False

    def public(self, with_preview: bool = True) -> dict:
        d = {k: getattr(self, k) for k in (
            "id", "technique", "title", "inputs", "params", "preview_every", "state", "position", "created",
            "started", "finished", "iteration", "total", "loss", "parts", "stage", "elapsed", "eta",
            "preview_count", "error", "partial")}
        d["results"] = [{**r, "url": f"/api/jobs/{self.id}/result/{i}"} for i, r in enumerate(self.results)]
        d["preview"] = self.preview if with_preview else None
        return d


class JobQueue:
    """Jobs in submission order; a single worker thread runs the queued ones one by one."""

    def __init__(self, results_dir: Path):
        self.results_dir = Path(results_dir)
        self.jobs: dict[str, Job] = {}
        self.queue: collections.deque[str] = collections.deque()
        self.cond = threading.Condition()
        self.running: Job | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="deepcanvas-studio-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self.cond:
            self._stop = True
            if self.running is not None:
                self.running.cancel_requested = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the page's side -----------------------------------------------------------------------
    def submit(self, **kw) -> Job:
        job = Job(id=uuid.uuid4().hex, **kw)
        with self.cond:
            self.jobs[job.id] = job
            self.queue.append(job.id)
            self._renumber()
            self.cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Queued: removed from the queue. Running: stopped between iterations, keeping the best so far."""
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None or job.state in TERMINAL:
                return job
            if job.state == "queued":
                self.queue.remove(job.id)
                job.state, job.finished = "cancelled", time.time()
                self._renumber()
            else:
                job.cancel_requested = True
                job.stage = "cancelling"
            self._bump(job)
            self.cond.notify_all()
            return job

    # -- internals -----------------------------------------------------------------------------
    def _bump(self, job: Job) -> None:
        job.version += 1
        self.cond.notify_all()

    def _renumber(self) -> None:
        for i, jid in enumerate(self.queue):
            j = self.jobs[jid]
            if j.position != i + 1:
                j.position = i + 1
                self._bump(j)

    def _loop(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.queue or self._stop)
                if self._stop:
                    return
                job = self.jobs[self.queue.popleft()]
                job.state, job.position, job.started = "running", 0, time.time()
                self.running = job
                self._renumber()
                self._bump(job)
            try:
                self._run(job)
            finally:
                with self.cond:
                    self.running = None
                    self._bump(job)

    def _run(self, job: Job) -> None:
        from ..io import save_image
        from ..render import Interrupted

        last = {"p": None}

        def callback(p) -> None:
            last["p"] = p
            preview = None
            if not p.done and (p.iteration % job.preview_every == 0 or p.iteration == 1):
                preview = preview_data_url(progress_images(p))
            with self.cond:
                job.iteration, job.total, job.stage = p.iteration, p.total, p.stage
                job.loss, job.parts, job.elapsed = float(p.loss), {k: float(v) for k, v in p.parts.items()}, p.elapsed
                job.eta = (p.elapsed / p.iteration * (p.total - p.iteration)) if p.iteration else None
                if preview is not None:
                    job.preview, job.preview_count = preview, job.preview_count + 1
                if job.cancel_requested:
                    job.stage = "cancelling"
                self._bump(job)
            if job.cancel_requested and not p.done:
                raise KeyboardInterrupt

        images, state, error = None, "done", None
        try:
            final = job.run(callback)
            images = progress_images(final)
        except Interrupted as e:
            state, images = "cancelled", [e.image]
        except KeyboardInterrupt:  # a technique that did not turn it into Interrupted
            state = "cancelled"
            images = progress_images(last["p"]) if last["p"] is not None else None
        except DeepCanvasError as e:
            state, error = "failed", str(e)
        except MemoryError:
            state, error = "failed", "out of memory; try a smaller size"
        except Exception as e:  # a bug: keep the server alive, show it on the page, log the traceback
            if "out of memory" in str(e).lower():
                state, error = "failed", "out of memory; try a smaller size"
            else:
                traceback.print_exc()
                state, error = "failed", f"internal error: {type(e).__name__}: {e}"
        results = []
        if images:
            try:
                for i, img in enumerate(images):
                    name = f"{job.id}.png" if len(images) == 1 else f"{job.id}_{i}.png"
                    save_image(img, self.results_dir / name)
                    results.append({"file": name, "width": img.width, "height": img.height})
            except DeepCanvasError as e:
                state, error, results = "failed", str(e), []
        with self.cond:
            job.state, job.error, job.results, job.finished = state, error, results, time.time()
            job.partial = state == "cancelled" and bool(results)
            if state == "done":
                job.iteration = job.total or job.iteration
                job.eta = 0.0
                job.stage = "done"
                job.preview = preview_data_url(images)
                job.preview_count += 1
            elif state == "cancelled":
                job.stage = "cancelled"
                job.eta = None
            else:
                job.eta = None
            self._bump(job)
