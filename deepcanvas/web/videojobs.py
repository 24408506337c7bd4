"""Video jobs are studio jobs: the queue, the store, retention and resubmit, and the files each one makes.

A video job's files in ``DATA_DIR/videos/``, all named after it or in its stored request:

* ``up-<uuid><suffix>``: the clip as uploaded. Kept while the job can still need it (queued, running, or
  interrupted by a stop, so that resubmit works after a restart); removed when the job ends (done,
  cancelled, failed) and with the job's row (retention);
* ``.<job id>.mp4.deepcanvas-video/``: the frames while it runs (framestore.py). When the job ends without
  finishing (cancel, failure, or a kill found at the next start) the frames so far become ``<job id>.mp4``
  and the folder goes;
* ``<job id>.mp4``: the styled clip, removed with the job's row.

At start-up (nothing running yet) anything else in the folder is a leftover and is removed, but only
when the database names the data folder as its own (:attr:`Store.owned`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from pathlib import Path

from .errors import ApiError

TECHNIQUE = "style-video"
TITLE = "Video style transfer"
CLIP_RE = re.compile(r"^up-[0-9a-f]{32}\.[a-z0-9]{2,5}$")


def mp4_path(videos: Path, job_id: str) -> Path:
    return videos / f"{job_id}.mp4"


def frames_dir(videos: Path, job_id: str) -> Path:
    return videos / f".{job_id}.mp4.deepcanvas-video"


def clip_path(videos: Path, request: dict) -> Path | None:
    """The job's kept clip, named in its stored request (None for a malformed or missing name)."""
    name = (request.get("video") or {}).get("clip") if isinstance(request, dict) else None
    return videos / name if isinstance(name, str) and CLIP_RE.match(name) else None


def new_clip_name(suffix: str) -> str:
    return f"up-{uuid.uuid4().hex}{suffix}"


def _remove(p: Path) -> None:
    """A file, link or folder, never following a link."""
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def save_partial(videos: Path, job_id: str, fps: float) -> int:
    """The frames a stopped job finished, encoded as its MP4 (if it has none); the frame folder removed.
    Returns how many frames there were."""
    from ..clip import write_mp4
    from ..errors import DeepCanvasError

    folder = frames_dir(videos, job_id)
    frames = sorted(folder.glob("frame_*.png")) if folder.is_dir() and not folder.is_symlink() else []
    try:
        if frames and not mp4_path(videos, job_id).exists():
            write_mp4(frames, mp4_path(videos, job_id), fps if fps and fps > 0 else 25.0)
    except (DeepCanvasError, OSError, ValueError) as e:  # a half-written frame: the PNG result is still kept
        print(f"deepcanvas: warning: could not keep the frames of video job {job_id}: {e}", file=sys.stderr)
        frames = []
    _remove(folder)
    return len(frames)


def end(videos: Path, job_id: str, request: dict, finished: bool) -> None:
    """A video job ended (finished: done; else cancelled or failed): frames so far kept, the clip removed."""
    if not finished:
        save_partial(videos, job_id, (request.get("video") or {}).get("fps") or 25.0)
    _remove(frames_dir(videos, job_id))
    clip = clip_path(videos, request)
    if clip is not None:
        clip.unlink(missing_ok=True)


def remove(videos: Path, job_id: str, request: dict) -> None:
    """Everything a video job made (its row is gone: retention)."""
    _remove(frames_dir(videos, job_id))
    mp4_path(videos, job_id).unlink(missing_ok=True)
    clip = clip_path(videos, request)
    if clip is not None:
        clip.unlink(missing_ok=True)


def disk_bytes(videos: Path, job_id: str, request: dict) -> int:
    """Bytes of a video job's MP4 and kept clip (counted in its row for --keep-mb)."""
    n = 0
    for p in (mp4_path(videos, job_id), clip_path(videos, request)):
        if p is not None and p.is_file() and not p.is_symlink():
            n += p.stat().st_size
    return n


def recover(store, videos: Path) -> dict:
    """At start-up, after :meth:`Store.recover`: the frames of video jobs a stop cut short become their MP4;
    leftovers (clips of ended jobs, pieces of a crash, files of jobs no longer listed) are removed."""
    out = {"video_frames_kept": 0, "video_leftovers": 0}
    jobs = store.jobs()
    keep = set()
    for job in jobs:
        if job["technique"] != TECHNIQUE:
            continue
        keep.add(mp4_path(videos, job["id"]).name)
        if frames_dir(videos, job["id"]).exists():
            n = save_partial(videos, job["id"], (job["request"].get("video") or {}).get("fps") or 25.0)
            if n:
                out["video_frames_kept"] += n
                store.update_job(job["id"], error=f"the studio stopped while this job ran; the {n} frame(s) "
                                                  "styled so far are kept in its video")
        clip = clip_path(videos, job["request"])
        if clip is not None and job["state"] == "interrupted":
            keep.add(clip.name)
    if not store.owned:
        return out
    with store.lock:  # ids of rows that failed to read back keep their files too
        keep |= {f"{r[0]}.mp4" for r in store.db.execute("SELECT id FROM jobs")}
    for p in list(videos.iterdir()):
        if p.name not in keep:
            _remove(p)
            out["video_leftovers"] += 1
    return out


def resubmit_request(studio, old) -> dict:
    """A fresh clip (a hard link to the interrupted job's) and the request for a new job; 400 if the clip is gone."""
    clip = clip_path(studio.videos, old.request)
    if clip is None or clip.is_symlink() or not clip.is_file():
        raise ApiError(400, f"video job {old.id} has no clip any more (a video job's clip is removed when it "
                            "ends); upload the clip again")
    video = dict(old.request["video"])
    video["clip"] = new_clip_name(clip.suffix)
    try:
        os.link(clip, studio.videos / video["clip"])
    except OSError:  # a file system without hard links
        shutil.copyfile(clip, studio.videos / video["clip"])
    return {"video": video}


def submit(studio, request: dict, inputs: dict, params: dict):
    """Queue a video job for the clip named in ``request`` (already probed and checked); the queue's cap applies."""
    from ..render import drive
    from ..techniques.style_video import style_video_steps

    v = request["video"]
    style_path = studio.image_path(v["style"])
    job_id = uuid.uuid4().hex
    clip = studio.videos / v["clip"]

    def run(callback):
        out = mp4_path(studio.videos, job_id)
        finished = False
        try:
            result = drive(style_video_steps(str(clip), [str(style_path)], str(out), size=v["size"],
                                             iterations=v["iterations"], consistent=v["consistent"], seed=0),
                           callback)
            finished = True
            return result
        finally:
            end(studio.videos, job_id, request, finished)

    def cleanup():  # cancelled before it ran
        end(studio.videos, job_id, request, False)

    try:
        studio.check_room()
        return studio.queue.submit(job_id=job_id, technique=TECHNIQUE, title=TITLE, inputs=inputs, params=params,
                                   preview_every=1, run=run, request=request, cleanup=cleanup)
    except BaseException:
        clip.unlink(missing_ok=True)
        raise
