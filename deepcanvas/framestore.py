"""Where a video run's frames go, and how a stopped run resumes.

Frames are written as they finish into a folder: the output itself for a folder of PNGs, or a work
folder ``.NAME.deepcanvas-video/`` next to an MP4 or GIF, encoded when the last frame is done. A
state file there records a digest of the input and the settings; running the same command again
skips the finished frames, and a folder holding another run's frames is refused, not overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import clip, imaging, io, limits
from .atomic import save_bytes_atomic
from .errors import DeepCanvasError

STATE = ".deepcanvas-video.json"
VIDEO_OUTPUTS = {".mp4": "mp4", ".gif": "gif"}


def output_kind(output) -> tuple[str, pathlib.Path]:
    """('folder' | 'mp4' | 'gif', path): an OUTPUT ending in '/' or without an extension is a folder of PNGs."""
    try:
        text = os.fspath(output)
    except TypeError:
        raise DeepCanvasError(f"cannot write output: expected a path, got {type(output).__name__}") from None
    if not text:
        raise DeepCanvasError("cannot write output: no output given")
    p = pathlib.Path(os.path.expanduser(text))
    if text.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return "folder", p
    kind = VIDEO_OUTPUTS.get(p.suffix.lower())
    if kind is None:
        raise DeepCanvasError(f"cannot write output '{text}': write a .mp4, a .gif, or a folder of PNG frames "
                              f"(a name ending in '/')")
    return kind, p


def check_output(output) -> tuple[str, pathlib.Path]:
    """Fail now, not after an hour, if the output cannot be written. Returns :func:`output_kind`."""
    kind, p = output_kind(output)
    if kind == "folder":
        if p.exists() and not p.is_dir():
            raise DeepCanvasError(f"cannot write output '{p}': it is a file, and frames go into a folder")
        parent = p if p.exists() else p.parent
        if not parent.exists():
            raise DeepCanvasError(f"cannot write output '{p}': directory '{parent}' does not exist")
        io.check_output_path(parent / "probe.png")
    else:
        io.check_output_path(p.with_suffix(".png"))  # the directory exists and is writable
        if p.is_dir():
            raise DeepCanvasError(f"cannot write output '{p}': it is an existing directory")
    return kind, p


def frame_name(i: int) -> str:
    """The file name of frame ``i`` (0-based) in a folder of frames: frame_00001.png ..."""
    return f"frame_{i + 1:05d}.png"


@dataclass
class VideoResult:
    """What a video run wrote."""

    output: pathlib.Path
    kind: str  # 'mp4', 'gif' or 'folder'
    frames: list[pathlib.Path]  # the PNG frames (removed after encoding unless keep_frames)
    fps: float
    size: tuple[int, int]  # (width, height)
    seconds_per_frame: list[float] = field(default_factory=list)  # this run's frames, in order
    seams: list[int] = field(default_factory=list)  # with ray: the first frame of each later chunk's own frames
    _since: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    def frame_done(self) -> None:
        """A frame is written: note its seconds since the previous one (the first: since the run began)."""
        now = time.perf_counter()
        self.seconds_per_frame.append(now - self._since)
        self._since = now


@dataclass
class FrameStore:
    """The folder a run's PNG frames go to, ``n`` of them, and the output they are encoded into."""

    kind: str  # 'mp4', 'gif' or 'folder'
    output: pathlib.Path
    folder: pathlib.Path
    n: int

    @classmethod
    def for_output(cls, output, n: int) -> FrameStore:
        kind, p = check_output(output)
        if kind == "folder":
            return cls(kind, p, p, n)
        return cls(kind, p, p.parent / f".{p.name}.deepcanvas-video", n)

    def frame(self, i: int) -> pathlib.Path:
        return self.folder / frame_name(i)

    def finished(self) -> int:
        """How many frames from the first on are already written (frames are written atomically)."""
        k = 0
        while k < self.n and self.frame(k).is_file():
            k += 1
        return k

    def write(self, i: int, img: torch.Tensor) -> None:
        """Frame ``i`` (a (1, 3, H, W) tensor), atomically."""
        save_bytes_atomic(imaging.tensor_png(img), self.frame(i))

    def read(self, i: int) -> torch.Tensor:
        """A finished frame back as a (1, 3, H, W) tensor."""
        return imaging.array_to_tensor(np.asarray(io.load_image(self.frame(i), what="frame")))

    def check(self, digest: str, restart: bool) -> None:
        """Fail now if the folder holds frames of another run (and ``restart`` was not asked); writes nothing."""
        state_path = self.folder / STATE
        if restart:
            return
        if state_path.is_file():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("digest") != digest:
                raise DeepCanvasError(f"'{self.folder}' holds frames of another run (a different input or settings); "
                                      f"delete them, choose another output, or pass --restart to start over")
        elif self.folder.is_dir() and self.frame(0).exists():
            raise DeepCanvasError(f"'{self.folder}' already holds {frame_name(0)} from something else; "
                                  f"choose another output, or pass --restart to overwrite")

    def begin(self, digest: str, restart: bool) -> int:
        """Start (or resume) the folder; return how many frames are already finished."""
        self.check(digest, restart)
        state_path = self.folder / STATE
        if restart and self.folder.is_dir():
            for i in range(self.n):
                self.frame(i).unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
        try:
            self.folder.mkdir(parents=False, exist_ok=True)
        except OSError as e:
            raise DeepCanvasError(f"cannot create the folder '{self.folder}': {e.strerror or e}") from None
        save_bytes_atomic(json.dumps({"digest": digest, "frames": self.n}).encode(), state_path)
        return self.finished()

    def last_frame(self, results: list[torch.Tensor]) -> torch.Tensor:
        """A video run's final picture: the last frame once all are written (on Ctrl-C: the newest result)."""
        if self.finished() == self.n:
            return self.read(self.n - 1)
        return results[-1]

    def finish(self, info: clip.ClipInfo, pl: clip.Selection, keep_frames: bool, result: VideoResult) -> VideoResult:
        """Encode the frames into the MP4 (with the input's audio) or GIF; drop the work folder unless kept."""
        frames = [self.frame(i) for i in range(self.n)]
        if self.kind == "mp4":
            clip.write_mp4(frames, self.output, pl.fps, audio_from=info.source if info.has_audio else None,
                           start=pl.start, duration=pl.duration)
        elif self.kind == "gif":
            clip.write_gif(frames, self.output, pl.fps)
        if self.kind != "folder" and not keep_frames:
            shutil.rmtree(self.folder, ignore_errors=True)
        return result

    def result(self, pl: clip.Selection) -> VideoResult:
        return VideoResult(self.output, self.kind, [self.frame(i) for i in range(self.n)], pl.fps,
                           (pl.hw[1], pl.hw[0]))


def open_clip(input, output, fps, start, duration, size: int | None):
    """Probe the clip and the output; return (info, plan, store) or a one-line error, before any slow work."""
    info = clip.probe(input)
    pl = clip.select(info, fps=fps, start=start, duration=duration, size=size, max_frames=limits.MAX_FRAMES)
    return info, pl, FrameStore.for_output(output, len(pl.times))


def settings_digest(parts: dict) -> str:
    """A digest of a run's input and settings: a resumed run must match it."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def input_identity(info: clip.ClipInfo) -> list:
    """The input file(s) as (path, size, mtime): a changed clip does not resume an old run."""
    files = info.files or [pathlib.Path(info.source)]
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, int(st.st_mtime)])
    return out


def image_digest(imgs) -> str:
    """A digest of images (PIL images or files), for the settings digest."""
    h = hashlib.sha1()
    for im in imgs:
        if hasattr(im, "tobytes"):
            h.update(im.tobytes())
        else:
            h.update(pathlib.Path(im).read_bytes())
    return h.hexdigest()
