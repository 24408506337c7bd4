"""The studio's job queue: one worker thread runs the jobs in order, one at a time.

A job is a technique's ``*_steps`` generator run through :func:`deepcanvas.render.drive`
with a callback that records the progress (loss, stage, time left, a small preview
every few iterations) and checks the job's cancel flag. A cancel raises
KeyboardInterrupt in the callback; ``drive`` throws it into the generator, which ends
as :class:`~deepcanvas.render.Interrupted` carrying the best image so far, kept as
the job's partial result.

Everything a page sees of a job is :meth:`Job.public`; every change bumps
``Job.version`` so that the server-sent event streams know when to send.

With a :class:`~deepcanvas.web.store.Store`, every change of state is written to the
database before the page can see it (a job shown done is on disk), and a running job
saves its current image every ``checkpoint_every`` seconds, so that a crash keeps it.
"""

from __future__ import annotations

import base64
import collections
import io as _io
import math
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import DeepCanvasError

TERMINAL = ("done", "failed", "cancelled", "interrupted")
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


def _finite(v) -> float | None:
    """A loss for JSON: a diverged run's NaN or infinity becomes None (JSON has no such numbers)."""
    v = float(v)
    return v if math.isfinite(v) else None


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
    run: Callable | None  # (callback) -> final Progress; raises DeepCanvasError / Interrupted
    request: dict = field(default_factory=dict)  # the body as submitted (resubmit builds the job again from it)
    cleanup: Callable | None = None  # () -> None: removes the job's own files when it is cancelled before it ran
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

    def __init__(self, results_dir: Path, store=None, checkpoint_every: float = 10.0, on_finish=None):
        self.results_dir = Path(results_dir)
        self.store = store
        self.checkpoint_every = checkpoint_every
        self.on_finish = on_finish  # on_finish(job), called (outside the lock) after each job ran: retention
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

    def load(self) -> None:
        """The jobs of earlier sessions, from the store (all finished: :meth:`Store.recover` ran first)."""
        if self.store is None:
            return
        with self.cond:
            for row in self.store.jobs():
                fields = {k: row[k] for k in ("id", "technique", "title", "inputs", "params", "preview_every", "request",
                                              "state", "created", "started", "finished", "iteration", "total",
                                              "loss", "elapsed", "error", "results", "partial")}
                job = Job(run=None, **fields)
                job.stage = job.state
                self.jobs[job.id] = job

    def forget(self, job_id: str) -> None:
        with self.cond:
            self.jobs.pop(job_id, None)

    # -- the page's side -----------------------------------------------------------------------
    def submit(self, job_id: str | None = None, **kw) -> Job:
        job = Job(id=job_id or uuid.uuid4().hex, **kw)
        if self.store is not None:
            self.store.insert_job({"id": job.id, "technique": job.technique, "title": job.title, "request": job.request,
                                   "inputs": job.inputs, "params": job.params, "preview_every": job.preview_every,
                                   "state": "queued", "created": job.created})
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
            never_ran = job.state == "queued"
            if never_ran:
                self.queue.remove(job.id)
                job.state, job.finished = "cancelled", time.time()
                self._save(job, state=job.state, finished=job.finished)
                self._renumber()
            else:
                job.cancel_requested = True
                job.stage = "cancelling"
            self._bump(job)
            self.cond.notify_all()
        if never_ran and job.cleanup is not None:
            try:
                job.cleanup()
            except OSError:
                traceback.print_exc()
        return job

    # -- internals -----------------------------------------------------------------------------
    def _save(self, job: Job, **fields) -> None:
        if self.store is not None:
            try:
                self.store.update_job(job.id, **fields)
            except Exception:  # a database error must not stop the worker; the page still sees the job
                traceback.print_exc()

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
                self._save(job, state="running", started=job.started)
                self.running = job
                self._renumber()
                self._bump(job)
            try:
                self._run(job)
            finally:
                with self.cond:
                    self.running = None
                    self._bump(job)
            if self.on_finish is not None:
                try:
                    self.on_finish(job)
                except Exception:  # retention must never stop the worker
                    traceback.print_exc()

    def _run(self, job: Job) -> None:
        from ..io import save_image
        from ..render import Interrupted

        from .store import checkpoint_name

        last = {"saved": time.monotonic()}

        def checkpoint(p) -> None:
            """The current image(s) on disk, so that a crash keeps them (store.recover adopts them)."""
            last["saved"] = time.monotonic()
            try:
                for i, img in enumerate(progress_images(p)):
                    save_image(img, self.results_dir / checkpoint_name(job.id, i))
            except DeepCanvasError:
                pass  # a full disk: the run goes on, the final save reports it

        def callback(p) -> None:
            if self.store is not None and not p.done and time.monotonic() - last["saved"] >= self.checkpoint_every:
                checkpoint(p)
            preview = None
            if not p.done and (p.iteration % job.preview_every == 0 or p.iteration == 1):
                preview = preview_data_url(progress_images(p))
            with self.cond:
                job.iteration, job.total, job.stage = p.iteration, p.total, p.stage
                job.loss, job.elapsed = _finite(p.loss), p.elapsed
                job.parts = {k: _finite(v) for k, v in p.parts.items()}
                job.eta = p.eta
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
            dpi = final.output.get("dpi") if isinstance(final.output, dict) else None
            for img in images if dpi else ():  # a print's DPI, written into the PNG by save_image
                img.info["dpi"] = dpi
        except Interrupted as e:
            state, images = "cancelled", ([e.image] if e.image is not None else None)
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
                    results.append({"file": name, "width": img.width, "height": img.height,
                                    **({"dpi": float(img.info["dpi"][0])} if "dpi" in img.info else {})})
            except DeepCanvasError as e:
                state, error, results = "failed", str(e), []
        finished = time.time()
        partial = state == "cancelled" and bool(results)
        with self.cond:
            iteration, total, loss, elapsed = job.iteration, job.total, job.loss, job.elapsed
        if state == "done":
            iteration = total or iteration
        # On disk first (files, then the row that lists them), then on the page.
        size = sum((self.results_dir / r["file"]).stat().st_size for r in results)
        self._save(job, state=state, error=error, results=results, finished=finished, partial=int(partial),
                   iteration=iteration, total=total, loss=loss, elapsed=elapsed, bytes=size)
        for p in self.results_dir.glob(f"{job.id}.partial_*.png"):
            p.unlink(missing_ok=True)
        with self.cond:
            job.state, job.error, job.results, job.finished = state, error, results, finished
            job.partial = partial
            if state == "done":
                job.iteration = iteration
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
